"""Lockstep: how closely several daemons play one show, how fast a change reaches them all,
and what the sync machinery costs a frame.

    sudo .venv/bin/python bench/lockstep.py [--minutes 10] [--members 3] [--skip-run]

Needs root: the members are real ``latentdmx run`` processes, each in its own network
namespace on a bridged test LAN (tests/group_lan.py; nothing leaves the machine). They start
2 s apart, send sACN (universe sync on) to one receiver socket, and record (DMX + a wall-clock
stamp per frame). Every 30 s a ``seed`` or ``tempo`` change goes to one of them, in turn.

Printed:

* **offset between members** — at the common receiver: for every frame all members sent
  (matched by its bytes), the latest arrival minus the earliest; and at the senders: the
  spread of the stamps of the same frame index; p50 / p99 / max in ms and in frames.
* **frame index at a wall time** — on a 5 ms grid, the largest minus the smallest frame
  index the members had sent by then (the issue's "differs by at most one frame").
* **command to the same frame on all members** — from the moment the command is sent to the
  moment the last member sent the frame it takes effect at (by design ``lead_s`` + < 1
  frame), and whether that frame's bytes were the same on all members.
* **cost per frame** — in this process, on one member: the clock's step watch, the frame
  loop's hook with nothing due, a frame with a change to apply, an announcement (once a
  second), beside the pipeline's own frame.

All members share this machine's CLOCK_REALTIME, so the offsets are the daemons' own
(scheduling, 2 shared cores) with no clock error; on Pis add chrony's error (README).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from group_lan import RECEIVER_IP, GroupLan, LoOnly, lan_missing_reason
from lockstep_daemons import (
    FPS,
    Daemon,
    group_config,
    group_frame,
    index_spread,
    with_sync,
)

PERIOD_MS = 1000.0 / FPS


class Receiver:
    """sACN arrivals at one socket: (arrival, universe, hash of the slots) per data packet."""

    def __init__(self, ns) -> None:
        def make() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            s.bind((RECEIVER_IP, 5568))
            s.settimeout(0.2)
            return s

        self.sock = ns.call(make)
        self.arrivals: list[tuple[float, int, bytes]] = []
        self.syncs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                raw = self.sock.recv(2048)
            except TimeoutError:
                continue
            t = time.time()
            if int.from_bytes(raw[18:22], "big") == 4:              # data
                if raw[112] & 0x40:
                    continue                                        # stream terminated
                universe = int.from_bytes(raw[113:115], "big")
                self.arrivals.append((t, universe, hashlib.blake2b(raw[126:],
                                                                   digest_size=8).digest()))
            else:
                self.syncs += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def pct(x, q) -> float:
    return float(np.percentile(x, q)) if len(x) else float("nan")


def line(name: str, ms: np.ndarray) -> str:
    return (f"  {name:<34} p50 {pct(ms, 50):7.3f} ms ({pct(ms, 50) / PERIOD_MS:.3f} frames)  "
            f"p99 {pct(ms, 99):7.3f} ms ({pct(ms, 99) / PERIOD_MS:.3f})  max {np.max(ms):7.3f}"
            f" ms ({np.max(ms) / PERIOD_MS:.3f})   n={len(ms)}")


def run_group(minutes: float, members: int, tmp: Path) -> None:
    seconds = minutes * 60.0
    stagger = 2.0
    with GroupLan(members) as lan:
        rx = Receiver(lan.sw)
        daemons = []
        t0 = time.monotonic()
        for i in range(members):
            cfg = group_config(
                tmp / f"rig{i}.toml",
                output=f'kind = "sacn"\n\n[output.sacn]\nunicast = ["{RECEIVER_IP}"]\n'
                       f'universe_map = {{ "1" = {11 + i} }}\nsync_universe = {63990 + i}\n'
                       f'interface = "eth0"\ndiscovery = false\n')
            daemons.append(Daemon(lan.members[i], cfg, tmp, f"m{i}",
                                  seconds + stagger * (members - i) + 4.0))
            time.sleep(stagger)
        for d in daemons:
            d.wait_playing()
        commands = []
        n = 0
        next_cmd = time.monotonic() + 10.0
        next_report = time.monotonic() + 60.0
        end = t0 + stagger * members + seconds
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_cmd:
                d = daemons[n % members]
                w0 = time.time()
                reply = (d.request("seed", seed=100 + n) if n % 2 == 0 else
                         d.request("tempo", tempo=1.0 + 0.25 * (n % 4)))
                commands.append((w0, group_frame(reply), d.name))
                n += 1
                next_cmd = now + 30.0
            if now >= next_report:
                done = (now - t0 - stagger * members) / 60.0
                print(f"  ... {done:4.1f} of {minutes:g} min, {len(rx.arrivals)} packets, "
                      f"{len(commands)} commands", flush=True)
                next_report = now + 60.0
            time.sleep(0.2)
        for d in daemons:
            if d.wait(timeout_s=60.0 + stagger * members) != 0:
                print(d.log())
        rx.close()

    # -- at the receiver: the same bytes from every member, latest minus earliest arrival
    stamps = [d.stamps() for d in daemons]
    lo = max(min(s) for s in stamps) + int(4 * FPS)    # after each one's start (fade-in) and
    hi = min(max(s) for s in stamps) - int(2 * FPS)    # before its end (fade-out)
    w_lo, w_hi = max(s[lo] for s in stamps if lo in s), min(s[hi] for s in stamps if hi in s)
    seen: dict[bytes, dict[int, list[float]]] = {}
    for t, u, h in rx.arrivals:
        if w_lo <= t <= w_hi:
            seen.setdefault(h, {}).setdefault(u, []).append(t)
    unis = {11 + i for i in range(members)}
    spread_rx = np.array([(max(v[0] for v in by.values()) - min(v[0] for v in by.values()))
                          * 1000 for by in seen.values()       # bytes sent once each
                          if set(by) == unis and all(len(v) == 1 for v in by.values())])
    # at the senders: the stamps of one frame index; the frame index at a wall time
    common = [k for k in range(lo, hi) if all(k in s for s in stamps)]
    spread_tx = np.array([(max(s[k] for s in stamps) - min(s[k] for s in stamps)) * 1000
                          for k in common])
    idx = index_spread(stamps, lo, hi)
    frames = [d.frames() for d in daemons]
    same = [all(np.array_equal(frames[0][k], f[k]) for f in frames[1:]) for k in common]
    print(f"\n{members} members, {minutes:g} min, {FPS:g} fps ({PERIOD_MS:.0f} ms a frame); "
          f"frames all played: {len(common)}, byte-identical: {sum(same)} "
          f"({100.0 * np.mean(same):.3f} %)")
    print("offset between members (latest minus earliest):")
    print(line("at the sACN receiver (same bytes)", spread_rx))
    print(line("sent (stamps of the same frame)", spread_tx))
    counts = np.bincount(idx, minlength=3)
    print(f"frame index at a wall time (5 ms grid, {len(idx)} points): differs by 0: "
          f"{100 * counts[0] / len(idx):.2f} %, by 1: {100 * counts[1] / len(idx):.3f} %, "
          f"by >1: {100 * counts[2:].sum() / len(idx):.3f} %, max {idx.max()}")
    print(f"sync packets received: {rx.syncs} (one per frame per member)")
    lat, ok = [], 0
    for w0, k, _who in commands:
        if all(k in s for s in stamps):
            lat.append((max(s[k] for s in stamps) - w0) * 1000)
            ok += all(np.array_equal(frames[0][k], f[k]) for f in frames[1:])
    if lat:
        arr = np.array(lat)
        print(f"command to the same frame on all members ({len(lat)} commands, lead "
              f"0.3 s): p50 {pct(arr, 50):.1f} ms, max {arr.max():.1f} ms; the frame "
              f"identical on all: {ok} of {len(lat)}")


def cost_per_frame(frames: int = 4000) -> None:
    """The sync machinery's own time per frame, on one member in a namespace of its own."""
    from pi_app.config import default_config_path, parse_config
    from pi_app.outputs.sim import SimOutput
    from pi_app.patch import Patch
    from pi_app.show import Show
    from pi_app.vocabulary import lookup

    text = with_sync(default_config_path().read_text(),
                     'group = "bench"\nkey = "kV3q-Zt8wPn2RbX7_mLc9YfH4sJd6GaE"\n'
                     'interface = "127.0.0.1"')
    cfg = parse_config(text, "<bench>")
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes), control=False)
    sync = show.lockstep
    assert sync is not None
    with LoOnly() as ns:
        ns.call(sync.start)
        clock = sync.make_clock(lambda *a, **k: None, FPS, threading.Event())
        k0 = clock.frame
        pipe = show.pipeline
        t_pipe = []
        for i in range(200):
            t = time.perf_counter()
            pipe.frames((k0 + i) / FPS)
            t_pipe.append(time.perf_counter() - t)
        t_track, t_hook = [], []
        sync._next_announce_s = float("inf")                   # measured on their own below
        for i in range(frames):
            t = time.perf_counter()
            clock.track()
            t_track.append(time.perf_counter() - t)
            t = time.perf_counter()
            sync.before_frame(k0 + i, (k0 + i) / FPS)
            sync.after_frame(k0 + i)
            t_hook.append(time.perf_counter() - t)
        t_ann = []
        for i in range(200):
            t = time.perf_counter()
            sync._announce(k0 + i, (k0 + i) / FPS)
            t_ann.append(time.perf_counter() - t)
        t_change = []
        cmd = lookup("tempo")
        for i in range(200):
            change = cmd.run(show, {"tempo": 1.0 + (i % 3) / 10})
            sync.submit(cmd, {"tempo": 1.0 + (i % 3) / 10}, change, "bench")
            k = clock.frame + sync.lead_frames
            t = time.perf_counter()
            sync.before_frame(k, k / FPS)
            t_change.append(time.perf_counter() - t)
            sync._resend.clear()
        sync.close()
    us = 1e6
    med = lambda x: float(np.median(x)) * us  # noqa: E731
    print(f"\ncost per frame (median of {frames}; µs):")
    print(f"  the pipeline's own frame (walk .. patch)    {med(t_pipe):8.1f}")
    print(f"  clock: wall-clock step watch (track)        {med(t_track):8.1f}")
    print(f"  frame-loop hook, nothing due                {med(t_hook):8.1f}")
    print(f"  an announcement (once a second: / {FPS:g})     {med(t_ann):8.1f}"
          f"  -> {med(t_ann) / FPS:.1f} a frame")
    print(f"  a frame with a change to apply (tempo)      {med(t_change):8.1f}")
    total = med(t_track) + med(t_hook) + med(t_ann) / FPS
    print(f"  sync machinery on a usual frame             {total:8.1f}  "
          f"({100 * total / med(t_pipe):.1f} % of the pipeline, "
          f"{100 * total / (us / FPS):.3f} % of the period)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the group run")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--skip-run", action="store_true", help="only the cost per frame")
    args = ap.parse_args()
    why = lan_missing_reason()
    if why:
        sys.exit(f"bench/lockstep.py: {why} (run it as root)")
    import tempfile

    if not args.skip_run:
        with tempfile.TemporaryDirectory(prefix="lockstep-bench-") as tmp:
            print(f"lockstep: {args.members} daemons for {args.minutes:g} min "
                  f"(pid {os.getpid()})", flush=True)
            run_group(args.minutes, args.members, Path(tmp))
    cost_per_frame()


if __name__ == "__main__":
    main()
