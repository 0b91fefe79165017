"""Measure a show from its DMX frames alone (no internal state): when the walk reaches its
waypoints (`aim_motion`, `rest_near`). Flashes are counted by `flash_counter`."""

from __future__ import annotations

import numpy as np


def fine_heads(patch) -> list[int]:
    """The fixtures with 16-bit pan and tilt (the patch's fixture order)."""
    return [f.index for f in patch.fixtures if f.mode.has("pan_fine") and f.mode.has("tilt_fine")]


def aim_motion(rig, frames: np.ndarray, heads: list[int]) -> np.ndarray:
    """How fast the aim (pan, tilt from the DMX) of each head with 16-bit pan/tilt changes
    between frames: (n - 1, n_heads).

    Aim, not light: the music also sets the light level (energy), which moves on every beat
    and would hide where the walk itself comes to rest; 16-bit heads only, as an 8-bit head
    rests for several frames at a time."""
    look = rig.decode(frames)
    pt = np.stack([look.pan[:, heads], look.tilt[:, heads]], axis=-1).astype(np.float64)
    return np.linalg.norm(np.diff(pt, axis=0), axis=-1)


def rest_near(times: np.ndarray, speeds: np.ndarray, t_s: float, window_s: float) -> float:
    """When the heads come to rest nearest `t_s`: each head's slowest moment within
    +-`window_s` (to a fraction of a frame, by a parabola; of several equally slow frames,
    a head at rest, the one nearest `t_s`), the median over the heads that move there (a
    head that rests throughout has no waypoint to show)."""
    mid = 0.5 * (times[:-1] + times[1:])
    dt = float(np.median(np.diff(times)))
    lo, hi = np.searchsorted(mid, t_s - window_s), np.searchsorted(mid, t_s + window_s)
    found = []
    for i in range(speeds.shape[1]):
        s = speeds[lo:hi, i]
        if s.size < 3 or not s.any():
            continue
        slowest = np.flatnonzero(s == s.min())
        k = int(slowest[np.argmin(np.abs(mid[lo + slowest] - t_s))])
        d = 0.0
        if 0 < k < len(s) - 1:
            y0, y1, y2 = s[k - 1], s[k], s[k + 1]
            den = y0 - 2 * y1 + y2
            d = 0.5 * (y0 - y2) / den if den > 0 else 0.0
        found.append(mid[lo + k] + d * dt)
    return float(np.median(found)) if found else float("nan")
