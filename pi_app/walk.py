"""The latent walk: slerp between seeded waypoints, with tempo and loops.

`LatentWalk(seed, streams, dim, ...)` makes ``streams`` independent trajectories (one per
fixture for `points` models, one for the rig for `image` models). Waypoint k of every stream
comes from ``default_rng([seed, k])``, so any point of the walk is a pure function of the seed
and the phase: the same seed gives the same show. The phase (in waypoints) is advanced by the
show; between waypoints the motion eases in and out (smoothstep), so it never jerks.

**A walk that avoids tears.** A model's map from latent to output has seams: two latents a
frame apart can land far apart (for a NAT model, on two curtains of the picture). Given a
`guard` (latents -> the output coordinates that matter, e.g. a point's x, y), the walk looks
at each segment in output space before it starts and re-routes it. Waypoint k + 1 is the
first of `candidates` proposals ``rho * w_k + sqrt(1 - rho^2) * spread * noise`` that is
accepted: always if its segment never moves faster than `calm_per_s` (at `segment_s` per
segment), else with probability `p_tear`; if none is, the stream stays where it is for that
segment. The proposals keep N(0, spread^2 I) (what the model was trained on) and acceptance
is symmetric in the two ends, so the show still visits the picture as the model draws it
(measured on the card), and the few tears that remain are moved in the dark (`moves.py`).
Proposals and acceptance come from ``default_rng([seed, k, ...])``: the same seed gives the
same show. The guarded walk is a chain, computed forward, in blocks: it starts afresh at the
plain waypoint of every multiple of `chain_block` (32), and the last waypoint of a block is
accepted only if its way on to the next block's start is calm too (a lucky one as well: that
way is not the walk's choice), from four times the proposals. So any phase costs at most
a block's steps, whatever the show's age (a lockstep group's phase counts from its epoch:
millions of waypoints; a standalone show's a year later: as many), and a member that joins
late computes the same walk.

**Anchored.** A walk made while the show plays (a new seed, a preset recall, a model swap)
starts at its `anchor`, the segment it is made in: there the chain starts at the plain
waypoint ``anchor`` and runs to the next block start at least two waypoints on, after which
the blocks go on as above. So a new walk costs one guarded step (like the start of any
block), not up to a block's, on the frame that makes it; the next waypoint is worked out
ahead, while the segment plays. The walk is a pure function of (seed, anchor, phase): a
group shares the anchor with the walk (`pi_app.sync.state`).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import os
import threading
import time
from collections.abc import Callable

import numpy as np

Guard = Callable[[np.ndarray], np.ndarray]
GUARD_SAMPLES = 64        # points per segment looked at by the guard
GUARD_ROWS = 1024         # latents per guard call, at most (its working memory: ~2.3 MB)
TEAR_STEP = 0.05          # output step between two of them that counts as a tear
CHAIN_BLOCK = 32          # the guarded chain restarts at every multiple of this
END_PROPOSALS = 4         # a block's last waypoint: this many times the proposals
LOOK_PACE = 2.0           # the look ahead rests this many times each guard call's wall time
HELPER_NICE = 5           # ... on a thread at this nice (a third of the frame loop's weight)


class LatentWalk:
    def __init__(self, seed: int, streams: int, dim: int, *, loop_waypoints: int = 0,
                 spread: float = 1.0, guard: Guard | None = None, candidates: int = 6,
                 rho: float = 0.3, segment_s: float = 6.0, calm_per_s: float = 1.0,
                 p_tear: float = 0.15, chain_block: int = CHAIN_BLOCK, anchor: int | None = None,
                 ahead: bool = True) -> None:
        self.seed = int(seed)
        self.streams = int(streams)
        self.dim = int(dim)
        self.loop = int(loop_waypoints)
        self.spread = float(spread)
        self.guard = guard
        self.candidates = max(1, int(candidates))
        self.rho = float(rho)
        self._calm_step = calm_per_s * segment_s / (GUARD_SAMPLES - 1)
        # k, w_k, w_k+1, and the chain's start and end (plain waypoints)
        self._chain: tuple[int, np.ndarray, np.ndarray, int, int] | None = None
        self.ahead = ahead                     # work out the next waypoint on a thread
        self._ahead: tuple[int, np.ndarray, int, cf.Future] | None = None   # j, w_j, end, w_j+1
        self.p_tear = float(p_tear)
        if int(chain_block) < 2:
            raise ValueError("chain_block must be 2 or more")
        self.chain_block = int(chain_block)
        if anchor is not None and self.loop:
            anchor %= self.loop
        self.anchor = None if anchor is None or anchor < 0 else int(anchor)
        self.steps = 0                         # guarded steps computed by the caller (not ahead)
        self.rerouted = 0                      # segments where the first proposal tore
        self.held = 0                          # segments that stayed put
        self._k: int | None = None
        self._w0 = self._w1 = self._omega = self._sin = np.zeros((0, 1), np.float32)
        self._same = np.zeros(0, bool)
        self._any_same = False
        self._z = np.empty((self.streams, self.dim), np.float32)
        self._bw = np.empty((self.streams, self.dim), np.float32)      # b * w1
        self._ab = np.empty((self.streams, 1), np.float32)             # b, then a

    def waypoint(self, k: int) -> np.ndarray:
        """Waypoint k: (streams, dim) float32 from N(0, spread^2 I)."""
        if self.loop:
            k %= self.loop
        rng = np.random.default_rng([self.seed, k % 2**63])   # k < 0 before the start
        return (rng.standard_normal((self.streams, self.dim)) * self.spread).astype(np.float32)

    # -- the guarded chain ------------------------------------------------------------------
    def _proposals(self, k: int, w: np.ndarray, count: int | None = None) -> np.ndarray:
        """(count, streams, dim): proposals for waypoint k after w (count: `candidates`)."""
        count = self.candidates if count is None else count
        out = np.empty((count, self.streams, self.dim), np.float32)
        keep = self.rho
        for j in range(count):
            rng = np.random.default_rng([self.seed, k % 2**63, j])
            noise = rng.standard_normal((self.streams, self.dim)) * self.spread
            out[j] = keep * w + math.sqrt(1.0 - keep * keep) * noise
        return out

    def _choose(self, k: int, w0: np.ndarray, cands: np.ndarray,
                then: np.ndarray | None = None) -> np.ndarray:
        """Per stream, the first proposal accepted: a calm one always, one that tears with
        probability `p_tear` (a deterministic draw from the seed); none: stay at w0. With
        `then` (the next waypoint, fixed), the way on to it must be calm as well.

        Lazily: proposal j is looked at only for the streams no earlier proposal settled,
        and not at all where the draw accepts it anyway; the guard sees at most
        `GUARD_ROWS` latents a call (whole streams, so each stream's path is computed as in
        one call for all: the same numbers, bit for bit, `tests/test_walk_guard.py`)."""
        c, n, _ = cands.shape
        f = np.linspace(0.0, 1.0, GUARD_SAMPLES, dtype=np.float32)
        e = f * f * (3.0 - 2.0 * f)
        luck = np.random.default_rng([self.seed, k % 2**63, 1000]).random((c, n))
        first = np.zeros(n, np.int64)
        found = np.zeros(n, bool)
        for j in range(c):
            lucky = ~found & (luck[j] < self.p_tear)        # taken whatever its path
            look = np.flatnonzero(~found & ~lucky)
            calm = np.zeros(n, bool)
            if len(look):
                calm[look] = self._worst(w0[look], cands[j, look], e) <= self._calm_step
            if then is not None:             # ... to it; the way on to the next block's
                on = np.flatnonzero(lucky | calm)        # start must be calm, lucky or not
                if len(on):
                    ok = np.zeros(n, bool)
                    ok[on] = self._worst(cands[j, on], then[on], e) <= self._calm_step
                    lucky &= ok
                    calm &= ok
            take = lucky | calm
            first[take & ~found] = j
            found |= take
            if found.all():
                break
        self.rerouted += int((found & (first > 0)).sum())
        self.held += int((~found).sum())
        return np.where(found[:, None], cands[first, np.arange(n)], w0)

    def _worst(self, w0: np.ndarray, w1: np.ndarray, e: np.ndarray) -> np.ndarray:
        """(m, d), (m, d) -> (m,): the largest output step along each stream's segment."""
        assert self.guard is not None
        per = max(1, GUARD_ROWS // GUARD_SAMPLES)          # streams per guard call
        out = np.empty(len(w0), np.float32)
        rest = threading.current_thread().name.startswith(_HELPER_NAME)
        t0 = time.perf_counter()
        for i in range(0, len(w0), per):
            if rest and i:
                self._rest(time.perf_counter() - t0)
            t0 = time.perf_counter()
            path = _slerp(w0[i:i + per], w1[i:i + per], e)               # (m, S, d)
            m = len(path)
            xy = self.guard(path.reshape(-1, self.dim).astype(np.float32))
            xy = xy.reshape(m, GUARD_SAMPLES, -1)
            out[i:i + m] = np.linalg.norm(np.diff(xy, axis=1), axis=-1).max(axis=1)
        return out

    def _rest(self, call_s: float) -> None:
        """On the helper thread, between two guard calls: rest `LOOK_PACE` times the last
        call's wall time, so a large rig's look (1,024 pars: about 170 ms of CPU a
        segment) is spread over the segment instead of taking a slow core's whole CPU
        share at once (under a CPU quota the frames would wait for the next period). A
        frame waiting for any walk's look (`_result`) ends the rests: the helper thread
        works for every walk in turn. The result is the same; only when it is worked out
        changes."""
        if not _HURRY.is_set():
            _HURRY.wait(min(LOOK_PACE * call_s, 0.25))

    def _result(self, fut: cf.Future) -> np.ndarray:
        """The look ahead's waypoint, now: the helper stops resting while a frame waits."""
        global _WAITING
        if fut.done():
            return fut.result()
        with _HELPER_LOCK:
            _WAITING += 1
            _HURRY.set()
        try:
            return fut.result()
        finally:
            with _HELPER_LOCK:
                _WAITING -= 1
                if not _WAITING:
                    _HURRY.clear()

    def span(self, k: int) -> tuple[int, int]:
        """The chain through segment k (k >= 0): its first and last waypoints, both plain
        (the anchor's, or a block's)."""
        b, a = self.chain_block, self.anchor
        if a is not None and a <= k:
            end = (a + 1) // b * b + b             # the next block start >= a + 2
            if k < end:
                return a, end
        start = k - k % b
        return start, start + b

    def _waypoints(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(w_k, w_k+1) of the guarded chain, computed forward (cached: the show moves on).

        The next waypoint is worked out ahead, on a helper thread, while this segment
        plays (`_look_ahead`), so a frame never waits for the guard's look at a segment
        unless the walk outruns it; the result is the very same waypoint."""
        if k < 0:
            return self.waypoint(k), self.waypoint(k + 1)
        start, end = self.span(k)
        ch = self._chain
        if ch is None or ch[0] > k or ch[3] != start:
            w = self.waypoint(start)
            ahead = self._ahead                  # a block's first look, worked out ahead
            if ahead is not None and ahead[0] == start and ahead[2] == end and \
                    np.array_equal(ahead[1], w):
                self._ahead = None
                w, w1 = ahead[1], self._result(ahead[3])
            else:
                self.steps += 1
                w1 = self._next(start, w, end)
            ch = (start, w, w1, start, end)
        while ch[0] < k:
            j = ch[0] + 1
            ch = (j, ch[2], self._ahead_or_next(j, ch[2], end), start, end)
        if self._chain is not ch:
            self._chain = ch
            self._look_ahead(ch[0] + 1, ch[2], end)
        return ch[1], ch[2]

    def _ahead_or_next(self, j: int, w: np.ndarray, end: int) -> np.ndarray:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == j and ahead[1] is w and ahead[2] == end:
            return self._result(ahead[3])
        self.steps += 1
        return self._next(j, w, end)

    def _look_ahead(self, j: int, w: np.ndarray, end: int) -> None:
        """Start working out waypoint j + 1 (after w = w_j) on the helper thread; at a
        block's last segment, the next block's first look (its chain starts afresh at
        plain waypoint j = `end`), so crossing into a block costs the frame no look."""
        if not self.ahead:
            return
        if j >= end:
            start, end = self.span(j)
            if start != j:
                return
            w = self.waypoint(j)
        self._ahead = (j, w, end, _helper().submit(self._next, j, w, end))

    def _next(self, k: int, w: np.ndarray, end: int | None = None) -> np.ndarray:
        """Waypoint k + 1 after w_k, in the chain that ends at plain waypoint `end` (default:
        k's; in a loop, the last one goes back to waypoint 0)."""
        if end is None:
            end = self.span(k)[1]
        if self.loop and (k + 1) % self.loop == 0:
            return self.waypoint(0)
        if k + 1 >= end:
            return self.waypoint(k + 1)                # the next block starts afresh
        then = self.waypoint(k + 2) if k + 2 == end and not (
            self.loop and (k + 2) % self.loop == 0) else None
        # a block's last waypoint has two ways to keep calm: it is offered more proposals
        # (the first `candidates` of them the usual ones, so only a stream that found none
        # among those looks at the others)
        count = self.candidates * (END_PROPOSALS if then is not None else 1)
        try:
            return self._choose(k + 1, w, self._proposals(k + 1, w, count), then)
        finally:
            release = getattr(self.guard, "release", None)   # the look's work buffers
            if release is not None:
                release()

    def _segment(self, k: int) -> None:
        self._k = k
        if self.guard is None:
            w0, w1 = self.waypoint(k), self.waypoint(k + 1)
        else:
            w0, w1 = self._waypoints(k % self.loop if self.loop else k)
        n0 = np.linalg.norm(w0, axis=1, keepdims=True)
        n1 = np.linalg.norm(w1, axis=1, keepdims=True)
        cos = np.sum(w0 * w1, axis=1, keepdims=True) / np.maximum(n0 * n1, 1e-12)
        omega = np.arccos(np.clip(cos, -1.0, 1.0))
        self._w0, self._w1 = w0, w1
        self._omega = omega.astype(np.float32)
        self._sin = np.maximum(np.sin(omega), 1e-6).astype(np.float32)
        self._same = omega[:, 0] < 1e-4                # a stream that stays put (guarded walk)
        self._any_same = bool(self._same.any())

    def at(self, phase: float) -> np.ndarray:
        """The latent vectors at `phase` (waypoints since the start): (streams, dim) float32.

        The returned array is reused by the next call."""
        k = math.floor(phase)                        # an int, as int(np.floor(phase))
        if k != self._k:
            self._segment(k)
        f = phase - k
        f = f * f * (3.0 - 2.0 * f)                  # smoothstep: ease in and out
        om, s, ab = self._omega, self._sin, self._ab    # in place: no temporaries
        np.multiply(om, f, out=ab)                   # b = sin(f om) / sin om
        np.divide(np.sin(ab, out=ab), s, out=ab)
        np.multiply(ab, self._w1, out=self._bw)
        np.multiply(om, 1.0 - f, out=ab)             # a = sin((1 - f) om) / sin om
        np.divide(np.sin(ab, out=ab), s, out=ab)
        np.multiply(ab, self._w0, out=self._z)
        self._z += self._bw                          # a * w0 + b * w1
        if self._any_same:                           # w0 == w1: slerp is 0 / 0 there
            same = self._same
            self._z[same] = (1.0 - f) * self._w0[same] + f * self._w1[same]
        return self._z


    def at_many(self, phases: list[float]) -> np.ndarray:
        """`at` for several phases of one segment (``floor(phase)`` the same for all): (n,
        streams, dim) float32, a new array, each row the very numbers `at` gives for its
        phase (the same float32 operations, element by element)."""
        k = math.floor(phases[0])
        if k != self._k:
            self._segment(k)
        f = np.array(phases, np.float64) - k
        f = f * f * (3.0 - 2.0 * f)                  # as `at`, in double precision
        n = len(phases)
        b = np.multiply(self._omega, f.astype(np.float32)[:, None, None])   # (n, streams, 1)
        np.divide(np.sin(b, out=b), self._sin, out=b)
        bw = np.multiply(b, self._w1)
        a = np.multiply(self._omega, (1.0 - f).astype(np.float32)[:, None, None], out=b)
        np.divide(np.sin(a, out=a), self._sin, out=a)
        z = np.multiply(a, self._w0)
        z += bw
        if self._any_same:
            same = self._same
            g = f.astype(np.float32)[:, None, None]
            h = (1.0 - f).astype(np.float32)[:, None, None]
            z[:, same] = h * self._w0[same] + g * self._w1[same]
        assert z.shape[0] == n
        return z


_HELPER: cf.ThreadPoolExecutor | None = None
_HELPER_LOCK = threading.Lock()
_HELPER_NAME = "latentdmx-walk"
_HURRY = threading.Event()   # a frame waits for the helper: it does not rest (`_rest`)
_WAITING = 0                 # ... how many (under _HELPER_LOCK)


def _idle_priority() -> None:
    """The helper thread a little below the frame loop (nice `HELPER_NICE`, this thread
    alone: Linux), so a slow core computes the frames first. Not lower: an unprivileged
    daemon cannot raise it back when a frame waits for its result, and at nice 19 a busy
    neighbour would all but stop it."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HELPER_NICE)


def _forget_helper() -> None:
    """In a forked child: the parent's helper thread is not there (a job queued to its
    executor would wait forever), so the child makes its own when it first needs one."""
    global _HELPER, _HELPER_LOCK, _HURRY, _WAITING
    _HELPER = None
    _HELPER_LOCK = threading.Lock()
    _HURRY, _WAITING = threading.Event(), 0


os.register_at_fork(after_in_child=_forget_helper)


def _helper() -> cf.ThreadPoolExecutor:
    """One thread for every walk's look ahead (made when first needed)."""
    global _HELPER
    with _HELPER_LOCK:
        if _HELPER is None:
            _HELPER = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix=_HELPER_NAME,
                                            initializer=_idle_priority)
        return _HELPER


def _slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(m, d), (m, d), (S,) -> (m, S, d): slerp from each a to its b at the times t."""
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    cos = np.sum(a * b, axis=1, keepdims=True) / np.maximum(na * nb, 1e-12)
    om = np.arccos(np.clip(cos, -1.0, 1.0))                           # (m, 1)
    s = np.maximum(np.sin(om), 1e-6)
    ta = np.sin((1.0 - t[None, :]) * om) / s                          # (m, S)
    tb = np.sin(t[None, :] * om) / s
    return ta[:, :, None] * a[:, None, :] + tb[:, :, None] * b[:, None, :]
