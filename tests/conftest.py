"""Shared pytest set-up: hypothesis profiles, the `sim` fixture, helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", max_examples=25, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("dev", max_examples=300, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def default_config():
    from pi_app.config import load_config

    return load_config(None)


@pytest.fixture
def sim(default_config):
    """Run the whole loop offline on the simulator: ``sim(seconds, **show_kwargs)`` -> SimOutput.

    Uses the real Show (clock, pipeline, output) at the config's fps with history kept."""
    from pi_app.outputs.sim import SimOutput
    from pi_app.patch import Patch
    from pi_app.show import Show

    def run(seconds: float = 1.0, config=None, **kwargs) -> SimOutput:
        cfg = config or default_config
        patch = Patch(cfg)
        out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
        kwargs.setdefault("control", False)
        Show(cfg, out, duration_s=seconds, **kwargs).run()
        return out

    return run


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
