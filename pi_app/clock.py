"""The frame clock: drift-free nominal deadlines at the show's fps.

Frame k is due at ``start + k / fps`` (a multiplication, never a running sum, so there is no
drift however long the show runs). `wait()` sleeps on a monotonic deadline through an
`Event`, so a stop request wakes it at once. A frame that comes too late to be useful is
counted and skipped — deadlines are never bunched to catch up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class FrameClock:
    def __init__(self, fps: float, *, now: Callable[[], float] = time.monotonic,
                 stop: threading.Event | None = None) -> None:
        if not fps > 0:
            raise ValueError("fps must be positive")
        self.fps = float(fps)
        self.period_s = 1.0 / self.fps
        self._now = now
        self._stop = stop or threading.Event()
        self.start_s = now()
        self.frame = 0          # index of the next frame to produce
        self.late = 0           # frames whose deadline had passed by more than a period

    def due(self, k: int) -> float:
        """Monotonic time at which frame k is due."""
        return self.start_s + k / self.fps

    def t_s(self, k: int | None = None) -> float:
        """Nominal show time of frame k (the next frame by default)."""
        return (self.frame if k is None else k) / self.fps

    def wait(self) -> int:
        """Wait for the next frame's deadline; return its index. Late frames are skipped.

        Returns early (with the same index) if the stop event is set."""
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
                self._stop.wait(delay)
        self.frame = k + 1
        return k
