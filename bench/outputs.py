"""Frames per second each output sustains, and dropped / late frames at 44 fps.

    python bench/outputs.py [--frames 3000] [--seconds 15] [--only sim,ola,uart,sacn,artnet,ddp,
                            network-frame,ola-stream] [--universes 1,16,64]
    python bench/outputs.py --only network-frame --base da8c9cc     # before -> after

- sim: `SimOutput` (the virtual universe).
- ola: `OlaOutput` to a real olad started like the tests' fixture (private config dir and
  ports, dummy plugin); a second registered OLA client counts the frames olad really got.
- uart: `UartOutput` over a pseudo-terminal (the output paces itself on the wire time of each
  packet), for the bundled rig's 56 slots and for a full 512-slot universe.

"Sustained": `--frames` distinct frames handed to `send()` as fast as the caller can, and
how many per second come out the other end. "At 44 fps": a `FrameClock` at 44 fps sends a
new frame each tick for `--seconds`; late = ticks the clock itself missed, dropped = frames
the output replaced with a newer one (or lost) before they went out.

sacn, artnet, ddp (1/16/64 universes; ddp also against sACN on the same frames in alternating
rounds), network-frame (the 64-universe goal, per stage) and
ola-stream (olad's CPU for the same stream): see `bench/network.py`. With `--base REF` (a
commit, checked out in a temporary worktree) or `--code DIR` (another checkout),
network-frame measures the same frames with that code too, in alternating rounds, and prints
both tables side by side with the ratio.
"""

from __future__ import annotations

import argparse
import math
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")     # as the daemon does (pi_app/__init__)
import select
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uart_frame import drain_master

from pi_app.clock import FrameClock
from pi_app.config import OlaConfig, UartConfig
from pi_app.outputs.ola import OlaOutput, import_ola
from pi_app.outputs.sim import SimOutput
from pi_app.outputs.uart import UartOutput, max_fps


def frame(k: int) -> np.ndarray:
    f = np.zeros(512, np.uint8)
    f[0], f[1], f[2] = k & 0xFF, (k >> 8) & 0xFF, (k >> 16) & 0xFF   # a frame number
    f[3:56] = k % 251
    return f


class Watcher:
    """A second OLA client registered for universe 1; counts distinct frames olad pushes."""

    def __init__(self, port: int) -> None:
        mod = import_ola()
        self.seen: set[int] = set()
        self.count = 0
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        self._client = mod.OlaClient(self._sock)
        ok = threading.Event()
        self._client.RegisterUniverse(1, mod.OlaClient.REGISTER, data_callback=self._data,
                                      callback=lambda status: ok.set())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        ok.wait(5)

    def _data(self, data) -> None:
        self.count += 1
        if len(data) >= 3:
            self.seen.add(data[0] | data[1] << 8 | data[2] << 16)

    def _run(self) -> None:
        while not self._stop.is_set():
            if select.select([self._sock], [], [], 0.05)[0]:
                self._client.SocketReady()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


def sustained(out, n: int, settle, caught_up=None) -> tuple[float, float]:
    """(send() calls/s, frames out/s) for n distinct frames sent back to back.

    With `caught_up(k)`, the sender waits (yielding the GIL) until the output has taken
    frame k before sending the next: the output's own ceiling, with no frame replaced."""
    frames = [frame(k + 1) for k in range(n)]
    t0 = time.perf_counter()
    for k, f in enumerate(frames):
        out.send({1: f})
        while caught_up is not None and not caught_up(k + 1):
            time.sleep(0)
    t_send = time.perf_counter() - t0
    done = settle()                      # -> (frames that came out, time the last came out)
    return n / t_send, done[0] / max(done[1] - t0, 1e-9)


def paced(out, seconds: float, fps: float = 44.0) -> dict:
    clock = FrameClock(fps)
    end = clock.start_s + seconds
    sent = 0
    max_send = 0.0
    while time.monotonic() < end:
        k = clock.wait()
        t = time.perf_counter()
        out.send({1: frame(100_000 + k)})
        max_send = max(max_send, time.perf_counter() - t)
        sent += 1
    return {"sent": sent, "late": clock.late, "max_send_ms": max_send * 1e3,
            "first": 100_000, "last": 100_000 + clock.frame}


def bench_sim(a) -> None:
    out = SimOutput([1], keep_history=True).open()
    rate, through = sustained(out, a.frames, lambda: (len(out.history), time.perf_counter()))
    out.history.clear()
    p = paced(out, a.seconds)
    out.close()
    print(f"sim : sustained {through:,.0f} frames/s ({rate:,.0f} send()/s); at 44 fps "
          f"{p['sent']} frames, late {p['late']}, dropped 0, max send() {p['max_send_ms']:.2f} ms")


