"""The lockstep frame clock: frame k at epoch + k / fps on the wall clock; clock steps slewed
or jumped (pi_app/sync/clock.py). Virtual time for the steps, real time for the deadlines."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time

import pytest

from pi_app.sync.clock import SLEW_RATE, FastSyncClock, SyncClock, VirtualTime

EPOCH = 1767225600.0            # 2026-01-01T00:00:00Z
FPS = 40.0


def _clock(wall0: float, **kw) -> tuple[FastSyncClock, VirtualTime]:
    vt = VirtualTime(wall0)
    return FastSyncClock(FPS, epoch_s=EPOCH, vtime=vt, **kw), vt


def test_frame_k_is_due_at_epoch_plus_k_over_fps():
    wall0 = EPOCH + 28_900_000.0123          # late November 2026
    clock, vt = _clock(wall0)
    k0 = clock.wait()
    assert k0 == math.ceil((wall0 - EPOCH) * FPS - 1e-6) == clock.first
    for i in range(1, 200):
        k = clock.wait()
        assert k == k0 + i
        assert vt.wall() == pytest.approx(EPOCH + k / FPS, abs=1e-6)
    assert clock.late == 0 and clock.steps == 0


def test_two_clocks_started_apart_agree_on_the_frame_of_a_wall_time():
    a, va = _clock(EPOCH + 1000.0)
    b, vb = _clock(EPOCH + 1003.7)
    seen_a = {a.wait(): va.wall() for _ in range(400)}
    seen_b = {b.wait(): vb.wall() for _ in range(200)}
    common = set(seen_a) & set(seen_b)
    assert len(common) == 200 - 1 or len(common) == 200
    assert all(seen_a[k] == pytest.approx(seen_b[k], abs=1e-9) for k in common)


def test_real_time_frames_come_at_their_wall_clock_deadlines():
    clock = SyncClock(FPS, epoch_s=EPOCH, stop=threading.Event())
    lateness = []
    ks = []
    for _ in range(30):
        k = clock.wait()
        lateness.append(time.time() - (EPOCH + k / FPS))
        ks.append(k)
    assert ks == list(range(ks[0], ks[0] + 30))
    assert min(lateness) > -0.002                       # never early
    assert sorted(lateness)[len(lateness) // 2] < 0.010  # median within 10 ms (shared box)


@pytest.mark.parametrize("step_s", [0.1, -0.1, 0.24])
def test_a_small_step_is_slewed_frame_by_frame(step_s, caplog):
    clock, vt = _clock(EPOCH + 5000.0)
    for _ in range(10):
        clock.wait()
    vt.step(step_s)
    caplog.set_level(logging.WARNING, "latentdmx.sync")
    ks, monos = [], []
    for _ in range(int(abs(step_s) / SLEW_RATE * FPS) + 20):
        ks.append(clock.wait())
        monos.append(vt.mono_s)
    assert ks == list(range(ks[0], ks[0] + len(ks)))           # nothing skipped or repeated
    periods = [b - a for a, b in itertools.pairwise(monos)]
    assert min(periods) >= (1 - SLEW_RATE) / FPS - 1e-6      # (float64 wall-clock rounding)
    assert max(periods) <= (1 + SLEW_RATE) / FPS + 1e-6
    assert (min(periods) < 0.99 / FPS) == (step_s > 0)         # forward: faster, back: slower
    # back in step: the last frames are exactly at their wall-clock deadlines again
    assert vt.wall() == pytest.approx(EPOCH + ks[-1] / FPS, abs=1e-6)
    assert clock.slewing_s == 0.0 and clock.jumps == 0 and clock.steps == 1
    assert f"stepped by {step_s * 1000:+.1f} ms" in caplog.text


@pytest.mark.parametrize("step_s", [5.0, -5.0, 3600.0])
def test_a_large_step_jumps_to_the_frame_due_now(step_s, caplog):
    clock, vt = _clock(EPOCH + 9000.0)
    for _ in range(10):
        k_before = clock.wait()
    caplog.set_level(logging.WARNING, "latentdmx.sync")
    vt.step(step_s)
    k = clock.wait()
    assert k - k_before == pytest.approx(step_s * FPS, abs=2)
    assert vt.wall() == pytest.approx(EPOCH + k / FPS, abs=1e-6)
    assert clock.wait() == k + 1                               # and on from there
    assert clock.late == 0 and clock.jumps == 1
    assert "jumping" in caplog.text and f"{step_s:+.3f} s" in caplog.text


def test_clock_noise_is_followed_not_logged(caplog):
    clock, vt = _clock(EPOCH + 100.0)
    caplog.set_level(logging.INFO, "latentdmx.sync")
    for i in range(100):
        vt.step(0.0004 if i % 2 else -0.0004)                 # sub-millisecond jitter
        clock.wait()
    assert clock.steps == 0 and caplog.text == ""
