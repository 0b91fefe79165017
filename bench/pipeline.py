"""Per-frame cost of each pipeline stage, and of the whole pipeline, for 1/8/32/128 fixtures.

    python bench/pipeline.py [--model NAME] [--frames N]

Prints µs per frame and the share of the 44 fps frame period (22.7 ms) — goal: the whole
pipeline under 0.5 % of the period at 32 fixtures — then the daemon's start-to-first-frame
time (READY=1 on a private NOTIFY_SOCKET, as systemd sees it) and its resident memory.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # as the daemon does (pi_app/__init__)
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pi_app.config import parse_config
from pi_app.outputs.sim import SimOutput
from pi_app.pipeline import Pipeline
from pi_app.runtime import load_model

PERIOD_US = 1e6 / 44


def rig(n: int, model: str) -> str:
    """n Lumeri 14ch heads, 36 per universe."""
    lines = [f'model = "{model}"\nfps = 44\n']
    for i in range(n):
        u, k = divmod(i, 36)
        lines.append(f'[[fixtures]]\nname = "h{i}"\nprofile = "lumeri-wash-7-10"\nmode = "14ch"\n'
                     f'universe = {u + 1}\naddress = {k * 14 + 1}\n'
                     f'position = [{(i % 12) / 11:.3f}, {(i // 12) / 11 % 1:.3f}]\n')
    return "".join(lines)


def per_call_us(fn, frames: int) -> float:
    """Median of 5 runs of `frames` calls, in µs per call (frame numbers keep counting)."""
    runs = []
    for r in range(5):
        t0 = time.perf_counter()
        for k in range(r * frames, (r + 1) * frames):
            fn(k)
        runs.append((time.perf_counter() - t0) / frames * 1e6)
    return float(np.median(runs))


def bench_stages(n: int, model_name: str, frames: int) -> dict[str, float]:
    """Each stage timed on the inputs it really gets: a show is played once (warm-up) and
    every stage's input is kept, then each stage is replayed over its own input sequence."""
    cfg = parse_config(rig(n, model_name), f"<bench {n}>")
    fps = cfg.fps
    play = Pipeline(cfg, load_model(cfg.model), seed=1)
    src = play.source
    rate = 1 / (fps * cfg.walk.seconds_per_waypoint)
    zs, outs, raws, safes = [], [], [], []
    for k in range(frames):
        zs.append(src.walk.at(k * rate).copy())
        outs.append(src.model.generate(zs[-1]).copy())
        raws.append(src.mapper(outs[-1]).copy())
        safes.append(play.safety(raws[-1], k / fps).copy())
    framesets = [{u: f.copy() for u, f in play.patch.frames(s).items()} for s in safes]
    # fresh stages for the replay, so each starts from the same state as in the show
    pipe = Pipeline(cfg, load_model(cfg.model), seed=1)
    walk, model, mapper = pipe.source.walk, pipe.source.model, pipe.source.mapper
    sim = SimOutput(pipe.patch.universes).open()

    def safety(k: int) -> None:
        if k % frames == 0:                  # each repeat replays the show from its start
            pipe.safety = type(pipe.safety)(cfg, pipe.patch, fps)
        pipe.safety(raws[k % frames], (k % frames) / fps)

    res = {
        "walk": per_call_us(lambda k: walk.at((k % frames) * rate), frames),
        "model": per_call_us(lambda k: model.generate(zs[k % frames]), frames),
        "mapper": per_call_us(lambda k: mapper(outs[k % frames]), frames),
        "safety": per_call_us(safety, frames),
        "patch": per_call_us(lambda k: pipe.patch.frames(safes[k % frames]), frames),
        "output(sim)": per_call_us(lambda k: sim.send(framesets[k % frames]), frames),
    }
    whole = Pipeline(cfg, load_model(cfg.model), seed=1)
    res["whole pipeline"] = per_call_us(lambda k: whole.frames(k / fps), frames)
    res["whole + sim send"] = per_call_us(lambda k: sim.send(whole.frames(k / fps)), frames)
    return res


def bench_daemon(model: str) -> tuple[float, float, float]:
    """Start-to-first-frame (s), VmRSS and VmHWM (MB) of `latentdmx run` on the simulator."""
    with tempfile.TemporaryDirectory() as tmp:
        sock_path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.settimeout(30)
        env = dict(os.environ, NOTIFY_SOCKET=sock_path, XDG_RUNTIME_DIR=tmp)
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--model", model,
                                 "--duration", "4"], env=env, stderr=subprocess.DEVNULL)
        while b"READY=1" not in sock.recv(4096):
            pass
        ready = time.monotonic() - t0
        time.sleep(2)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines())
        rss = int(fields["VmRSS"].split()[0]) / 1024
        hwm = int(fields["VmHWM"].split()[0]) / 1024
        proc.wait(timeout=30)
    return ready, rss, hwm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nat-aurora")
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--fixtures", default="1,8,32,128")
    args = ap.parse_args()
    sizes = [int(x) for x in args.fixtures.split(",")]
    table = {n: bench_stages(n, args.model, args.frames) for n in sizes}
    stages = list(next(iter(table.values())))
    print(f"model {args.model}; µs per frame (share of the 44 fps period, 22.7 ms)")
    print(f"{'stage':<18}" + "".join(f"{str(n) + ' fixt.':>20}" for n in sizes))
    for st in stages:
        print(f"{st:<18}" + "".join(f"{table[n][st]:>10.1f} ({table[n][st] / PERIOD_US:6.2%})"
                                    for n in sizes))
    if 32 in table:
        share = table[32]["whole pipeline"] / PERIOD_US
        print(f"goal: whole pipeline < 0.5 % of the period at 32 fixtures: {share:.2%} "
              f"-> {'met' if share < 0.005 else 'NOT met'}")
    ready, rss, hwm = bench_daemon(args.model)
    print(f"daemon: start to first frame {ready:.2f} s; resident memory {rss:.1f} MB "
          f"(peak {hwm:.1f} MB); goal < 40 MB -> {'met' if hwm < 40 else 'NOT met'}")


if __name__ == "__main__":
    main()