def bench_ola(a) -> None:
    from tests.olad_fixture import Olad, olad_missing_reason

    reason = olad_missing_reason()
    if reason:
        print(f"ola : skipped ({reason})")
        return
    daemon = Olad().start()
    try:
        watcher = Watcher(daemon.rpc_port)
        out = OlaOutput([1], config=OlaConfig(port=daemon.rpc_port)).open()
        time.sleep(0.3)

        def settle():
            last, t_last = -1, time.perf_counter()
            while True:                     # until nothing new arrives for 0.3 s
                time.sleep(0.05)
                if watcher.count != last:
                    last, t_last = watcher.count, time.perf_counter()
                elif time.perf_counter() - t_last > 0.3:
                    return len(watcher.seen), t_last

        base = out.health()["delivered"]
        _, through = sustained(out, a.frames, settle,
                                  lambda k: out.health()["delivered"] >= base + k)
        got_sustained = len(watcher.seen)
        watcher.seen.clear()
        h0 = out.health()
        p = paced(out, a.seconds)
        time.sleep(0.3)
        h = out.health()
        seen = sum(p["first"] <= s < p["last"] for s in watcher.seen)
        out.close()
        watcher.close()
        print(f"ola : sustained {through:,.0f} frames/s into olad (olad got {got_sustained} "
              f"of {a.frames} distinct frames); at 44 fps {p['sent']} frames, late {p['late']}, "
              f"dropped "
              f"{h['dropped'] - h0['dropped']}, olad got {seen}, max send() "
              f"{p['max_send_ms']:.2f} ms")
    finally:
        daemon.cleanup()


def bench_uart(a) -> None:
    for slots in (56, 512):
        master, slave = os.openpty()
        stop = threading.Event()
        threading.Thread(target=drain_master, args=(master, stop), daemon=True).start()
        cfg = UartConfig(device=os.ttyname(slave))
        try:
            # Sustained: the output as fast as the wire allows (packets back to back).
            top = max_fps(slots)                    # the fastest fps the output accepts
            out = UartOutput([1], config=cfg, fps=top, slots=slots, de_pin=None).open()
            out.send({1: frame(1)})
            time.sleep(0.2)
            n0, t0 = out.packets, time.perf_counter()
            time.sleep(min(3.0, a.seconds))
            wire = (out.packets - n0) / (time.perf_counter() - t0)
            out.close()
            fps = min(44.0, math.floor(top))           # 44, or the wire's ceiling
            out = UartOutput([1], config=cfg, fps=fps, slots=slots, de_pin=None).open()
            p = paced(out, a.seconds, fps)
            h = out.health()
            out.close()
        finally:
            stop.set()
            os.close(slave)
            os.close(master)
        print(f"uart: {slots:3d} slots: sustained {wire:,.1f} packets/s on the wire; at {fps:g} "
              f"fps "
              f"{p['sent']} frames, late {p['late']} (show clock) / {h['late']} (UART "
              f"thread), dropped {h['dropped']}, {h['packets']} packets, max send() "
              f"{p['max_send_ms']:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--only",
                    default="sim,ola,uart,sacn,artnet,ddp,network-frame,ola-stream")
    ap.add_argument("--universes", default="1,16,64")
    ap.add_argument("--base", help="network-frame: compare with this commit (before -> after)")
    ap.add_argument("--code", type=Path, help="network-frame: compare with this checkout")
    ap.add_argument("--rounds", type=int, default=3, help="network-frame: alternating rounds")
    a = ap.parse_args()
    import network

    sizes = [int(n) for n in a.universes.split(",")]
    for name in a.only.split(","):
        {"sim": bench_sim, "ola": bench_ola, "uart": bench_uart,
         "sacn": lambda a: (network.bench_protocol("sacn", sizes, a.frames, a.seconds),
                            network.bench_python_sacn(sizes, a.frames)),
         "artnet": lambda a: network.bench_protocol("artnet", sizes, a.frames, a.seconds),
         "ddp": lambda a: (network.bench_ddp_vs_sacn(sizes, min(a.frames, 1000)),
                           network.bench_protocol("ddp", sizes, a.frames, a.seconds)),
         "network-frame": lambda a: frame_vs_base(network, max(sizes), a),
         "ola-stream": lambda a: network.bench_ola_stream(max(sizes), a.seconds),
         }[name](a)


def frame_vs_base(network, universes: int, a) -> None:
    """network-frame, against `--base` (a temporary worktree) or `--code` if given."""
    import subprocess
    import tempfile

    if not a.base:
        network.bench_frame(universes, a.frames, a.seconds, base=a.code,
                            base_name=a.code.name if a.code else "", rounds=a.rounds)
        return
    with tempfile.TemporaryDirectory(prefix="latentdmx-base-") as tmp:
        tree = network.base_tree(a.base, Path(tmp) / "base")
        try:
            network.bench_frame(universes, a.frames, a.seconds, base=tree,
                                base_name=a.base[:12], rounds=a.rounds)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)],
                           cwd=network.ROOT, capture_output=True)


if __name__ == "__main__":
    main()
