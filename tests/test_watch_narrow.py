"""`latentdmx watch` in a narrow terminal: a real pseudo-terminal 60 columns wide."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def watch_in_pty(columns: int, rows: int = 40) -> list[str]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", PYTHONPATH=str(ROOT), LATENTDMX_SOCKET="/nonexistent")
    proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "watch", "--local",
                             "--duration", "1.5", "--rate", "5"], stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:                       # the child closed its side
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=30)
    os.close(master)
    assert proc.returncode == 0, out.decode(errors="replace")
    text = ANSI.sub("", out.decode("utf-8", "replace")).replace("\r", "\n")
    return [ln for ln in text.split("\n") if ln.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("columns", [60, 120])
def test_watch_fits_the_terminal(columns):
    lines = watch_in_pty(columns)
    assert max(len(ln.rstrip()) for ln in lines) <= columns
    heads = [ln for ln in lines if "fixture" in ln]
    assert heads and all(all(c in h for c in ("light", "dimmer", "pan", "tilt"))
                         for h in heads), heads[:2]       # no column squeezed out
    assert any("°" in ln for ln in lines)                 # pan/tilt values shown
    names = " ".join(lines)
    assert all(n in names for n in ("par-1", "par-2", "par-3", "par-4"))
