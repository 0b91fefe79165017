"""The measurements behind every quality sentence on a model card (NumPy only, no torch).

Distributions (NAT): samples are points (x, y, r, g, b, w) in [0, 1].

- `sliced_wasserstein`: the mean over random unit directions of the 1-D Wasserstein-1
  distance between the projections (sorted samples, equal counts).
- `energy_distance`: 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Euclidean), a metric between
  distributions that is 0 only when they are equal.
- `off_target`: the share of samples whose (x, y) lies farther from every point of a
  reference draw of the target than the 99th percentile of an independent target draw's
  nearest-reference distance: "where the target never produces". A second draw of the
  target scores about 1 % by construction (its figure is the card's floor).
- `gap_closed`: (baseline - model) / (baseline - floor): 1 = as close as a second draw of the
  target, 0 = no better than the Gaussian baseline.

Shows (points or images, measured on DMX decoded through the rig's patch):

- `walk_jumps`: frames where a fixture's wanted (x, y) moves more than `jump` of the picture
  in one frame (a "tear" of the map), per fixture-hour.
- `show_motion`: on the decoded frames of moving heads: lit sweeps (the aim moving more than
  20 % of its configured range within 1 s while the light stays above 10 %), the share of
  frames at a limit of the configured range, the spread of aim, and the median head speed.

Glyphs (inverted autoencoder): bold-pixel share, chroma, held-out R^2 of a linear map from
message to glyph, the morph midpoint versus a pixel crossfade.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------- distributions


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, n_dirs: int = 256, seed: int = 0) -> float:
    """Mean 1-D Wasserstein-1 distance over `n_dirs` random directions (equal sizes)."""
    n = min(len(a), len(b))
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((a.shape[1], n_dirs))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    pa = np.sort(a[:n].astype(np.float64) @ dirs, axis=0)
    pb = np.sort(b[:n].astype(np.float64) @ dirs, axis=0)
    return float(np.abs(pa - pb).mean())


def _mean_dist(a: np.ndarray, b: np.ndarray, chunk: int = 512) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    total = 0.0
    for i in range(0, len(a), chunk):
        d = a[i:i + chunk, None, :] - b[None, :, :]
        total += float(np.sqrt((d * d).sum(-1)).sum())
    return total / (len(a) * len(b))


def energy_distance(a: np.ndarray, b: np.ndarray) -> float:
    """2 E|A - B| - E|A - A'| - E|B - B'| (the V-statistic; >= 0)."""
    return max(0.0, 2 * _mean_dist(a, b) - _mean_dist(a, a) - _mean_dist(b, b))


def _nearest(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Distance from each row of `a` to its nearest row of `ref` (2-D points; a k-d tree,
    `scipy.spatial.cKDTree`, so 20,000 points against 80,000 take well under a second)."""
    from scipy.spatial import cKDTree

    return np.asarray(cKDTree(ref).query(a, k=1)[0], dtype=np.float64)


@dataclass(frozen=True)
class OffTarget:
    """`fraction(samples)`: share of samples off the target's support (see module doc)."""

    ref: np.ndarray          # (R, 2) a reference draw of the target's (x, y)
    radius: float            # the calibrated distance

    @classmethod
    def calibrate(cls, ref: np.ndarray, other: np.ndarray, quantile: float = 0.99) -> OffTarget:
        ref2 = np.asarray(ref, np.float64)[:, :2]
        d = _nearest(np.asarray(other, np.float64)[:, :2], ref2)
        return cls(ref2, float(np.quantile(d, quantile)))

    def fraction(self, samples: np.ndarray) -> float:
        d = _nearest(np.asarray(samples, np.float64)[:, :2], self.ref)
        return float((d > self.radius).mean())


def gap_closed(model: float, baseline: float, floor: float) -> float:
    """(baseline - model) / (baseline - floor); 1 = as good as the floor, <= 0 = no better."""
    span = baseline - floor
    return float((baseline - model) / span) if span > 1e-12 else 0.0


