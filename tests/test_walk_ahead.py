"""The guarded walk's look ahead (issue 18): lazy, bounded and off the frame thread — and the
very same walk as looking at every proposal of every stream in one call."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pi_app import walk as walk_mod
from pi_app.runtime import load_model
from pi_app.walk import GUARD_ROWS, GUARD_SAMPLES, LatentWalk, _slerp


def full_choose(walk: LatentWalk, k: int, w0: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """The walk's choice as first written: every proposal of every stream through the guard
    in one call (the reference the lazy look ahead must match bit for bit)."""
    c, n, d = cands.shape
    f = np.linspace(0.0, 1.0, GUARD_SAMPLES, dtype=np.float32)
    e = f * f * (3.0 - 2.0 * f)
    a = np.broadcast_to(w0, (c, n, d)).reshape(-1, d)
    path = _slerp(a, cands.reshape(-1, d), e)
    out = walk.guard(path.reshape(-1, d).astype(np.float32))
    out = out.reshape(c, n, GUARD_SAMPLES, -1)
    worst = np.linalg.norm(np.diff(out, axis=2), axis=-1).max(axis=2)
    luck = np.random.default_rng([walk.seed, k % 2**63, 1000]).random((c, n))
    ok = (worst <= walk._calm_step) | (luck < walk.p_tear)
    first = np.argmax(ok, axis=0)
    found = ok[first, np.arange(n)]
    return np.where(found[:, None], cands[first, np.arange(n)], w0)


def nat_guard(name: str):
    model = load_model(name)
    xy = [model.info.fields.index("x"), model.info.fields.index("y")]
    return model, lambda z: model.generate_scratch(z)[:, xy]


@pytest.mark.slow
@pytest.mark.parametrize("name,streams,seed", [("nat-aurora", 7, 0), ("nat-aurora", 80, 3),
                                               ("nat-retina", 7, 5), ("nat-neon", 33, 9)])
def test_lazy_look_ahead_chooses_as_the_full_one(name, streams, seed):
    _, guard = nat_guard(name)
    walk = LatentWalk(seed, streams, 16, guard=guard, ahead=False)
    w = walk.waypoint(0)
    for k in range(1, 25):
        cands = walk._proposals(k, w)
        lazy = walk._choose(k, w, cands)
        assert np.array_equal(lazy, full_choose(walk, k, w, cands)), f"waypoint {k}"
        w = lazy


def test_scratch_generate_is_generate_and_keeps_no_buffers():
    model = load_model("nat-aurora")
    z = np.random.default_rng(1).standard_normal((3 * GUARD_SAMPLES, 16)).astype(np.float32)
    mlp = model._ops[0]
    assert np.array_equal(model.generate_scratch(z), model.generate(z.copy()))
    kept = set(mlp.buf)
    model.generate_scratch(z[:GUARD_SAMPLES])
    assert set(mlp.buf) == kept                       # a one-off batch leaves nothing behind


@pytest.mark.slow
def test_the_guard_sees_bounded_batches_on_the_helper_thread():
    _, guard = nat_guard("nat-aurora")
    seen: list[tuple[str, int]] = []

    def watched(z: np.ndarray) -> np.ndarray:
        seen.append((threading.current_thread().name, len(z)))
        return guard(z)

    streams = 2 * GUARD_ROWS // GUARD_SAMPLES + 5       # more than two guard calls' worth
    walk = LatentWalk(2, streams, 16, guard=watched)
    reference = LatentWalk(2, streams, 16, guard=guard, ahead=False)
    start = len(seen)
    for phase in np.arange(0.0, 4.0, 0.25):
        assert np.array_equal(walk.at(phase), reference.at(phase))
        time.sleep(0.05)                                # the helper works while a segment plays
        if phase == 0.0:
            start = len(seen)                           # the first segment waits, as ever
    assert max(n for _, n in seen) <= GUARD_ROWS
    later = {name for name, _ in seen[start:]}
    assert later and all(name.startswith("latentdmx-walk") for name in later), later


def test_no_helper_thread_for_an_unguarded_walk(monkeypatch):
    called = []
    monkeypatch.setattr(walk_mod, "_helper", lambda: called.append(1))
    walk = LatentWalk(0, 4, 8)
    for phase in np.arange(0.0, 3.0, 0.5):
        walk.at(phase)
    assert not called


@pytest.mark.slow
@pytest.mark.parametrize("anchor", [None, 45])
def test_crossing_into_a_block_costs_the_frame_no_look(anchor):
    """Every chain restarts at a block's plain first waypoint (every `chain_block`, and once
    after an anchor); that first look is worked out on the helper thread while the block's
    last segment plays, like any other, so the frame thread never makes one after the start
    (on a large rig one look costs more than a frame period). The same walk as without."""
    _, guard = nat_guard("nat-aurora")
    frame_thread = threading.get_ident()
    on_frame: list[int] = []

    def watched(z: np.ndarray) -> np.ndarray:
        if threading.get_ident() == frame_thread:
            on_frame.append(len(z))
        return guard(z)

    walk = LatentWalk(4, 7, 16, guard=watched, anchor=anchor)
    reference = LatentWalk(4, 7, 16, guard=guard, ahead=False, anchor=anchor)
    b = walk.chain_block
    first = anchor or 0
    phases = np.arange(first + 0.5, first + 3 * b + 0.5, 0.25)
    for i, phase in enumerate(phases):
        assert np.array_equal(walk.at(phase), reference.at(phase)), phase
        if i == 0:
            on_frame.clear()                            # the start: its first look, as ever
        time.sleep(0.01)                                # the helper works while a segment plays
    assert on_frame == [], f"{len(on_frame)} guard calls on the frame thread"
