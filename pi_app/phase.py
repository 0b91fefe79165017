"""The walk's phase as a pure function of show time: one straight line through an anchor.

    phase(t) = phase0 + (t - t0_s) * tempo / seconds_per_waypoint      (phase0 while paused)

A live change that moves the walk (tempo, pause, resume, a new seed, a preset recall, a config
reload) does not nudge a running sum: it starts a new `PhaseLine` at the show time it takes
effect, through the phase the old line had there (tempo, pause: the walk goes on without a
jump) or through a given phase (a new seed starts at 0, a preset at its saved phase). So the
phase at any frame depends only on the frame's show time and the history of changes — never
on which frames were computed, how late they were or how long the daemon has been running.

That is what lets several daemons play one show (`pi_app.sync`): with the same line they
compute the same phase for the same frame, and a member that joins late takes the line (two
numbers and a rate) instead of replaying the show. Anything else that wants to steer the walk's
speed (music following a beat, a group's tempo change) composes the same way: re-anchor with
`since(t_s, tempo=...)` at the show time the new speed starts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

# The largest phase a show may be told to play: a year of show time at the fastest walk
# (tempo 100, 0.1 s a waypoint: 1,000 waypoints a second), 3.16e10 waypoints. Phases there
# still resolve a frame's step to 4e-6 waypoints (float64); a preset's, a snapshot's or a
# line's phase outside 0..MAX_PHASE (or not finite) is refused in one line.
MAX_PHASE = 365.25 * 86400 * 100 / 0.1
PHASE_FIX = f"use a number of waypoints from 0 to {MAX_PHASE:.4g} (a year at the fastest walk)"


def phase_ok(phase: object) -> bool:
    """Is `phase` a number a walk can be told to play: finite, 0..MAX_PHASE?"""
    return (isinstance(phase, int | float) and not isinstance(phase, bool)
            and math.isfinite(phase) and 0.0 <= phase <= MAX_PHASE)


@dataclass(frozen=True)
class PhaseLine:
    t0_s: float = 0.0                   # show time of the anchor
    phase0: float = 0.0                 # the phase there, in waypoints
    tempo: float = 1.0                  # speed multiplier
    seconds_per_waypoint: float = 6.0   # at tempo 1
    paused: bool = False                # the phase stays at phase0
    held: bool = False                  # ... as well (a blackout holds the walk like pause)

    @property
    def still(self) -> bool:
        """The phase does not move (paused, or held by a blackout)."""
        return self.paused or self.held

    @property
    def rate_per_s(self) -> float:
        """Waypoints per second of show time."""
        return 0.0 if self.still else self.tempo / self.seconds_per_waypoint

    def at(self, t_s: float) -> float:
        """The phase at show time `t_s` (before the anchor too: the line runs both ways)."""
        if self.still:
            return self.phase0
        return self.phase0 + (t_s - self.t0_s) * self.tempo / self.seconds_per_waypoint

    def since(self, t_s: float, **changes: Any) -> PhaseLine:
        """A new line from show time `t_s`, through this line's phase there (no jump),
        with `changes` (tempo, paused, held, seconds_per_waypoint)."""
        return dataclasses.replace(self, t0_s=float(t_s), phase0=self.at(t_s), **changes)

    def jump(self, t_s: float, phase: float) -> PhaseLine:
        """A new line from show time `t_s` at `phase`, at this line's speed."""
        return dataclasses.replace(self, t0_s=float(t_s), phase0=float(phase))

    def to_json(self) -> list[Any]:
        return [self.t0_s, self.phase0, self.tempo, self.seconds_per_waypoint, self.paused,
                self.held]

    @classmethod
    def from_json(cls, data: Any) -> PhaseLine:
        t0, p0, tempo, spw, paused, *held = data      # older members sent no `held`
        if len(held) > 1:
            raise ValueError("a phase line has at most 6 fields")
        if not all(math.isfinite(float(x)) for x in (t0, p0, tempo, spw)) or \
                abs(float(p0)) > MAX_PHASE:
            raise ValueError("a phase line's numbers must be finite, its phase in range")
        return cls(float(t0), float(p0), float(tempo), float(spw), bool(paused),
                   bool(held and held[0]))