# ----------------------------------------------------------------------------- the walk


def walk_jumps(xy: np.ndarray, jump: float = 0.1) -> tuple[int, float]:
    """xy: (frames, fixtures, 2) wanted positions. (jumps > `jump` per frame, largest step)."""
    step = np.linalg.norm(np.diff(xy, axis=0), axis=-1)
    return int((step > jump).sum()), float(step.max(initial=0.0))


# ----------------------------------------------------------------------------- the show


@dataclass(frozen=True)
class Motion:
    """What moving heads did in a show (decoded DMX); rates per fixture-hour."""

    heads: int
    seconds: float
    lit_sweeps: int
    lit_sweeps_per_hour: float
    at_limit_share: float          # worst head and axis: share of frames at a limit
    at_limit_mean: float           # mean over heads and axes
    spread: float                  # mean over heads and axes of the 5..95 % range of aim
    median_speed_deg_per_s: float  # all heads, all frames
    dark_share: float              # frames with the light at or below 10 %

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in self.__dict__.items()}


def _runs(mask: np.ndarray) -> int:
    """Number of runs of True along axis 0 of a 1-D mask."""
    m = mask.astype(np.int8)
    return int(m[0] + (np.diff(m) == 1).sum()) if len(m) else 0


def show_motion(rig, frames: np.ndarray, fps: float, *, sweep: float = 0.2,
                window_s: float = 1.0, lit: float = 0.1, at_limit: float = 0.01) -> Motion:
    """Lit sweeps, limits, spread and speed of every moving head in `frames`.

    frames: uint8 (n, universes, 512) in ``rig.universes`` order (a recording or `simulate`).
    Aim is measured as a fraction of each head's configured range (`FixtureInfo.pan_range`,
    `tilt_range`); light is the brightest emitted colour channel (dimmer x colour).
    A lit sweep: a 1-s window in which pan or tilt moves more than `sweep` of its range while
    the light stays above `lit` at every frame; consecutive such windows count once.
    """
    look = rig.decode(frames)
    heads = [i for i, f in enumerate(rig.fixtures) if f.moves]
    w = max(1, round(window_s * fps))
    n = len(frames)
    sweeps = 0
    lim_shares, spreads, speeds, dark = [], [], [], []
    for i in heads:
        info = rig.fixtures[i]
        light = look.colour[:, i].max(axis=-1)
        dark.append(float((light <= lit).mean()))
        aims = []
        for frac, (lo, hi) in ((look.pan[:, i], info.pan_range),
                               (look.tilt[:, i], info.tilt_range)):
            span = max(hi - lo, 1e-6)
            rel = (frac.astype(np.float64) - lo) / span
            aims.append(rel)
            near = (rel <= at_limit) | (rel >= 1 - at_limit)
            lim_shares.append(float(near.mean()))
            spreads.append(float(np.percentile(rel, 95) - np.percentile(rel, 5)))
        deg = np.stack([look.pan[:, i] * info.pan_deg, look.tilt[:, i] * info.tilt_deg], 1)
        speeds.append(np.linalg.norm(np.diff(deg, axis=0), axis=1) * fps)
        if n > w:
            rel = np.stack(aims, 1)                                 # (n, 2)
            moved = np.abs(rel[w:] - rel[:-w]).max(axis=1) > sweep   # window ending at k + w
            is_lit = light > lit
            # lit at every frame of the window: a running minimum over w + 1 frames
            dark_frames = np.concatenate([[0], np.cumsum(~is_lit)])
            all_lit = (dark_frames[w + 1:] - dark_frames[:-w - 1]) == 0
            sweeps += _runs(moved & all_lit)
    seconds = n / fps
    hours = max(len(heads), 1) * seconds / 3600.0
    return Motion(heads=len(heads), seconds=seconds, lit_sweeps=sweeps,
                  lit_sweeps_per_hour=sweeps / hours if heads else 0.0,
                  at_limit_share=max(lim_shares, default=0.0),
                  at_limit_mean=float(np.mean(lim_shares)) if lim_shares else 0.0,
                  spread=float(np.mean(spreads)) if spreads else 0.0,
                  median_speed_deg_per_s=float(np.median(np.concatenate(speeds)))
                  if speeds else 0.0,
                  dark_share=float(np.mean(dark)) if dark else 0.0)


