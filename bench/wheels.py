"""Per-frame cost of the colour-wheel stage (`pi_app.wheels`) next to the whole pipeline.

    python bench/wheels.py [--fixtures N] [--frames N]

A rig of N Stairville B5R beams (qlcplus-data's file, imported into a private config home):
each has a colour wheel the show turns while the head is dark. Prints µs per frame of the
whole pipeline with the wheels, of the same frames with the wheel stage left out, and the
difference per wheel.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
B5R = Path("/usr/share/qlcplus/fixtures/Stairville/Stairville-Beam-Moving-Head-B5R.qxf")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", type=int, default=32)
    ap.add_argument("--frames", type=int, default=4000)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="latentdmx-bench-wheels-")
    os.environ["XDG_CONFIG_HOME"] = home
    subprocess.run([sys.executable, "-m", "pi_app.cli", "fixtures", "import", str(B5R)],
                   check=True, capture_output=True, cwd=ROOT)
    from pi_app.config import parse_config
    from pi_app.pipeline import Pipeline
    from pi_app.runtime import load_model

    per_u = 512 // 16
    rig = "fps = 40\n" + "".join(
        f'[[fixtures]]\nname = "b{i}"\nprofile = "stairville-beam-moving-head-b5r"\n'
        f'mode = "16-channel"\nuniverse = {1 + i // per_u}\naddress = {1 + 16 * (i % per_u)}\n'
        f'position = [{(i % 8) / 8 + 0.05:.3f}, {(i // 8) / 8 + 0.05:.3f}]\n'
        for i in range(args.fixtures))
    cfg = parse_config(rig, "bench.toml")
    out = {}
    for label in ("with wheels", "wheels left out"):
        pipe = Pipeline(cfg, load_model(cfg.model), seed=1)
        if label != "with wheels":
            pipe.wheels = None
        for k in range(200):
            pipe.frames(k / cfg.fps)
        t0 = time.perf_counter()
        for k in range(200, 200 + args.frames):
            pipe.frames(k / cfg.fps)
        out[label] = (time.perf_counter() - t0) / args.frames * 1e6
        print(f"{args.fixtures} B5R, {label}: {out[label]:.1f} µs a frame "
              f"({out[label] / 25000 * 100:.2f} % of the 40 fps period)")
    # the stage alone, worst case: every head dark, so every wheel looks for its slot
    import numpy as np

    from pi_app.scene import empty_scene
    pipe = Pipeline(cfg, load_model(cfg.model), seed=1)
    assert pipe.wheels is not None
    frames = pipe.patch.frames(empty_scene(args.fixtures))
    colour = np.random.default_rng(1).random((args.fixtures, 4)).astype(np.float32)
    state = pipe.wheels.state()
    t0 = time.perf_counter()
    for _ in range(args.frames):
        pipe.wheels.write(frames, colour, state)
    alone = (time.perf_counter() - t0) / args.frames * 1e6
    print(f"the wheel stage alone, every head dark: {alone:.1f} µs a frame, "
          f"{alone / args.fixtures:.2f} µs a wheel")


if __name__ == "__main__":
    main()
