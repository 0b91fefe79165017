"""OSC end to end: a real python-osc client on loopback drives a running `latentdmx run`
daemon; each command's effect is read from the daemon's recorded DMX frames; feedback comes
back to the client; a sender off the allow-list (127.0.0.2) is ignored."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.udp_client import SimpleUDPClient

from pi_app.config import default_config_path, load_config
from pi_app.control import ControlClient
from pi_app.decode import Rig
from pi_app.errors import ControlError
from pi_app.looks import kelvin_rgb
from pi_app.patch import Patch
from pi_app.sim.record import read_show

REPO = Path(__file__).resolve().parents[1]
FPS = 40

pytestmark = pytest.mark.slow


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OscDaemon:
    def __init__(self, tmp_path: Path) -> None:
        self.port = _free_udp_port()
        self.config = tmp_path / "rig.toml"
        self.config.write_text(default_config_path().read_text() + f"""
[osc]
enabled = true
port = {self.port}
allow = ["127.0.0.1"]

[palettes.warm]
kelvin = 2700
""", encoding="utf-8")
        xdg = tmp_path / "xdg"
        xdg.mkdir(mode=0o700)
        self.socket = xdg / "latentdmx" / "control.sock"
        self.record = tmp_path / "show.txt"
        self.state = tmp_path / "state"
        env = {k: v for k, v in os.environ.items()
               if k not in ("RUNTIME_DIRECTORY", "NOTIFY_SOCKET", "LATENTDMX_SOCKET")}
        env.update(XDG_RUNTIME_DIR=str(xdg), STATE_DIRECTORY=str(self.state),
                   PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pi_app.cli", "run", "--config", str(self.config),
             "--duration", "60", "--record", str(self.record)],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def status(self) -> dict:
        return ControlClient(self.socket).request("status")

    def wait_for_frames(self, n: int, timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("daemon exited early:\n" + self.proc.stdout.read())
            try:
                st = self.status()
            except ControlError:
                st = {}
            if st.get("frames", 0) >= n:
                return st
            time.sleep(0.05)
        pytest.fail(f"daemon did not reach frame {n}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=20)
        return out


@pytest.fixture
def daemon(tmp_path):
    d = OscDaemon(tmp_path)
    yield d
    if d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def client(source: str = "127.0.0.1", port: int = 0) -> SimpleUDPClient:
    c = SimpleUDPClient("127.0.0.1", port)
    c._sock.bind((source, 0))          # the sender's address (python-osc binds on first send)
    return c


def replies(c: SimpleUDPClient, timeout_s: float = 1.0) -> dict[str, list]:
    out: dict[str, list] = {}
    for msg in c.get_messages(timeout_s):
        out[msg.address] = msg.params
    return out


def test_osc_tablet_drives_the_daemon(daemon):
    patch = Patch(load_config(daemon.config))
    u = patch.universes.index(1)
    slot = {(patch.fixtures[i].name, attr): s - 1
            for (_, s), (i, attr) in patch.slot_map().items()}
    light = sorted(s for (_, attr), s in slot.items()
                   if attr in ("dimmer", "red", "green", "blue", "white"))
    pars = [f"par-{k}" for k in range(1, 5)]
    heads = ("head-left", "head-right", "head-centre")
    tablet = client(port=daemon.port)

    def send(address: str, *args) -> tuple[int, int, dict]:
        """One OSC message; (frames before, frames after, feedback)."""
        before = daemon.status()["frames"]
        tablet.send_message(address, list(args))
        fb = replies(tablet, 0.6)
        return before, daemon.wait_for_frames(before + 2)["frames"], fb

    daemon.wait_for_frames(int(1.5 * FPS))
    marks = {}
    # dim: feedback on the same address; the light settles at 20 %
    marks["dim"] = send("/latentdmx/dim", 0.2)
    assert marks["dim"][2]["/latentdmx/dim"] == [pytest.approx(0.2)]   # OSC floats: 32 bit
    assert marks["dim"][2]["/latentdmx/blackout"] == [0]
    time.sleep(3.0)
    marks["dim1"] = send("/latentdmx/dim", 1.0)
    # pause: a push button sends 1 then 0; the 0 (release) does nothing
    marks["pause"] = send("/latentdmx/pause", 1.0)
    tablet.send_message("/latentdmx/pause", [0.0])
    assert daemon.status()["paused"] is True
    time.sleep(3.5)                                          # the heads finish moving
    marks["resume"] = send("/latentdmx/resume", 1.0)
    time.sleep(1.0)
    # blackout toggle: 1 = on ... 0 = off
    marks["blackout"] = send("/latentdmx/blackout", 1)
    time.sleep(2.5)
    marks["lights"] = send("/latentdmx/blackout", 0)
    time.sleep(1.0)
    # heads still: aim frozen, colour goes on
    marks["still"] = send("/latentdmx/still", 1)
    time.sleep(3.0)
    marks["moving"] = send("/latentdmx/still", 0)
    # palette: warm white only
    marks["warm"] = send("/latentdmx/palette", "warm")
    time.sleep(3.0)
    # presets: save the warm look, change, recall it (cross-faded)
    _, _, fb = send("/latentdmx/preset/save", "warm look")
    assert "/latentdmx/error" not in fb
    assert (daemon.state / "presets" / "warm look.json").exists()
    marks["none"] = send("/latentdmx/palette", "none")
    time.sleep(2.0)
    marks["recall"] = send("/latentdmx/preset/recall", "warm look", 1.0)
    assert marks["recall"][2]["/latentdmx/preset/recall"] == ["warm look"]
    time.sleep(3.0)
    # seed and tempo: feedback and status
    _, _, fb = send("/latentdmx/seed", 7.0)             # a number box sends a float
    assert fb["/latentdmx/seed"] == [7]
    _, _, fb = send("/latentdmx/tempo", 2.0)
    assert fb["/latentdmx/tempo"] == [2.0]
    # a bad value: one-line error back, nothing changes
    _, _, fb = send("/latentdmx/dim", 5.0)
    assert "0..1" in fb["/latentdmx/error"][0]
    # status: every field
    _, _, fb = send("/latentdmx/status")
    assert fb["/latentdmx/status/seed"] == [7] and fb["/latentdmx/status/preset"] == ["warm look"]
    # a change made elsewhere (the socket) is pushed to the tablet
    ControlClient(daemon.socket).request("dim", level=0.7)
    pushed = replies(tablet, 1.5)
    assert pushed.get("/latentdmx/dim") == [pytest.approx(0.7)]

    # a sender off the allow-list is ignored: no reply, no effect
    stranger = client("127.0.0.2", daemon.port)
    stranger.send_message("/latentdmx/blackout", [1])
    assert replies(stranger, 1.0) == {}
    assert daemon.status()["blackout"] is False
    end = daemon.status()["frames"]
    log = daemon.stop()
    assert "OSC: ignoring 127.0.0.2 (not in [osc] allow)" in log
    assert "osc 127.0.0.1:" in log and "dim level=0.2" in log       # logged, one line each

    frames, universes, times = read_show(daemon.record)
    assert universes == patch.universes
    f = frames[:, u].astype(int)
    emitted = Rig.from_patch(patch).decode(frames).colour.max(axis=(1, 2))   # per frame
    # `status`'s frames counts frame indices, late (skipped) frames too; the recording has
    # one entry per frame sent, at its nominal time (index / fps). So a frame count is found
    # in the recording by time, not by position: the two part at the first late frame.
    index = np.rint(times * FPS).astype(int)             # each recorded frame's index
    assert index[0] == 0 and index[-1] + 1 >= end

    def at(n: int) -> int:
        """Where the frames from index `n` on begin in the recording."""
        return int(np.searchsorted(index, n))

    def span(a: str, b: str, settle_s: float = 0.0, x: np.ndarray = f) -> np.ndarray:
        return x[at(marks[a][1] + int(settle_s * FPS)): at(marks[b][0])]

    # dim 0.2: the settled light is at most 20 %
    before = emitted[at(marks["dim"][0] - FPS): at(marks["dim"][0])]
    dimmed = span("dim", "dim1", 2.5, emitted)
    assert before.max() > 0.5 and dimmed.max() <= 0.2 + 0.01
    # pause: frames stand still once the heads have arrived
    paused = span("pause", "resume", 3.0)
    assert len(paused) > 10 and (paused == paused[0]).all()
    # blackout: dark; off again: light
    dark = span("blackout", "lights", 2.2)
    assert len(dark) > 5 and dark[:, light].max() == 0
    assert span("lights", "still", 0.8, emitted).max() > 0.1
    # heads still: pan/tilt bytes frozen, colours still move
    still = span("still", "moving", 0.1)
    for h in heads:
        aim = still[:, [slot[(h, "pan")], slot[(h, "tilt")]]]
        assert (aim == aim[0]).all()
    assert still[:, light].std(axis=0).max() > 1
    # warm palette: the pars' colour is the 2700 K ratio, no white emitter
    warm = kelvin_rgb(2700)
    for seg in (span("warm", "none", 2.5), f[at(marks["recall"][1] + 2 * FPS): at(end - FPS)]):
        for p in pars:
            rgbw = seg[:, [slot[(p, c)] for c in ("red", "green", "blue", "white")]]
            lit = rgbw[:, 0] > 30       # bright enough for the ratio to be read in 8 bits
            assert lit.sum() > 5 and (rgbw[:, 3] == 0).all()
            np.testing.assert_allclose(rgbw[lit, 1] / rgbw[lit, 0], warm[1], atol=0.03)
    unpal = span("none", "recall", 1.5)
    pr = np.concatenate([unpal[:, [slot[(p, "blue")], slot[(p, "white")]]] for p in pars])
    assert pr.max() > 30                                   # without it: blue or white again
