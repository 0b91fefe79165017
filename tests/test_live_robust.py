"""A running daemon (`latentdmx run --output sim`, a real process) never stops for a bad
reload or a bad live command: each is one log line or one CLI error, the show goes on, and
every change the operator makes is logged with who made it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.fuzz_inputs import tiny_model
from pi_app.cli import main
from pi_app.config import default_config_path
from pi_app.control import ControlClient

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


class Daemon:
    def __init__(self, tmp_path: Path) -> None:
        self.config = tmp_path / "rig.toml"
        self.text = default_config_path().read_text()
        self.config.write_text(self.text)
        self.socket = tmp_path / "latentdmx" / "control.sock"
        self.log = tmp_path / "daemon.log"
        env = {k: v for k, v in os.environ.items() if k not in ("RUNTIME_DIRECTORY",
                                                                  "NOTIFY_SOCKET")}
        env.update(XDG_RUNTIME_DIR=str(tmp_path), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run",
                                          "--config", str(self.config), "--output", "sim"],
                                         env=env, stdout=fh, stderr=fh)

    def status(self, timeout_s: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return ControlClient(self.socket).request("status")
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.1)

    def alive_and_playing(self) -> None:
        a = self.status()["frames"]
        time.sleep(0.3)
        assert self.proc.poll() is None, self.log.read_text()
        assert self.status()["frames"] > a

    def reload(self, text: str) -> None:
        n = self.log.read_text().count("reload rejected")
        self.config.write_text(text)
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while self.log.read_text().count("reload rejected") == n:
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def cli(self, *args: str):
        return CliRunner().invoke(main, [*args, "--socket", str(self.socket)])


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path)
    d.status()
    yield d
    if d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def test_bad_reloads_and_models_never_stop_the_show(daemon, tmp_path):
    text = daemon.text
    bad = {
        "5000-digit integer": text.replace("seed = 0 ", "seed = " + "9" * 5000 + " "),
        "3000-deep array": text.replace("tempo = 1.0 ", "tempo = " + "[" * 3000 + "]" * 3000
                                        + " "),
        "5000-character model": text.replace('model = "nat-aurora"', f'model = "{"m" * 5000}"'),
        "a model lacking x": text.replace('model = "nat-aurora"', 'model = "{}"'.format(
            tiny_model(tmp_path / "no-x", fields="yrgbw"))),
    }
    for what, config in bad.items():
        daemon.reload(config)
        daemon.alive_and_playing()
        assert daemon.proc.poll() is None, what
    rejected = [ln for ln in daemon.log.read_text().splitlines() if "reload rejected" in ln]
    assert len(rejected) == len(bad)
    assert "Traceback" not in daemon.log.read_text()

    for folder in (tiny_model(tmp_path / "no-x-model", fields="yrgbw"),
                   tiny_model(tmp_path / "grey", kind="image", channels=1),
                   tiny_model(tmp_path / "rgbw", kind="image", channels=4)):
        res = daemon.cli("model", str(folder))
        assert res.exit_code == 2, res.output
        assert len(res.output.strip().splitlines()) == 1 and "model" in res.output
        daemon.alive_and_playing()
    assert daemon.status()["model"] == "nat-aurora"

    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(30) == 0
    assert "Traceback" not in daemon.log.read_text()


def raw(path: Path, request: dict) -> dict:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(json.dumps(request).encode() + b"\n")
        return json.loads(s.makefile().readline())


def test_booleans_are_strict_and_changes_are_logged(daemon):
    for on in ("false", 0, 1, "true", [], {}):
        reply = raw(daemon.socket, {"cmd": "blackout", "args": {"on": on}})
        assert reply["ok"] is False and "true or false" in reply["error"], (on, reply)
    assert daemon.status()["blackout"] is False
    assert raw(daemon.socket, {"cmd": "blackout", "args": {"on": False}})["ok"] is True
    for args in (("dim", "0.5"), ("seed", "3"), ("tempo", "2"), ("model", "iae-glyphs"),
                 ("blackout",), ("resume",)):
        assert daemon.cli(*args).exit_code == 0
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(30) == 0
    log = daemon.log.read_text()
    who = f"socket (pid {os.getpid()}, uid {os.getuid()})"
    for line in ("blackout on=False\n", "dim level=0.5\n", "seed seed=3\n",
                 "tempo tempo=2.0\n", "model name='iae-glyphs'\n", "blackout on=True\n",
                 "resume \n"):
        assert f"{who}: {line}" in log, (line, [ln for ln in log.splitlines() if who in ln])
