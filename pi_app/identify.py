"""What `latentdmx identify` puts on the rig: one fixture in steady white, to find it.

Two ways, one look for the fixture being identified (white at a level, heads aimed at the
middle of their range):

- no show drives the lights: `identify_scene`, sent straight to the output (every other
  fixture dark, heads centred);
- a show drives them: `IdentifySequence` replaces the show's scene for a while, inside the
  show's own pipeline, so the change in and the return to the show go through the safety
  stage (flash limiter, slew limits, master) like any other frame. The other fixtures go dark
  and keep their aim: a technician looking for one light must see only that one, and dark
  heads need not move.
"""

from __future__ import annotations

import numpy as np

from .scene import AIM, BLUE, DIMMER, GREEN, LIGHT, RED, WHITE, empty_scene


def _light_white(scene: np.ndarray, patch, index: int, level: float) -> None:
    fx = patch.fixtures[index]
    scene[index, AIM] = 0.5
    scene[index, DIMMER] = level
    scene[index, WHITE] = 1.0
    if not fx.mode.has("white"):            # an RGB fixture makes white from its three
        scene[index, [RED, GREEN, BLUE]] = 1.0


def identify_scene(patch, index: int, level: float) -> np.ndarray:
    """All fixtures dark and centred; fixture `index` white at `level`."""
    scene = empty_scene(len(patch.fixtures))
    _light_white(scene, patch, index, level)
    return scene


class IdentifySequence:
    """Fixtures `indices` one after another, `seconds` each, from show time `t0_s`.

    `scene(show_scene, t_s)` is the scene to play instead of the show's at `t_s`, or None once
    the sequence is over (the show then returns, through the safety stage)."""

    def __init__(self, patch, indices: list[int], level: float, seconds: float,
                 t0_s: float) -> None:
        self.patch = patch
        self.indices = list(indices)
        self.level = float(level)
        self.seconds = float(seconds)
        self.t0_s = float(t0_s)

    @property
    def end_s(self) -> float:
        return self.t0_s + self.seconds * len(self.indices)

    def scene(self, show_scene: np.ndarray, t_s: float) -> np.ndarray | None:
        k = int((t_s - self.t0_s) // self.seconds)
        if k >= len(self.indices):
            return None
        out = np.array(show_scene, dtype=np.float32, copy=True)
        out[:, LIGHT] = 0.0
        _light_white(out, self.patch, self.indices[max(k, 0)], self.level)
        return out
