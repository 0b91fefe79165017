"""What `latentdmx doctor` reports: one `Finding` per thing checked, each problem with its fix.

Every output kind's doctor function (``registry.OutputKind.doctor``) takes the validated
config and returns a list of these."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Finding:
    ok: bool
    what: str
    fix: str = ""
