"""Mapper: model output -> scene in [0, 1]; bundled models through the mapper."""

from __future__ import annotations

import numpy as np
import pytest

from pi_app.mapper import ImageMapper, PointsMapper, make_mapper, streams_for
from pi_app.runtime import list_models, load_model
from pi_app.scene import BLUE, DIMMER, GREEN, PAN, RED, TILT, WHITE
from pi_app.walk import LatentWalk


@pytest.mark.parametrize("name", sorted({n for n, where in list_models() if where == "bundled"}))
def test_bundled_models_give_scenes_in_range(name):
    model = load_model(name)
    positions = np.random.default_rng(0).random((9, 2)).astype(np.float32)
    mapper = make_mapper(model.info, positions)
    walk = LatentWalk(1, streams_for(model.info, 9), model.info.latent_dim)
    scenes = np.stack([mapper(model.generate(walk.at(p))).copy()
                       for p in np.linspace(0, 6, 120)])
    assert scenes.shape == (120, 9, 7)
    assert np.isfinite(scenes).all() and scenes.min() >= 0 and scenes.max() <= 1
    assert scenes.std(axis=0)[:, DIMMER].mean() > 0.02      # the show changes over the walk
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
