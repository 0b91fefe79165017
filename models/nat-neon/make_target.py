"""Make `target.png`, the picture nat-neon learns: neon tubes on a black wall.

Procedural and seeded, so anyone can rebuild the exact picture (CC0 / public domain):

    python models/nat-neon/make_target.py            # writes models/nat-neon/target.png

A hot-pink ring and an electric-blue ring overlap above a warm amber zigzag; each tube is a
bright core with a soft glow around it, and the wall is black, so the tubes are all that is
drawn. Saturated colours and thin connected strokes: a show of sharp, colourful lines.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 256          # pixels, square
SEED = 11


def tube(dist: np.ndarray, width: float = 0.012, glow: float = 0.035) -> np.ndarray:
    """Intensity of a neon tube at distance `dist` from its centre line: core plus glow."""
    return np.clip(np.exp(-np.square(dist / width)) + 0.35 * np.exp(-np.square(dist / glow)),
                   0, 1)


def zigzag_distance(x: np.ndarray, y: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance from each (x, y) to a polyline through `pts` (k, 2)."""
    best = np.full(x.shape, np.inf)
    for (ax, ay), (bx, by) in itertools.pairwise(pts):
        dx, dy = bx - ax, by - ay
        t = np.clip(((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy), 0, 1)
        best = np.minimum(best, np.hypot(x - ax - t * dx, y - ay - t * dy))
    return best


def make(size: int = SIZE, seed: int = SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(c, c)
    img = np.zeros((size, size, 3))
    pink = tube(np.abs(np.hypot(x - 0.38, y - 0.38) - 0.2))
    blue = tube(np.abs(np.hypot(x - 0.62, y - 0.42) - 0.17))
    zig = np.array([[0.12, 0.8], [0.27, 0.68], [0.42, 0.82], [0.57, 0.68], [0.72, 0.82],
                    [0.88, 0.7]])
    amber = tube(zigzag_distance(x, y, zig))
    flicker = 0.9 + 0.1 * rng.random((size, size))           # a little life in the glass
    for colour, layer in (((1.0, 0.1, 0.6), pink), ((0.1, 0.45, 1.0), blue),
                          ((1.0, 0.6, 0.08), amber)):
        img = np.maximum(img, np.asarray(colour) * (layer * flicker)[..., None])
    return np.clip(img, 0, 1)


if __name__ == "__main__":
    out = Path(__file__).with_name("target.png")
    Image.fromarray((make() * 255 + 0.5).astype(np.uint8)).save(out, optimize=True)
    print(f"wrote {out}")
