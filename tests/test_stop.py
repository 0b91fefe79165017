"""Lights left on (issue 11, part 4): after any way the daemon ends, the rig goes dark within
seconds. Tested as systemd runs the unit: the daemon as a real process on a real olad (or a
real pseudo-terminal), a real SIGTERM and SIGKILL at the unit's own TimeoutStopSec, then the
unit's own ExecStopPost= command.

Before (58fc28d): `fade_out_s` up to 3600 was accepted but TimeoutStopSec=15s killed the
daemon first, and nothing ran after a SIGKILL: olad kept sending the last lit frame.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from flash_counter import count, rig_from_config
from ola_capture import OlaCapture
from procs import REPO, env_for, public_dir, rig_text, run_cli, stop, wait_for

from pi_app.config import load_config
from pi_app.errors import ConfigError
from pi_app.patch import Patch
from pi_app.scene import N_ATTRS

pytest_plugins = ["tests.olad_fixture"]

UNIT = REPO / "systemd" / "latentdmx.service"
BASE = load_config(None)
PATCH = Patch(BASE)
LIGHT = np.array([f.address - 1 + j for f in PATCH.fixtures
                  for j, ch in enumerate(f.mode.channels)
                  if ch.attr in ("dimmer", "intensity", "red", "green", "blue", "white")])
PARK_GRACE_S = 5.0
HELD = np.array([f.address - 1 + j for f in PATCH.fixtures
                 for j, ch in enumerate(f.mode.channels) if ch.attr == "hold"])
AIM = np.array([f.address - 1 + j for f in PATCH.fixtures
                for j, ch in enumerate(f.mode.channels) if ch.attr.startswith(("pan", "tilt"))])


def unit_value(key: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(rf"^{key}=(.*)$", UNIT.read_text(), re.M)]


def unit_seconds(key: str) -> float:
    (value,) = unit_value(key)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|min)?", value)
    assert m, f"{key}={value}: not a plain number of seconds or minutes"
    return float(m.group(1)) * (60 if m.group(2) == "min" else 1)


def unit_argv(line: str, config: Path) -> list[str]:
    """A command line of the unit, pointed at this checkout and the test's config."""
    argv = shlex.split(line.lstrip("-+!@"))
    assert argv[0] == "/opt/latentdmx/venv/bin/latentdmx", argv
    argv = [sys.executable, "-m", "pi_app.cli", *argv[1:]]
    argv[argv.index("--config") + 1] = str(config)
    return argv


