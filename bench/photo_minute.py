"""Your own picture in a minute: `latentdmx train nat --image PICTURE --minutes 1` with the
defaults on photographs nobody tuned for, then the figures measured again here by code of
its own (not `pi_app.training.quality` / `measures`), at n = 20,000 samples per draw, mean
and spread (standard deviation) over 3 draws.

    python bench/photo_minute.py                         # the scikit-image photographs
    python bench/photo_minute.py coffee my.jpg           # a scikit-image name or a file
    python bench/photo_minute.py --steps 6000            # a fixed step budget, not minutes
    python bench/photo_minute.py --blur                  # no training: how sharp is enough

The figures (see docs/training.md):

- gap closed: (SW(gaussian) - SW(model)) / (SW(gaussian) - SW(floor)), sliced Wasserstein-1
  over 128 random directions (`scipy.stats.wasserstein_distance` per direction) against a
  reference draw of the target; the floor is a second draw of the target, the Gaussian one
  fitted to the target's mean and covariance, clipped to [0, 1];
- off-target / floor: the share of samples whose (x, y) lies farther from every point of an
  80,000-point draw of the target than 99 % of an independent target draw does
  (`scipy.spatial.cKDTree`), over the same share for a second target draw (about 1 %).

The target is rebuilt here from the picture and the recipe's settings (scikit-image's Otsu
threshold for `background = auto`). The model's samples
come from the exported model through the NumPy runtime the Pi runs.

Goal: gap closed >= 90 % and off-target <= 2x the floor, in <= 60 s of training, the whole
command (training, measuring, card) <= 90 s of wall time. Wall time is measured on a shared
2-core machine: the load averages before and after are printed with each row; the steps
say how much training the minute bought.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent.parent
PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "hubble_deep_field")
N = 20_000
DRAWS = 3


# ----------------------------------------------------------------------------- the target


def picture_file(name: str, folder: Path) -> Path:
    """A file as given, or a scikit-image photograph (bundled in its wheel) saved as PNG."""
    if Path(name).is_file():
        return Path(name)
    from PIL import Image
    from skimage import data

    arr = getattr(data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=2)
    path = folder / f"{name}.png"
    Image.fromarray(np.asarray(arr[..., :3], np.uint8)).save(path)
    return path


class Target:
    """The target distribution rebuilt from the picture and the recipe (see module doc)."""

    def __init__(self, path: Path, cfg: dict) -> None:
        from PIL import Image
        from skimage.filters import threshold_otsu

        im = Image.open(path).convert("RGB")
        rgb = np.asarray(im, np.float64) / 255.0
        v = rgb.max(axis=2)
        bg = str(cfg.get("background", "none")).lower()
        level = float(threshold_otsu(v)) if bg == "auto" else (
            0.0 if bg in ("none", "", "0") else float(bg))
        mass = np.clip((v - level) / max(1.0 - level, 1e-6), 0, 1) ** float(cfg.get("gamma", 1))
        mass[mass < float(cfg.get("threshold", 0.06))] = 0.0
        self.p = mass.ravel() / mass.sum()
        self.h, self.w = v.shape
        flat = rgb.reshape(-1, 3)
        white = flat.min(axis=1)
        self.colour = np.column_stack([flat - white[:, None], white])

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.choice(self.p.size, size=n, p=self.p)
        y, x = np.unravel_index(k, (self.h, self.w))
        return np.column_stack([(x + rng.random(n)) / self.w, (y + rng.random(n)) / self.h,
                                self.colour[k]])


# ----------------------------------------------------------------------------- the measure


def sliced_w1(a: np.ndarray, b: np.ndarray, dirs: np.ndarray) -> float:
    from scipy.stats import wasserstein_distance

    pa, pb = a @ dirs, b @ dirs
    return float(np.mean([wasserstein_distance(pa[:, i], pb[:, i])
                          for i in range(dirs.shape[1])]))


def figures(target: Target, generate, latent: int, seed: int = 2027) -> dict:
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    big = target.draw(50_000, rng)
    mean, cov = big.mean(axis=0), np.cov(big, rowvar=False)
    gap, ratio, off = [], [], []
    for _ in range(DRAWS):
        dirs = rng.standard_normal((6, 128))
        dirs /= np.linalg.norm(dirs, axis=0)
        ref = target.draw(N, rng)
        tree = cKDTree(target.draw(4 * N, rng)[:, :2])
        radius = np.quantile(tree.query(target.draw(N, rng)[:, :2])[0], 0.99)
        model = np.clip(generate(rng.standard_normal((N, latent)).astype(np.float32)), 0, 1)
        floor = target.draw(N, rng)
        gauss = np.clip(rng.multivariate_normal(mean, cov, N), 0, 1)
        sw = {k: sliced_w1(np.asarray(x, np.float64), ref, dirs)
              for k, x in (("model", model), ("floor", floor), ("gauss", gauss))}
        gap.append((sw["gauss"] - sw["model"]) / (sw["gauss"] - sw["floor"]))
        o_model = float((tree.query(np.asarray(model[:, :2], np.float64))[0] > radius).mean())
        o_floor = float((tree.query(floor[:, :2])[0] > radius).mean())
        ratio.append(o_model / max(o_floor, 1e-9))
        off.append(o_model)
    return {"gap": np.mean(gap), "gap_sd": np.std(gap, ddof=1), "ratio": np.mean(ratio),
            "ratio_sd": np.std(ratio, ddof=1), "off": np.mean(off)}


def blur_table(target: Target, seed: int = 5) -> tuple[float, list[float]]:
    """The off-target radius, and off-target / floor of a second target draw whose (x, y) is
    moved by Gaussian noise of `BLURS` of the picture: what a model blurred that much
    scores (no training involved)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    tree = cKDTree(target.draw(4 * N, rng)[:, :2])
    radius = float(np.quantile(tree.query(target.draw(N, rng)[:, :2])[0], 0.99))
    floor = float((tree.query(target.draw(N, rng)[:, :2])[0] > radius).mean())
    rows = []
    for b in BLURS:
        xy = target.draw(N, rng)[:, :2] + rng.normal(0.0, b, (N, 2))
        rows.append(float((tree.query(xy)[0] > radius).mean()) / max(floor, 1e-9))
    return radius, rows


