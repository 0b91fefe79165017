"""What an operation costs the frame loop at an hour, a day, a month and a year of show time.

    python bench/age.py [--code DIR] [--ages hour,day,month,year] [--rig demo] [--gap S]
    python bench/age.py --steps                  # one guarded step, a new walk: by rig size

A real-time show (the daemon's `Show` and frame clock, the sim output) is started at the frame
of each age of the default show (phase = show time / 6 s), and a client thread does what an
operator does, one operation every `--gap` seconds, through the daemon's own doors
(`handle_control`, SIGHUP's `request_reload`): swap the model, recall a preset saved at that
age, change the tempo, start a playlist (its items: presets of that age), step it, reload a
config that swaps the model, take a new seed. For each operation it prints the frame loop's
longest tick from the operation to the next (its work: from one frame's wait to the next,
sleep excluded), in ms and in frame periods (25 ms at 40 fps), and the frames the clock
skipped; `idle` is the same before the first operation. Goal: no tick longer than a period.

`--code DIR` runs another checkout's `pi_app` (the "before": 52dfd6e), which climbs from
waypoint 0 whenever a new walk is made: run it at an hour and a day only (a month would take
hours). Figures vary with the machine's load; compare the columns of one run.
"""

from __future__ import annotations

import argparse
import itertools
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # as the daemon does (pi_app/__init__)
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AGES = {"hour": 3600.0, "day": 86400.0, "month": 30 * 86400.0, "year": 365 * 86400.0}
OPS = ("recall", "swap", "tempo", "playlist start", "playlist step", "reload", "seed")
SPW = 6.0                                   # the default show's seconds per waypoint
EXTRA = """
[presets.deep]
model = "nat-retina"
seed = 11
phase = {p1}

[presets.deeper]
model = "nat-aurora"
seed = 12
phase = {p2}

[playlists.p]
items = ["deeper", "deep"]
every = "1h"
fade_s = 1.0
"""


def aged_clock(k0: int, works: list[tuple[int, float, float]]):
    """A real-time frame clock that starts at frame k0 and records each tick's work: (frame,
    wall seconds, the frame loop thread's CPU seconds)."""
    from pi_app.clock import FrameClock

    class Aged(FrameClock):
        def __init__(self, fps: float, *, stop=None, **_: object) -> None:
            super().__init__(fps, stop=stop)
            self.start_s -= k0 / self.fps
            self.frame = k0
            self.last_k = -1
            self._mark: tuple[float, float] | None = None

        def wait(self) -> int:
            now, cpu = time.perf_counter(), time.thread_time()
            if self._mark is not None:
                works.append((self.last_k, now - self._mark[0], cpu - self._mark[1]))
            k = super().wait()
            self._mark = time.perf_counter(), time.thread_time()
            self.last_k = k
            return k
    return Aged


def run_age(age_s: float, rig: str, gap_s: float, repeat: int, log
            ) -> dict[str, list[tuple[float, float, int]]]:
    """{op: [(longest tick s, its most CPU s, frames skipped), ...]} for a show at `age_s`:
    the operations `repeat` times over (the recall first: back at the age's phase)."""
    from rigs import rig_toml

    from pi_app.config import parse_config
    from pi_app.lean import settle_after_start
    from pi_app.outputs.sim import SimOutput
    from pi_app.patch import Patch
    from pi_app.show import Show

    phase = age_s / SPW
    text = rig_toml(rig) + EXTRA.format(p1=round(phase + 0.5, 3), p2=round(phase + 40.5, 3))
    tmp = Path(tempfile.mkdtemp(prefix="latentdmx-age-"))
    path = tmp / "rig.toml"
    path.write_text(text)
    cfg = parse_config(text, str(path))
    fps = cfg.fps
    k0 = round(age_s * fps)
    works: list[tuple[int, float, float]] = []
    show = Show(cfg, SimOutput(Patch(cfg).universes), clock=aged_clock(k0, works),
                control=False, config_path=path, presets_dir=tmp / "presets",
                wall_clock=lambda t: 1.78e9 + t)
    settle_after_start(show)                 # as the daemon: start-up's objects frozen
    marks: list[tuple[str, int]] = []

    def client() -> None:
        def ticked(k: int) -> None:              # the frame loop has worked tick k
            while (show.clock is None or show.clock.last_k < k) and not show._stop_requested:
                time.sleep(0.01)

        ticked(k0 + int(fps))                    # the start (a block of the walk) is over
        marks.append(("idle", k0 + int(fps)))
        ticked(k0 + int(fps) + int(gap_s * fps))
        for i in range(repeat):
            for op in OPS:
                marks.append((op, show.clock.frame))
                t0 = time.perf_counter()
                if op == "swap":
                    show.handle_control("model", {"name": ("nat-neon", "nat-aurora")[i % 2]})
                elif op == "recall":
                    show.handle_control("preset/recall", {"name": "deep"})
                elif op == "tempo":
                    show.handle_control("tempo", {"tempo": 1.5 + i % 2})
                elif op == "playlist start":
                    show.handle_control("playlist/start", {"name": "p"})
                elif op == "playlist step":
                    show.handle_control("playlist/next", {})
                elif op == "reload":                 # the config's model: another each time
                    path.write_text(re.sub(r'(?m)^model = "nat-aurora"',
                                           f'model = "{("nat-neon", "nat-aurora")[i % 2]}"',
                                           text, count=1))
                    show.request_reload()
                elif op == "seed":
                    show.handle_control("seed", {"seed": 9 + i})
                log(f"  {op}: asked at frame {marks[-1][1] - k0} "
                    f"(client {1e3 * (time.perf_counter() - t0):.0f} ms)")
                ticked(marks[-1][1] + int(gap_s * fps))
        marks.append(("end", show.clock.frame))
        show.stop()

    driver = threading.Thread(target=client, daemon=True)
    driver.start()
    t0 = time.perf_counter()
    show.run()
    driver.join(5)
    log(f"  played {show.frames_out} frames in {time.perf_counter() - t0:.1f} s, "
        f"late {show.late_frames()}")
    out: dict[str, list[tuple[float, float, int]]] = {}
    nan = float("nan")
    for (op, k1), (_, k2) in itertools.pairwise(marks):
        ws = [w for w in works if k1 <= w[0] < k2]
        ks = [w[0] for w in ws]
        skipped = (max(ks) - min(ks) + 1 - len(ks)) if ks else 0
        out.setdefault(op, []).append((max((w[1] for w in ws), default=nan),
                                       max((w[2] for w in ws), default=nan), skipped))
    return out