def exec_start(config: Path, env: dict) -> subprocess.Popen:
    """The unit's ExecStart= (the output comes from the config, as on the Pi)."""
    (line,) = unit_value("ExecStart")
    return subprocess.Popen(unit_argv(line, config), env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def exec_stop_post(config: Path, env: dict) -> list[str]:
    """The unit's ExecStopPost= commands, run as systemd would after the daemon ended."""
    said = []
    for line in unit_value("ExecStopPost"):
        r = subprocess.run(unit_argv(line, config), env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=unit_seconds("TimeoutStopSec"))
        assert r.returncode == 0, r.stdout + r.stderr
        said.append(r.stdout.strip())
    assert said, "the unit has no ExecStopPost="
    return said


def rig_on(kind: str, **kw) -> str:
    return rig_text(**kw).replace('kind = "sim" ', f'kind = "{kind}" ', 1)


# -- the unit and the config agree ------------------------------------------------------------
def test_the_unit_gives_a_stop_the_time_the_config_allows():
    from pi_app.config import MAX_FADE_OUT_S, PARK_GRACE_S, STOP_BUDGET_S

    assert unit_seconds("TimeoutStopSec") >= STOP_BUDGET_S
    assert STOP_BUDGET_S >= MAX_FADE_OUT_S + PARK_GRACE_S + 5
    start = shlex.split(unit_value("ExecStart")[0])
    (post,) = unit_value("ExecStopPost")
    post_argv = shlex.split(post)
    assert post_argv[:2] == [start[0], "darken"]          # the same install, the same rig
    assert post_argv[post_argv.index("--config") + 1] == start[start.index("--config") + 1]


def test_a_fade_out_longer_than_the_unit_allows_is_refused():
    from pi_app.config import MAX_FADE_OUT_S

    text = rig_text().replace("fade_out_s = 1.0 ", f"fade_out_s = {MAX_FADE_OUT_S + 1:g} ")
    with pytest.raises(ConfigError, match="TimeoutStopSec"):
        from pi_app.config import parse_config
        parse_config(text, "rig.toml")


# -- with a real olad -----------------------------------------------------------------------
def lit(frame: np.ndarray) -> bool:
    return bool(frame[LIGHT].any())


def start_lit_show(olad, cfg: Path, env: dict):
    show = exec_start(cfg, env)
    wait_for(lambda: show.poll() is not None or (lit(olad.get_dmx()) and
                                                  olad.get_dmx()[LIGHT].max() > 60),
             30, "a lit frame in olad")
    assert show.poll() is None, stop(show)
    return show


@pytest.mark.slow
def test_sigkill_then_exec_stop_post_leaves_the_rig_dark(olad):
    d = public_dir(ram=True)                           # /run/latentdmx: a tmpfs
    cfg = d / "rig.toml"
    cfg.write_text(rig_on("ola", ola_port=olad.rpc_port))
    env = env_for(runtime=d)
    rig = rig_from_config(cfg)
    with OlaCapture(olad.rpc_port, [1]) as cap:
        show = start_lit_show(olad, cfg, env)
        time.sleep(1.0)
        show.send_signal(signal.SIGKILL)               # the OOM killer, the watchdog's abort
        show.wait()
        killed = olad.get_dmx()
        time.sleep(0.5)
        assert lit(olad.get_dmx()), "olad holds the last lit frame"
        t0 = time.monotonic()
        said = exec_stop_post(cfg, env)
        dark = olad.wait_dmx(lambda f: not lit(f), 5.0)
        took = time.monotonic() - t0
        time.sleep(0.5)
    assert not lit(dark) and took < 5.0, said
    np.testing.assert_array_equal(dark[AIM], killed[AIM])       # heads did not move
    np.testing.assert_array_equal(dark[HELD], killed[HELD])     # held channels held
    assert "blackout sent to ola:127.0.0.1:" in said[0] and "olad's current frames" in said[0]
    c = count(rig, cap.frames)
    print(c.summary())                                  # the figures, with `pytest -s`
    assert max(c.max_per_s().values()) <= 3.0, c.summary()


@pytest.mark.slow
def test_a_long_fade_out_ends_before_the_unit_kills_it(olad):
    """fade_out_s = 20, SIGTERM, SIGKILL at the unit's TimeoutStopSec if still running (what
    systemd does), then ExecStopPost: the daemon finished its fade by itself and the rig is
    dark."""
    d = public_dir(ram=True)
    cfg = d / "rig.toml"
    cfg.write_text(rig_on("ola", ola_port=olad.rpc_port,
                          replace={"fade_out_s = 1.0 ": "fade_out_s = 20 "}))
    env = env_for(runtime=d)
    rig = rig_from_config(cfg)
    timeout_s = unit_seconds("TimeoutStopSec")
    with OlaCapture(olad.rpc_port, [1]) as cap:
        show = start_lit_show(olad, cfg, env)
        time.sleep(1.0)
        t0 = time.monotonic()
        show.send_signal(signal.SIGTERM)
        try:
            show.wait(timeout=timeout_s)
            killed = False
        except subprocess.TimeoutExpired:
            show.send_signal(signal.SIGKILL)
            show.wait()
            killed = True
        stopped_s = time.monotonic() - t0
        assert not killed and show.returncode == 0, \
            f"killed after {stopped_s:.1f} s, olad holds a lit frame: {lit(olad.get_dmx())}"
        exec_stop_post(cfg, env)
        final = olad.wait_dmx(lambda f: not lit(f), 5.0)
    assert 19.0 <= stopped_s <= 20.0 + PARK_GRACE_S + 5.0
    assert not lit(final)
    c = count(rig, cap.frames)
    print(c.summary())                                  # the figures, with `pytest -s`
    assert max(c.max_per_s().values()) <= 3.0, c.summary()


@pytest.mark.slow
def test_darken_leaves_a_running_show_alone(olad):
    d = public_dir(ram=True)
    cfg = d / "rig.toml"
    cfg.write_text(rig_on("ola", ola_port=olad.rpc_port))
    env = env_for(runtime=d)
    show = start_lit_show(olad, cfg, env)
    try:
        r = run_cli("darken", "--config", str(cfg), env=env_for(xdg=public_dir()))
        time.sleep(0.5)
        assert lit(olad.get_dmx())
    finally:
        stop(show)
    assert r.returncode == 0 and "nothing to do" in r.stdout and f"pid {show.pid}" in r.stdout


def test_darken_with_olad_down_says_so(olad):
    d = public_dir()
    cfg = d / "rig.toml"
    cfg.write_text(rig_text(olad.rpc_port))
    olad.stop()
    r = run_cli("darken", "--config", str(cfg), "--output", "ola", env=env_for(xdg=d))
    assert r.returncode == 0 and "olad is not running" in r.stdout, r.stdout + r.stderr


# -- with a UART (a real pseudo-terminal) ------------------------------------------------------
class PtyReader:
    def __init__(self) -> None:
        import threading

        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)          # held by nobody but the program under test (it checks)
        self.data = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        import select

        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if r:
                try:
                    self.data += os.read(self.master, 65536)
                except OSError:
                    time.sleep(0.05)

    def frames(self, size: int) -> np.ndarray:
        n = len(self.data) // size
        return np.frombuffer(bytes(self.data[:n * size]), np.uint8).reshape(n, size)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)


