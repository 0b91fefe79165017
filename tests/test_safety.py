"""Safety stage: slow fades untouched, master, fades, blackout, slew, keep-out, park, strobe."""

from __future__ import annotations

import dataclasses
import json

import hypothesis_profiles  # noqa: F401
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pi_app.config import load_config, parse_config, validate
from pi_app.errors import ConfigError
from pi_app.patch import Patch
from pi_app.safety import DARK, Safety, segments_enter
from pi_app.scene import ATTRS, N_ATTRS

BASE = load_config(None)
N = len(BASE.fixtures)


def make(fps=40.0, fixtures=None, **safety):
    cfg = validate(BASE.replace(fps=float(fps), fixtures=fixtures or BASE.fixtures,
                                safety=dataclasses.replace(BASE.safety, **safety)))
    patch = Patch(cfg)
    return cfg, patch, Safety(cfg, patch, cfg.fps)


def scene(**cols) -> np.ndarray:
    s = np.zeros((N, N_ATTRS), np.float32)
    s[:, 0:2] = 0.5
    for k, v in cols.items():
        s[:, ATTRS.index(k)] = v
    return s


@pytest.mark.parametrize("fps", [10.0, 40.0, 44.0])
@pytest.mark.parametrize("colour", [(1, 1, 1, 1), (0, 0, 0, 1), (0.2, 0.9, 0.4, 0.3)])
def test_slow_fade_passes_unchanged(fps, colour):
    """2 s up, 2 s down (full range), once the fade-in is over: the output is the input."""
    _, _, safety = make(fps, fade_in_s=0.0)
    n = int(2 * fps)
    ramp = np.concatenate([np.arange(n + 1) / n, 1 - np.arange(1, n + 1) / n])
    for k, d in enumerate(ramp):
        raw = scene(dimmer=d, red=colour[0], green=colour[1], blue=colour[2], white=colour[3])
        out = safety(raw, k / fps)
        np.testing.assert_allclose(out, raw, atol=1e-6)


def test_fast_changes_are_slowed_not_frozen():
    _, _, safety = make(40.0, fade_in_s=0.0)
    ys = [safety.luminance().mean()]
    for k in range(200):     # a 20 Hz square wave of full white
        safety(scene(dimmer=float(k % 2), red=1, green=1, blue=1, white=1), k / 40)
        ys.append(safety.luminance().mean())
    steps = np.abs(np.diff(ys))
    assert steps.max() <= safety.lum_slew_per_s / 40 + 1e-6
    assert 0.2 < np.mean(ys[100:]) < 0.8          # it swells; it does not stick at 0 or 1


def test_master_dimmer_scales_and_clamps():
    _, _, safety = make(fade_in_s=0.0)
    raw = scene(dimmer=0.8, red=1, green=1, blue=1, white=1)
    safety.master = 0.5
    for k in range(200):
        out = safety(raw, k / 40)
    np.testing.assert_allclose(out[:, 2], 0.4, atol=1e-6)
    safety.master = 7
    assert safety.master == 1.0
    safety.master = float("nan")
    assert safety.master == 0.0
    for k in range(200, 400):
        out = safety(raw, k / 40)
    assert out[:, 2].max() == 0.0


def test_fade_in_from_dark():
    _, _, safety = make(fade_in_s=1.0)
    raw = scene(dimmer=1, red=1, green=1, blue=1, white=1)
    dims = [safety(raw, k / 40)[:, 2].copy() for k in range(160)]
    assert dims[0].max() == 0.0
    assert np.all(np.diff(np.array(dims), axis=0) >= -1e-7)
    np.testing.assert_allclose(dims[-1], 1.0)


def test_fade_out_parks_and_goes_dark():
    _, _, safety = make(fade_in_s=0.0, fade_out_s=1.0)
    raw = scene(pan=0.9, tilt=0.1, dimmer=1, red=1, green=1, blue=1, white=1)
    for k in range(200):
        safety(raw, k / 40)
    safety.start_fade_out(5.0)
    k, lum = 200, []
    while not safety.fade_out_done(k / 40):
        out = safety(raw, k / 40)
        lum.append(safety.luminance().max())
        if k / 40 < 5.0 + 1.0 - 1e-9:
            assert not safety.fade_out_done(k / 40)
        k += 1
        assert k < 200 + 40 * 10
    assert np.all(np.diff(lum) <= 1e-7)
    assert lum[-1] <= DARK
    np.testing.assert_allclose(out[:3, 0:2], 0.5, atol=1e-4)     # heads parked


def test_no_fade_out_means_done_at_once():
    _, _, safety = make(fade_out_s=0.0)
    safety(scene(dimmer=1), 0.0)
    assert not safety.fade_out_done(0.0)
    safety.start_fade_out(0.025)
    assert safety.fade_out_done(0.025)


def test_blackout_holds_pan_tilt():
    _, _patch, safety = make(fade_in_s=0.0)
    raw = scene(pan=0.8, tilt=0.2, dimmer=1, red=1, green=0.5, blue=0.2, white=0.1)
    for k in range(5):
        out = safety(raw, k / 40).copy()
    dark = safety.blackout(out)
    assert dark[:, 2:].max() == 0.0
    np.testing.assert_array_equal(dark[:, 0:2], out[:, 0:2])
    assert 0.5 < out[0, 0] < 0.8          # mid-move: held where it is, never snapped
    fresh = make()[2]
    pre = scene(pan=0.3, tilt=0.7, dimmer=1)
    np.testing.assert_array_equal(fresh.blackout(pre)[:, 0:2], pre[:, 0:2])


