"""Shared pytest set-up: hypothesis profiles (tests/hypothesis_profiles.py), the `sim` fixture."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import hypothesis_profiles  # noqa: F401  (the one place the profiles are set)


@pytest.fixture
def default_config():
    from pi_app.config import load_config

    return load_config(None)


@pytest.fixture
def sim(default_config):
    """Run the whole loop offline on the simulator: ``sim(seconds, **show_kwargs)`` -> SimOutput.

    Uses the real Show (pipeline, output) at the config's fps with history kept, on virtual
    time (`FastClock`: the same frames, no waiting); pass ``clock=FrameClock`` for real time."""
    from pi_app.clock import FastClock
    from pi_app.outputs.sim import SimOutput
    from pi_app.patch import Patch
    from pi_app.show import Show

    def run(seconds: float = 1.0, config=None, **kwargs) -> SimOutput:
        cfg = config or default_config
        patch = Patch(cfg)
        out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
        kwargs.setdefault("control", False)
        kwargs.setdefault("clock", FastClock)
        Show(cfg, out, duration_s=seconds, **kwargs).run()
        return out

    return run


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
