"""DMX512 straight out of the Pi's UART (``--output uart``): pyserial + an RS-485 HAT.

The line: 250 000 baud, 8 data bits, no parity, 2 stop bits. Each packet is

    BREAK (>= break_us, default 176 us) | MAB (>= mab_us, default 16 us) | start code 0 | slots

with the slots running up to the last patched one (`slots=`; all 512 with
``full_universe = true``). One slot is 11 bits = 44 us, so a full packet is ~22.7 ms on the
wire (~44 fps at best); the UART defaults to 40 fps.

How the BREAK is made, and why: ``break_condition`` on (TIOCSBRK), a busy-wait on
`time.perf_counter` for `break_us`, ``break_condition`` off (TIOCCBRK), a busy-wait for
`mab_us`, then the write. Not ``tcsendbreak``: on Linux it holds the line for 250 ms or more.
Not the "lower baud rate, send a zero byte" trick: it needs two termios reconfigurations per
packet (the PL011 must be idle for each, and pyserial's custom-baud path costs several
syscalls each time), and its BREAK/MAB lengths are tied to whatever baud rates the UART clock
can make. With the ioctl pair the lengths are timed by us, measured from *after* the "on"
call returns to *before* the "off" call, so a late wake-up can only make a BREAK or MAB
longer — legal — never shorter, and no BREAK is ever skipped (unlike OLA's uartdmx plugin
under load, OLA issue #1798). The busy-waits cost ~0.2 ms of CPU per packet.

Timing: one dedicated thread sends packets on absolute monotonic deadlines (``t0 + k /
fps``), always the newest frame `send()` handed over (latest wins; DMX needs a steady refresh
even when the show sends nothing new). `t0` is phase-locked, slowly, so that the show's frames
arrive half a period before a deadline: a show at the same fps then has no frame dropped or
repeated even with a few ms of jitter on either side. Before every BREAK it waits until the
previous packet has left the wire: ``flush()`` (tcdrain) and, for drivers whose tcdrain
returns early (and for pseudo-terminals), the packet's computed wire time. While the output
is open the interpreter's switch interval is lowered (`sys.setswitchinterval`) so the thread
gets the GIL back promptly from a busy show thread.

The port is opened in `open()` (exclusively), so a missing or busy port stops the show
before it starts, with the fix. "Busy" is one check, `open_serial`, shared with `latentdmx
doctor`: pyserial's advisory lock, and no other process with the port open (/proc), since a
holder that takes no lock — or holds it with TIOCEXCL, which root opens through — would
still garble the line. On close the blackout packet is sent and drained before the
driver-enable pin drops and the port closes.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, OutputError
from .base import SLOTS, Frames, Output
from .gpio import OutputPin, make_pin
from .handover import LatestFrames

log = logging.getLogger("latentdmx.uart")

BAUD = 250_000
BIT_S = 1.0 / BAUD
SLOT_S = 11 * BIT_S                 # start bit, 8 data bits, 2 stop bits: 44 us
SPIN_S = 0.0005                     # busy-wait the last half millisecond of any wait
SWITCH_INTERVAL_S = 0.0005          # while the UART runs (Python's default is 5 ms)
DEFAULT_FPS = 40.0
PLL_GAIN = 0.05                     # how fast packet deadlines follow the show's frames
GAP_S = 0.0005                      # room between packets (wake-up, break ioctl)
RT_PRIORITY = 10                    # SCHED_FIFO priority of the UART thread, where allowed
_SETUP_FIX = ("run `sudo scripts/setup-pi.sh` (enables the UART, removes the serial console, "
              "adds you to the dialout group), then reboot")


@dataclass(frozen=True)
class UartConfig:
    """``[output.uart]``."""

    device: str = "/dev/serial0"
    break_us: int = 176                 # >= 92 us
    mab_us: int = 16                    # mark after break, >= 12 us
    driver_enable_gpio: int = 18        # BCM pin of the RS-485 driver enable; -1: none
    full_universe: bool = False         # send all 512 slots (else up to the last patched one)

    def validate(self, file: str) -> None:
        if self.break_us < 92:
            raise ConfigError(f"break of {self.break_us} us is too short", file=file,
                              field="output.uart.break_us", fix="DMX512 needs >= 92 us; use 176")
        if self.mab_us < 12:
            raise ConfigError(f"mark after break of {self.mab_us} us is too short", file=file,
                              field="output.uart.mab_us", fix="DMX512 needs >= 12 us; use 16")
        for name, value in (("break_us", self.break_us), ("mab_us", self.mab_us)):
            if value > 1_000_000:                   # DMX512 allows up to 1 s
                raise ConfigError(f"{value} us is longer than DMX512 allows (1 s)", file=file,
                                  field=f"output.uart.{name}",
                                  fix="use 176 (break) and 16 (mark after break)")
        if not -1 <= self.driver_enable_gpio <= 27:
            raise ConfigError(f"GPIO {self.driver_enable_gpio} is not a Pi pin", file=file,
                              field="output.uart.driver_enable_gpio",
                              fix="use a BCM pin number 0..27, or -1 for none")
        if not self.device:
            raise ConfigError("no serial device", file=file, field="output.uart.device",
                              fix='use the Pi\'s UART, e.g. device = "/dev/serial0"')


def wire_time_s(slots: int, break_us: float = 176, mab_us: float = 16) -> float:
    """Time one packet of `slots` slots (plus start code) occupies the line."""
    return break_us * 1e-6 + mab_us * 1e-6 + (slots + 1) * SLOT_S


def max_fps(slots: int, break_us: float = 176, mab_us: float = 16) -> float:
    """The highest fps a UART can send `slots` slots at, with a little room between packets
    for the thread to wake up and start the next BREAK (`GAP_S`)."""
    return 1.0 / (wire_time_s(slots, break_us, mab_us) + GAP_S)


def realtime_priority(priority: int = RT_PRIORITY) -> str | None:
    """Put the calling thread on SCHED_FIFO at `priority`; None, or why not."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        return getattr(exc, "strerror", None) or str(exc)
    return None


