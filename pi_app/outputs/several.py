"""Several outputs in one show: ``[[outputs]]``, each universe to its own output.

A gallery has a DMX line on the Pi's UART and a WLED strip on the network::

    [[outputs]]
    kind = "uart"
    universes = [1]
    device = "/dev/ttyAMA0"

    [[outputs]]
    kind = "ddp"
    universes = [2]
    destinations = ["wled-strip.local"]

Each table is one output: its ``kind`` (a row of `registry.KINDS`), the rig ``universes`` it
sends, and the settings of that kind's ``[output.<kind>]`` section, written in the same
table. Every patched universe goes to exactly one output (`check_entries`).

`MultiOutput` is one `Output` made of the parts, so the show, the claims, the last-frames
file, `status` and `health` see one output as before: `send` hands each part its universes
of the same frame, on the same tick; `targets()` is every part's, so the show claims every
part's lights; `close()` closes (and so blacks out) every part, whatever one of them does.
`sub_config` is the config as if one part were its only output: `doctor`, `darken`,
`service-network` and the config's rules take each part through the path a single
``[output]`` takes.

A config without ``[[outputs]]`` has the single ``[output]`` of before, unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, LatentDMXError
from . import registry
from .base import BlackoutFn, Frames, Output, Prepared

log = logging.getLogger("latentdmx")


@dataclass(frozen=True)
class OutputEntry:
    """One ``[[outputs]]`` table: kind, rig universes, the kind's settings (or None)."""

    kind: str = "sim"
    universes: tuple[int, ...] = ()
    settings: Any = None              # the kind's `config_class` instance, if it has one

    @classmethod
    def from_table(cls, table: object, file: str, fld: str,
                   build: Callable[[type, dict, str, str], Any]) -> OutputEntry:
        """Parse one table (`build` is the config's own parser for the settings)."""
        if not isinstance(table, dict):
            raise ConfigError("expected a table", file=file, field=fld,
                              fix='write [[outputs]] with kind = "..." and universes = [...]')
        rest = dict(table)
        kind = rest.pop("kind", None)
        if kind is None:
            raise ConfigError("no kind", file=file, field=f"{fld}.kind",
                              fix=f"say which output, one of: {', '.join(registry.names())}")
        if not isinstance(kind, str) or kind not in registry.names():
            raise ConfigError(f"unknown output {kind!r}", file=file, field=f"{fld}.kind",
                              fix=f"use one of: {', '.join(registry.names())}")
        universes = rest.pop("universes", None)
        if (not isinstance(universes, list) or not universes or
                not all(isinstance(u, int) and not isinstance(u, bool) for u in universes)):
            raise ConfigError(f"{universes!r} is not a list of universes" if universes is not
                              None else "no universes", file=file, field=f"{fld}.universes",
                              fix="list the rig universes this output sends, e.g. "
                                  "universes = [1]")
        section = getattr(registry.get(kind).load(), "config_class", None)
        if section is None:
            if rest:
                raise ConfigError("unknown key", file=file, field=f"{fld}.{next(iter(rest))}",
                                  fix=f"output {kind} has no settings: keep kind and universes")
            settings = None
        else:
            settings = build(section, rest, file, fld)
        return cls(kind, tuple(universes), settings)


def kinds_text(cfg: Any) -> str:
    """What the config's output is, for a log line: ``uart`` or ``uart+ddp``."""
    return "+".join(e.kind for e in cfg.outputs) if cfg.outputs else cfg.output.kind


def labels(cfg: Any) -> list[str]:
    """A short name per output: its kind, numbered when a kind is there more than once."""
    kinds = [e.kind for e in cfg.outputs]
    seen: dict[str, int] = {}
    out = []
    for k in kinds:
        seen[k] = seen.get(k, 0) + 1
        out.append(k if kinds.count(k) == 1 else f"{k}-{seen[k]}")
    return out


def sub_config(cfg: Any, i: int) -> Any:
    """The config as if ``outputs[i]`` (0-based) were its one ``[output]``: that kind and
    settings, the fixtures on its universes, no ``[[outputs]]``."""
    e = cfg.outputs[i]
    sections = {e.kind: e.settings} if e.settings is not None else {}
    return cfg.replace(output=dataclasses.replace(cfg.output, kind=e.kind, **sections),
                       outputs=(), fixtures=tuple(f for f in cfg.fixtures
                                                  if f.universe in e.universes))


