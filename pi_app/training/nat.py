"""Noise As Targets (Bojanowski & Joulin 2017): learn a map from N(0, I) noise to a picture.

Read top to bottom: the config, the target (a picture as a distribution of points), the
model, the training loop, the export.

The target: each sample is one point of the picture, (x, y, r, g, b, w), all in [0, 1].
A pixel is drawn with probability proportional to its mass: its brightness V = max(R, G, B)
above the background (`background`: "none", "auto" = Otsu's threshold of the brightness, so a
photograph's sky or wall does not take the mass, or a number),
rescaled to 0..1, raised to `gamma` (> 1 favours the brightest parts) — pixels with that
below `threshold` never. x and y are its position jittered inside the pixel and
divided by the picture's width and height (x = 0 left, y = 0 top), and its colour is split
for an RGBW fixture: w = min(R, G, B) is the common (white) part, and r, g, b = R - w, G - w,
B - w the rest. The brightness V decides how often a point comes from there (density), the
colour stays the pixel's own.

Training (the NAT method, as in the seed post): a fixed pool of N noise vectors and N target
points, each noise vector assigned to one target at random. Each step takes a batch of noise
vectors, forgets their assignments within the batch and re-solves them with the Hungarian
method (`scipy.optimize.linear_sum_assignment`) on the squared distance between the outputs
and the batch's targets, then regresses the outputs on their new targets (MSE). Squared
distance is what the MSE loss minimises, so each re-assignment can only lower the loss.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import LatentDMXError
from ..runtime import POINT_FIELDS
from . import common, export

# ----------------------------------------------------------------------------- config


@dataclass
class NATConfig:
    image: str                      # the target picture (PNG / JPEG)
    latent_dim: int = 16            # size of the noise vector z
    width: int = 128                # hidden units per layer
    depth: int = 5                  # hidden layers
    n_points: int = 65536           # size of the fixed noise pool = target pool
    batch_size: int = 256           # points per Hungarian step
    lr: float = 3e-3                # peak Adam learning rate (cosine decay)
    steps: int = 20000              # step budget (or stop at --minutes)
    threshold: float = 0.06         # pixels darker than this (after background) never drawn
    seed: int = 0
    ckpt_every: int = 1000          # steps between checkpoints
    gamma: float = 1.0              # mass = brightness ** gamma
    background: str = "none"        # "none", "auto" or a brightness (see the module doc)


# ----------------------------------------------------------------------------- the target


def load_picture(path: str | Path) -> np.ndarray:
    """The picture as float32 (H, W, 3) RGB in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as exc:
        raise LatentDMXError(f"cannot read picture ({exc.__class__.__name__})", file=path,
                             field="--image", fix="give a PNG or JPEG file") from None


def background_level(value: np.ndarray, background: str | float) -> float:
    """The brightness counted as background: 0 for "none", a number as given, "auto": Otsu's
    threshold of the brightness histogram (the level that best splits the picture into a
    darker and a brighter class: the sky of a night photograph, the black around a round
    picture, a dark wall)."""
    if isinstance(background, int | float):
        return float(background)
    text = str(background).strip().lower()
    if text in ("none", "", "0"):
        return 0.0
    if text == "auto":
        return otsu(value)
    try:
        return float(text)
    except ValueError:
        raise LatentDMXError(f"background {background!r} is not none, auto or a number",
                             field="--background", fix="use none, auto or e.g. 0.2") from None


