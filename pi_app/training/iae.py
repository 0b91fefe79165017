"""The inverted autoencoder: a generator draws a message as a small picture (a "glyph"), a
noisy channel moves and spoils the picture, and a decoder must read the message back.

Read top to bottom: the config, the generator, the channel, the decoder, the training loop,
the export. Only the generator is exported (the show draws its glyphs); the decoder stays in
the checkpoint, where the quality step finds it.

The generator is Linear -> (C, K/2, K/2) -> 3x3 conv, ReLU -> nearest upsample x2 -> 3x3
conv, ReLU -> 3x3 conv -> sigmoid -> nearest upsample to S x S: the picture is drawn on a
coarse K x K grid of cells (K = `cells`, 8 for a 16 x 16 glyph), so its smallest patch is a
cell of (S/K)^2 pixels, about one fixture of an 8 x 8 grid of pars. No BatchNorm, so nothing
needs folding at export, and every layer has a cheap NumPy counterpart (im2col matmuls).

Two terms beside the decoding loss make glyphs a viewer can read across a rig (without them
the decoder rewards confetti: every corner colour of the RGB cube in 3-pixel patches):
- `palette`: the share of each glyph's cells outside its `palette_classes` most used colour
  classes (soft: a cell's membership of corner c of the RGB cube is the product over R, G,
  B of x or 1 - x), so a glyph keeps to a few colours;
- `smooth`: the mean absolute difference between neighbouring cells (total variation), so
  the colours form regions larger than a cell.
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
    # the channel, at the strengths the references use (ichko's inverted autoencoder: affine
    # up to 30 degrees, +-10 % shift, 0.8-1.2 zoom, 15 degrees shear, perspective, unit-std
    # Gaussian noise): strong enough that only bold, high-contrast shapes get through
    rotate_deg: float = 25.0        # random rotation within +-
    translate: float = 0.10         #   shift, as a fraction of the picture
    scale: float = 0.20             #   zoom within 1 +- scale
    shear_deg: float = 15.0         #   shear within +-
    perspective: float = 0.30       #   perspective terms within +-
    blur: float = 1.0               #   Gaussian blur, sigma within [0, blur] pixels
    noise_add: float = 1.0          #   additive Gaussian noise (std)
    noise_mul: float = 0.2          #   multiplicative Gaussian noise (std around 1)
    cells: int = 8                  # the glyph is drawn on cells x cells (size a multiple)
    palette: float = 2.0            # weight: cell share outside the main colour classes
    palette_classes: int = 3        #   how many classes a glyph may use freely
    smooth: float = 0.6             # weight: total variation between neighbouring cells
                                    # (both weights ramp from 0 to full over half the run,
                                    # so the decoder learns to read before shapes are asked)
    curriculum: float = 0.3         # the channel ramps from 10 % to full strength over this
                                    # fraction of the run (then stays full)
    ckpt_every: int = 500


# ----------------------------------------------------------------------------- the model


class Generator(nn.Module):
    """message (B, L) -> picture (B, 3, S, S) in [0, 1]."""

    def __init__(self, latent_dim: int, size: int, channels: int, cells: int = 8) -> None:
        super().__init__()
        if cells % 2 or size % cells:
            raise ValueError(f"cells {cells} must be even and divide size {size}")
        c, b = channels, cells // 2
        self.net = nn.Sequential(
            nn.Linear(latent_dim, c * b * b), nn.ReLU(),            # (B, C*b*b)
            nn.Unflatten(1, (c, b, b)),                             # (B, C, K/2, K/2)
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),            # (B, C, K, K)
            nn.Conv2d(c, c // 2, 3, padding=1), nn.ReLU(),          # (B, C/2, K, K)
            nn.Conv2d(c // 2, 3, 3, padding=1), nn.Sigmoid(),       # (B, 3, K, K)
            nn.Upsample(scale_factor=size // cells, mode="nearest"),  # (B, 3, S, S)
        )

    def cells(self, z: torch.Tensor) -> torch.Tensor:
        """The glyph's cells (B, 3, K, K), before the final upsampling."""
        return self.net[:-1](z)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


CORNERS = torch.tensor([[(c >> k) & 1 for k in range(3)] for c in range(8)],
                       dtype=torch.float32)                       # (8, 3): bit k = R, G, B


def class_mass(cells: torch.Tensor) -> torch.Tensor:
    """(B, 3, K, K) in [0, 1] -> (B, 8): each glyph's share of cells in each corner colour
    class of the RGB cube (soft: membership = product over R, G, B of x or 1 - x)."""
    x = cells.flatten(2).transpose(1, 2)[:, :, None, :]           # (B, K*K, 1, 3)
    corners = CORNERS.to(cells.device)
    member = (corners * x + (1 - corners) * (1 - x)).prod(-1)      # (B, K*K, 8)
    return member.mean(1)


