"""UartOutput over a real pseudo-terminal: bytes on the wire, BREAK framing, 250000 8N2,
blackout drained on close, the driver-enable pin, missing and busy ports.

A pty cannot make a BREAK, so `serial.Serial` is swapped for a subclass that records every
break on/off, write and flush (then does the real thing); the bytes themselves are read from
the pty's master side.
"""

from __future__ import annotations

import array
import dataclasses
import fcntl
import os
import select
import termios
import threading
import time

import numpy as np
import pytest
import serial

from pi_app.config import UartConfig
from pi_app.errors import OutputError
from pi_app.outputs.gpio import MockPin, make_pin
from pi_app.outputs.uart import UartOutput, _port_error, wire_time_s

TCGETS2 = 0x802C542A


class Pty:
    """A pty pair; a thread collects everything written to the slave."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.data = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if r:
                try:
                    self.data += os.read(self.master, 65536)
                except OSError:
                    return

    def settle(self, n: int, timeout_s: float = 2.0) -> bytes:
        deadline = time.monotonic() + timeout_s
        while len(self.data) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        return bytes(self.data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.slave)
        os.close(self.master)


@pytest.fixture
def pty():
    p = Pty()
    yield p
    p.close()


@pytest.fixture
def events(monkeypatch):
    """Record break on/off, writes and flushes of every Serial the output opens."""
    log: list[tuple] = []

    class RecordingSerial(serial.Serial):
        def _update_break_state(self):
            log.append(("break", self._break_state, time.perf_counter()))
            super()._update_break_state()

        def write(self, data):
            log.append(("write", bytes(data), time.perf_counter()))
            return super().write(data)

        def flush(self):
            super().flush()
            log.append(("flush", None, time.perf_counter()))

    monkeypatch.setattr(serial, "Serial", RecordingSerial)
    return log


def uart(pty, slots=None, fps=40.0, pin=None, **cfg) -> UartOutput:
    return UartOutput([1], config=UartConfig(device=pty.path, **cfg), fps=fps, slots=slots,
                      de_pin=pin)


def frame(v: int) -> np.ndarray:
    return ((np.arange(512) * 7 + v) % 256).astype(np.uint8)


def packets(events):
    return [e[1] for e in events if e[0] == "write"]


def test_port_is_250000_8n2(pty, events):
    with uart(pty) as out:
        ser = out._ser
        assert (ser.baudrate, ser.bytesize, ser.parity, ser.stopbits) == (250000, 8, "N", 2)
        attrs = termios.tcgetattr(pty.slave)            # the tty's own settings
        cflag, oflag = attrs[2], attrs[1]
        assert cflag & termios.CSIZE == termios.CS8
        assert cflag & termios.CSTOPB and not cflag & termios.PARENB
        assert not oflag & termios.OPOST                  # raw: bytes pass untouched
        t2 = array.array("i", [0] * 64)
        fcntl.ioctl(pty.slave, TCGETS2, t2)
        assert (t2[9], t2[10]) == (250000, 250000)        # c_ispeed, c_ospeed (BOTHER)


def test_bytes_are_start_code_plus_slots_delimited_by_breaks(pty, events):
    cfg = {"break_us": 176, "mab_us": 16}
    sent = [frame(v) for v in (1, 2, 3)]
    with uart(pty, slots=56, **cfg) as out:
        for f in sent:
            out.send({1: f})
            time.sleep(0.06)
    wire = pty.settle(sum(len(p) for p in packets(events)))
    kinds = [(e[0], e[1]) if e[0] == "break" else (e[0],) for e in events
             if e[0] in ("break", "write")]
    n = len(kinds) // 3
    assert n >= 4 and kinds == [("break", True), ("break", False), ("write",)] * n
    assert wire == b"".join(packets(events))               # nothing else on the line
    expect = [b"\x00" + f[:56].tobytes() for f in sent] + [bytes(57)]   # + blackout
    order = [expect.index(p) for p in packets(events)]      # every packet is a frame ...
    assert order == sorted(order) and set(order) == {0, 1, 2, 3}   # ... in order, none lost
    brk = [e for e in events if e[0] == "break"]
    writes = [e for e in events if e[0] == "write"]
    for (_, _, on), (_, _, off), (_, _, w) in zip(brk[::2], brk[1::2], writes, strict=True):
        assert off - on >= 176e-6 and w - off >= 16e-6      # never shortened


def test_full_universe_sends_512_slots(pty, events):
    with uart(pty, slots=20, full_universe=True) as out:
        out.send({1: frame(5)})
        time.sleep(0.05)
    assert {len(p) for p in packets(events)} == {513}
    assert packets(events)[0] == b"\x00" + frame(5).tobytes()


def test_nothing_goes_out_before_the_first_frame(pty, events):
    with uart(pty, slots=8) as out:
        time.sleep(0.1)
        assert not packets(events) and out.packets == 0
        out.send({1: frame(1)})
        time.sleep(0.1)
        assert out.packets >= 2                               # then a steady refresh


def test_blackout_is_sent_and_drained_before_close_and_de_pin(pty, events):
    pin = MockPin(18)

    def blackout(frames):                                    # slot 1 (pan) held
        return {u: np.where(np.arange(512) == 0, f, 0).astype(np.uint8)
                for u, f in frames.items()}

    out = UartOutput([1], config=UartConfig(device=pty.path), slots=10, de_pin=pin,
                     blackout=blackout).open()
    assert pin.states and pin.states[-1][1] is True           # driver on before any packet
    t_on = pin.states[-1][0]
    out.send({1: np.full(512, 99, np.uint8)})
    time.sleep(0.1)
    out.close()
    last = packets(events)[-1]
    assert last == b"\x00" + bytes([99]) + bytes(9)
    assert events[-1][0] == "flush"                           # drained after the last write
    t_off, state = pin.states[-1]
    assert state is False and pin.closed
    first_break = next(e[2] for e in events if e[0] == "break")
    assert t_on <= time.monotonic() and t_off >= t_on
    assert first_break > 0 and len(pin.states) == 2           # on once, off once
    assert pty.settle(sum(map(len, packets(events))))[-11:] == last
    assert out._ser is None and out.closed
    out.close()                                               # idempotent


def test_refresh_rate_follows_fps(pty, events):
    with uart(pty, slots=24, fps=40) as out:
        out.send({1: frame(0)})
        time.sleep(0.5)
        n = out.packets
    assert 17 <= n <= 23, n


def test_break_never_shortened_under_a_busy_thread(pty, events):
    stop = threading.Event()

    def hog():
        x = 0
        while not stop.is_set():
            x += 1

    t = threading.Thread(target=hog, daemon=True)
    with uart(pty, slots=24, fps=40) as out:
        out.send({1: frame(0)})
        t.start()
        time.sleep(0.5)
        stop.set()
        t.join()
        h = out.health()
    assert h["packets"] >= 10
    assert h["break_min_us"] >= 176 and h["mab_min_us"] >= 16


def test_missing_port_is_one_line_with_the_fix(events):
    out = UartOutput([1], config=UartConfig(device="/dev/ttyLATENTDMX-nope"), de_pin=None)
    with pytest.raises(OutputError) as err:
        out.open()
    msg = str(err.value)
    assert "\n" not in msg and "/dev/ttyLATENTDMX-nope" in msg and "does not exist" in msg
    assert "setup-pi.sh" in msg
    assert out._thread is None                                  # no show on a dead port


def test_busy_port_is_an_error(pty, events):
    holder = serial.Serial(pty.path, exclusive=True)
    try:
        out = UartOutput([1], config=UartConfig(device=pty.path), de_pin=None)
        with pytest.raises(OutputError) as err:
            out.open()
        assert "busy" in str(err.value) and pty.path in str(err.value)
        assert "fuser" in str(err.value)
    finally:
        holder.close()


def test_permission_error_names_dialout():
    exc = serial.SerialException(13, "could not open port /dev/serial0: [Errno 13] denied")
    msg = str(_port_error("/dev/serial0", exc))
    assert "/dev/serial0" in msg and "dialout" in msg and "\n" not in msg


def test_one_universe_per_uart():
    with pytest.raises(OutputError, match="one universe"):
        UartOutput([1, 2], config=UartConfig())


def test_make_output_uart_uses_the_mock_pin_off_the_pi(pty, events, default_config):
    from pi_app.outputs import make_output

    cfg = default_config.replace(output=dataclasses.replace(
        default_config.output, uart=UartConfig(device=pty.path)))
    out = make_output("uart", cfg, [1])
    with out:
        assert isinstance(out.de_pin, MockPin) and out.de_pin.state is True
    assert out.de_pin.state is False


def test_gpio_helpers():
    assert make_pin(-1) is None
    pin = make_pin(18, mock=True)
    pin.on()
    pin.off()
    pin.on()
    pin.close()
    assert [s for _, s in pin.states] == [True, False, True, False]
    with pytest.raises(OutputError):
        pin.on()


def test_wire_time_of_a_full_frame():
    assert wire_time_s(512) == pytest.approx(176e-6 + 16e-6 + 513 * 44e-6)
    assert 1 / wire_time_s(512) == pytest.approx(43.9, abs=0.1)


def test_exception_in_the_frame_loop_sends_a_drained_blackout(pty, events):
    from pi_app.config import load_config
    from pi_app.fixtures.profile import LIGHT_KINDS
    from pi_app.patch import Patch
    from pi_app.show import Show

    cfg = load_config(None)
    cfg = cfg.replace(safety=dataclasses.replace(cfg.safety, fade_in_s=0.0))
    patch = Patch(cfg)
    light = [f.address - 1 + j for f in patch.fixtures
             for j, ch in enumerate(f.mode.channels) if ch.attr in LIGHT_KINDS]
    out = UartOutput(patch.universes, config=UartConfig(device=pty.path), fps=cfg.fps,
                     slots=56, de_pin=MockPin(18), blackout=patch.blackout_frames)
    show = Show(cfg, out, seed=4, control=False)

    def explode(s) -> None:
        if s.status_snapshot.get("frames", 0) >= 15:
            raise RuntimeError("boom")

    show.listeners.append(explode)
    with pytest.raises(RuntimeError, match="boom"):
        show.run()
    sent = packets(events)
    assert any(p[1 + i] for p in sent[:-1] for i in light)   # it was lit ...
    last = sent[-1]
    assert len(last) == 57 and not any(last[1 + i] for i in light)   # ... and ends dark
    assert events[-1][0] == "flush" and out.de_pin.state is False
    assert pty.settle(sum(map(len, sent))).endswith(last)


def test_fps_above_the_wire_limit_is_refused_in_one_line(pty):
    """44 fps with 512 slots dropped 8-23 of 661 packets (issue 18): refused, with the fix."""
    from pi_app.outputs.uart import max_fps

    assert max_fps(512) < 43 and max_fps(56) > 44
    with pytest.raises(OutputError) as err:
        UartOutput([1], config=UartConfig(device=pty.path), fps=44, slots=512, de_pin=None)
    msg = str(err.value)
    assert "\n" not in msg and "512 slots" in msg and "fps = 42" in msg
    UartOutput([1], config=UartConfig(device=pty.path), fps=42, slots=512, de_pin=None)
    UartOutput([1], config=UartConfig(device=pty.path), fps=44, slots=56, de_pin=None)


def test_uart_thread_reports_its_priority(pty):
    import os

    with uart(pty, slots=24, fps=40) as out:
        out.send({1: np.zeros(512, np.uint8)})
        deadline = time.monotonic() + 2
        while out.health()["realtime"] is None and time.monotonic() < deadline:
            time.sleep(0.01)
        rt = out.health()["realtime"]
    assert rt is not None                      # it tried, and says whether it got it
    if rt:
        assert os.sched_getscheduler(0) != os.SCHED_FIFO   # only the UART thread is RT


def test_a_full_universe_starts_at_its_period_not_at_the_wire_limit(pty, events):
    """At 512 slots a packet is 22.8 ms on the wire; the first packets must already come a
    period (25 ms at 40 fps) apart. (Before: the schedule started half a period behind the
    first packet, so the next five came back to back at the wire limit, 2.2 ms short each:
    the packet-period p99 of a whole show was 2.2 ms.)"""
    with uart(pty, slots=512, fps=40) as out:
        out.send({1: frame(0)})
        time.sleep(0.4)
    starts = [e[2] for e in events if e[0] == "break" and e[1]]
    periods_ms = np.diff(starts[:8]) * 1e3
    assert len(periods_ms) == 7
    assert np.median(periods_ms) > 24.0, periods_ms.round(2)
