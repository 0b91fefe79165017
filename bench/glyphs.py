"""Glyphs a viewer can read: colour classes, regions and morphs of every bundled model, from
samples of the generator and from the DMX of a show on an 8 x 8 grid of RGB pars.

    python bench/glyphs.py [--minutes 3] [--samples 2000] [--models iae-glyphs,...]
                           [--models-dir DIR] [--out bench/results/glyphs.txt]
    python bench/glyphs.py --write-rig grid.toml     # the rig, for `latentdmx render`

Everything here is the bench's own code: it reads ``model.json`` + ``model.safetensors`` and
runs the layers in torch (not `pi_app.runtime`), samples the glyph on the grid itself, and
decodes the show's FSEQ file (written by ``latentdmx render --fseq``, the real pipeline on
virtual time) with its own header parser. It does not import pi_app's measures or mapper.

Definitions (the same as the cards'):

- **colour class** of a colour (R, G, B) in [0, 1]: *dark* when its brightness max(R, G, B)
  is at most 10 % (not lit); otherwise the corner of the RGB cube its channels reach when
  each is thresholded at 50 % of the brightness (red, yellow, green, cyan, blue, magenta,
  white): 8 classes in all. Relative to the brightness, so a dimmed show keeps its classes.
- **classes per glyph**: the classes covering at least 1/64 of the glyph's area (one par's
  share of an 8 x 8 grid), dark included; mean over the samples.
- **lit at once**: the lit classes shown by the 64 pars in one frame (or one sample).
- **class changes** per fixture-minute: frames where a par's class differs from the frame
  before, per par and minute of the show.
- **neighbour / far share**: among pairs of pars with at least one lit, the share whose
  classes are equal, for grid neighbours (4-neighbourhood) and for pairs at least half the
  grid's side apart (4 spacings on 8 x 8); the ratio neighbour / far. Also on a 4 x 4 grid of
  pars reading the samples (a sparser rig: a spacing of a quarter of the picture).
- **midpoint vs crossfade**: mean |G(slerp midpoint of a, b) - (G(a) + G(b)) / 2| over
  mean |G(a) - G(b)| (0 = the morph is a pixel crossfade); the same for a random generator
  of the same layers (torch's default initialisation, seed 0) whose last convolution is
  scaled to the trained one's contrast before the sigmoid (mean and spread).
- **hue entropy**: the Shannon entropy (bits) of the hue, in 36 bins of 10 degrees, of the
  lit colours (brightness > 10 %) with saturation (max - min) / max of at least 0.25; a
  possible log2(36) = 5.17 bits. For point models the colour is (r + w, g + w, b + w).
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zstandard
from safetensors.numpy import load_file
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("iae-glyphs", "iae-blobs", "nat-aurora", "nat-neon", "nat-retina")
GRID = 8
LIT = 0.1
MIN_AREA = 1 / 64
HUE_BINS = 36
MIN_SAT = 0.25
NAMES = ("dark", "red", "green", "yellow", "blue", "magenta", "cyan", "white")


# ----------------------------------------------------------------------------- colours


def colour_class(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) in [0, 1] -> (...) int in 0..7: 0 dark, else 1 R + 2 G + 4 B of the channels
    at or above half the brightness."""
    rgb = np.asarray(rgb, np.float64)
    top = rgb.max(-1)
    on = rgb >= 0.5 * top[..., None]
    cls = on[..., 0] * 1 + on[..., 1] * 2 + on[..., 2] * 4
    return np.where(top > LIT, cls, 0).astype(np.int64)


