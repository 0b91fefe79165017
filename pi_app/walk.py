"""The latent walk: slerp between seeded waypoints, with tempo and loops.

`LatentWalk(seed, streams, dim, ...)` makes ``streams`` independent trajectories (one per
fixture for `points` models, one for the rig for `image` models). Waypoint k of every stream
comes from ``default_rng([seed, k])``, so any point of the walk is a pure function of the seed
and the phase: the same seed gives the same show. The phase (in waypoints) is advanced by the
show; between waypoints the motion eases in and out (smoothstep), so it never jerks.
"""

from __future__ import annotations

import math

import numpy as np


class LatentWalk:
    def __init__(self, seed: int, streams: int, dim: int, *, loop_waypoints: int = 0,
                 spread: float = 1.0) -> None:
        self.seed = int(seed)
        self.streams = int(streams)
        self.dim = int(dim)
        self.loop = int(loop_waypoints)
        self.spread = float(spread)
        self._k: int | None = None
        self._w0 = self._w1 = self._omega = self._sin = np.zeros((0, 1), np.float32)
        self._z = np.empty((self.streams, self.dim), np.float32)
        self._bw = np.empty((self.streams, self.dim), np.float32)      # b * w1
        self._ab = np.empty((self.streams, 1), np.float32)             # b, then a

    def waypoint(self, k: int) -> np.ndarray:
        """Waypoint k: (streams, dim) float32 from N(0, spread^2 I)."""
        if self.loop:
            k %= self.loop
        rng = np.random.default_rng([self.seed, k % 2**63])   # k < 0 before the start
        return (rng.standard_normal((self.streams, self.dim)) * self.spread).astype(np.float32)

    def _segment(self, k: int) -> None:
        self._k = k
        w0, w1 = self.waypoint(k), self.waypoint(k + 1)
        n0 = np.linalg.norm(w0, axis=1, keepdims=True)
        n1 = np.linalg.norm(w1, axis=1, keepdims=True)
        cos = np.sum(w0 * w1, axis=1, keepdims=True) / np.maximum(n0 * n1, 1e-12)
        omega = np.arccos(np.clip(cos, -1.0, 1.0))
        self._w0, self._w1 = w0, w1
        self._omega = omega.astype(np.float32)
        self._sin = np.maximum(np.sin(omega), 1e-6).astype(np.float32)

    def at(self, phase: float) -> np.ndarray:
        """The latent vectors at `phase` (waypoints since the start): (streams, dim) float32.

        The returned array is reused by the next call."""
        k = math.floor(phase)                        # an int, as int(np.floor(phase))
        if k != self._k:
            self._segment(k)
        f = phase - k
        f = f * f * (3.0 - 2.0 * f)                  # smoothstep: ease in and out
        om, s, ab = self._omega, self._sin, self._ab    # in place: no temporaries
        np.multiply(om, f, out=ab)                   # b = sin(f om) / sin om
        np.divide(np.sin(ab, out=ab), s, out=ab)
        np.multiply(ab, self._w1, out=self._bw)
        np.multiply(om, 1.0 - f, out=ab)             # a = sin((1 - f) om) / sin om
        np.divide(np.sin(ab, out=ab), s, out=ab)
        np.multiply(ab, self._w0, out=self._z)
        self._z += self._bw                          # a * w0 + b * w1
        return self._z
