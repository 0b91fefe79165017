"""Does this checkout play the very same shows as another commit? Byte for byte.

    python scripts/same_show.py [--base REF] [--quick]

Records shows with `latentdmx run --record` on virtual time (``LATENTDMX_FAKE_CLOCK=1``, the
simulator) in a detached worktree of REF (default: the commit this branch left main at,
``git merge-base HEAD main``) and in this checkout, for several models, seeds and rigs, and
compares the recordings byte for byte. Prints one line per show and exits 1 if any differs.

It is the check that a speed-up changed no frame: run it before merging work that touches the
frame path (walk, model, mapper, looks, moves, safety, patch, show loop).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

# (rig, model, seed, seconds): several models and seeds, the bundled rig and larger ones;
# long enough to cross several waypoints (6 s each) and the guarded walk's look ahead.
SHOWS = [
    ("demo", "nat-aurora", 0, 40), ("demo", "nat-aurora", 7, 40),
    ("demo", "nat-retina", 3, 30), ("demo", "nat-neon", 11, 30),
    ("demo", "iae-glyphs", 0, 30), ("demo", "iae-blobs", 5, 30),
    ("pars512", "nat-aurora", 2, 20), ("heads288", "nat-aurora", 4, 15),
    ("heads288", "iae-glyphs", 1, 15),
]
QUICK = [*[s for s in SHOWS if s[0] == "demo"][:4], ("pars512", "nat-aurora", 2, 8)]


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def record(tree: Path, rig_file: Path, model: str, seed: int, seconds: float,
           out: Path, tmp: Path) -> bytes:
    env = dict(os.environ, LATENTDMX_FAKE_CLOCK="1", XDG_RUNTIME_DIR=str(tmp),
               PYTHONPATH=str(tree), OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "pi_app.cli", "run", "--config", str(rig_file),
                           "--model", model, "--seed", str(seed), "--duration", str(seconds),
                           "--record", str(out)], cwd=tree, env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: run failed:\n{proc.stderr[-2000:]}")
    return out.read_bytes()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", help="the commit to compare with (default: merge-base with main)")
    ap.add_argument("--quick", action="store_true", help="fewer, shorter shows")
    a = ap.parse_args()
    from rigs import rig_toml

    base = a.base or git("merge-base", "HEAD", "main")
    base_sha = git("rev-parse", "--short", base)
    shows = QUICK if a.quick else SHOWS
    failed = 0
    with tempfile.TemporaryDirectory(prefix="latentdmx-same-") as tmp_s:
        tmp = Path(tmp_s)
        old = tmp / "base"
        git("worktree", "add", "--detach", str(old), base)
        try:
            dirty = ", with uncommitted changes" if git("status", "--porcelain",
                                                          "--untracked-files=no") else ""
            print(f"comparing recordings: {base_sha} (base) vs this checkout "
                  f"({git('rev-parse', '--short', 'HEAD')}{dirty})")
            for rig, model, seed, seconds in shows:
                rig_file = tmp / f"{rig}.toml"
                rig_file.write_text(rig_toml(rig))
                a_bytes = record(old, rig_file, model, seed, seconds, tmp / "a.txt", tmp)
                b_bytes = record(ROOT, rig_file, model, seed, seconds, tmp / "b.txt", tmp)
                same = a_bytes == b_bytes
                failed += not same
                digest = hashlib.sha256(b_bytes).hexdigest()[:12]
                print(f"  {'same' if same else 'DIFFERENT':<9} {rig:<9} {model:<11} seed "
                      f"{seed:<3} {seconds:>3} s  {len(b_bytes):>10,} bytes  sha256 {digest}")
        finally:
            git("worktree", "remove", "--force", str(old))
    print("all recordings byte-identical" if not failed else f"{failed} recording(s) differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
