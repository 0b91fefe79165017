"""End to end: a real `latentdmx run --output sim` daemon, driven through the CLI.

The daemon records its DMX stream; each command's effect is read from the recorded frames.
A status call just before and just after each command brackets the frame it took effect on:
frames with index < before["frames"] are untouched, frames >= after["frames"] have it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pi_app.cli import main
from pi_app.config import load_config
from pi_app.control import ControlClient
from pi_app.errors import ControlError
from pi_app.patch import Patch
from pi_app.sim.record import read_show

REPO = Path(__file__).resolve().parents[1]
FPS = 40

pytestmark = pytest.mark.slow


class Daemon:
    def __init__(self, tmp_path: Path) -> None:
        self.xdg = tmp_path / "xdg"
        self.xdg.mkdir(mode=0o700)
        self.socket = self.xdg / "latentdmx" / "control.sock"
        self.record = tmp_path / "show.txt"
        env = {k: v for k, v in os.environ.items()
               if k not in ("RUNTIME_DIRECTORY", "NOTIFY_SOCKET", "LATENTDMX_SOCKET")}
        env.update(XDG_RUNTIME_DIR=str(self.xdg),
                   PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pi_app.cli", "run", "--output", "sim", "--duration", "30",
             "--fps", str(FPS), "--record", str(self.record)],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(main, [*args, "--socket", str(self.socket)])
        assert result.exit_code == 0, (args, result.output)
        return result.output

    def status(self) -> dict:
        return ControlClient(self.socket).request("status")

    def wait_for_frames(self, n: int, timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("daemon exited early:\n" + self.proc.stdout.read())
            if self.socket.exists():
                try:
                    st = self.status()
                except ControlError:                                   # not listening yet
                    st = {}
                if st.get("frames", 0) >= n:
                    return st
            time.sleep(0.05)
        pytest.fail(f"daemon did not reach frame {n}")

    def command(self, *args: str) -> tuple[int, int, str]:
        """Run a CLI command; return (frames before, frames after, its output)."""
        before = self.status()["frames"]
        out = self.cli(*args)
        after = self.status()["frames"]
        return before, after, out

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=20)
        return out


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path)
    yield d
    if d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def test_cli_drives_the_running_daemon(daemon, monkeypatch):
    patch = Patch(load_config())
    universes = patch.universes
    full = {u: np.full(512, 255, np.uint8) for u in universes}
    dark = patch.blackout_frames(full)
    light = np.stack([dark[u] != 255 for u in universes])            # light slots
    dimmer = np.zeros_like(light)
    for (u, address), (_, attr) in patch.slot_map().items():
        if attr == "dimmer":
            dimmer[universes.index(u), address - 1] = True

    daemon.wait_for_frames(int(1.5 * FPS))                             # past the fade-in
    # the default socket is found from XDG_RUNTIME_DIR, like `latentdmx status` in a shell
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(daemon.xdg))
    plain = CliRunner().invoke(main, ["status"])
    assert plain.exit_code == 0, plain.output
    assert re.search(r"^model\s+nat-", plain.output, re.MULTILINE), plain.output

    # The safety stage slews aim and light (flash limiter), so each step waits for the look
    # to settle before the next one; the checks read the settled frames.
    _, p1, _ = daemon.command("pause")
    time.sleep(3.5)                                                    # heads finish moving
    d0, d1, out = daemon.command("dim", "0.2")                         # still paused
    assert "master 0.2" in out
    time.sleep(2.5)
    r0, r1, _ = daemon.command("resume")
    time.sleep(0.5)
    b0, b1, _ = daemon.command("blackout")
    time.sleep(2.5)
    e0, e1, _ = daemon.command("resume")
    time.sleep(1.0)
    s0, s1, out = daemon.command("seed", "5")
    assert "seed 5" in out
    st_a = daemon.wait_for_frames(s1 + 1)                             # surely applied
    time.sleep(1.0)
    st_b = daemon.status()
    _, t1, out = daemon.command("tempo", "2")
    assert "tempo 2" in out
    st_c = daemon.wait_for_frames(t1 + 1)
    time.sleep(1.0)
    st_d = daemon.status()
    table = daemon.cli("status")
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in table.splitlines())
    assert rows["seed"] == "5" and rows["tempo"] == "2" and rows["master"] == "0.2"
    assert rows["paused"] == "no" and rows["blackout"] == "no"

    log = daemon.stop()
    assert daemon.proc.returncode == 0, log
    assert not daemon.socket.exists()                                  # removed on exit

    frames, rec_universes, times = read_show(daemon.record)
    assert rec_universes == universes
    index = np.rint(np.asarray(times) * FPS).astype(int)              # frame number k
    by_k = dict(zip(index.tolist(), frames, strict=True))

    def window(lo: int, hi: int) -> list[np.ndarray]:
        return [by_k[k] for k in range(lo, hi) if k in by_k]

    def settled(frames: list[np.ndarray], n: int = 8) -> np.ndarray:
        assert len(frames) >= 2 * n
        assert all(np.array_equal(f, frames[-1]) for f in frames[-n:]), "look never settled"
        return frames[-1]

    # pause: the look holds
    before = settled(window(p1, d0))
    # dim 0.2 on the held look: the dimmer channels go to a fifth, aim and held slots stay
    after = settled(window(d1, r0))
    assert before[dimmer].max() >= 20, "test needs a lit fixture"
    assert np.all(np.abs(after[dimmer] - 0.2 * before[dimmer].astype(float)) <= 1.0)
    assert np.array_equal(after[~light], before[~light])
    # resume: the walk moves again
    moving = window(r1, b0)
    assert len(moving) >= 10 and not all(np.array_equal(f, moving[0]) for f in moving)
    # blackout: the light slots go to 0 (through the flash limiter) and stay there
    blacked = window(b1, e0)
    assert len(blacked) >= 20
    assert all(not f[light].any() for f in blacked[-8:])
    assert blacked[-1][~light].any()                                   # aim/held channels live
    # resume after blackout: lit again
    assert any(f[light].any() for f in window(e1, s0))
    # seed 5: a new walk from its start; tempo 2: the walk runs twice as fast
    assert st_a["seed"] == 5 and st_a["phase"] < 0.2
    rate1 = (st_b["phase"] - st_a["phase"]) / (st_b["frames"] - st_a["frames"])
    rate2 = (st_d["phase"] - st_c["phase"]) / (st_d["frames"] - st_c["frames"])
    assert rate2 / rate1 == pytest.approx(2.0, rel=0.1)
    # the stop: the last recorded frame is dark
    assert not frames[-1][light].any()