def test_bad_input_is_made_safe():
    _, _, safety = make(fade_in_s=0.0)
    bad = np.full((N, N_ATTRS), np.nan, np.float32)
    bad[0] = np.inf
    bad[1] = -5
    out = safety(bad, 0.0)
    assert out.dtype == np.float32 and out.shape == (N, N_ATTRS)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@pytest.mark.slow
@given(fps=st.floats(1, 44), seed=st.integers(0, 2**32 - 1),
       pan_slew=st.sampled_from([0.0, 45.0, 150.0]), tilt_slew=st.sampled_from([0.0, 10.0]))
def test_slew_limits_respected(fps, seed, pan_slew, tilt_slew):
    cfg, _patch, safety = make(fps, pan_slew_deg_per_s=pan_slew, tilt_slew_deg_per_s=tilt_slew)
    rng = np.random.default_rng(seed)
    prev = safety(rng.random((N, N_ATTRS), np.float32), 0.0).copy()
    lim = np.array([pan_slew or 540 / 3, tilt_slew or 270 / 3])
    span = np.array([[(f.pan_limits_deg[1] - f.pan_limits_deg[0]) or 540,
                      (f.tilt_limits_deg[1] - f.tilt_limits_deg[0]) or 270]
                     for f in cfg.fixtures[:3]])            # degrees of scene 0..1
    for k in range(1, 30):
        out = safety(rng.integers(0, 2, (N, N_ATTRS)).astype(np.float32), k / fps).copy()
        deg = np.abs(out[:3, 0:2] - prev[:3, 0:2]) * span
        assert (deg <= lim / fps * (1 + 1e-5) + 1e-4).all()
        prev = out


def test_colour_slew():
    _, _, safety = make(fade_in_s=0.0, colour_slew_per_s=2.0)
    prev = safety(scene(dimmer=1, red=0, green=1), 0.0).copy()
    for k in range(1, 40):
        out = safety(scene(dimmer=1, red=float(k % 2), green=float(1 - k % 2)), k / 40).copy()
        assert np.abs(out[:, 3:7] - prev[:, 3:7]).max() <= 2.0 / 40 + 1e-6
        prev = out


BOX = (0.4, 0.6, 0.3, 0.7)


@pytest.mark.slow
@given(seed=st.integers(0, 2**32 - 1), fps=st.floats(1, 44))
def test_keep_out_never_entered_or_crossed(seed, fps):
    fixtures = tuple(dataclasses.replace(f, keep_out=(BOX,), park=(0.2, 0.5))
                     if "head" in f.name else f for f in BASE.fixtures)
    _, _, safety = make(fps, fixtures=fixtures, pan_slew_deg_per_s=180.0)   # the fastest allowed
    rng = np.random.default_rng(seed)
    prev = safety(rng.random((N, N_ATTRS), np.float32), 0.0)[:3, 0:2].astype(np.float64).copy()
    box = np.broadcast_to(np.array(BOX, np.float64), (3, 4))
    for k in range(1, 60):
        target = rng.random((N, N_ATTRS), np.float32)
        target[:3, 0:2] = rng.choice([0.05, 0.5, 0.95], size=(3, 2))     # through the box
        cur = safety(target, k / fps)[:3, 0:2].astype(np.float64).copy()
        assert not segments_enter(prev, cur, box).any()
        prev = cur


def test_keep_out_slides_along_the_box():
    fixtures = tuple(dataclasses.replace(f, keep_out=(BOX,), park=(0.2, 0.5))
                     if "head" in f.name else f for f in BASE.fixtures)
    _, _, safety = make(40.0, fixtures=fixtures)
    target = scene(pan=0.8, tilt=0.9, dimmer=1)
    for k in range(400):
        out = safety(target, k / 40)
    np.testing.assert_allclose(out[:3, 0:2], [[0.8, 0.9]] * 3, atol=1e-5)   # went round it


def test_park_inside_keep_out_is_refused():
    fx = dataclasses.replace(BASE.fixtures[0], keep_out=(BOX,), park=(0.5, 0.5))
    with pytest.raises(ConfigError, match="park"):
        validate(BASE.replace(fixtures=(fx, *BASE.fixtures[1:])))


def test_zero_flashes_is_refused():
    with pytest.raises(ConfigError, match="max_flashes_per_s"):
        make(max_flashes_per_s=0.0)


STROBY = {"schema": 1, "key": "stroby", "name": "Stroby", "manufacturer": "Test",
          "modes": {"2ch": [{"attr": "dimmer", "label": "Dimmer/strobe"},
                            {"attr": "hold", "value": 0, "label": "Reset"}],
                    "held": [{"attr": "dimmer", "max": 127, "label": "Dimmer/strobe"},
                             {"attr": "hold", "value": 200, "label": "Strobe speed"}],
                    "safe": [{"attr": "dimmer", "max": 127, "label": "Dimmer/strobe"},
                             {"attr": "strobe", "label": "Shutter"}]}}


@pytest.mark.parametrize("mode, refused", [("2ch", True), ("held", True), ("safe", False)])
def test_strobe_capable_channels_are_always_refused(tmp_path, monkeypatch, mode, refused):
    """No setting lets a strobe through: a dimmer that reaches its strobe range, or a strobe
    speed held open, is refused (there is no `allow_strobe` any more, issue 11)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    d = tmp_path / "latentdmx" / "fixtures"
    d.mkdir(parents=True)
    (d / "stroby.json").write_text(json.dumps(STROBY))
    rig = f'[[fixtures]]\nname = "s"\nprofile = "stroby"\nmode = "{mode}"\n'
    cfg = parse_config(rig, "rig.toml")
    if refused:
        with pytest.raises(ConfigError, match="restrict the profile's dimmer range"):
            Safety(cfg, Patch(cfg), cfg.fps)
    else:
        Safety(cfg, Patch(cfg), cfg.fps)
