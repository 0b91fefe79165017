"""The show end to end on the virtual universe: recordings, reproducibility, clean stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pi_app.patch import Patch
from pi_app.sim.record import read_show

ENV = dict(os.environ, PYTHONUNBUFFERED="1")


def latentdmx(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pi_app.cli", *args], check=False,
                          capture_output=True, text=True, timeout=120, env=kw.pop("env", ENV), **kw)


def light_slots(config) -> np.ndarray:
    from pi_app.fixtures.profile import LIGHT_KINDS
    return np.array([s - 1 for (u, s), (_, attr) in Patch(config).slot_map().items()
                     if attr in LIGHT_KINDS])


def test_run_records_five_seconds_smoothly(tmp_path, default_config):
    show = tmp_path / "show.txt"
    r = latentdmx("run", "--duration", "5", "--record", str(show), env=dict(
        ENV, XDG_RUNTIME_DIR=str(tmp_path), LATENTDMX_FAKE_CLOCK="1"))   # the same frames
    assert r.returncode == 0, r.stderr
    frames, universes, times = read_show(show)
    fps = default_config.fps
    assert universes == (1,)
    assert 5 * fps - 2 <= len(frames)                         # ~5 x fps frames of 512 slots
    assert frames.shape[2] == 512
    # the duration is kept: the blackout goes out at 5 s (heads still parking stay put)
    assert len(frames) <= 5 * fps + 2 and times[-1] <= 5.0 + 1.5 / fps
    assert np.allclose(np.diff(times), 1 / fps, atol=0.0011)
    u = frames[:, 0, :].astype(int)
    patch_slots = u[:, :56]
    assert patch_slots.std(axis=0).max() > 5                 # the show moves
    step = np.abs(np.diff(patch_slots, axis=0))
    # smooth: the fine channels may wrap; coarse/8-bit channels change by small steps
    coarse = [i for i in range(56) if i not in (1, 3, 15, 17)]
    assert np.percentile(step[:, coarse], 99) <= 12
    assert step[:, coarse].mean() < 2
    # the last frame is dark, heads held where they were
    light = light_slots(default_config)
    assert not frames[-1, 0, light].any()
    assert np.array_equal(frames[-1, 0, [0, 2, 14, 16, 28, 29]],
                          frames[-2, 0, [0, 2, 14, 16, 28, 29]])


@pytest.mark.slow
def test_fast_clock_plays_the_real_time_show_frame_for_frame(tmp_path, monkeypatch):
    """The virtual-time clock is a seam for tests only if it changes nothing but the waiting."""
    env = dict(ENV, XDG_RUNTIME_DIR=str(tmp_path))
    took = {}
    for name, fake in (("real", "0"), ("fake", "1")):
        for _ in range(3):            # a real-time run on a busy machine may skip a late frame
            t0 = time.monotonic()
            r = latentdmx("run", "--duration", "3", "--seed", "5", "--record",
                          str(tmp_path / f"{name}.txt"), env=dict(env, LATENTDMX_FAKE_CLOCK=fake))
            took[name] = time.monotonic() - t0
            assert r.returncode == 0, r.stderr
            if "(0 late)" in r.stderr:
                break
    assert (tmp_path / "real.txt").read_bytes() == (tmp_path / "fake.txt").read_bytes()
    assert took["real"] >= 3.0 and took["fake"] < took["real"] - 1.0     # it did not wait
    # never on real lights
    from pi_app.clock import FastClock, FrameClock
    from pi_app.commands.run import _clock

    monkeypatch.setenv("LATENTDMX_FAKE_CLOCK", "1")
    assert _clock("sim") is FastClock
    assert _clock("ola") is FrameClock and _clock("uart") is FrameClock


def test_same_seed_same_show(sim):
    a = sim(1.0, seed=3)
    b = sim(1.0, seed=3)
    c = sim(1.0, seed=4)
    fa = np.stack([h[1] for h in a.history])
    fb = np.stack([h[1] for h in b.history])
    fc = np.stack([h[1] for h in c.history])
    assert fa.shape == fb.shape and np.array_equal(fa, fb)
    assert fa.shape != fc.shape or not np.array_equal(fa, fc)


@pytest.mark.slow
def test_cli_recordings_identical(tmp_path):
    env = dict(ENV, XDG_RUNTIME_DIR=str(tmp_path), LATENTDMX_FAKE_CLOCK="1")
    for name in ("a", "b"):
        r = latentdmx("run", "--duration", "1.5", "--seed", "11", "--fps", "20", "--record",
                      str(tmp_path / f"{name}.txt"), env=env)
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.txt").read_bytes() == (tmp_path / "b.txt").read_bytes()


@pytest.mark.slow
def test_sigterm_fades_out_then_blackout(tmp_path, default_config):
    show = tmp_path / "show.txt"
    proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--record", str(show)],
                            env=dict(ENV, XDG_RUNTIME_DIR=str(tmp_path)),
                            stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    frames, _, _ = read_show(show)
    from pi_app.decode import Rig

    light = light_slots(default_config)
    fade = default_config.safety.fade_out_s * default_config.fps
    assert not frames[-1, 0, light].any()
    # the fade-out: the emitted light falls over about fade_out_s (or longer, held back by
    # the flash limiter); then heads may park in the dark before the blackout frame
    lum = Rig.from_patch(Patch(default_config)).decode(frames).colour.sum(axis=(1, 2))
    last_lit = int(np.nonzero(lum)[0].max())
    tail = lum[max(0, last_lit - int(fade) + 2):last_lit + 2]     # inside the fade-out
    assert np.all(np.diff(tail) <= 1e-6) and tail[-1] == 0


def test_exception_in_loop_blacks_out_and_fails(default_config):
    from pi_app.outputs.sim import SimOutput
    from pi_app.show import Show

    patch = Patch(default_config)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    show = Show(default_config, out, control=False)
    calls = {"n": 0}
    real = show.pipeline.source.mapper

    def flaky(x):
        calls["n"] += 1
        if calls["n"] == 60:
            raise RuntimeError("boom")
        return real(x)

    show.pipeline.source.mapper = flaky
    with pytest.raises(RuntimeError, match="boom"):
        show.run()
    light = light_slots(default_config)
    assert out.closed and not out.history[-1][1][light].any()
    # the frames up to the failing one (worked out ahead: up to a batch sooner), blackout,
    # close()
    from pi_app.ahead import AHEAD_FRAMES

    assert 59 - AHEAD_FRAMES <= len(out.history) - 2 <= 59
    assert out.history[-3][1][light].any()           # it was lit just before
    assert not out.history[-2][1][light].any()       # blackout at once, then close


def test_bad_model_is_one_line(tmp_path):
    r = latentdmx("run", "--model", str(tmp_path / "nope"), "--duration", "0.1")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nope" in lines[0]


def test_daemon_import_path_never_imports_torch():
    code = ("import sys, pi_app.cli, pi_app.show, pi_app.pipeline, pi_app.runtime, "
            "pi_app.outputs.sim, pi_app.safety; assert 'torch' not in sys.modules, 'torch'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


def test_run_loads_no_other_commands_module(tmp_path):
    """`latentdmx run` imports its own command module only (issue 18: resident memory), and
    no torch; `--help` still lists every command."""
    code = ("import sys; from pi_app.cli import main\n"
            "try:\n    main(['run', '--duration', '0.3'])\n"
            "finally:\n    assert 'torch' not in sys.modules, 'torch'\n"
            "    print(sorted(m for m in sys.modules if m.startswith('pi_app.commands')))")
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=False, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "['pi_app.commands', 'pi_app.commands.run']"
    r = latentdmx("--help")
    for name in ("run", "dim", "safety-check", "tap", "watch", "service-network", "train"):
        assert f"\n  {name} " in r.stdout, name


def test_readme_starts_with_the_two_commands():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = text.split("```")
    first, second = blocks[1].strip().splitlines()[-1], blocks[3].strip().splitlines()[-1]
    assert "latentdmx run" in first and "pip install -e ." in first
    root = Path(__file__).resolve().parents[1]
    ci = (root / ".ci" / "run").read_text()
    assert second in ci or second.replace("scripts/test.sh", "scripts/test.sh -q") in ci
    assert "pytest" in (root / "scripts" / "test.sh").read_text()