def hue_entropy(rgb: np.ndarray) -> float:
    """Bits of hue entropy of the lit, saturated colours among `rgb` (..., 3)."""
    c = np.asarray(rgb, np.float64).reshape(-1, 3)
    top, low = c.max(1), c.min(1)
    keep = (top > LIT) & ((top - low) >= MIN_SAT * np.maximum(top, 1e-12))
    c, top, span = c[keep], top[keep], (top - low)[keep]
    if not len(c):
        return 0.0
    r, g, b = c.T
    h = np.where(top == r, ((g - b) / span) % 6,
                 np.where(top == g, (b - r) / span + 2, (r - g) / span + 4)) * 60.0
    counts = np.bincount((h // (360 / HUE_BINS)).astype(int) % HUE_BINS, minlength=HUE_BINS)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


# ----------------------------------------------------------------------------- the model


class Generator:
    """A model folder's generator run in torch from its layer list (not pi_app.runtime)."""

    def __init__(self, folder: Path) -> None:
        self.doc = json.loads((folder / "model.json").read_text())
        weights = {k: torch.from_numpy(v.copy()) for k, v in
                   load_file(str(folder / self.doc["weights"])).items()}
        mods: list[nn.Module] = []
        for spec in self.doc["layers"]:
            kind = spec["type"]
            if kind == "linear":
                m: nn.Module = nn.Linear(spec["in"], spec["out"])
            elif kind == "conv2d":
                m = nn.Conv2d(spec["in"], spec["out"], spec["kernel"], padding=spec["padding"])
            elif kind == "reshape":
                m = nn.Unflatten(1, tuple(spec["shape"]))
            elif kind == "upsample":
                m = nn.Upsample(scale_factor=spec["scale"], mode="nearest")
            elif kind == "leaky_relu":
                m = nn.LeakyReLU(spec["slope"])
            else:
                m = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
                     "silu": nn.SiLU}[kind]()
            if "name" in spec:
                m.weight.data = weights[spec["name"] + ".weight"]
                m.bias.data = weights[spec["name"] + ".bias"]
            mods.append(m)
        self.net = nn.Sequential(*mods).eval()
        self.latent = int(self.doc["latent_dim"])
        self.image = self.doc["output"]["kind"] == "image"

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """(N, L) -> (N, H, W, 3) pictures or (N, F) points."""
        with torch.no_grad():
            out = self.net(torch.as_tensor(z, dtype=torch.float32))
        return (out.permute(0, 2, 3, 1) if out.ndim == 4 else out).numpy()

    def random_twin(self, seed: int = 0) -> Generator:
        """The same layers at torch's default initialisation, contrast matched."""
        twin = object.__new__(Generator)
        twin.doc, twin.latent, twin.image = self.doc, self.latent, self.image
        torch.manual_seed(seed)
        twin.net = nn.Sequential(*[type(m)(m.in_features, m.out_features)
                                   if isinstance(m, nn.Linear) else
                                   nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size,
                                             padding=m.padding)
                                   if isinstance(m, nn.Conv2d) else m
                                   for m in self.net]).eval()
        sig = max(i for i, m in enumerate(self.net) if isinstance(m, nn.Sigmoid))
        probe = torch.randn(512, self.latent, generator=torch.Generator().manual_seed(98))
        with torch.no_grad():
            a, b = twin.net[:sig](probe), self.net[:sig](probe)
            k = float(b.std() / a.std().clamp(min=1e-8))
            last = twin.net[sig - 1]
            last.weight.mul_(k)
            last.bias.mul_(k).add_(float(b.mean() - k * a.mean()))
        return twin


def colours_of(gen: Generator, out: np.ndarray) -> np.ndarray:
    """Pictures (N, H, W, 3) as they are; points (N, P, >= 6) as r + w, g + w, b + w."""
    if gen.image:
        return out
    return np.clip(out[..., 2:5] + out[..., 5:6], 0, 1)


def sample_grid(imgs: np.ndarray, n: int = GRID) -> np.ndarray:
    """(N, H, W, 3) -> (N, n, n, 3): each par of an n x n grid (at its cell's centre) reads
    the picture there, bilinearly."""
    _, h, w, _ = imgs.shape
    c = (np.arange(n) + 0.5) / n
    ys, xs = c * h - 0.5, c * w - 0.5
    y0, x0 = np.floor(ys).astype(int).clip(0, h - 2), np.floor(xs).astype(int).clip(0, w - 2)
    fy, fx = (ys - y0).clip(0, 1), (xs - x0).clip(0, 1)
    a = imgs[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] \
        + imgs[:, y0][:, :, x0 + 1] * fx[None, None, :, None]
    b = imgs[:, y0 + 1][:, :, x0] * (1 - fx)[None, None, :, None] \
        + imgs[:, y0 + 1][:, :, x0 + 1] * fx[None, None, :, None]
    return a * (1 - fy)[None, :, None, None] + b * fy[None, :, None, None]


# ----------------------------------------------------------------------------- figures