def sub_configs(cfg: Any) -> list[Any]:
    return [sub_config(cfg, i) for i in range(len(cfg.outputs))]


@contextlib.contextmanager
def blamed(cfg: Any, i: int) -> Iterator[None]:
    """An error of ``outputs[i]``'s part, said in the config's terms: ``output.sacn.port`` ->
    ``outputs[2].port``, ``output.kind`` (the UART's one universe) -> ``outputs[2].universes``."""
    try:
        yield
    except LatentDMXError as exc:
        raise renamed(exc, cfg, i) from None


def renamed(exc: LatentDMXError, cfg: Any, i: int) -> LatentDMXError:
    kind = cfg.outputs[i].kind
    at = f"outputs[{i + 1}]"
    f = exc.field or ""
    if f in ("output.kind", "fixtures"):
        exc.field = f"{at}.universes"
    elif f.startswith(f"output.{kind}"):
        exc.field = at + f[len(f"output.{kind}"):]
    elif f in (kind, "interface") or not f:
        exc.field = f"{at}.{f}" if f and f != kind else at
    if not exc.file:
        exc.file = cfg.path
    return exc


def check_entries(cfg: Any) -> None:
    """Every patched universe goes to exactly one output, and every universe an output
    lists is patched. `pi_app.config_rules` calls it (check, run and a reload agree)."""
    f = cfg.path
    if cfg.output.kind != "sim":
        raise ConfigError(f"[output] kind = {cfg.output.kind!r} beside [[outputs]]", file=f,
                          field="output.kind",
                          fix="keep one: [[outputs]] (one table per output), or [output] "
                              "kind for a single output")
    for name, section in registry.sections().items():   # read by nobody: say so
        if getattr(cfg.output, name) != section():
            raise ConfigError(f"[output.{name}] is not read when there are [[outputs]]", file=f,
                              field=f"output.{name}",
                              fix=f'move its keys into the [[outputs]] table with kind = '
                                  f'"{name}"')
    patched = {fx.universe: fx.name for fx in cfg.fixtures}
    owner: dict[int, int] = {}
    for i, e in enumerate(cfg.outputs, 1):
        for u in e.universes:
            if u in owner:
                where = "listed twice here" if owner[u] == i else \
                    f"also sent by outputs[{owner[u]}] ({cfg.outputs[owner[u] - 1].kind})"
                raise ConfigError(f"universe {u} is {where}", file=f,
                                  field=f"outputs[{i}].universes",
                                  fix="send each universe to one output")
            if u not in patched:
                raise ConfigError(f"no fixture is patched in universe {u}", file=f,
                                  field=f"outputs[{i}].universes",
                                  fix="list only universes the fixtures use "
                                      f"({', '.join(map(str, sorted(patched)))})")
            owner[u] = i
    for u in sorted(patched):
        if u not in owner:
            raise ConfigError(f"universe {u} (fixture {patched[u]!r}) goes to no output",
                              file=f, field="outputs",
                              fix=f"add {u} to one output's universes, e.g. universes = [{u}]")
    for i, e in enumerate(cfg.outputs):
        if e.settings is not None and hasattr(e.settings, "validate"):
            with blamed(cfg, i):
                e.settings.validate(f)
    _one_sync_each(cfg)


def _one_sync_each(cfg: Any) -> None:
    """Two sACN outputs that reach the same receivers (both multicast, or a node in both)
    with universe sync need their own sync universes: one source (one CID) counting two
    sync streams on one universe looks to receivers like packets out of order."""
    seen: list[tuple[int, Any]] = []
    for i, e in enumerate(cfg.outputs, 1):
        c = e.settings
        if e.kind != "sacn" or not c.sync:
            continue
        free = 63998 if c.sync_universe != 63998 else 63997
        for j, other in seen:
            if other.sync_universe == c.sync_universe and (
                    (not c.unicast and not other.unicast) or set(c.unicast) & set(other.unicast)):
                raise ConfigError(f"outputs[{j}] and outputs[{i}] both send sync packets on "
                                  f"universe {c.sync_universe} to the same receivers",
                                  file=cfg.path, field=f"outputs[{i}].sync_universe",
                                  fix="give this one its own, a universe no data goes on, e.g. "
                                      f"sync_universe = {free}")
        seen.append((i, c))


