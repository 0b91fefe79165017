"""Lockstep daemons for the end-to-end tests and `bench/lockstep.py`: each member a real
``latentdmx run`` process in its own network namespace of a `GroupLan`, recording its frames
(``--record``: the DMX and, beside it, each frame's index and wall-clock stamp), with its own
control socket. And the reading of what they played."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from procs import public_dir

from pi_app.config import default_config_path
from pi_app.control import ControlClient
from pi_app.errors import ControlError
from pi_app.sim.record import read_show
from pi_app.sync.stamps import read_stamps

LATENTDMX = str(Path(sys.executable).parent / "latentdmx")
KEY = "kV3q-Zt8wPn2RbX7_mLc9YfH4sJd6GaE"
FPS = 40


def group_config(path: Path, *, output: str = "", safety: str = "", extra: str = "") -> Path:
    """The bundled demo rig in group "lockstep-test" on eth0 (same epoch, key, show)."""
    text = default_config_path().read_text()
    if output:                            # the [output] sections, replaced by `output`
        head, rest = text.split("\n[output]\n", 1)
        text = head + f"\n[output]\n{output}\n\n[safety]" + rest.split("\n[safety]", 1)[1]
    if safety:
        head, rest = text.split("\n[safety]", 1)
        line, tail = rest.split("\n", 1)
        text = head + f"\n[safety]{line}\n{safety}\n" + tail
    path.write_text(with_sync(text, f'group = "lockstep-test"\nepoch = "2026-01-01T00:00:00Z"\n'
                                    f'key = "{KEY}"\ninterface = "eth0"\n{extra}'))
    return path


def with_sync(text: str, keys: str) -> str:
    """A config text whose [sync] table is `keys` (the bundled config has one, empty)."""
    out, n = re.subn(r"\n\[sync\][^\n]*\n.*?\n\n", lambda m: f"\n[sync]\n{keys}\n\n", text,
                     count=1, flags=re.S)
    return out if n else text + f"\n[sync]\n{keys}\n"


class Daemon:
    """One member: ``latentdmx run`` inside namespace `ns`."""

    def __init__(self, ns, config: Path, tmp: Path, name: str, duration_s: float) -> None:
        self.name = name
        home = tmp / f"{name}-home"
        home.mkdir(exist_ok=True)
        # the runtime folder (its control socket) under a short path of its own: a socket's
        # path has at most 107 bytes, and pytest-xdist's tmp_path is longer than pytest's
        run = public_dir(f"ldmx-{name}-")
        self.rec = tmp / f"{name}.txt"
        self.log_path = tmp / f"{name}.log"
        self.socket = run / "latentdmx" / "control.sock"
        self.env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(run),
                    "PYTHONUNBUFFERED": "1"}
        self.env.pop("LATENTDMX_FAKE_CLOCK", None)
        self.started = time.time()
        with open(self.log_path, "w") as log:
            self.proc = ns.popen([LATENTDMX, "run", "--config", str(config), "--duration",
                                  f"{duration_s:g}", "--record", str(self.rec)],
                                 env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def request(self, cmd: str, **args) -> dict:
        return ControlClient(self.socket, timeout=5.0).request(cmd, **args)

    def wait_playing(self, timeout_s: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log()}")
            try:
                st = self.request("status")
                if st.get("frames", 0) > 0:
                    return st
            except ControlError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not start: {self.log()}")

    def cli(self, *args: str) -> str:
        out = subprocess.run([LATENTDMX, *args], env=self.env, capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait(self, timeout_s: float = 60.0) -> int:
        return self.proc.wait(timeout=timeout_s)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def frames(self) -> dict[int, np.ndarray]:
        """frame index -> the DMX it played (all universes)."""
        frames, _, _ = read_show(self.rec)
        return dict(zip(self.stamps(), frames, strict=False))

    def stamps(self) -> dict[int, float]:
        return read_stamps(str(self.rec) + ".stamps")


def steady(frames: dict[int, np.ndarray], *, warm_s: float = 4.0,
           tail_s: float = 2.0) -> list[int]:
    """A member's frames after its own start (fade-in, heads on their way) and before its
    own end (fade-out, parking)."""
    ks = sorted(frames)
    return [k for k in ks if ks[0] + warm_s * FPS <= k <= ks[-1] - tail_s * FPS]


def differing(a: dict[int, np.ndarray], b: dict[int, np.ndarray], ks) -> list[int]:
    return [k for k in ks if not np.array_equal(a[k], b[k])]


def index_spread(stamps: list[dict[int, float]], lo: int, hi: int,
                 step_s: float = 0.005) -> np.ndarray:
    """For wall times on a grid across frames lo..hi that every member played: the largest
    minus the smallest frame index the members had sent by then."""
    firsts = [np.array(sorted(k for k in s if lo <= k <= hi)) for s in stamps]
    walls = [np.array([s[k] for k in f]) for s, f in zip(stamps, firsts, strict=True)]
    start = max(w[0] for w in walls) + 0.001
    end = min(w[-1] for w in walls)
    grid = np.arange(start, end, step_s)
    idx = [f[np.searchsorted(w, grid, side="right") - 1] for f, w in zip(firsts, walls,
                                                                        strict=True)]
    stack = np.stack(idx)
    return stack.max(axis=0) - stack.min(axis=0)


def group_frame(result: dict) -> int:
    """The frame a change takes effect, from its reply (``group_at``)."""
    m = re.search(r"frame (\d+)", result["group_at"])
    assert m, result
    return int(m.group(1))
