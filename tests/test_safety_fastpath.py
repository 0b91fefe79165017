"""The safety stage's shortcuts change nothing: a frame that skips `_limit` (quick gate or
`_nothing_to_limit`) gives bit for bit what `_limit` would have given.

The same scenes are also played through a second stage whose shortcut is switched off
(every frame the quick gate fails goes through `_limit`); the outputs and the limiter state
must be identical on every frame. Random noise, red and green/blue square waves, quantised
levels, a master change and the fade-out, on the demo rig and a 12-head rig.
"""

from __future__ import annotations

import hypothesis_profiles  # noqa: F401  (registers and loads the profile)
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pi_app.config import load_config, parse_config
from pi_app.patch import Patch
from pi_app.safety import Safety
from pi_app.scene import N_ATTRS

HEADS = "".join(f'[[fixtures]]\nname = "h{i}"\nprofile = "lumeri-wash-7-10"\nmode = "14ch"\n'
                f"address = {i * 14 + 1}\n" for i in range(12))


def _scenes(kind: int, n: int, frames: int, rng: np.random.Generator):
    base = rng.random((n, N_ATTRS)).astype(np.float32)
    for k in range(frames):
        if kind == 0:                                    # noise
            yield rng.random((n, N_ATTRS)).astype(np.float32)
        elif kind == 1:                                  # red square wave, in phase
            s = base.copy()
            s[:, 2], s[:, 3], s[:, 4:] = (k // 3) % 2, 1.0, 0.05 * (k % 4 == 0)
            yield s
        elif kind == 2:                                  # green <-> blue: g swings, stays < 0
            s = base.copy()
            s[:, 2], s[:, 3], s[:, 4], s[:, 5], s[:, 6] = 1.0, 0.1, k % 2, 1 - k % 2, 0.0
            yield s
        else:                                            # quantised levels: exact ties
            yield (rng.integers(0, 5, (n, N_ATTRS)) / 4).astype(np.float32)


@pytest.mark.slow
@settings(max_examples=12, deadline=None)
@given(st.integers(0, 3), st.sampled_from(["demo", "heads"]), st.integers(0, 2**32 - 1))
def test_shortcuts_match_limit(kind, rig, seed):
    cfg = load_config(None) if rig == "demo" else parse_config(HEADS, "<heads>")
    fast = Safety(cfg, Patch(cfg), cfg.fps)
    slow = Safety(cfg, Patch(cfg), cfg.fps)
    slow._nothing_to_limit = lambda dyg, yg: False           # every failed quick gate -> _limit
    rng = np.random.default_rng(seed)
    for k, scene in enumerate(_scenes(kind, len(cfg.fixtures), 200, rng)):
        t = k / cfg.fps
        for stage in (fast, slow):
            if k == 80:
                stage.master = 0.6
            if k == 150:
                stage.start_fade_out(t)
        got, want = fast(scene, t).copy(), slow(scene, t).copy()
        assert got.tobytes() == want.tobytes(), f"frame {k}"
        assert fast._any_limited == slow._any_limited
        assert np.array_equal(fast._limited, slow._limited)
        assert np.array_equal(fast._e, slow._e)
