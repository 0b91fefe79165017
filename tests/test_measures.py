"""The quality metrics behind the cards: known answers on known distributions and shows."""

from __future__ import annotations

import numpy as np
import pytest

from pi_app.config import load_config
from pi_app.decode import Rig
from pi_app.patch import Patch
from pi_app.scene import N_ATTRS
from pi_app.training import measures as ms


@pytest.mark.slow
def test_distances_rank_distributions():
    rng = np.random.default_rng(0)
    a, b = rng.random((1500, 6)), rng.random((1500, 6))
    shifted = np.clip(rng.random((1500, 6)) + 0.2, 0, 1)
    assert ms.sliced_wasserstein(a, b) < 0.3 * ms.sliced_wasserstein(a, shifted)
    assert ms.energy_distance(a, b) < 0.1 * ms.energy_distance(a, shifted)
    assert abs(ms.gap_closed(0.02, 0.1, 0.0) - 0.8) < 1e-9 and ms.gap_closed(0.2, 0.1, 0.0) < 0


@pytest.mark.slow
def test_off_target_counts_samples_off_the_support():
    rng = np.random.default_rng(1)
    ring = rng.standard_normal((6000, 2))
    ring = 0.5 + 0.3 * ring / np.linalg.norm(ring, axis=1, keepdims=True)   # a circle
    off = ms.OffTarget.calibrate(ring[:4000], ring[4000:5000])
    assert 0.0 <= off.fraction(ring[5000:]) < 0.03                         # ~1 % by design
    centre = 0.5 + 0.05 * rng.standard_normal((1000, 2))                   # inside the ring
    assert off.fraction(centre) > 0.95


def test_show_motion_finds_a_lit_sweep_and_a_pinned_head():
    config = load_config(None)
    patch = Patch(config)
    rig = Rig.from_patch(patch)
    n, fps = 400, 40.0
    scenes = np.zeros((n, len(config.fixtures), N_ATTRS), np.float32)
    scenes[:, :, 2:] = 1.0                                     # everyone lit, white
    scenes[:, :, 0] = 0.5
    scenes[:, :, 1] = 1.0                                      # tilt pinned at its limit
    scenes[200:240, 0, 0] = np.linspace(0.5, 0.9, 40)          # head-left: 0.4 of its pan in 1 s
    scenes[240:, 0, 0] = 0.9
    frames = np.stack([rig.frames_array(patch.frames(s)) for s in scenes])
    m = ms.show_motion(rig, frames, fps)
    assert m.heads == 3 and m.lit_sweeps == 1
    assert m.at_limit_share == 1.0
    # the same move in the dark is no sweep
    scenes[150:300, 0, 2] = 0.0
    frames = np.stack([rig.frames_array(patch.frames(s)) for s in scenes])
    assert ms.show_motion(rig, frames, fps).lit_sweeps == 0


def test_glyph_figures():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((400, 4))
    basis = rng.random((4, 8, 8, 3))
    linear = np.clip(0.5 + 0.1 * np.einsum("nk,khwc->nhwc", z, basis), 0, 1)
    binary = (np.einsum("nk,khwc->nhwc", z, basis - 0.5) > 0).astype(np.float32)
    assert ms.linear_r2(z[:300], linear[:300], z[300:], linear[300:]) > 0.99
    assert ms.linear_r2(z[:300], binary[:300], z[300:], binary[300:]) < 0.8
    assert ms.bold_share(binary) == 1.0 and ms.bold_share(linear) < 0.2
    assert ms.chroma(np.zeros((2, 4, 4, 3))) == 0.0

    def lin(zz):
        return 0.5 + 0.1 * np.einsum("nk,khwc->nhwc", zz, basis)

    def step(zz):
        return (np.einsum("nk,khwc->nhwc", zz, basis - 0.5) > 0).astype(np.float32)

    assert ms.midpoint_vs_crossfade(step, 4) > ms.midpoint_vs_crossfade(lin, 4)
