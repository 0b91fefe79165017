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
* **Accents.** On the grid the light rises into every beat and falls after it (a triangle
  peaking on the beat), between ``background`` and a peak ``excitement`` of the way to full;
  beat 1 of the bar peaks highest, the other beats at `OTHER_BEATS` of it. At fast tempi the
  accents fall on every other beat, or on the bar only, so they come at most
  `ACCENT_MAX_PER_S` a second. Each accent's depth is kept within what the flash limiter
  lets through (`accent_budget`: its luminance slew, from the safety stage, over the
  brightest fixture's luminance), so the limiter passes it whole instead of flattening it.
* **The walk's pace** under the beat: a waypoint every whole number of bars, as close as can
  be to the free walk's pace (``beats_per_waypoint = 0``), faster or slower with
  ``movement_range``; a fixed ``beats_per_waypoint`` overrides it.
The safety stage comes after: the music can never make a light flash faster than it allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..config import MusicConfig
from ..scene import COLOUR, DIMMER
from .analysis import MusicState

RATE_GLIDE_S = 0.3       # time constant of the walk speed while following the beat
CORRECTION_MAX = 0.5     # the phase correction changes the speed by at most this fraction
LEVEL_GLIDE_S = 0.08     # time constant of the light level while following the loudness
HOLD_GLIDE_S = 0.5       # how fast the music takes hold of the light when sound starts
TAP_RESET_S = 2.0        # a pause longer than this between taps starts a new tempo
TAP_KEEP = 8             # taps averaged
ACCENT_MAX_PER_S = 2.2   # accents on every beat up to 132 BPM, every other beat up to 264
OTHER_BEATS = 0.6        # the other beats' accents, as a fraction of beat 1's
ACCENT_MARGIN = 0.85     # share of the flash limiter's luminance slew an accent may use
PEAK_RELEASE_S = 1.5     # the brightest fixture's luminance: held, then released this slowly


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
        self.beats = math.nan             # beat index now, from beat 1 of a bar (nan: no grid)
        self.bpm = 0.0
        # luminance slew the safety stage allows (full scale per second) and the luminance
        # weights of each fixture's colours: set by the pipeline from its safety stage
        self.accent_budget = 0.5
        self.y_weights: np.ndarray | None = None
        self.accent = 1.0                 # the accents' light factor of the last frame
        self.accent_hold = 0.0            # how much the accents set the light (0..1)
        self._dt = 0.0
        self._ypeak = 0.0
        # per frame, when a list: (t, beats, lock, energy, light level, bpm, downbeat, rate,
        # accents' factor of the frame before)
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

    def set_feel(self, **feel: float) -> None:
        """excitement, background, movement_range (0..1) from now (`latentdmx feel`)."""
        unknown = set(feel) - {"excitement", "background", "movement_range"}
        if unknown:
            raise TypeError(f"not a feel control: {sorted(unknown)}")
        self.cfg = replace(self.cfg, **feel)  # type: ignore[arg-type]

    def reconfigure(self, cfg: MusicConfig, t_s: float) -> None:
        """New `[music]` settings (a reload); a changed fixed `bpm` starts from now."""
        old, self.cfg = self.cfg, cfg
        if cfg.bpm != old.bpm:
            self.set_bpm(cfg.bpm, t_s)

    # -- per frame ----------------------------------------------------------------------
    def beats_per_waypoint(self, bpm: float, free_rate: float) -> int:
        """Beats from one waypoint to the next at `bpm`: the config's, or (0) a whole number
        of bars close to the free walk's pace (`free_rate` waypoints/s) times the movement
        range's factor (x0.5 at 0, x1 at 0.5, x2 at 1); under a bar: 2 or 1 beats."""
        cfg = self.cfg
        if cfg.beats_per_waypoint:
            return cfg.beats_per_waypoint
        pace = max(free_rate, 1e-6) * 4.0 ** (cfg.movement_range - 0.5)
        beats = bpm / 60.0 / pace
        if beats < 3.0:
            return 1 if beats < 1.5 else 2
        return 4 * max(1, round(beats / 4.0))

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
            n = self.beats_per_waypoint(grid.bpm, free_rate)
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
        if grid is not None:                # the last grid stays for the accents' release
            self.beats, self.bpm = grid.beats_at(t_s) - grid.downbeat, grid.bpm
        self._dt = max(dt, 0.0)
        if dt > 0:
            glide = HOLD_GLIDE_S if grid is not None else max(cfg.release_s / 4.0, 1e-3)
            self.accent_hold += (float(grid is not None) - self.accent_hold) * \
                (1.0 - math.exp(-dt / glide))
        if self.trace is not None:
            self.trace.append((t_s, grid.beats_at(t_s) if grid else math.nan, self.lock,
                               self.state.energy, 1.0 - self.hold + self.hold * self.level,
                               grid.bpm if grid else 0.0, grid.downbeat if grid else 0,
                               self.rate, self.accent))
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

    def accent_every(self, bpm: float) -> int:
        """Beats from one accent to the next: 1, 2 or 4 (the bar), at most
        `ACCENT_MAX_PER_S` accents a second."""
        for k in (1, 2):
            if bpm / 60.0 / k <= ACCENT_MAX_PER_S:
                return k
        return 4

    def accent_factor(self, scene: np.ndarray, dt: float) -> float:
        """The accents' light factor now (1 = the show's own light): `background` between
        accents, up to ``background + depth`` on beat 1; the depth is ``excitement`` of the
        way to full, within the flash limiter's budget for the brightest fixture."""
        cfg = self.cfg
        if math.isnan(self.beats) or self.bpm <= 0 or cfg.excitement <= 0:
            return 1.0
        if self.y_weights is not None and len(self.y_weights) == len(scene):
            y = float(np.max(np.einsum("ij,ij->i", scene[:, COLOUR], self.y_weights)
                             * scene[:, DIMMER])) if len(scene) else 0.0
        else:
            y = float(np.max(scene[:, DIMMER])) if len(scene) else 0.0
        decay = math.exp(-max(dt, 0.0) / PEAK_RELEASE_S)
        self._ypeak = max(min(max(y, 0.0), 1.0), self._ypeak * decay)
        k = self.accent_every(self.bpm)
        half_s = 0.5 * k * 60.0 / self.bpm              # rise and fall: half an accent each
        bg = cfg.background
        budget = ACCENT_MARGIN * self.accent_budget * half_s / max(self._ypeak, 0.05)
        depth = min(cfg.excitement * (1.0 - bg), budget)
        u = (self.beats / k) % 1.0
        env = 1.0 - 2.0 * min(u, 1.0 - u)               # 1 on the accent, 0 half-way
        nearest = round(self.beats / k) * k             # the beat of the accent nearest
        strength = 1.0 if nearest % 4 == 0 else OTHER_BEATS
        return bg + depth * strength * env

    def light(self, scene: np.ndarray) -> np.ndarray:
        """The scene with the music's light level and accents applied (before the safety
        stage)."""
        h, a = self.hold, self.accent_hold
        self.accent = 1.0 - a * (1.0 - self.accent_factor(scene, self._dt)) if a >= 1e-4 \
            else 1.0
        if h < 1e-4 and a < 1e-4:
            return scene
        out = scene.copy()
        if self.cfg.energy_to == "intensity":
            out[:, DIMMER] = (1.0 - h) * out[:, DIMMER] + h * self.level
        else:
            out[:, DIMMER] *= (1.0 - h) + h * self.level
        out[:, DIMMER] *= self.accent
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
