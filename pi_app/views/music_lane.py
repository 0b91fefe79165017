"""The music lane under a render's timeline (``latentdmx render --audio song.wav``).

One strip, the same time axis as the fixtures above it: the audio's energy as a filled curve,
the light level the music asked for as a line, a tick on every beat of the grid the show
followed (a tall bright tick on beat 1 of a bar), and along the top the lock state (green
locked, amber searching, grey silence); faint bar lines run on through the pan/tilt traces.
Drawn from `MusicDrive.trace`, which the render's pipeline filled frame by frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

from . import draw as dr

LANE_H = 46
LOCK_COLOURS = {"locked": (60, 200, 90), "searching": (230, 170, 40), "silent": (70, 70, 80),
                "off": (45, 45, 52)}
ENERGY_COLOUR = (70, 95, 150)
LEVEL_COLOUR = (200, 200, 210)
BEAT_COLOUR = (150, 150, 165)
BAR_COLOUR = (255, 255, 255)
BAR_LINE = (95, 95, 108)


@dataclass(frozen=True)
class MusicLane:
    times: np.ndarray          # show time of each frame
    beats: np.ndarray          # beat index of the grid followed (nan: none)
    lock: tuple[str, ...]
    energy: np.ndarray         # 0..1
    level: np.ndarray          # the light level the music asked for, 0..1
    bpm: np.ndarray            # 0: none
    downbeat: np.ndarray       # beat index (mod 4) of beat 1

    @classmethod
    def from_trace(cls, trace: list[tuple]) -> MusicLane:
        cols = list(zip(*trace, strict=True)) if trace else [()] * 9
        f = np.asarray
        level = f(cols[4], float)                 # the loudness's level x the accents
        if len(cols) > 8:
            level = level * f(cols[8], float)
        return cls(f(cols[0], float), f(cols[1], float), tuple(cols[2]), f(cols[3], float),
                   level, f(cols[5], float), f(cols[6], int))

    def beat_times(self) -> tuple[np.ndarray, np.ndarray]:
        """(time of every beat of the grid, True where it is beat 1 of a bar)."""
        b, t = self.beats, self.times
        out, bar = [], []
        for k in range(1, len(b)):
            if math.isnan(b[k]) or math.isnan(b[k - 1]) or b[k] <= b[k - 1]:
                continue
            n = math.floor(b[k])
            if n > math.floor(b[k - 1]):
                f = (n - b[k - 1]) / (b[k] - b[k - 1])
                out.append(t[k - 1] + f * (t[k] - t[k - 1]))
                bar.append((n - int(self.downbeat[k])) % 4 == 0)
        return np.asarray(out), np.asarray(bar, bool)

    @property
    def bpm_label(self) -> str:
        locked = self.bpm[np.array([s == "locked" for s in self.lock], bool)] \
            if len(self.lock) else np.zeros(0)
        if not locked.size:
            return "no beat"
        lo, hi = np.percentile(locked, [5, 95])
        return f"{lo:.0f} BPM" if hi - lo < 1.0 else f"{lo:.0f}-{hi:.0f} BPM"


def draw_lane(d: ImageDraw.ImageDraw, lane: MusicLane, layout, y: int, column_means) -> int:
    """Draw the lane at `y` across `layout`'s strip; returns the height used."""
    x0, w = layout.x0, layout.width
    d.rectangle((x0, y, x0 + w - 1, y + LANE_H - 1), fill=dr.PANEL)
    t = lane.times
    if len(t):
        energy = column_means(lane.energy, t, layout)
        level = column_means(lane.level, t, layout)
        t0, t1 = layout.column_times()
        idx = np.clip(np.searchsorted(t, 0.5 * (t0 + t1), side="right") - 1, 0, len(t) - 1)
        body = LANE_H - 6
        for i in range(w):
            e = float(np.clip(energy[i], 0, 1))
            if e > 0.01:
                d.line((x0 + i, y + LANE_H - 1, x0 + i, y + LANE_H - 1 - round(e * body)),
                       fill=ENERGY_COLOUR)
            d.point((x0 + i, y + 1), fill=LOCK_COLOURS.get(lane.lock[idx[i]], dr.GRID))
            d.point((x0 + i, y + 2), fill=LOCK_COLOURS.get(lane.lock[idx[i]], dr.GRID))
        ys = y + LANE_H - 1 - np.clip(level, 0, 1) * body
        d.line(list(zip((x0 + np.arange(w) + 0.5).tolist(), ys.tolist(), strict=True)),
               fill=LEVEL_COLOUR, width=1)
        beats, bar = lane.beat_times()
        for tb, is_bar in zip(beats, bar, strict=True):
            x = x0 + min(w - 1, int(tb / layout.span_s * w))
            top = y + 4 if is_bar else y + LANE_H - 1 - body // 2
            d.line((x, top, x, y + LANE_H - 1), fill=BAR_COLOUR if is_bar else BEAT_COLOUR)
    d.text((8, y + 2), "music", fill=dr.TEXT, font=dr.font(11))
    d.text((8, y + 16), lane.bpm_label, fill=dr.DIM_TEXT, font=dr.font(10))
    d.text((8, y + 29), "beats·energy", fill=dr.DIM_TEXT, font=dr.font(9))
    return LANE_H + 6


def draw_bar_lines(d: ImageDraw.ImageDraw, lane: MusicLane, layout, y0: int, y1: int) -> None:
    """Faint lines at every bar from y0 to y1 (over the pan/tilt traces: the heads come to
    rest at each waypoint, so their turns line up with the bars)."""
    beats, bar = lane.beat_times()
    for tb in beats[bar]:
        x = layout.x0 + min(layout.width - 1, int(tb / layout.span_s * layout.width))
        d.line((x, y0, x, y1), fill=BAR_LINE)
