"""How much of a DMX frame period the UART output uses, and how steady its packets are.

    python bench/uart_frame.py [--seconds 4] [--fps 40] [--slots 56]

Prints the wire time of one packet at 250 kbaud (BREAK + MAB + start code + slots, 44 us a
slot) against the configured fps; then runs `UartOutput` over a pseudo-terminal (the bytes
really go through the tty layer; a pty cannot hold a BREAK, so the ioctls return at once and
the output waits out each packet's computed wire time instead of a real drain) and prints
the time the driver itself spends per packet (BREAK + MAB busy-waits + the write call) and
the packet period's jitter (p50/p99 of |period - nominal|), alone and with a second thread
spinning in pure Python (the GIL contention a busy show thread causes).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pi_app.config import UartConfig
from pi_app.outputs.uart import SLOT_S, UartOutput, wire_time_s


def drain_master(fd: int, stop: threading.Event) -> None:
    import select

    while not stop.is_set():
        if select.select([fd], [], [], 0.05)[0]:
            try:
                os.read(fd, 65536)
            except OSError:
                return


def run(fps: float, slots: int, seconds: float, busy: bool, realtime: bool = True) -> dict:
    import pi_app.outputs.uart as uart_mod

    asked = uart_mod.realtime_priority
    if not realtime:                 # as on a system that refuses SCHED_FIFO
        uart_mod.realtime_priority = lambda *a, **k: "not asked (the bench's comparison)"
    master, slave = os.openpty()
    stop = threading.Event()
    reader = threading.Thread(target=drain_master, args=(master, stop), daemon=True)
    reader.start()
    hog_stop = threading.Event()

    def hog() -> None:
        x = 0
        while not hog_stop.is_set():
            x += 1

    out = UartOutput([1], config=UartConfig(device=os.ttyname(slave)), fps=fps, slots=slots,
                     de_pin=None, keep_timing=100_000)
    hog_thread = threading.Thread(target=hog, daemon=True)
    try:
        with out:
            out.send({1: np.arange(512, dtype=np.uint16).astype(np.uint8)})
            if busy:
                hog_thread.start()
            cpu0, t0 = time.process_time(), time.monotonic()
            time.sleep(seconds)
            cpu = (time.process_time() - cpu0) / (time.monotonic() - t0)
            timing = list(out.timing)
            health = out.health()
    finally:
        uart_mod.realtime_priority = asked
        hog_stop.set()
        stop.set()
        reader.join(1)
        os.close(slave)
        os.close(master)
    starts = np.array([t for t, _ in timing[1:]])
    driver = np.array([d for _, d in timing[1:]]) * 1e3
    jitter = np.abs(np.diff(starts) - 1.0 / fps) * 1e3
    return {"packets": health["packets"], "late": health["late"],
            "driver_p50_ms": np.percentile(driver, 50), "driver_p99_ms": np.percentile(driver, 99),
            "jitter_p50_ms": np.percentile(jitter, 50), "jitter_p99_ms": np.percentile(jitter, 99),
            "jitter_max_ms": jitter.max(), "break_min_us": health["break_min_us"],
            "mab_min_us": health["mab_min_us"], "break_max_us": health["break_max_us"],
            "mab_max_us": health["mab_max_us"], "cpu": cpu, "rt": health.get("realtime")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--fps", type=float, default=40.0, help="configured fps (UART default 40)")
    ap.add_argument("--slots", type=int, default=56,
                    help="last patched slot (the bundled rig: 56)")
    a = ap.parse_args()

    print("wire time of one packet at 250 kbaud (BREAK 176 us + MAB 16 us + 44 us a slot):")
    for n in sorted({a.slots, 512}):
        w = wire_time_s(n)
        print(f"  {n:3d} slots: {w * 1e3:6.2f} ms -> at most {1 / w:6.1f} fps; at {a.fps:g} fps "
              f"the wire is busy {w * a.fps:5.1%} of each {1e3 / a.fps:.1f} ms period")
    print(f"  (one slot = 11 bits = {SLOT_S * 1e6:.0f} us; 513 slots + break + MAB = "
          f"{wire_time_s(512) * 1e3:.2f} ms, the DMX512 ceiling of ~44 fps)")
    for slots in sorted({a.slots, 512}):
        for busy, realtime in ((False, True), (True, True), (True, False)):
            r = run(a.fps, slots, a.seconds, busy, realtime)
            label = (f"{'a busy thread' if busy else 'alone':13}, "
                     f"{'SCHED_FIFO' if r['rt'] else 'normal priority':15}")
            print(f"{slots:3d} slots @ {a.fps:g} fps, {label}: {r['packets']} packets, "
                  f"late {r['late']}; driver time/packet p50 {r['driver_p50_ms']:.3f} ms, p99 "
                  f"{r['driver_p99_ms']:.3f} ms; period jitter p50 {r['jitter_p50_ms']:.3f} ms, "
                  f"p99 {r['jitter_p99_ms']:.3f} ms, max {r['jitter_max_ms']:.3f} ms; BREAK "
                  f"{r['break_min_us']:.0f}..{r['break_max_us']:.0f} us, MAB "
                  f"{r['mab_min_us']:.0f}..{r['mab_max_us']:.0f} us; process CPU {r['cpu']:.0%}")


if __name__ == "__main__":
    main()
