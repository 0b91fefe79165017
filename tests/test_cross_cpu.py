"""Lockstep across CPU types: one fixed-seed show recorded on this machine (x86-64) and on an
emulated 64-bit Pi (a Debian bookworm arm64 root under qemu-user, `scripts/pi-emulate.sh`),
compared frame by frame.

docs/lockstep.md ("Across CPU types") promises what a group of mixed machines may differ in:
nothing but a 16-bit pan or tilt value by one step (1/65535 of the range), in a few frames;
every 8-bit channel and every other frame byte for byte the same. This test holds the promise
on x86 against the arm64 root with OpenBLAS's kernels for several Pi CPUs
(``OPENBLAS_CORETYPE``: the generic ARMv8 one, the Pi 3's Cortex-A53, the Pi 4's A72, the
Pi 5's A76 family, which OpenBLAS runs with its Neoverse N1 kernels), and that each CPU type
repeats its own bytes exactly.

qemu computes every IEEE operation exactly as the hardware does (fused multiply-add
included), so the arm64 root's numbers are a real Pi's for the same NumPy and kernel; what it
cannot show is timing. Skipped, with the reason, when the root is not built (it is not in CI:
the first build takes about 50 minutes).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from emulated_pi import REPO, VENV_PY, missing_reason, run_in_root

from pi_app.config import load_config
from pi_app.patch import Patch
from pi_app.sim.record import read_show

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(missing_reason("arm64") is not None,
                                 reason=missing_reason("arm64") or "")]

# 2,402 frames at 40 fps: the show of docs/lockstep.md's figures (shorter: quicker, weaker)
SECONDS = float(os.environ.get("LATENTDMX_CROSS_CPU_SECONDS", "60"))
# OpenBLAS's kernels for: any ARMv8, the Pi 3 / Zero 2 W, the Pi 4, the Pi 5 (A76 family)
CORES = ["ARMV8", "CORTEXA53", "CORTEXA72", "NEOVERSEN1"]
SHOWS = [*(("nat-aurora", 0, core) for core in CORES), ("iae-glyphs", 1, "ARMV8")]


def _run_args(model: str, seed: int, out: str) -> list[str]:
    return ["-m", "pi_app.cli", "run", "--output", "sim", "--model", model, "--seed", str(seed),
            "--duration", str(SECONDS), "--record", out]


def record_here(model: str, seed: int, tmp: Path) -> np.ndarray:
    out = tmp / f"x86-{model}.txt"
    env = dict(os.environ, LATENTDMX_FAKE_CLOCK="1", XDG_RUNTIME_DIR=str(tmp),
               OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, *_run_args(model, seed, str(out))], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return read_show(out)[0]


def record_arm64(model: str, seed: int, tmp: Path, core: str) -> np.ndarray:
    name = f"arm64-{core}-{model}.txt"
    proc = run_in_root("arm64", [VENV_PY, *_run_args(model, seed, f"/mnt/out/{name}")], tmp,
                       env={"LATENTDMX_FAKE_CLOCK": "1", "OPENBLAS_CORETYPE": core})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return read_show(tmp / name)[0]


def sixteen_bit_pairs() -> tuple[np.ndarray, np.ndarray]:
    """The demo rig's 16-bit pan/tilt pairs as (coarse, fine) flat slot indices of a frame."""
    patch = Patch(load_config(None))
    where = {u: k for k, u in enumerate(patch.universes)}
    slots = patch.slot_map()
    by = {(u, f, attr): (where[u] * 512 + s - 1) for (u, s), (f, attr) in slots.items()}
    coarse, fine = [], []
    for (u, f, attr), k in by.items():
        if attr in ("pan_fine", "tilt_fine"):
            coarse.append(by[(u, f, attr[:-5])])
            fine.append(k)
    return np.array(coarse, np.intp), np.array(fine, np.intp)


def differences(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int]:
    """(frames that differ, the largest 16-bit pan/tilt difference, 8-bit slot values that
    differ outside the 16-bit pairs)."""
    assert a.shape == b.shape
    a, b = a.reshape(len(a), -1).astype(np.int64), b.reshape(len(b), -1).astype(np.int64)
    coarse, fine = sixteen_bit_pairs()
    v16a, v16b = a[:, coarse] * 256 + a[:, fine], b[:, coarse] * 256 + b[:, fine]
    rest = np.ones(a.shape[1], bool)
    rest[coarse] = rest[fine] = False
    frames = int((a != b).any(1).sum())
    return frames, int(np.abs(v16a - v16b).max()), int((a[:, rest] != b[:, rest]).sum())


@pytest.mark.parametrize("model,seed,core", SHOWS)
def test_x86_and_arm64_differ_at_most_one_fine_step(model: str, seed: int, core: str,
                                                     tmp_path: Path) -> None:
    here = record_here(model, seed, tmp_path)
    assert len(here) >= round(SECONDS * 40)       # the show's frames, and its last one
    arm = record_arm64(model, seed, tmp_path, core)
    assert len(arm) == len(here)
    frames, worst16, other = differences(here, arm)
    seen = (f"{model} x86 vs arm64 {core}: {frames} of {len(here)} frames differ, 16-bit "
            f"pan/tilt by at most {worst16}, {other} other values")
    print(seen)
    assert other == 0, seen
    assert worst16 <= 1, seen
    assert frames <= len(here) // 100, seen      # docs/lockstep.md: under 1 %


def test_each_cpu_type_repeats_its_own_bytes(tmp_path: Path) -> None:
    model, seed, _ = SHOWS[0]
    first = record_arm64(model, seed, tmp_path, "CORTEXA53")
    again = record_arm64(model, seed, tmp_path, "CORTEXA53")
    assert np.array_equal(first, again)
