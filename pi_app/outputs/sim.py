"""The virtual DMX universe: keeps the last frame of every universe and counts frames.

Like gpiozero's ``MockPin.states`` it can keep a history (``keep_history=True``) so tests
assert on what was sent; the show's recorder (``--record``) writes the stream to disk.
"""

from __future__ import annotations

import numpy as np

from .base import Frames, Output


class SimOutput(Output):
    name = "sim"

    def __init__(self, universes, *, blackout=None, keep_history: bool = False) -> None:
        super().__init__(universes, blackout=blackout)
        self.keep_history = keep_history
        self.history: list[dict[int, np.ndarray]] = []

    def _send(self, frames: Frames) -> None:
        if self.keep_history:
            self.history.append({u: f.copy() for u, f in frames.items()})