@pytest.mark.slow
def test_sigkill_on_the_uart_then_exec_stop_post_leaves_the_rig_dark():
    """A UART falls silent when the daemon dies, and fixtures hold the last frame they got:
    ExecStopPost sends the blackout, with pan/tilt from the show's last frames (kept in RAM,
    in its runtime directory)."""
    pty = PtyReader()
    d = public_dir(ram=True)
    cfg = d / "rig.toml"
    cfg.write_text(rig_on("uart", replace={'device = "/dev/serial0"': f'device = "{pty.path}"',
                                           "driver_enable_gpio = 18":
                                           "driver_enable_gpio = -1"}))
    env = env_for(runtime=d)
    size = 1 + 56                                   # start code + the demo rig's slots
    try:
        show = exec_start(cfg, env)
        wait_for(lambda: show.poll() is not None or (
            len(pty.frames(size)) and pty.frames(size)[-1][1:][LIGHT].max() > 60), 30,
            "a lit frame on the wire")
        assert show.poll() is None, stop(show)
        show.send_signal(signal.SIGKILL)
        show.wait()
        time.sleep(0.3)
        before = pty.frames(size)
        assert before[-1][1:][LIGHT].any(), "the last frame on the wire was lit"
        assert not [p for p in d.iterdir() if p.suffix == ".part"]
        said = exec_stop_post(cfg, env)
        time.sleep(0.5)
        after = pty.frames(size)[len(before):]
    finally:
        pty.close()
    assert len(after) >= 3, said
    last = after[-1][1:]
    assert not last[LIGHT].any()
    # heads stay put: the show's last frame is at most one frame ahead of the wire's
    for f in PATCH.fixtures:
        for axis, full in (("pan", f.profile.pan_deg), ("tilt", f.profile.tilt_deg)):
            chans = [c.attr for c in f.mode.channels]
            if axis not in chans:
                continue
            k = f.address - 1 + chans.index(axis)
            fine = f.address - 1 + chans.index(axis + "_fine") if axis + "_fine" in chans \
                else None

            def deg(frame, k=k, fine=fine, full=full):
                v = int(frame[k]) * 256 + (int(frame[fine]) if fine is not None else 0)
                return v / (65535 if fine is not None else 65280) * full

            assert abs(deg(last) - deg(before[-1][1:])) <= full / 3 / 40 + 0.5, \
                (f.name, axis, said, sorted(p.name for p in d.iterdir()))
    np.testing.assert_array_equal(last[HELD], before[-1][1:][HELD])
    assert "the show's last frames" in said[0]
    assert (after[:, 0] == 0).all()                                   # start code


def test_last_frames_are_kept_in_ram_only(monkeypatch):
    """The show keeps its last frames for `darken` only on a RAM file system: the daemon
    never writes to the SD card while it runs."""
    from pi_app import laststate

    disk = public_dir()                                  # /tmp here: not a tmpfs
    ram = public_dir(ram=True)
    targets = ("uart:/dev/ttyAMA0",)
    if laststate.fs_type(disk) in ("tmpfs", "ramfs"):
        pytest.skip(f"{disk} is in RAM on this machine")
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(disk))
    assert laststate.LastFramesWriter.open(targets, PATCH) is None
    assert list(disk.iterdir()) == []
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(ram))
    w = laststate.LastFramesWriter.open(targets, PATCH)
    assert w is not None
    frames = PATCH.frames(np.full((len(PATCH), N_ATTRS), 0.6, np.float32))
    w.write(frames)
    back = laststate.read(laststate.state_path(targets))
    w.close()
    assert back is not None and back.pid == os.getpid() and back.targets == targets
    np.testing.assert_array_equal(back.frames[1], frames[1])
    dark = back.dark()[1]
    assert not dark[LIGHT].any() and (dark[AIM] == frames[1][AIM]).all()


@pytest.mark.slow
def test_doctor_sees_a_lit_frame_nobody_drives(olad):
    """After a SIGKILL without the service (a daemon started by hand), doctor says the rig
    was left on and how to darken it; after `darken` it is dark."""
    d = public_dir()
    cfg = d / "rig.toml"
    cfg.write_text(rig_on("ola", ola_port=olad.rpc_port))
    env = env_for(xdg=d)
    show = start_lit_show(olad, cfg, env)
    show.send_signal(signal.SIGKILL)
    show.wait()
    left = run_cli("doctor", "--config", str(cfg), env=env)
    r = run_cli("darken", "--config", str(cfg), env=env)
    after = run_cli("doctor", "--config", str(cfg), env=env)
    assert left.returncode == 1 and "holds a lit frame" in left.stdout, left.stdout
    assert f"latentdmx darken --config {cfg}" in left.stdout
    assert r.returncode == 0 and "blackout sent" in r.stdout
    assert after.returncode == 0, after.stdout
    assert not lit(olad.get_dmx())