def step_costs(log) -> None:
    """One guarded step (a segment's look), and a new walk at a year, by rig size."""
    from rigs import LABELS, rig_toml

    from pi_app.config import parse_config
    from pi_app.pipeline import Pipeline
    from pi_app.runtime import load_model

    print("one guarded step (a look at a segment), and a recall at a year on the frame loop's "
          "thread: made there, or made ahead by the client (`prepare_walk`), in ms")
    print(f"{'rig':34} {'streams':>7} {'guarded step':>13} {'recall':>8} {'made ahead':>11}")
    for rig in ("demo", "heads288", "pars512", "pars1024"):
        cfg = parse_config(rig_toml(rig), f"<{rig}>")
        model = load_model(cfg.model)
        p = Pipeline(cfg, model)
        walk = p.source.walk
        steps = []
        for k in range(100, 105):
            w = walk.waypoint(k)
            t0 = time.perf_counter()
            walk._next(k, w)
            steps.append(time.perf_counter() - t0)
        t_year = AGES["year"]
        recalls: list[float] = []
        ahead: list[float] = []
        if not hasattr(Pipeline, "prepare_walk"):     # 52dfd6e: a recall at a year climbs
            print(f"{LABELS[rig]:34} {walk.streams:7d} {1e3 * sorted(steps)[2]:13.1f} "
                  f"{'(5e6 steps)':>8} {'-':>11}", flush=True)
            continue
        for i in range(6):
            q = Pipeline(cfg, model)
            q.frames(t_year - 0.025)
            if i % 2 and hasattr(q, "prepare_walk"):
                q.prepare_walk(model, 5 + i, t_year / SPW + 0.3)    # the client's thread
            t0 = time.perf_counter()
            q.recall(model, 5 + i, t_year / SPW + 0.3, t_year, 0.0)
            q.frames(t_year)
            (ahead if i % 2 else recalls).append(time.perf_counter() - t0)
        steps.sort()
        recalls.sort()
        ahead.sort()
        made = f"{1e3 * ahead[1]:11.1f}" if ahead else f"{'-':>11}"
        print(f"{LABELS[rig]:34} {walk.streams:7d} {1e3 * steps[2]:13.1f} "
              f"{1e3 * recalls[1]:8.1f} {made}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--code", type=Path, default=HERE.parent, help="checkout whose pi_app to use")
    ap.add_argument("--ages", default="hour,day,month,year")
    ap.add_argument("--rig", default="demo")
    ap.add_argument("--gap", type=float, default=2.0, help="seconds from one operation to "
                    "the next")
    ap.add_argument("--repeat", type=int, default=3, help="each operation this many times")
    ap.add_argument("--steps", action="store_true", help="the guarded step's cost by rig")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(args.code.resolve()))
    import logging

    logging.basicConfig(level=logging.WARNING)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    import pi_app
    print(f"# code: {Path(pi_app.__file__).parent.parent}; rig {args.rig}; "
          f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    if args.steps:
        step_costs(log)
        return
    period = 1.0 / 40
    rows = {}
    for age in args.ages.split(","):
        log(f"{age}: phase {AGES[age] / SPW:,.0f}")
        rows[age] = run_age(AGES[age], args.rig, args.gap, args.repeat, log)
    cols = ("idle", *OPS)
    for i, what in ((1, "wall time (the machine's load included)"),
                    (0, "the frame loop thread's own CPU time")):
        print(f"longest frame-loop tick after each operation, {what}, {args.repeat} times "
              "each: median and worst in frame periods (25 ms at 40 fps) [frames skipped]")
        print(f"{'age':6} " + " ".join(f"{c:>15}" for c in cols))
        for age, row in rows.items():
            cells = []
            for c in cols:
                got = sorted(x[1 - i] for x in row.get(c, []))
                skipped = sum(x[2] for x in row.get(c, []))
                if not got:
                    cells.append("-")
                    continue
                med = got[(len(got) - 1) // 2]
                cells.append(f"{med / period:5.2f} {got[-1] / period:5.2f}" +
                             (f" [{skipped}]" if i else ""))
            print(f"{age:6} " + " ".join(f"{x:>15}" for x in cells), flush=True)
    print("(a period: 25 ms; 1.00 is a tick that took the whole period)")


if __name__ == "__main__":
    main()