def hold(start: float, seconds: float) -> float:
    """Wait until ``start + seconds`` on perf_counter: sleep the bulk, spin the end.

    Returns the perf_counter time when the wait ended (>= start + seconds, never earlier)."""
    end = start + seconds
    while True:
        now = time.perf_counter()
        left = end - now
        if left <= 0:
            return now
        if left > SPIN_S:
            time.sleep(left - SPIN_S)


@dataclass(frozen=True)
class Holder:
    """Another process that has the serial port open."""

    pid: int
    comm: str
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.comm} (pid {self.pid})"

    @property
    def is_olad(self) -> bool:
        return self.comm == "olad"

    @property
    def is_latentdmx(self) -> bool:
        return self.comm == "latentdmx" or any(
            a.endswith("/latentdmx") or a == "pi_app.cli" for a in self.argv[:3])


def port_holders(device: str) -> list[Holder]:
    """Other processes that have DEVICE open (its real path, among their file descriptors),
    as far as /proc shows them: root sees every process, a user their own. A holder need not
    lock the port (pyserial's ``exclusive`` is only an advisory flock) nor set TIOCEXCL (root
    opens through that): any second writer garbles the DMX line, so any holder is "busy"."""
    target = os.path.realpath(device)
    me = os.getpid()
    found: list[Holder] = []
    try:
        pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if pid == me:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != target:
                    continue
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
                with open(f"/proc/{pid}/cmdline", "rb") as fb:
                    argv = tuple(a.decode(errors="replace") for a in fb.read().split(b"\0") if a)
            except OSError:
                continue
            found.append(Holder(pid, comm, argv))
            break
    return found


