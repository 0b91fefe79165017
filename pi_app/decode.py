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

from .fixtures.profile import SUBTRACTIVE
from .scene import COLOUR_ATTRS

SLOTS = 512
_COLOURS = COLOUR_ATTRS                  # the scene's colour emitters, in column order


@dataclass(frozen=True)
class FixtureInfo:
    name: str
    x: float               # rig position, 0..1 seen from the audience, left to right
    y: float               # 0..1 top to bottom
    moves: bool
    pan_deg: float
    tilt_deg: float
    pan_range: tuple[float, float] = (0.0, 1.0)    # where the config lets pan go, 0..1 of full
    tilt_range: tuple[float, float] = (0.0, 1.0)


@dataclass
class Look:
    colour: np.ndarray     # float32 (..., n, 3) emitted light in 0..1
    level: np.ndarray      # float32 (..., n) dimmer / intensity 0..1
    pan: np.ndarray        # float32 (..., n) 0..1 of the full pan range
    tilt: np.ndarray       # float32 (..., n)


class Rig:
    """What the views need from a patch: fixtures, positions, and how to read their slots.

    Decoding is a few gathers over index arrays built once: every fixture reads a dimmer, four
    colour channels and 16-bit pan/tilt; a channel it lacks reads a constant 0 or 1 slot."""

    def __init__(self, fixtures: tuple[FixtureInfo, ...], universes: tuple[int, ...],
                 idx: dict[str, np.ndarray]) -> None:
        self.fixtures = fixtures
        self.universes = universes
        self._idx = idx

    @classmethod
    def from_patch(cls, patch) -> Rig:
        uidx = {u: k for k, u in enumerate(patch.universes)}
        zero, one = len(patch.universes) * SLOTS, len(patch.universes) * SLOTS + 1
        n = len(patch.fixtures)
        light = np.full(n, one)                      # dimmer or intensity slot
        light_lo, light_span = np.zeros(n), np.ones(n)
        col = np.full((n, 4), zero)                  # red, green, blue, white slots
        col_lo, col_span = np.zeros((n, 4)), np.ones((n, 4))
        coarse, fine = np.full((n, 2), zero), np.full((n, 2), zero)
        has_pt = np.zeros((n, 2), bool)
        has_fine = np.zeros((n, 2), bool)
        has_light, has_colour = np.zeros(n, bool), np.zeros(n, bool)
        infos = []
        for f in patch.fixtures:
            i, base = f.index, uidx[f.universe] * SLOTS + f.address - 1
            chans = f.mode.channels
            for j, ch in enumerate(chans):
                span = max(ch.max - ch.min, 1) if ch.max > ch.min else 255
                lo = ch.min if ch.max > ch.min else 0
                if ch.attr in ("dimmer", "intensity") and not has_light[i]:
                    light[i], light_lo[i], light_span[i], has_light[i] = base + j, lo, span, True
                elif ch.attr in _COLOURS:
                    c = _COLOURS.index(ch.attr)
                    col[i, c], col_lo[i, c], col_span[i, c] = base + j, lo, span
                    has_colour[i] = True
                elif ch.attr in SUBTRACTIVE:         # a CMY flag: 1 - its additive colour
                    c = _COLOURS.index(SUBTRACTIVE[ch.attr])
                    col[i, c], col_lo[i, c], col_span[i, c] = base + j, lo + span, -span
                    has_colour[i] = True
                elif ch.attr in ("pan", "tilt", "pan_fine", "tilt_fine"):
                    k = 0 if ch.attr.startswith("pan") else 1
                    if ch.attr.endswith("_fine"):
                        fine[i, k], has_fine[i, k] = base + j, True
                    else:
                        coarse[i, k], has_pt[i, k] = base + j, True
            infos.append(FixtureInfo(f.name, float(f.config.position[0]),
                                     float(f.config.position[1]), bool(f.moves),
                                     float(f.profile.pan_deg), float(f.profile.tilt_deg),
                                     _range(f.profile.pan_deg, f.config.pan_limits_deg,
                                            f.config.pan_offset_deg),
                                     _range(f.profile.tilt_deg, f.config.tilt_limits_deg,
                                            f.config.tilt_offset_deg)))
        def f32(a):
            return np.asarray(a, np.float32)
        idx = {"light": light, "light_lo": f32(light_lo), "light_span": f32(light_span),
               "col": col, "col_lo": f32(col_lo), "col_span": f32(col_span),
               "coarse": coarse, "fine": fine, "has_pt": has_pt,
               "pt_scale": f32(np.where(has_fine, 256.0 / 65535.0, 1.0 / 255.0)),
               "fine_scale": f32(np.where(has_fine, 1.0 / 65535.0, 0.0)),
               "has_light": has_light, "has_colour": has_colour}
        return cls(tuple(infos), tuple(patch.universes), idx)

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
        x = self._idx
        frames = np.asarray(frames)
        lead = frames.shape[:-2]
        flat = np.empty((*lead, frames.shape[-2] * SLOTS + 2), np.float32)
        flat[..., :-2] = frames.reshape((*lead, -1))
        flat[..., -2], flat[..., -1] = 0.0, 1.0                   # the constant 0 and 1 slots
        dim = np.clip((flat[..., x["light"]] - x["light_lo"]) / x["light_span"], 0.0, 1.0)
        rgbw = np.clip((flat[..., x["col"]] - x["col_lo"]) / x["col_span"], 0.0, 1.0)
        colour = np.clip((rgbw[..., :3] + rgbw[..., 3:]) * dim[..., None], 0.0, 1.0)
        grey = ~x["has_colour"]                                   # dimmer-only: grey light
        colour[..., grey, :] = dim[..., grey, None]
        level = np.where(x["has_light"], dim, colour.max(axis=-1))
        pt = flat[..., x["coarse"]] * x["pt_scale"] + flat[..., x["fine"]] * x["fine_scale"]
        pt = np.where(x["has_pt"], pt, np.float32(0.5))
        return Look(colour.astype(np.float32), level.astype(np.float32),
                    pt[..., 0].astype(np.float32), pt[..., 1].astype(np.float32))

    def info_json(self) -> list[dict]:
        return [{"name": f.name, "x": f.x, "y": f.y, "moves": f.moves, "pan_deg": f.pan_deg,
                 "tilt_deg": f.tilt_deg} for f in self.fixtures]


def _range(full: float, limits: tuple[float, float], offset: float) -> tuple[float, float]:
    """The physical span (0..1 of the full range) a head may use, as the patch computes it."""
    if full <= 0:
        return (0.0, 1.0)
    lo, hi = limits if tuple(limits) != (0.0, 0.0) else (0.0, full)
    a, b = sorted(((lo + offset) / full, (hi + offset) / full))
    return (float(min(max(a, 0.0), 1.0)), float(min(max(b, 0.0), 1.0)))


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

    Reads only numbers and references the frame loop replaces whole each frame (the status
    is built on demand; the output's `last_frames` entries), so it never blocks the loop."""
    rig = rig_of(show.pipeline.patch)
    last = dict(show.output.last_frames)
    look = rig.decode(rig.frames_array(last))
    return {"status": dict(show.status_snapshot), "fixtures": rig.info_json(),
            "look": look_json(look)}
