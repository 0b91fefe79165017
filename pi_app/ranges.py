"""A config field's range, declared with the field, and the one check of them all.

    tempo: float = ranged(1.0, 0.01, 100, "use 0.01..100")

`check_ranges(section, file, prefix)` checks every ranged field of a section in the order the
fields are declared and raises one `ConfigError` naming the file, ``prefix.field`` and the
fix. The message is ``what`` formatted with the field's ``name``, ``value``, ``lo`` and ``hi``.
Each config section's ``validate(file)`` calls it, then checks what ties its fields together.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

OUTSIDE = "{value} is outside {lo}..{hi}"


@dataclass(frozen=True)
class Range:
    lo: float
    hi: float
    fix: str
    what: str = OUTSIDE

    def check(self, value: float, file: str, fld: str, name: str = "") -> None:
        if not self.lo <= value <= self.hi:
            raise ConfigError(self.what.format(name=name, value=value, lo=self.lo, hi=self.hi),
                              file=file, field=fld, fix=self.fix)


def ranged(default: Any, lo: float, hi: float, fix: str, what: str = OUTSIDE) -> Any:
    """A dataclass field with its default and its range."""
    return dataclasses.field(default=default, metadata={"range": Range(lo, hi, fix, what)})


def check_ranges(section: Any, file: str, prefix: str,
                 names: tuple[str, ...] | None = None) -> None:
    """Every ranged field of `section` (a config dataclass), in declaration order; or only
    `names`, in that order (a section whose checks must come in another order)."""
    fields = {f.name: f for f in dataclasses.fields(section)}
    for name in fields if names is None else names:
        rng = fields[name].metadata.get("range")
        if rng is not None:
            rng.check(getattr(section, name), file, f"{prefix}.{name}", name)
