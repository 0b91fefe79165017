"""sACN and Art-Net outputs at 1, 16 and 64 universes (run through ``bench/outputs.py``).

    python bench/outputs.py --only sacn,artnet,network-frame,ola-stream [--universes 1,16,64]

- ``sacn`` / ``artnet``: the output sends unicast to a receiver *process* on 127.0.0.1 that
  counts datagrams (multicast is the same kernel path; the bench never sends off the
  machine). "Sustained": distinct frames handed to `send()` back to back — frames/s and the
  sender's CPU per frame and per universe (``time.thread_time``: the frame loop's thread is
  the only one that works). "At 44 fps": a `FrameClock` at 44 fps for ``--seconds``: late
  (clock), dropped (send buffer full), datagrams the receiver got.
- ``network-frame``: the goal — 64 universes of 3-channel RGB pixels (10,880 fixtures,
  32,640 channels) at 44 fps, the whole frame (pipeline + sACN send) under 25 % of the
  period: per-stage cost (medians over the frames, in a child process) for the image model
  (``iae-glyphs``: one picture for the rig) and the points model (``nat-aurora``: one
  latent stream per fixture), then a real-time run. ``bench/outputs.py --base REF`` (or
  ``--code DIR``) measures the same frames with another commit's code too, in alternating
  rounds, and prints the two side by side with the ratio (before -> after).
- ``ola-stream``: the same 64-universe stream through ``--output ola`` into a real olad that
  sends it on as sACN (its E1.31 plugin, 64 output ports), in a network namespace of the
  bench's own (root): CPU of olad and of our process at 44 fps, beside ``sacn``'s.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")     # as the daemon does (pi_app/__init__)
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PERIOD_S = 1 / 44

RECEIVER = r"""
import socket, sys, select
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
n = 0
while True:
    r, _, _ = select.select([s, sys.stdin], [], [])
    if sys.stdin in r:
        sys.stdin.readline()
        print(n, flush=True)
        n = 0
        continue
    while True:
        try:
            s.recv(2048, socket.MSG_DONTWAIT)
            n += 1
        except BlockingIOError:
            break
"""


class Receiver:
    """A datagram counter in its own process (its CPU is not ours)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", RECEIVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def count(self) -> int:
        """Datagrams since the last call (after a short settle)."""
        time.sleep(0.3)
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def make(kind: str, universes: list[int], port: int, sync: bool = True):
    import uuid

    if kind == "sacn":
        from pi_app.outputs.sacn import SacnConfig, SacnOutput
        return SacnOutput(universes, config=SacnConfig(unicast=("127.0.0.1",), port=port,
                                                       sync=sync, discovery=False),
                          cid=uuid.uuid4())
    if kind == "ddp":
        from pi_app.outputs.ddp import DdpConfig, DdpOutput
        return DdpOutput(universes, config=DdpConfig(destinations=(f"127.0.0.1:{port}",)))
    from pi_app.outputs.artnet import ArtNetConfig, ArtNetOutput
    return ArtNetOutput(universes, config=ArtNetConfig(nodes=("127.0.0.1",), port=port,
                                                       sync=sync, broadcast="127.0.0.1"))


def framesets(universes: list[int], n: int) -> list[dict[int, np.ndarray]]:
    rng = np.random.default_rng(0)
    flat = rng.integers(0, 256, (n, len(universes), 512), dtype=np.uint8)
    return [{u: flat[k, i] for i, u in enumerate(universes)} for k in range(n)]


