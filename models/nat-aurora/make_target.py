"""Make `target.png`, the picture nat-aurora learns: aurora curtains, a moon ring and stars.

Procedural and seeded, so anyone can rebuild the exact picture (CC0 / public domain, like the
rest of this folder's data):

    python models/nat-aurora/make_target.py            # writes models/nat-aurora/target.png

Three curtains (green, magenta, cyan) follow slow sine waves across the sky; each is bright
at its lower edge, fades upwards and is combed into vertical rays. A warm white ring (a moon
halo) and a few stars add white light; the sky is black, so they are the only things drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 256          # pixels, square
SEED = 7


def curtain(x: np.ndarray, y: np.ndarray, base: float, amp: float, freq: float, phase: float,
            height: float, rays: float) -> np.ndarray:
    """Intensity (H, W) of one curtain: sharp lower edge at a wavy line, fading upwards."""
    edge = base + amp * np.sin(2 * np.pi * freq * x + phase) \
        + 0.35 * amp * np.sin(2 * np.pi * 2.7 * freq * x + 1.7 * phase)
    d = edge - y                                         # > 0 above the edge (y grows down)
    below = np.exp(-np.square(np.minimum(d, 0) / 0.012))  # sharp fall below the edge
    above = np.exp(-np.maximum(d, 0) / height)           # slow fade above
    comb = 0.65 + 0.35 * np.sin(2 * np.pi * rays * x + 3 * np.sin(2 * np.pi * 1.3 * x)) ** 2
    return below * above * comb


def make(size: int = SIZE, seed: int = SEED) -> np.ndarray:
    """The picture as uint8 (size, size, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size               # y = 0 at the top
    img = np.zeros((size, size, 3))
    bands = [   # colour,          base, amp,  freq, phase, height, rays
        ((0.15, 1.00, 0.35), 0.62, 0.07, 0.9, 0.3, 0.10, 9.0),
        ((1.00, 0.15, 0.70), 0.40, 0.06, 1.3, 2.1, 0.07, 13.0),
        ((0.10, 0.65, 1.00), 0.24, 0.05, 0.7, 4.0, 0.05, 7.0),
    ]
    for colour, *shape in bands:
        img += curtain(x, y, *shape)[..., None] * np.array(colour)
    # a warm white moon halo, lower right
    r = np.hypot(x - 0.78, y - 0.84)
    img += np.exp(-np.square((r - 0.09) / 0.012))[..., None] * np.array([1.0, 0.85, 0.6])
    # stars: a few small white dots in the upper sky
    for _ in range(14):
        sx, sy = rng.random(), 0.12 * rng.random() + 0.02
        img += 0.9 * np.exp(-(np.square(x - sx) + np.square(y - sy)) / 2e-5)[..., None]
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


if __name__ == "__main__":
    out = Path(__file__).with_name("target.png")
    Image.fromarray(make()).save(out, optimize=True)
    print(f"wrote {out}")