def shape_penalties(cells: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(palette, smooth) for a batch of cells: the share outside each glyph's `keep` most
    used colour classes, and the mean absolute difference between neighbouring cells."""
    mass = class_mass(cells).sort(dim=1, descending=True).values
    palette = mass[:, keep:].sum(1).mean()
    smooth = 0.5 * ((cells[..., 1:, :] - cells[..., :-1, :]).abs().mean()
                    + (cells[..., :, 1:] - cells[..., :, :-1]).abs().mean())
    return palette, smooth


def channel(img: torch.Tensor, cfg: IAEConfig, strength: float = 1.0) -> torch.Tensor:
    """The differentiable noisy channel: a random projective warp, blur, then noise.

    Each picture gets its own homography [[A, t], [p, 1]] with A = rotation x shear / zoom;
    `grid_sample` reads the warped picture (black outside), so gradients flow through. Then a
    Gaussian blur of random width, multiplicative and additive Gaussian noise. `strength`
    scales every term (1 = the configured channel; the curriculum and the quality grid use
    other values).
    """
    bsz, c, h, w = img.shape
    dev = img.device
    k = float(strength)

    def u(lim: float) -> torch.Tensor:                              # (B,) uniform in +-lim
        return (torch.rand(bsz, device=dev) * 2 - 1) * lim * k

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
    base = F.affine_grid(ident, [bsz, c, h, w], align_corners=False)     # (B, H, W, 2)
    xyz = torch.cat([base, torch.ones_like(base[..., :1])], -1).view(bsz, h * w, 3)
    xyz = xyz @ hom.transpose(1, 2)                                 # (B, H*W, 3)
    grid = (xyz[..., :2] / xyz[..., 2:].clamp(min=0.2)).view(bsz, h, w, 2)
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.blur > 0 and k > 0:
        out = _blur(out, torch.rand(bsz, device=dev) * cfg.blur * k)
    out = out * (1 + cfg.noise_mul * k * torch.randn_like(out))
    return out + cfg.noise_add * k * torch.randn_like(out)


def _blur(img: torch.Tensor, sigma: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Separable Gaussian blur with one sigma (pixels) per picture: (B, C, H, W)."""
    bsz, c, h, w = img.shape
    x = torch.arange(-radius, radius + 1, device=img.device, dtype=img.dtype)
    ker = torch.exp(-0.5 * (x[None] / sigma.clamp(min=1e-3)[:, None]) ** 2)    # (B, K)
    ker = ker / ker.sum(1, keepdim=True)
    ker = ker.repeat_interleave(c, 0)                                            # (B*C, K)
    flat = img.reshape(1, bsz * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"),
                    ker[:, None, None, :], groups=bsz * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"),
                    ker[:, None, :, None], groups=bsz * c)
    return flat.reshape(bsz, c, h, w)


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
        self.generator = Generator(cfg.latent_dim, cfg.size, cfg.channels, cfg.cells)
        self.decoder = Decoder(cfg.latent_dim, cfg.size)

    def forward(self, msg: torch.Tensor, strength: float = 1.0
                ) -> tuple[torch.Tensor, torch.Tensor]:
        cells = self.generator.cells(msg)           # (B, 3, K, K)
        img = self.generator.net[-1](cells)         # (B, 3, S, S)
        return self.decoder(channel(img, self.cfg, strength)), cells


def build(cfg: IAEConfig) -> IAE:
    return IAE(cfg)


def evaluate(net: IAE, msg: torch.Tensor, cfg: IAEConfig, seed: int = 0,
             strength: float = 1.0) -> tuple[float, float]:
    """Mean squared error and cosine similarity of messages read back through the channel."""
    was_training = net.training
    net.eval()
    se, cos = 0.0, 0.0
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        for part in msg.split(250):
            got, _ = net(part, strength)
            se += float((got - part).square().mean(1).sum())
            cos += float(F.cosine_similarity(got, part, dim=1).sum())
    net.train(was_training)
    return se / len(msg), cos / len(msg)


# ----------------------------------------------------------------------------- training


def curriculum(cfg: IAEConfig, progress: float) -> float:
    """Channel strength at `progress` (0..1 of the run): 0.1 -> 1 over `cfg.curriculum`."""
    if cfg.curriculum <= 0:
        return 1.0
    return min(1.0, 0.1 + 0.9 * progress / cfg.curriculum)


def train(cfg: IAEConfig, out: Path, *, minutes: float | None = None, device: str = "cpu",
          threads: int = 2, fresh: bool = False, progress: bool = True) -> dict:
    """Train (or resume) an inverted autoencoder into folder `out`; returns a summary."""
    dev = common.setup(device, common.auto_threads(threads), cfg.seed)
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

    def checkpoint(step: int) -> None:
        common.save_checkpoint(out, {
            "family": "iae", "model_args": asdict(cfg), "model": net.state_dict(),
            "optimizer": opt.state_dict(), "generator_init": generator_init, "step": step,
            "elapsed_s": budget.elapsed_s, "rng": torch.get_rng_state()})

    budget = common.Budget(cfg.steps, minutes, elapsed)
    plateau = common.Plateau()
    avg: float | None = None
    last: dict[str, torch.Tensor] = {}                       # this step's message and reading

    def one_step(progress: float) -> torch.Tensor:
        msg = torch.randn(cfg.batch_size, cfg.latent_dim, device=dev)   # (B, L)
        got, cells = net(msg, curriculum(cfg, progress))                # (B, L)
        palette, smooth = shape_penalties(cells, cfg.palette_classes)
        last["msg"], last["got"], last["palette"] = msg, got, palette.detach()
        ramp = min(1.0, 2.0 * progress)
        return F.mse_loss(got, msg) + ramp * (cfg.palette * palette + cfg.smooth * smooth)

    def after(step: int, loss: torch.Tensor) -> dict[str, str] | None:
        nonlocal avg
        strength = curriculum(cfg, budget.progress(step))
        if strength >= 1.0:                      # at full channel: is it still improving?
            avg = loss.item() if avg is None else 0.98 * avg + 0.02 * loss.item()
            if step % 10 == 0:
                plateau.update(budget.elapsed_s, avg)
        if step % 10:
            return None
        cos = F.cosine_similarity(last["got"].detach(), last["msg"], dim=1).mean()
        flat = plateau.flat_since_s
        return {"loss": f"{loss.item():.4f}", "cos": f"{cos:.3f}",
                "off-palette": f"{last['palette'].item():.3f}", "channel": f"{strength:.0%}",
                "quality": ("ramping" if strength < 1 else "improving" if flat is None
                            else f"flat since {flat:.0f} s")}

    net.train()
    step, interrupted = common.run_steps(
        opt, cfg.lr, budget, step, common.Progress(budget, step, "iae", progress), one_step,
        after=after, ckpt_every=cfg.ckpt_every, checkpoint=checkpoint)
    checkpoint(step)
    net.cpu().eval()
    summary = {"steps": step, "train_seconds": round(budget.elapsed_s, 1),
               "interrupted": interrupted, "flat_since_s": plateau.flat_since_s}
    export_model(net, cfg, out, summary)
    return summary


def match_contrast(random: Generator, trained: Generator, probe: torch.Tensor) -> None:
    """Scale a random generator's last convolution so its pictures have the trained one's
    contrast (mean and spread before the sigmoid): a random generator at its initial weights
    draws nearly flat grey, which no decoder can read through noise, a trivial baseline."""
    sig = max(i for i, m in enumerate(random.net) if isinstance(m, nn.Sigmoid))
    with torch.no_grad():
        a = random.net[:sig](probe)
        b = trained.net[:sig](probe)
        k = float(b.std() / a.std().clamp(min=1e-8))
        last = random.net[sig - 1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        last.weight.mul_(k)
        last.bias.mul_(k).add_(float(b.mean() - k * a.mean()))


def train_decoder(net: IAE, cfg: IAEConfig, steps: int, progress: bool = True) -> dict:
    """Train only `net`'s decoder, its generator frozen, with the same channel, curriculum
    and schedule (the quality step's baseline: a decoder for a random, fixed generator of
    the same size). Returns the decoder's state dict."""
    torch.manual_seed(cfg.seed + 7)
    for p in net.generator.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(net.decoder.parameters(), lr=cfg.lr)
    net.train()

    def one_step(progress: float) -> torch.Tensor:
        msg = torch.randn(cfg.batch_size, cfg.latent_dim)
        got, _ = net(msg, curriculum(cfg, progress))
        return F.mse_loss(got, msg)

    budget = common.Budget(steps)
    _, interrupted = common.run_steps(
        opt, cfg.lr, budget, 0, common.Progress(budget, 0, "baseline decoder", progress),
        one_step)
    if interrupted:
        raise KeyboardInterrupt
    net.eval()
    return {k: v.clone() for k, v in net.decoder.state_dict().items()}


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
