"""A slow core: real `latentdmx run` shows under a CPU quota standing in for a slow Pi.

    sudo python bench/slow_core.py [--seconds 60] [--rigs demo,pars512,pars1024]
                                   [--quotas 10,25] [--period-ms 100] [--reruns 1]
                                   [--skip-error] [--skip-shows] [--checkout DIR]

Each show is ``latentdmx run --output sim --duration SECONDS`` (the simulator: no output
to wait for), in real time, in a cgroup of its own whose CPU quota is a share of one core:
cgroup v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, with ``cpuacct`` for its usage) or
v2 (``cpu.max``). 10 % of one core stands in for a Pi Zero 2 W, 25 % for a core of a Pi 4.
Needs root (to make cgroups). Printed per rig and quota:

- late frames (the show's own count: frames whose deadline had passed by a period, skipped);
- time to the first frame (from starting the process to its "playing ..." log line, which
  is logged once the first frame is out);
- the cgroup's CPU use and throttled time; and the show's threads' run-queue wait
  (``/proc/PID/task/*/schedstat``) minus the throttled time: waiting for a CPU that other
  programs held (this machine is shared). The show's cgroup is pinned to one CPU (cpuset:
  a quota spread over two CPUs strands its 5-ms slices on one of them and throttles the
  show below its share) and has the most CPU weight there is (a slow Pi has its core to
  itself; capped by the quota, it takes no more than that from the others). A run with
  late frames and contention above `CONTENDED_S` is run again (``--reruns``), and every
  attempt is printed;
- the machine's load (``/proc/loadavg``) and the busy share of its CPUs over the run.

Then:

- flashes/s, the most of any fixture and of the rig, of the same shows rendered on virtual
  time (``LATENTDMX_FAKE_CLOCK=1 ... --record``): a recording's text written in the frame
  loop would cost the show more than the quota shows can spare, and with no late frame the
  real-time show is that show, frame for frame;
- the key-frame error (`pi_app.keys`): every bundled model on the demo rig and on 1,024
  pars, the show's frames with the model at key frames against every frame evaluated, over
  ``--error-s`` seconds of show time at a fast tempo: the largest channel difference in
  8-bit steps (pan/tilt in 16-bit steps too) and the largest aim difference in degrees;
- the 1,024-par show's CPU on this machine without a quota: user + system time of all its
  threads over ``--cpu-s`` seconds after a warm-up, as a share of one core.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rigs import LABELS, rig_toml

CORE = 1                   # the quota's show runs on this CPU alone (cpuset)
CONTENDED_S = 0.5          # run-queue wait beyond the quota's throttling: a contended run
GOALS = {("demo", 10): 0.0, ("pars512", 10): 0.0, ("pars1024", 10): 0.01,
         ("pars1024", 25): 0.0}
FIRST_FRAME_GOAL_S = 5.0
FLASH_GOAL = 3.0
CPU_GOAL = 0.04


# -- cgroups --------------------------------------------------------------------------------
class CGroup:
    """A cgroup with a CPU quota of `share` of one core (v1 or v2), removed on `close`."""

    def __init__(self, name: str, share: float | None, period_us: int) -> None:
        self.v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
        self.dirs: list[Path] = []
        if self.v2:
            root = Path("/sys/fs/cgroup")
            with contextlib.suppress(OSError):
                (root / "cgroup.subtree_control").write_text("+cpu")
            d = root / name
            d.mkdir(exist_ok=True)
            self.dirs = [d]
            quota = "max" if share is None else str(int(share * period_us))
            (d / "cpu.max").write_text(f"{quota} {period_us}")
            (d / "cpu.weight").write_text("10000")          # see below
            with contextlib.suppress(OSError):             # one core (see below)
                (root / "cgroup.subtree_control").write_text("+cpuset")
                (d / "cpuset.cpus").write_text(str(CORE))
        else:
            cpu, acct = Path("/sys/fs/cgroup/cpu") / name, Path("/sys/fs/cgroup/cpuacct") / name
            cpuset = Path("/sys/fs/cgroup/cpuset") / name
            for d in (cpu, acct, cpuset):
                if d.parent.is_dir() and d not in self.dirs:
                    d.mkdir(exist_ok=True)
                    self.dirs.append(d)
            if cpuset in self.dirs:              # one core, as the quota's share is of one
                (cpuset / "cpuset.mems").write_text(
                    (cpuset.parent / "cpuset.mems").read_text().strip())
                (cpuset / "cpuset.cpus").write_text(str(CORE))
            (cpu / "cpu.cfs_period_us").write_text(str(period_us))
            (cpu / "cpu.cfs_quota_us").write_text(
                "-1" if share is None else str(int(share * period_us)))
            # the most weight there is: a slow Pi has its core to itself, so the show gets
            # its quota first when other programs of this shared machine want the CPUs too
            # (capped by the quota, it takes no more than that from them)
            (cpu / "cpu.shares").write_text("262144")

    def join(self) -> None:
        """Put the calling process in (a child's `preexec_fn`)."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def stats(self) -> dict[str, float]:
        """usage_s, throttled_s, periods, throttled_periods."""
        out: dict[str, float] = {}
        d = self.dirs[0]
        stat = dict(line.split() for line in (d / "cpu.stat").read_text().splitlines()
                    if len(line.split()) == 2)
        if self.v2:
            out["usage_s"] = int(stat["usage_usec"]) / 1e6
            out["throttled_s"] = int(stat.get("throttled_usec", 0)) / 1e6
        else:
            acct = next((x for x in self.dirs if "cpuacct" in str(x)), None)
            out["usage_s"] = int((acct / "cpuacct.usage").read_text()) / 1e9 if acct else 0.0
            out["throttled_s"] = int(stat.get("throttled_time", 0)) / 1e9
        out["periods"] = int(stat.get("nr_periods", 0))
        out["throttled_periods"] = int(stat.get("nr_throttled", 0))
        return out

    def close(self) -> None:
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot (/proc/stat)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]
    return sum(f) - idle, sum(f)


