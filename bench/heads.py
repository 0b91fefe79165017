"""Do heads move in black, and rest? Lit head speed in degrees and dark repositionings, from DMX.

    python bench/heads.py [--minutes 60] [--models nat-aurora ...] [--rigs 180 360 540]

Each bundled model (models/*) plays a show on virtual time (`FastClock`, the show's own frame
loop into a simulated output that keeps every frame) on three rigs of 8 Lumeri Wash 7.10
heads (540 deg pan, 270 deg tilt) with 180, 360 and 540 deg of pan in use
(`bench/rigs/heads-*.toml`). Everything below is read from the DMX bytes the show sent, by
this file alone: the channel layout comes from the profile's JSON (pan, pan fine, tilt, tilt
fine, dimmer 0..134, R, G, B, W), nothing of the show's patch, safety or moves code is used.

* a head is **lit** when dimmer x max(R, G, B, W) > 10 % of full;
* **lit p99 / max deg/s**: the aim's angular speed (pan and tilt in degrees, the Euclidean
  norm) over 0.25 s windows (every frame a window start) during which the head stays lit;
* **dark moves/min**: dark repositionings per head-minute: spells of not-lit frames in which
  the aim moves more than 5 deg (a head easing on while the model's colour is dark counts);
  **fast**: those in which it moves faster than 40 deg/s (over 0.25 s), a move no lit head
  may make;
* **% dark**: share of head-time not lit (the model's own dark colours count too), and the
  shares within dark repositionings and within fast ones;
* **lit sweeps**: 1 s windows, lit throughout, in which pan or tilt moves more than 20 % of
  the range in use (the config's pan limits, else the profile's range).
The first 10 s (the show's fade in and first move in black) are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pi_app.clock import FastClock
from pi_app.config import load_config
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import Show

RIGS = ROOT / "bench" / "rigs"
PROFILE = ROOT / "pi_app" / "fixtures" / "profiles" / "lumeri-wash-7-10.json"
SETTLE_S = 10.0
LIT = 0.10
MOVE_DEG = 5.0
SWEEP = 0.20
FAST_DEG_PER_S = 40.0


@dataclass(frozen=True)
class HeadLayout:
    """Our own reading of one head: where its slots are and what its range is."""
    universe: int
    start: int                  # 0-based first slot
    slots: dict[str, int]       # attr -> offset in the footprint
    dimmer_max: int
    pan_deg: float
    tilt_deg: float
    pan_span: float             # degrees of pan in use (the config's limits)
    tilt_span: float


def layouts(rig: Path) -> list[HeadLayout]:
    prof = json.loads(PROFILE.read_text())
    chans = prof["modes"]["14ch"]
    slots = {c["attr"]: j for j, c in enumerate(chans) if c["attr"] != "hold"}
    dim_max = next(c.get("max", 255) for c in chans if c["attr"] == "dimmer")
    cfg = tomllib.loads(rig.read_text())
    out = []
    for fx in cfg["fixtures"]:
        pl = fx.get("pan_limits_deg", [0, prof["pan_deg"]])
        tl = fx.get("tilt_limits_deg", [0, prof["tilt_deg"]])
        out.append(HeadLayout(fx["universe"], fx["address"] - 1, slots, dim_max,
                              prof["pan_deg"], prof["tilt_deg"], pl[1] - pl[0], tl[1] - tl[0]))
    return out


def decode(frames: list[dict[int, np.ndarray]], heads: list[HeadLayout]):
    """(pan deg, tilt deg, light 0..1), each (frames, heads), from the DMX bytes."""
    n, m = len(frames), len(heads)
    pan, tilt, light = (np.zeros((n, m)) for _ in range(3))
    for j, h in enumerate(heads):
        d = np.stack([fr[h.universe][h.start:h.start + 14] for fr in frames]).astype(float)
        s = h.slots
        pan[:, j] = (d[:, s["pan"]] * 256 + d[:, s["pan_fine"]]) / 65535 * h.pan_deg
        tilt[:, j] = (d[:, s["tilt"]] * 256 + d[:, s["tilt_fine"]]) / 65535 * h.tilt_deg
        colour = d[:, [s["red"], s["green"], s["blue"], s["white"]]].max(axis=1) / 255
        light[:, j] = np.minimum(d[:, s["dimmer"]], h.dimmer_max) / h.dimmer_max * colour
    return pan, tilt, light


def figures(pan, tilt, light, heads: list[HeadLayout], fps: float) -> dict:
    k0 = int(SETTLE_S * fps)
    pan, tilt, light = pan[k0:], tilt[k0:], light[k0:]
    lit = light > LIT
    n, m = lit.shape
    w = max(1, round(0.25 * fps))
    speeds = []
    for j in range(m):
        dp = pan[w:, j] - pan[:-w, j]
        dt = tilt[w:, j] - tilt[:-w, j]
        v = np.hypot(dp, dt) / (w / fps)
        # lit throughout the window: no unlit frame among its w + 1 frames
        unlit = np.concatenate([[0], np.cumsum(~lit[:, j])])
        through = (unlit[w + 1:] - unlit[:-w - 1]) == 0
        speeds.append(v[through])
    v = np.concatenate(speeds) if speeds else np.zeros(0)
    # dark repositionings
    moves = fast = 0
    in_moves = in_fast = 0
    for j in range(m):
        k = 0
        while k < n:
            if lit[k, j]:
                k += 1
                continue
            e = k
            while e < n and not lit[e, j]:
                e += 1
            a, b = max(k - 1, 0), min(e, n - 1)
            seg_p, seg_t = pan[a:b + 1, j], tilt[a:b + 1, j]
            if np.hypot(seg_p - seg_p[0], seg_t - seg_t[0]).max() > MOVE_DEG:
                moves += 1
                in_moves += e - k
                a2 = max(k - w, 0)
                seg_p, seg_t = pan[a2:b + 1, j], tilt[a2:b + 1, j]
                if len(seg_p) > w and (np.hypot(seg_p[w:] - seg_p[:-w], seg_t[w:] - seg_t[:-w])
                                       / (w / fps)).max() > FAST_DEG_PER_S:
                    fast += 1
                    in_fast += e - k
            k = e
    # lit sweeps: 1 s windows lit throughout moving > 20 % of the range in use
    s = round(fps)
    sweeps = 0
    for j, h in enumerate(heads):
        unlit = np.concatenate([[0], np.cumsum(~lit[:, j])])
        through = (unlit[s + 1:] - unlit[:-s - 1]) == 0
        for arr, span in ((pan[:, j], h.pan_span), (tilt[:, j], h.tilt_span)):
            # the largest move within the window, not only end to end
            from numpy.lib.stride_tricks import sliding_window_view as swv
            win = swv(arr, s + 1)
            big = (win.max(axis=1) - win.min(axis=1)) > SWEEP * span
            sweeps += int((big & through).sum())
    head_min = m * n / fps / 60
    return {"p99": float(np.percentile(v, 99)) if len(v) else 0.0,
            "max": float(v.max()) if len(v) else 0.0,
            "med": float(np.median(v)) if len(v) else 0.0,
            "moves_per_min": moves / head_min, "dark": 100 * float((~lit).mean()),
            "dark_moving": 100 * in_moves / (n * m), "sweeps": sweeps,
            "fast_per_min": fast / head_min, "dark_fast": 100 * in_fast / (n * m),
            "head_hours": head_min / 60}


def record(rig: Path, model: str, seconds: float):
    cfg = replace(load_config(str(rig)), model=model)
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    show = Show(cfg, out, duration_s=seconds, control=False, clock=FastClock, seed=7)
    show.run()
    return out.history, float(cfg.fps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--models", nargs="+",
                    default=sorted(p.name for p in (ROOT / "models").iterdir() if p.is_dir()))
    ap.add_argument("--rigs", nargs="+", default=["180", "360", "540"])
    args = ap.parse_args()
    print(f"{args.minutes:g} min of show per model and rig on virtual time, 8 heads; figures "
          "from the DMX bytes")
    print("rig    model        lit p99   lit max   lit med  dark moves (fast)     % dark "
          "(moving, fast)  lit sweeps  wall s")
    for r in args.rigs:
        rig = RIGS / f"heads-{r}.toml"
        heads = layouts(rig)
        for model in args.models:
            t0 = time.monotonic()
            frames, fps = record(rig, model, args.minutes * 60 + SETTLE_S)
            pan, tilt, light = decode(frames, heads)
            del frames
            f = figures(pan, tilt, light, heads, fps)
            print(f"{r:>3}°  {model:11s} {f['p99']:6.1f}°/s {f['max']:6.1f}°/s {f['med']:6.1f}°/s"
                  f"  {f['moves_per_min']:5.2f} ({f['fast_per_min']:4.2f})/min  {f['dark']:5.1f} "
                  f"({f['dark_moving']:4.1f}, {f['dark_fast']:4.1f})"
                  f"  {f['sweeps']:8d}  {time.monotonic() - t0:6.0f}", flush=True)


if __name__ == "__main__":
    main()
