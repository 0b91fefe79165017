"""The project's one user-facing error type.

A `LatentDMXError` carries the file, the field and the fix, so the CLI can print one line:
``error: FILE: FIELD: what is wrong — fix`` and exit 2, with no traceback (unless
``LATENTDMX_DEBUG=1``). Subclasses also inherit a builtin, like gpiozero's ``exc.py``.
"""

from __future__ import annotations

import reprlib


class LatentDMXError(Exception):
    """A user mistake or an environment problem, told in one line."""

    def __init__(self, what: str, *, file: object = None, field: str | None = None,
                 fix: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.file = None if file is None else str(file)
        self.field = field
        self.fix = fix

    def __str__(self) -> str:
        parts = [p for p in (self.file, self.field) if p]
        head = ": ".join([*parts, self.what])
        return f"{head} — {self.fix}" if self.fix else head


class ConfigError(LatentDMXError, ValueError):
    """A config file (or CLI option) is wrong."""


class FixtureError(LatentDMXError, ValueError):
    """A fixture profile or fixture file is wrong."""


class ModelError(LatentDMXError, ValueError):
    """A model file is missing or broken."""


class OutputError(LatentDMXError, OSError):
    """An output (OLA, UART) cannot be opened or used."""


class ControlError(LatentDMXError, RuntimeError):
    """The running daemon cannot be reached, or refused a request."""


# -- how errors show what they name -------------------------------------------------------
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 40


def shown(value: object) -> str:
    """A value for an error message: short, and safe for any depth or size."""
    return _REPR.repr(value)


def fixture_label(index: int, name: object = "") -> str:
    """How errors name a fixture: ``fixtures[3] ('par-1')``, counted from 1 as the
    [[fixtures]] tables are read (every list index in a config error counts from 1)."""
    return f"fixtures[{index}] ({shown(name)})" if isinstance(name, str) and name else \
        f"fixtures[{index}]"
