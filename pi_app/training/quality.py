"""Measure a trained model, draw its pictures, and record both in model.json and README.md.

NAT: the exact optimal assignment cost per point (mean Euclidean distance in the 6-D
(x, y, r, g, b, w) space, Hungarian method) between 2,000 generated and 2,000 target samples,
against a Gaussian fitted to the target's mean and covariance (clipped to [0, 1] like the
model's output) and against the floor: two independent 2,000-sample sets of the target.
Generated samples come from the exported NumPy model, i.e. what the Pi runs.

Inverted AE: the message reconstruction error through the noise channel (MSE and cosine
similarity) with the trained generator, and with the untrained (initial) generator under the
same trained decoder; and the smoothness of interpolations: the mean change of the picture per
step along straight lines between random messages, and the largest step over the mean.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import LatentDMXError
from ..runtime import Model, load_model
from . import card, export

N_SAMPLES = 2000


def measure(folder: Path, threads: int = 2, quick: bool = False) -> dict:
    """Measure the model in `folder`, draw its pictures, update model.json and README.md.

    `quick` (for tests) uses a few hundred samples; the cards use the full counts.
    """
    model = load_model(folder)
    if model.info.family == "nat":
        figures = measure_nat(model, folder, 300 if quick else N_SAMPLES, 1 if quick else 3)
    else:
        figures = measure_iae(model, folder, threads, 100 if quick else 1000)
    figures["generate_us"] = generate_speed(model)
    doc = export.update_json(folder, quality=figures)
    card.write(folder, doc)
    return figures


def summary_line(f: dict) -> str:
    if "assignment_cost" in f:
        return (f"assignment cost per point: model {f['assignment_cost']:.4f}, gaussian "
                f"{f['gaussian_cost']:.4f}, floor {f['floor_cost']:.4f} "
                f"(model/gaussian {f['ratio_to_gaussian']:.2f}); generate(32) "
                f"{f['generate_us']:.0f} us")
    return (f"reconstruction mse {f['mse_trained']:.4f} (untrained generator "
            f"{f['mse_untrained']:.4f}), cosine {f['cos_trained']:.3f}; interpolation step "
            f"{f['interp_step_mean']:.4f} (max/mean {f['interp_step_max_over_mean']:.2f}); "
            f"generate(1) {f['generate_us']:.0f} us")


def generate_speed(model: Model) -> float:
    """Microseconds per `generate` call: a batch of 32 for points, one picture for images."""
    b = 32 if model.info.kind == "points" else 1
    z = np.random.default_rng(0).standard_normal((b, model.info.latent_dim)).astype(np.float32)
    model.generate(z)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(200):
            model.generate(z)
        best = min(best, (time.perf_counter() - t0) / 200)
    return round(best * 1e6, 1)


# ----------------------------------------------------------------------------- NAT


def ot_cost(a: np.ndarray, b: np.ndarray) -> float:
    """Exact optimal one-to-one assignment cost per point (mean Euclidean distance)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    cost = cdist(a.astype(np.float64), b.astype(np.float64))
    row, col = linear_sum_assignment(cost)
    return float(cost[row, col].mean())


def find_picture(folder: Path, recorded: str) -> Path:
    """The target picture: as recorded (cwd-relative or absolute), else beside the model."""
    for cand in (Path(recorded), folder / Path(recorded).name, folder / "target.png"):
        if cand.is_file():
            return cand
    raise LatentDMXError("target picture not found", file=recorded, field="recipe.config.image",
                         fix=f"put it at {folder / Path(recorded).name}")


def measure_nat(model: Model, folder: Path, n: int = N_SAMPLES, repeats: int = 3) -> dict:
    from .nat import PictureTarget, load_picture

    cfg = model.info.card.get("recipe", {}).get("config", {})
    picture_path = find_picture(folder, str(cfg.get("image", "target.png")))
    picture = load_picture(picture_path)
    target = PictureTarget(picture, float(cfg.get("threshold", 0.06)))
    rng = np.random.default_rng(1234)
    big = target.sample(50_000, rng)
    mean, cov = big.mean(0), np.cov(big, rowvar=False)
    runs: dict[str, list] = {"model": [], "gaussian": [], "floor": []}
    for _ in range(repeats):
        ref = target.sample(n, rng)
        z = rng.standard_normal((n, model.info.latent_dim)).astype(np.float32)
        runs["model"].append(ot_cost(model.generate(z), ref))
        gauss = rng.multivariate_normal(mean, cov, n).clip(0, 1)
        runs["gaussian"].append(ot_cost(gauss, ref))
        runs["floor"].append(ot_cost(target.sample(n, rng), ref))
    m, g, f = (float(np.mean(runs[k])) for k in ("model", "gaussian", "floor"))
    draw_nat(model, picture, folder / "samples.png")
    return {"assignment_cost": round(m, 5), "gaussian_cost": round(g, 5),
            "floor_cost": round(f, 5), "ratio_to_gaussian": round(m / g, 3),
            "ratio_to_floor": round(m / f, 3), "samples": n, "repeats": repeats,
            "metric": "mean Euclidean distance in (x,y,r,g,b,w) under the exact optimal "
                      "one-to-one assignment (scipy linear_sum_assignment)"}


