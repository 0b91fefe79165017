"""Mapper: model output -> scene (per-fixture pan, tilt, dimmer, red, green, blue, white).

* `points` models (NAT): one sample per fixture; fixture i aims at its sample's (x, y)
  (pan = x, tilt = y) and takes its colour from (r, g, b, w): the brightest component sets the
  dimmer, the colour is normalised to full saturation so the dimmer alone sets intensity.
* `image` models (inverted AE): one picture for the rig; each fixture samples it (bilinear)
  at its rig position for colour and intensity, and aims along the picture's local structure:
  pan/tilt follow the intensity gradient at that point (a head leans towards brighter parts).
"""

from __future__ import annotations

import numpy as np

from .scene import ATTRS, DIMMER, PAN, RED, TILT, WHITE

_EPS = 1e-6


def _colour_to_scene(rgbw: np.ndarray, out: np.ndarray) -> None:
    """(n, 4) colour in [0, 1] -> dimmer = max component, colour = rgbw / max."""
    peak = rgbw.max(axis=1)
    out[:, DIMMER] = peak
    out[:, RED:WHITE + 1] = rgbw / np.maximum(peak, _EPS)[:, None]


class PointsMapper:
    """For `points` models with fields including x, y and r, g, b (w optional)."""

    def __init__(self, fields: tuple[str, ...], n_fixtures: int) -> None:
        idx = {f: i for i, f in enumerate(fields)}
        missing = [f for f in ("x", "y", "r", "g", "b") if f not in idx]
        if missing:
            raise ValueError(f"points model lacks fields {missing}")
        self._xy = [idx["x"], idx["y"]]
        self._rgbw = [idx["r"], idx["g"], idx["b"], idx.get("w", idx["b"])]
        self._has_w = "w" in idx
        self._scene = np.zeros((n_fixtures, len(ATTRS)), np.float32)

    def __call__(self, out: np.ndarray) -> np.ndarray:
        scene = self._scene
        scene[:, PAN:TILT + 1] = out[:, self._xy]
        rgbw = out[:, self._rgbw]
        if not self._has_w:
            rgbw[:, 3] = 0.0
        _colour_to_scene(rgbw, scene)
        return scene


class ImageMapper:
    """For `image` models: each fixture samples the picture at its rig position."""

    def __init__(self, image_shape: tuple[int, int, int], positions: np.ndarray,
                 gain: float = 4.0) -> None:
        h, w, _ = image_shape
        pos = np.asarray(positions, np.float32).reshape(-1, 2)
        # Continuous pixel coordinates of each fixture (pixel centres at i + 0.5).
        px = np.clip(pos[:, 0] * w - 0.5, 0, w - 1)
        py = np.clip(pos[:, 1] * h - 0.5, 0, h - 1)
        x0 = np.minimum(np.floor(px).astype(np.int64), w - 2 if w > 1 else 0)
        y0 = np.minimum(np.floor(py).astype(np.int64), h - 2 if h > 1 else 0)
        x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
        fx, fy = (px - x0)[:, None], (py - y0)[:, None]
        self._idx = (y0, x0, y1, x1)
        self._wts = ((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy)
        self.gain = gain
        self._scene = np.zeros((len(pos), len(ATTRS)), np.float32)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        img = image[0] if image.ndim == 4 else image            # (H, W, C)
        y0, x0, y1, x1 = self._idx
        a, b, c, d = img[y0, x0], img[y0, x1], img[y1, x0], img[y1, x1]   # (n, C)
        wa, wb, wc, wd = self._wts
        rgb = wa * a + wb * b + wc * c + wd * d
        lum = (a + b + c + d).mean(axis=1)
        # Gradient of intensity across the fixture's cell: lean towards the brighter side.
        gx = ((b + d) - (a + c)).mean(axis=1) / max(lum.mean(), 0.25)
        gy = ((c + d) - (a + b)).mean(axis=1) / max(lum.mean(), 0.25)
        scene = self._scene
        scene[:, PAN] = np.clip(0.5 + self.gain * 0.125 * gx, 0.0, 1.0)
        scene[:, TILT] = np.clip(0.5 + self.gain * 0.125 * gy, 0.0, 1.0)
        white = rgb.min(axis=1, keepdims=True)
        rgbw = np.concatenate([rgb - white, white], axis=1)
        _colour_to_scene(rgbw, scene)
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