class _PartPatch:
    """The patch as one part's backend sees it (its fixtures), for `rig_kwargs`."""

    def __init__(self, patch: Any, universes: Sequence[int]) -> None:
        self.fixtures = [fx for fx in patch.fixtures if fx.universe in universes]
        self.universes = tuple(u for u in patch.universes if u in universes)


def build(cfg: Any, patch: Any) -> MultiOutput:
    """The show's output for a config with ``[[outputs]]``: one part per table."""
    parts: list[tuple[str, Output]] = []
    seen: dict[str, int] = {}
    for i, (label, sub) in enumerate(zip(labels(cfg), sub_configs(cfg), strict=True)):
        kind = registry.get(sub.output.kind).load()
        universes = [u for u in patch.universes if u in cfg.outputs[i].universes]
        with blamed(cfg, i):
            out = kind.build(sub, universes, blackout=patch.blackout_frames,
                             **kind.rig_kwargs(sub, _PartPatch(patch, universes)))
        for t in out.targets():
            if t in seen:
                raise ConfigError(f"outputs[{seen[t] + 1}] and outputs[{i + 1}] both drive {t}",
                                  file=cfg.path, field=f"outputs[{i + 1}]",
                                  fix="give each output its own lights (port, device, "
                                      "destination or universe map)")
            seen[t] = i
        parts.append((label, out))
    return MultiOutput(parts, blackout=patch.blackout_frames)


class MultiOutput(Output):
    """Several outputs as one (module doc). `parts`: (label, output) in config order."""

    def __init__(self, parts: Sequence[tuple[str, Output]], *,
                 blackout: BlackoutFn | None = None) -> None:
        super().__init__([u for _, o in parts for u in o.universes], blackout=blackout)
        self.parts = tuple(parts)
        self.name = "+".join(o.name for _, o in self.parts)
        self.part_errors = [0] * len(self.parts)     # sends a part raised on

    def prepare(self, frames: Frames) -> Prepared:
        """Each part's own checked copies (`Output.prepare`), kept together: one frame."""
        self._check(frames)
        packed = [o.prepare({u: frames[u] for u in o.universes if u in frames})
                  for _, o in self.parts]
        ready = Prepared({}, self)
        for p in packed:
            ready.update(p)
        ready.packed = packed
        return ready

    def _open(self) -> None:
        opened: list[Output] = []
        try:
            for _, o in self.parts:
                o.open()
                opened.append(o)
        except BaseException:
            for o in opened:
                with contextlib.suppress(Exception):
                    o.close()
            raise

    def _send(self, frames: Prepared) -> None:
        """Every part gets its universes of the frame, even when one of them fails (the
        first failure is raised after the others have theirs)."""
        failed: BaseException | None = None
        for i, ((_, o), part) in enumerate(zip(self.parts, frames.packed, strict=True)):
            if not part:
                continue
            try:
                o.send(part)
            except Exception as exc:  # noqa: BLE001 - raised after the other parts' send
                self.part_errors[i] += 1
                failed = failed or exc
        if failed is not None:
            raise failed

    def close(self) -> None:
        """Close every part (each blacks out first), whatever one of them does."""
        if self._closed:
            return
        failed: BaseException | None = None
        for label, o in self.parts:
            try:
                o.close()
            except Exception as exc:  # noqa: BLE001 - raised after the other parts close
                log.error("output %s: closing failed: %s", label, exc)
                failed = failed or exc
        self._closed = True
        if failed is not None:
            raise failed

    def targets(self) -> tuple[str, ...]:
        return tuple(t for _, o in self.parts for t in o.targets())

    def addresses(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a for _, o in self.parts for a in o.addresses()))

    def health(self) -> dict:
        h = super().health()
        parts = []
        for (label, o), raised in zip(self.parts, self.part_errors, strict=True):
            ph = o.health()
            ph["label"] = label
            if raised:
                ph["raised"] = raised
            parts.append(ph)
        h["outputs"] = parts
        h["ok"] = h["ok"] and all(p.get("ok", False) for p in parts)
        for key in ("errors", "dropped", "refused", "unresolved"):
            total = sum(int(p[key]) for p in parts if isinstance(p.get(key), int | float)
                        and not isinstance(p.get(key), bool))
            if total or any(key in p for p in parts):
                h[key] = total
        return h
