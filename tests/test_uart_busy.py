"""`run --output uart` and `doctor` agree on a busy serial port: a real pseudo-terminal held
open by a real other process — with TIOCEXCL and no lock (the issue's case: root opens through
TIOCEXCL and pyserial's flock finds no lock, so the show played to it, exit 0, while doctor
said "busy"), with a plain open, and with pyserial's own lock. Both refuse with the same one
line naming the holder and the fix; once it is gone, both say the port is usable and the show
plays onto the wire."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT = (REPO / "pi_app" / "data" / "default.toml").read_text()

HOLDERS = {
    # open, TIOCEXCL ("exclusive" for everyone but root), no lock
    "tiocexcl": "import fcntl, termios; fcntl.ioctl(fd, termios.TIOCEXCL)",
    # just open, as `cat` or a forgotten terminal program would
    "plain": "pass",
    # pyserial's advisory lock, as another LatentDMX or minicom-like tool takes
    "flock": "import fcntl; fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)",
}


class Wire:
    """A pty whose master side is drained into `data`; the test keeps no slave fd open."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        self._slave: int | None = slave     # closed once the holder has the port
        self.data = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            if select.select([self.master], [], [], 0.05)[0]:
                try:
                    self.data += os.read(self.master, 65536)
                except OSError:              # EIO while no process has the slave open
                    self._stop.wait(0.01)

    def release_slave(self) -> None:
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.release_slave()
        os.close(self.master)


@pytest.fixture
def wire():
    w = Wire()
    yield w
    w.close()


def hold(path: str, how: str) -> subprocess.Popen:
    code = (f"import os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY); "
            f"{HOLDERS[how]}; print('ready', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, path], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def rig(tmp_path: Path, device: str) -> str:
    path = tmp_path / "rig.toml"
    path.write_text(DEFAULT.replace('device = "/dev/serial0"', f'device = "{device}"', 1))
    return str(path)


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATENTDMX_")}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)          # its own control socket folder
    return subprocess.run([sys.executable, "-m", "pi_app.cli", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=60, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("how", list(HOLDERS))
def test_run_and_doctor_agree_on_a_port_held_by_another_process(tmp_path, wire, how):
    holder = hold(wire.path, how)
    wire.release_slave()                             # only the holder has the port now
    try:
        config = rig(tmp_path, wire.path)
        run = cli(tmp_path, "run", "--output", "uart", "--config", config, "--duration", "2")
        doctor = cli(tmp_path, "doctor", "--output", "uart", "--config", config)
    finally:
        holder.kill()
        holder.wait()
    busy = f"serial port {wire.path} is busy: open in "
    assert run.returncode == 2, run.stdout + run.stderr
    err = [x for x in run.stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and "Traceback" not in run.stderr, run.stderr
    assert err[0].startswith(f"error: output.uart.device: {busy}"), err
    assert f"(pid {holder.pid})" in err[0]
    assert f"— stop that program (`sudo fuser -v {wire.path}` shows it), then start again" \
        in err[0]
    assert not wire.data                             # not one byte went to the held port
    # doctor: the same finding, word for word
    assert doctor.returncode == 1, doctor.stdout
    what, fix = err[0].split(": ", 2)[2].split(" — ", 1)
    assert f"FAIL  {what}" in doctor.stdout
    assert f"fix: {fix}" in doctor.stdout


@pytest.mark.slow
def test_run_and_doctor_agree_on_a_free_port(tmp_path, wire):
    wire.release_slave()
    config = rig(tmp_path, wire.path)
    doctor = cli(tmp_path, "doctor", "--output", "uart", "--config", config)
    assert doctor.returncode == 0 and "free and usable" in doctor.stdout, doctor.stdout
    run = cli(tmp_path, "run", "--output", "uart", "--config", config, "--duration", "1")
    assert run.returncode == 0, run.stderr
    assert len(wire.data) > 57                      # start code + 56 slots, many times


def test_the_holder_is_named_for_what_it_is(tmp_path):
    from pi_app.outputs.uart import Holder, busy_error

    olad = busy_error("/dev/ttyAMA0", [Holder(7, "olad", ("/usr/bin/olad",))])
    assert olad.what == "serial port /dev/ttyAMA0 is busy: open in olad (pid 7)"
    assert "use --output ola" in (olad.fix or "")
    show = busy_error("/dev/ttyAMA0", [Holder(9, "latentdmx", ("/opt/latentdmx/venv/bin/"
                                                                "python", "/usr/local/bin/"
                                                                "latentdmx", "run"))])
    assert "sudo systemctl stop latentdmx" in (show.fix or "")
    getty = busy_error("/dev/ttyAMA0", [Holder(5, "agetty", ("/sbin/agetty", "ttyAMA0"))])
    assert "masks serial-getty" in (getty.fix or "")
    unknown = busy_error("/dev/ttyAMA0", [])
    assert "another program (`sudo fuser -v /dev/ttyAMA0` shows which)" in unknown.what
