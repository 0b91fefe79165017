"""The checker catches streams known to violate, passes good ones, and the CLI reports them."""

from __future__ import annotations

import dataclasses
import json

import hypothesis_profiles  # noqa: F401
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from pi_app.cli import main
from pi_app.config import load_config, validate
from pi_app.patch import Patch
from pi_app.safety_check import check_frames, max_in_window, transition_frames
from pi_app.scene import ATTRS, N_ATTRS
from pi_app.sim.record import ShowRecorder

BASE = load_config(None)
N = len(BASE.fixtures)


def unsafe_stream(cfg, scene_at, seconds=2.0):
    """Scenes straight into the patch, no safety stage: frames, universes, times."""
    patch = Patch(cfg)
    T = int(seconds * cfg.fps)
    frames = []
    for k in range(T):
        f = patch.frames(scene_at(k))
        frames.append(np.stack([f[u] for u in patch.universes]))
    return np.stack(frames), patch.universes, np.arange(T) / cfg.fps


def scene(**cols):
    s = np.zeros((N, N_ATTRS), np.float32)
    s[:, 0:2] = 0.5
    for k, v in cols.items():
        s[:, ATTRS.index(k)] = v
    return s


def test_transitions_hysteresis_and_dark_rule():
    x = np.array([0, 0.5, 0.45, 0.5, 0.0, 0.05, 0.0, 0.95, 0.85, 1.0, 0.85])[:, None]
    ev = transition_frames(x, 0.1, np.array([True]))[0]
    assert list(ev) == [1, 4, 7]              # <0.1 wiggles and bright (>=0.8) dips ignored
    ev = transition_frames(x, 0.1, np.array([False]))[0]
    assert list(ev) == [1, 4, 7, 8, 9, 10]    # without the dark rule the bright dips count
    assert max_in_window(np.array([0, 1, 2, 40]), np.arange(41) * 25) == 3
    assert max_in_window(np.array([0, 40]), np.arange(41) * 25) == 1   # [t, t + 1 s)


@pytest.mark.parametrize("hz, fps, bad", [(3.0, 30.0, False), (4.0, 32.0, True),
                                          (10.0, 40.0, True), (25.0, 44.0, True)])
def test_square_waves_without_safety(hz, fps, bad):
    cfg = validate(BASE.replace(fps=fps))
    rep = check_frames(*unsafe_stream(cfg, lambda k: scene(
        dimmer=float((k / fps * hz) % 1 < 0.5), red=1, green=1, blue=1, white=1)), cfg)
    assert rep.ok is not bad
    if bad:
        assert any("rig" in v for v in rep.violations)
        assert rep.rig.flashes_per_s > 3
        if hz <= 10:
            assert rep.rig.flashes_per_s == pytest.approx(hz, abs=0.5)


