"""The scene: what every fixture should do this frame, before the patch.

A scene is ``float32[n_fixtures, 7]`` in [0, 1]; columns are `ATTRS`, rows are the patch's
fixture order. Pan/tilt 0..1 span the profile's full range after per-fixture limits.
"""

from __future__ import annotations

import numpy as np

ATTRS: tuple[str, ...] = ("pan", "tilt", "dimmer", "red", "green", "blue", "white")
PAN, TILT, DIMMER, RED, GREEN, BLUE, WHITE = range(len(ATTRS))
COLOUR = slice(RED, WHITE + 1)          # red, green, blue, white
LIGHT = slice(DIMMER, WHITE + 1)        # everything that emits light (dimmer + colour)


def empty_scene(n_fixtures: int) -> np.ndarray:
    """A dark scene with heads centred: (n, 7) float32."""
    scene = np.zeros((n_fixtures, len(ATTRS)), dtype=np.float32)
    scene[:, PAN] = 0.5
    scene[:, TILT] = 0.5
    return scene


def blackout(scene: np.ndarray) -> np.ndarray:
    """The one definition of blackout: light and colour to 0, pan/tilt hold where they are."""
    out = np.array(scene, dtype=np.float32, copy=True)
    out[:, LIGHT] = 0.0
    return out

# Luminance weights of the colour columns (red, green, blue, white): Rec. 709 / WCAG for the
# RGB emitters; a white emitter counts fully. The patch drives dimmer-only fixtures with
# dimmer x min(colour . LUMA, 1); the safety stage derives its flash luminance from them.
LUMA = np.array([0.2126, 0.7152, 0.0722, 1.0], dtype=np.float32)

