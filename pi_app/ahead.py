"""The frame loop's next frames worked out in one go, while the caches are warm.

A frame computed alone, 25 ms after the last one, finds the CPU's caches and branch
predictors cold: on a small rig it costs the daemon about eight times what the same frame
costs right after another (`bench/paced.py` against `bench/pipeline.py`). So, while nothing
changes, the show loop asks `RunAhead` for its frames: it computes the next few frames back to
back, hands them out one per tick, and computes again when they are used up.

Nothing is decided early. A frame is a pure function of the pipeline's state and its show
time, so a frame computed ahead is the frame that would have been computed at its tick — as
long as nothing else touches the pipeline in between. Anything that does (a live command, a
reload, the stop, the schedule, a skipped frame, an exception) first calls `rollback`, which
puts the pipeline back exactly where it was after the last frame handed out: the state saved
before the batch is restored and the frames already handed out are computed again, their
results dropped. The change then applies at its tick, and every frame is byte for byte the
frame of a loop that never ran ahead (`tests/test_run_ahead.py`). A frame that fails while
worked out ahead stops the show at once, as a failing frame does: the pipeline is put back as
after the last frame sent, whose blackout goes out (up to a batch sooner than the failing
frame's tick).

Only a plain walk runs ahead: not in a lockstep group, not while the music leads, identify
runs, the show holds still (a quiet spell is cheaper still) or fades out.

How far ahead is measured, not guessed: a batch is worked out after a frame is out, before
the next is due, so it must stay well inside a frame period. `RunAhead` times the frames it
computes (`cost_s`, seconds a frame: a frame computed alone, or a batch's mean) and makes
the next batch as many frames as fit in `AHEAD_BUDGET` of the period, at most
`AHEAD_FRAMES`, growing at most twice from one batch to the next, and from one frame again
after a rollback (a change may make a frame dearer: a cross-fade works out two walks). The
demo rig runs 32 frames ahead on the development machine (a batch of 32 costs about 3 ms
there); 1,024 pars on a Pi Zero 2 W, whose frame alone takes half the period, run none
ahead. A batch slowed by another program makes the next one shorter. A frame computed alone
costs more than one in a batch (cold caches), so the estimate errs short, never long. The
longer the batch, the less each frame pays for the cold start of its batch (the demo rig,
`latentdmx run`: 8 frames 390 µs of CPU a frame, 16 frames 345, 32 frames 315).

The frames kept are the output's own checked copies (`Output.prepare`, with OLA's wire bytes
packed), so the tick that sends one does the least it can.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .pipeline import Pipeline

AHEAD_FRAMES = 32          # at most this many frames in one go ...
AHEAD_BUDGET = 0.4         # ... and a batch at most this share of the frame period

_now = time.perf_counter   # the batch's timer (tests put a fake in its place)


def _save(obj: Any) -> tuple[Any, list[tuple[str, Any, Any]], set[str]]:
    """An object's attributes as they are: references, and copies of its arrays' and lists'
    contents (a stage keeps state in arrays it updates in place, some of them views)."""
    items: list[tuple[str, Any, Any]] = []
    for name, value in vars(obj).items():
        if isinstance(value, np.ndarray):
            items.append((name, value, value.copy() if value.flags.writeable else None))
        elif isinstance(value, list):
            items.append((name, value, list(value)))
        else:
            items.append((name, value, None))
    return obj, items, set(vars(obj))


def _restore(saved: tuple[Any, list[tuple[str, Any, Any]], set[str]]) -> None:
    obj, items, names = saved
    for name, ref, copy in items:
        if copy is not None:
            if isinstance(ref, np.ndarray):
                np.copyto(ref, copy)
            else:
                ref[:] = copy
        setattr(obj, name, ref)
    for name in set(vars(obj)) - names:
        delattr(obj, name)


class RunAhead:
    """``frames(t_s)`` in place of ``pipeline.frames(t_s)``; `rollback` before any change."""

    def __init__(self, pipeline: Pipeline, period_s: float,
                 pack: Callable[[dict[int, np.ndarray]], dict[int, np.ndarray]] | None = None
                 ) -> None:
        self.pipe = pipeline
        # a frame worked out ahead, kept: the output's own checked copy (`Output.prepare`,
        # so the tick that sends it does less), or a plain copy
        self.pack = pack or (lambda frames: {u: f.copy() for u, f in frames.items()})
        self.budget_s = AHEAD_BUDGET * period_s
        self.cost_s: float | None = None       # a frame's work, measured (seconds)
        self.size = 1                          # frames in the next batch (1: none ahead)
        self._saved: list | None = None        # the pipeline before the batch
        self._times: list[float] = []          # the batch's show times ...
        self._frames: list[dict[int, np.ndarray]] = []    # ... frames ...
        self._phases: list[float] = []         # ... and walk phases
        self._used = 0                         # frames of the batch handed out
        self.batches = 0                       # counts (bench, tests): batches, their frames
        self.worked = 0
        self.rollbacks = 0

    def can_run_ahead(self) -> bool:
        """Whether the frames after this one can be known now (see the module docstring)."""
        p = self.pipe
        music = p.music is not None and p.music.active      # audio (its own thread), taps
        return (self.size > 1 and not p.lockstep and not music and p.identify is None
                and not p.line.still and not p.safety.stopping)

    def next_is(self, t_s: float) -> bool:
        """Is the frame at show time `t_s` the batch's next one?"""
        j = self._used
        return j < len(self._times) and self._times[j] == t_s

    def frames(self, t_s: float) -> dict[int, np.ndarray]:
        """The frame due at show time `t_s`: the batch's next one if it is that, else (after
        a `rollback`) computed now, as ``pipeline.frames(t_s)``."""
        if self.next_is(t_s):
            j = self._used
            self._used = j + 1
            self.pipe.phase = self._phases[j]            # what `status` shows
            return self._frames[j]
        self.rollback()
        t0 = _now()
        frames = self.pipe.frames(t_s)
        self._measured(_now() - t0, 1)
        return frames

    def _measured(self, seconds: float, n: int) -> None:
        """`n` frames took `seconds`: the estimate of a frame's cost, and the next batch's
        size. The estimate follows a dearer frame at once and a cheaper one halfway."""
        cost = seconds / n
        old = self.cost_s
        self.cost_s = cost if old is None or cost >= old else (old + cost) / 2
        fit = int(self.budget_s / max(self.cost_s, 1e-9))
        self.size = max(1, min(AHEAD_FRAMES, fit, 2 * max(self.size, n)))

    def prepare(self, t_s: float, ticks: Callable[[int], list[float]]) -> None:
        """After the frame at show time `t_s` is out (sent, recorded, shown): if the batch is
        used up and the walk alone will change the pipeline, work out the next frames now.
        ``ticks(n)`` gives the show times of this frame and up to n - 1 after it at which
        nothing but the walk will change the pipeline, so far as the loop knows now."""
        if self._used < len(self._times):
            return                               # frames of the batch are left
        self._saved, self._times, self._frames, self._phases, self._used = None, [], [], [], 0
        if not self.can_run_ahead():
            return
        times = ticks(self.size + 1)
        if len(times) < 3 or times[0] != t_s:
            return
        pipe = self.pipe
        phase = pipe.phase
        saved = [_save(o) for o in (pipe, pipe.safety, pipe.moves, pipe.looks)]
        frames, phases = [], []
        t0 = _now()
        try:
            for t in times[1:]:
                frames.append(self.pack(pipe.frames(t)))
                phases.append(pipe.phase)
        except BaseException:        # a frame ahead failed: the show stops now, as it was
            for s in saved:
                _restore(s)
            raise
        self._measured(_now() - t0, len(frames))
        self._saved, self._times, self._frames, self._phases = saved, times[1:], frames, phases
        pipe.phase = phase                       # `status`: the frame out, not the last made
        self.batches += 1
        self.worked += len(frames)

    def rollback(self) -> None:
        """Put the pipeline where it was after the last frame handed out (nothing to do if
        no batch is under way). Call it before anything changes the pipeline."""
        saved, used, times = self._saved, self._used, self._times
        if saved is None:
            return
        self._saved, self._times, self._frames, self._phases, self._used = None, [], [], [], 0
        # a change may change what a frame costs (a cross-fade works out two walks): the
        # batches start again from one frame and grow back as they are measured
        self.size = 1
        if used == len(times):                   # the whole batch was handed out: as it is
            return
        for s in saved:
            _restore(s)
        for t in times[:used]:                   # the same frames again, the same state
            self.pipe.frames(t)
        self.rollbacks += 1