BLURS = (0.0025, 0.005, 0.01, 0.02)


# ----------------------------------------------------------------------------- the run


def run(picture: Path, out: Path, minutes: float, steps: int | None) -> dict:
    cmd = [sys.executable, "-m", "pi_app.cli", "train", "nat", "--image", str(picture),
           "--out", str(out), "--minutes", str(minutes)]
    if steps:
        cmd += ["--steps", str(steps)]
    before = os.getloadavg()[0]
    t0 = time.monotonic()
    c0 = os.times()
    proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
    wall = time.monotonic() - t0
    c1 = os.times()
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    doc = json.loads((out / "model.json").read_text())
    return {"doc": doc, "wall": wall, "cpu": (c1.children_user + c1.children_system
                                              - c0.children_user - c0.children_system),
            "load": (before, os.getloadavg()[0]),
            "measuring_bar": "measuring:" in proc.stderr}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pictures", nargs="*", default=list(PHOTOS),
                    help="scikit-image photograph names or picture files")
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=None, help="a step budget as well")
    ap.add_argument("--blur", action="store_true",
                    help="no training: off-target of the picture itself, blurred")
    args = ap.parse_args()
    if args.blur:
        print(f"off-target / floor of a target draw blurred by a Gaussian of "
              f"{', '.join(f'{100 * b:g}' for b in BLURS)} % of the picture (n = {N:,})")
        for name in args.pictures:
            with tempfile.TemporaryDirectory() as tmp:
                pic = picture_file(name, Path(tmp))
                target = Target(pic, {"background": "auto", "threshold": 0.06})
                radius, rows = blur_table(target)
            print(f"{Path(name).stem:18s} radius {100 * radius:.2f} % of the picture "
                  f"({radius * max(target.h, target.w):.1f} px); "
                  + "  ".join(f"{r:5.1f}x" for r in rows), flush=True)
        return
    from pi_app.runtime import load_model

    print(f"n = {N:,} samples per draw, mean ± sd over {DRAWS} draws; "
          f"train nat --minutes {args.minutes:g}" + (f" --steps {args.steps}" if args.steps
                                                     else ""))
    print(f"{'picture':18s} {'gap closed':>14s} {'off/floor':>12s} {'off':>6s} "
          f"{'train s':>7s} {'steps':>6s} {'wall s':>6s} {'cpu s':>6s} {'load':>9s} goal")
    for name in args.pictures:
        with tempfile.TemporaryDirectory() as tmp:
            pic = picture_file(name, Path(tmp))
            r = run(pic, Path(tmp) / "model", args.minutes, args.steps)
            doc = r["doc"]
            model = load_model(Path(tmp) / "model")
            f = figures(Target(pic, doc["recipe"]["config"]), model.generate,
                        model.info.latent_dim)
        tr = doc["recipe"]["trained"]
        ok = (f["gap"] >= 0.9 and f["ratio"] <= 2.0 and tr["train_seconds"] <= 60.5
              and r["wall"] <= 90)
        print(f"{Path(name).stem:18s} {100 * f['gap']:6.1f} ± {100 * f['gap_sd']:4.1f} % "
              f"{f['ratio']:5.2f} ± {f['ratio_sd']:4.2f} {100 * f['off']:5.2f}% "
              f"{tr['train_seconds']:7.1f} {tr['steps']:6d} {r['wall']:6.1f} {r['cpu']:6.1f} "
              f"{r['load'][0]:4.1f}>{r['load'][1]:4.1f} {'yes' if ok else 'NO'}"
              + ("" if r["measuring_bar"] else "  (no measuring progress shown)"), flush=True)


if __name__ == "__main__":
    main()
