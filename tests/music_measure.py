"""Measure a show from its DMX frames alone (no internal state): when the walk reaches its
waypoints (`aim_motion`, `rest_near`), and how often the lights flash (`flash_rates`, an
independent WCAG 2.3.1 counter that shares no code with `pi_app.safety`)."""

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
    +-`window_s` (to a fraction of a frame, by a parabola), the median over the heads."""
    mid = 0.5 * (times[:-1] + times[1:])
    dt = float(np.median(np.diff(times)))
    lo, hi = np.searchsorted(mid, t_s - window_s), np.searchsorted(mid, t_s + window_s)
    found = []
    for i in range(speeds.shape[1]):
        s = speeds[lo:hi, i]
        if s.size < 3:
            continue
        k = int(np.argmin(s))
        d = 0.0
        if 0 < k < len(s) - 1:
            y0, y1, y2 = s[k - 1], s[k], s[k + 1]
            den = y0 - 2 * y1 + y2
            d = 0.5 * (y0 - y2) / den if den > 0 else 0.0
        found.append(mid[lo + k] + d * dt)
    return float(np.median(found)) if found else float("nan")


# -- an independent flash counter (WCAG 2.3.1), from the DMX bytes and the channel layout ----
# It shares no code with pi_app.safety or pi_app.safety_check: what each slot is comes from
# the patch's slot map (the rig config and profiles); the rest is computed here.
LUMA = {"red": 0.2126, "green": 0.7152, "blue": 0.0722, "white": 1.0}
DELTA = 0.1
DARKER_BELOW = 0.8


def luminance(patch, frames: np.ndarray) -> np.ndarray:
    """Relative luminance of every fixture in every frame: (n_frames, n_fixtures).

    Y = dim x (R, G, B, W) . LUMA / (sum of the weights of the colours it has); a fixture
    with no colour channel: Y = dim. Each channel is (value - lo) / (hi - lo) of its range."""
    universes = list(patch.universes)
    n = len(frames)
    out = np.zeros((n, len(patch.fixtures)))
    for f in patch.fixtures:
        u = universes.index(f.universe)
        dim = np.ones(n)
        colour = np.zeros(n)
        weights = 0.0
        for j, ch in enumerate(f.mode.channels):
            lo, hi = (ch.min, ch.max) if ch.max > ch.min else (0, 255)
            v = np.clip((frames[:, u, f.address - 1 + j].astype(float) - lo) / (hi - lo), 0, 1)
            if ch.attr in ("dimmer", "intensity"):
                dim = dim * v
            elif ch.attr in LUMA:
                colour += LUMA[ch.attr] * v
                weights += LUMA[ch.attr]
        out[:, f.index] = dim * (colour / weights if weights else 1.0)
    return out


def _transitions(y: np.ndarray) -> list[int]:
    """Frames where a signal completes a change of >= DELTA from its last extreme, the other
    way than the previous one, with the darker state below DARKER_BELOW."""
    out, direction = [], 0
    hi = lo = y[0]
    for k in range(1, len(y)):
        v = y[k]
        hi, lo = max(hi, v), min(lo, v)
        if direction >= 0 and hi - v >= DELTA and v < DARKER_BELOW:      # a fall
            out.append(k)
            direction, hi, lo = -1, v, v
        elif direction <= 0 and v - lo >= DELTA and lo < DARKER_BELOW:   # a rise
            out.append(k)
            direction, hi, lo = 1, v, v
    return out


def flashes_per_s(y: np.ndarray, times: np.ndarray) -> float:
    """The most transitions in any 1-s window [t, t + 1), halved."""
    tr = times[_transitions(y)]
    if not len(tr):
        return 0.0
    most = max(int(np.searchsorted(tr, t + 1.0 - 1e-9) - i) for i, t in enumerate(tr))
    return most / 2.0


def flash_rates(patch, frames: np.ndarray, times: np.ndarray) -> dict[str, float]:
    """Flashes per second of every fixture and of the rig (the mean of all fixtures)."""
    y = luminance(patch, frames)
    rates = {f.name: flashes_per_s(y[:, f.index], times) for f in patch.fixtures}
    rates["rig"] = flashes_per_s(y.mean(axis=1), times)
    return rates
