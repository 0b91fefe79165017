"""The driver-enable pin on a Pi whose GPIO library fails: the error names the exception that
really happened and the fix for that one (a fake ``RPi.GPIO`` package stands in for rpi-lgpio:
no GPIO exists here)."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from pi_app.errors import OutputError
from pi_app.outputs import gpio
from pi_app.outputs.gpio import MockPin, make_pin


@pytest.fixture
def fake_rpi(tmp_path, monkeypatch):
    """Write a fake RPi/GPIO package whose body is `code`; returns a function doing that."""
    def write(code: str) -> None:
        pkg = tmp_path / "fake" / "RPi"
        (pkg / "GPIO").mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "GPIO" / "__init__.py").write_text(textwrap.dedent(code))
        monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    for name in [m for m in sys.modules if m == "RPi" or m.startswith("RPi.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setenv("LG_WD", "")          # recorded, so make_pin's own setting is undone
    monkeypatch.delenv("LG_WD")
    yield write
    for name in [m for m in sys.modules if m == "RPi" or m.startswith("RPi.")]:
        sys.modules.pop(name, None)


WORKING = """
    BCM, OUT, LOW, HIGH = 11, 0, 0, 1
    log = []
    def setwarnings(flag): pass
    def setmode(mode): pass
    def setup(pin, mode, initial=0): log.append(("setup", pin, initial))
    def output(pin, value): log.append(("output", pin, value))
    def cleanup(pin): log.append(("cleanup", pin))
"""


def failure(number: int = 18) -> OutputError:
    with pytest.raises(OutputError) as info:
        make_pin(number, mock=False)
    return info.value


def test_a_working_library_drives_the_pin(fake_rpi, tmp_path, monkeypatch):
    fake_rpi(WORKING)
    monkeypatch.chdir(tmp_path)
    pin = make_pin(18, mock=False)
    assert pin is not None and not isinstance(pin, MockPin)
    pin.on()
    pin.close()
    from RPi import GPIO
    assert GPIO.log == [("setup", 18, 0), ("output", 18, 1), ("output", 18, 0), ("cleanup", 18)]


def test_no_library_says_install_rpi_lgpio(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p])   # no fake, no RPi here
    for name in [m for m in sys.modules if m == "RPi" or m.startswith("RPi.")]:
        monkeypatch.delitem(sys.modules, name)
    err = failure()
    assert "No module named 'RPi'" in str(err)
    assert "python3-rpi-lgpio" in err.fix and "gpio group" not in err.fix
    assert err.field == "output.uart.driver_enable_gpio"


def test_a_library_that_does_not_load_says_why(fake_rpi):
    fake_rpi("raise ImportError('liblgpio.so.1: cannot open shared object file')\n")
    err = failure()
    assert "liblgpio.so.1: cannot open shared object file" in str(err)
    assert "gpio group" not in err.fix


def read_only_dir(tmp_path: Path, monkeypatch) -> Path:
    """A folder this process may not write: mode 0555, and for root (who writes anyway)
    `os.access` says so too."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:
        real = gpio._writable
        monkeypatch.setattr(gpio, "_writable", lambda p: Path(p) != ro and real(p))
    return ro


def test_an_unwritable_working_directory_is_worked_around(fake_rpi, tmp_path, monkeypatch):
    """lgpio makes .lgd-nfy* pipes in the working directory: in a read-only one (a service
    started in /), LG_WD points at a writable folder first, so the pin works."""
    fake_rpi(WORKING + """
    import os
    wd = os.environ.get("LG_WD") or os.getcwd()
    open(os.path.join(wd, ".lgd-nfy0"), "w").close()     # what lgpio does on import
""")
    ro = read_only_dir(tmp_path, monkeypatch)
    monkeypatch.chdir(ro)
    pin = make_pin(18, mock=False)
    assert pin is not None
    made = Path(os.environ["LG_WD"]) / ".lgd-nfy0"
    assert made.exists() and not list(ro.iterdir())
    made.unlink()


def test_lgpio_failing_in_an_unwritable_folder_says_so(fake_rpi, tmp_path, monkeypatch):
    fake_rpi(WORKING + """
    class error(Exception):
        pass
    def setmode(mode):
        raise error("can not open gpiochip")
""")
    ro = read_only_dir(tmp_path, monkeypatch)
    monkeypatch.setenv("LG_WD", str(ro))           # the user's choice, kept as it is
    err = failure()
    assert "error: can not open gpiochip" in str(err)
    assert str(ro) in err.fix and "not writable" in err.fix
    assert "gpio group" not in err.fix


def test_a_busy_pin_is_not_blamed_on_the_gpio_group(fake_rpi, tmp_path, monkeypatch):
    fake_rpi(WORKING + """
    class error(Exception):
        pass
    def setup(pin, mode, initial=0):
        raise error("GPIO busy")
""")
    monkeypatch.chdir(tmp_path)
    err = failure()
    assert "error: GPIO busy" in str(err)
    assert "another program holds the pin" in err.fix and "gpio group" not in err.fix


def test_a_device_the_user_may_not_open_says_gpio_group(fake_rpi, tmp_path, monkeypatch):
    fake_rpi(WORKING.replace("def setmode(mode): pass",
                             "def setmode(mode): raise PermissionError(13, 'Permission denied', "
                             "'/dev/gpiochip0')"))
    monkeypatch.chdir(tmp_path)
    err = failure()
    assert "Permission denied" in str(err)
    assert "gpio group" in err.fix