def sched_wait_s(pid: int) -> float:
    """Run-queue wait of all of `pid`'s threads so far (seconds)."""
    total = 0
    for t in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((t / "schedstat").read_text().split()[1])
    return total / 1e9


def proc_cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


# -- one show ------------------------------------------------------------------------------
class Run:
    """``latentdmx run`` of a rig, its stderr read line by line with the time of each."""

    def __init__(self, tmp: Path, rig: str, seconds: float, *, group: CGroup | None = None,
                 fake: bool = False, record: Path | None = None) -> None:
        path = tmp / f"{rig}.toml"
        path.write_text(rig_toml(rig, output="sim"))
        (tmp / "run").mkdir(exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_RUNTIME_DIR=str(tmp / "run"),
                   XDG_CONFIG_HOME=str(tmp / "config"), XDG_DATA_HOME=str(tmp / "data"),
                   LATENTDMX_SYSTEM_DIR=str(tmp / "system"), OPENBLAS_NUM_THREADS="1")
        if fake:
            env["LATENTDMX_FAKE_CLOCK"] = "1"
        cmd = [sys.executable, "-m", "pi_app.cli", "run", "--config", str(path),
               "--duration", f"{seconds:g}"]
        if record is not None:
            cmd += ["--record", str(record)]
        self.lines: list[tuple[float, str]] = []
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True,
                                     preexec_fn=group.join if group else None)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.monotonic() - self.t0, line.rstrip()))

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def first_frame_s(self) -> float | None:
        return next((t for t, line in self.lines if " playing " in f" {line}"), None)

    def frames_late(self) -> tuple[int, int]:
        for _, line in reversed(self.lines):
            m = re.search(r"stopped after (\d+) frames \((\d+) late\)", line)
            if m:
                return int(m[1]), int(m[2])
        raise RuntimeError("no 'stopped after' line:\n" + "\n".join(x for _, x in self.lines))

    def log_lines(self, word: str) -> list[str]:
        return [line for _, line in self.lines if word in line]


