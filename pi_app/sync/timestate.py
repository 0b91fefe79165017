"""Is this machine's clock synchronised, and how well? (for `status`, `doctor`, the log)

Asked in this order, the first that answers wins:

1. **the kernel** (``adjtimex`` with no change, read-only): chronyd, ntpd and
   systemd-timesyncd all clear ``STA_UNSYNC`` once they discipline the clock, and chronyd and
   ntpd keep ``esterror`` (the estimated error). Under the service, ``ProtectClock=`` forbids
   even the read, so then:
2. **chrony** (``chronyc -n tracking``): leap status, offset, root delay and dispersion;
3. **systemd** (``timedatectl show``): NTPSynchronized yes/no, no figure.

Nothing here changes the clock.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from dataclasses import dataclass

TIME_ERROR = 5
STA_UNSYNC = 0x0040


@dataclass(frozen=True)
class ClockState:
    synchronised: bool | None          # None: nobody could say
    source: str                        # kernel | chrony | timedatectl | unknown
    error_s: float | None = None       # estimated error bound, when known
    detail: str = ""

    def text(self) -> str:
        if self.synchronised is None:
            return f"unknown ({self.detail})" if self.detail else "unknown"
        word = "synchronised" if self.synchronised else "NOT synchronised"
        err = f", est. error {self.error_s * 1000:.2f} ms" if self.error_s is not None else ""
        return f"{word} ({self.source}{err})"


class _Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("constant", ctypes.c_long),
                ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long),
                ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long),
                ("shift", ctypes.c_int), ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long),
                ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long),
                ("tai", ctypes.c_int), ("_pad", ctypes.c_int * 11)]


def kernel_state() -> ClockState | None:
    """The kernel's own idea (adjtimex, read-only); None when not allowed or not Linux."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        tx = _Timex()                                   # modes = 0: read only
        ret = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if ret < 0:
        return None                                     # EPERM under ProtectClock=
    unsync = ret == TIME_ERROR or bool(tx.status & STA_UNSYNC)
    if unsync:
        return ClockState(False, "kernel", None, "no time daemon has synchronised it")
    return ClockState(True, "kernel", tx.esterror / 1e6 if tx.esterror >= 0 else None)


_CHRONY = {"system": re.compile(r"^System time\s*:\s*([\d.]+) seconds (slow|fast)", re.M),
           "delay": re.compile(r"^Root delay\s*:\s*([\d.]+)", re.M),
           "dispersion": re.compile(r"^Root dispersion\s*:\s*([\d.]+)", re.M),
           "leap": re.compile(r"^Leap status\s*:\s*(.+)$", re.M),
           "ref": re.compile(r"^Reference ID\s*:\s*(\S+)(?:\s*\((.*)\))?", re.M)}


def parse_chrony_tracking(text: str) -> ClockState | None:
    """`chronyc tracking` -> state; the error bound is |offset| + root dispersion + delay/2."""
    leap = _CHRONY["leap"].search(text)
    if leap is None:
        return None
    status = leap.group(1).strip()
    ref = _CHRONY["ref"].search(text)
    source = f"chrony, {ref.group(2) or ref.group(1)}" if ref else "chrony"
    if status.lower().startswith("not synchronised"):
        return ClockState(False, "chrony", None, "chrony has no source yet")
    sys_m, delay, disp = (_CHRONY[k].search(text) for k in ("system", "delay", "dispersion"))
    err = None
    if sys_m and delay and disp:
        err = float(sys_m.group(1)) + float(disp.group(1)) + float(delay.group(1)) / 2
    return ClockState(True, source, err, status)


def chrony_state() -> ClockState | None:
    exe = shutil.which("chronyc")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-n", "tracking"], capture_output=True, text=True,
                             timeout=2.0)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_chrony_tracking(out.stdout) if out.returncode == 0 else None


def timedatectl_state() -> ClockState | None:
    exe = shutil.which("timedatectl")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "show", "-p", "NTPSynchronized", "--value"],
                             capture_output=True, text=True, timeout=2.0)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = out.stdout.strip()
    if out.returncode != 0 or value not in ("yes", "no"):
        return None
    return ClockState(value == "yes", "timedatectl")


def read_clock_state() -> ClockState:
    for ask in (kernel_state, chrony_state, timedatectl_state):
        state = ask()
        if state is not None:
            return state
    return ClockState(None, "unknown", None, "neither adjtimex, chronyc nor timedatectl "
                                             "answered")
