"""How long `latentdmx safety-check` takes, and how much memory, on a long recording.

    python bench/recordings.py [--size-mb 110] [--file SHOW] [--repo OTHER_CHECKOUT] [--keep]

Makes (or takes, ``--file``) an ``ola_recorder`` show of the demo rig's own show, about
``--size-mb`` MB (110 MB = about 95 000 frames, 40 minutes at 40 fps; made with `latentdmx
run --record` on virtual time), then runs, each in a fresh process, ``safety-check FILE
--raw`` and ``safety-check FILE`` (the demo rig) and prints for each the wall time and the peak
resident memory of that process (``ru_maxrss`` of its own child only). ``--repo`` runs another
checkout's `latentdmx` on the same file, e.g. the code before the streaming reader::

    git worktree add /tmp/old 58fc28d && python bench/recordings.py --repo /tmp/old --keep

The machine is shared: compare figures from one run, and repeat.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MEASURE = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
dt = time.perf_counter() - t0
rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
err = r.stderr.decode(errors='replace')[-300:].replace(chr(10), ' | ')
print(f"{dt:.2f} {rss_kb} {r.returncode} {err}")
"""


def make_recording(path: Path, size_mb: float) -> None:
    """The demo show recorded on virtual time, long enough for about `size_mb` MB."""
    probe = path.with_suffix(".probe")
    env = dict(os.environ, LATENTDMX_FAKE_CLOCK="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "pi_app.cli", "run", "--duration", "20", "--record", str(probe)]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    per_s = probe.stat().st_size / 20.0
    probe.unlink()
    seconds = max(1.0, size_mb * 1e6 / per_s)
    cmd[cmd.index("20")] = f"{seconds:.0f}"
    cmd[-1] = str(path)
    print(f"making {path} ({size_mb:g} MB, {seconds:.0f} s of show) ...", flush=True)
    subprocess.run(cmd, env=env, check=True, capture_output=True)


def measure(repo: Path, args: list[str]) -> tuple[float, float, int, str]:
    env = dict(os.environ, PYTHONPATH=str(repo))
    out = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "pi_app.cli",
                          *args], env=env, capture_output=True, text=True, cwd=repo).stdout
    secs, rss_kb, code, err = out.split(" ", 3)
    return float(secs), int(rss_kb) / 1024.0, int(code), err.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=float, default=110.0)
    ap.add_argument("--file", type=Path, help="an existing show file to check")
    ap.add_argument("--repo", type=Path, action="append", default=[],
                    help="also run this checkout's latentdmx (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the made recording")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="latentdmx-bench-"))
    try:
        path = a.file or tmp / "long.show"
        if a.file is None:
            t0 = time.perf_counter()
            make_recording(path, a.size_mb)
            print(f"made in {time.perf_counter() - t0:.0f} s")
        size = path.stat().st_size / 1e6
        print(f"\nrecording: {path} ({size:.0f} MB)\n")
        print(f"{'checkout':<28} {'check':<22} {'time':>8} {'peak RSS':>10}  exit")
        for repo in [ROOT, *a.repo]:
            for label, args in (("--raw", ["safety-check", str(path), "--raw"]),
                                ("demo rig", ["safety-check", str(path)])):
                secs, rss, code, err = measure(repo.resolve(), args)
                extra = f"  ({err[:120]})" if code not in (0, 1) else ""
                print(f"{str(repo)[-28:]:<28} {label:<22} {secs:>7.1f}s {rss:>8.0f} MB"
                      f"  {code}{extra}", flush=True)
        if a.keep and a.file is None:
            kept = Path(tempfile.gettempdir()) / "latentdmx-bench-long.show"
            shutil.move(str(path), kept)
            print(f"\nkept: {kept} (use --file {kept})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
