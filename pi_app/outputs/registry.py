"""The one table of output kinds: name -> module and class, config section, `doctor` checks.

Everything that lists outputs reads this table: ``[output] kind`` and its ``[output.<name>]``
sections (`pi_app.config`), ``--output`` choices and help (`run`, `identify`, `doctor`),
`make_output`, and `latentdmx doctor`'s dispatch. Adding an output is one row here, its own
module (an `Output` subclass) and its tests and docs; nothing else changes.

What a row's class provides (see `Output`):

* ``config_class`` — the frozen dataclass of its ``[output.<name>]`` section, or None. The
  dataclass may define ``validate(file)`` (raise `ConfigError` naming ``output.<name>.FIELD``);
  `pi_app.config.validate` calls it for every section, used or not, so a typo never waits
  for the day that output is chosen.
* ``build(config, universes, blackout=..., **kw)`` and ``rig_kwargs(config, patch)`` — how
  the output is made from the whole validated config (the default passes its section).

``doctor`` names a function ``module:function`` taking the config and returning a list of
`Finding`; None means `latentdmx doctor` has nothing to check for that kind.

Modules are imported only when asked for (`load`), and none of them imports a hardware or
protocol library at import time, so reading the table costs nothing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Output


@dataclass(frozen=True)
class OutputKind:
    name: str                 # the `--output` value and the [output.<name>] section
    module: str               # module under pi_app.outputs
    cls: str                  # its `Output` subclass
    summary: str              # one line for --help
    doctor: str | None = None  # "module:function" of its doctor checks
    real: bool = True         # drives real lights (sim does not)

    def load(self) -> type[Output]:
        """The output class (imports its module now)."""
        mod = importlib.import_module(f"{__package__}.{self.module}")
        return getattr(mod, self.cls)

    def doctor_checks(self):
        """The doctor function, or None."""
        if self.doctor is None:
            return None
        mod_name, func = self.doctor.split(":")
        return getattr(importlib.import_module(mod_name), func)


KINDS: tuple[OutputKind, ...] = (
    OutputKind("sim", "sim", "SimOutput", "the virtual universe, nothing leaves the machine",
               real=False),
    OutputKind("ola", "ola", "OlaOutput", "olad, the Open Lighting Architecture daemon",
               doctor="pi_app.commands.hardware:check_ola"),
    OutputKind("uart", "uart", "UartOutput", "the Pi's UART and an RS-485 HAT, one universe",
               doctor="pi_app.commands.hardware:check_uart"),
    OutputKind("sacn", "sacn", "SacnOutput", "E1.31/sACN to nodes and WLED, multicast or "
               "unicast", doctor="pi_app.netcheck:check_sacn"),
    OutputKind("artnet", "artnet", "ArtNetOutput", "Art-Net 4 to nodes and WLED, unicast or "
               "broadcast", doctor="pi_app.netcheck:check_artnet"),
    OutputKind("ddp", "ddp", "DdpOutput", "DDP to WLED, FPP and xLights controllers, one flat "
               "byte range", doctor="pi_app.netcheck:check_ddp"),
)


def names() -> tuple[str, ...]:
    """Every output kind, in table order."""
    return tuple(k.name for k in KINDS)


def doctor_names() -> tuple[str, ...]:
    """The kinds `latentdmx doctor` can check."""
    return tuple(k.name for k in KINDS if k.doctor)


def get(name: str) -> OutputKind:
    """The row for `name`; a `ConfigError` naming the kinds there are if none."""
    for k in KINDS:
        if k.name == name:
            return k
    from ..errors import ConfigError

    raise ConfigError(f"unknown output {name!r}", field="output.kind",
                      fix=f"use one of: {', '.join(names())}")


def sections() -> dict[str, type]:
    """kind -> the dataclass of its [output.<kind>] section (kinds that have one)."""
    out: dict[str, type] = {}
    for k in KINDS:
        cls = getattr(k.load(), "config_class", None)
        if cls is not None:
            out[k.name] = cls
    return out


def help_text() -> str:
    """``sim (...), ola (...), ...`` for --output's help."""
    return ", ".join(f"{k.name} ({k.summary})" for k in KINDS)
