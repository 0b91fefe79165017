"""`latentdmx doctor --rdm`: the config's patch against the RDM devices on the line.

For every OLA universe the config's fixtures use (through ``[output.ola] universe_map``):
discover the responders, read what each says about itself, and compare
(`pi_app.outputs.rdm`). Read-only: no RDM SET is ever sent.
"""

from __future__ import annotations

from ..errors import OutputError
from ..outputs.doctor import Finding
from ..outputs.rdm import Placed, RdmReader, compare, readings
from ..patch import Patch


def placed_fixtures(cfg) -> list[Placed]:
    """The config's fixtures on their OLA universes."""
    umap = cfg.output.ola.universe_map
    return [Placed(name=f.name, universe=int(umap.get(str(f.universe), f.universe)),
                   address=f.address, footprint=f.mode.footprint, mode=f.mode.name,
                   profile=f.profile.name) for f in Patch(cfg).fixtures]


def rdm_findings(cfg, *, timeout_s: float = 3.0) -> list[Finding]:
    """One `Finding` per problem on each universe, then what the devices measure."""
    placed = placed_fixtures(cfg)
    out: list[Finding] = []
    try:
        with RdmReader(cfg.output.ola.host, cfg.output.ola.port, timeout_s=timeout_s) as rdm:
            for u in sorted({p.universe for p in placed}):
                try:
                    found = rdm.responders(u)
                except OutputError as exc:
                    out.append(Finding(False, f"RDM on universe {u}: {exc.what}", exc.fix or ""))
                    continue
                out += compare(u, [p for p in placed if p.universe == u], found)
                out += readings(u, found)
    except OutputError as exc:
        out.append(Finding(False, f"RDM: {exc.what}", exc.fix or ""))
    return out