# ----------------------------------------------------------------------------- glyphs


def bold_share(imgs: np.ndarray, lo: float = 0.1, hi: float = 0.9) -> float:
    """Share of pixel channel values below `lo` or above `hi`."""
    return float(((imgs < lo) | (imgs > hi)).mean())


def chroma(imgs: np.ndarray) -> float:
    """Mean chroma max(R, G, B) - min(R, G, B) over all pixels."""
    return float((imgs.max(-1) - imgs.min(-1)).mean())


def linear_r2(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray,
              y_test: np.ndarray, ridge: float = 1e-3) -> float:
    """Held-out R^2 of the best linear map (least squares with a little ridge) z -> glyph."""
    zt = np.hstack([z_train, np.ones((len(z_train), 1))]).astype(np.float64)
    yt = y_train.reshape(len(y_train), -1).astype(np.float64)
    a = zt.T @ zt + ridge * np.eye(zt.shape[1])
    w = np.linalg.solve(a, zt.T @ yt)
    zs = np.hstack([z_test, np.ones((len(z_test), 1))]).astype(np.float64)
    ys = y_test.reshape(len(y_test), -1).astype(np.float64)
    resid = ((ys - zs @ w) ** 2).sum()
    total = ((ys - ys.mean(0)) ** 2).sum()
    return float(1.0 - resid / max(total, 1e-12))


