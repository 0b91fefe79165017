"""How the Hungarian step of NAT training grows with the batch size, and its share of a step.

    python bench/assignment.py [--sizes 64,128,...] [--threads 1]

For each batch size B: the time of `scipy.optimize.linear_sum_assignment` on a (B, B) matrix
of squared distances between outputs and targets (6-D points drawn from the bundled aurora
picture) in three states of training, and the time of the rest of one training step (forward,
cost matrix, loss, backward, Adam) of the default NAT model (16 -> 64 x 4 -> 6):

- start:  outputs of the untrained model (all bunched together: the hardest matrix),
- steady: outputs near their currently assigned targets (targets + N(0, 0.02)), the state
          of most of training, where the assignment only needs small repairs,
- fresh:  outputs an independent draw of the target (a perfect model, no assignment yet).

The share is Hungarian / (Hungarian + rest) in the steady state. Median of a few runs.
Needs torch and scipy (`pip install -e .[train]`).
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

    print("Hungarian (linear_sum_assignment) time in ms, by state; rest of the step in ms")
    print(f"{'batch':>6} {'start':>10} {'steady':>9} {'fresh':>9} {'rest':>7} "
          f"{'steady share':>13} {'step ms/point':>14}")
    for b in (int(s) for s in args.sizes.split(",")):
        z = torch.randn(b, 16)
        y = torch.from_numpy(target.sample(b, rng))
        repeats = max(3, min(30, 4096 // b))
        with torch.no_grad():
            start = torch.cdist(model(z), y).square().numpy()
        steady = torch.cdist(y + 0.02 * torch.randn_like(y), y).square().numpy()
        fresh = torch.cdist(torch.from_numpy(target.sample(b, rng)), y).square().numpy()
        t_start = timed(lambda c=start: linear_sum_assignment(c), 1 if b >= 1024 else repeats)
        t_lsa = timed(lambda c=steady: linear_sum_assignment(c), repeats)
        t_fresh = timed(lambda c=fresh: linear_sum_assignment(c), 1 if b >= 1024 else repeats)

        def rest(z=z, y=y) -> None:
            out = model(z)
            c = torch.cdist(out.detach(), y).square()       # the cost matrix is part of it
            loss = F.mse_loss(out, y[: len(c)])
            opt.zero_grad()
            loss.backward()
            opt.step()

        t_rest = timed(rest, repeats)
        share = t_lsa / (t_lsa + t_rest)
        print(f"{b:>6} {t_start * 1e3:>10.2f} {t_lsa * 1e3:>9.2f} {t_fresh * 1e3:>9.2f} "
              f"{t_rest * 1e3:>7.2f} {share:>13.0%} {(t_lsa + t_rest) * 1e3 / b:>14.4f}")


if __name__ == "__main__":
    main()