def draw_nat(model: Model, picture: np.ndarray, path: Path, n: int = N_SAMPLES) -> None:
    """Three panels: the target | generated samples | samples over the dimmed target."""
    from PIL import Image, ImageDraw

    h, w, _ = picture.shape
    z = np.random.default_rng(7).standard_normal((n, model.info.latent_dim)).astype(np.float32)
    pts = model.generate(z)
    rgb = pts[:, 2:5] + pts[:, 5:6]                              # back to R, G, B
    rgb = rgb / np.maximum(rgb.max(1, keepdims=True), 1e-3)      # full brightness to be seen
    base = Image.fromarray((picture * 255).astype(np.uint8))
    black = Image.new("RGB", (w, h))
    dim = Image.fromarray((picture * 0.35 * 255).astype(np.uint8))
    for panel in (black, dim):
        d = ImageDraw.Draw(panel)
        for (x, y), c in zip(pts[:, :2] * (w, h), (rgb * 255).astype(int), strict=False):
            d.ellipse((x - 1.2, y - 1.2, x + 1.2, y + 1.2), fill=tuple(int(v) for v in c))
    sheet = Image.new("RGB", (3 * w + 8, h), (40, 40, 40))
    for i, im in enumerate((base, black, dim)):
        sheet.paste(im, (i * (w + 4), 0))
    sheet.save(path, optimize=True)


# ----------------------------------------------------------------------------- inverted AE


def measure_iae(model: Model, folder: Path, threads: int = 2, n_messages: int = 1000) -> dict:
    import torch

    from . import common, iae

    ckpt = common.load_checkpoint(folder)
    if ckpt is None:
        raise LatentDMXError("needs the training checkpoint (the decoder lives there)",
                             file=folder / common.CHECKPOINT, field="quality",
                             fix="run `latentdmx train iae --out FOLDER` first")
    torch.set_num_threads(max(1, threads))
    cfg = iae.IAEConfig(**ckpt["model_args"])
    net = iae.build(cfg)
    net.load_state_dict(ckpt["model"])
    untrained = iae.build(cfg)
    untrained.generator.load_state_dict(ckpt["generator_init"])
    untrained.decoder.load_state_dict(net.decoder.state_dict())     # same trained decoder
    g = torch.Generator().manual_seed(99)
    msg = torch.randn(n_messages, cfg.latent_dim, generator=g)
    figs = {}
    for label, m in (("trained", net), ("untrained", untrained)):
        mse, cos = iae.evaluate(m, msg, cfg, seed=5)
        figs[f"mse_{label}"], figs[f"cos_{label}"] = round(mse, 4), round(cos, 4)
    figs["mse_zero_guess"] = round(float(msg.square().mean()), 4)
    figs["messages"] = n_messages
    figs.update(interpolation(model))
    draw_iae(model, folder)
    return figs


def _lerp_paths(latent: int, n_paths: int, n_steps: int, seed: int) -> np.ndarray:
    """(n_paths, n_steps, latent): straight lines between random messages."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n_paths, 1, latent))
    b = rng.standard_normal((n_paths, 1, latent))
    t = np.linspace(0, 1, n_steps)[None, :, None]
    return ((1 - t) * a + t * b).astype(np.float32)


def interpolation(model: Model, n_paths: int = 32, n_steps: int = 32) -> dict:
    """Mean per-step change of the picture (mean |difference| per pixel and channel)."""
    paths = _lerp_paths(model.info.latent_dim, n_paths, n_steps, seed=3)
    imgs = model.generate(paths.reshape(-1, model.info.latent_dim))
    imgs = imgs.reshape(n_paths, n_steps, -1)
    steps = np.abs(np.diff(imgs, axis=1)).mean(axis=2)            # (paths, steps - 1)
    ends = np.abs(imgs[:, -1] - imgs[:, 0]).mean(axis=1)          # (paths,)
    return {"interp_step_mean": round(float(steps.mean()), 5),
            "interp_step_max": round(float(steps.max()), 5),
            "interp_step_max_over_mean": round(float((steps.max(1) / steps.mean(1)).mean()), 3),
            "interp_endpoint_change": round(float(ends.mean()), 5),
            "interp_steps": n_steps}


def _tile(imgs: np.ndarray, cols: int, scale: int = 4, gap: int = 2) -> np.ndarray:
    """(N, H, W, 3) in [0, 1] -> one uint8 sheet, each picture scaled up (nearest)."""
    n, h, w, _ = imgs.shape
    rows = -(-n // cols)
    big = imgs.repeat(scale, 1).repeat(scale, 2)
    hh, ww = h * scale + gap, w * scale + gap
    sheet = np.full((rows * hh + gap, cols * ww + gap, 3), 0.15, np.float32)
    for i, im in enumerate(big):
        r, c = divmod(i, cols)
        sheet[gap + r * hh:gap + r * hh + h * scale, gap + c * ww:gap + c * ww + w * scale] = im
    return (sheet * 255 + 0.5).astype(np.uint8)


def draw_iae(model: Model, folder: Path) -> None:
    """``glyphs.png``: 8 x 8 random glyphs; ``interpolation.png``: 4 morphs in 12 steps."""
    from PIL import Image

    z = np.random.default_rng(11).standard_normal((64, model.info.latent_dim))
    Image.fromarray(_tile(model.generate(z.astype(np.float32)), 8)).save(
        folder / "glyphs.png", optimize=True)
    paths = _lerp_paths(model.info.latent_dim, 4, 12, seed=12)
    strip = model.generate(paths.reshape(-1, model.info.latent_dim))
    Image.fromarray(_tile(strip, 12)).save(folder / "interpolation.png", optimize=True)
