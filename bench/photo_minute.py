"""Your own picture in a minute: `latentdmx train nat --image PICTURE --minutes 1` with the
defaults, then the card's figures, and how loaded the machine was (load averages before and
after; the goal is measured on a shared 2-core machine).

    python bench/photo_minute.py                          # the bundled nat-retina photograph
    python bench/photo_minute.py my.jpg --minutes 1       # any picture

Goal (issue 16): >= 90 % of the Gaussian-to-floor gap closed (sliced Wasserstein) and an
off-target share <= 2x the floor's, in <= 60 s of training.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("picture", nargs="?", default=str(HERE / "models/nat-retina/target.jpg"))
    ap.add_argument("--minutes", type=float, default=1.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model"
        before = os.getloadavg()
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "pi_app.cli", "train", "nat", "--image",
                        args.picture, "--out", str(out), "--minutes", str(args.minutes)],
                       check=True, cwd=HERE, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wall = time.monotonic() - t0
        after = os.getloadavg()
        doc = json.loads((out / "model.json").read_text())
    q, tr = doc["quality"], doc["recipe"]["trained"]
    print(f"picture {args.picture}")
    print(f"training {tr['train_seconds']} s ({tr['steps']} steps), whole command {wall:.0f} s "
          "(with the quality measurement)")
    print(f"gap closed (sliced Wasserstein) {100 * q['sw_gap_closed']:.0f} %, energy "
          f"{100 * q['ed_gap_closed']:.0f} %; off-target {100 * q['off_model']:.1f} % vs floor "
          f"{100 * q['off_floor']:.1f} % = {q['off_ratio_to_floor']:.2f}x")
    print(f"goal met: {q['sw_gap_closed'] >= 0.9 and q['off_ratio_to_floor'] <= 2.0}")
    print(f"load average before {before[0]:.2f} {before[1]:.2f}, after {after[0]:.2f} "
          f"{after[1]:.2f} (2 cores)")


if __name__ == "__main__":
    main()
