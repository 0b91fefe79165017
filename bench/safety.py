"""Per-frame cost of the safety stage for 1, 8, 32 and 128 fixtures.

    python bench/safety.py [--frames N]

Lumeri 14ch heads (pan/tilt slew, flash limiter with its low-pass engaged by random input),
without and with two keep-out boxes per head. Prints µs per frame (median of 5 runs) and the
share of the 44 fps frame period (22.7 ms). Target: ~20-30 µs at 32 fixtures on a desktop.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pi_app.config import parse_config  # noqa: E402
from pi_app.patch import Patch  # noqa: E402
from pi_app.safety import Safety  # noqa: E402

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


def per_frame_us(n: int, frames: int, keep_out: bool) -> float:
    cfg = parse_config(rig(n, keep_out), "bench.toml")
    safety = Safety(cfg, Patch(cfg), cfg.fps)
    rng = np.random.default_rng(0)
    scenes = rng.random((64, n, 7), dtype=np.float32)      # worst case: the limiter works
    for k in range(100):
        safety(scenes[k % 64], k / 44)
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for k in range(frames):
            safety(scenes[k % 64], k / 44)
        runs.append((time.perf_counter() - t0) / frames * 1e6)
    return float(np.median(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000)
    args = ap.parse_args()
    print(f"safety stage, µs per frame (share of the {PERIOD_US / 1000:.1f} ms period at 44 fps)")
    print(f"{'fixtures':>8} {'no keep-out':>20} {'2 keep-out boxes each':>24}")
    for n in (1, 8, 32, 128):
        a = per_frame_us(n, args.frames, False)
        b = per_frame_us(n, args.frames, True)
        print(f"{n:>8} {a:>10.1f} µs {a / PERIOD_US:>6.2%} {b:>13.1f} µs {b / PERIOD_US:>6.2%}")


if __name__ == "__main__":
    main()
