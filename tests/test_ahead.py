"""The next frames' walk, model and mapper in one call (issue 18): the very same frames as
computing each frame on its own, bit for bit, through every live change."""

from __future__ import annotations

import numpy as np
import pytest

from pi_app import pipeline as pipeline_mod
from pi_app.config import load_config
from pi_app.mapper import PointsMapper
from pi_app.pipeline import Pipeline
from pi_app.runtime import load_model
from pi_app.walk import LatentWalk

NAT = ("nat-aurora", "nat-neon", "nat-retina")


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("guarded", [False, True])
def test_at_many_is_at_bit_for_bit(guarded):
    model = load_model("nat-aurora")
    guard = (lambda z: model.generate_scratch(z)[:, :2]) if guarded else None
    walk = LatentWalk(3, 7, 16, guard=guard, ahead=False)
    single = LatentWalk(3, 7, 16, guard=guard, ahead=False)
    rng = np.random.default_rng(0)
    for k in (0, 1, 2, 5):
        phases = sorted((k + rng.random(8)).tolist())
        many = walk.at_many(phases)
        for i, p in enumerate(phases):
            assert same_bits(many[i], single.at(p)), (k, p)
    if guarded:          # a stream that stays put (slerp's 0 / 0) takes the other formula
        walk._segment(0)
        walk._same[:] = True
        walk._any_same = True
        single._segment(0)
        single._same[:] = True
        single._any_same = True
        phases = [0.1, 0.37, 0.9]
        many = walk.at_many(phases)
        for i, p in enumerate(phases):
            assert same_bits(many[i], single.at(p))


@pytest.mark.parametrize("name", NAT)
@pytest.mark.parametrize("batch", [1, 2, 3, 7, 13])
def test_generate_stacked_is_generate_bit_for_bit(name, batch):
    """One gemm per frame inside one matmul: not one (n * batch)-row gemm, which BLAS runs
    with other kernels (other roundings) for small batches."""
    model, other = load_model(name), load_model(name)
    assert model.stacks
    z = np.random.default_rng(batch).standard_normal((8, batch, 16)).astype(np.float32)
    many = model.generate_stacked(z)
    for i in range(8):
        assert same_bits(many[i], other.generate(z[i]))


def test_image_models_do_not_stack():
    assert not load_model("iae-glyphs").stacks


@pytest.mark.parametrize("fields", [("x", "y", "r", "g", "b", "w"), ("x", "y", "r", "g", "b"),
                                    ("r", "g", "b", "w", "y", "x")])
def test_points_mapper_many_is_call_bit_for_bit(fields):
    mapper = PointsMapper(fields, 5)
    out = np.random.default_rng(1).random((6, 5, len(fields))).astype(np.float32)
    out[0, 0] = 0.0                                       # a dark point (the epsilon)
    many = mapper.many(out)
    for i in range(6):
        assert same_bits(many[i], mapper(out[i]).copy())


def play(monkeypatch, ahead_frames: int, t_list: list[float], rows: int = 256) -> list[bytes]:
    """Frames of the default rig through a series of live changes, with the next frames
    worked out `ahead_frames` at a time (`rows` < 14: the walk alone, as for a large rig)."""
    monkeypatch.setattr(pipeline_mod, "AHEAD_FRAMES", ahead_frames)
    monkeypatch.setattr(pipeline_mod, "AHEAD_ROWS", rows)
    config = load_config(None)
    pipe = Pipeline(config, load_model("nat-aurora"), seed=4)
    changes = {
        40: lambda t: pipe.set_tempo(2.5, t),
        90: lambda t: pipe.set_paused(True, t),
        120: lambda t: pipe.set_paused(False, t),
        150: lambda t: pipe.set_seed(9, t),
        200: lambda t: pipe.set_model(load_model("nat-neon"), t),     # a cross-fade
        260: lambda t: pipe.set_blackout(True, t),
        280: lambda t: pipe.set_blackout(False, t),
        300: lambda t: pipe.recall(load_model("nat-aurora"), 2, 7.95, t, 0.0),
        330: lambda t: pipe.set_tempo(0.5, t),
    }
    out = []
    for k, t in enumerate(t_list):
        if k in changes:
            changes[k](t)
        frames = pipe.frames(t)
        out.append(b"".join(frames[u].tobytes() for u in sorted(frames)))
    return out


@pytest.mark.parametrize("rows", [pytest.param(256, marks=pytest.mark.slow), 8])
def test_frames_worked_out_ahead_are_the_frames(monkeypatch, rows):
    """Tempo, pause, seed, a model cross-fade, blackout, a preset recall, waypoints crossed
    and frames skipped (a late frame): byte for byte as frame by frame; with the model's
    rows ahead (a small rig) or the walk's alone (a large one)."""
    fps = 40
    ks = [k for k in range(420) if k % 97 not in (5, 6)]      # a few frames skipped
    t_list = [k / fps for k in ks]
    t_list[250:253] = [t + 1e-4 for t in t_list[250:253]]     # off the frame grid
    plain = play(monkeypatch, 1, t_list)
    ahead = play(monkeypatch, 8, t_list, rows)
    assert len(plain) == len(ahead)
    for k, (a, b) in enumerate(zip(plain, ahead, strict=True)):
        assert a == b, f"frame {k} differs"


def test_a_live_change_drops_the_frames_ahead(monkeypatch):
    """The frames ahead are for the walk as it was: a new tempo computes anew."""
    monkeypatch.setattr(pipeline_mod, "AHEAD_FRAMES", 8)
    pipe = Pipeline(load_config(None), load_model("nat-aurora"), seed=1)
    calls = []
    stacked = pipe.source.model.generate_stacked

    def counted(z):
        calls.append(len(z))
        return stacked(z)
    pipe.source.model.generate_stacked = counted
    for k in range(4):
        pipe.frames(k / 40)
    assert calls == [8]                       # one block for eight frames
    pipe.set_tempo(2.7, 4 / 40)               # from frame 4 on (its phase stays)
    pipe.frames(4 / 40)
    assert calls == [8]
    pipe.frames(5 / 40)                       # a phase on the new line: a new block
    assert calls == [8, 8]


def test_the_guard_keeps_its_work_buffers_per_thread_for_one_look():
    """The walk's guard reuses the model's work buffers between the calls of one segment's
    look (the same numbers as fresh ones), never across threads, and drops them after."""
    import threading

    from pi_app.pipeline import _Guard

    model = load_model("nat-aurora")
    guard = _Guard(model, [0, 1])
    rng = np.random.default_rng(2)
    zs = [rng.standard_normal((n, 16)).astype(np.float32) for n in (4096, 448, 4096)]
    for z in zs:
        assert same_bits(guard(z), model.generate_scratch(z)[:, [0, 1]])
    mine = guard._local.work
    assert len(mine) == 2                                 # one set per batch size
    theirs = []
    t = threading.Thread(target=lambda: (guard(zs[1]), theirs.append(guard._local.work)))
    t.start()
    t.join()
    assert theirs[0] is not mine and guard._local.work is mine
    guard.release()
    assert guard._local.work is None
    walk = LatentWalk(0, 7, 16, guard=guard, ahead=False)
    walk._next(0, walk.waypoint(0))                       # a look releases when done
    assert guard._local.work is None
