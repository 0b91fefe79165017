"""Where frames of one show differ between CPU types: stage by stage, each stage fed the same
input on both machines.

    python bench/cross_cpu.py dump REF.npz [--model M] [--seed S] [--seconds D]
    python bench/cross_cpu.py dump OTHER.npz --ref REF.npz [...]    # the other CPU
    python bench/cross_cpu.py compare REF.npz OTHER.npz
    python bench/cross_cpu.py exact [--model M]       # what CPU-independent bits would cost

`dump` computes, for every frame of a show on the demo rig (virtual time), what each stage
makes: the walk's latents (``walk``), the model's output (``model``), each layer's output
(``layer.i``: its matmul alone, then its activation), the mapper's scene (``mapper``), and the
DMX frame (``frame``, the whole pipeline as `run --record` plays it). With ``--ref`` every
stage but the walk and the frame takes the reference's input, not its own, so a stage's
differences are its own and not those it was handed (run the reference on x86, the other one
in the emulated arm64 root: ``scripts/pi-emulate.sh``; ``OPENBLAS_CORETYPE=CORTEXA53`` etc.
choose OpenBLAS's kernel for one Pi model). `compare` prints per stage how many values
differ and by how many float32 steps (ulps), and for the frames which DMX slots differ and
by how much, coarse and fine channels apart.

`exact` prices the alternative to the per-CPU differences: a NAT model's matrix products made
independent of summation order and fused multiply-add, by rounding weights and activations to
integers (float64, scaled by powers of two, every partial sum below 2**53, so every addition
is exact on any CPU and BLAS kernel). It prints that evaluation's CPU time against today's
(time.process_time, per call, 7 and 1,024 streams) and how far its output is from today's.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")     # as the daemon does (pi_app/__init__)
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pi_app.config import load_config
from pi_app.pipeline import Pipeline
from pi_app.runtime import _MLP, load_model


def _layers(model, x: np.ndarray, ref_in: dict | None, k: int, out: dict) -> None:
    """Each op of the model on its own: input from the reference when there is one."""
    ops = model._ops
    if len(ops) == 1 and isinstance(ops[0], _MLP):              # NAT: matmul, then ReLU
        mlp = ops[0]
        h = x.T
        for i, w in enumerate([*mlp.w, None]):
            name = f"layer.{i}"
            src = ref_in[name + ".in"][k] if ref_in is not None else h
            out.setdefault(name + ".in", []).append(src.copy())
            if w is None:
                y = np.dot(np.vstack([src, np.ones((1, src.shape[1]), np.float32)]).T,
                           mlp.last)
            else:
                y = np.dot(w, np.vstack([src, np.ones((1, src.shape[1]), np.float32)]))
            out.setdefault(name + ".matmul", []).append(y.copy())
            if w is not None:
                y = np.maximum(y, 0.0)
            h = y
        return
    h = x
    for i, op in enumerate(ops):
        name = f"layer.{i}"
        src = ref_in[name + ".in"][k] if ref_in is not None else h
        out.setdefault(name + ".in", []).append(np.array(src, copy=True))
        fresh = getattr(op, "fresh", None)
        y = (fresh(np.array(src)) if fresh is not None else op(np.array(src)))
        h = np.array(y, copy=True)
        out.setdefault(f"{name}.{getattr(op, '__name__', type(op).__name__)}", []).append(h)


def dump(path: Path, model_name: str, seed: int, seconds: float, ref: Path | None) -> None:
    cfg = load_config(None)
    model = load_model(model_name)
    fps = cfg.fps
    n = int(seconds * fps)
    ref_d = dict(np.load(ref)) if ref else None
    # the frames, as the show plays them (the whole pipeline on this machine)
    pipe = Pipeline(cfg, model, seed=seed)
    frames = []
    for k in range(n):
        fr = pipe.frames(k / fps)
        frames.append(np.concatenate([fr[u] for u in sorted(fr)]))
    # stage by stage
    src = Pipeline(cfg, load_model(model_name), seed=seed).source
    seg = cfg.walk.seconds_per_waypoint
    out: dict[str, list] = {}
    for k in range(n):
        z = np.array(src.walk.at(k / fps / seg), copy=True)
        out.setdefault("walk", []).append(z)
        zin = ref_d["walk"][k] if ref_d is not None else z
        y = src.model.generate_scratch(zin)
        out.setdefault("model", []).append(y)
        _layers(src.model, zin, ref_d, k, out)
        yin = ref_d["model"][k] if ref_d is not None else y
        out.setdefault("mapper", []).append(np.array(src.mapper(yin), copy=True))
    arrays = {k: np.stack(v) for k, v in out.items()}
    arrays["frame"] = np.stack(frames)
    np.savez(path, **arrays, _machine=np.array(f"{platform.machine()} NumPy {np.__version__} "
                                              f"OPENBLAS_CORETYPE="
                                              f"{os.environ.get('OPENBLAS_CORETYPE', '-')}"))


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ia = a.astype(np.float32).view(np.int32).astype(np.int64)
    ib = b.astype(np.float32).view(np.int32).astype(np.int64)
    ia = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return np.abs(ia - ib)


def compare(a_path: Path, b_path: Path) -> None:
    a, b = np.load(a_path), np.load(b_path)
    print(f"{a_path.name}: {a['_machine']}\n{b_path.name}: {b['_machine']}")
    for key in a.files:
        if key.startswith("_") or key == "frame" or key.endswith(".in"):
            continue
        x, y = a[key], b[key]
        u = _ulps(x, y)
        diff = u > 0
        print(f"  {key:<18} {diff.sum():>8} of {diff.size:>9} values differ "
              f"({diff.mean():.4%}); max {u.max()} ulp; frames with a difference "
              f"{diff.reshape(len(x), -1).any(1).sum()} of {len(x)}")
    fa, fb = a["frame"].astype(int), b["frame"].astype(int)
    d = fa != fb
    rows = d.any(1)
    print(f"  frame: {rows.sum()} of {len(fa)} frames differ; {d.sum()} slot values; slots "
          f"{sorted(set(np.nonzero(d)[1].tolist()))[:20]}; max |diff| "
          f"{np.abs(fa - fb).max() if d.any() else 0}")


def _exact_mlp(mlp: _MLP):
    """An order-independent evaluation of a fused MLP (see `exact` in the docstring)."""
    budget = 52

    def quant(w: np.ndarray) -> tuple[np.ndarray, int, int]:
        bits = (budget - int(np.ceil(np.log2(w.shape[1])))) // 2
        s = bits - int(np.ceil(np.log2(np.abs(w).max())))
        return np.rint(w.astype(np.float64) * 2.0 ** s), s, bits

    layers = [quant(w) for w in mlp.w] + [quant(np.ascontiguousarray(mlp.last.T))]

    def run(x: np.ndarray) -> np.ndarray:
        a = np.vstack([x.T, np.ones((1, x.shape[0]), np.float32)])
        for i, (wq, sw, bits) in enumerate(layers):
            sa = bits - int(np.ceil(np.log2(max(float(np.abs(a).max()), 1.0))))
            h = np.dot(wq, np.rint(a.astype(np.float64) * 2.0 ** sa))
            h = (h * 2.0 ** -(sa + sw)).astype(np.float32)
            if i == len(layers) - 1:
                return np.minimum(np.maximum(h.T, 0.0), 1.0)
            np.maximum(h, 0.0, out=h)
            a = np.vstack([h, np.ones((1, h.shape[1]), np.float32)])
        raise AssertionError

    return run


def exact_cost(model_name: str) -> None:
    import time
    m = load_model(model_name)
    assert m.stacks, "a NAT (fused MLP) model"
    run = _exact_mlp(m._ops[0])
    rng = np.random.default_rng(0)
    for b in (7, 1024):
        z = rng.standard_normal((b, m.info.latent_dim)).astype(np.float32)
        today, ex = m.generate(z), run(z)
        steps = np.abs(np.rint(ex * 65535) - np.rint(today * 65535)).max()
        cost = {}
        for name, f in (("today", lambda z=z: m.generate(z)), ("exact", lambda z=z: run(z))):
            t0, n = time.process_time(), 0
            while time.process_time() - t0 < 1.0:
                f()
                n += 1
            cost[name] = (time.process_time() - t0) / n * 1e6
        print(f"{model_name}, {b} streams: today {cost['today']:.0f} µs CPU a call, exact "
              f"{cost['exact']:.0f} µs ({cost['exact'] / cost['today']:.1f}x); output apart by "
              f"at most {np.abs(ex - today).max():.2e} ({steps:.0f} 16-bit steps)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("--ref", type=Path)
    d.add_argument("--model", default="nat-aurora")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--seconds", type=float, default=60.0)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    e = sub.add_parser("exact")
    e.add_argument("--model", default="nat-aurora")
    args = ap.parse_args()
    if args.cmd == "exact":
        exact_cost(args.model)
    elif args.cmd == "dump":
        dump(args.out, args.model, args.seed, args.seconds, args.ref)
    else:
        compare(args.a, args.b)


if __name__ == "__main__":
    main()