def busy_error(device: str, holders: list[Holder]) -> OutputError:
    """The one line for a port another process has open: who, and what to do about it."""
    who = ", ".join(map(str, holders)) or "another program (`sudo fuser -v " + device + \
        "` shows which)"
    if any(h.is_olad for h in holders):
        fix = ("use --output ola (olad's uartdmx plugin has the port), or set enabled = false "
               "in /etc/ola/ola-uartdmx.conf and restart olad")
    elif any(h.is_latentdmx for h in holders):
        fix = ("another LatentDMX show plays on it: stop that one first (`latentdmx status`; "
               "`sudo systemctl stop latentdmx` for the service)")
    elif any(h.comm in ("agetty", "getty", "login") for h in holders):
        fix = ("that is a login console on the port: run `sudo scripts/setup-pi.sh` (it masks "
               "serial-getty and takes the console off cmdline.txt), then reboot")
    else:
        fix = f"stop that program (`sudo fuser -v {device}` shows it), then start again"
    return OutputError(f"serial port {device} is busy: open in {who}",
                       field="output.uart.device", fix=fix)


def open_serial(device: str) -> Any:
    """Open DEVICE for DMX (250000 8N2, with pyserial's advisory lock) and make sure no other
    process has it open — the one check both `run` (`UartOutput`) and `doctor` make. A missing,
    forbidden or busy port raises `OutputError` with the fix; the caller closes the port."""
    import serial

    ser = serial.Serial(None, baudrate=BAUD, bytesize=serial.EIGHTBITS,
                        parity=serial.PARITY_NONE, stopbits=serial.STOPBITS_TWO,
                        xonxoff=False, rtscts=False, exclusive=True, write_timeout=1.0)
    ser.port = device
    try:
        ser.open()
    except (serial.SerialException, OSError) as exc:
        raise _port_error(device, exc) from None
    holders = port_holders(device)
    if holders:
        ser.close()
        raise busy_error(device, holders)
    return ser


def probe_port(device: str) -> OutputError | None:
    """What `run` would meet opening DEVICE now: None when it is free and usable."""
    try:
        open_serial(device).close()
    except OutputError as exc:
        return exc
    return None


def _port_error(device: str, exc: Exception) -> OutputError:
    err = getattr(exc, "errno", None)
    field = "output.uart.device"
    if err == 2:        # ENOENT
        return OutputError(f"serial port {device} does not exist", field=field,
                           fix=f"{_SETUP_FIX}; or set output.uart.device (e.g. /dev/ttyAMA0)")
    if err == 13:       # EACCES
        return OutputError(f"no permission to open {device}", field=field,
                           fix="add yourself to the dialout group: `sudo usermod -aG dialout "
                               f"$USER` and log in again (or {_SETUP_FIX})")
    if err in (11, 16):  # EAGAIN (flock held), EBUSY (TIOCEXCL, as a user)
        return busy_error(device, port_holders(device))
    return OutputError(f"cannot open serial port {device} ({exc})", field=field,
                       fix=f"check the device name; {_SETUP_FIX}")


