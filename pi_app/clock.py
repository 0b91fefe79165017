"""The frame clock: drift-free nominal deadlines at the show's fps.

Frame k is due at ``start + k / fps`` (a multiplication, never a running sum, so there is no
drift however long the show runs). `wait()` sleeps to a monotonic deadline. A frame's sleep
(at most `SLEEP_MAX_S`) is a plain `time.sleep`, which costs the process ~45 µs less CPU a
frame than an `Event.wait` with a timeout (a lock made, waited on and dropped each time); a
stop request set during it is seen at the next frame. Longer waits (a slow fps, `idle`) wait
on the stop `Event`, which wakes them at once. A frame that comes too late to be useful is
counted and skipped — deadlines are never bunched to catch up.

`FastClock` is the same clock on virtual time: `wait()` returns at once, as if each deadline
had come. A show on it computes exactly the frames a real-time show computes (frame k is
still at show time k / fps), as fast as the machine can: tests use it where real time proves
nothing, e.g. ``Show(config, output, clock=FastClock)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

SLEEP_MAX_S = 0.05        # a frame's wait up to this long: time.sleep (see above)


class FrameClock:
    def __init__(self, fps: float, *, now: Callable[[], float] = time.monotonic,
                 stop: threading.Event | None = None) -> None:
        if not fps > 0:
            raise ValueError("fps must be positive")
        self.fps = float(fps)
        self.period_s = 1.0 / self.fps
        self._now = now
        self._stop = stop or threading.Event()
        # the plain sleep only on the real clock with a real stop event (tests inject both)
        self._sleep = time.sleep if now is time.monotonic and \
            isinstance(self._stop, threading.Event) else None
        self.start_s = now()
        self.frame = 0          # index of the next frame to produce
        self.late = 0           # frames whose deadline had passed by more than a period

    def now(self) -> float:
        """The clock's idea of the current time (monotonic seconds)."""
        return self._now()

    def due(self, k: int) -> float:
        """Monotonic time at which frame k is due."""
        return self.start_s + k / self.fps

    def t_s(self, k: int | None = None) -> float:
        """Nominal show time of frame k (the next frame by default)."""
        return (self.frame if k is None else k) / self.fps

    def wait(self) -> int:
        """Wait for the next frame's deadline; return its index. Late frames are skipped.

        Returns early (with the same index) if the stop event is set (a wait longer than
        `SLEEP_MAX_S`: at once; a shorter one: at its end)."""
        k = self.frame
        now = self._now()
        behind = now - self.due(k)
        if behind > self.period_s:
            skip = int(behind * self.fps)          # whole periods missed
            self.late += skip
            k += skip
        else:
            delay = self.due(k) - now
            if delay > 0:
                if delay <= SLEEP_MAX_S and self._sleep is not None:
                    if not self._stop.is_set():
                        self._sleep(delay)
                else:
                    self._stop.wait(delay)
        self.frame = k + 1
        return k

    def idle(self, seconds: float) -> int:
        """Sleep up to `seconds` (the stop event ends it early), then return the index of the
        frame due now. The frames in between are not produced and not counted late: the show
        holds still (a paused or dark show sends its frame a few times a second)."""
        self._stop.wait(seconds)
        k = max(self.frame, int((self._now() - self.start_s) * self.fps))
        self.frame = k + 1
        return k


class FastClock(FrameClock):
    """A frame clock on virtual time: every deadline has come as soon as it is waited for.

    No frame is ever late and nothing sleeps; `now()` is the due time of the last frame
    handed out, so anything timed by the clock sees the nominal frame times."""

    def __init__(self, fps: float, *, stop: threading.Event | None = None, **_: object) -> None:
        self._virtual = 0.0
        super().__init__(fps, now=lambda: self._virtual, stop=stop)

    def wait(self) -> int:
        k = self.frame
        self._virtual = max(self._virtual, self.due(k))
        self.frame = k + 1
        return k
