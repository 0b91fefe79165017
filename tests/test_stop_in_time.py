"""`--duration` is honoured whatever the slew limits: the fade-out ends at the duration and a
head still on its way to park stays where it is (the blackout holds it). `render` draws the
same frames `run --record` records, with no crash when parking is slow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from pi_app.cli import main
from pi_app.config import default_config_path, load_config
from pi_app.patch import Patch
from pi_app.runtime import load_model
from pi_app.sim.record import read_show
from pi_app.views import render as rd

ROOT = Path(__file__).resolve().parents[1]


def slow_rig(tmp_path: Path) -> Path:
    path = tmp_path / "slow.toml"
    path.write_text(default_config_path().read_text().replace(
        "pan_slew_deg_per_s = 0.0", "pan_slew_deg_per_s = 30"))
    return path


def test_render_with_slow_heads(tmp_path):
    cfg_path = slow_rig(tmp_path)
    res = CliRunner().invoke(main, ["render", "--config", str(cfg_path),          # 20 s
                                    "--out", str(tmp_path / "slow.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "slow.png").stat().st_size > 1000


def test_run_duration_is_honoured_and_render_agrees(tmp_path):
    cfg_path = slow_rig(tmp_path)
    record = tmp_path / "show.txt"
    env = dict(os.environ, LATENTDMX_FAKE_CLOCK="1", XDG_RUNTIME_DIR=str(tmp_path),
               PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "pi_app.cli", "run", "--config", str(cfg_path),
                        "--duration", "5", "--record", str(record)], env=env,
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    frames, _, times = read_show(record)
    cfg = load_config(cfg_path)
    assert times[-1] <= 5.0 + 1.5 / cfg.fps                 # the blackout, right at 5 s
    assert times[-1] >= 5.0
    light = np.array([s - 1 for (u, s), (_, attr) in Patch(cfg).slot_map().items()
                      if attr in ("dimmer", "red", "green", "blue", "white")])
    assert not frames[-1, 0, light].any()                   # dark at the end
    sim, sim_times = rd.simulate(cfg, load_model(cfg.model), duration_s=5.0)
    assert np.array_equal(sim_times, times) and np.array_equal(sim, frames)
