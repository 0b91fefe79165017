"""Cost of a frame when the schedule has the rig on vs. dark (idle), and of the looks stage.

    python bench/installation.py

Plays the default rig on virtual time (FastClock) with a fake wall clock: 60 s inside an
on-window, then 60 s outside it, and prints the mean time per frame of each part, plus a
show with a palette, heads still and trims against one without. Ratios within one run are
what to compare (the machine is shared and noisy).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pi_app.clock import FastClock
from pi_app.config import default_config_path, parse_config
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import Show

TZ = ZoneInfo("Europe/Berlin")


def per_frame_us(extra: str, start: dt.datetime, seconds: float, split_s: float | None):
    cfg = parse_config(default_config_path().read_text() + extra, "bench.toml")
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames)
    show = Show(cfg, out, clock=FastClock, control=False, duration_s=seconds,
                wall_clock=lambda t: start.timestamp() + t, presets_dir="/tmp/bench-presets")
    stamps: list[float] = []
    show.listeners.append(lambda s: stamps.append(time.perf_counter()))
    show.run()
    fps = int(cfg.fps)
    if split_s is None:
        d = stamps[fps:-2 * fps]
        return (d[-1] - d[0]) / (len(d) - 1) * 1e6, None
    k = int(split_s * fps)
    on = stamps[fps: k - fps]
    off = stamps[k + 8 * fps: -fps]
    return ((on[-1] - on[0]) / (len(on) - 1) * 1e6, (off[-1] - off[0]) / (len(off) - 1) * 1e6)


def main() -> None:
    sched = ('[location]\nlatitude = 52.52\nlongitude = 13.40\ntimezone = "Europe/Berlin"\n'
             '[[schedule]]\non = "20:00"\noff = "20:01"\n')
    on_us, idle_us = per_frame_us(sched, dt.datetime(2026, 6, 1, 20, 0, tzinfo=TZ), 120, 60)
    print(f"frame, schedule on:   {on_us:8.1f} us")
    print(f"frame, schedule dark: {idle_us:8.1f} us  ({on_us / idle_us:.0f}x cheaper)")
    plain, _ = per_frame_us("", dt.datetime(2026, 6, 1, 20, 0, tzinfo=TZ), 60, None)
    looks = ('[looks]\npalette = "sea"\nheads_still = true\n[palettes.sea]\nhues = [200]\n')
    with_looks, _ = per_frame_us(looks, dt.datetime(2026, 6, 1, 20, 0, tzinfo=TZ), 60, None)
    print(f"frame, no looks:      {plain:8.1f} us")
    print(f"frame, palette+still: {with_looks:8.1f} us  (+{with_looks - plain:.0f} us)")


if __name__ == "__main__":
    main()