def slerp(a: np.ndarray, b: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """Spherical interpolation between rows of a and b (as the show's walk moves)."""
    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    cos = np.clip((a * b).sum(-1, keepdims=True) / np.maximum(na * nb, 1e-12), -1, 1)
    om = np.arccos(cos)
    s = np.maximum(np.sin(om), 1e-6)
    t = np.asarray(t, np.float64)
    return (np.sin((1 - t) * om) / s) * a + (np.sin(t * om) / s) * b


def midpoint_vs_crossfade(generate, latent: int, n_pairs: int = 200, seed: int = 3) -> float:
    """Mean |G(slerp midpoint) - (G(a) + G(b)) / 2| over mean |G(a) - G(b)|.

    0 = the morph is a pixel crossfade; larger = the midpoint is another shape."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n_pairs, latent))
    b = rng.standard_normal((n_pairs, latent))
    ga = generate(a.astype(np.float32)).reshape(n_pairs, -1)
    gb = generate(b.astype(np.float32)).reshape(n_pairs, -1)
    gm = generate(slerp(a, b, 0.5).astype(np.float32)).reshape(n_pairs, -1)
    return float(np.abs(gm - (ga + gb) / 2).mean() / max(np.abs(ga - gb).mean(), 1e-12))


# ----------------------------------------------------------------------------- colour classes
#
# A colour's class: *dark* when its brightness max(R, G, B) is at most `LIT` (10 %), else the
# corner of the RGB cube its channels reach when each is thresholded at half the brightness
# (red, yellow, green, cyan, blue, magenta, white): 8 classes, 1 R + 2 G + 4 B (0 = dark).
# Relative to the brightness, so a dimmed fixture keeps its class. `bench/glyphs.py` measures
# the same definitions with code of its own.

LIT = 0.1
GRID = 8                  # the card's grid of pars: 8 x 8, each at its cell's centre
MIN_AREA = 1 / 64         # a class counts in a glyph from one par's share of an 8 x 8 grid
HUE_BINS = 36
MIN_SATURATION = 0.25


def colour_class(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) in [0, 1] -> (...) class 0..7 (see above)."""
    rgb = np.asarray(rgb, np.float32)
    top = rgb.max(-1)
    bits = (rgb >= 0.5 * top[..., None]) * np.array([1, 2, 4])
    return np.where(top > LIT, bits.sum(-1), 0)


def hue_bits(rgb: np.ndarray) -> float:
    """Shannon entropy (bits) of the hue in `HUE_BINS` bins of the lit colours whose
    saturation (max - min) / max is at least `MIN_SATURATION` (log2 36 = 5.17 at most)."""
    c = np.asarray(rgb, np.float64).reshape(-1, 3)
    top, low = c.max(1), c.min(1)
    c = c[(top > LIT) & (top - low >= MIN_SATURATION * top)]
    if not len(c):
        return 0.0
    top, span = c.max(1), np.ptp(c, axis=1)
    rc, gc, bc = ((top[:, None] - c) / span[:, None]).T
    h = np.where(c[:, 0] == top, bc - gc, np.where(c[:, 1] == top, 2.0 + rc - bc,
                                                   4.0 + gc - rc))
    h = (h / 6.0) % 1.0                                     # colorsys.rgb_to_hsv's hue
    counts = np.bincount(np.minimum((h * HUE_BINS).astype(int), HUE_BINS - 1),
                         minlength=HUE_BINS)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def classes_per_glyph(imgs: np.ndarray) -> tuple[float, float]:
    """Mean classes per picture (N, H, W, 3): covering >= `MIN_AREA`, and with any pixel."""
    cls = colour_class(imgs).reshape(len(imgs), -1)
    share = (cls[:, :, None] == np.arange(8)).mean(1)                # (N, 8)
    return float((share >= MIN_AREA).sum(1).mean()), float((share > 0).sum(1).mean())


def grid_colours(imgs: np.ndarray, n: int = GRID) -> np.ndarray:
    """(N, H, W, 3) -> (N, n * n, 3): the picture read bilinearly at the centres of an n x n
    grid of cells (where the pars of an evenly spread grid sit)."""
    _, h, w, _ = imgs.shape
    out = []
    for y in (np.arange(n) + 0.5) / n:
        for x in (np.arange(n) + 0.5) / n:
            px, py = np.clip(x * w - 0.5, 0, w - 1), np.clip(y * h - 0.5, 0, h - 1)
            x0, y0 = min(int(px), w - 2), min(int(py), h - 2)
            fx, fy = px - x0, py - y0
            out.append((1 - fy) * ((1 - fx) * imgs[:, y0, x0] + fx * imgs[:, y0, x0 + 1])
                       + fy * ((1 - fx) * imgs[:, y0 + 1, x0] + fx * imgs[:, y0 + 1, x0 + 1]))
    return np.stack(out, 1)


def grid_classes(classes: np.ndarray, n: int = GRID) -> dict:
    """classes: (T, n * n) per frame or sample. Lit classes at once (mean, p95); among pairs
    with at least one lit par, the share of equal classes for grid neighbours and for pars at
    least half the grid's side apart (n / 2 spacings), and their ratio."""
    y, x = np.divmod(np.arange(n * n), n)
    d = np.hypot(y[:, None] - y[None], x[:, None] - x[None])
    i, j = np.triu_indices(n * n, 1)

    def share(sel: np.ndarray) -> float:
        a, b = classes[:, i[sel]], classes[:, j[sel]]
        some = (a > 0) | (b > 0)
        return float(((a == b) & some).sum() / max(int(some.sum()), 1))

    lit = np.array([np.unique(row[row > 0]).size for row in classes])
    near, far = share(np.isclose(d[i, j], 1.0)), share(d[i, j] >= n / 2)
    return {"lit_at_once": float(lit.mean()), "lit_at_once_p95": float(np.percentile(lit, 95)),
            "neighbour_share": near, "far_share": far, "share_ratio": near / max(far, 1e-9)}
