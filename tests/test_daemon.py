"""The daemon as systemd runs it: READY after the first frame, watchdog pings from the frame
loop, SIGHUP reloads the config (a bad one is rejected and the show goes on), SIGTERM stops
with a fade-out and a dark last frame, exit 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pi_app.config import default_config_path
from pi_app.control import ControlClient

REPO = Path(__file__).resolve().parents[1]


def start(tmp_path: Path, config: Path, notify: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("RUNTIME_DIRECTORY",
                                                              "NOTIFY_SOCKET")}
    env.update(XDG_RUNTIME_DIR=str(tmp_path), PYTHONPATH=str(REPO))
    if notify:
        env.update(NOTIFY_SOCKET=notify, WATCHDOG_USEC="400000", WATCHDOG_PID="")
    return subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--config", str(config),
                             "--output", "sim"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def status(tmp_path: Path, timeout_s: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ControlClient(tmp_path / "latentdmx" / "control.sock").request("status")
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.slow
def test_notify_ready_and_watchdog(tmp_path):
    addr = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(20)
    config = tmp_path / "rig.toml"
    config.write_text(default_config_path().read_text())
    proc = start(tmp_path, config, notify=addr)
    try:
        msgs: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum("WATCHDOG=1" in m for m in msgs) < 3:
            msgs.append(sock.recv(4096).decode())
        ready = [i for i, m in enumerate(msgs) if "READY=1" in m]
        pings = [i for i, m in enumerate(msgs) if "WATCHDOG=1" in m]
        assert ready and len(pings) >= 3 and ready[0] <= pings[0]
        assert status(tmp_path)["frames"] >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    rest = []
    sock.settimeout(0.5)
    try:
        while True:
            rest.append(sock.recv(4096).decode())
    except OSError:
        pass
    assert any("STOPPING=1" in m for m in msgs + rest)


@pytest.mark.slow
def test_sighup_reload_good_and_bad(tmp_path):
    config = tmp_path / "rig.toml"
    text = default_config_path().read_text()
    config.write_text(text)
    proc = start(tmp_path, config)
    try:
        assert status(tmp_path)["tempo"] == 1.0
        config.write_text(text.replace("tempo = 1.0 ", "tempo = 2.5 "))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while status(tmp_path)["tempo"] != 2.5:
            assert time.monotonic() < deadline, "good config not applied"
            time.sleep(0.1)
        config.write_text(text.replace("fps = 40", "fps = 400"))      # bad: rejected
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        before = status(tmp_path)
        time.sleep(0.5)
        after = status(tmp_path)
        assert after["frames"] > before["frames"] and after["tempo"] == 2.5
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "reload rejected" in out and "fps" in out and "Traceback" not in out


@pytest.mark.slow
def test_sighup_restart_only_changes_are_rejected(tmp_path):
    """Moving a fixture to another universe needs a restart: rejected, the show goes on."""
    config = tmp_path / "rig.toml"
    text = default_config_path().read_text()
    config.write_text(text)
    proc = start(tmp_path, config)
    try:
        assert status(tmp_path)["seed"] == 0
        moved = text.rsplit("universe = 1", 1)
        config.write_text("universe = 2".join(moved).replace("seed = 0 ", "seed = 5 "))
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        before = status(tmp_path)
        assert before["universes"] == [1] and before["seed"] == 0   # nothing applied
        config.write_text(text.replace("seed = 0 ", "seed = 5 "))      # live change: applied
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while status(tmp_path)["seed"] != 5:
            assert time.monotonic() < deadline, "seed not applied"
            time.sleep(0.1)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "changes to fixtures need a restart" in out and "Traceback" not in out
    assert "reloaded" in out and "seed 5" in out