def grid_pairs(n: int = GRID) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (into n*n pars) of 4-neighbours and of pars >= n / 2 spacings apart."""
    yx = np.stack(np.divmod(np.arange(n * n), n), 1).astype(float)
    d = np.sqrt(((yx[:, None] - yx[None]) ** 2).sum(-1))
    i, j = np.triu_indices(n * n, 1)
    near = np.abs(d[i, j] - 1.0) < 1e-9
    far = d[i, j] >= n / 2
    return np.stack([i[near], j[near]], 1), np.stack([i[far], j[far]], 1)


def grid_figures(cls: np.ndarray, n: int = GRID) -> dict:
    """cls: (T, n * n) classes of the pars per frame (or sample)."""
    near, far = grid_pairs(n)

    def share(pairs: np.ndarray) -> float:
        a, b = cls[:, pairs[:, 0]], cls[:, pairs[:, 1]]
        some = (a > 0) | (b > 0)
        return float(((a == b) & some).sum() / max(some.sum(), 1))

    lit = [len(set(row[row > 0].tolist())) for row in cls]
    sn, sf = share(near), share(far)
    return {"lit_at_once": float(np.mean(lit)), "lit_at_once_p95": float(np.percentile(lit, 95)),
            "neighbour_share": sn, "far_share": sf, "share_ratio": sn / max(sf, 1e-9)}


def classes_per_glyph(imgs: np.ndarray) -> tuple[float, float]:
    """(mean classes covering >= 1/64 of the area, mean classes with any pixel)."""
    cls = colour_class(imgs).reshape(len(imgs), -1)
    counts = np.stack([(cls == k).mean(1) for k in range(8)], 1)     # (N, 8) area shares
    return float((counts >= MIN_AREA).sum(1).mean()), float((counts > 0).sum(1).mean())


def midpoint(gen: Generator, n: int = 200, seed: int = 3) -> float:
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((2, n, gen.latent))
    na, nb = np.linalg.norm(a, axis=1, keepdims=True), np.linalg.norm(b, axis=1, keepdims=True)
    om = np.arccos(np.clip((a * b).sum(1, keepdims=True) / (na * nb), -1, 1))
    m = (np.sin(0.5 * om) * a + np.sin(0.5 * om) * b) / np.maximum(np.sin(om), 1e-6)
    ga, gb, gm = (gen(x).reshape(n, -1) for x in (a, b, m))
    return float(np.abs(gm - (ga + gb) / 2).mean() / max(np.abs(ga - gb).mean(), 1e-12))


def sample_figures(gen: Generator, n: int, seed: int = 0) -> dict:
    z = np.random.default_rng(seed).standard_normal((n, gen.latent)).astype(np.float32)
    out = gen(z)
    col = colours_of(gen, out)
    f: dict = {"n": n, "hue_bits": hue_entropy(col)}
    if gen.image:
        f["classes"], f["classes_any_pixel"] = classes_per_glyph(col)
        f.update({"grid_" + k: v for k, v in
                  grid_figures(colour_class(sample_grid(col)).reshape(n, -1)).items()})
        f["grid4_share_ratio"] = grid_figures(
            colour_class(sample_grid(col, 4)).reshape(n, -1), 4)["share_ratio"]
        f["midpoint"] = midpoint(gen)
        f["midpoint_random"] = midpoint(gen.random_twin())
    return f


# ----------------------------------------------------------------------------- the show


def rig_toml(model: str, seed: int) -> str:
    """The bundled config's settings with an 8 x 8 grid of RGB pars (cell centres)."""
    text = (ROOT / "pi_app" / "data" / "default.toml").read_text()
    text = text[:text.index("\n[[fixtures]]") + 1].replace('model = "nat-aurora"',
                                                     f'model = "{model}"', 1)
    text = text.replace("seed = 0 ", f"seed = {seed} ", 1)
    for k in range(GRID * GRID):
        y, x = divmod(k, GRID)
        text += (f'[[fixtures]]\nname = "par-{k + 1}"\nprofile = "generic-rgb"\nmode = "3ch"\n'
                 f"universe = 1\naddress = {3 * k + 1}\n"
                 f"position = [{(x + 0.5) / GRID:.4f}, {(y + 0.5) / GRID:.4f}]\n\n")
    return text


def read_fseq(path: Path) -> tuple[np.ndarray, float]:
    """(frames, channels) uint8 and fps of an FSEQ v2 file (zstd or uncompressed)."""
    data = path.read_bytes()
    assert data[:4] == b"PSEQ", path
    offset, _minor, major, _hlen = struct.unpack_from("<HBBH", data, 4)
    channels, frames, step = struct.unpack_from("<IIB", data, 10)
    comp, blocks_lo, ranges = data[20] & 0x0F, data[21], data[22]
    blocks = ((data[20] >> 4) << 8) | blocks_lo
    assert major == 2, path
    sizes = [struct.unpack_from("<II", data, 32 + 8 * i) for i in range(blocks)]
    spans = [(int.from_bytes(data[32 + 8 * blocks + 6 * i:][:3], "little"),
              int.from_bytes(data[32 + 8 * blocks + 6 * i + 3:][:3], "little"))
             for i in range(ranges)]
    width = sum(c for _, c in spans) if spans else channels
    if comp == 0:
        raw = data[offset:offset + frames * width]
    else:
        parts, pos = [], offset
        for _first, length in sizes:
            if length:
                parts.append(zstandard.ZstdDecompressor().decompressobj().decompress(
                    data[pos:pos + length]))
                pos += length
        raw = b"".join(parts)
    arr = np.frombuffer(raw, np.uint8)[:frames * width].reshape(frames, width)
    full = np.zeros((frames, channels), np.uint8)
    col = 0
    for start, count in spans or [(0, channels)]:
        full[:, start:start + count] = arr[:, col:col + count]
        col += count
    return full, 1000.0 / step


