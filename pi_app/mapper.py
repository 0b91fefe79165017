"""Mapper: model output -> scene (per-fixture pan, tilt, dimmer, red, green, blue, white).

* `points` models (NAT): one sample per fixture; fixture i aims at its sample's (x, y)
  (pan = x, tilt = y) and takes its colour from (r, g, b, w): the brightest component sets the
  dimmer, the colour is normalised to full saturation so the dimmer alone sets intensity.
* `image` models (inverted AE): one picture for the rig; each fixture samples it (bilinear)
  at its rig position for colour and intensity, and aims along the picture's structure:
  pan/tilt follow where the glyph's light lies around the fixture (the brightness-weighted
  centre in a window around it), spread over the whole range without sticking at a limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .columns import colwise, copyto
from .scene import ATTRS, DIMMER, HELD, HELD_ATTRS, PAN, RED, REST, TILT, WHITE

_EPS = 1e-6


def max_columns(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.maximum.reduce(a, axis=1, out=out)`` for a few columns, column by column in the
    order NumPy takes them (signed zeros and NaNs come out the same): one short loop per
    row costs NumPy ten times more at 1,000 fixtures."""
    np.maximum(a[:, 0], a[:, 1], out=out)
    for j in range(2, a.shape[1]):
        np.maximum(out, a[:, j], out=out)
    return out


class PointsMapper:
    """For `points` models with fields including x, y and r, g, b (w optional)."""

    def __init__(self, fields: tuple[str, ...], n_fixtures: int) -> None:
        idx = {f: i for i, f in enumerate(fields)}
        missing = [f for f in ("x", "y", "r", "g", "b") if f not in idx]
        if missing:
            raise ValueError(f"points model lacks fields {missing}")
        # Columns as slices when the model's fields are in the usual order (no copies).
        xy, rgbw = [idx["x"], idx["y"]], [idx["r"], idx["g"], idx["b"], idx.get("w", -1)]
        self._xy = slice(xy[0], xy[0] + 2) if xy[1] == xy[0] + 1 else xy
        self._rgbw = slice(rgbw[0], rgbw[0] + 4) if rgbw == list(range(rgbw[0], rgbw[0] + 4)) \
            else rgbw
        self._has_w = "w" in idx
        self._scene = np.zeros((n_fixtures, len(ATTRS)), np.float32)
        self._peak = np.zeros(n_fixtures, np.float32)

    def __call__(self, out: np.ndarray) -> np.ndarray:
        scene = self._scene
        copyto(scene[:, PAN:TILT + 1], out[:, self._xy])
        rgbw = out[:, self._rgbw]
        if not self._has_w:
            rgbw = rgbw.copy()
            rgbw[:, 3] = 0.0
        peak = max_columns(rgbw, self._peak)
        scene[:, DIMMER] = peak                  # the brightest component sets the dimmer
        np.maximum(peak, _EPS, out=peak)
        colwise(np.divide, rgbw, peak[:, None], out=scene[:, RED:WHITE + 1])   # colour at full
        return scene

    def many(self, out: np.ndarray) -> np.ndarray:
        """`__call__` for n frames' outputs (n, fixtures, fields) at once: (n, fixtures, N_ATTRS),
        a new array, each frame's the very numbers `__call__` gives (element by element,
        the same operations in the same order)."""
        scene = np.zeros((*out.shape[:-1], len(ATTRS)), np.float32)
        scene[..., PAN:TILT + 1] = out[..., self._xy]
        rgbw = out[..., self._rgbw]
        if not self._has_w:
            rgbw = rgbw.copy()
            rgbw[..., 3] = 0.0
        peak = np.maximum(rgbw[..., 0], rgbw[..., 1])            # as `max_columns`
        for j in range(2, rgbw.shape[-1]):
            np.maximum(peak, rgbw[..., j], out=peak)
        scene[..., DIMMER] = peak
        np.maximum(peak, _EPS, out=peak)
        np.divide(rgbw, peak[..., None], out=scene[..., RED:WHITE + 1])
        return scene


