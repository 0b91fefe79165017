"""The RS-485 driver-enable pin: one tiny interface, a real backend and a mock (gpiozero-style).

A backend **must** implement `_write(high)` and may implement `_close()`. `OutputPin.on()`
drives the pin high (the HAT's transceiver drives the DMX line), `off()` low (the line is
released). Only this module and ``outputs/uart.py`` import hardware libraries, and only
inside functions, so importing it off the Pi costs nothing.

- `RPiGPIOPin`: RPi.GPIO, BCM numbering. On the Pi 5, RPi.GPIO does not work; the `rpi-lgpio`
  package is a drop-in that installs the same ``RPi.GPIO`` module.
- `MockPin`: records every state with its monotonic time in `states` (like gpiozero's
  ``MockPin.states``), for tests and for machines that have no GPIO at all (not a Pi).

`make_pin(n)` picks one: -1 means no pin; on a Pi a missing RPi.GPIO is an error (with the
fix), off the Pi the mock is used and the log says so.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..errors import OutputError

log = logging.getLogger("latentdmx.gpio")


class OutputPin:
    """A digital output pin. Subclasses implement `_write(high)` and optionally `_close()`."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.state: bool | None = None
        self.closed = False

    def on(self) -> None:
        self._set(True)

    def off(self) -> None:
        self._set(False)

    def _set(self, high: bool) -> None:
        if self.closed:
            raise OutputError(f"GPIO {self.number} is closed", field="output.uart",
                              fix="open a new output")
        self._write(high)
        self.state = high

    def close(self) -> None:
        """Drive the pin low and release it. Safe to call more than once."""
        if self.closed:
            return
        try:
            if self.state:
                self._write(False)
                self.state = False
            self._close()
        finally:
            self.closed = True

    # -- hooks --------------------------------------------------------------------------
    def _write(self, high: bool) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass


class MockPin(OutputPin):
    """A pin that only remembers: `states` is a list of ``(monotonic_s, high)``."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.states: list[tuple[float, bool]] = []

    def _write(self, high: bool) -> None:
        self.states.append((time.monotonic(), high))


class RPiGPIOPin(OutputPin):
    """A BCM-numbered output through RPi.GPIO (or rpi-lgpio on the Pi 5), starting low."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        from RPi import GPIO

        self._gpio = GPIO
        GPIO.setwarnings(False)
        GPIO.setmode(GPIO.BCM)
        GPIO.setup(number, GPIO.OUT, initial=GPIO.LOW)
        self.state = False

    def _write(self, high: bool) -> None:
        self._gpio.output(self.number, self._gpio.HIGH if high else self._gpio.LOW)

    def _close(self) -> None:
        self._gpio.cleanup(self.number)


def on_raspberry_pi() -> bool:
    try:
        return "raspberry pi" in Path("/proc/device-tree/model").read_text(
            errors="replace").lower()
    except OSError:
        return False


def make_pin(number: int, *, mock: bool | None = None) -> OutputPin | None:
    """The driver-enable pin `number` (BCM), None for -1. `mock=None`: mock only off the Pi."""
    if number < 0:
        return None
    if mock is None:
        mock = not on_raspberry_pi()
        if mock:
            log.info("not a Raspberry Pi: driver-enable GPIO %d is simulated", number)
    if mock:
        return MockPin(number)
    try:
        return RPiGPIOPin(number)
    except ImportError:
        raise OutputError("RPi.GPIO is not installed", field="output.uart.driver_enable_gpio",
                          fix="pip install 'latentdmx[pi]' (Pi 5: pip install rpi-lgpio), or "
                              "set driver_enable_gpio = -1 if the HAT needs no pin") from None
    except (RuntimeError, OSError) as exc:
        raise OutputError(f"cannot drive GPIO {number} ({exc})",
                          field="output.uart.driver_enable_gpio",
                          fix="add the user to the gpio group (sudo scripts/setup-pi.sh) or "
                              "check the pin number") from None
