"""Measure bundled (or any) models with the independent metrics of `pi_app.training.measures`,
without touching their folders: distribution distances and off-target share (NAT), glyph
figures (inverted AE), the walk's tears and the show's motion on decoded DMX.

    python bench/model_quality.py                       # every bundled model, this checkout
    python bench/model_quality.py --code /tmp/old nat-aurora iae-glyphs   # another checkout's
                                                         # pipeline and models (the "before")

`--code DIR` imports `pi_app` (walk, model runtime, mapper, safety, patch) from DIR, while the
measurements always come from this checkout's `measures.py`, so before and after are measured
by the same code. Figures: sliced Wasserstein (SW) and energy distance (ED) of 2,000 samples
against a second draw of the target (floor) and a Gaussian fitted to the target (baseline);
the share of the Gaussian-to-floor gap the model closes; off-target share; walk tears (> 10 %
of the picture in one frame at 40 fps) per fixture-hour; lit sweeps per head-hour, share of
frames at a limit, aim spread and median head speed in a show of `--minutes`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent.parent


def _measures():
    spec = importlib.util.spec_from_file_location(
        "_measures", HERE / "pi_app" / "training" / "measures.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_measures"] = mod
    spec.loader.exec_module(mod)
    return mod


def nat_figures(ms, model, folder: Path, n: int = 2000, repeats: int = 3) -> dict:
    from pi_app.training.nat import PictureTarget, load_picture

    cfg = model.info.card.get("recipe", {}).get("config", {})
    pic = folder / "target.png"
    if not pic.is_file():
        pic = Path(cfg["image"])
        if not pic.is_absolute():
            pic = folder / pic.name if (folder / pic.name).is_file() else HERE / pic
    kwargs = {k: cfg[k] for k in ("threshold", "gamma", "background") if k in cfg}
    try:
        target = PictureTarget(load_picture(pic), **kwargs)
    except TypeError:
        target = PictureTarget(load_picture(pic), float(cfg.get("threshold", 0.06)))
    rng = np.random.default_rng(1234)
    big = target.sample(50_000, rng)
    mean, cov = big.mean(0), np.cov(big, rowvar=False)
    rows: dict[str, list] = {}
    for r in range(repeats):
        ref = target.sample(n, rng)
        off = ms.OffTarget.calibrate(target.sample(4 * n, rng), target.sample(n, rng))
        z = rng.standard_normal((n, model.info.latent_dim)).astype(np.float32)
        draws = {"model": model.generate(z), "floor": target.sample(n, rng),
                 "gaussian": rng.multivariate_normal(mean, cov, n).clip(0, 1)}
        for name, pts in draws.items():
            rows.setdefault(f"sw_{name}", []).append(ms.sliced_wasserstein(pts, ref, seed=r))
            rows.setdefault(f"ed_{name}", []).append(ms.energy_distance(pts, ref))
            rows.setdefault(f"off_{name}", []).append(off.fraction(pts))
    f = {k: float(np.mean(v)) for k, v in rows.items()}
    f["sw_gap_closed"] = ms.gap_closed(f["sw_model"], f["sw_gaussian"], f["sw_floor"])
    f["ed_gap_closed"] = ms.gap_closed(f["ed_model"], f["ed_gaussian"], f["ed_floor"])
    return f


def walk_tears(ms, model, config, fixture_hours: float = 1.0, seed: int = 0) -> dict:
    """Tears of the daemon's walk (the pipeline's own source) for `fixture_hours`."""
    from pi_app.pipeline import _Source

    positions = np.array([f.position for f in config.fixtures], np.float32)
    src = _Source(model, config, seed, positions)
    streams = src.walk.streams
    n = int(fixture_hours * 3600 * config.fps / streams)
    dphase = 1.0 / (config.fps * config.walk.seconds_per_waypoint) * config.walk.tempo
    xy = np.empty((n, streams, 2), np.float32)
    for k in range(n):
        xy[k] = model.generate(src.walk.at(k * dphase))[:, :2]
    jumps, biggest = ms.walk_jumps(xy, 0.1)
    hours = n * streams / config.fps / 3600
    return {"tears_per_fixture_hour": jumps / hours, "largest_step": biggest,
            "walk_fixture_hours": hours}


def show_figures(ms, config, model, minutes: float, seed: int = 0) -> dict:
    from pi_app.decode import Rig
    from pi_app.patch import Patch
    from pi_app.views.render import simulate

    frames, _ = simulate(config, model, seed=seed, duration_s=minutes * 60)
    rig = Rig.from_patch(Patch(config))
    return ms.show_motion(rig, frames, config.fps).as_dict()


def glyph_figures(ms, model) -> dict:
    rng = np.random.default_rng(0)
    lat = model.info.latent_dim
    z = rng.standard_normal((2000, lat)).astype(np.float32)
    imgs = model.generate(z)
    return {"bold_share": ms.bold_share(imgs), "chroma": ms.chroma(imgs),
            "linear_r2": ms.linear_r2(z[:1500], imgs[:1500], z[1500:], imgs[1500:]),
            "midpoint_vs_crossfade": ms.midpoint_vs_crossfade(model.generate, lat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--code", type=Path, default=HERE, help="checkout whose pi_app to use")
    ap.add_argument("--minutes", type=float, default=20.0, help="show length to measure")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    ms = _measures()
    from pi_app.config import load_config
    from pi_app.runtime import list_models, load_model

    names = args.models or [n for n, where in list_models() if where == "bundled"]
    out = {}
    for name in names:
        t0 = time.monotonic()
        model = load_model(name)
        config = load_config(None).replace(model=name)
        fig: dict = {"family": model.info.family}
        if model.info.kind == "points":
            fig.update(nat_figures(ms, model, model.info.path))
            fig.update(walk_tears(ms, model, config, seed=args.seed))
        else:
            fig.update(glyph_figures(ms, model))
        fig.update(show_figures(ms, config, model, args.minutes, args.seed))
        fig["measure_s"] = round(time.monotonic() - t0, 1)
        out[name] = fig
        if not args.json:
            print(name, json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                    for k, v in fig.items()}), flush=True)
    if args.json:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
