"""How the Hungarian step of NAT training grows with the batch size, and its share of a step.

    python bench/assignment.py [--sizes 64,128,...] [--threads 1]

For each batch size B: the time of `scipy.optimize.linear_sum_assignment` on a (B, B) matrix
of squared distances between model outputs and targets (6-D points from the bundled aurora
picture), and of the rest of one training step (forward, loss, backward, Adam) of the default
NAT model (16 -> 128 x 3 -> 6); the Hungarian share is assignment / (assignment + rest).
Median of several runs. Needs torch and scipy (`pip install -e .[train]`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    import torch
    from scipy.optimize import linear_sum_assignment
    from torch.nn import functional as F

    from pi_app.training.nat import NATConfig, PictureTarget, build, load_picture

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,128,256,512,1024,2048")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    picture = Path(__file__).resolve().parents[1] / "models" / "nat-aurora" / "target.png"
    target = PictureTarget(load_picture(picture))
    rng = np.random.default_rng(0)
    model = build(NATConfig(image=str(picture)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    print(f"{'batch':>6} {'hungarian ms':>13} {'rest of step ms':>16} {'hungarian share':>16} "
          f"{'ms / point':>11}")
    for b in (int(s) for s in args.sizes.split(",")):
        z = torch.randn(b, 16)
        y = torch.from_numpy(target.sample(b, rng))
        repeats = max(3, min(30, 4096 // b))
        with torch.no_grad():
            cost = torch.cdist(model(z), y).square().numpy()
        t_lsa = timed(lambda: linear_sum_assignment(cost), repeats)

        def rest() -> None:
            out = model(z)
            c = torch.cdist(out.detach(), y).square()       # the cost matrix is part of it
            loss = F.mse_loss(out, y[: len(c)])
            opt.zero_grad()
            loss.backward()
            opt.step()

        t_rest = timed(rest, repeats)
        share = t_lsa / (t_lsa + t_rest)
        print(f"{b:>6} {t_lsa * 1e3:>13.2f} {t_rest * 1e3:>16.2f} {share:>15.0%} "
              f"{(t_lsa + t_rest) * 1e3 / b:>11.4f}")


if __name__ == "__main__":
    main()
