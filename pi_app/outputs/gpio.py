"""The RS-485 driver-enable pin: one tiny interface, a real backend and a mock (gpiozero-style).

A backend **must** implement `_write(high)` and may implement `_close()`. `OutputPin.on()`
drives the pin high (the HAT's transceiver drives the DMX line), `off()` low (the line is
released). Only this module and ``outputs/uart.py`` import hardware libraries, and only
inside functions, so importing it off the Pi costs nothing.

- `RPiGPIOPin`: the ``RPi.GPIO`` module, BCM numbering, as the `rpi-lgpio` package provides it
  on every Pi model (the Pi 5 included; the old RPi.GPIO package does not work there). lgpio
  makes its notification pipes (``.lgd-nfy*``) in the working directory, or in ``$LG_WD``.
- `MockPin`: records every state with its monotonic time in `states` (like gpiozero's
  ``MockPin.states``), for tests and for machines that have no GPIO at all (not a Pi).

`make_pin(n)` picks one: -1 means no pin; on a Pi a GPIO library that fails is an error naming
what failed and the fix for that; off the Pi the mock is used and the log says so.
"""

from __future__ import annotations

import logging
import os
import tempfile
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
    """A BCM-numbered output through the RPi.GPIO module (rpi-lgpio), starting low."""

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


GPIO_FIELD = "output.uart.driver_enable_gpio"
INSTALL_FIX = ("sudo apt-get install python3-rpi-lgpio (a venv made with "
               "--system-site-packages sees it), or pip install 'latentdmx[pi]'")
NO_PIN_FIX = "; or set driver_enable_gpio = -1 if the HAT needs no pin"


def _writable(path: str) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


def lgpio_workdir() -> str | None:
    """Where lgpio will make its notification pipes: $LG_WD, else the working directory.
    When that is not writable (a service started in /), $LG_WD is pointed at the temporary
    folder and that folder is returned; None when nothing had to change."""
    if os.environ.get("LG_WD"):
        return None                         # the user's choice: a failure names it
    wd = os.getcwd()
    if _writable(wd):
        return None
    tmp = tempfile.gettempdir()
    os.environ["LG_WD"] = tmp
    log.info("GPIO: %s is not writable; lgpio's pipes go to %s (LG_WD)", wd, tmp)
    return tmp


def gpio_failure(number: int, exc: BaseException) -> OutputError:
    """The error for a GPIO library that failed: the exception itself, and the fix for what
    it says (a missing module, a folder lgpio cannot write, a device the user may not open,
    a pin another program holds)."""
    what = f"{type(exc).__name__}: {exc}"
    text = str(exc).lower()
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == "RPi":
        return OutputError(f"GPIO {number}: no GPIO library ({what})", field=GPIO_FIELD,
                           fix=INSTALL_FIX + NO_PIN_FIX)
    if isinstance(exc, ImportError):
        return OutputError(f"GPIO {number}: the GPIO library does not load ({what})",
                           field=GPIO_FIELD,
                           fix="reinstall it: " + INSTALL_FIX + NO_PIN_FIX)
    wd = os.environ.get("LG_WD") or os.getcwd()
    if ("nfy" in text or "notify" in text or "working dir" in text) or not _writable(wd):
        return OutputError(f"cannot drive GPIO {number} ({what})", field=GPIO_FIELD,
                           fix=f"lgpio writes its pipes into {wd}, which is not writable: start "
                               "in a writable folder (the service's WorkingDirectory=) or set "
                               "LG_WD to one")
    chips = sorted(Path("/dev").glob("gpiochip*"))
    denied = [str(c) for c in chips if not os.access(c, os.R_OK | os.W_OK)]
    if isinstance(exc, PermissionError) or (denied and len(denied) == len(chips)):
        return OutputError(f"cannot drive GPIO {number} ({what})", field=GPIO_FIELD,
                           fix=f"this user may not open {', '.join(denied) or '/dev/gpiochip*'}: "
                               "add it to the gpio group (sudo scripts/setup-pi.sh does) and "
                               "log in again")
    if "busy" in text or "claimed" in text:
        return OutputError(f"cannot drive GPIO {number} ({what})", field=GPIO_FIELD,
                           fix="another program holds the pin: stop it, or pick the pin the "
                               "HAT uses")
    return OutputError(f"cannot drive GPIO {number} ({what})", field=GPIO_FIELD,
                       fix="check the pin number (BCM) against the HAT" + NO_PIN_FIX)


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
    lgpio_workdir()
    try:
        return RPiGPIOPin(number)
    except Exception as exc:  # noqa: BLE001 - lgpio.error is a bare Exception; named in the error
        raise gpio_failure(number, exc) from None