def test_red_flashes_counted_on_their_own():
    cfg = validate(BASE.replace(fps=40.0))
    # saturated red, 0.6 <-> 0.8 dimmer at 8 Hz: luminance moves 0.02 (no flash), red 0.2
    rep = check_frames(*unsafe_stream(cfg, lambda k: scene(
        dimmer=0.6 + 0.2 * ((k // 5) % 2), red=1)), cfg)
    assert rep.rig.flashes_per_s == 0 and rep.rig.red_flashes_per_s > 3
    assert any("red flashes" in v for v in rep.violations)


def test_bright_flicker_above_080_is_not_a_flash():
    cfg = validate(BASE.replace(fps=40.0))
    rep = check_frames(*unsafe_stream(cfg, lambda k: scene(
        dimmer=0.85 + 0.15 * (k % 2), red=1, green=1, blue=1, white=1)), cfg)
    assert rep.ok, rep.violations


def _frames_with(cfg, slot_values):
    frames, unis, times = unsafe_stream(cfg, lambda k: scene(dimmer=0.5, white=1), 1.0)
    for (u, addr), v in slot_values.items():
        frames[5:, unis.index(u), addr - 1] = v
    return frames, unis, times


def test_strobe_range_and_held_channels_caught():
    cfg = BASE
    lumeri_dimmer = BASE.fixtures[0].address + 5          # 14ch: dimmer/strobe is channel 6
    rep = check_frames(*_frames_with(cfg, {(1, lumeri_dimmer): 200}), cfg)
    assert any("outside its light range" in v for v in rep.violations)
    reset = BASE.fixtures[0].address + 13                  # 14ch: reset, held at 0
    rep = check_frames(*_frames_with(cfg, {(1, reset): 255}), cfg)
    assert any("held at 0" in v for v in rep.violations)


def test_pan_jump_caught():
    cfg = BASE
    rep = check_frames(*unsafe_stream(cfg, lambda k: scene(pan=float(k > 20), dimmer=0.3,
                                                           white=1)), cfg)
    assert any("pan moves at" in v for v in rep.violations)
    assert rep.rows[0].pan_deg_per_s > 180


def test_keep_out_crossing_caught():
    fx = dataclasses.replace(BASE.fixtures[0], keep_out=((0.4, 0.6, 0.3, 0.7),), park=(0.2, 0.5))
    cfg = validate(BASE.replace(fixtures=(fx, *BASE.fixtures[1:])))
    # a slow, legal-speed sweep straight through the box
    rep = check_frames(*unsafe_stream(cfg, lambda k: scene(pan=0.2 + 0.006 * k, dimmer=0.3,
                                                           white=1), 3.0), cfg)
    assert any("keep-out" in v for v in rep.violations)
    assert not any("moves at" in v for v in rep.violations)


@pytest.mark.slow
@given(hz=st.floats(3.6, 20.0), fps=st.integers(10, 44))
def test_any_fast_square_wave_is_caught(hz, fps):
    cfg = validate(BASE.replace(fps=float(fps)))
    rep = check_frames(*unsafe_stream(cfg, lambda k: scene(
        dimmer=float((k / fps * hz) % 1 < 0.5), white=1)), cfg)
    if hz < fps / 2 - 1:        # representable at this frame rate
        assert not rep.ok


def _record(path, cfg, scene_at, seconds=2.0):
    patch = Patch(cfg)
    rec = ShowRecorder(path, cfg.fps)
    for k in range(int(seconds * cfg.fps)):
        rec.write(patch.frames(scene_at(k)), k / cfg.fps)
    return rec.close()


def test_cli_exit_codes_and_json(tmp_path):
    cfg = BASE
    good = _record(tmp_path / "good.txt", cfg, lambda k: scene(dimmer=k / 80, white=1))
    bad = _record(tmp_path / "bad.txt", cfg,
                  lambda k: scene(dimmer=float(k % 4 < 2), red=1, green=1, blue=1, white=1))
    runner = CliRunner()
    r = runner.invoke(main, ["safety-check", str(good)])
    assert r.exit_code == 0, r.output
    assert "no violations" in r.output and "head-left" in r.output
    r = runner.invoke(main, ["safety-check", str(bad), "--json"])
    assert r.exit_code == 1
    data = json.loads(r.output)
    assert data["ok"] is False and data["rig"]["flashes_per_s"] >= 5
    r = runner.invoke(main, ["safety-check", str(bad), "--raw"])
    assert r.exit_code == 1 and "slot 1/" in r.output
    r = runner.invoke(main, ["safety-check", str(tmp_path / "missing.txt")])
    assert r.exit_code == 2 and "error:" in r.output


def test_recording_of_other_universes_is_refused_not_passed(tmp_path):
    """A strobe on a universe the rig does not patch must not pass as 'no violations'."""
    from click.testing import CliRunner

    from pi_app.cli import main
    from pi_app.sim.record import ShowRecorder

    path = tmp_path / "flash2.txt"
    rec = ShowRecorder(path, 40)
    for k in range(80):
        rec.write({2: np.full(512, 255 if (k // 2) % 2 else 0, np.uint8)}, k / 40)
    rec.close()
    r = CliRunner().invoke(main, ["safety-check", str(path)])
    assert r.exit_code == 2 and "universe(s) [2]" in r.output and "--raw" in r.output
    r = CliRunner().invoke(main, ["safety-check", str(path), "--raw"])
    assert r.exit_code == 1 and "10 flashes/s" in r.output
