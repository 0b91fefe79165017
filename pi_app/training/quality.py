"""Measure a trained model, draw its pictures, and record both in model.json and README.md.

Every quality sentence on a card is printed from a figure measured here (`measures.py` holds
the metrics; `bench/model_quality.py` runs the same metrics on any checkout).

NAT: 20,000 samples of the exported NumPy model (what the Pi runs) against 20,000 of the
target, 3 draws; the floor is a second draw of the target, the baseline a Gaussian fitted to
the target's mean and covariance (clipped to [0, 1] like the model): sliced Wasserstein
distance, energy distance (on the first 2,000 of each draw: it is quadratic in the count),
the share of the Gaussian-to-floor gap closed, and the off-target share (a k-d tree). Each
figure is the mean over the draws, ``*_sd`` its standard deviation. A progress bar counts
the steps (draws, pictures, each minute of the show).

Inverted AE: the glyphs (bold-pixel share, chroma, held-out R^2 of a linear message -> glyph
map, the morph midpoint against a crossfade), and the decoding accuracy through the channel
at a grid of strengths, against a decoder trained the same way on a random, fixed generator
of the same size (trained once here and kept in the checkpoint) and against guessing zero.

Both: a show on the demo rig through the real pipeline (walk, model, mapper, moves, safety,
patch), decoded from its DMX frames: the walk's tears, lit sweeps, frames at a limit, aim
spread, head speed and moves in black.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import LatentDMXError
from ..runtime import Model, load_model
from . import card, export
from . import measures as ms
from .families import family_of


class Bar(Protocol):
    """What the measuring steps need of the progress bar (a tqdm)."""

    def update(self, n: float | None = 1) -> bool | None: ...


N_SAMPLES = 20_000               # NAT: samples per draw (the floor's own noise is small)
ED_SAMPLES = 2000                # energy distance: quadratic in the count, the first 2,000
DRAW_SAMPLES = 2000              # dots on samples.png
COLOUR_SAMPLES = 2000            # colour classes, regions and hue (every family)
SHOW_MINUTES = 20.0               # 3 heads x 20 min = one head-hour
STRENGTHS = (0.25, 0.5, 1.0, 1.5)
BASELINE_STEPS = 2000            # the random-generator decoder's training (it converges fast)
BASELINE_KIND = "random generator, contrast matched"


def measure(folder: Path, threads: int = 0, quick: bool = False, progress: bool = True,
            show_minutes: float | None = None) -> dict:
    """Measure the model in `folder`, draw its pictures, update model.json and README.md.

    A progress bar (stderr) counts the steps: each draw of samples, the pictures, each
    minute of the show. `quick` (for tests) uses fewer samples, a shorter show and a short
    baseline; the cards use the full counts. `show_minutes` (default `SHOW_MINUTES`) sets
    the show's length.
    """
    from tqdm import tqdm

    model = load_model(folder)
    family = family_of({"family": model.info.family}, folder / "model.json")
    minutes = 1.0 if quick else (SHOW_MINUTES if show_minutes is None else show_minutes)
    repeats = 1 if quick else 3
    units = (3 * repeats + 1 if family == "nat" else 1) + math.ceil(minutes) + 1
    with tqdm(total=units, desc="measuring", disable=not progress, dynamic_ncols=True,
              bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}") as bar:
        if family == "nat":
            figures = measure_nat(model, folder, 2000 if quick else N_SAMPLES, repeats, bar)
        else:
            figures = measure_iae(model, folder, threads, 100 if quick else 1000, quick)
            bar.update(1)
        figures["colour"] = colour_figures(model, COLOUR_SAMPLES)
        figures["show"] = measure_show(model, minutes, bar=bar)
        figures["generate_us"] = generate_speed(model)
        bar.update(1)
    doc = export.update_json(folder, quality=figures)
    card.write(folder, doc)
    return figures


def summary_line(f: dict) -> str:
    s = f.get("show", {})
    show = (f"show: {s.get('lit_sweeps_per_hour', 0):.0f} lit sweeps per head-hour, "
            f"{100 * s.get('at_limit_share', 0):.1f} % of frames at a limit")
    if "sw_model" in f:
        return (f"sliced Wasserstein {f['sw_model']:.4f} (gaussian {f['sw_gaussian']:.4f}, "
                f"floor {f['sw_floor']:.4f}): {100 * f['sw_gap_closed']:.0f} % of the gap "
                f"closed; off-target {100 * f['off_model']:.1f} % (floor "
                f"{100 * f['off_floor']:.1f} %); walk tears "
                f"{s.get('tears_per_fixture_hour', 0):.0f} per fixture-hour; {show}")
    g = f["grid"][str(1.0)]
    return (f"bold pixels {100 * f['bold_share']:.0f} %, chroma {f['chroma']:.2f}, linear R2 "
            f"{f['linear_r2']:.2f}, midpoint vs crossfade {f['midpoint_vs_crossfade']:.2f}; "
            f"decoding cosine {g['cos_trained']:.3f} (random-generator baseline "
            f"{g['cos_baseline']:.3f}) at full channel; {show}")


def warning(f: dict) -> str | None:
    """A one-line warning when the model is no better than its baseline."""
    if "sw_gap_closed" in f and f["sw_gap_closed"] <= 0.0:
        return ("the model is no closer to the picture than a Gaussian blob "
                f"(sliced Wasserstein {f['sw_model']:.4f} vs {f['sw_gaussian']:.4f}): train "
                "longer (--minutes), or check --threshold / --background")
    if "grid" in f:
        g = f["grid"][str(1.0)]
        if g["cos_trained"] <= g["cos_baseline"]:
            return ("its glyphs decode no better than a random generator's "
                    f"(cosine {g['cos_trained']:.3f} vs {g['cos_baseline']:.3f}): train longer")
    return None


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


def _r(x: float, nd: int = 5) -> float:
    return round(float(x), nd)


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


def measure_nat(model: Model, folder: Path, n: int = N_SAMPLES, repeats: int = 3,
                bar: Bar | None = None) -> dict:
    """The figures of the module doc, `repeats` draws of `n` samples each: the mean of each
    figure and its spread (the standard deviation over the draws, ``*_sd``). The energy
    distance is quadratic in the sample count, so it uses the first `ED_SAMPLES` of each
    draw."""
    from .nat import PictureTarget, load_picture

    cfg = model.info.card.get("recipe", {}).get("config", {})
    picture_path = find_picture(folder, str(cfg.get("image", "target.png")))
    picture = load_picture(picture_path)
    target = PictureTarget.from_config(picture, cfg)
    rng = np.random.default_rng(1234)
    big = target.sample(50_000, rng)
    mean, cov = big.mean(0), np.cov(big, rowvar=False)
    m = min(n, ED_SAMPLES)
    runs: dict[str, list] = {}
    for r in range(repeats):
        ref = target.sample(n, rng)
        off = ms.OffTarget.calibrate(target.sample(4 * n, rng), target.sample(n, rng))
        z = rng.standard_normal((n, model.info.latent_dim)).astype(np.float32)
        draws = {"model": model.generate(z), "floor": target.sample(n, rng),
                 "gaussian": rng.multivariate_normal(mean, cov, n).clip(0, 1)}
        for name, pts in draws.items():
            runs.setdefault(f"sw_{name}", []).append(ms.sliced_wasserstein(pts, ref, seed=r))
            runs.setdefault(f"ed_{name}", []).append(ms.energy_distance(pts[:m], ref[:m]))
            runs.setdefault(f"off_{name}", []).append(off.fraction(pts))
            if bar is not None:
                bar.update(1)
        runs.setdefault("sw_gap_closed", []).append(ms.gap_closed(
            runs["sw_model"][-1], runs["sw_gaussian"][-1], runs["sw_floor"][-1]))
        runs.setdefault("ed_gap_closed", []).append(ms.gap_closed(
            runs["ed_model"][-1], runs["ed_gaussian"][-1], runs["ed_floor"][-1]))
        runs.setdefault("off_ratio_to_floor", []).append(
            runs["off_model"][-1] / max(runs["off_floor"][-1], 1e-9))
    f: dict = {}
    for k, v in runs.items():
        f[k] = _r(np.mean(v), 6)
        f[f"{k}_sd"] = _r(np.std(v, ddof=1) if len(v) > 1 else 0.0, 6)
    f.update(samples=n, ed_samples=m, repeats=repeats, background=_r(target.background, 4))
    draw_nat(model, picture, folder / "samples.png")
    if bar is not None:
        bar.update(1)
    return f


def draw_nat(model: Model, picture: np.ndarray, path: Path, n: int = DRAW_SAMPLES) -> None:
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
    r = max(1.2, w / 200)
    for panel in (black, dim):
        d = ImageDraw.Draw(panel)
        for (x, y), c in zip(pts[:, :2] * (w, h), (rgb * 255).astype(int), strict=False):
            d.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in c))
    sheet = Image.new("RGB", (3 * w + 8, h), (40, 40, 40))
    for i, im in enumerate((base, black, dim)):
        sheet.paste(im, (i * (w + 4), 0))
    if sheet.width > 900:                                        # photographs: a readable size
        sheet = sheet.resize((900, round(sheet.height * 900 / sheet.width)),
                             Image.Resampling.LANCZOS)
    sheet.save(path, optimize=True)


# ----------------------------------------------------------------------------- the show


def measure_show(model: Model, minutes: float = SHOW_MINUTES, seed: int = 0,
                 bar: Bar | None = None) -> dict:
    """A show of `minutes` on the demo rig, decoded from its DMX frames (see module doc)."""
    from ..config import load_config
    from ..decode import Rig
    from ..pipeline import Pipeline

    config = load_config(None)
    pipe = Pipeline(config, model, seed=seed)
    rig = Rig.from_patch(pipe.patch)
    fps = config.fps
    n = int(minutes * 60 * fps)
    frames = np.empty((n, len(rig.universes), 512), np.uint8)
    wanted: list[np.ndarray] = []
    per_minute = max(1, int(60 * fps))
    for k in range(n):
        frames[k] = rig.frames_array(pipe.frames(k / fps))
        if bar is not None and (k + 1) % per_minute == 0:
            bar.update(1)
        if model.info.kind == "points":
            wanted.append(model.generate(pipe.source.walk.at(pipe.phase))[:, :2])
    motion = ms.show_motion(rig, frames, fps)
    out = motion.as_dict()
    hours = max(motion.heads, 1) * motion.seconds / 3600
    out["moves_in_black_per_hour"] = _r(
        pipe.moves.moves_in_black / max(hours, 1e-9), 1)
    if wanted:
        xy = np.stack(wanted)
        jumps, biggest = ms.walk_jumps(xy, 0.1)
        fixture_hours = xy.shape[0] * xy.shape[1] / fps / 3600
        out.update(tears_per_fixture_hour=_r(jumps / fixture_hours, 2),
                   largest_walk_step=_r(biggest, 4), walk_fixture_hours=_r(fixture_hours, 3))
    out["minutes"] = minutes
    if bar is not None and n % per_minute:
        bar.update(1)                                            # the last part-minute
    return out


# ----------------------------------------------------------------------------- colour


def colour_figures(model: Model, n: int = COLOUR_SAMPLES, seed: int = 0) -> dict:
    """Colour classes, regions and hue of `n` samples (see `measures`; the card prints them).

    Pictures: classes per glyph, and on an 8 x 8 grid of pars reading each glyph: lit classes
    at once, neighbour and far shares of a class; the morph midpoint against a crossfade for
    this generator and for a random one of the same layers (contrast matched). Points: the
    hue of r + w, g + w, b + w."""
    z = np.random.default_rng(seed).standard_normal((n, model.info.latent_dim))
    out = model.generate(z.astype(np.float32))
    if model.info.kind != "image":
        rgb = np.clip(out[:, 2:5] + out[:, 5:6], 0, 1)
        return {"samples": n, "hue_bits": _r(ms.hue_bits(rgb), 3)}
    per_glyph, any_pixel = ms.classes_per_glyph(out)
    grid = ms.grid_classes(ms.colour_class(ms.grid_colours(out)))
    return {"samples": n, "hue_bits": _r(ms.hue_bits(out), 3),
            "classes_per_glyph": _r(per_glyph, 3), "classes_any_pixel": _r(any_pixel, 3),
            **{k: _r(v, 3) for k, v in grid.items()},
            "grid4_share_ratio": _r(ms.grid_classes(ms.colour_class(ms.grid_colours(out, 4)),
                                                    4)["share_ratio"], 3),
            "midpoint_vs_crossfade": _r(ms.midpoint_vs_crossfade(model.generate,
                                                                 model.info.latent_dim), 3),
            "midpoint_random": _r(ms.midpoint_vs_crossfade(random_generator(model),
                                                           model.info.latent_dim), 3)}


def random_generator(model: Model, seed: int = 0):
    """`model`'s layers at torch's default initialisation (seed `seed`), the last convolution
    scaled to the trained generator's contrast (`iae.match_contrast`): z (N, L) -> (N, H, W,
    3). The baseline of the morph figure."""
    import copy
    import json

    import torch
    from safetensors.torch import load_file

    from . import iae

    trained = iae.Generator.__new__(iae.Generator)
    torch.nn.Module.__init__(trained)
    doc = json.loads((model.info.path / "model.json").read_text(encoding="utf-8"))
    trained.net = _torch_layers(doc["layers"])
    state = load_file(str(model.info.path / doc.get("weights", "model.safetensors")))
    trained.load_state_dict(state)
    twin = copy.deepcopy(trained)
    torch.manual_seed(seed)
    for m in twin.net:
        if isinstance(m, torch.nn.Linear | torch.nn.Conv2d):
            m.reset_parameters()
    probe = torch.randn(512, model.info.latent_dim, generator=torch.Generator().manual_seed(98))
    iae.match_contrast(twin, trained, probe)

    def generate(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return twin(torch.as_tensor(z)).permute(0, 2, 3, 1).numpy()
    return generate


def _torch_layers(layers: list[dict]):
    """A model.json layer list as a torch `nn.Sequential` (the inverse of `export.describe`)."""
    from torch import nn

    mods: list[nn.Module] = []
    for spec in layers:
        t = spec["type"]
        mods.append(
            nn.Linear(spec["in"], spec["out"]) if t == "linear" else
            nn.Conv2d(spec["in"], spec["out"], spec["kernel"], padding=spec["padding"])
            if t == "conv2d" else
            nn.Unflatten(1, tuple(spec["shape"])) if t == "reshape" else
            nn.Upsample(scale_factor=spec["scale"], mode="nearest") if t == "upsample" else
            nn.LeakyReLU(spec["slope"]) if t == "leaky_relu" else
            {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "silu": nn.SiLU}[t]())
    return nn.Sequential(*mods)


def measure_colour(folder: Path) -> dict:
    """Only the colour figures of the model in `folder`: update model.json and its card."""
    import json

    figures = colour_figures(load_model(folder))
    path = folder / "model.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc.setdefault("quality", {})["colour"] = figures
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    card.write(folder, doc)
    return figures


# ----------------------------------------------------------------------------- inverted AE


def glyph_figures(model: Model, n: int = 2000) -> dict:
    lat = model.info.latent_dim
    z = np.random.default_rng(0).standard_normal((n, lat)).astype(np.float32)
    imgs = model.generate(z)
    cut = int(0.75 * n)
    return {"bold_share": _r(ms.bold_share(imgs), 4), "chroma": _r(ms.chroma(imgs), 4),
            "linear_r2": _r(ms.linear_r2(z[:cut], imgs[:cut], z[cut:], imgs[cut:]), 4),
            "midpoint_vs_crossfade": _r(ms.midpoint_vs_crossfade(model.generate, lat), 4)}


def measure_iae(model: Model, folder: Path, threads: int = 0, n_messages: int = 1000,
                quick: bool = False) -> dict:
    import torch

    from . import common, iae

    ckpt = common.load_checkpoint(folder)
    if ckpt is None:
        raise LatentDMXError("needs the training checkpoint (the decoder lives there)",
                             file=folder / common.CHECKPOINT, field="quality",
                             fix="run `latentdmx train iae --out FOLDER` first")
    torch.set_num_threads(common.auto_threads(threads))
    cfg = iae.IAEConfig(**ckpt["model_args"])
    net = iae.build(cfg)
    net.load_state_dict(ckpt["model"])
    baseline = iae.build(cfg)
    baseline.generator.load_state_dict(ckpt["generator_init"])
    probe = torch.randn(512, cfg.latent_dim, generator=torch.Generator().manual_seed(98))
    iae.match_contrast(baseline.generator, net.generator, probe)
    if "baseline_decoder" not in ckpt or ckpt.get("baseline_kind") != BASELINE_KIND:
        steps = 40 if quick else min(int(ckpt["step"]), BASELINE_STEPS)
        ckpt["baseline_decoder"] = iae.train_decoder(baseline, cfg, steps)
        ckpt["baseline_steps"] = steps
        ckpt["baseline_kind"] = BASELINE_KIND
        common.save_checkpoint(folder, ckpt)
    baseline.decoder.load_state_dict(ckpt["baseline_decoder"])
    g = torch.Generator().manual_seed(99)
    msg = torch.randn(n_messages, cfg.latent_dim, generator=g)
    zero = float(msg.square().mean())
    grid = {}
    for s in STRENGTHS:
        row = {}
        for label, m in (("trained", net), ("baseline", baseline)):
            mse, cos = iae.evaluate(m, msg, cfg, seed=5, strength=s)
            row[f"mse_{label}"], row[f"cos_{label}"] = _r(mse, 4), _r(cos, 4)
        row["noise_std"] = _r(cfg.noise_add * s, 3)
        grid[str(s)] = row
    figs = glyph_figures(model, 400 if quick else 2000)
    with torch.no_grad():                    # the baseline's glyphs, for comparison
        zb = torch.randn(2000 if not quick else 400, cfg.latent_dim,
                         generator=torch.Generator().manual_seed(0))
        bimgs = baseline.generator(zb).permute(0, 2, 3, 1).numpy()
    cut = int(0.75 * len(zb))
    figs["baseline_glyphs"] = {
        "bold_share": _r(ms.bold_share(bimgs), 4), "chroma": _r(ms.chroma(bimgs), 4),
        "linear_r2": _r(ms.linear_r2(zb[:cut].numpy(), bimgs[:cut], zb[cut:].numpy(),
                                     bimgs[cut:]), 4)}
    figs.update(grid=grid, mse_zero_guess=_r(zero, 4), messages=n_messages,
                baseline_steps=int(ckpt["baseline_steps"]), channel=_channel(cfg))
    figs.update(interpolation(model))
    draw_iae(model, folder)
    return figs


def _channel(cfg) -> dict:
    keys = ("rotate_deg", "translate", "scale", "shear_deg", "perspective", "blur",
            "noise_add", "noise_mul")
    return {k: getattr(cfg, k) for k in keys}


def _slerp_paths(latent: int, n_paths: int, n_steps: int, seed: int) -> np.ndarray:
    """(n_paths, n_steps, latent): slerps between random messages (as the show walks)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n_paths, 1, latent))
    b = rng.standard_normal((n_paths, 1, latent))
    t = np.linspace(0, 1, n_steps)[None, :, None]
    return ms.slerp(a, b, t).astype(np.float32)


