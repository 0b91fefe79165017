"""Property tests: adversarial and random scenes -> Safety -> Patch -> checker finds nothing.

Square waves 1-25 Hz (white, saturated red, in phase across the rig), random noise, instant
full-range pan/tilt jumps (with keep-out boxes), a master dimmer toggled every frame, and
random-weight MLPs, at fps drawn from 1 to 44; each run ends as the show does (fade-out with
parking, then the blackout frame). ``HYPOTHESIS_PROFILE=dev`` runs 300 examples each.
"""

from __future__ import annotations

import dataclasses

import hypothesis_profiles  # noqa: F401  (registers and loads the profile)
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pi_app.config import load_config, validate
from pi_app.patch import Patch
from pi_app.safety import Safety
from pi_app.safety_check import check_frames
from pi_app.scene import N_ATTRS

BASE = load_config(None)


def rig(fps: float, keep_out: bool = False, **safety):
    fixtures = BASE.fixtures
    if keep_out:      # a box in front of each head's park position, e.g. the audience's eyes
        fixtures = tuple(dataclasses.replace(f, keep_out=((0.3, 0.45, 0.2, 0.8),
                                                          (0.55, 0.7, 0.6, 0.9)))
                         if "head" in f.name else f for f in fixtures)
    return validate(BASE.replace(fps=float(fps), fixtures=fixtures,
                                 safety=dataclasses.replace(BASE.safety, **safety)))


def run_chain(cfg, scene_at, seconds: float, *, master_at=None):
    """Play scene_at(k) through Safety and Patch for `seconds`, then stop as the show does.

    Returns (frames uint8[T, U, 512], universes, times_s, safety, raw scenes, safe scenes)."""
    fps = cfg.fps
    patch = Patch(cfg)
    safety = Safety(cfg, patch, fps)
    frames, raws, outs = [], [], []
    n_play = round(seconds * fps)
    k = 0
    while True:
        t = k / fps
        if k == n_play:
            safety.start_fade_out(t)
        if master_at is not None:
            safety.master = master_at(k)
        raw = scene_at(k)
        out = safety(raw, t)
        raws.append(np.array(raw, np.float32))
        outs.append(out.copy())
        f = patch.frames(out)
        frames.append(np.stack([f[u] for u in patch.universes]))
        k += 1
        if k > n_play and safety.fade_out_done(t):
            break
        assert k < n_play + 20 * fps + 10, "fade-out never finished"
    dark = patch.frames(safety.blackout(out))
    frames.append(np.stack([dark[u] for u in patch.universes]))
    times = np.arange(len(frames)) / fps
    return np.stack(frames), patch.universes, times, safety, raws, outs


def assert_safe(cfg, frames, universes, times):
    rep = check_frames(frames, universes, times, cfg)
    assert rep.ok, rep.violations
    last = frames[-1]
    assert rep.rig.flashes_per_s <= 3
    return rep, last


N = len(BASE.fixtures)
FPS = st.one_of(st.integers(1, 44).map(float), st.floats(1.0, 44.0))


@pytest.mark.slow
@given(fps=FPS, hz=st.floats(1.0, 25.0), red=st.booleans(), phase=st.booleans(),
       duty=st.floats(0.1, 0.9))
def test_square_waves_are_limited(fps, hz, red, phase, duty):
    cfg = rig(fps)
    offs = np.linspace(0, 1, N) if phase else np.zeros(N)
    colour = np.array([1, 0, 0, 0] if red else [1, 1, 1, 1], np.float32)

    def scene_at(k):
        on = ((k / fps * hz + offs) % 1.0) < duty
        s = np.zeros((N, N_ATTRS), np.float32)
        s[:, 0:2] = 0.5
        s[:, 2] = on
        s[:, 3:7] = colour
        return s

    frames, unis, times, *_ = run_chain(cfg, scene_at, 2.5)
    rep, _last = assert_safe(cfg, frames, unis, times)
    assert rep.rig.flashes_per_s <= 3 and rep.rig.red_flashes_per_s <= 3


@pytest.mark.slow
@given(fps=FPS, seed=st.integers(0, 2**32 - 1), keep_out=st.booleans())
def test_random_noise(fps, seed, keep_out):
    cfg = rig(fps, keep_out=keep_out)
    rng = np.random.default_rng(seed)
    frames, unis, times, *_ = run_chain(cfg, lambda k: rng.random((N, N_ATTRS), np.float32), 2.5)
    assert_safe(cfg, frames, unis, times)


@pytest.mark.slow
@given(fps=FPS, every=st.integers(1, 20), keep_out=st.booleans(),
       pan_slew=st.sampled_from([0.0, 30.0, 180.0]))
def test_full_range_pan_jumps(fps, every, keep_out, pan_slew):
    cfg = rig(fps, keep_out=keep_out, pan_slew_deg_per_s=pan_slew)

    def scene_at(k):
        s = np.ones((N, N_ATTRS), np.float32)
        s[:, 0] = (k // every) % 2
        s[:, 1] = (k // (2 * every)) % 2
        return s

    frames, unis, times, _safety, _raws, outs = run_chain(cfg, scene_at, 2.5)
    assert_safe(cfg, frames, unis, times)
    if not keep_out:   # parked on stop (a keep-out box may stand in the way: then held)
        assert np.allclose(outs[-1][:3, 0:2], 0.5, atol=1e-4)


@pytest.mark.slow
@given(fps=FPS, period=st.integers(1, 6))
def test_master_toggled_every_frame(fps, period):
    cfg = rig(fps)
    full = np.ones((N, N_ATTRS), np.float32)
    frames, unis, times, *_ = run_chain(cfg, lambda k: full, 2.5,
                                        master_at=lambda k: float((k // period) % 2))
    assert_safe(cfg, frames, unis, times)


def random_mlp(rng, width: int, gain: float):
    """A random-weight MLP: latent z (8,) -> scene (N, N_ATTRS) through tanh layers and a
    sigmoid."""
    w1 = rng.normal(0, gain, (8, width))
    w2 = rng.normal(0, gain, (width, N * N_ATTRS))

    def f(z):
        return (1 / (1 + np.exp(-(np.tanh(z @ w1) @ w2)))).reshape(N, N_ATTRS).astype(np.float32)

    return f


@pytest.mark.slow
@given(fps=FPS, seed=st.integers(0, 2**32 - 1), speed=st.floats(0.1, 30.0),
       gain=st.floats(0.5, 8.0))
def test_random_weight_models(fps, seed, speed, gain):
    cfg = rig(fps, keep_out=True)
    rng = np.random.default_rng(seed)
    model = random_mlp(rng, 16, gain)
    z0, z1 = rng.normal(size=8), rng.normal(size=8)
    frames, unis, times, *_ = run_chain(
        cfg, lambda k: model(z0 * np.cos(speed * k / fps) + z1 * np.sin(speed * k / fps)), 2.5)
    assert_safe(cfg, frames, unis, times)
