"""The frame clock of a lockstep group: frame k is due at ``epoch + k / fps`` on the wall clock.

The wall clock is CLOCK_REALTIME (``time.time()``), which chrony or NTP keeps within a
fraction of a millisecond of every other member's. Waiting is still done on the monotonic
clock (an `Event` wait, so a stop request wakes it at once): the clock keeps an estimate
``offset_s`` of ``wall - monotonic`` and turns each frame's wall-clock deadline into a
monotonic one. The two clocks run at the same rate (NTP's frequency and slew corrections
act on both), so the offset only changes when the wall clock is *stepped*:

* a step of at most ``slew_limit_s`` (chrony's small corrections, a late first sync) is
  **slewed**: the frames keep their order and come up to `SLEW_RATE` (10 %) early or late
  until the show is back on the wall clock — no frame skipped or repeated, no jump;
* a larger step (a Pi that booted with no real-time clock and an hour-old time) **jumps**:
  the next frame is the one due at the new time, forward or back, and the safety stage's
  slew and flash limits carry the heads and the light there (no flash, no whip);
* both are logged, once per step.

`FastSyncClock` is the same clock on a `VirtualTime` (a monotonic counter and a wall clock
that tests can step): it never sleeps, like `pi_app.clock.FastClock`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from ..clock import FrameClock

log = logging.getLogger("latentdmx.sync")

SLEW_RATE = 0.10          # while slewing, frames come up to 10 % early or late
FOLLOW_S = 0.001          # offset changes up to this are measurement noise: followed
_READ_TRIES = 4


class SyncClock(FrameClock):
    """Frame k is due at ``epoch_s + k / fps`` wall-clock seconds; `wait()` returns k."""

    def __init__(self, fps: float, *, epoch_s: float, stop: threading.Event | None = None,
                 now: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 slew_limit_s: float = 0.25) -> None:
        super().__init__(fps, now=now, stop=stop)
        self.epoch_s = float(epoch_s)
        self._wall = wall
        self.slew_limit_s = float(slew_limit_s)
        self.offset_s = self._read_offset()     # wall - monotonic, as the show uses it
        self.frame = self.index_at(self.wall())
        self.first = self.frame                 # the first frame this member plays
        self.steps = 0                          # clock steps seen (slewed or jumped)
        self.jumps = 0
        self.slewing_s = 0.0                    # what is left to slew (+: behind the wall)
        self.last_step = ""                     # the last step, for status
        self._prev_due = -math.inf              # monotonic due time of the last frame

    # -- time -----------------------------------------------------------------------------
    def wall(self) -> float:
        return self._wall()

    def show_s(self) -> float:
        """The show time now, as this clock plays it (wall time since the epoch, slewed)."""
        return self._now() + self.offset_s - self.epoch_s

    def index_at(self, wall_s: float) -> int:
        """The first frame due at or after wall time `wall_s`."""
        return math.ceil((wall_s - self.epoch_s) * self.fps - 1e-6)

    def due(self, k: int) -> float:
        """Monotonic time at which frame k is due."""
        return self.epoch_s + k / self.fps - self.offset_s

    def wall_due(self, k: int) -> float:
        return self.epoch_s + k / self.fps

    def _read_offset(self) -> float:
        """wall - monotonic, read between two monotonic readings (retried if preempted)."""
        best = (math.inf, 0.0)
        for _ in range(_READ_TRIES):
            m0 = self._now()
            w = self._wall()
            m1 = self._now()
            span = m1 - m0
            if span < best[0]:
                best = (span, w - (m0 + m1) / 2.0)
            if span < 50e-6:
                break
        return best[1]

    def restart(self) -> None:
        """Start from the frame due now (after a wait before the first frame)."""
        self.offset_s = self._read_offset()
        self.frame = self.first = self.index_at(self.wall())
        self.late = 0

    # -- per frame ------------------------------------------------------------------------
    def wait(self) -> int:
        self.track()
        k = super().wait()
        self._prev_due = self.due(k)
        return k

    def track(self) -> None:
        """Follow the wall clock: notice a step, slew it or jump (see the module doc)."""
        err = self._read_offset() - self.offset_s
        if abs(err) <= FOLLOW_S:
            self.offset_s += err
            if self.slewing_s:
                log.info("clock: back in step with the wall clock")
                self.slewing_s = 0.0
            return
        if abs(err) <= self.slew_limit_s:
            if not self.slewing_s or abs(err) > abs(self.slewing_s) + 5 * FOLLOW_S:
                self.steps += 1               # a new step (not the rest of the last one)
                self.last_step = f"{err * 1000:+.1f} ms, slewed"
                log.warning("clock: the wall clock stepped by %+.1f ms; the show follows it "
                            "over %.1f s (frames up to %d %% %s)", err * 1000,
                            abs(err) / SLEW_RATE, SLEW_RATE * 100,
                            "early" if err > 0 else "late")
            step = max(-SLEW_RATE * self.period_s, min(SLEW_RATE * self.period_s, err))
            self.offset_s += step
            self.slewing_s = err - step if err != step else FOLLOW_S
            return
        k_old = self.frame
        self.offset_s += err
        # the frame due now, but never sooner than a period after the last one
        self.frame = max(self.index_at(self.wall()),
                         self.index_at(self._prev_due + self.period_s + self.offset_s))
        self.steps += 1
        self.jumps += 1
        self.slewing_s = 0.0
        self.last_step = f"{err:+.3f} s, jumped {self.frame - k_old:+d} frames"
        log.warning("clock: the wall clock stepped by %+.3f s; jumping %+d frames to frame %d "
                    "(the safety stage limits how fast heads and light follow)", err,
                    self.frame - k_old, self.frame)


class VirtualTime:
    """A monotonic counter and a wall clock on top of it, for tests: ``step(dt)`` moves
    the wall clock as an NTP step would; `FastSyncClock` advances `mono_s`."""

    def __init__(self, wall0_s: float) -> None:
        self.mono_s = 1000.0
        self._base = float(wall0_s) - self.mono_s

    def monotonic(self) -> float:
        return self.mono_s

    def wall(self) -> float:
        return self._base + self.mono_s

    def step(self, dt_s: float) -> None:
        self._base += dt_s


class FastSyncClock(SyncClock):
    """`SyncClock` on virtual time: every deadline has come as soon as it is waited for."""

    def __init__(self, fps: float, *, epoch_s: float, stop: threading.Event | None = None,
                 vtime: VirtualTime | None = None, wall0_s: float | None = None,
                 **kw: object) -> None:
        self.vtime = vtime or VirtualTime(time.time() if wall0_s is None else wall0_s)
        super().__init__(fps, epoch_s=epoch_s, stop=stop, now=self.vtime.monotonic,
                         wall=self.vtime.wall, **kw)  # type: ignore[arg-type]

    def wait(self) -> int:
        self.track()
        k = self.frame
        self.vtime.mono_s = max(self.vtime.mono_s, self.due(k))
        self.frame = k + 1
        self._prev_due = self.due(k)
        return k