def quota_show(tmp: Path, rig: str, share: float, seconds: float, period_us: int) -> dict:
    name = f"latentdmx-slow-{os.getpid()}-{rig}-{int(share * 100)}"
    group = CGroup(name, share, period_us)
    load0, (b0, t0) = os.getloadavg()[0], busy_jiffies()
    try:
        run = Run(tmp, rig, seconds, group=group)
        wait = 0.0
        while run.proc.poll() is None:
            with contextlib.suppress(OSError):
                wait = sched_wait_s(run.proc.pid)
            time.sleep(0.5)
        run.wait(30)
        st = group.stats()
    finally:
        group.close()
    b1, t1 = busy_jiffies()
    frames, late = run.frames_late()
    load1 = os.getloadavg()[0]
    return {"rig": rig, "share": share, "frames": frames, "late": late,
            "first_s": run.first_frame_s(), "usage_s": st["usage_s"],
            "throttled_s": st["throttled_s"], "wait_s": wait,
            "contended_s": max(0.0, wait - st["throttled_s"]),
            "load": max(load0, load1), "busy": (b1 - b0) / max(1, t1 - t0),
            "rate_lines": run.log_lines("too slow for the model"),
            "wall_s": time.monotonic() - run.t0}


def flashes(tmp: Path, rig: str, seconds: float) -> tuple[float, float]:
    """(most flashes/s of any fixture, of the rig) of the show rendered on virtual time."""
    import numpy as np

    from pi_app.config import load_config
    from pi_app.safety_check import check_frames
    from pi_app.sim.record import read_show

    rec = tmp / f"{rig}-fake.show"
    run = Run(tmp, rig, seconds, fake=True, record=rec)
    if run.wait(600) != 0:
        raise RuntimeError("\n".join(x for _, x in run.lines))
    frames, universes, times = read_show(rec)
    cfg = load_config(tmp / f"{rig}.toml")
    rep = check_frames(frames, universes, np.asarray(times), cfg, path=str(rec))
    worst = max((r.flashes_per_s for r in rep.rows), default=0.0)
    rec.unlink()
    return worst, rep.rig.flashes_per_s


def cpu_share(tmp: Path, rig: str, warm_s: float, seconds: float) -> float:
    """The show's CPU (all threads) over `seconds` after `warm_s`, as a share of one core."""
    run = Run(tmp, rig, warm_s + seconds + 5)
    time.sleep(warm_s)
    c0, w0 = proc_cpu_s(run.proc.pid), time.monotonic()
    time.sleep(seconds)
    c1, w1 = proc_cpu_s(run.proc.pid), time.monotonic()
    run.proc.terminate()
    run.wait(30)
    return (c1 - c0) / (w1 - w0)


# -- the key-frame error -------------------------------------------------------------------
def key_error(rig: str, model_name: str, seconds: float, tempo: float,
              everies: tuple[int, ...] = (2, 4, 8)) -> dict[int, tuple[int, float]]:
    """{every: (largest DMX byte difference, largest aim difference in degrees)} of the show
    with the model at key frames `every` frames apart against the model at every frame,
    over `seconds` of show time at `tempo` (the whole pipeline: safety, patch)."""
    import numpy as np

    from pi_app.config import load_config
    from pi_app.pipeline import Pipeline
    from pi_app.runtime import load_model
    from pi_app.scene import PAN, TILT

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "rig.toml"
        path.write_text(rig_toml(rig, model=model_name))
        cfg = load_config(path)
    model = load_model(cfg.model)
    ref = Pipeline(cfg, model)
    pipes = {}
    for every in everies:
        pipes[every] = p = Pipeline(cfg, model)
        while p.model_every < every:
            p.lower_model_rate()
    deg = np.array([[f.profile.pan_deg, f.profile.tilt_deg] for f in ref.patch.fixtures],
                   np.float32)
    worst = {e: (0, 0.0) for e in everies}
    for p in (ref, *pipes.values()):
        p.set_tempo(tempo, 0.0)
    for k in range(int(seconds * cfg.fps)):
        t = k / cfg.fps
        want = {u: f.astype(np.int16) for u, f in ref.frames(t).items()}
        aim = ref.scene[:, PAN:TILT + 1] * deg
        for e, p in pipes.items():
            got = p.frames(t)
            byte = max(int(np.abs(got[u].astype(np.int16) - want[u]).max()) for u in want)
            off = float(np.abs(p.scene[:, PAN:TILT + 1] * deg - aim).max())
            worst[e] = (max(worst[e][0], byte), max(worst[e][1], off))
    return worst