def bench_protocol(kind: str, sizes: list[int], frames: int, seconds: float) -> None:
    from pi_app.clock import FrameClock

    rx = Receiver()
    try:
        for n in sizes:
            unis = list(range(1, n + 1))
            per_frame = -(-n * 512 // 1440) if kind == "ddp" else n + 1   # data (+ sync)
            fs = framesets(unis, 64)
            out = make(kind, unis, rx.port).open()
            rx.count()
            k = frames
            t0, c0 = time.perf_counter(), time.thread_time()
            for i in range(k):
                out.send(fs[i % 64])
            wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
            got = rx.count()
            # at 44 fps
            clock = FrameClock(44.0)
            end, sent, c1, worst = clock.start_s + seconds, 0, time.thread_time(), 0.0
            d0 = out.sender.dropped
            while time.monotonic() < end:
                i = clock.wait()
                t = time.perf_counter()
                out.send(fs[i % 64])
                worst = max(worst, time.perf_counter() - t)
                sent += 1
            cpu44 = time.thread_time() - c1
            got44 = rx.count()
            dropped = out.sender.dropped - d0
            out.close()
            print(f"{kind:6s} {n:3d} universes: sustained {k / wall:8,.0f} frames/s, CPU "
                  f"{cpu / k * 1e6:7.1f} µs/frame = {cpu / k / n * 1e6:5.2f} µs/universe "
                  f"(receiver got {got / (k * per_frame):.1%}); at 44 fps: {sent} frames, "
                  f"late {clock.late}, dropped {dropped}, got {got44}/{sent * per_frame}, CPU "
                  f"{cpu44 / seconds:.1%} of a core, worst send() {worst * 1e3:.2f} ms")
    finally:
        rx.close()


def bench_ddp_vs_sacn(sizes: list[int], frames: int, rounds: int = 5) -> None:
    """DDP against sACN (unicast, sync on) on the same frames, in alternating rounds: the
    sender's CPU per frame (median of the rounds), and what the receiver got."""
    rx = Receiver()
    try:
        print(f"{'universes':>9s} {'channels':>8s} {'sACN µs/frame':>14s} "
              f"{'DDP µs/frame':>13s} {'DDP/sACN':>8s}  packets sACN / DDP")
        for n in sizes:
            unis = list(range(1, n + 1))
            fs = framesets(unis, 64)
            outs = {k: make(k, unis, rx.port).open() for k in ("sacn", "ddp")}
            cost: dict[str, list[float]] = {"sacn": [], "ddp": []}
            got: dict[str, int] = {"sacn": 0, "ddp": 0}
            rx.count()
            for _ in range(rounds):
                for kind, out in outs.items():
                    c0 = time.thread_time()
                    for i in range(frames):
                        out.send(fs[i % 64])
                    cost[kind].append((time.thread_time() - c0) / frames)
                    got[kind] += rx.count()
            for out in outs.values():
                out.close()
            s_us, d_us = (float(np.median(cost[k])) * 1e6 for k in ("sacn", "ddp"))
            per = {"sacn": n + 1, "ddp": -(-n * 512 // 1440)}
            print(f"{n:9d} {n * 512:8d} {s_us:14.1f} {d_us:13.1f} {d_us / s_us:8.2f}  "
                  f"{per['sacn']} / {per['ddp']} a frame (receiver got "
                  f"{got['sacn'] / (rounds * frames * per['sacn']):.0%} / "
                  f"{got['ddp'] / (rounds * frames * per['ddp']):.0%})")
    finally:
        rx.close()


def bench_python_sacn(sizes: list[int], frames: int) -> None:
    """The same unicast stream through python-sacn's sender in manual-flush mode (the mode
    that sends on the caller's thread), for comparison. Bound to 127.0.0.1, so the sync
    packet it always multicasts stays on loopback."""
    try:
        import sacn.sending.sender_socket_udp as udp
        from sacn import sACNsender
    except ImportError:
        print("python-sacn: not installed (pip install sacn) — skipped")
        return
    rx = Receiver()
    try:
        udp.DEFAULT_PORT = rx.port                   # it sends to a fixed port
        for n in sizes:
            sender = sACNsender(bind_address="127.0.0.1", bind_port=0,
                                universeDiscovery=False)
            sender.manual_flush = True
            for u in range(1, n + 1):
                sender.activate_output(u)
                sender[u].multicast = False
                sender[u].destination = "127.0.0.1"
            fs = framesets(list(range(1, n + 1)), 8)
            k = max(20, frames // n)
            c0 = time.thread_time()
            for i in range(k):
                for u, f in fs[i % 8].items():
                    sender[u].dmx_data = tuple(f.tolist())
                sender.flush()
            cpu = (time.thread_time() - c0) / k
            sender.stop()
            print(f"python-sacn {n:3d} universes (manual flush): CPU {cpu * 1e6:7.1f} µs/frame = "
                  f"{cpu / n * 1e6:5.1f} µs/universe")
    finally:
        rx.close()


# -- the goal: a whole frame at 64 universes -------------------------------------------------
def pixel_rig(universes: int, model: str) -> str:
    """170 RGB pixels (3 channels) per universe, on a 100-wide grid of rig positions."""
    out = [f'model = "{model}"\nfps = 44\n[output]\nkind = "sacn"\n']
    n = 0
    for u in range(1, universes + 1):
        for k in range(170):
            x, y = (n % 100) / 99, min((n // 100) / 108, 1.0)
            out.append(f'[[fixtures]]\nname = "px{n}"\nprofile = "generic-rgb"\nmode = "3ch"\n'
                       f"universe = {u}\naddress = {k * 3 + 1}\nposition = [{x:.3f}, {y:.3f}]\n")
            n += 1
    return "".join(out)


STAGES = ("walk", "model", "mapper", "safety", "patch", "send (sacn)")


def frame_stages(universes: int, model: str, frames: int, port: int) -> dict:
    """Per-stage cost of the pixel rig's frame with whatever `pi_app` is importable: the
    median over `frames` frames (after 5 warm-up frames) of each stage, and of the whole."""
    from pi_app.config import parse_config
    from pi_app.pipeline import Pipeline
    from pi_app.runtime import load_model

    cfg = parse_config(pixel_rig(universes, model), "<pixels>")
    pipe = Pipeline(cfg, load_model(cfg.model), seed=1)
    src = pipe.source
    out = make("sacn", list(pipe.patch.universes), port).open()
    rate = 1 / (cfg.fps * cfg.walk.seconds_per_waypoint)
    rows = []
    for k in range(frames + 5):
        t = [time.perf_counter()]
        z = src.walk.at(k * rate)
        t.append(time.perf_counter())
        o = src.model.generate(z)
        t.append(time.perf_counter())
        raw = src.mapper(o)
        t.append(time.perf_counter())
        safe = pipe.safety(raw, k / cfg.fps)
        t.append(time.perf_counter())
        fr = pipe.patch.frames(safe)
        t.append(time.perf_counter())
        out.send(fr)
        t.append(time.perf_counter())
        if k >= 5:                                                # warm-up frames
            rows.append(np.diff(t))
    out.close()
    a = np.array(rows) * 1e3
    r = {name: float(np.median(a[:, j])) for j, name in enumerate(STAGES)}
    r["whole frame"] = float(np.median(a.sum(axis=1)))
    r["fixtures"] = len(cfg.fixtures)
    return r


def _stages_in(code: Path, universes: int, model: str, frames: int, port: int) -> dict:
    """`frame_stages` in a child process that imports `pi_app` from `code`."""
    env = {**os.environ, "PYTHONPATH": str(code), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, __file__, "--frame-child", str(code), str(universes),
                           model, str(frames), str(port)], env=env, capture_output=True,
                          text=True, timeout=900)
    if proc.returncode:
        raise SystemExit(f"network-frame in {code}: {proc.stderr[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def base_tree(ref: str, into: Path) -> Path:
    """A detached worktree of `ref` (a commit) at `into`, for `--base`."""
    subprocess.run(["git", "worktree", "add", "--detach", str(into), ref], cwd=ROOT,
                   check=True, capture_output=True)
    return into


def bench_frame(universes: int, frames: int, seconds: float, base: Path | None = None,
                base_name: str = "", rounds: int = 3,
                models: tuple[str, ...] = ("iae-glyphs", "nat-aurora")) -> None:
    """The goal's frame, per stage, in child processes; with `base` (another checkout) the
    same frames there too, `rounds` times alternately (the machine is shared: ratios within
    one run, medians over the rounds), then a real-time run of this checkout at 44 fps."""
    from pi_app.clock import FrameClock
    from pi_app.config import parse_config
    from pi_app.pipeline import Pipeline
    from pi_app.runtime import load_model

    period_ms = PERIOD_S * 1e3
    rx = Receiver()
    try:
        for model in models:
            n = max(10, frames // (4 if model.startswith("nat-") else 1))
            trees = [("this", ROOT)] + ([(base_name or "base", base)] if base else [])
            runs: dict[str, list[dict]] = {name: [] for name, _ in trees}
            for _ in range(rounds if base else 1):
                for name, tree in trees:
                    runs[name].append(_stages_in(tree, universes, model, n, rx.port))
            med = {name: {k: float(np.median([r[k] for r in rs])) for k in rs[0]}
                   for name, rs in runs.items()}
            fixtures = int(med["this"]["fixtures"])
            print(f"frame  {fixtures:,} RGB pixels in {universes} universes, {model}, 44 fps "
                  f"(period {PERIOD_S * 1e3:.1f} ms; median of {n} frames"
                  + (f", {rounds} rounds alternating" if base else "") + "):")
            head = "".join(f"{name:>22}" for name, _ in reversed(trees))
            print(f"         {'stage':<12}{head}" + ("   this/base" if base else ""))
            for stage in (*STAGES, "whole frame"):
                cells = "".join(f"{med[name][stage]:9.2f} ms {med[name][stage] / period_ms:7.1%}"
                                for name, _ in reversed(trees))
                ratio = (f"   {med['this'][stage] / max(med[trees[1][0]][stage], 1e-9):9.2f}x"
                         if base else "")
                print(f"         {stage:<12}{cells}{ratio}")
            for name, _ in trees:
                whole = med[name]["whole frame"]
                verdict = "met" if whole < 0.25 * period_ms else "NOT met"
                print(f"         {name}: whole frame {whole:.2f} ms = {whole / period_ms:.1%} of "
                      f"the period (goal < 25 %: {verdict})")
            if med["this"]["whole frame"] < period_ms:    # real time if it can keep up
                cfg = parse_config(pixel_rig(universes, model), "<pixels>")
                pipe = Pipeline(cfg, load_model(cfg.model), seed=1)
                out = make("sacn", list(pipe.patch.universes), rx.port).open()
                clock = FrameClock(44.0)
                end, frames44, c0 = clock.start_s + seconds, 0, time.process_time()
                d0 = out.sender.dropped
                while time.monotonic() < end:
                    k = clock.wait()
                    out.send(pipe.frames(k / 44))
                    frames44 += 1
                cpu = time.process_time() - c0
                print(f"         this at 44 fps for {seconds:g} s: {frames44} frames, late "
                      f"{clock.late}, dropped {out.sender.dropped - d0}, CPU {cpu / seconds:.0%} "
                      f"of a core (all threads)")
                out.close()
    finally:
        rx.close()


# -- olad's CPU for the same stream ------------------------------------------------------------
def bench_ola_stream(universes: int, seconds: float) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from netns import Lan, lan_missing_reason
    from olad_fixture import Olad, olad_missing_reason

    reason = lan_missing_reason() or olad_missing_reason()
    if reason:
        print(f"ola-stream: skipped ({reason})")
        return
    with Lan() as lan:
        patch = {f"11-1-O-{i}": i + 1 for i in range(universes)}
        daemon = Olad(plugins={"e131": {"ip": "10.77.0.1", "output_ports": str(universes),
                                        "input_ports": "0"}}, patch=patch, netns=lan.lights)
        daemon.start()
        try:
            # Our side runs inside the namespace too (olad's RPC port is there).
            proc = lan.lights.run([sys.executable, __file__, "--ola-child", str(universes),
                                   str(seconds), str(daemon.proc.pid)],
                                  env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
            if proc.returncode:
                print(f"ola-stream: failed: {proc.stderr[-500:]}")
                return
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"ola    {universes:3d} universes at 44 fps through olad (its E1.31 plugin "
                  f"sends them on): {r['frames']} frames, late {r['late']}, dropped "
                  f"{r['dropped']}; CPU: olad {r['olad_cpu']:.1%} of a core + LatentDMX "
                  f"{r['our_cpu']:.1%} = {r['olad_cpu'] + r['our_cpu']:.1%}")
        finally:
            daemon.cleanup()


def _ola_child(universes: int, seconds: float, olad_pid: int) -> None:
    from pi_app.clock import FrameClock
    from pi_app.outputs.ola import OlaConfig, OlaOutput

    def olad_cpu() -> float:
        f = Path(f"/proc/{olad_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    unis = list(range(1, universes + 1))
    fs = framesets(unis, 64)
    out = OlaOutput(unis, config=OlaConfig(port=9010)).open()
    time.sleep(1.0)
    clock = FrameClock(44.0)
    end, n = clock.start_s + seconds, 0
    o0, c0 = olad_cpu(), time.process_time()
    while time.monotonic() < end:
        k = clock.wait()
        out.send(fs[k % 64])
        n += 1
    o1, c1 = olad_cpu(), time.process_time()
    h = out.health()
    out.close()
    print(json.dumps({"frames": n, "late": clock.late, "dropped": h["dropped"],
                      "olad_cpu": (o1 - o0) / seconds, "our_cpu": (c1 - c0) / seconds}))


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--ola-child":
    sys.path.insert(0, str(ROOT))
    _ola_child(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
elif __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--frame-child":
    sys.path.insert(0, sys.argv[2])            # that checkout's pi_app
    print(json.dumps(frame_stages(int(sys.argv[3]), sys.argv[4], int(sys.argv[5]),
                                  int(sys.argv[6]))))
