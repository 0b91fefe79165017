"""A year of show time on virtual time: what the frame loop pays for each event, and whether
anything grows.

    python bench/year.py [--days 365] [--stride 1] [--around 4] [--out FILE]

The daemon's `Show` (director, schedule, playlists, presets, run-ahead, the sim output)
plays the default rig with an installation: in Berlin, a night window from sunset to sunrise
and a day window from an hour after sunrise to an hour before sunset, each with a playlist
that steps every 10 minutes; every hour a preset is saved (at :50) and recalled (at :05, the
one saved an hour before), a preset at the show's age (phase = show time / 6 s, as a show
without playlists has at that age) recalled (at :20) and the model swapped 30 s later; every
day the config is reloaded with another model (at 13:00 UTC, SIGHUP's way: read aside,
applied at a frame). A year is 1.26e9 frames: the clock jumps from event to event (the
walk's phase is a pure function of show time) and plays `--around` frames at each (one
before), as a daemon whose clock skipped frames would; `--stride N` plays the events of
every N-th day only (and of the last), jumping over the others (a year of every event takes
hours on a busy machine). Each tick's work is measured (wall and the frame loop thread's CPU
time, the client's part of an operation left out: a client does it on its own thread, and so
does the playlist's loader, a whole item ahead, and a reload's reader) and
counted against the frame period (25 ms at 40 fps). Goal: no tick over a period for any
event, RSS flat within 5 MB from the end of day 1 to the year's end, and the walk at the
year's end the one a fresh pipeline computes from the show's (model, seed, phase line,
anchor) alone; the DMX frames of the last second the same after 30 s of play.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # as the daemon does (pi_app/__init__)
import re
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np

from pi_app.clock import FastClock
from pi_app.config import default_config_path, parse_config
from pi_app.lean import settle_after_start
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.pipeline import Pipeline
from pi_app.schedule import Schedule
from pi_app.show import Show

WALL0 = dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp()     # show time 0
PERIOD = 1 / 40
MODELS = ("nat-neon", "nat-retina", "nat-aurora")
INSTALL = """
[location]
latitude = 52.52
longitude = 13.40
timezone = "Europe/Berlin"

[[schedule]]
on = "sunset"
off = "sunrise"
playlist = "night"

[[schedule]]
on = "sunrise+1h"
off = "sunset-1h"
playlist = "day"

[playlists.night]
items = ["dusk", {{ model = "nat-neon", seed = 4 }}, "embers"]
every = "10m"
fade_s = 2.0

[playlists.day]
items = [{{ model = "nat-retina", seed = 5 }}, "dusk", {{ seed = 6, tempo = 1.5 }}]
every = "10m"
fade_s = 2.0

[presets.dusk]
model = "nat-aurora"
seed = 3