class UartOutput(Output):
    """DMX512 on a local UART. One universe per port.

    `fps`: packets per second on the wire (default 40); `slots`: the last patched slot
    (default 512; ignored with ``full_universe``); `de_pin`: the driver-enable pin, "auto" =
    from the config (mocked off the Pi), None = none, or an `OutputPin`.
    """

    name = "uart"
    config_class = UartConfig

    @classmethod
    def rig_kwargs(cls, config, patch) -> dict:
        """The show's fps and the last patched slot (the packet stops there)."""
        return {"fps": config.fps, "slots": max(f.last_address for f in patch.fixtures)}

    def __init__(self, universes, *, config: UartConfig | None = None, blackout=None,
                 fps: float | None = None, slots: int | None = None,
                 de_pin: OutputPin | str | None = "auto", keep_timing: int = 0) -> None:
        super().__init__(universes, blackout=blackout)
        if len(self.universes) != 1:
            raise OutputError(f"the UART sends one universe, the patch uses "
                              f"{len(self.universes)} ({', '.join(map(str, self.universes))})",
                              field="output.kind",
                              fix="patch every fixture into one universe, or use --output ola")
        self.config = config or UartConfig()
        self.universe = self.universes[0]
        self.slots = SLOTS if (self.config.full_universe or not slots) else int(slots)
        if not 1 <= self.slots <= SLOTS:
            raise OutputError(f"{self.slots} slots is not a DMX universe", field="slots",
                              fix="use 1..512")
        self.fps = float(fps or DEFAULT_FPS)
        self.period_s = 1.0 / self.fps
        self.break_s = self.config.break_us * 1e-6
        self.mab_s = self.config.mab_us * 1e-6
        self.wire_s = wire_time_s(self.slots, self.config.break_us, self.config.mab_us)
        self._de_pin_arg = de_pin
        self.de_pin: OutputPin | None = None
        self._ser: Any = None                  # the serial.Serial, while open
        # The show's packets, newest wins (`handover.LatestFrames`, one key: 0).
        self._handover: LatestFrames[int, bytes] = LatestFrames()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wire_end = 0.0
        self._old_switch: float | None = None
        # counters (read by health() and the benches)
        self.packets = 0            # packets put on the wire (repeats included)
        self.late = 0               # deadlines missed by more than a period (skipped)
        self.error: str | None = None
        self.break_min_s = self.mab_min_s = float("inf")
        self.break_max_s = self.mab_max_s = 0.0
        # (break start, driver seconds) per packet, for benches; 0 = keep none
        self.timing: deque[tuple[float, float]] = deque(maxlen=keep_timing or 1)
        self._keep_timing = keep_timing > 0
        top = max_fps(self.slots, self.config.break_us, self.config.mab_us)
        if self.fps > top:
            raise OutputError(
                f"{self.fps:g} fps is more than the DMX wire carries with {self.slots} slots "
                f"(a packet takes {self.wire_s * 1e3:.1f} ms: {top:.1f} fps at most; faster, "
                f"packets would be dropped)", field="fps",
                fix=f"set fps = {math.floor(top)} or lower (or patch fewer slots, with "
                    "output.uart.full_universe = false)")
        self.realtime: bool | None = None       # the thread got SCHED_FIFO (None: not yet)

    # -- hooks --------------------------------------------------------------------------
    def _open(self) -> None:
        self._ser = self._open_port()
        try:
            pin = self._de_pin_arg
            self.de_pin = (make_pin(self.config.driver_enable_gpio) if isinstance(pin, str)
                           else pin)
            if self.de_pin is not None:
                self.de_pin.on()          # the transceiver drives the line (idle = mark)
        except BaseException:
            self._ser.close()
            raise
        self._old_switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._old_switch, SWITCH_INTERVAL_S))
        self._thread = threading.Thread(target=self._run, name="latentdmx-uart", daemon=True)
        self._thread.start()
        log.info("UART output on %s: %d slots, %g fps, break %d us, MAB %d us (%.1f ms a "
                 "packet)", self.config.device, self.slots, self.fps, self.config.break_us,
                 self.config.mab_us, self.wire_s * 1e3)

    def _send(self, frames: Frames) -> None:
        frame = frames.get(self.universe)
        if frame is None:
            return
        self._handover.post({0: b"\x00" + frame[:self.slots].tobytes()})

    def _close(self) -> None:
        # Base close() has just handed over the blackout: the thread sends it, drains, exits.
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0 + 2 * self.period_s)
            if self._thread.is_alive():
                log.error("the UART thread did not stop; closing the port under it")
        ser, self._ser = self._ser, None
        try:
            if self.de_pin is not None:
                self.de_pin.close()
        finally:
            if ser is not None:
                ser.close()
            if self._old_switch is not None:
                sys.setswitchinterval(self._old_switch)
            self._handover.close()

    @property
    def dropped(self) -> int:
        """Frames replaced by a newer one before going out."""
        return self._handover.dropped

    def targets(self) -> tuple[str, ...]:
        return (f"uart:{os.path.realpath(self.config.device)}",)

    def health(self) -> dict:
        h = super().health()
        h.update(device=self.config.device, fps=self.fps, slots=self.slots,
                 packets=self.packets, dropped=self.dropped, late=self.late,
                 error=self.error, realtime=self.realtime)
        if self.packets:
            h.update(break_min_us=round(self.break_min_s * 1e6, 1),
                     break_max_us=round(self.break_max_s * 1e6, 1),
                     mab_min_us=round(self.mab_min_s * 1e6, 1),
                     mab_max_us=round(self.mab_max_s * 1e6, 1))
        return h

    # -- the port -----------------------------------------------------------------------
    def _open_port(self):
        return open_serial(self.config.device)

    # -- the output thread --------------------------------------------------------------
    def _run(self) -> None:
        why = realtime_priority()
        self.realtime = why is None
        if why is None:
            log.info("UART thread at real-time priority (SCHED_FIFO %d)", RT_PRIORITY)
        else:
            log.info("UART thread at normal priority (real-time not permitted: %s; see "
                     "README, Outputs)", why)
        handover = self._handover
        while not handover.posted:                # nothing goes out before the first frame
            if self._stop.is_set():
                return
            handover.wait(0.1)
        period = self.period_s
        # Packet k is due at t0 + k * period: the first at once, each next one a period
        # later (never sooner: at the start the wire may still carry the first one); the
        # phase lock below then moves the deadlines to half a period after the show's
        # frames, by at most PLL_GAIN / 2 of a period a packet.
        t0 = time.monotonic()
        packet: bytes | None = None
        k = 0
        retry_at = 0.0
        while True:
            delay = t0 + k * period - time.monotonic()
            if k and delay > 0:
                self._stop.wait(delay)
            stopping = self._stop.is_set()
            batch = handover.take()
            if batch.items:
                packet, arrival = batch.items[0], batch.arrival
                handover.mark_delivered(batch.posts)
                # Keep the show's frames arriving half a period before our deadlines (a slow
                # phase lock; t0 moves by at most PLL_GAIN / 2 of a period per frame), so a
                # show at the same fps has none of its frames replaced or repeated.
                t0 += PLL_GAIN * ((arrival - t0) / period % 1.0 - 0.5) * period
            try:
                if self._ser is None and time.monotonic() >= retry_at:   # after an I/O error
                    retry_at = time.monotonic() + 1.0
                    self._ser = self._open_port()
                    log.warning("UART %s is back", self.config.device)
                    self.error = None
                if self._ser is not None and packet is not None:
                    self._transmit(packet)
                    if stopping:
                        self._drain()               # the blackout is on the wire: done
                        return
            except Exception as exc:                # noqa: BLE001 - keep the thread alive
                if self.error is None:
                    log.error("UART %s failed (%s); retrying every second",
                              self.config.device, exc)
                self.error = str(exc)
                self._drop_port()
            if stopping:
                return
            k += 1
            behind = time.monotonic() - (t0 + k * self.period_s)
            if behind > self.period_s:                # never bunch packets to catch up
                skip = int(behind / self.period_s)
                self.late += skip
                k += skip

    def _drop_port(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception as exc:                # noqa: BLE001
                log.debug("closing the failed port: %s", exc)

    def _drain(self) -> None:
        """Block until the previous packet has left the wire."""
        self._ser.flush()                            # tcdrain: kernel buffer + UART FIFO
        if self._wire_end > time.perf_counter():     # drivers (and ptys) that return early
            hold(self._wire_end, 0.0)

    def _transmit(self, packet: bytes) -> None:
        ser = self._ser
        self._drain()
        ser.break_condition = True
        t_break = time.perf_counter()
        t_off = hold(t_break, self.break_s)
        ser.break_condition = False
        t_mab = time.perf_counter()
        t_write = hold(t_mab, self.mab_s)
        ser.write(packet)
        done = time.perf_counter()
        # Measured from after "on" returned to when "off" was called: the line's BREAK was
        # at least this long (and likewise the MAB).
        brk, mab = t_off - t_break, t_write - t_mab
        self.break_min_s, self.break_max_s = min(self.break_min_s, brk), max(self.break_max_s, brk)
        self.mab_min_s, self.mab_max_s = min(self.mab_min_s, mab), max(self.mab_max_s, mab)
        self._wire_end = t_write + len(packet) * SLOT_S
        self.packets += 1
        if self._keep_timing:
            self.timing.append((t_break, done - t_break))
