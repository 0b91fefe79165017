"""The music's hold on the show: the walk's speed and phase, and the light level.

`MusicDrive` is called by the pipeline once per frame, on the frame loop's thread, and only
reads the latest `MusicState` (from `AudioInput` or `OfflineAudio`), so it costs microseconds.

* **The beat grid** in use comes from, in order: a fixed tempo (``latentdmx bpm 128`` or
  ``[music] bpm``), tap tempo (``latentdmx tap``), the audio while it is locked. While the
  audio is searching (sound but no stable beat) the last grid is held; after silence the
  show drifts back to the free walk.
* **The walk** then moves one waypoint every `beats_per_waypoint` beats, and its phase is
  pulled towards the grid so that every waypoint is reached on a beat (``align = "beat"``)
  or on beat 1 of a bar (``align = "bar"``): the speed is the tempo's, plus a correction of
  the phase error over half a waypoint, capped at +-50 %, and the speed itself glides (0.3 s)
  so the walk never jerks. With no grid, the speed glides back to the free walk's over
  ``release_s``.
* **The light level** follows the loudness inside ``energy_range`` ("master": every light x
  level; "intensity": the dimmers are set to the level) and glides back to 1 in silence.
  The safety stage comes after: the music can never make a light flash faster than it allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import MusicConfig
from ..scene import DIMMER
from .analysis import MusicState

RATE_GLIDE_S = 0.3       # time constant of the walk speed while following the beat
CORRECTION_MAX = 0.5     # the phase correction changes the speed by at most this fraction
LEVEL_GLIDE_S = 0.08     # time constant of the light level while following the loudness
HOLD_GLIDE_S = 0.5       # how fast the music takes hold of the light when sound starts
TAP_RESET_S = 2.0        # a pause longer than this between taps starts a new tempo
TAP_KEEP = 8             # taps averaged


@dataclass(frozen=True)
class Grid:
    """A beat grid: beat index at show time t = anchor_beat + (t - anchor_s) / period."""

    bpm: float
    anchor_s: float
    anchor_beat: int = 0
    downbeat: int = 0
    source: str = "audio"

    def beats_at(self, t_s: float) -> float:
        return self.anchor_beat + (t_s - self.anchor_s) * self.bpm / 60.0


class MusicDrive:
    def __init__(self, cfg: MusicConfig, audio=None) -> None:
        self.cfg = cfg
        self.audio = audio                # AudioInput | OfflineAudio | None
        self.state = MusicState()
        self.grid: Grid | None = None
        self.manual: Grid | None = None
        if cfg.bpm:
            self.manual = Grid(cfg.bpm, 0.0, source="manual")
        self._taps: list[float] = []
        self.rate = 0.0                   # waypoints per second (actual)
        self.level = 1.0                  # light level the loudness asks for
        self.hold = 0.0                   # how much the music sets the light (0 free, 1 music)
        self.lock = "off"                 # off | silent | searching | locked
        self.t_s = 0.0
        # per frame, when a list: (t, beats, lock, energy, light level, bpm, downbeat, rate)
        self.trace: list[tuple] | None = None

    @property
    def active(self) -> bool:
        """Anything to follow (audio, a fixed tempo or taps)?"""
        return self.audio is not None or self.manual is not None

    # -- live changes (between frames, on the frame loop's thread) ----------------------
    def tap(self, t_s: float) -> dict:
        """One tap at show time t_s: two or more set the tempo, the last one is a beat 1."""
        if self._taps and t_s - self._taps[-1] > TAP_RESET_S:
            self._taps = []
        self._taps = [*self._taps[-(TAP_KEEP - 1):], t_s]
        if len(self._taps) >= 2:
            period = float(np.median(np.diff(self._taps)))
            bpm = 60.0 / period
            if 20 <= bpm <= 400:
                self.manual = Grid(bpm, t_s, source="tap")
        elif self.manual is not None:            # one tap re-aligns beat 1, same tempo
            self.manual = Grid(self.manual.bpm, t_s, source=self.manual.source)
        return {"taps": len(self._taps), "bpm": round(self.manual.bpm, 1) if self.manual else 0}

    def set_bpm(self, bpm: float, t_s: float) -> None:
        """A fixed tempo from now (beat 1 now); 0 goes back to following the audio."""
        self._taps = []
        self.manual = Grid(bpm, t_s, source="manual") if bpm else None

    def reconfigure(self, cfg: MusicConfig, t_s: float) -> None:
        """New `[music]` settings (a reload); a changed fixed `bpm` starts from now."""
        old, self.cfg = self.cfg, cfg
        if cfg.bpm != old.bpm:
            self.set_bpm(cfg.bpm, t_s)

    # -- per frame ----------------------------------------------------------------------
    def _grid(self, t_s: float) -> Grid | None:
        if self.manual is not None:
            self.lock = "locked"
            return self.manual
        if self.audio is None:
            self.lock = "off"
            return None
        s = self.state = self.audio.state_at(t_s)
        if s.silent:
            self.lock = "silent"
            self.grid = None
        elif s.locked:
            self.lock = "locked"
            self.grid = Grid(s.bpm, s.anchor_s, s.anchor_beat,
                             s.downbeat if s.bar_known else 0)
        else:
            self.lock = "searching"           # hold the last grid while searching
        return self.grid

    def advance(self, t_s: float, dt: float, phase: float, free_rate: float) -> float:
        """The walk's phase step for this frame (waypoints), given its free speed."""
        self.t_s = t_s
        grid = self._grid(t_s)
        cfg = self.cfg
        if not self.rate:
            self.rate = free_rate
        if grid is None:
            want, glide = free_rate, max(cfg.release_s / 4.0, 1e-3)
        else:
            n = cfg.beats_per_waypoint
            # `phase` is the walk's at the previous frame (t_s - dt): compare like with like
            beats = grid.beats_at(t_s - max(dt, 0.0)) - (grid.downbeat if cfg.align == "bar"
                                                          else 0)
            base = grid.bpm / 60.0 / n
            err = (beats / n - phase) % 1.0
            err = err - 1.0 if err >= 0.5 else err                  # in -0.5 .. 0.5
            corr = err / max(0.5, n * 30.0 / grid.bpm)              # over half a waypoint
            want = base + max(-CORRECTION_MAX * base, min(CORRECTION_MAX * base, corr))
            glide = RATE_GLIDE_S
        if dt > 0:
            self.rate += (want - self.rate) * (1.0 - math.exp(-dt / glide))
        self._light_level(dt)
        if self.trace is not None:
            self.trace.append((t_s, grid.beats_at(t_s) if grid else math.nan, self.lock,
                               self.state.energy, 1.0 - self.hold + self.hold * self.level,
                               grid.bpm if grid else 0.0, grid.downbeat if grid else 0,
                               self.rate))
        return self.rate * max(dt, 0.0)

    def _light_level(self, dt: float) -> None:
        """Glide `level` towards the loudness and `hold` (how much music rules) to 1 or 0."""
        cfg, s = self.cfg, self.state
        if dt <= 0:
            return
        listening = cfg.energy_to != "none" and self.audio is not None and not s.silent
        glide = HOLD_GLIDE_S if listening else max(cfg.release_s / 4.0, 1e-3)
        self.hold += (float(listening) - self.hold) * (1.0 - math.exp(-dt / glide))
        if listening:
            lo, hi = cfg.energy_range
            want = lo + (hi - lo) * s.energy
            self.level += (want - self.level) * (1.0 - math.exp(-dt / LEVEL_GLIDE_S))

    def light(self, scene: np.ndarray) -> np.ndarray:
        """The scene with the music's light level applied (before the safety stage)."""
        h = self.hold
        if h < 1e-4:
            return scene
        out = scene.copy()
        if self.cfg.energy_to == "intensity":
            out[:, DIMMER] = (1.0 - h) * out[:, DIMMER] + h * self.level
        else:
            out[:, DIMMER] *= (1.0 - h) + h * self.level
        return out

    # -- for status, watch and the web page (any thread) -------------------------------
    def status(self) -> dict:
        """The music's status fields (`vocabulary.Status`); "off" and zeros when there is
        nothing to follow."""
        grid = self.manual or (self.grid if self.lock not in ("silent", "off") else None)
        out: dict = {"music": self.lock if self.active else "off",
                     "music_source": grid.source if grid else
                     ("audio" if self.audio is not None else "none"),
                     "bpm": 0.0, "beat_phase": 0.0, "bar_beat": 0,
                     "energy": round(float(self.state.energy), 2),
                     "audio": self.audio.describe if self.audio is not None else ""}
        if grid is not None:
            beats = grid.beats_at(self.t_s)
            if self.cfg.align == "bar" or grid.source != "audio":
                beats -= grid.downbeat
            out.update(bpm=round(float(grid.bpm), 1), beat_phase=round(float(beats % 1.0), 3),
                       bar_beat=math.floor(beats) % 4 + 1)
        return out