[presets.embers]
model = "nat-neon"
seed = 8
tempo = 0.5
"""


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def events(cfg, days: float, stride: int = 1) -> list[tuple[float, str]]:
    """(show time, what) of every event of `days` (of every `stride`-th day), in order."""
    end = days * 86400.0
    out: list[tuple[float, str]] = []
    sched = Schedule(cfg.schedule, cfg.location)
    start = dt.datetime.fromtimestamp(WALL0, dt.UTC)
    for w in sched.windows(start, start + dt.timedelta(days=days)):
        on, off = w.on.timestamp() - WALL0, w.off.timestamp() - WALL0
        out.append((on, "window on"))
        out.append((off, "window off"))
        t = on + 600.0
        while t < min(off, end):                      # the playlist's steps
            out.append((t, "playlist step"))
            t += 600.0
    for h in range(int(end // 3600)):
        out.append((h * 3600 + 300.0, "recall"))
        out.append((h * 3600 + 1200.0, "recall aged"))
        out.append((h * 3600 + 1230.0, "swap"))
        out.append((h * 3600 + 3000.0, "save"))
    for d in range(int(days)):
        out.append((d * 86400 + 13 * 3600 + 15.0, "reload"))
    last = int((end - 1) // 86400)
    return sorted((t, what) for t, what in out if 1.0 <= t < end and
                  (int(t // 86400) % stride == 0 or int(t // 86400) == last))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--stride", type=int, default=1, help="play every N-th day's events")
    ap.add_argument("--around", type=int, default=4, help="frames played at each event")
    ap.add_argument("--out", type=Path, help="also write the report here")
    ap.add_argument("--trace", type=int, default=0, metavar="DAYS",
                    help="trace Python's allocations (tracemalloc; slower), and print what "
                         "grew since day 1 every DAYS days")
    args = ap.parse_args()
    if args.trace:
        tracemalloc.start(8)
    lines: list[str] = []

    def say(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    tmp = Path(tempfile.mkdtemp(prefix="latentdmx-year-"))
    text = default_config_path().read_text() + INSTALL.format()
    path = tmp / "rig.toml"
    path.write_text(text)
    cfg = parse_config(text, str(path))
    fps = cfg.fps
    evs = events(cfg, args.days, args.stride)
    end_t = args.days * 86400.0
    # the frames to play: `around` at each event (one before it), then 30 s to the end
    plan: list[int] = []
    for t, _ in evs:
        k = round(t * fps)
        plan.extend(range(k - 1, k - 1 + args.around))
    k_end = round(end_t * fps)
    plan.extend(range(k_end - 30 * int(fps), k_end + 1))
    plan = sorted(set(plan))
    what_at = {round(t * fps): what for t, what in evs}
    # the first frame after a jump of the clock: the walk computed where it now is (up to a
    # block of its chain: what a daemon pays at its start, never while it plays on)
    jumped = {k: "clock jump" for i, k in enumerate(plan) if i == 0 or plan[i - 1] != k - 1}
    label: dict[int, str] = {}                # a tick's event: its frame and the next ones
    for k, what in sorted(what_at.items(), reverse=True):
        for j in range(k, k + args.around - 1):
            label.setdefault(j, what)

    # each tick's work (s): wall, and CPU of the frame loop thread, and its kind; kept in
    # arrays made at the start, so that the bench's own records do not grow the RSS it reports
    size = len(plan) + 100_000                # (the stop's fade-out: a few hundred more)
    work_a, cpu_a = np.zeros(size), np.zeros(size)
    kind_a = np.zeros(size, np.int16)
    kinds: list[str] = []
    ticks = [0]
    client = [0.0, 0.0]                       # the current tick's client work (wall, CPU)
    gc_s = [0.0, 0.0]                         # the current tick's GC time; a pass's start
    slow: list[tuple[float, str, int, float, float]] = []   # CPU > period: (ms, kind, k, ...)

    def gc_timer(phase: str, info: dict) -> None:
        if phase == "start":
            gc_s[1] = time.perf_counter()
        else:
            gc_s[0] += time.perf_counter() - gc_s[1]
    gc.callbacks.append(gc_timer)
    state = {"rss": [], "t0": time.perf_counter(), "day": -1}

    class YearClock(FastClock):
        def __init__(self, fps: float, *, stop=None, **_: object) -> None:
            super().__init__(fps, stop=stop)
            self._plan = iter(plan)
            self._mark: tuple[float, float] | None = None
            self._last = -1

        def wait(self) -> int:
            now, c = time.perf_counter(), time.thread_time()
            if self._mark is not None:
                kind = label.get(self._last, jumped.get(self._last, "play"))
                if kind not in kinds:
                    kinds.append(kind)
                i = ticks[0]
                ticks[0] += 1
                w_s, c_s = now - self._mark[0] - client[0], c - self._mark[1] - client[1]
                work_a[i], cpu_a[i], kind_a[i] = w_s, c_s, kinds.index(kind)
                if c_s > PERIOD or w_s > 4 * PERIOD:
                    slow.append((1e3 * c_s, kind, self._last, 1e3 * w_s, 1e3 * gc_s[0]))
            client[0] = client[1] = gc_s[0] = 0.0
            k = next(self._plan, None)
            if k is None:                         # the stop's fade-out: on, frame by frame
                k = self.frame
                label[k] = "stop (fade-out)"
            self._virtual = max(self._virtual, self.due(k))
            self.frame = k + 1
            self._last = k
            self._mark = time.perf_counter(), time.thread_time()
            return k

    out = SimOutput(Patch(cfg).universes)
    show = Show(cfg, out, clock=YearClock, control=False, config_path=path,
                presets_dir=tmp / "presets", wall_clock=lambda t: WALL0 + t)
    settle_after_start(show)                 # as the daemon: start-up's objects frozen
    saved: list[str] = []
    reloads = [0]
    kept: list[dict[int, np.ndarray]] = []

    def listener(s: Show) -> None:
        k = s.clock.frame - 1
        t = k / fps
        c0, w0 = time.thread_time(), time.perf_counter()
        # the playlist's loader works a whole item (10 minutes) ahead on a daemon; here the
        # clock skips those minutes, so its work is waited for between frames (on virtual
        # time a rotation would wait for it: a wait no daemon on real time has)
        for fut in list(s.director._pending.values()):
            fut.result()
        what = what_at.get(k)
        if what is not None:
            h = int(t // 3600)
            if what == "recall" and saved:
                s.handle_control("preset/recall", {"name": saved[0]})
            elif what == "swap":
                s.handle_control("model", {"name": MODELS[h % 3]})
            elif what == "recall aged":           # a preset saved by a show of this age
                (tmp / "presets").mkdir(exist_ok=True)
                (tmp / "presets" / "aged.json").write_text(json.dumps(
                    {"schema": 1, "name": "aged", "model": MODELS[h % 3], "seed": h % 7,
                     "phase": round(t / 6.0, 6), "tempo": 1.0, "master": 1.0}))
                s.handle_control("preset/recall", {"name": "aged"})
            elif what == "save":
                name = f"hour{h % 2}"
                s.handle_control("preset/save", {"name": name})
                saved[:] = [name]
            elif what == "reload":
                reloads[0] += 1
                path.write_text(re.sub(r'(?m)^model = "nat-aurora"',
                                       f'model = "{MODELS[reloads[0] % 3]}"', text, count=1))
                s._reload_aside()               # SIGHUP's way on a live daemon: read aside
                if s._reading is not None:      # (done between frames, as on a daemon whose
                    s._reading.join()           # frames go on meanwhile; not the loop's work)
        if k_end - int(fps) <= k <= k_end:
            kept.append({u: f.copy() for u, f in last.items()})
        day = int(t // 86400)
        if day != state["day"]:
            state["day"] = day
            if day >= 1 and not state["rss"]:          # after the first day
                state["rss"].append(rss_mb())
                if args.trace:
                    state["snap"] = tracemalloc.take_snapshot()
            elif args.trace and "snap" in state and day % args.trace == 0:
                top = tracemalloc.take_snapshot().compare_to(state["snap"], "lineno")[:8]
                print(f"  day {day}: Python's allocations since day 1, the largest growth:\n" +
                      "\n".join(f"    {x}" for x in top), file=sys.stderr, flush=True)
            if day % (10 * args.stride) == 0 or day == int(args.days) - 1:
                print(f"  day {day}: {ticks[0]:,} frames, "
                      f"{time.perf_counter() - state['t0']:.0f} s, RSS {rss_mb():.1f} MB, "
                      f"phase {s.pipeline.phase:,.1f}", file=sys.stderr, flush=True)
        if k >= k_end:
            state["final"] = final_state(s, t)
            state["rss"].append(rss_mb())
            s.stop()
        client[0] += time.perf_counter() - w0
        client[1] += time.thread_time() - c0

    last: dict[int, np.ndarray] = {}
    send = out._send

    def keep(frames):                            # the frames the show sends, the last one
        last.clear()
        last.update(frames)
        return send(frames)
    out._send = keep                             # type: ignore[method-assign]

    def final_state(s: Show, t: float) -> dict:
        p = s.pipeline
        return {"t": t, "model": p.model, "seed": p.seed, "line": p.line, "anchor": p.anchor,
                "xfade": p.xfade(), "master": p.safety.master,
                "palette": p.looks.palette_name, "config": s.config,
                "scene": p.source.scene(p.line.at(t)).copy()}

    say(f"# python bench/year.py --days {args.days:g} --stride {args.stride} "
        f"--around {args.around}  "
        f"(load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs)")
    say(f"events: {len(evs):,} over {args.days:g} days; frames to play: {len(plan):,}")
    show.listeners.append(listener)
    show.run()
    wall_s = time.perf_counter() - state["t0"]

    # the year's end, computed directly: a fresh pipeline from the walk's inputs alone
    f = state["final"]
    fresh = Pipeline(f["config"], f["model"], seed=f["seed"])
    fresh.set_walk(f["model"], f["seed"], f["line"], f["xfade"], f["anchor"])
    same_walk = np.array_equal(fresh.source.scene(f["line"].at(f["t"])), f["scene"])
    fresh.safety.master = f["master"]
    fresh.looks.set_palette(f["palette"])
    mine = []
    for k in range(k_end - 30 * int(fps), k_end + 1):
        frames = fresh.frames(k / fps)
        if k >= k_end - int(fps):
            mine.append({u: x.copy() for u, x in frames.items()})
    same_dmx = len(mine) == len(kept) and all(
        all(np.array_equal(a[u], b[u]) for u in a) for a, b in zip(mine, kept, strict=True))
    if not same_dmx and mine and kept:
        diff = [int(np.abs(a[u].astype(int) - b[u].astype(int)).max()) for a, b in
                zip(mine, kept, strict=False) for u in a]
        say(f"  (the last second's frames differ by up to {max(diff)} of 255 in a slot)")

    frames = ticks[0]
    work_a, cpu_a, kind_a = work_a[:frames], cpu_a[:frames], kind_a[:frames]
    say(f"played {frames:,} frames of {args.days:g} days of show time (every "
        f"{args.stride}. day's events) in {wall_s:.0f} s; "
        f"the year's end at phase {f['line'].at(f['t']):,.1f}")
    say(f"{'event':15} {'ticks':>8} {'> 1 period':>10} {'wall max ms':>11} "
        f"{'wall p99 ms':>11} {'CPU > 1 period':>14} {'CPU max ms':>10} {'CPU p99 ms':>10}")
    for kind in sorted(kinds):
        mine = kind_a == kinds.index(kind)
        w, c = work_a[mine], cpu_a[mine]
        say(f"{kind:15} {len(w):8,} {(w > PERIOD).sum():10,} {1e3 * w.max():11.1f} "
            f"{1e3 * np.percentile(w, 99):11.1f} {(c > PERIOD).sum():14,} "
            f"{1e3 * c.max():10.1f} {1e3 * np.percentile(c, 99):10.1f}")
    w_all, c_all = work_a, cpu_a
    say(f"{'all':15} {len(w_all):8,} {(w_all > PERIOD).sum():10,} {1e3 * w_all.max():11.1f} "
        f"{1e3 * np.percentile(w_all, 99):11.1f} {(c_all > PERIOD).sum():14,} "
        f"{1e3 * c_all.max():10.1f} {1e3 * np.percentile(c_all, 99):10.1f}")
    ops = [x for x in slow if x[1] != "clock jump"]
    if ops:
        say(f"ticks of an event over a period of CPU (or 4 of wall), the worst {min(len(ops), 12)} "
            f"of {len(ops)}:")
        for ms, kind, k, wall, in_gc in sorted(ops, reverse=True)[:12]:
            say(f"  day {k / fps / 86400:7.2f} {kind:14} CPU {ms:6.1f} ms, wall {wall:6.1f} ms, "
                f"in the cyclic GC {in_gc:5.1f} ms")
    rss = state["rss"]
    say(f"RSS: {rss[0]:.1f} MB after the first day, {rss[-1]:.1f} MB at the end "
        f"({rss[-1] - rss[0]:+.1f} MB; goal: within 5 MB)")
    say(f"the year's end computed directly (a fresh pipeline from model, seed, phase line, "
        f"anchor): walk scene {'equal' if same_walk else 'DIFFERENT'}; DMX frames of the last "
        f"second after 30 s of play {'equal' if same_dmx else 'DIFFERENT'}")
    walk = show.pipeline.source.walk
    say(f"walk counters at the end: rerouted {walk.rerouted:,}, held {walk.held:,}; run-ahead "
        f"rows kept {len(show.pipeline.source._row_of)}; schedule sun cache "
        f"{len(show.director.schedule._sun_cache)} entries")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
