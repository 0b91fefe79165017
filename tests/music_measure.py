"""Measure a show's timing from its DMX frames alone (no internal state): when the walk
reaches its waypoints, and how flashes are counted is `flash_count` (independent of
`pi_app.safety`)."""

from __future__ import annotations

import numpy as np

SMOOTH = 5            # frames averaged before measuring speed


def motion(rig, frames: np.ndarray) -> np.ndarray:
    """How fast the rig's look changes between consecutive frames: (n - 1,), from the decoded
    DMX (emitted colour of every fixture, pan and tilt of every head)."""
    look = rig.decode(frames)
    n = len(frames)
    movers = np.array([f.moves for f in rig.fixtures])
    feats = np.concatenate([look.colour.reshape(n, -1), look.pan[:, movers],
                            look.tilt[:, movers]], axis=1).astype(np.float64)
    kernel = np.ones(SMOOTH) / SMOOTH                 # beyond the 8-bit steps of one frame
    smooth = np.stack([np.convolve(f, kernel, mode="same") for f in feats.T], axis=1)
    speed = np.linalg.norm(np.diff(smooth, axis=0), axis=1)
    speed[: SMOOTH // 2] = speed[-(SMOOTH // 2):] = np.nan     # the smoothing's edges
    return speed


def arrivals(times: np.ndarray, speed: np.ndarray, *, min_gap_s: float,
             depth: float = 0.25) -> np.ndarray:
    """Times at which the look comes to rest between moves (the walk's waypoints): local
    minima of the (lightly smoothed) speed that are below `depth` x the larger of the peaks
    on either side within `min_gap_s`, refined to a fraction of a frame by a parabola."""
    s = np.where(np.isnan(speed), np.inf, speed)
    mid = 0.5 * (times[:-1] + times[1:])            # speed k is between frames k and k+1
    dt = float(np.median(np.diff(times)))
    w = max(2, int(min_gap_s / dt))
    out = []
    for k in range(w, len(s) - w):
        if not (s[k] <= s[k - 1] and s[k] < s[k + 1]):
            continue
        left, right = s[k - w:k].max(), s[k + 1:k + 1 + w].max()
        if s[k] > depth * min(left, right) or s[k - w:k + w + 1].min() < s[k]:
            continue
        y0, y1, y2 = s[k - 1], s[k], s[k + 1]
        den = y0 - 2 * y1 + y2
        d = 0.5 * (y0 - y2) / den if den > 0 else 0.0
        out.append(mid[k] + d * dt)
    return np.array(out)
