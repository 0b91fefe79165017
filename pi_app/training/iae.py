"""The inverted autoencoder: a generator draws a message as a small picture (a "glyph"), a
noisy channel moves and spoils the picture, and a decoder must read the message back.

Read top to bottom: the config, the generator, the channel, the decoder, the training loop,
the export. Only the generator is exported (the show draws its glyphs); the decoder stays in
the checkpoint, where the quality step finds it.

The generator is Linear -> (C, S/4, S/4) -> [nearest upsample x2, 3x3 conv, ReLU] x 2 ->
3x3 conv -> sigmoid: no BatchNorm, so nothing needs folding at export, and every layer has a
cheap NumPy counterpart (im2col matmuls, 16 x 16 pictures).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from . import common, export

# ----------------------------------------------------------------------------- config


@dataclass
class IAEConfig:
    latent_dim: int = 16            # message size
    size: int = 16                  # glyph side in pixels (a multiple of 4)
    channels: int = 32              # generator width
    batch_size: int = 64
    lr: float = 2e-3
    steps: int = 4000
    seed: int = 0
    rotate_deg: float = 25.0        # the channel: random rotation within +-
    translate: float = 0.12         #   shift, as a fraction of the picture
    scale: float = 0.15             #   zoom within 1 +- scale
    shear_deg: float = 10.0         #   shear within +-
    perspective: float = 0.15       #   perspective terms within +-
    noise_add: float = 0.10         #   additive Gaussian noise (std)
    noise_mul: float = 0.10         #   multiplicative Gaussian noise (std around 1)
    ckpt_every: int = 500


# ----------------------------------------------------------------------------- the model


class Generator(nn.Module):
    """message (B, L) -> picture (B, 3, S, S) in [0, 1]."""

    def __init__(self, latent_dim: int, size: int, channels: int) -> None:
        super().__init__()
        c, b = channels, size // 4
        self.net = nn.Sequential(
            nn.Linear(latent_dim, c * b * b), nn.ReLU(),            # (B, C*b*b)
            nn.Unflatten(1, (c, b, b)),                             # (B, C, S/4, S/4)
            nn.Upsample(scale_factor=2, mode="nearest"),            # (B, C, S/2, S/2)
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),            # (B, C, S, S)
            nn.Conv2d(c, c // 2, 3, padding=1), nn.ReLU(),          # (B, C/2, S, S)
            nn.Conv2d(c // 2, 3, 3, padding=1), nn.Sigmoid(),       # (B, 3, S, S)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def channel(img: torch.Tensor, cfg: IAEConfig) -> torch.Tensor:
    """The differentiable noisy channel: a random projective warp, then Gaussian noise.

    Each picture gets its own homography [[A, t], [p, 1]] with A = rotation x shear / zoom;
    `grid_sample` reads the warped picture (black outside), so gradients flow through.
    """
    bsz, _, h, w = img.shape
    dev = img.device

    def u(lim: float) -> torch.Tensor:                              # (B,) uniform in +-lim
        return (torch.rand(bsz, device=dev) * 2 - 1) * lim

    ang, shear = u(math.radians(cfg.rotate_deg)), u(math.radians(cfg.shear_deg))
    zoom = 1 + u(cfg.scale)
    cos, sin, tan = ang.cos(), ang.sin(), shear.tan()
    hom = torch.zeros(bsz, 3, 3, device=dev)
    hom[:, 0, 0], hom[:, 0, 1] = cos / zoom, (cos * tan - sin) / zoom
    hom[:, 1, 0], hom[:, 1, 1] = sin / zoom, (sin * tan + cos) / zoom
    hom[:, 0, 2], hom[:, 1, 2] = u(2 * cfg.translate), u(2 * cfg.translate)
    hom[:, 2, 0], hom[:, 2, 1] = u(cfg.perspective), u(cfg.perspective)
    hom[:, 2, 2] = 1
    ident = torch.eye(2, 3, device=dev).expand(bsz, 2, 3)
    base = F.affine_grid(ident, [bsz, 3, h, w], align_corners=False)     # (B, H, W, 2)
    xyz = torch.cat([base, torch.ones_like(base[..., :1])], -1).view(bsz, h * w, 3)
    xyz = xyz @ hom.transpose(1, 2)                                 # (B, H*W, 3)
    grid = (xyz[..., :2] / xyz[..., 2:].clamp(min=0.2)).view(bsz, h, w, 2)
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out * (1 + cfg.noise_mul * torch.randn_like(out))
    return out + cfg.noise_add * torch.randn_like(out)


class Decoder(nn.Module):
    """noisy picture (B, 3, S, S) -> message (B, L)."""

    def __init__(self, latent_dim: int, size: int) -> None:
        super().__init__()
        s = size // 4
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),                          # (B, 32, S, S)
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Flatten(),                                                       # (B, 64*S*S/16)
            nn.Linear(64 * s * s, 256), nn.ReLU(),
            nn.Linear(256, latent_dim),                                         # (B, L)
        )

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.net(img)


class IAE(nn.Module):
    def __init__(self, cfg: IAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.generator = Generator(cfg.latent_dim, cfg.size, cfg.channels)
        self.decoder = Decoder(cfg.latent_dim, cfg.size)

    def forward(self, msg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.generator(msg)                   # (B, 3, S, S)
        return self.decoder(channel(img, self.cfg)), img


def build(cfg: IAEConfig) -> IAE:
    return IAE(cfg)


def evaluate(net: IAE, msg: torch.Tensor, cfg: IAEConfig, seed: int = 0) -> tuple[float, float]:
    """Mean squared error and cosine similarity of messages read back through the channel."""
    was_training = net.training
    net.eval()
    se, cos = 0.0, 0.0
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        for part in msg.split(250):
            got, _ = net(part)
            se += float((got - part).square().mean(1).sum())
            cos += float(F.cosine_similarity(got, part, dim=1).sum())
    net.train(was_training)
    return se / len(msg), cos / len(msg)


# ----------------------------------------------------------------------------- training


def train(cfg: IAEConfig, out: Path, *, minutes: float | None = None, device: str = "cpu",
          threads: int = 2, fresh: bool = False, progress: bool = True) -> dict:
    """Train (or resume) an inverted autoencoder into folder `out`; returns a summary."""
    from tqdm import tqdm

    dev = common.setup(device, threads, cfg.seed)
    net = build(cfg)
    generator_init = {k: v.clone() for k, v in net.generator.state_dict().items()}
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    step, elapsed = 0, 0.0

    ckpt = None if fresh else common.load_checkpoint(out)
    if ckpt is not None:
        common.check_resume(ckpt, "iae", asdict(cfg), out)
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        generator_init = ckpt["generator_init"]
        step, elapsed = ckpt["step"], ckpt["elapsed_s"]
        torch.set_rng_state(ckpt["rng"])
    net.to(dev)

    def checkpoint() -> None:
        common.save_checkpoint(out, {
            "family": "iae", "model_args": asdict(cfg), "model": net.state_dict(),
            "optimizer": opt.state_dict(), "generator_init": generator_init, "step": step,
            "elapsed_s": budget.elapsed_s, "rng": torch.get_rng_state()})

    budget = common.Budget(cfg.steps, minutes, elapsed)
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, unit="step",
               dynamic_ncols=True, desc="iae")
    interrupted = False
    net.train()
    try:
        while not budget.done(step):
            lr = common.cosine_lr(cfg.lr, budget.progress(step))
            for group in opt.param_groups:
                group["lr"] = lr
            msg = torch.randn(cfg.batch_size, cfg.latent_dim, device=dev)   # (B, L)
            got, _ = net(msg)                                               # (B, L)
            loss = F.mse_loss(got, msg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

            step += 1
            budget.tick()
            bar.update(1)
            if step % 10 == 0:
                cos = F.cosine_similarity(got.detach(), msg, dim=1).mean()
                bar.set_postfix(loss=f"{loss.item():.4f}", cos=f"{cos:.3f}", lr=f"{lr:.1e}")
            if step % cfg.ckpt_every == 0:
                checkpoint()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    checkpoint()
    net.cpu().eval()
    summary = {"steps": step, "train_seconds": round(budget.elapsed_s, 1),
               "interrupted": interrupted}
    export_model(net, cfg, out, summary)
    return summary


# ----------------------------------------------------------------------------- export


def export_model(net: IAE, cfg: IAEConfig, out: Path, summary: dict) -> Path:
    """The generator only: ``model.safetensors`` + ``model.json`` (an H x W x 3 picture)."""
    doc = {
        "name": out.name, "family": "iae", "latent_dim": cfg.latent_dim,
        "output": {"kind": "image", "shape": [cfg.size, cfg.size, 3],
                   "channels": ["r", "g", "b"], "min": 0.0, "max": 1.0},
        "recipe": {"config": asdict(cfg), "trained": summary,
                   "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")},
    }
    return export.write_model(out, net.generator.net.cpu(), doc)
