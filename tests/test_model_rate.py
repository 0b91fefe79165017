"""A machine too slow for the model at every frame (`Pipeline.lower_model_rate`): the model
at key frames on a fixed grid of the walk's phase, interpolated between them, before a
frame is given up; the show stays a pure function of its phase (run ahead, rolled back),
and the log says so once."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from gapped_loop import play_with_gaps

from bench.rigs import rig_toml
from pi_app import ahead as ahead_mod
from pi_app.clock import FrameClock
from pi_app.config import default_config_path, parse_config
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.pipeline import MODEL_EVERY_MAX, LateFrames, Pipeline, _Source
from pi_app.runtime import load_model
from pi_app.show import Show

RIG = default_config_path().read_text(encoding="utf-8")


def slower(pipe: Pipeline, every: int) -> Pipeline:
    while pipe.model_every < every:
        assert pipe.lower_model_rate() == pipe.model_every
    return pipe


def test_key_frames_are_the_model_at_their_phase_and_straight_lines_between():
    cfg = parse_config(RIG, "<rig>")
    model = load_model(cfg.model)
    pos = np.array([f.position for f in cfg.fixtures], np.float32)
    keyed = _Source(model, cfg, 4, pos, every=4)
    K = keyed._keys_per_waypoint
    assert K == round(cfg.walk.seconds_per_waypoint * cfg.fps / 4)
    plain = _Source(model, cfg, 4, pos)
    for i in range(3 * K - 5, 3 * K + 5):               # across a waypoint
        at_key = model.generate(plain.walk.at(i / K))
        assert np.array_equal(keyed._keyed(i / K), at_key)      # bit for bit
        nxt = model.generate(plain.walk.at((i + 1) / K))
        for f in (0.25, 0.5, 0.9):
            got = keyed._keyed((i + f) / K)
            lo, hi = np.minimum(at_key, nxt), np.maximum(at_key, nxt)
            assert np.all(got >= lo - 1e-6) and np.all(got <= hi + 1e-6)
            assert np.allclose(got, at_key + np.float32((i + f) / K * K - i) * (nxt - at_key),
                               atol=1e-6)


@pytest.mark.parametrize("tempo", [1.0, 1.7])
def test_a_slower_model_runs_ahead_and_rolls_back_to_the_same_frames(monkeypatch, tempo):
    """Frames worked out ahead in batches of any size, dropped at gaps and computed again
    after a rollback: byte for byte the frames of a loop that computes each at its tick."""
    cfg = parse_config(RIG, "<rig>")
    plain = slower(Pipeline(cfg, load_model(cfg.model), seed=2), 4)
    ahead_pipe = slower(Pipeline(cfg, load_model(cfg.model), seed=2), 4)
    for p in (plain, ahead_pipe):
        p.set_tempo(tempo, 0.0)
    fps = cfg.fps
    run = ahead_mod.RunAhead(ahead_pipe, 1.0 / fps)
    clock = iter(np.arange(0.0, 1e3, 0.5e-3))
    monkeypatch.setattr(ahead_mod, "_now", lambda: next(clock))
    play_with_gaps(run, plain, fps, 300)
    assert run.batches > 10 and run.rollbacks > 10


def test_the_same_seed_plays_the_same_slower_show():
    cfg = parse_config(RIG, "<rig>")
    a = slower(Pipeline(cfg, load_model(cfg.model), seed=5), 2)
    b = Pipeline(cfg, load_model(cfg.model), seed=5)
    for k in range(200):                 # lowered later: the same keys from then on
        if k == 60:
            slower(b, 2)
        fa, fb = a.frames(k / cfg.fps), b.frames(k / cfg.fps)
        if k > 120:                       # the safety stage's state has met again
            assert all(np.array_equal(fa[u], fb[u]) for u in fa), k


def test_late_frames_within_a_window_call_for_a_lower_rate():
    late = LateFrames()
    assert not late.lower(1, 1.0)        # one hiccup
    assert not late.lower(1, 5.0)
    assert not late.lower(2, 20.0)       # the first is out of the window by now
    assert late.lower(4, 21.0)
    assert not late.lower(4, 22.0)       # counted afresh


def _late_show(rig: str, duration_s: float, caplog) -> tuple[Show, list]:
    """A show on virtual time that runs 2.5 periods a frame: every frame is late."""
    cfg = parse_config(rig, "<rig>")
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames)
    now = [0.0]

    def slow_now() -> float:
        now[0] += 2.5 / cfg.fps
        return now[0]

    def clock(fps: float, stop=None) -> FrameClock:
        return FrameClock(fps, now=slow_now, stop=stop)

    show = Show(cfg, out, control=False, clock=clock, duration_s=duration_s)
    with caplog.at_level(logging.DEBUG, logger="latentdmx"):
        show.run()
    return show, caplog.records


@pytest.mark.slow
def test_late_frames_lower_the_model_rate_before_the_frame_rate_and_say_so_once(caplog):
    """512 pars, where the model is a third of a frame's work: the model's rate halves
    (down to `MODEL_EVERY_MAX`); the frame rate stays; one line says so."""
    show, records = _late_show(rig_toml("pars512"), 20.0, caplog)
    cfg = show.config
    said = [r for r in records if "too slow for the model" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert "20 fps" in said[0].getMessage() and "show at 40 fps" in said[0].getMessage()
    assert show.pipeline.model_every == MODEL_EVERY_MAX
    assert show.fps == cfg.fps == 40
    assert show.late_frames() > 0
    assert math.isclose(show.pipeline.source._per_waypoint,
                        cfg.walk.seconds_per_waypoint * cfg.fps)


def test_late_frames_keep_the_model_when_it_is_a_small_share_of_a_frame(caplog):
    """The demo rig, where the model is a fraction of a frame's work (the safety stage and
    the patch are most of it): late frames (a busy machine) leave the show as it is, at
    every frame, and one line says why."""
    show, records = _late_show(RIG, 4.0, caplog)
    assert show.late_frames() > 0
    assert show.pipeline.model_every == 1
    assert not [r for r in records if "too slow for the model" in r.getMessage()]
    said = [r for r in records if "stays at every frame" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO
