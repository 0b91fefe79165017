"""The cost of one `generate` call of each bundled model (the NumPy runtime), at 1 and 32
latents — what the frame loop and the run-ahead worker pay per batch.

    python bench/generate.py [--calls N]

Prints the best of 5 runs of N calls, in µs per call, beside the budget each kind of model was
built for: a points model ("nat") under 500 µs for 32 latents, an image model ("iae") under
5 ms for one latent (both far below a 44 fps frame period of 22.7 ms).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # as the daemon does (pi_app/__init__)
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pi_app.runtime import list_models, load_model

BUDGET_US = {("nat", 32): 500.0, ("iae", 1): 5000.0}


def per_call_us(fn, z: np.ndarray, calls: int) -> float:
    """Best of 5 runs of `calls` calls, µs per call (the best: the least disturbed)."""
    fn(z)                                                # warm-up
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(z)
        runs.append((time.perf_counter() - t0) / calls * 1e6)
    return min(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=50)
    args = ap.parse_args()
    names = sorted(n for n, where in list_models() if where == "bundled")
    print(f"{'model':<12} {'family':<6} {'latents':>7} {'µs/call':>10} {'budget µs':>10}")
    for name in names:
        m = load_model(name)
        for n in (1, 32):
            z = np.random.default_rng(0).standard_normal(
                (n, m.info.latent_dim)).astype(np.float32)
            us = per_call_us(m.generate, z, args.calls)
            budget = BUDGET_US.get((m.info.family, n))
            mark = "" if budget is None else f"{budget:10.0f}" + ("" if us < budget else "  OVER")
            print(f"{name:<12} {m.info.family:<6} {n:>7} {us:10.1f} {mark}")


if __name__ == "__main__":
    main()
