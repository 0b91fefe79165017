"""Per-frame cost of the safety stage for 1, 8, 32 and 128 fixtures.

    python bench/safety.py [--frames N]

Lumeri 14ch heads. Three inputs: a smooth show (slow sinusoids, as a latent walk gives: the
limiter has nothing to do), random noise every frame (worst case: the flash limiter and its
low-pass work on every fixture, every frame), and noise with two keep-out boxes per head.
Prints µs per frame (median of 5 runs) and the share of the 44 fps frame period (22.7 ms).
Target: ~20-30 µs at 32 fixtures for a smooth show on a desktop.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pi_app.config import parse_config
from pi_app.patch import Patch
from pi_app.safety import Safety
from pi_app.scene import N_ATTRS

PERIOD_US = 1e6 / 44


def rig(n: int, keep_out: bool) -> str:
    lines = ["fps = 44\n"]
    for i in range(n):
        u, k = divmod(i, 36)
        lines.append(f'[[fixtures]]\nname = "h{i}"\nprofile = "lumeri-wash-7-10"\nmode = "14ch"\n'
                     f"universe = {u + 1}\naddress = {k * 14 + 1}\npark = [0.1, 0.5]\n")
        if keep_out:
            lines.append("keep_out = [[0.3, 0.45, 0.2, 0.8], [0.55, 0.7, 0.6, 0.9]]\n")
    return "".join(lines)


def per_frame_us(n: int, frames: int, kind: str) -> float:
    cfg = parse_config(rig(n, kind == "keep-out"), "bench.toml")
    safety = Safety(cfg, Patch(cfg), cfg.fps)
    rng = np.random.default_rng(0)
    if kind == "smooth":
        ph = rng.random((n, N_ATTRS)) * 6.28      # 20-s sinusoids: well within every limit
        scenes = (0.5 + 0.3 * np.sin(np.arange(880)[:, None, None] / 880 * 6.28 + ph)
                  ).astype(np.float32)
    else:
        scenes = rng.random((64, n, N_ATTRS), dtype=np.float32)
    m = len(scenes)
    for k in range(100):
        safety(scenes[k % m], k / 44)
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for k in range(frames):
            safety(scenes[k % m], k / 44)
        runs.append((time.perf_counter() - t0) / frames * 1e6)
    return float(np.median(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000)
    args = ap.parse_args()
    kinds = ("smooth", "noise", "keep-out")
    print(f"safety stage, µs per frame (share of the {PERIOD_US / 1000:.1f} ms period at 44 fps)")
    print(f"{'fixtures':>8}" + "".join(f"{k:>20}" for k in ("smooth show", "noise (worst)",
                                                           "noise + keep-out")))
    for n in (1, 8, 32, 128):
        cells = [per_frame_us(n, args.frames, k) for k in kinds]
        print(f"{n:>8}" + "".join(f"{c:>9.1f} µs {c / PERIOD_US:>6.2%}" for c in cells))


if __name__ == "__main__":
    main()
