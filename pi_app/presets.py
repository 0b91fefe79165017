"""Presets: named looks (model, seed, walk phase, tempo, level, palette, heads still, music
settings), saved by `latentdmx preset save NAME` and recalled with a cross-fade.

A preset's level is kept under the key ``master`` (files and ``[presets.NAME]`` alike): the
look's own level, 0..1, which multiplies under the grand master (`latentdmx dim`). Saving
stores the level of the look playing (1 unless a recalled preset set another), never the
grand master; recalling sets that level and leaves the grand master where the operator put it.

Two sources, one namespace:

* ``[presets.NAME]`` tables in the config — part of the installation, read-only at run time;
* saved presets — one JSON file each in ``state_dir()/presets/`` (``$STATE_DIRECTORY`` under
  systemd: ``/var/lib/latentdmx/presets``), written atomically: a temporary file in the same
  folder, written, flushed and fsync'ed, renamed over the old one, then the folder fsync'ed.
  A power cut (or a kill) at any moment leaves the old preset whole or the new one whole,
  never a mix; a leftover temporary file is ignored and cleaned up at the next save.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ControlError
from .install_config import NAME_FIX, NAME_RE
from .paths import atomic_write, fsync_dir
from .phase import PHASE_FIX, phase_ok

SCHEMA = 1
SUFFIX = ".json"


@dataclass(frozen=True)
class Preset:
    name: str
    model: str                      # what `--model` / `latentdmx model` takes (name or path)
    seed: int
    phase: float                    # walk phase, in waypoints
    tempo: float
    master: float                   # the look's own level 0..1, under the grand master
    palette: str = ""               # "" = none
    heads_still: bool = False
    music: dict = field(default_factory=dict)     # music settings (reserved: the music stage)
    source: str = "saved"           # "saved" (state folder) or "config"
    saved_at: float = 0.0           # Unix time

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        return {"schema": SCHEMA, **d}

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "saved") -> Preset:
        names = {f.name for f in fields(cls)} - {"source"}
        kw = {k: v for k, v in data.items() if k in names}
        p = cls(**kw, source=source)
        numbers = (p.phase, p.tempo, p.master)
        if not (isinstance(p.name, str) and isinstance(p.model, str) and p.model and
                isinstance(p.seed, int) and not isinstance(p.seed, bool) and
                0 <= p.seed < 2**63 and isinstance(p.palette, str) and
                isinstance(p.heads_still, bool) and isinstance(p.music, dict) and
                all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                    for x in numbers)):
            raise ValueError("bad preset fields")
        if not (p.phase >= 0 and 0.01 <= p.tempo <= 100 and 0 <= p.master <= 1):
            raise ValueError("preset fields out of range")      # the phase's top: walk.py
        return p


def check_name(name: object, field_name: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ControlError(f"{name!r} is not a preset name", field=field_name, fix=NAME_FIX)
    return name


def check_phase(preset: Preset, file: object) -> None:
    """A preset's phase must be one a walk can play (`pi_app.phase.MAX_PHASE`)."""
    if not phase_ok(preset.phase):
        raise ControlError(f"preset {preset.name!r}: phase {preset.phase!r} is not a finite "
                           "number in range", file=file, field="phase", fix=PHASE_FIX)


# -- the store ------------------------------------------------------------------------------
class PresetStore:
    """Saved presets in `folder` (made on first save) plus the config's read-only ones."""

    def __init__(self, folder: Path, config_presets: dict[str, Preset] | None = None) -> None:
        self.folder = Path(folder)
        self.config_presets = dict(config_presets or {})

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}{SUFFIX}"

    def names(self) -> list[str]:
        return sorted(set(self.config_presets) | set(self._saved_names()))

    def _saved_names(self) -> list[str]:
        try:
            return [p.name[:-len(SUFFIX)] for p in self.folder.iterdir()
                    if p.name.endswith(SUFFIX) and not p.name.startswith(".")
                    and NAME_RE.match(p.name[:-len(SUFFIX)])]
        except OSError:
            return []

    def get(self, name: str) -> Preset:
        check_name(name)
        if name in self.config_presets:
            return self.config_presets[name]
        path = self._path(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            preset = Preset.from_json(data)
        except FileNotFoundError:
            known = ", ".join(self.names()) or "none yet"
            raise ControlError(f"no preset {name!r}", field="preset",
                               fix=f"known presets: {known}; save one with "
                                   f"`latentdmx preset save {name}`") from None
        except (OSError, ValueError, TypeError) as exc:
            raise ControlError(f"preset {name!r} is unreadable ({exc.__class__.__name__})",
                               file=path, field="preset",
                               fix="delete it (`latentdmx preset delete NAME`) and save it "
                                   "again") from None
        check_phase(preset, path)
        return preset

    def list(self) -> list[Preset]:
        out = []
        for name in self.names():
            with contextlib.suppress(ControlError):
                out.append(self.get(name))
        return out

    def save(self, preset: Preset) -> Path:
        check_name(preset.name)
        check_phase(preset, self._path(preset.name))
        if preset.name in self.config_presets:
            raise ControlError(f"{preset.name!r} is defined in the config", field="preset",
                               fix="save under another name, or edit [presets."
                                   f"{preset.name}] in the config")
        try:
            self.folder.mkdir(mode=0o750, parents=True, exist_ok=True)
            self._clean_temps()
            body = json.dumps(preset.to_json(), indent=1, sort_keys=True,
                              allow_nan=False).encode() + b"\n"
            path = self._path(preset.name)
            atomic_write(path, [body])
        except OSError as exc:
            raise ControlError(f"cannot save the preset: {exc.strerror or exc}",
                               file=self.folder, field="preset",
                               fix="check the state folder's permissions and free space "
                                   "($STATE_DIRECTORY, or ~/.local/share/latentdmx/state)"
                               ) from None
        return path

    def delete(self, name: str) -> None:
        check_name(name)
        if name in self.config_presets:
            raise ControlError(f"{name!r} is defined in the config", field="preset",
                               fix=f"remove [presets.{name}] from the config instead")
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            raise ControlError(f"no saved preset {name!r}", field="preset",
                               fix="`latentdmx preset list` shows them") from None
        except OSError as exc:
            raise ControlError(f"cannot delete: {exc.strerror or exc}", file=self._path(name),
                               field="preset", fix="check the folder's permissions") from None
        with contextlib.suppress(OSError):
            fsync_dir(self.folder)

    def _clean_temps(self) -> None:
        """Remove temporary files a crashed save left behind (older than a minute)."""
        now = time.time()
        for p in self.folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > 60:
                    p.unlink()


def config_presets(config) -> dict[str, Preset]:
    """The config's ``[presets.NAME]`` tables as `Preset`s, blanks filled from the config."""
    out = {}
    for name, p in config.presets.items():
        out[name] = Preset(
            name=name, model=p.model or config.model,
            seed=config.seed if p.seed < 0 else p.seed, phase=p.phase,
            tempo=p.tempo or config.walk.tempo,
            master=1.0 if p.master < 0 else p.master,
            palette=p.palette, heads_still=p.heads_still, music=dict(p.music), source="config")
    return out
