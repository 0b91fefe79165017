"""The model families there are: each trains in a module of its own (`nat`, `iae`), whose
loop is `common.run_steps`; measuring (`quality`) and the card (`card`) look a family up here,
so a model of any other family is a one-line error, never measured as another."""

from __future__ import annotations

from pathlib import Path

from ..errors import LatentDMXError

FAMILIES = ("nat", "iae")


def family_of(doc: dict, file: Path) -> str:
    """`doc`'s family (a model.json's), or a one-line error naming the file."""
    family = doc.get("family")
    if family not in FAMILIES:
        raise LatentDMXError(f"unknown model family {family!r}", file=file, field="family",
                             fix=f"use one of {', '.join(FAMILIES)}")
    return str(family)
