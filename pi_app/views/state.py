"""Decode DMX frames back to per-fixture looks, through the patch (the inverse of `Patch`).

    rig = Rig.from_patch(patch)
    look = rig.decode(frames)        # frames: uint8 (..., n_universes, 512) in rig.universes order

`Look` holds, for every fixture (last axis of each array is the fixture, or fixture x RGB):
``colour`` — the emitted light, ``(red + white, green + white, blue + white) x dimmer`` clipped
to 0..1 (a dimmer-only fixture shows grey at its intensity); ``level`` — the dimmer (or
intensity) 0..1; ``pan``/``tilt`` — the head's physical position as a fraction 0..1 of the
profile's full range (what the fixture does, after limits, invert and offset).

`live_state(show)` is the JSON the web page and `latentdmx watch` read (from their own
threads, never the frame loop's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SLOTS = 512
_COLOURS = ("red", "green", "blue", "white")


@dataclass(frozen=True)
class FixtureInfo:
    name: str
    x: float               # rig position, 0..1 seen from the audience, left to right
    y: float               # 0..1 top to bottom
    moves: bool
    pan_deg: float
    tilt_deg: float


@dataclass
class Look:
    colour: np.ndarray     # float32 (..., n, 3) emitted light in 0..1
    level: np.ndarray      # float32 (..., n) dimmer / intensity 0..1
    pan: np.ndarray        # float32 (..., n) 0..1 of the full pan range
    tilt: np.ndarray       # float32 (..., n)


class Rig:
    """What the views need from a patch: fixtures, positions, and how to read their slots."""

    def __init__(self, fixtures: tuple[FixtureInfo, ...], universes: tuple[int, ...],
                 decoders: list[dict[str, tuple]]) -> None:
        self.fixtures = fixtures
        self.universes = universes
        self._dec = decoders      # per fixture: attr -> (flat slot, lo, span) or 16-bit pair

    @classmethod
    def from_patch(cls, patch) -> Rig:
        uidx = {u: k for k, u in enumerate(patch.universes)}
        infos, decs = [], []
        for f in patch.fixtures:
            base = uidx[f.universe] * SLOTS + f.address - 1
            dec: dict[str, tuple] = {}
            chans = f.mode.channels
            for j, ch in enumerate(chans):
                if ch.attr in ("pan", "tilt"):
                    fine = next((base + k for k, c in enumerate(chans)
                                 if c.attr == ch.attr + "_fine"), None)
                    dec[ch.attr] = ("16", base + j, fine)
                elif ch.attr in ("dimmer", "intensity") + _COLOURS:
                    dec.setdefault(ch.attr, ("8", base + j, ch.min, max(ch.max - ch.min, 1)))
            infos.append(FixtureInfo(f.name, float(f.config.position[0]),
                                     float(f.config.position[1]), bool(f.moves),
                                     float(f.profile.pan_deg), float(f.profile.tilt_deg)))
            decs.append(dec)
        return cls(tuple(infos), tuple(patch.universes), decs)

    def __len__(self) -> int:
        return len(self.fixtures)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fixtures]

    def frames_array(self, frames: dict) -> np.ndarray:
        """``{universe: uint8[512]}`` -> uint8 (n_universes, 512) in `universes` order."""
        out = np.zeros((len(self.universes), SLOTS), np.uint8)
        for k, u in enumerate(self.universes):
            f = frames.get(u)
            if f is not None:
                out[k] = f
        return out

    def decode(self, frames: np.ndarray) -> Look:
        """uint8 (..., n_universes, 512) -> `Look` with arrays shaped (..., n_fixtures[, 3])."""
        flat = np.asarray(frames).reshape(*np.shape(frames)[:-2], -1).astype(np.float32)
        lead = flat.shape[:-1]
        n = len(self.fixtures)
        colour = np.zeros(lead + (n, 3), np.float32)
        level = np.zeros(lead + (n,), np.float32)
        pan = np.full(lead + (n,), 0.5, np.float32)
        tilt = np.full(lead + (n,), 0.5, np.float32)

        def eight(spec) -> np.ndarray:
            _, slot, lo, span = spec
            return np.clip((flat[..., slot] - lo) / span, 0.0, 1.0)

        for i, dec in enumerate(self._dec):
            for attr, arr in (("pan", pan), ("tilt", tilt)):
                spec = dec.get(attr)
                if spec is not None:
                    _, coarse, fine = spec
                    arr[..., i] = flat[..., coarse] / 255.0 if fine is None else \
                        (flat[..., coarse] * 256.0 + flat[..., fine]) / 65535.0
            has_colour = any(c in dec for c in _COLOURS)
            if "dimmer" in dec:
                dim = eight(dec["dimmer"])
            elif "intensity" in dec:
                dim = eight(dec["intensity"])
            else:
                dim = np.ones(lead, np.float32)      # colour channels carry the dimmer
            if has_colour:
                white = eight(dec["white"]) if "white" in dec else 0.0
                for c, name in enumerate(_COLOURS[:3]):
                    v = eight(dec[name]) if name in dec else 0.0
                    colour[..., i, c] = np.clip((v + white) * dim, 0.0, 1.0)
                level[..., i] = dim if ("dimmer" in dec or "intensity" in dec) else \
                    colour[..., i, :].max(axis=-1)
            else:
                colour[..., i, :] = dim[..., None]   # a dimmer-only fixture: grey
                level[..., i] = dim
        return Look(colour, level, pan, tilt)

    def info_json(self) -> list[dict]:
        return [{"name": f.name, "x": f.x, "y": f.y, "moves": f.moves, "pan_deg": f.pan_deg,
                 "tilt_deg": f.tilt_deg} for f in self.fixtures]


def look_json(look: Look) -> dict:
    """One frame's `Look` as plain lists rounded for the wire."""
    return {"colour": np.round(look.colour, 3).tolist(), "level": np.round(look.level, 3).tolist(),
            "pan": np.round(look.pan, 4).tolist(), "tilt": np.round(look.tilt, 4).tolist()}


_RIGS: dict[int, tuple[object, Rig]] = {}


def rig_of(patch) -> Rig:
    """The `Rig` of a patch, cached (a reload builds a new patch, hence a new rig)."""
    hit = _RIGS.get(id(patch))
    if hit is None or hit[0] is not patch:
        rig = Rig.from_patch(patch)
        _RIGS.clear()
        _RIGS[id(patch)] = (patch, rig)
        return rig
    return hit[1]


def live_state(show) -> dict:
    """The show's status, rig and last frame sent, decoded (JSON-able; any thread may call).

    Reads only references the frame loop replaces whole each frame (`status_snapshot`, the
    output's `last_frames` entries), so it never blocks or tears the loop's work."""
    rig = rig_of(show.pipeline.patch)
    last = dict(show.output.last_frames)
    look = rig.decode(rig.frames_array(last))
    return {"status": dict(show.status_snapshot), "fixtures": rig.info_json(),
            "look": look_json(look)}
