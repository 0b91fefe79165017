"""What watching costs the frame loop: `latentdmx watch` and the web page, against no viewer.

    python bench/views.py [--model NAME] [--seconds 8] [--fps 40]

1. Per call, on the viewer's thread (not the frame loop): decoding the last frame into the
   `live_state` dict, the control socket's ``scene`` round trip (what `watch` polls), and a
   ``GET /state`` round trip (what the page polls).
2. The frame loop itself, running the real `Show` on the simulator, in four set-ups: no
   viewer; `latentdmx watch` attached (a separate process polling ``scene`` at 10 Hz and
   drawing to a forced colour terminal, as over SSH); the web page polled at 10 Hz (as one
   open page does) by a separate process; and a stress case of 3 page clients at 50 Hz.
   For each: late (skipped) frames, how long after its deadline each frame was out
   (median / p99 / max), and the jitter (standard deviation) of the period between frames.

Views add no listener to the frame loop: they read the loop's last frames and status, which
the loop replaces whole each frame, from their own threads. What they can cost the loop is
CPU and the GIL; this measures that.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pi_app.config import PreviewConfig, load_config

TOKEN = "bench-token-0123456789"        # the page wants one on localhost too
from pi_app.control import ControlClient
from pi_app.decode import live_state
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import Show

POLLER = """
import sys, time, urllib.request
url, rate, n, secs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
import threading
def one():
    end = time.monotonic() + secs
    nxt = time.monotonic()
    while time.monotonic() < end:
        urllib.request.urlopen(url, timeout=2).read()
        nxt += 1 / rate
        time.sleep(max(0.0, nxt - time.monotonic()))
ts = [threading.Thread(target=one) for _ in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def per_call_us(fn, n: int = 200) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


class Timing:
    """A listener that notes when each frame was out, against the clock's deadline."""

    def __init__(self) -> None:
        self.late_s: list[float] = []
        self.at: list[float] = []

    def __call__(self, show: Show) -> None:
        now = time.monotonic()
        clock = show.clock
        self.late_s.append(now - clock.due(clock.frame - 1))
        self.at.append(now)


def run_show(cfg, seconds: float, viewer: str, sock: Path, port: int) -> dict:
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames)
    show = Show(cfg, out, duration_s=seconds + 1.0, control=True)
    timing = Timing()
    show.listeners.append(timing)
    th = threading.Thread(target=show.run, daemon=True)
    th.start()
    while not show.status_snapshot:
        time.sleep(0.01)
    time.sleep(0.5)                     # settle (fade-in, caches)
    start_frame = len(timing.at)
    late0 = show.clock.late
    proc = None
    env = dict(os.environ, FORCE_COLOR="1", COLUMNS="100", LINES="30")
    if viewer == "watch":
        proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "watch", "--socket",
                                 str(sock), "--rate", "10", "--duration", str(seconds)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env, cwd=ROOT)
    elif viewer.startswith("web"):
        rate, clients = (10, 1) if viewer == "web" else (50, 3)
        proc = subprocess.Popen([sys.executable, "-c", POLLER,
                                 f"http://127.0.0.1:{port}/state?token={TOKEN}", str(rate),
                                 str(clients), str(seconds)], env=env)
    if proc:
        proc.wait()
    else:
        time.sleep(seconds)
    end_frame = len(timing.at)
    late = show.clock.late - late0
    show.stop()
    th.join(10)
    lat = np.array(timing.late_s[start_frame:end_frame]) * 1e3
    per = np.diff(np.array(timing.at[start_frame:end_frame])) * 1e3
    return {"frames": end_frame - start_frame, "late": late,
            "med": float(np.median(lat)), "p99": float(np.percentile(lat, 99)),
            "max": float(lat.max()), "jitter": float(per.std())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--fps", type=float, default=40.0)
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="latentdmx-bench-"))
    sock = tmp / "control.sock"
    port = free_port()
    cfg = load_config(None)
    cfg = cfg.replace(fps=a.fps, model=a.model or cfg.model,
                      control=dataclasses.replace(cfg.control, socket=str(sock)),
                      preview=PreviewConfig(web=True, port=port, token=TOKEN))

    # 1. per-call costs, on the viewer's side of things
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes, blackout=patch.blackout_frames),
                duration_s=60, control=True)
    th = threading.Thread(target=show.run, daemon=True)
    th.start()
    while not show.status_snapshot:
        time.sleep(0.01)
    client = ControlClient(sock)
    url = f"http://127.0.0.1:{port}/state?token={TOKEN}"
    size = len(json.dumps(live_state(show)))
    print(f"LatentDMX views bench: model {cfg.model}, {len(patch)} fixtures, {a.fps:g} fps "
          f"(period {1e3 / a.fps:.1f} ms), {os.cpu_count()} CPUs")
    print("\nper call (on the viewer's thread, not the frame loop):")
    print(f"  live_state(show) decode + dict     {per_call_us(lambda: live_state(show)):8.0f} µs"
          f"  ({size} bytes as JSON)")
    print(f"  control socket `scene` round trip  "
          f"{per_call_us(lambda: client.request('scene'), 100):8.0f} µs")
    print(f"  HTTP GET /state round trip         "
          f"{per_call_us(lambda: urllib.request.urlopen(url).read(), 100):8.0f} µs")
    print("  frame-loop listeners added by views       0")
    show.stop()
    th.join(10)

    # 2. the frame loop with and without viewers
    print(f"\nframe loop, {a.seconds:g} s each (lateness = frame out after its deadline):")
    print(f"  {'viewer':<28}{'frames':>7}{'late':>6}{'median':>9}{'p99':>9}{'max':>9}"
          f"{'jitter':>9}")
    for viewer, label in (("none", "none"), ("watch", "latentdmx watch, 10 Hz"),
                          ("web", "web page, 1 client 10 Hz"),
                          ("web-stress", "web, 3 clients x 50 Hz")):
        r = run_show(cfg, a.seconds, viewer, sock, port)
        print(f"  {label:<28}{r['frames']:>7}{r['late']:>6}{r['med']:>7.2f}ms{r['p99']:>7.2f}ms"
              f"{r['max']:>7.2f}ms{r['jitter']:>7.2f}ms")


if __name__ == "__main__":
    main()
