"""The walk's phase is a pure function of show time and the live changes (pi_app/phase.py):
a daemon that computes only some frames — a late joiner, one that skips late frames — gets
exactly the frames of one that computed them all."""

from __future__ import annotations

import numpy as np
import pytest

from pi_app.phase import PhaseLine
from pi_app.pipeline import Pipeline
from pi_app.runtime import load_model

FPS = 40


def test_a_line_through_an_anchor():
    line = PhaseLine(10.0, 2.0, tempo=2.0, seconds_per_waypoint=4.0)
    assert line.at(10.0) == 2.0 and line.at(14.0) == 4.0 and line.at(6.0) == 0.0
    faster = line.since(14.0, tempo=4.0)
    assert faster.at(14.0) == 4.0 and faster.at(15.0) == 5.0        # continuous, then faster
    held = faster.since(15.0, paused=True)
    assert held.at(15.0) == held.at(1e9) == 5.0 and held.rate_per_s == 0.0
    assert held.since(20.0, paused=False).at(21.0) == 5.0 + 1.0     # resumes where it held
    assert line.jump(3.0, 0.0).at(5.0) == 1.0
    assert PhaseLine.from_json(held.to_json()) == held


# the live changes of a show, at show times (t_s, method, args): the same on every member
CHANGES = [(3.0, "set_tempo", (2.0,)), (5.0, "set_paused", (True,)),
           (6.5, "set_paused", (False,)), (8.0, "set_seed", (11,)), (9.0, "set_tempo", (0.5,))]


def _play(config, model, times):
    """Raw scenes at `times` (ascending), the changes applied when their time comes."""
    p = Pipeline(config, model)
    pending = list(CHANGES)
    out = {}
    for t in times:
        while pending and pending[0][0] <= t:
            t_c, name, args = pending.pop(0)
            getattr(p, name)(*args, t_c)
        out[t] = (p.raw_scene(t).copy(), p.phase)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["nat-aurora", "iae-glyphs"])
def test_sparse_frames_equal_every_frame(default_config, model_name):
    model = load_model(model_name)
    every = [k / FPS for k in range(12 * FPS)]
    full = _play(default_config, model, every)
    late_joiner = _play(default_config, model, [k / FPS for k in range(int(8.6 * FPS), 12 * FPS)])
    skipping = _play(default_config, model, [k / FPS for k in range(0, 12 * FPS, 7)])
    for part in (late_joiner, skipping):
        for t, (scene, phase) in part.items():
            assert phase == full[t][1], t                  # bit for bit, not approximately
            assert np.array_equal(scene, full[t][0]), t


def test_the_phase_after_the_changes(default_config):
    spw = default_config.walk.seconds_per_waypoint
    out = _play(default_config, load_model("nat-aurora"), [2.0, 4.0, 6.0, 7.5, 8.5, 11.0])
    assert out[2.0][1] == pytest.approx(2.0 / spw)
    assert out[4.0][1] == pytest.approx((3.0 + 2 * 1.0) / spw)
    assert out[6.0][1] == out[7.5][1] - 2 * 1.0 / spw == pytest.approx((3.0 + 2 * 2.0) / spw)
    assert out[8.5][1] == pytest.approx(2 * 0.5 / spw)                 # new seed: from 0
    assert out[11.0][1] == pytest.approx((2 * 1.0 + 0.5 * 2.0) / spw)


@pytest.mark.slow
def test_a_guarded_walk_in_a_group_is_computed_from_its_block():
    """A group's phase counts from the epoch (millions of waypoints): the tear-avoiding chain
    restarts every `chain_block` waypoints, so a member that joins computes the same walk at
    once; the chain steers its last waypoint of a block towards the next block's start."""
    from test_walk_guard import seam, tears, track

    from pi_app.walk import LatentWalk

    far = 4_800_000.0 + 0.37
    looks = []

    def counted(z: np.ndarray) -> np.ndarray:
        looks.append(len(z))
        return seam(z)

    late = LatentWalk(3, 4, 8, guard=counted, chain_block=32)
    joined = late.at(far).copy()
    assert late.steps <= 32 and len(looks) <= 64           # not 4.8 million chain steps
    there = LatentWalk(3, 4, 8, guard=seam, chain_block=32)
    for phase in np.arange(far - 70.0, far, 0.25):         # walked there, across two blocks
        there.at(phase)
    assert np.array_equal(there.at(far), joined)
    free = track(LatentWalk(3, 4, 8), 150)
    blocks = track(LatentWalk(3, 4, 8, guard=seam, chain_block=32), 150)
    chain = track(LatentWalk(3, 4, 8, guard=seam), 150)
    # a block's start is the chain's to reach: at most one more crossing per stream there
    assert tears(blocks) < tears(free) / 4
    assert tears(blocks) <= tears(chain) + 4 * (150 // 32)


def test_a_blackout_holds_the_walk_on_the_line(default_config):
    """A blackout holds the phase like pause, independently of it: ending the blackout does
    not end a pause, and the held line travels in a snapshot (and an older member's 5-field
    line still reads)."""
    spw = default_config.walk.seconds_per_waypoint
    p = Pipeline(default_config, load_model("nat-aurora"))
    p.raw_scene(1.0)
    p.set_blackout(True, 2.0)
    assert p.blacked_out and not p.paused
    p.raw_scene(5.0)
    assert p.phase == pytest.approx(2.0 / spw)                  # held from t = 2
    p.set_paused(True, 5.0)
    p.set_blackout(False, 6.0)
    p.raw_scene(8.0)
    assert p.paused and not p.blacked_out and p.phase == pytest.approx(2.0 / spw)
    p.set_paused(False, 8.0)
    p.raw_scene(9.0)
    assert p.phase == pytest.approx(3.0 / spw)                  # on from where it held
    line = PhaseLine(1.0, 2.0, held=True)
    assert PhaseLine.from_json(line.to_json()) == line and line.still
    assert PhaseLine.from_json([1.0, 2.0, 1.0, 6.0, False]) == PhaseLine(1.0, 2.0)
