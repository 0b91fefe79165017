"""What every family's training shares: torch set-up, the steps/minutes budget, the training
loop itself (`run_steps`), checkpoints."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import LatentDMXError

CHECKPOINT = "checkpoint.pt"


def setup(device: str, threads: int, seed: int) -> torch.device:
    """Seed torch, limit its threads (shared CPUs), and check the device exists."""
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, threads))
    try:
        dev = torch.device(device)
        torch.zeros(1, device=dev)
    except (RuntimeError, AssertionError) as exc:
        raise LatentDMXError(f"device {device!r} not usable ({str(exc).splitlines()[0]})",
                             field="--device", fix="use --device cpu") from None
    return dev


@dataclass
class Budget:
    """Stop after `steps` steps or `minutes` of training, whichever comes first.

    `elapsed_s` counts training time from earlier (resumed) runs too.
    """

    steps: int
    minutes: float | None = None
    elapsed_s: float = 0.0
    _t0: float = field(default_factory=time.monotonic, repr=False)
    _before: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._before = self.elapsed_s

    def tick(self) -> None:
        self.elapsed_s = self._before + time.monotonic() - self._t0

    def progress(self, step: int) -> float:
        """0 at the start, 1 when the budget is spent (drives the learning-rate schedule)."""
        p = step / max(1, self.steps)
        if self.minutes:
            p = max(p, self.elapsed_s / (60.0 * self.minutes))
        return min(1.0, p)

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0


def run_steps(opt: torch.optim.Optimizer, base_lr: float, budget: Budget, step: int,
              bar: Progress, one_step: Callable[[float], torch.Tensor], *,
              after: Callable[[int, torch.Tensor], dict[str, str] | None] | None = None,
              ckpt_every: int = 0, checkpoint: Callable[[int], None] | None = None
              ) -> tuple[int, bool]:
    """The training loop every family shares, from `step` until `budget` is spent.

    Each step: the cosine learning rate for the budget's progress, ``loss =
    one_step(progress)`` (the family's forward pass), backward, the optimiser's step; then
    ``after(step, loss)`` may return the bar's figures, and every `ckpt_every` steps
    ``checkpoint(step)``. Ctrl-C ends the loop (the caller checkpoints and exports what it
    has). Returns (the step reached, whether Ctrl-C ended it)."""
    interrupted = False
    try:
        while not budget.done(step):
            progress = budget.progress(step)
            lr = cosine_lr(base_lr, progress)
            for group in opt.param_groups:
                group["lr"] = lr
            loss = one_step(progress)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            budget.tick()
            figures = after(step, loss) if after is not None else None
            if figures:
                bar.update(step, **figures)
            if checkpoint is not None and ckpt_every and step % ckpt_every == 0:
                checkpoint(step)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.update(step)
        bar.close()
    return step, interrupted


def cosine_lr(base: float, progress: float, warmup: float = 0.02, floor: float = 0.05) -> float:
    """Linear warm-up, then cosine decay to `floor * base`."""
    import math
    if progress < warmup:
        return base * (0.1 + 0.9 * progress / warmup)
    t = (progress - warmup) / (1.0 - warmup)
    return base * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t))))


def save_checkpoint(out: Path, state: dict) -> Path:
    """Write ``out/checkpoint.pt`` atomically (a Ctrl-C mid-write never leaves half a file)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / CHECKPOINT
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(out: Path) -> dict | None:
    """The checkpoint in `out`, or None. It is our own file, so full unpickling is allowed."""
    path = out / CHECKPOINT
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise LatentDMXError(f"cannot read checkpoint ({exc.__class__.__name__})", file=path,
                             fix="delete it or pass --fresh") from None


def check_resume(ckpt: dict, family: str, args: dict, out: Path,
                 free: tuple[str, ...] = ("steps", "ckpt_every")) -> None:
    """Refuse to resume a checkpoint made with other settings (the budget may change)."""
    old = {k: v for k, v in ckpt.get("model_args", {}).items() if k not in free}
    new = {k: v for k, v in args.items() if k not in free}
    if ckpt.get("family") != family or old != new:
        diff = sorted(k for k in new.keys() | old.keys() if old.get(k) != new.get(k))
        raise LatentDMXError(f"checkpoint was made with other settings ({', '.join(diff)})",
                             file=out / CHECKPOINT,
                             fix="use the same options, or pass --fresh to start over")


def auto_threads(threads: int) -> int:
    """`--threads 0` (the default): one thread. A training step is a few small matrix
    products (batch 256, width <= 128), which a second thread does not speed up, and on a
    shared machine extra threads spin and wait (3-7x slower per step measured on 2 busy
    cores). Larger jobs can ask for more."""
    return max(1, threads) if threads > 0 else 1


class Plateau:
    """Tells when a quality figure (lower is better) has stopped improving.

    `update(elapsed_s, value)` every few seconds; `flat_since_s` is the training time of the
    last improvement of more than `rel` (relative) once nothing better came for `patience`
    of the elapsed time (at least `min_s`), else None."""

    def __init__(self, rel: float = 0.02, patience: float = 0.3, min_s: float = 10.0) -> None:
        self.rel, self.patience, self.min_s = rel, patience, min_s
        self.best = float("inf")
        self.best_at_s = 0.0
        self.last_s = 0.0

    def update(self, elapsed_s: float, value: float) -> None:
        self.last_s = elapsed_s
        if value < self.best * (1.0 - self.rel):
            self.best, self.best_at_s = value, elapsed_s
        elif value < self.best:
            self.best = value

    @property
    def flat_since_s(self) -> float | None:
        quiet = self.last_s - self.best_at_s
        if self.best_at_s > 0 and quiet >= max(self.min_s, self.patience * self.last_s):
            return self.best_at_s
        return None


class Progress:
    """The training bar: the share of the budget spent (steps or minutes, whichever ends
    first), so its estimate of the time left is right for `--minutes` too; the step count,
    loss and quality in the postfix."""

    def __init__(self, budget: Budget, step: int, desc: str, enabled: bool = True) -> None:
        from tqdm import tqdm

        self.budget = budget
        self.bar = tqdm(total=1000, initial=int(1000 * budget.progress(step)), desc=desc,
                        disable=not enabled, dynamic_ncols=True,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}"
                                   "{postfix}")

    def update(self, step: int, **postfix: str) -> None:
        n = int(1000 * self.budget.progress(step))
        if n != self.bar.n:
            self.bar.update(n - self.bar.n)
        if postfix:
            self.bar.set_postfix_str(f"step {step}, " + ", ".join(
                f"{k} {v}" for k, v in postfix.items()), refresh=False)

    def close(self) -> None:
        self.bar.close()