def interpolation(model: Model, n_paths: int = 32, n_steps: int = 32) -> dict:
    """Mean per-step change of the picture (mean |difference| per pixel and channel)."""
    paths = _slerp_paths(model.info.latent_dim, n_paths, n_steps, seed=3)
    imgs = model.generate(paths.reshape(-1, model.info.latent_dim))
    imgs = imgs.reshape(n_paths, n_steps, -1)
    steps = np.abs(np.diff(imgs, axis=1)).mean(axis=2)            # (paths, steps - 1)
    ends = np.abs(imgs[:, -1] - imgs[:, 0]).mean(axis=1)          # (paths,)
    return {"interp_step_mean": _r(steps.mean()),
            "interp_step_max_over_mean": _r((steps.max(1) / steps.mean(1)).mean(), 3),
            "interp_path_over_ends": _r((steps.sum(1) / np.maximum(ends, 1e-9)).mean(), 3),
            "interp_endpoint_change": _r(ends.mean()), "interp_steps": n_steps}


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
    """``glyphs.png``: 8 x 8 random glyphs; ``interpolation.png``: 4 morphs in 12 steps
    (slerp, as the show walks), each row ending with the pixel crossfade's midpoint."""
    from PIL import Image

    lat = model.info.latent_dim
    shape = model.info.image_shape
    assert shape is not None
    z = np.random.default_rng(11).standard_normal((64, lat))
    Image.fromarray(_tile(model.generate(z.astype(np.float32)), 8)).save(
        folder / "glyphs.png", optimize=True)
    paths = _slerp_paths(lat, 4, 12, seed=12)
    strip = model.generate(paths.reshape(-1, lat)).reshape(4, 12, *shape)
    fade = 0.5 * (strip[:, :1] + strip[:, -1:])                   # the crossfade midpoint
    rows = np.concatenate([strip, np.full_like(fade, 0.15), fade], axis=1)
    Image.fromarray(_tile(rows.reshape(-1, *shape), 14)).save(
        folder / "interpolation.png", optimize=True)
