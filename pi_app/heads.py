"""Where the heads aim: slow moves between the model's aims, as a pure function of the walk.

A head that follows the model's aim frame by frame races across the room (the walk brings a
new picture every few seconds, and a model's aims jump at its seams). Lighting programmers
move heads slowly, one position to the next, and rest in between. So the aim a head is given
is worked out here, for each head from its own grid of **slots** on the walk's phase:

* A slot is `SLOT_S` seconds of walk at tempo 1 (a whole number of waypoints, at least one).
  Head j's slots start at waypoints ``offset_j + k * L`` (L waypoints a slot), the offsets
  spread over the slot so the heads do not all move at once.
* At the start of each slot the head has the model's aim at that waypoint (the walk's plain
  waypoint of the seed, `LatentWalk.waypoint`, through the model and the mapper) and goes
  to the aim at the next slot start, in degrees, over the fewest whole waypoints (at least
  `MIN_MOVE_SHARE` of the slot) that keep its peak speed within `ease_deg_per_s` (pan and
  tilt together): an equal part of the way each waypoint, eased in and out (smoothstep, as
  the walk eases), so the head comes to rest on every waypoint of its move, as the walk
  does; then it rests until the slot ends.
* A move too far for that within its slot is made at the slot's start at once: the jump
  there makes the move-in-black stage (`moves.py`) dim the head, move it and bring it back.
  So dark repositionings come at most once a slot per head, on a grid of the walk's phase.

Everything is a pure function of (seed, model, phase): members of a group at the same phase
give the same aim whatever they did before, a frame worked out ahead is the frame, and
under music the slots (whole waypoints) fall where the music puts waypoints, on whole bars.
Smoothstep is plain arithmetic on doubles (no libm), so every machine gives the same bytes.
The speeds hold at tempo 1; a faster tempo moves faster, within the lit limit of `moves.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .scene import PAN, TILT

SLOT_S = 48.0            # a head's slot on the walk (tempo 1): at most one move in it
EASE_DEG_PER_S = 15.0    # the peak speed of a lit move, degrees/s (pan and tilt together)
EASE_SHARE = 0.4         # ... and at most this share of the lit limit (`lit_move_deg_per_s`)
MIN_MOVE_SHARE = 0.25    # a move takes at least this share of its slot (short ones unhurried)
OFFSET_STEP = 3          # head j's slots start j * OFFSET_STEP waypoints on (mod the slot)
PEAK = 1.5               # smoothstep's peak speed over its mean


def spans_deg(patch) -> np.ndarray:
    """(fixtures, 2): degrees of pan and tilt over the scene's 0..1 (the config's limits, else
    the profile's range; 0: no such axis)."""
    out = np.zeros((len(patch.fixtures), 2))
    for f in patch.fixtures:
        for k, (full, lim) in enumerate(((f.profile.pan_deg, f.config.pan_limits_deg),
                                         (f.profile.tilt_deg, f.config.tilt_limits_deg))):
            out[f.index, k] = max(0.0, (lim[1] - lim[0]) if lim != (0.0, 0.0) else full)
    return out


class HeadPaths:
    """``HeadPaths(patch, seconds_per_waypoint, lit_deg_per_s)``; per frame
    ``paths.aims(phase, aims_at)`` -> the heads' (pan, tilt), then ``paths.put(scene, aims)``.
    `aims_at(q)` gives every fixture's model aim at waypoint q, (fixtures, 2) (a source's
    cache)."""

    def __init__(self, patch, seconds_per_waypoint: float, lit_deg_per_s: float) -> None:
        self.heads = [f.index for f in patch.fixtures if f.moves]
        self.spans = [tuple(row) for row in spans_deg(patch)[self.heads].tolist()]
        self.per_slot = max(1, round(SLOT_S / seconds_per_waypoint))     # waypoints a slot
        self.slot_s = self.per_slot * seconds_per_waypoint
        self.offsets = [(j * OFFSET_STEP) % self.per_slot for j in range(len(self.heads))]
        self.ease_deg_per_s = min(EASE_DEG_PER_S, EASE_SHARE * lit_deg_per_s)
        # per head, the slot in use: (token, slot, a, b, waypoints) - a pure cache
        self._cut: list[tuple | None] = [None] * len(self.heads)
        self._idx = np.array(self.heads, np.intp)

    def __len__(self) -> int:
        return len(self.heads)

    def _slot(self, j: int, k: int, aims_at: Callable[[int], np.ndarray]) -> tuple:
        """Head j's slot k: its start and end aims (pan, tilt), the waypoints the move takes
        (0: at once, at the start)."""
        q0 = self.offsets[j] + k * self.per_slot
        h = self.heads[j]
        a = aims_at(q0)[h].tolist()
        b = aims_at(q0 + self.per_slot)[h].tolist()
        sp, st = self.spans[j]
        dist = math.hypot((b[0] - a[0]) * sp, (b[1] - a[1]) * st)
        per = self.per_slot
        need = PEAK * dist / self.ease_deg_per_s / self.slot_s * per     # waypoints
        if need > per * (1.0 + 1e-9):
            return a, b, 0                       # too far for its slot: at once, in the dark
        return a, b, max(math.ceil(need - 1e-9), math.ceil(MIN_MOVE_SHARE * per), 1)

    def aims(self, phase: float, aims_at: Callable[[int], np.ndarray],
             token: object = None) -> list[float]:
        """The heads' aims at walk `phase`, flat (pan, tilt, pan, tilt, ...). `token` names
        the source `aims_at` belongs to (a new one: its slots are worked out afresh)."""
        out: list[float] = []
        per, cut = self.per_slot, self._cut
        for j, off in enumerate(self.offsets):
            x = (phase - off) / per
            k = math.floor(x)
            c = cut[j]
            if c is None or c[0] is not token or c[1] != k:
                c = cut[j] = (token, k, *self._slot(j, k, aims_at))
            _, _, a, b, steps = c
            v = phase - (off + k * per)          # waypoints into the slot
            if v >= steps:                       # there (or a move at once): rest
                out += b
                continue
            i = math.floor(v)
            f = v - i
            e = (i + f * f * (3.0 - 2.0 * f)) / steps
            out.append(a[0] + (b[0] - a[0]) * e)
            out.append(a[1] + (b[1] - a[1]) * e)
        return out

    def put(self, scene: np.ndarray, aims: list[float]) -> np.ndarray:
        """Write the heads' aims into `scene` (in place) and return it."""
        scene[self._idx, PAN:TILT + 1] = np.array(aims, np.float32).reshape(-1, 2)
        return scene