def show_figures(model: str, minutes: float, seed: int = 0) -> dict:
    """Render a show of `model` on the grid (virtual time), decode its DMX, measure it."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg, fseq = Path(tmp) / "grid.toml", Path(tmp) / "show.fseq"
        cfg.write_text(rig_toml(model, seed))
        subprocess.run([sys.executable, "-m", "pi_app.cli", "render", "--config", str(cfg),
                        "--duration", str(60 * minutes), "--fseq", str(fseq)],
                       check=True, cwd=ROOT, capture_output=True)
        frames, fps = read_fseq(fseq)
    rgb = frames[:, :3 * GRID * GRID].reshape(len(frames), GRID * GRID, 3) / 255.0
    rgb = rgb[int(10 * fps):-int(10 * fps)]            # leave out the fade in and out
    cls = colour_class(rgb)
    changes = float((np.diff(cls, axis=0) != 0).sum())
    fixture_minutes = cls.shape[1] * len(cls) / fps / 60
    f = grid_figures(cls)
    f.update(changes_per_fixture_minute=changes / fixture_minutes,
             hue_bits=hue_entropy(rgb), frames=len(cls), fps=fps)
    return f


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--models-dir", default=str(ROOT / "models"),
                    help="where the model folders are (another checkout's models/: its before)")
    ap.add_argument("--write-rig", metavar="TOML",
                    help="only write the 8 x 8 grid's config (model iae-glyphs) and stop")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "glyphs.txt"))
    a = ap.parse_args()
    if a.write_rig:
        Path(a.write_rig).write_text(rig_toml("iae-glyphs", 0))
        return
    torch.set_num_threads(1)
    lines = [f"# bench/glyphs.py --minutes {a.minutes:g} --samples {a.samples} "
             f"--models-dir {a.models_dir}  "
             f"({time.strftime('%Y-%m-%d')}; 8 x 8 RGB pars at cell centres; classes: "
             "dark + 7 corners at 50 % of brightness, lit > 10 %)", "",
             "samples (n each): classes/glyph (>= 1/64 area | any pixel), lit classes at once "
             "on the grid, neighbour share / far share = ratio (on a 4 x 4 grid), midpoint vs "
             "crossfade trained | random, hue bits", ""]
    for name in a.models.split(","):
        gen = Generator(Path(a.models_dir) / name)
        s = sample_figures(gen, a.samples)
        if gen.image:
            lines.append(
                f"{name:11s} n={s['n']}: classes {s['classes']:.2f} | "
                f"{s['classes_any_pixel']:.2f}; lit at once {s['grid_lit_at_once']:.2f} "
                f"(p95 {s['grid_lit_at_once_p95']:.0f}); share "
                f"{s['grid_neighbour_share']:.3f} / {s['grid_far_share']:.3f} = "
                f"{s['grid_share_ratio']:.2f} (4 x 4: {s['grid4_share_ratio']:.2f}); midpoint "
                f"{s['midpoint']:.3f} | random {s['midpoint_random']:.3f}; hue "
                f"{s['hue_bits']:.2f} bits")
        else:
            lines.append(f"{name:11s} n={s['n']} points: hue {s['hue_bits']:.2f} bits")
        print(lines[-1], flush=True)
    lines += ["", f"show DMX ({a.minutes:g} min each, seed 0, `latentdmx render --fseq`, first "
              "and last 10 s left out): lit classes at once (p95), class changes per "
              "fixture-minute, neighbour / far share = ratio, hue bits", ""]
    for name in a.models.split(","):
        f = show_figures(str(Path(a.models_dir).resolve() / name), a.minutes)
        lines.append(f"{name:11s} {f['frames']} frames: lit at once {f['lit_at_once']:.2f} "
                     f"(p95 {f['lit_at_once_p95']:.0f}); changes "
                     f"{f['changes_per_fixture_minute']:.1f}/fixture-min; share "
                     f"{f['neighbour_share']:.3f} / {f['far_share']:.3f} = "
                     f"{f['share_ratio']:.2f}; hue {f['hue_bits']:.2f} bits")
        print(lines[-1], flush=True)
    Path(a.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
