"""What a frame costs as the daemon runs it: paced at the show's fps, per stage, with the whole
process's CPU.

    python bench/paced.py [--rigs demo,pars512,heads288,pars1024] [--seconds 20]
                          [--output sim|ola] [--model NAME] [--fps F]

`bench/pipeline.py` runs frames back to back with hot caches; the daemon sleeps a period
between frames, and a frame then costs several times more (caches and branch predictors
are cold). This bench plays the real `Show` loop on the real frame clock (`FrameClock`) for
`--seconds`, into the simulator or a real olad (`--output ola`: a private olad like the
tests'), with timers around each stage, and prints per rig:

- each stage's wall time per frame (mean over the frames, and the worst frame): walk (with
  the guarded walk's look ahead), model, mapper, looks, moves, safety, patch, send;
- the frame's whole work on the frame thread (clock wake-up to the next wait: with the
  frames worked out ahead, pi_app/ahead.py, at the tick that works them out);
- the whole process's CPU (user + system, every thread) per frame and in % of one core.

The timers add about 1 µs per stage. Run it on a quiet machine and compare within one run.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")     # as the daemon does (pi_app/__init__)
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rigs import LABELS, rig_toml

from pi_app.clock import FrameClock
from pi_app.config import parse_config

STAGES = ("walk", "model", "mapper", "looks", "moves", "safety", "patch", "send")


class Timers:
    def __init__(self) -> None:
        self.total = dict.fromkeys(STAGES, 0.0)
        self.worst = dict.fromkeys(STAGES, 0.0)
        self.on = False

    def wrap(self, name: str, fn):
        total, worst = self.total, self.worst
        perf = time.perf_counter

        def timed(*args, **kwargs):
            if not self.on:
                return fn(*args, **kwargs)
            t = perf()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = perf() - t
                total[name] += dt
                if dt > worst[name]:
                    worst[name] = dt
        return timed


def _timed_call(obj, call) -> None:
    """Give `obj` a timed `__call__` (a subclass made for it: its attributes stay its own,
    so the run-ahead's snapshot of a stage sees them, pi_app/ahead.py)."""
    cls = type(obj)
    obj.__class__ = type(cls.__name__, (cls,), {"__call__": lambda self, *a, **k: call(*a, **k)})


def instrument(show, timers: Timers) -> None:
    pipe = show.pipeline
    src = pipe.source
    src.walk.at = timers.wrap("walk", src.walk.at)
    src.walk.at_many = timers.wrap("walk", src.walk.at_many)        # the next frames too
    src.model.generate = timers.wrap("model", src.model.generate)
    src.model.generate_stacked = timers.wrap("model", src.model.generate_stacked)
    mapper = src.mapper
    if hasattr(mapper, "many"):                  # the points mapper: the next frames too
        mapper.many = timers.wrap("mapper", mapper.many)
    for name, stage in (("mapper", mapper), ("looks", pipe.looks), ("moves", pipe.moves),
                        ("safety", pipe.safety)):
        _timed_call(stage, timers.wrap(name, stage.__call__))
    pipe.patch.frames = timers.wrap("patch", pipe.patch.frames)
    show.output.send = timers.wrap("send", show.output.send)


def run_rig(rig: str, *, seconds: float, output: str, ola_port: int | None, model: str | None,
            fps: float | None, warm_s: float = 3.0) -> dict:
    from pi_app.outputs import output_for
    from pi_app.patch import Patch
    from pi_app.runtime import load_model
    from pi_app.show import Show

    cfg = parse_config(rig_toml(rig, model=model, fps=fps, output=output, ola_port=ola_port),
                       f"<{rig}>")
    patch = Patch(cfg)
    out = output_for(cfg, patch)
    timers = Timers()
    work: list[float] = []
    woke: list[float] = [0.0]
    marks: dict[str, float] = {}

    class Clock(FrameClock):
        def wait(self) -> int:
            if timers.on:            # the last tick's whole work: wake-up to this wait
                work.append(time.perf_counter() - woke[0])
            k = super().wait()
            woke[0] = time.perf_counter()
            # warm-up over: start counting (a slow machine may skip the very frame)
            if not timers.on and k >= round(warm_s * self.fps):
                timers.on = True
                marks.update(cpu=time.process_time(), wall=time.monotonic(), k=k)
            return k

    show = Show(cfg, out, model=load_model(cfg.model), duration_s=warm_s + seconds,
                control=False, clock=Clock)
    show.config = cfg
    instrument(show, timers)

    def listener(s) -> None:
        if timers.on:
            marks.update(cpu_end=time.process_time(), wall_end=time.monotonic(),
                         k_end=s.frames_out)
    show.listeners.append(listener)
    show.run()
    frames = marks["k_end"] - marks["k"]
    cpu = marks["cpu_end"] - marks["cpu"]
    wall = marks["wall_end"] - marks["wall"]
    w = np.array(work) * 1e6
    return {"rig": rig, "fixtures": len(cfg.fixtures), "universes": len(patch.universes),
            "fps": cfg.fps, "frames": frames, "late": show.late_frames(),
            "stages_us": {k: v / frames * 1e6 for k, v in timers.total.items()},
            "worst_us": {k: v * 1e6 for k, v in timers.worst.items()},
            "work_mean_us": float(w.mean()), "work_median_us": float(np.median(w)),
            "work_p99_us": float(np.percentile(w, 99)),
            "cpu_per_frame_us": cpu / frames * 1e6, "cpu_share": cpu / wall,
            "ahead": {"worked": show.ahead.worked, "batches": show.ahead.batches,
                      "rollbacks": show.ahead.rollbacks} if show.ahead else None}


def print_result(r: dict) -> None:
    print(f"{LABELS.get(r['rig'], r['rig'])}: {r['fixtures']} fixtures, {r['universes']} "
          f"universe(s), {r['fps']:g} fps, {r['frames']} frames, {r['late']} late")
    print("  stage    mean µs/frame   worst µs")
    for k in STAGES:
        print(f"  {k:<8} {r['stages_us'][k]:10.1f} {r['worst_us'][k]:12.0f}")
    print(f"  frame work on the frame thread: mean {r['work_mean_us']:.0f} µs, median "
          f"{r['work_median_us']:.0f} µs, p99 {r['work_p99_us']:.0f} µs")
    print(f"  whole process: {r['cpu_per_frame_us']:.0f} µs CPU a frame = "
          f"{r['cpu_share']:.2%} of a core")
    if r.get("ahead"):
        a = r["ahead"]
        print(f"  run ahead: {a['worked']} frames in {a['batches']} batches "
              f"({a['worked'] / max(a['batches'], 1):.1f} frames each), {a['rollbacks']} "
              "rolled back")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rigs", default="demo,pars512,heads288,pars1024")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--output", choices=("sim", "ola"), default="sim")
    ap.add_argument("--model", default=None)
    ap.add_argument("--fps", type=float, default=None)
    a = ap.parse_args()
    olad = None
    tmp = tempfile.TemporaryDirectory()
    os.environ["XDG_RUNTIME_DIR"] = tmp.name            # no claims/state in the user's dirs
    try:
        if a.output == "ola":
            from tests.olad_fixture import Olad, olad_missing_reason

            reason = olad_missing_reason()
            if reason:
                sys.exit(f"--output ola: {reason}")
            olad = Olad(patch={f"1-1-O-{i}": i + 1 for i in range(1)}).start()
        for rig in a.rigs.split(","):
            r = run_rig(rig, seconds=a.seconds, output=a.output,
                        ola_port=olad.rpc_port if olad else None, model=a.model, fps=a.fps)
            print_result(r)
    finally:
        if olad is not None:
            olad.cleanup()
        tmp.cleanup()


if __name__ == "__main__":
    main()
