"""The frame loop with late frames, for the run-ahead tests: frames k < `n` with gaps (ticks
a late frame skipped), each taken from `run` (a `RunAhead`), rolled back where the next frame
is not the one worked out, compared byte for byte with `plain` (a pipeline that computes
each frame at its tick), then the next ones prepared as the loop would guess them."""

from __future__ import annotations

import numpy as np


def play_with_gaps(run, plain, fps: float, n: int) -> None:
    ks = [k for k in range(n) if k % 37 not in (5, 6, 7) and k % 11 != 3]    # gaps
    for k in ks:
        t = k / fps
        if not run.next_is(t):
            run.rollback()
        got = {u: f.copy() for u, f in run.frames(t).items()}
        want = plain.frames(t)
        for u in want:
            assert np.array_equal(got[u], want[u]), f"frame {k}"

        def ticks(m: int, k: int = k) -> list[float]:       # the loop's guess: no gaps
            return [(k + j) / fps for j in range(m)]
        run.prepare(t, ticks)