class ImageMapper:
    """For `image` models: each fixture samples the picture at its rig position.

    Colour and intensity: the picture at the fixture's position (bilinear). Aim: where the
    glyph's light lies around the fixture — the brightness-weighted centre of the picture
    seen through a Gaussian window of `window` (fraction of the picture) around the
    fixture's position; pan follows its left-right offset, tilt its top-bottom offset,
    squashed by tanh so heads use the whole range (offsets of `reach` reach 76 % of the way
    to a limit) and never stick at it: aims stay within `margin` of the limits.
    """

    def __init__(self, image_shape: tuple[int, int, int], positions: np.ndarray,
                 window: float = 0.12, reach: float = 0.03, margin: float = 0.02) -> None:
        h, w, _ = image_shape
        pos = np.asarray(positions, np.float32).reshape(-1, 2)
        n = len(pos)
        # Continuous pixel coordinates (pixel centres at i + 0.5), clamped to the picture.
        px = np.clip(pos[:, 0] * w - 0.5, 0, w - 1)
        py = np.clip(pos[:, 1] * h - 0.5, 0, h - 1)
        x0 = np.clip(np.floor(px).astype(np.intp), 0, max(w - 2, 0))
        y0 = np.clip(np.floor(py).astype(np.intp), 0, max(h - 2, 0))
        x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
        fx, fy = np.clip(px - x0, 0, 1), np.clip(py - y0, 0, 1)
        # The 4 corners per fixture: flat pixel indices and weights, corner by corner.
        c = image_shape[2]
        # ... as indices into the flat picture, channel by channel: (n * C,)
        self._corners = [np.ascontiguousarray((i[:, None] * c + np.arange(c)).ravel())
                         for i in (y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1)]
        # each corner's weight repeated over the channels: a product of two contiguous
        # (n, C) arrays costs NumPy a tenth of one with a broadcast (n, 1) column
        self._wts = [np.ascontiguousarray(np.repeat(np.asarray(wt, np.float32)[:, None], c, 1))
                     for wt in ((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy)]
        self._rgb = np.zeros((n, c), np.float32)                           # per frame
        self._tmp = np.zeros((n, c), np.float32)
        self._taken = np.zeros((n, c), np.float32)
        self._rgbw = np.zeros((4, n), np.float32)           # (r, g, b, w) - w, row by row
        self._peak = np.zeros(n, np.float32)
        # The aim: per fixture a Gaussian window over the pixels, and its moments. The
        # window is separable, exp(-(dx² + dy²) / 2σ²) = exp(-dx² / 2σ²) · exp(-dy² / 2σ²),
        # so it is kept as a row window (n, W) and a column window (n, H), each normalised
        # (their product sums to 1 like the whole window did): O(n (W + H)) memory, not
        # O(n W H) (10,880 pixels on a 32 x 32 picture: 5.6 MB instead of 134 MB).
        cx = (np.arange(w, dtype=np.float32) + 0.5) / w
        cy = (np.arange(h, dtype=np.float32) + 0.5) / h
        dx = cx[None] - pos[:, :1]                                         # (n, W)
        dy = cy[None] - pos[:, 1:]                                         # (n, H)
        wx = np.exp(-0.5 * dx ** 2 / window ** 2).astype(np.float32)
        wy = np.exp(-0.5 * dy ** 2 / window ** 2).astype(np.float32)
        wx /= wx.sum(axis=1, keepdims=True)
        wy /= wy.sum(axis=1, keepdims=True)
        # per frame: T = L @ [wx; wx dx]^T (H, 2n), one matmul; then the column sums of
        # wy^T * T[:, :n] (weight), wy^T * T[:, n:] (weight * dx), (wy dy)^T * T[:, :n]
        self._rows = np.ascontiguousarray(np.concatenate([wx, wx * dx]).T)   # (W, 2n)
        self._cols = np.ascontiguousarray(wy.T)                            # (H, n)
        self._cols_dy = np.ascontiguousarray((wy * dy).T)                  # (H, n)
        self._eps = np.float32(0.02)       # a dark window aims at the middle, smoothly
        self._inv_reach = np.float32(1.0 / reach)
        self._half = np.float32(0.5 - margin)
        self._n = n
        self._scene = np.zeros((n, len(ATTRS)), np.float32)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        img = image[0] if image.ndim == 4 else image                    # (H, W, C)
        flat = img.reshape(-1)                                           # (H*W*C,)
        n = self._n
        # bilinear colour, corner by corner (the order a sum over the corners takes)
        rgb, tmp = self._rgb, self._tmp
        taken = self._taken
        for k, (idx, wt) in enumerate(zip(self._corners, self._wts, strict=True)):
            np.take(flat, idx, out=taken.reshape(-1), mode="clip")   # valid: no check
            np.multiply(taken, wt, out=rgb if k == 0 else tmp)
            if k:
                rgb += tmp
        # the aim: the window's moments (see __init__)
        t = img.mean(axis=2) @ self._rows                               # (H, 2n)
        t0 = t[:, :n]
        mass = np.einsum("yi,yi->i", self._cols, t0)                    # (n,)
        mass += self._eps
        scene = self._scene
        # pan, tilt = 0.5 + half * tanh(offset / mass / reach), offset by offset
        for j, off in ((PAN, np.einsum("yi,yi->i", self._cols, t[:, n:])),
                       (TILT, np.einsum("yi,yi->i", self._cols_dy, t0))):
            np.divide(off, mass, out=off)
            np.multiply(off, self._inv_reach, out=off)
            np.tanh(off, out=off)
            np.multiply(self._half, off, out=off)
            np.add(0.5, off, out=scene[:, j])
        # colour: white = the least of the channels; the brightest component is the dimmer
        rgbw, peak = self._rgbw, self._peak                  # rgbw: (4, n), row by row
        white = rgbw[3]
        np.minimum(rgb[:, 0], rgb[:, 1], out=white)
        for j in range(2, rgb.shape[1]):
            np.minimum(white, rgb[:, j], out=white)
        for j in range(3):
            np.subtract(rgb[:, j], white, out=rgbw[j])
        max_columns(rgbw.T, peak)
        scene[:, DIMMER] = peak
        np.maximum(peak, _EPS, out=peak)
        for j in range(4):
            np.divide(rgbw[j], peak, out=scene[:, RED + j])
        return scene


class HeldColumns:
    """The held scene attributes (`scene.HELD`: zoom, ...) of the fixtures whose mode has
    them: each held at the fixture's ``held = { zoom = 0.5 }`` (0..1 of the channel's range;
    unset: the attribute's rest), or, given limits (``held = { zoom = [0.2, 0.8] }``), driven
    within them by the mapper's light: lo + (hi - lo) x the fixture's dimmer (wider as it
    brightens). A rig with no such channel is left as the mapper made it."""

    def __init__(self, fixtures: Sequence[Any]) -> None:    # patch.PatchedFixture
        n, k = len(fixtures), len(HELD_ATTRS)
        self._lo = np.repeat(REST[None, HELD], n, axis=0)
        self._span = np.zeros((n, k), np.float32)
        self.active = False
        for i, f in enumerate(fixtures):
            for j, name in enumerate(HELD_ATTRS):
                if not f.mode.has(name):
                    continue
                self.active = True
                v = f.config.held.get(name)
                if isinstance(v, list | tuple):
                    self._lo[i, j], self._span[i, j] = v[0], v[1] - v[0]
                elif v is not None:
                    self._lo[i, j] = v

    def __call__(self, scene: np.ndarray) -> np.ndarray:
        """`scene` (..., n, N_ATTRS) with its held columns written, in place."""
        if self.active:
            light = np.clip(scene[..., DIMMER:DIMMER + 1], 0.0, 1.0)
            scene[..., HELD] = self._lo + self._span * light
        return scene


def make_mapper(info, positions: np.ndarray):
    """The mapper for a model (`runtime.ModelInfo`) and the fixtures' rig positions."""
    if info.kind == "points":
        return PointsMapper(tuple(info.fields), len(positions))
    if info.kind == "image":
        return ImageMapper(tuple(info.image_shape), positions)
    raise ValueError(f"unknown model output kind {info.kind!r}")


def streams_for(info, n_fixtures: int) -> int:
    """How many latent trajectories a model needs: one per fixture, or one for the rig."""
    return n_fixtures if info.kind == "points" else 1


