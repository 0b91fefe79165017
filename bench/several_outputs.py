"""What several outputs cost a frame over one: `Output.prepare` + `send` of the same frames
through one `SimOutput` and through a `MultiOutput` of two `SimOutput` parts (the
``[[outputs]]`` path, pi_app/outputs/several.py), best of 5 rounds of 2,000 frames.

    python bench/several_outputs.py

The simulator sends nothing, so the figures are the split itself: the check, each part's
checked copies and the hand-over to each part.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pi_app.outputs.several import MultiOutput
from pi_app.outputs.sim import SimOutput


def per_frame_us(out, frames: dict, n: int = 2000, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            out.send(out.prepare(frames))
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


def main() -> None:
    for n in (2, 16, 64):
        us = list(range(1, n + 1))
        rng = np.random.default_rng(n)
        frames = {u: rng.integers(0, 256, 512, dtype=np.uint8) for u in us}
        one = SimOutput(us).open()
        two = MultiOutput([("a", SimOutput(us[:n // 2])), ("b", SimOutput(us[n // 2:]))]).open()
        a, b = per_frame_us(one, frames), per_frame_us(two, frames)
        print(f"{n:3d} universes: one output {a:6.1f} us a frame, two parts {b:6.1f} us "
              f"(+{b - a:.1f} us, {(b - a) / 22700:.2%} of a 44 fps period)")


if __name__ == "__main__":
    main()