def key_errors(seconds: float, tempo: float) -> list[str]:
    from pi_app.runtime import list_models

    out = []
    for rig, secs in (("demo", seconds), ("pars1024", seconds / 4)):
        for name, _ in list_models():
            w = key_error(rig, name, secs, tempo)
            cells = "  ".join(f"every {e}: {b:3d} steps {a:6.2f} deg "
                              f"{'ok' if b < 1 and a < 0.1 else 'OVER'}"
                              for e, (b, a) in w.items())
            out.append(f"  {LABELS[rig][:24]:24s} {name:11s} {secs:4.0f} s  {cells}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rigs", default="demo,pars512,pars1024")
    ap.add_argument("--quotas", default="10,25")
    ap.add_argument("--period-ms", type=float, default=100.0)
    ap.add_argument("--reruns", type=int, default=1)
    ap.add_argument("--cpu-s", type=float, default=20.0)
    ap.add_argument("--error-s", type=float, default=120.0)
    ap.add_argument("--tempo", type=float, default=1.7)
    ap.add_argument("--skip-error", action="store_true")
    ap.add_argument("--skip-shows", action="store_true")
    ap.add_argument("--checkout", type=Path, help="play the shows of another checkout "
                    "(e.g. `git archive main | tar -x -C /tmp/main`), for a before/after")
    a = ap.parse_args()
    if a.checkout is not None:
        global ROOT
        ROOT = a.checkout.resolve()
    print(f"slow core: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, cgroup "
          f"{'v2' if Path('/sys/fs/cgroup/cgroup.controllers').exists() else 'v1'}, "
          f"quota period {a.period_ms:g} ms", flush=True)
    rigs = a.rigs.split(",")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not a.skip_shows:
            print(f"\nshows of {a.seconds:g} s, real time, simulator output:", flush=True)
            for q in [float(x) for x in a.quotas.split(",")]:
                for rig in rigs:
                    if (rig == "demo" and q > 10) or (rig == "pars512" and q > 10):
                        continue                 # fine at 10 %: fine at 25 %
                    for _attempt in range(a.reruns + 1):
                        r = quota_show(tmp, rig, q / 100, a.seconds, int(a.period_ms * 1000))
                        goal = GOALS.get((rig, int(q)))
                        ok = goal is None or r["late"] <= goal * r["frames"]
                        first = "-" if r["first_s"] is None else f"{r['first_s']:.1f} s"
                        due = r["frames"]           # frames due (the late ones among them)
                        print(f"  {LABELS[rig]:32s} {q:4.0f} %  late {r['late']:4d} of "
                              f"{due:5d} ({r['late'] / max(1, due):6.2%})"
                              f"  first frame {first:>7s}  cpu {r['usage_s']:5.1f} s "
                              f"throttled {r['throttled_s']:5.1f} s  contended "
                              f"{r['contended_s']:5.1f} s  load {r['load']:4.1f} busy "
                              f"{r['busy']:4.0%}  {'ok' if ok else 'OVER'}", flush=True)
                        for line in r["rate_lines"]:
                            print(f"      log: {line}")
                        if ok or r["contended_s"] < CONTENDED_S:
                            break
                        if _attempt < a.reruns:
                            print("      contended: again", flush=True)
            print("\nflashes/s (virtual-time render of the same shows; limit 3):")
            for rig in rigs:
                fx, rg = flashes(tmp, rig, a.seconds)
                print(f"  {LABELS[rig]:32s} fixture max {fx:4.1f}  rig {rg:4.1f}  "
                      f"{'ok' if max(fx, rg) <= FLASH_GOAL else 'OVER'}", flush=True)
            share = cpu_share(tmp, "pars1024", 5.0, a.cpu_s)
            print(f"\n1,024 pars, no quota, this machine: {share:.1%} of a core over "
                  f"{a.cpu_s:g} s (goal <= {CPU_GOAL:.0%}); load {os.getloadavg()[0]:.1f}",
                  flush=True)
    if not a.skip_error:
        print(f"\nkey-frame error against every frame evaluated, {a.error_s:g} s of show "
              f"time at tempo {a.tempo:g} (goal < 1 step, < 0.1 deg):", flush=True)
        for line in key_errors(a.error_s, a.tempo):
            print(line, flush=True)


if __name__ == "__main__":
    main()
