"""Mapper: model output -> scene in [0, 1]; bundled models through the mapper."""

from __future__ import annotations

import numpy as np
import pytest

from pi_app.mapper import ImageMapper, PointsMapper, make_mapper, streams_for
from pi_app.runtime import list_models, load_model
from pi_app.scene import BLUE, DIMMER, GREEN, N_ATTRS, PAN, RED, TILT, WHITE
from pi_app.walk import LatentWalk


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted({n for n, where in list_models() if where == "bundled"}))
def test_bundled_models_give_scenes_in_range(name):
    model = load_model(name)
    positions = np.random.default_rng(0).random((9, 2)).astype(np.float32)
    mapper = make_mapper(model.info, positions)
    walk = LatentWalk(1, streams_for(model.info, 9), model.info.latent_dim)
    scenes = np.stack([mapper(model.generate(walk.at(p))).copy()
                       for p in np.linspace(0, 6, 120)])
    assert scenes.shape == (120, 9, N_ATTRS)
    assert np.isfinite(scenes).all() and scenes.min() >= 0 and scenes.max() <= 1
    # the show changes over the walk: its light or its colour (iae-glyphs keeps its level and
    # changes colour: dimmer 0.014, colour 0.19)
    light = scenes[:, :, [DIMMER, RED, GREEN, BLUE, WHITE]]
    assert light.std(axis=0).max(axis=1).mean() > 0.02
    assert scenes[:, :, RED:WHITE + 1].max(axis=2).min() > 0.99 or \
        scenes[:, :, DIMMER].min() < 1e-3                    # colour normalised to full


def test_points_mapper_normalises_colour():
    m = PointsMapper(("x", "y", "r", "g", "b", "w"), 2)
    s = m(np.array([[0.1, 0.9, 0.5, 0.25, 0.0, 0.0], [0.5, 0.5, 0, 0, 0, 0]], np.float32))
    assert s[0, PAN] == pytest.approx(0.1) and s[0, TILT] == pytest.approx(0.9)
    assert s[0, DIMMER] == pytest.approx(0.5)
    assert (s[0, RED], s[0, GREEN], s[0, BLUE]) == pytest.approx((1.0, 0.5, 0.0))
    assert s[1, DIMMER] == 0 and np.isfinite(s).all()


def test_image_mapper_samples_at_rig_position_and_leans_to_light():
    img = np.zeros((16, 16, 3), np.float32)
    img[:, :8] = (1.0, 0.0, 0.0)             # left half red
    img[:, 8:] = (0.0, 0.0, 1.0)             # right half blue
    img[:, 12:, 1] = 1.0                     # far right: cyan, brighter
    m = ImageMapper((16, 16, 3), np.array([[0.2, 0.5], [0.6, 0.5]]))
    s = m(img[None])
    assert s[0, RED] == pytest.approx(1.0) and s[0, BLUE] == pytest.approx(0.0)
    assert s[1, BLUE] == pytest.approx(1.0) and s[1, RED] == pytest.approx(0.0)
    assert s[1, PAN] > 0.5                   # brighter to the right: leans right
    assert s[0, TILT] == pytest.approx(0.5)  # no vertical structure: level


def _dense_image_mapper(img, pos, window=0.12, reach=0.03, margin=0.02):
    """The image mapper written out plainly (the whole Gaussian window per fixture, as
    58fc28d..1c61dd1 computed it): the reference the separable one must match."""
    h, w, _ = img.shape
    pos = np.asarray(pos, np.float32)
    flat = img.reshape(-1, 3)
    px = np.clip(pos[:, 0] * w - 0.5, 0, w - 1)
    py = np.clip(pos[:, 1] * h - 0.5, 0, h - 1)
    x0 = np.clip(np.floor(px).astype(np.int64), 0, max(w - 2, 0))
    y0 = np.clip(np.floor(py).astype(np.int64), 0, max(h - 2, 0))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = np.clip(px - x0, 0, 1), np.clip(py - y0, 0, 1)
    idx = np.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1], 1)
    wts = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy],
                   1).astype(np.float32)[:, :, None]
    rgb = (flat[idx] * wts).sum(axis=1)
    gx, gy = np.meshgrid((np.arange(w, dtype=np.float32) + 0.5) / w,
                         (np.arange(h, dtype=np.float32) + 0.5) / h)
    dx, dy = gx.ravel()[None] - pos[:, :1], gy.ravel()[None] - pos[:, 1:]
    win = np.exp(-0.5 * (dx ** 2 + dy ** 2) / window ** 2)
    win /= win.sum(axis=1, keepdims=True)
    lum = flat.mean(axis=1).astype(np.float64)
    mass = win @ lum + 0.02
    off = np.stack([(win * dx) @ lum / mass, (win * dy) @ lum / mass], axis=1)
    aim = 0.5 + (0.5 - margin) * np.tanh(off / reach)
    white = rgb.min(axis=1, keepdims=True)
    rgbw = np.concatenate([rgb - white, white], axis=1)
    peak = rgbw.max(axis=1)
    return aim, peak, rgbw / np.maximum(peak, 1e-6)[:, None]


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(32, 32), (16, 24), (64, 48), (4, 4)])
def test_image_mapper_is_the_plain_formula(shape):
    """The separable window and the corner-by-corner colour give the plain formula's scene:
    colour and dimmer bit for bit, the aim within float32 rounding."""
    rng = np.random.default_rng(sum(shape))
    h, w = shape
    pos = rng.random((257, 2)).astype(np.float32)
    pos[:5] = [[0, 0], [1, 1], [0, 1], [0.5, 0.5], [1, 0]]           # corners and edges
    m = ImageMapper((h, w, 3), pos)
    for _ in range(6):
        img = rng.random((h, w, 3)).astype(np.float32) ** rng.uniform(0.5, 4)
        img[rng.random((h, w)) < 0.3] = 0.0                          # dark patches
        s = m(img[None]).copy()
        aim, peak, colour = _dense_image_mapper(img, pos)
        np.testing.assert_allclose(s[:, PAN:TILT + 1], aim, atol=2e-6)
        assert np.array_equal(s[:, DIMMER], peak)
        assert np.array_equal(s[:, RED:WHITE + 1], colour)
