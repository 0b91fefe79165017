"""Frame clock (no drift, late frames counted and skipped) and the latent walk."""

from __future__ import annotations

import numpy as np

from pi_app.clock import FrameClock
from pi_app.walk import LatentWalk


class FakeTime:
    """A monotonic clock the test moves; `Event.wait` is replaced by advancing it."""

    def __init__(self, t0: float = 1000.0) -> None:
        self.t = t0

    def __call__(self) -> float:
        return self.t


class FakeEvent:
    def __init__(self, time: FakeTime, work_s: float = 0.0) -> None:
        self.time, self.work_s = time, work_s

    def wait(self, seconds: float) -> bool:
        self.time.t += seconds
        return False


def test_no_drift_over_a_long_run():
    clock_t = FakeTime()
    clock = FrameClock(44, now=clock_t, stop=FakeEvent(clock_t))
    start = clock.start_s
    n = 44 * 3600 * 24          # one simulated day at 44 fps
    for _ in range(2000):
        clock.wait()
        clock_t.t += 0.003      # the frame's work
    # jump far ahead in frames: deadlines are exact multiples, never a running sum
    clock.frame = n
    clock_t.t = clock.due(n) - 0.001
    k = clock.wait()
    assert k == n and clock.late == 0
    assert abs(clock_t.t - (start + n / 44)) < 1e-6


def test_late_frames_are_counted_not_bunched():
    t = FakeTime()
    clock = FrameClock(40, now=t, stop=FakeEvent(t))
    assert clock.wait() == 0
    t.t += 0.2                  # a 200 ms stall: 8 periods
    k = clock.wait()
    assert k == 8 and clock.late == 7
    before = t.t
    assert clock.wait() == 9
    assert t.t >= before        # the next frame waits for its own deadline
    assert abs(t.t - clock.due(9)) < 1e-9


def test_real_clock_holds_rate():
    import threading
    import time
    clock = FrameClock(200, stop=threading.Event())
    t0 = time.monotonic()
    for _ in range(100):
        clock.wait()
    took = time.monotonic() - t0
    assert 0.45 < took < 1.5        # 100 frames at 200 fps: ~0.5 s (generous margins)


def test_walk_is_seeded_smooth_and_loops():
    a = LatentWalk(7, 3, 16)
    b = LatentWalk(7, 3, 16)
    c = LatentWalk(8, 3, 16)
    phases = np.linspace(0, 5, 501)
    za = np.stack([a.at(p).copy() for p in phases])
    zb = np.stack([b.at(p).copy() for p in phases])
    zc = np.stack([c.at(p).copy() for p in phases])
    assert np.array_equal(za, zb) and not np.allclose(za, zc)
    steps = np.linalg.norm(np.diff(za, axis=0), axis=2)
    assert steps.max() < 0.2                      # no jumps, even across waypoints
    assert np.allclose(za[0], a.waypoint(0)) and np.allclose(za[100], a.waypoint(1), atol=1e-5)
    loop = LatentWalk(7, 3, 16, loop_waypoints=4)
    assert np.allclose(loop.at(4.25), loop.at(0.25))
    # streams are independent trajectories
    assert not np.allclose(za[:, 0], za[:, 1])
