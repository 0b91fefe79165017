"""Real `latentdmx` processes for the tests: a rig config on a test olad, the daemon started
as a user would (``python -m pi_app.cli run ...``), with the environment of a hand-started
daemon or of the systemd service."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pi_app.config import default_config_path

REPO = Path(__file__).resolve().parents[1]


def rig_text(ola_port: int | None = None, *, replace: dict[str, str] | None = None) -> str:
    text = default_config_path().read_text()
    if ola_port is not None:
        text = text.replace("port = 9010 ", f"port = {ola_port} ", 1)
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def public_dir(prefix: str = "latentdmx-test-", ram: bool = False) -> Path:
    """A fresh directory other users may read (pytest's tmp_path is private to root);
    `ram`: on a tmpfs (/dev/shm), like /run/latentdmx on a Pi."""
    base = "/dev/shm" if ram and os.path.isdir("/dev/shm") else None
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    d.chmod(0o755)
    _made.append(d)
    return d


_made: list[Path] = []


@atexit.register
def _clean() -> None:
    for d in _made:
        shutil.rmtree(d, ignore_errors=True)


def env_for(runtime: Path | None = None, xdg: Path | None = None, **extra: str) -> dict:
    """A hand-started daemon's environment (`xdg`), or the service's (`runtime`)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR", "NOTIFY_SOCKET", "LATENTDMX_SOCKET",
                        "INVOCATION_ID")}
    env["PYTHONPATH"] = str(REPO)
    if runtime is not None:
        env["RUNTIME_DIRECTORY"] = str(runtime)
    if xdg is not None:
        env["XDG_RUNTIME_DIR"] = str(xdg)
    env.update(extra)
    return env


def interruptible() -> None:
    """A `preexec_fn` for a process a test stops with SIGINT (as Ctrl-C): SIGINT back to its
    default. pytest-xdist's workers ignore SIGINT, and an ignored signal stays ignored across
    exec, so a Python child would never see its KeyboardInterrupt (and an OLA tool never
    stop)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def latentdmx(*args: str, env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pi_app.cli", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def run_cli(*args: str, env: dict, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pi_app.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout_s)


def wait_for(predicate, timeout_s: float, what: str, step_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(step_s)


def stop(proc: subprocess.Popen, timeout_s: float = 30.0) -> str:
    """SIGTERM, wait, return its output (SIGKILL if it does not stop)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    return out or ""