def otsu(value: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1]: the split maximising the between-class variance."""
    hist, edges = np.histogram(np.clip(value, 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(hist.sum(), 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centres)
    total = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total * w0 - m0) ** 2 / (w0 * (1.0 - w0))
    between = np.nan_to_num(between[:-1], nan=0.0, posinf=0.0)
    return float(edges[int(np.argmax(between)) + 1]) if between.size else 0.0


class PictureTarget:
    """Draws points (x, y, r, g, b, w) from a picture, brightness as probability mass."""

    def __init__(self, picture: np.ndarray, threshold: float = 0.06, gamma: float = 1.0,
                 background: str | float = "none") -> None:
        self.h, self.w, _ = picture.shape
        value = picture.max(axis=2)                                  # (H, W) brightness V
        self.background = bg = background_level(value, background)
        value = np.clip((value - bg) / max(1.0 - bg, 1e-6), 0.0, 1.0)
        if gamma != 1.0:
            value = value ** float(gamma)
        mass = np.where(value >= threshold, value, 0.0).ravel().astype(np.float64)
        if mass.sum() <= 0:
            raise LatentDMXError(f"no pixel brighter than {threshold} above the background "
                                 f"({bg:.2f})", field="--image",
                                 fix="lower --threshold or --background, or use a picture with "
                                     "bright parts on a dark background")
        self.p = mass / mass.sum()                                   # (H*W,)
        rgb = picture.reshape(-1, 3)
        white = rgb.min(axis=1, keepdims=True)                       # common part -> W
        self.colour = np.concatenate([rgb - white, white], axis=1)   # (H*W, 4) r, g, b, w

    @classmethod
    def from_config(cls, picture: np.ndarray, cfg: dict) -> PictureTarget:
        """As recorded in a model's recipe (older recipes have no gamma / background)."""
        return cls(picture, float(cfg.get("threshold", 0.06)), float(cfg.get("gamma", 1.0)),
                   cfg.get("background", "none"))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n points, float32 (n, 6): x, y in [0, 1] (jittered inside the pixel), r, g, b, w."""
        idx = rng.choice(self.p.size, size=n, p=self.p)
        row, col = np.divmod(idx, self.w)
        x = (col + rng.random(n)) / self.w
        y = (row + rng.random(n)) / self.h
        return np.concatenate([np.stack([x, y], 1), self.colour[idx]], 1).astype(np.float32)


# ----------------------------------------------------------------------------- the model


class NAT(nn.Module):
    """z (B, latent_dim) -> points (B, 6). An MLP; the runtime clips the output to [0, 1]."""

    def __init__(self, latent_dim: int, width: int, depth: int, n_out: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(latent_dim, width), nn.ReLU()]   # (B, width)
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.ReLU()]                    # (B, width)
        layers.append(nn.Linear(width, n_out))                                # (B, 6)
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def build(cfg: NATConfig) -> NAT:
    return NAT(cfg.latent_dim, cfg.width, cfg.depth, len(POINT_FIELDS))


# ----------------------------------------------------------------------------- training


def assign_batch(out: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, float]:
    """Optimal one-to-one assignment of outputs (B, 6) to targets (B, 6).

    Returns `col` such that output i goes to target col[i], and the mean squared distance.
    """
    from scipy.optimize import linear_sum_assignment

    cost = torch.cdist(out.detach(), targets).square_().cpu().numpy()    # (B, B)
    row, col = linear_sum_assignment(cost)                               # row == arange(B)
    return col, float(cost[row, col].mean())


def train(cfg: NATConfig, out: Path, *, minutes: float | None = None, device: str = "cpu",
          threads: int = 0, fresh: bool = False, progress: bool = True) -> dict:
    """Train (or resume) a NAT model into folder `out`; returns a summary dict.

    Every `EVAL_EVERY_S` of training the sliced Wasserstein distance of 1,000 outputs of
    fixed noise to 1,000 held-out target points is measured; the bar shows it and says when
    it stopped improving (`summary["flat_since_s"]`)."""
    from .measures import sliced_wasserstein

    dev = common.setup(device, common.auto_threads(threads), cfg.seed)
    target = PictureTarget.from_config(load_picture(cfg.image), asdict(cfg))
    rng = np.random.default_rng(cfg.seed)
    held_rng = np.random.default_rng([cfg.seed, 99])
    held_z = torch.from_numpy(held_rng.standard_normal((1000, cfg.latent_dim)).astype(
        np.float32))
    held_t = target.sample(1000, held_rng)

    # the fixed pools: noise inputs and target points, and a random first assignment
    noise = torch.randn(cfg.n_points, cfg.latent_dim,
                        generator=torch.Generator().manual_seed(cfg.seed))      # (N, L)
    targets = torch.from_numpy(target.sample(cfg.n_points, rng))                 # (N, 6)
    assign = torch.randperm(cfg.n_points,
                            generator=torch.Generator().manual_seed(cfg.seed + 1))  # (N,)
    model = build(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, elapsed = 0, 0.0
    init_cost = None
    plateau = common.Plateau()

    ckpt = None if fresh else common.load_checkpoint(out)
    if ckpt is not None:
        common.check_resume(ckpt, "nat", asdict(cfg), out)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        noise, targets, assign = ckpt["noise"], ckpt["targets"], ckpt["assign"]
        step, elapsed, init_cost = ckpt["step"], ckpt["elapsed_s"], ckpt.get("init_cost")
        rng.bit_generator.state = ckpt["rng"]
    model.to(dev)
    noise, targets = noise.to(dev), targets.to(dev)

    def checkpoint(step: int) -> None:
        common.save_checkpoint(out, {
            "family": "nat", "model_args": asdict(cfg), "model": model.state_dict(),
            "optimizer": opt.state_dict(), "noise": noise.cpu(), "targets": targets.cpu(),
            "assign": assign, "step": step, "elapsed_s": budget.elapsed_s,
            "init_cost": init_cost, "rng": rng.bit_generator.state})

    def quality_now() -> float:
        with torch.no_grad():
            y = model(held_z.to(dev)).clamp(0, 1).cpu().numpy()
        return sliced_wasserstein(y, held_t, n_dirs=64)

    def one_step(_progress: float) -> torch.Tensor:
        nonlocal init_cost
        idx = torch.from_numpy(rng.choice(cfg.n_points, cfg.batch_size, replace=False))
        tgt = assign[idx]                                    # (B,) current targets
        y = model(noise[idx])                                # (B, 6)
        col, cost = assign_batch(y, targets[tgt])            # re-solve within the batch
        tgt = tgt[col]
        assign[idx] = tgt                                    # keep the new assignment
        if init_cost is None:
            init_cost = cost
        return F.mse_loss(y, targets[tgt])                   # regress on the new targets

    next_eval = elapsed
    sw = float("nan")

    def after(step: int, loss: torch.Tensor) -> dict[str, str] | None:
        nonlocal next_eval, sw
        if budget.elapsed_s >= next_eval:
            next_eval = budget.elapsed_s + EVAL_EVERY_S
            sw = quality_now()
            plateau.update(budget.elapsed_s, sw)
        if step % 20:
            return None
        flat = plateau.flat_since_s
        return {"loss": f"{loss.item():.5f}", "SW": f"{sw:.4f}",
                "quality": "improving" if flat is None else f"flat since {flat:.0f} s"}

    budget = common.Budget(cfg.steps, minutes, elapsed)
    step, interrupted = common.run_steps(
        opt, cfg.lr, budget, step, common.Progress(budget, step, "nat", progress), one_step,
        after=after, ckpt_every=cfg.ckpt_every, checkpoint=checkpoint)
    checkpoint(step)
    plateau.update(budget.elapsed_s, quality_now())
    summary = {"steps": step, "train_seconds": round(budget.elapsed_s, 1),
               "initial_assignment_cost": init_cost, "interrupted": interrupted,
               "final_sw": round(plateau.best, 5), "flat_since_s": plateau.flat_since_s}
    export_model(model, cfg, out, summary)
    return summary


EVAL_EVERY_S = 2.0


# ----------------------------------------------------------------------------- export


def export_model(model: NAT, cfg: NATConfig, out: Path, summary: dict) -> Path:
    """``model.safetensors`` + ``model.json`` for the runtime (fields x, y, r, g, b, w)."""
    doc = {
        "name": out.name, "family": "nat", "latent_dim": cfg.latent_dim,
        "output": {"kind": "points",
                   "fields": [{"name": f, "min": 0.0, "max": 1.0} for f in POINT_FIELDS]},
        "recipe": {"config": asdict(cfg), "trained": summary,
                   "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")},
    }
    return export.write_model(out, model.net.cpu(), doc)
