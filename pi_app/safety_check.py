"""An independent checker of recorded shows (``latentdmx safety-check RECORDING``).

It reads the DMX bytes of an ``ola_recorder`` show (ours or any other tool's) and the rig
config (to know what each slot means), and measures — without trusting the safety stage:

- **flashes**: transitions of relative luminance of ``delta`` (10 %) or more, counted with a
  hysteresis tracker (a transition is a swing of >= delta from the extreme since the previous
  transition, the other way; WCAG 2.3.1: luminance transitions count only when the darker state
  is below 0.80), per fixture, for the rig (mean of fixtures) and for red light (no darker-state
  condition); flashes/s = the most transitions in any 1-s window / 2. More than
  ``max_flashes`` (3) is a violation.
- **pan/tilt speed**: the speed the recording *proves*, over every pair of frames up to 1 s
  apart: (distance moved - one DMX step) / (time between them + the timing error of each
  frame + 1 ms per frame between them, as ``ola_recorder`` truncates every delay to whole ms).
  A frame's timing error is its distance from the local grid of the typical period (a frame
  olad delivered 20 ms late, a burst after a stall), at least 0.5 ms (our own recordings sit
  on their grid), at most one period. Timing noise cannot fool it, and a real snap cannot
  hide: a jump of more than three frames' worth of movement is caught at one frame, a
  sustained excess of a few % over one second. The table and the violation line show the
  same figure. Keep-out boxes entered or crossed (straight path
  between frames, in scene coordinates).
- **slots**: held channels (reset, macros, auto programs) not at their held value, strobe
  channels other than open (their own open value) or closed (0), light channels outside their
  range (e.g. the Lumeri's dimmer above 134 is its strobe).
- **the fixture files**: for an imported profile, every value of every channel is also judged
  against the capabilities of the fixture file it was imported from (kept beside the profile,
  or given with ``--fixture-source KEY=FILE``): a driven channel only in plain position or
  intensity ranges, a held one only at off/open/no-function values or a plain setting — so a
  converted profile that is wrong cannot hide a macro, auto or music-trigger value.

``raw=True`` needs no config: every slot is an intensity (value / 255), the rig is the mean
of the slots that ever light.

The checker streams (`check_recording`): a long recording is read and judged chunk by chunk;
only per-frame pan/tilt positions are kept whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .config import Config
from .fixtures.capability import Cap
from .fixtures.profile import LIGHT_KINDS, SUBTRACTIVE
from .safety import _COLOUR_ATTRS, light_weights, segments_enter, slew_limits_deg_per_s
from .scene import HELD_ATTRS
from .wheels import WHEEL_DWELL_S

WCAG_MAX_FLASHES = 3.0
WCAG_DELTA = 0.1
DARK_LIMIT = 0.8            # WCAG: the darker state of a flash is below 0.80
SPEED_WINDOW_S = 1.0        # pairs of frames up to this far apart are compared
TICK_S = 0.001              # ola_recorder truncates every delay to whole ms
MIN_JITTER_S = 0.0005       # our own recordings: times rounded to the ms


@dataclass
class Row:
    name: str
    flashes_per_s: float = 0.0
    red_flashes_per_s: float = 0.0
    pan_deg_per_s: float | None = None
    tilt_deg_per_s: float | None = None
    pan_limit: float | None = None
    tilt_limit: float | None = None


@dataclass
class Report:
    path: str
    frames: int
    seconds: float
    fps: float
    max_flashes_per_s: float
    rows: list[Row] = field(default_factory=list)
    rig: Row = field(default_factory=lambda: Row("rig"))
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    jitter_ms: float = 0.0
    damaged: str = ""

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d


# -- flash counting -------------------------------------------------------------------------
class Transitions:
    """Luminance transitions of S signals, fed in chunks: x (t, S) at times (t,) ms.

    ``dark`` (S,): apply the darker-state < 0.8 rule to that signal."""

    def __init__(self, n: int, delta: float, dark: np.ndarray) -> None:
        self.d = np.zeros(n, np.int8)           # +1: last transition up, -1: down, 0: none yet
        self.hi: np.ndarray | None = None       # extremes since the last transition
        self.lo: np.ndarray | None = None
        self.thr = delta - 1e-9
        self.nodark = ~np.asarray(dark, bool)
        self._t: list[np.ndarray] = []
        self._s: list[np.ndarray] = []
        self.n = n

    def feed(self, x: np.ndarray, times: np.ndarray) -> None:
        if len(x) == 0:
            return
        start = 0
        if self.hi is None or self.lo is None:
            self.hi, self.lo = x[0].copy(), x[0].copy()
            start = 1
        hi, lo, d, thr, nodark = self.hi, self.lo, self.d, self.thr, self.nodark
        for t in range(start, len(x)):
            v = x[t]
            np.maximum(hi, v, out=hi)
            np.minimum(lo, v, out=lo)
            up = (d <= 0) & (v - lo >= thr) & (nodark | (lo < DARK_LIMIT))
            down = (d >= 0) & (hi - v >= thr) & (nodark | (v < DARK_LIMIT)) & ~up
            ev = up | down
            if ev.any():
                s = np.flatnonzero(ev)
                self._t.append(np.full(len(s), times[t]))
                self._s.append(s)
                d[up] = 1
                d[down] = -1
                hi[ev] = v[ev]
                lo[ev] = v[ev]

    def events(self) -> list[np.ndarray]:
        """Event times of each signal."""
        if not self._t:
            return [np.zeros(0) for _ in range(self.n)]
        et, es = np.concatenate(self._t), np.concatenate(self._s)
        return [et[es == s] for s in range(self.n)]

    def flashes_per_s(self) -> np.ndarray:
        """Max flashes (transitions / 2) in any 1-s window, per signal: (S,)."""
        return np.array([_max_events_in_window(e) / 2.0 for e in self.events()])


def _max_events_in_window(t: np.ndarray, window_ms: float = 1000.0) -> int:
    if len(t) == 0:
        return 0
    return int((np.searchsorted(t, t + window_ms, side="left") - np.arange(len(t))).max())


def transition_frames(x: np.ndarray, delta: float, dark: np.ndarray) -> list[np.ndarray]:
    """Frames of luminance transitions of each signal: x (T, S); dark (S,): apply the
    darker-state < 0.8 rule. Returns one array of frame indices per signal."""
    tr = Transitions(x.shape[1], delta, dark)
    tr.feed(x, np.arange(len(x), dtype=np.float64))
    return [e.astype(np.intp) for e in tr.events()]


def max_in_window(frames_idx: np.ndarray, times_ms: np.ndarray, window_ms: int = 1000) -> int:
    """Most events in any half-open window [t, t + 1 s)."""
    if len(frames_idx) == 0:
        return 0
    return _max_events_in_window(np.asarray(times_ms)[frames_idx], window_ms)


def flashes_per_s(x: np.ndarray, times_ms: np.ndarray, delta: float,
                  dark: np.ndarray) -> np.ndarray:
    """Max flashes (transitions / 2) in any 1-s window, per signal: (S,)."""
    tr = Transitions(x.shape[1], delta, dark)
    tr.feed(x, np.asarray(times_ms, np.float64))
    return tr.flashes_per_s()


# -- timing ---------------------------------------------------------------------------------
GRID_HALF_WINDOW = 20       # frames each side of a frame used to place it on its grid


def timing_error_s(times_ms: np.ndarray) -> np.ndarray:
    """How far each frame's timestamp may be from when it was really sent, in s: its distance
    from the local grid of the file's period — ``t_i - (c + i x period)``, where ``c`` is the
    median offset of the frames around it — so a frame delivered late, or a run of frames
    delivered in a burst, is seen as such; and at least the file's typical such distance (its
    99th percentile), at least 0.5 ms (times are whole ms), at most one period. Our own
    recordings sit on their grid: 0.5 ms.

    The period is the median time per frame over spans of `GRID_HALF_WINDOW` frames with no
    pause in them, not the median gap: ``ola_recorder`` writes whole-ms delays, so its gaps
    are whole ms (24 or 25 for a 24.5 ms period) and, under jitter, their median strays by
    ms more (23 on one 40-fps capture). A period off by 1.5 ms tilts the offsets by 1.5 ms a
    frame, which the running median follows in the middle of the file but not at its ends,
    where the window is one-sided: the first and last frames seemed 15 ms off their grid, and
    through the 99th percentile so did every frame, hiding a 12-degree snap."""
    t = np.asarray(times_ms, np.float64)
    n = len(t)
    if n < 3:
        return np.full(n, MIN_JITTER_S)
    gaps = np.diff(t)
    typical_gap = float(np.median(gaps))
    if typical_gap <= 0:
        return np.full(n, MIN_JITTER_S)
    span = min(GRID_HALF_WINDOW, n - 1)
    no_pause = np.lib.stride_tricks.sliding_window_view(gaps, span).max(axis=1) < 2 * typical_gap
    period = (float(np.median((t[span:] - t[:-span])[no_pause] / span)) if no_pause.any()
              else typical_gap)
    if period <= 0:
        period = typical_gap
    offset = t - np.arange(n) * period
    w = min(GRID_HALF_WINDOW, (n - 1) // 2)
    padded = np.pad(offset, w, mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1)
    local = np.median(windows, axis=1)
    err = np.abs(offset - local) / 1000.0
    # Every frame at least the typical error of the file (its 99th percentile): the local
    # median sits inside the jitter band, so one residual alone understates the spread.
    err = np.maximum(err, float(np.percentile(err, 99)))
    return np.clip(err, MIN_JITTER_S, max(period / 1000.0, MIN_JITTER_S))


def jitter_s(times_ms: np.ndarray) -> float:
    """The largest timing error of any frame (`timing_error_s`), in s."""
    err = timing_error_s(times_ms)
    return float(err.max()) if len(err) else MIN_JITTER_S


def proven_speed(deg: np.ndarray, times_s: np.ndarray, step_deg: float,
                 error_s: np.ndarray | float, window_s: float = SPEED_WINDOW_S
                 ) -> tuple[float, float]:
    """(the fastest speed the recording proves in deg/s, the time it starts): over every
    pair of frames up to `window_s` apart, (|distance| - one step) / (time between them + the
    timing error of each + 1 ms per frame between them)."""
    n = len(deg)
    best, at = 0.0, float(times_s[0]) if n else 0.0
    if n < 2:
        return best, at
    err = np.broadcast_to(np.asarray(error_s, np.float64), (n,))
    span = float(times_s[-1] - times_s[0])
    period = span / (n - 1) if span > 0 else 0.0
    lags = n - 1 if period <= 0 else max(1, min(n - 1, int(np.ceil(window_s / period))))
    for lag in range(1, lags + 1):
        dist = np.abs(deg[lag:] - deg[:-lag]) - step_deg
        dt = (times_s[lag:] - times_s[:-lag]) + err[lag:] + err[:-lag] + lag * TICK_S
        v = np.maximum(dist, 0.0) / dt
        i = int(np.argmax(v))
        if v[i] > best:
            best, at = float(v[i]), float(times_s[i])
    return best, at


# -- the checker ----------------------------------------------------------------------------
class _SourceJudge:
    """The values one channel took, judged against the fixture file's capabilities."""

    def __init__(self, where: str, use: str, caps: tuple, warned: bool, file: str) -> None:
        self.where, self.use, self.caps, self.warned, self.file = where, use, caps, warned, file
        self.first_ms = np.full(256, np.nan)

    def feed(self, col: np.ndarray, times: np.ndarray) -> None:
        present = np.bincount(col, minlength=256) > 0
        new = np.flatnonzero(present & np.isnan(self.first_ms))
        for v in new:
            self.first_ms[v] = times[int(np.argmax(col == v))]

    def verdicts(self) -> tuple[list[str], list[str]]:
        """One line per capability of the file that the channel should not have touched."""
        from .fixtures.capability import cap_at, describe, drive_allowed, hold_allowed

        groups: dict[Cap | tuple[str, int], list[int]] = {}
        for value in np.flatnonzero(~np.isnan(self.first_ms)):
            v = int(value)
            c = cap_at(self.caps, v)
            if self.use == "hold":
                ok = hold_allowed(self.caps, v)
            else:
                ok = drive_allowed(self.use, self.caps, v)
            if not ok:
                groups.setdefault(c if c is not None else ("undefined", v), []).append(v)
        bad, notes = [], []
        for key, values in groups.items():
            c = None if isinstance(key, tuple) else key
            first = min(values, key=lambda v: self.first_ms[v])
            what = describe(c, first) if len(values) == 1 else \
                f"{min(values)}-{max(values)} ({len(values)} values): " + \
                describe(c, first).split(" is ", 1)[1]
            line = (f"{self.where}: {what} in {self.file}, first at "
                    f"{self.first_ms[first] / 1000:g} s")
            if self.warned and self.use == "hold":
                notes.append(line + " (the import warned: the file gives no off value)")
            else:
                bad.append(line)
        return bad, notes


@dataclass
class _Aim:
    fx: object
    row: Row
    attr: str
    slot: int
    fine: int | None
    lo: float              # the written range's low end in fine steps (min x 256 for 16 bit)
    span: float
    full: float
    limit: float
    parts: list[np.ndarray] = field(default_factory=list)


class Checker:
    """Judge a show fed in chunks of frames (`feed`), then `finish()` -> Report."""

    def __init__(self, universes: tuple[int, ...], config: Config | None = None, *,
                 raw: bool = False, max_flashes: float = WCAG_MAX_FLASHES,
                 delta: float = WCAG_DELTA, path: str = "<frames>",
                 sources: dict[str, Path] | None = None, lit: np.ndarray | None = None) -> None:
        self.universes = tuple(universes)
        self.config, self.raw = config, raw
        self.max_flashes, self.delta, self.path = max_flashes, delta, path
        self.uidx = {u: k for k, u in enumerate(self.universes)}
        self.frames = 0
        self._times: list[np.ndarray] = []
        self.violations: list[str] = []
        self.notes: list[str] = []
        self._seen_violation: set[str] = set()
        self._wheel_prev: dict[tuple[int, int], int] = {}    # a wheel's last value
        self._wheel_ms: dict[tuple[int, int], float] = {}    # ... and when it last turned
        if raw:
            self._setup_raw(lit)
        else:
            assert config is not None, "a config is needed unless raw"
            self._setup_rig(config, sources or {})

    # -- set-up ---------------------------------------------------------------------------
    def _setup_raw(self, lit: np.ndarray | None) -> None:
        n_slots = len(self.universes) * 512
        self.lit = np.arange(n_slots) if lit is None else np.asarray(lit)
        self.tr = Transitions(len(self.lit) + 1, self.delta, np.ones(len(self.lit) + 1, bool))

    def _setup_rig(self, config: Config, sources: dict[str, Path]) -> None:
        from .patch import Patch

        self.patch = patch = Patch(config)
        rig_universes = {f.universe for f in patch.fixtures}
        self.rig_universes = rig_universes
        self.none_of_rig = not rig_universes & set(self.uidx)     # refused at finish
        missing = sorted(rig_universes - set(self.uidx))
        if missing:
            self.notes.append(f"universes {missing} not in the recording: read as 0")
        n = len(patch.fixtures)
        self.rows = [Row(fx.name) for fx in patch.fixtures]
        self.tr = Transitions(n + 1, self.delta, np.ones(n + 1, bool))
        self.tr_red = Transitions(n + 1, self.delta, np.zeros(n + 1, bool))
        self.aims: list[_Aim] = []
        self.judges: list[tuple[int, _SourceJudge]] = []
        for fx in patch.fixtures:
            self._setup_aim(fx, config)
            self._setup_sources(fx, sources)

    def _col(self, fx, j: int) -> int:
        """Flat column of channel j of a fixture; -1: its universe is not recorded."""
        k = self.uidx.get(fx.universe)
        return -1 if k is None else k * 512 + fx.address - 1 + j

    def _setup_aim(self, fx, config: Config) -> None:
        chans = [c.attr for c in fx.mode.channels]
        lims = slew_limits_deg_per_s(config, fx.profile)
        for k, (attr, full) in enumerate((("pan", fx.profile.pan_deg),
                                          ("tilt", fx.profile.tilt_deg))):
            if attr not in chans or full <= 0:
                continue
            j = chans.index(attr)
            ch = fx.mode.channels[j]
            fine = chans.index(attr + "_fine") if attr + "_fine" in chans else None
            if fine is not None:
                lo, span = ch.min * 256.0, (ch.max - ch.min) * 256.0 + 255.0
            else:
                lo, span = float(ch.min), float(max(ch.max - ch.min, 1))
            self.aims.append(_Aim(fx, self.rows[fx.index], attr, self._col(fx, j),
                                  None if fine is None else self._col(fx, fine), lo, span, full,
                                  lims[k]))

    def _setup_sources(self, fx, sources: dict[str, Path]) -> None:
        """Judges for the channels of an imported fixture, from its fixture file."""
        from .errors import LatentDMXError
        from .fixtures.importing import read_source

        prof = fx.profile
        path = sources.get(prof.key) or prof.source_path
        if path is None:
            return
        path = Path(path)
        try:
            raw = path.read_bytes()
            src = read_source(path, raw)
        except (OSError, LatentDMXError) as exc:
            self.notes.append(f"{fx.name}: cannot read the fixture file {path} "
                              f"({getattr(exc, 'what', None) or exc}): judged by its profile "
                              "only")
            return
        if prof.key not in sources and prof.source_sha256 and \
                hashlib.sha256(raw).hexdigest() != prof.source_sha256:
            self.notes.append(f"{fx.name}: the fixture file {path} changed since the import")
        chans = src.mode(prof.source_mode(fx.mode.name))
        if chans is None or len(chans) != fx.mode.footprint:
            self.notes.append(f"{fx.name}: {path.name} has no mode {fx.mode.name!r} of "
                              f"{fx.mode.footprint} channels: judged by its profile only")
            return
        uses = {"pan": "pan", "tilt": "tilt", "hold": "hold", "wheel": "hold",
                **{a: "light" for a in LIGHT_KINDS | SUBTRACTIVE.keys() | {"strobe"}},
                **{a: a for a in HELD_ATTRS}}            # zoom, ...: its own range
        for j, (ch, sc) in enumerate(zip(fx.mode.channels, chans, strict=True)):
            use = uses.get(ch.attr)
            if sc is None or use is None or sc.role == "fine" or self._col(fx, j) < 0:
                continue
            where = f"{fx.name} channel {j + 1} ({sc.name})"
            self.judges.append((self._col(fx, j), _SourceJudge(where, use, sc.caps,
                                                               bool(ch.warn), path.name)))
        self.notes.append(f"{fx.name}: judged against its fixture file {path}")

    # -- feeding --------------------------------------------------------------------------
    def feed(self, frames: np.ndarray, times_ms: np.ndarray) -> None:
        """frames uint8[t, U, 512] at times_ms (t,)."""
        t = len(frames)
        if t == 0:
            return
        times_ms = np.asarray(times_ms, np.float64)
        self._times.append(times_ms)
        self.frames += t
        flat = frames.reshape(t, -1)
        if self.raw:
            x = flat[:, self.lit] / 255.0
            rig = x.mean(axis=1, keepdims=True) if x.shape[1] else np.zeros((t, 1))
            self.tr.feed(np.concatenate([x, rig], axis=1), times_ms)
            return
        self._feed_rig(flat, times_ms)

    def _violation(self, key: str, text: str) -> None:
        """One line per problem (the first time it happens)."""
        if key not in self._seen_violation:
            self._seen_violation.add(key)
            self.violations.append(text)

    DWELL_SLACK_MS = 20.0      # a recording's timing: its frames' times jitter a little

    def _check_wheel(self, fx, col, times_ms: np.ndarray) -> None:
        """A colour wheel (`pi_app.wheels`) is only ever at its held value or a static slot,
        turns only on a frame where the fixture's dimmer is at its dark value, and the
        fixture stays dark for `WHEEL_DWELL_S` after it turns (less `DWELL_SLACK_MS` of a
        recording's timing): a wheel is never seen on its way."""
        chans = fx.mode.channels
        dim = next((j for j, c in enumerate(chans) if c.attr in ("dimmer", "intensity")
                    and c.max > c.min), None)
        for j, ch in enumerate(chans):
            if ch.attr != "wheel":
                continue
            v = col(fx, j)
            where = f"{fx.name} channel {j + 1} ({ch.label or ch.attr})"
            bad = np.flatnonzero(~np.isin(v, [ch.value, *(s for s, _ in ch.slots)]))
            if len(bad):
                self._violation(where, f"{where}: colour wheel at {int(v[bad[0]])}, not a static "
                                       f"slot, at {times_ms[bad[0]] / 1000:g} s")
            prev = self._wheel_prev.get((fx.index, j), int(v[0]) if len(v) else 0)
            turned = v != np.concatenate([[prev], v[:-1]])
            lit = np.zeros(len(v), bool)
            if dim is not None:
                d, dc = col(fx, dim), chans[dim]
                lit = (d != dc.min) & (d != dc.dark)
            bad = np.flatnonzero(turned & lit)
            if len(bad):
                self._violation(where + " turn", f"{where}: colour wheel turned while lit at "
                                                 f"{times_ms[bad[0]] / 1000:g} s")
            # the show time of each frame's last turn (carried over from the last chunk)
            last = np.maximum.accumulate(np.where(
                turned, times_ms, self._wheel_ms.get((fx.index, j), -np.inf)))
            early = lit & (times_ms - last < WHEEL_DWELL_S * 1000.0 - self.DWELL_SLACK_MS)
            bad = np.flatnonzero(early)
            if len(bad):
                k = bad[0]
                self._violation(where + " dwell", f"{where}: lit {(times_ms[k] - last[k]) / 1000:g}"
                                f" s after its colour wheel turned, at {times_ms[k] / 1000:g} s:"
                                f" a wheel is seen on its way for {WHEEL_DWELL_S:g} s")
            if len(v):
                self._wheel_ms[(fx.index, j)] = float(last[-1])
            if len(v):
                self._wheel_prev[(fx.index, j)] = int(v[-1])

    def _feed_rig(self, flat: np.ndarray, times_ms: np.ndarray) -> None:
        t = len(flat)
        unchecked = [u for u, k in self.uidx.items() if u not in self.rig_universes
                     and flat[:, k * 512:(k + 1) * 512].any()]
        if unchecked:
            from .errors import LatentDMXError
            raise LatentDMXError(f"universe(s) {unchecked} carry light the rig does not patch, "
                                 "so they cannot be checked", file=self.path, field="universes",
                                 fix="give the rig's config with --config, or check every slot "
                                     "with --raw")
        zero = np.zeros(t, np.uint8)
        n = len(self.patch.fixtures)
        Y = np.zeros((t, n))
        G = np.zeros((t, n))

        def col(fx, j):
            c = self._col(fx, j)
            return zero if c < 0 else flat[:, c]

        for fx in self.patch.fixtures:
            dim = np.ones(t)
            colour = np.zeros((t, 4))
            for j, ch in enumerate(fx.mode.channels):
                v = col(fx, j)
                where = f"{fx.name} channel {j + 1} ({ch.label or ch.attr})"
                if ch.attr == "hold":
                    bad = np.flatnonzero(v != ch.value)
                    if len(bad):
                        self._violation(where, f"{where}: held at {ch.value} but "
                                               f"{int(v[bad[0]])} at "
                                               f"{times_ms[bad[0]] / 1000:g} s")
                elif ch.attr == "strobe":
                    bad = np.flatnonzero((v != ch.dark) & (v != ch.min))
                    if len(bad):
                        self._violation(where, f"{where}: strobe channel at {int(v[bad[0]])} "
                                               f"(open is {ch.min}, closed {ch.dark}) at "
                                               f"{times_ms[bad[0]] / 1000:g} s")
                elif ch.attr in ("dimmer", "intensity") or ch.attr in _COLOUR_ATTRS \
                        or ch.attr in SUBTRACTIVE:
                    # its range, or its dark value (0 unless its 0 switches the lamp off)
                    bad = np.flatnonzero(((v < ch.min) | (v > ch.max)) & (v != ch.dark))
                    if len(bad):
                        self._violation(where, f"{where}: {int(v[bad[0]])} is outside its light "
                                               f"range {ch.min}..{ch.max} (strobe/macro part) "
                                               f"at {times_ms[bad[0]] / 1000:g} s")
                    if ch.max == ch.min:     # a shutter that only switches: full when open
                        level = (v == ch.max).astype(np.float64)
                    else:
                        level = np.clip((v.astype(np.float64) - ch.min)
                                        / max(ch.max - ch.min, 1), 0.0, 1.0)
                    if ch.attr in ("dimmer", "intensity"):
                        dim *= level
                    elif ch.attr in SUBTRACTIVE:        # a colour filter: cyan takes red out
                        colour[:, _COLOUR_ATTRS.index(SUBTRACTIVE[ch.attr])] = 1.0 - level
                    else:
                        colour[:, _COLOUR_ATTRS.index(ch.attr)] = level
            self._check_wheel(fx, col, times_ms)
            wy, wr = light_weights(fx.mode)
            if any(fx.mode.has_colour(a) for a in _COLOUR_ATTRS):
                Y[:, fx.index] = dim * (colour @ wy.astype(np.float64))
                G[:, fx.index] = dim * (colour @ wr.astype(np.float64))
            else:
                Y[:, fx.index] = dim
        self.tr.feed(np.concatenate([Y, Y.mean(axis=1, keepdims=True)], axis=1), times_ms)
        self.tr_red.feed(np.concatenate([np.maximum(G, 0.0),
                                         np.maximum(G.mean(axis=1, keepdims=True), 0.0)],
                                        axis=1), times_ms)
        for aim in self.aims:
            coarse = flat[:, aim.slot].astype(np.float64) if aim.slot >= 0 else np.zeros(t)
            if aim.fine is not None:
                fine = flat[:, aim.fine] if aim.fine >= 0 else zero
                coarse = coarse * 256.0 + fine
            aim.parts.append(((coarse - aim.lo) / aim.span).astype(np.float64))
        for c, judge in self.judges:
            judge.feed(flat[:, c], times_ms)

    # -- the report -----------------------------------------------------------------------
    def finish(self) -> Report:
        times_ms = np.concatenate(self._times) if self._times else np.zeros(0)
        T = len(times_ms)
        span = (times_ms[-1] - times_ms[0]) / 1000.0 if T else 0.0
        fps = (T - 1) / span if T > 1 and span > 0 else 0.0
        rep = Report(self.path, T, round(span, 3), round(fps, 2), self.max_flashes)
        rep.notes += self.notes
        if T == 0:
            rep.notes.append("no frames")
            return rep
        limit = 2 * self.max_flashes
        f = self.tr.flashes_per_s()
        if self.raw:
            for k, s in enumerate(self.lit):
                u, a = self.universes[int(s) // 512], int(s) % 512 + 1
                rep.rows.append(Row(f"{u}/{a}", float(f[k])))
                if f[k] * 2 > limit:
                    rep.violations.append(f"slot {u}/{a}: {f[k]:g} flashes/s "
                                          f"(limit {self.max_flashes:g})")
            rep.rig.flashes_per_s = float(f[-1])
            if f[-1] * 2 > limit:
                rep.violations.append(f"rig: {f[-1]:g} flashes/s (limit {self.max_flashes:g})")
            return rep
        if self.none_of_rig:
            from .errors import LatentDMXError
            raise LatentDMXError(f"none of the rig's universes {sorted(self.rig_universes)} is "
                                 "in it, so they cannot be checked", file=self.path,
                                 field="universes", fix="give the rig's config with --config, "
                                                        "or check every slot with --raw")
        rep.violations += self.violations
        rep.rows = self.rows
        fr = self.tr_red.flashes_per_s()
        for k, row in enumerate([*rep.rows, rep.rig]):
            row.flashes_per_s, row.red_flashes_per_s = float(f[k]), float(fr[k])
            if f[k] * 2 > limit:
                rep.violations.append(f"{row.name}: {f[k]:g} flashes/s "
                                      f"(limit {self.max_flashes:g})")
            if fr[k] * 2 > limit:
                rep.violations.append(f"{row.name}: {fr[k]:g} red flashes/s "
                                      f"(limit {self.max_flashes:g})")
        error = timing_error_s(times_ms)
        rep.jitter_ms = round(float(error.max()) * 1000.0, 1)
        self._finish_aim(rep, times_ms / 1000.0, error)
        for _, judge in self.judges:
            bad, notes = judge.verdicts()
            rep.violations += bad
            rep.notes += notes
        return rep

    def _finish_aim(self, rep: Report, times_s: np.ndarray, error: np.ndarray) -> None:
        pos: dict[tuple[int, str], np.ndarray] = {}
        for aim in self.aims:
            u = np.concatenate(aim.parts)
            pos[(aim.fx.index, aim.attr)] = u       # type: ignore[attr-defined]
            step = aim.full / aim.span
            speed, at = proven_speed(u * aim.full, times_s, step, error)
            speed = round(speed, 1)
            setattr(aim.row, f"{aim.attr}_deg_per_s", speed)
            setattr(aim.row, f"{aim.attr}_limit", round(aim.limit, 1))
            if speed > aim.limit:
                rep.violations.append(f"{aim.row.name}: {aim.attr} moves at {speed:.1f} deg/s "
                                      f"at {at:g} s (limit {aim.limit:g})")
            check_aim_limits(rep, aim.fx, aim.attr, u * aim.full, step, times_s)
        for fx in self.patch.fixtures:
            if fx.config.keep_out and (fx.index, "pan") in pos and (fx.index, "tilt") in pos:
                _check_keep_out(rep, fx, pos[(fx.index, "pan")], pos[(fx.index, "tilt")],
                                times_s)


def check_aim_limits(rep: Report, fx, attr: str, deg: np.ndarray, step: float,
                     times_s: np.ndarray) -> None:
    """Pan/tilt outside the fixture's configured `pan/tilt_limits_deg` (the profile's range
    if none), in the fixture's own degrees, allowing one DMX step of rounding."""
    full = fx.profile.pan_deg if attr == "pan" else fx.profile.tilt_deg
    lim = tuple(getattr(fx.config, f"{attr}_limits_deg"))
    lo, hi = lim if lim != (0.0, 0.0) else (0.0, full)
    out = np.flatnonzero((deg < lo - step) | (deg > hi + step))
    if len(out):
        i = int(out[0])
        rep.violations.append(f"{fx.name}: {attr} at {deg[i]:.1f} deg at {times_s[i]:g} s is "
                              f"outside its limits {lo:g}..{hi:g} deg ({len(out)} frames)")


def _check_keep_out(rep: Report, fx, pan: np.ndarray, tilt: np.ndarray,
                    times_s: np.ndarray) -> None:
    p = np.stack([_to_scene(pan, fx.profile.pan_deg, fx.config.pan_limits_deg,
                            fx.config.invert_pan, fx.config.pan_offset_deg),
                  _to_scene(tilt, fx.profile.tilt_deg, fx.config.tilt_limits_deg,
                            fx.config.invert_tilt, fx.config.tilt_offset_deg)], axis=1)
    a, b = p[:-1], p[1:]
    if len(p) == 1:
        a = b = p
    for j, box in enumerate(fx.config.keep_out):
        hit = segments_enter(a, b, np.broadcast_to(np.asarray(box, np.float64), (len(a), 4)))
        inside = ((p[:, 0] > box[0]) & (p[:, 0] < box[1]) & (p[:, 1] > box[2]) &
                  (p[:, 1] < box[3]))
        if hit.any() or inside.any():
            i = int(np.argmax(hit)) if hit.any() else int(np.argmax(inside))
            rep.violations.append(f"{fx.name}: beam enters keep-out box {j} "
                                  f"{list(box)} at {times_s[i]:g} s")


def _to_scene(u: np.ndarray, full: float, lim, invert: bool, offset: float) -> np.ndarray:
    """Physical position (0..1 of the profile range) -> scene coordinate (inverse of patch)."""
    lo, hi = lim if tuple(lim) != (0.0, 0.0) else (0.0, full)
    a, b = (lo + offset) / full, (hi - lo) / full
    if invert:
        a, b = a + b, -b
    return (u - a) / b


def check_frames(frames: np.ndarray, universes: tuple[int, ...], times_s: np.ndarray,
                 config: Config | None = None, *, raw: bool = False,
                 max_flashes: float = WCAG_MAX_FLASHES, delta: float = WCAG_DELTA,
                 path: str = "<frames>", sources: dict[str, Path] | None = None) -> Report:
    """Check frames uint8[T, U, 512] at times_s (T,) against the rig of `config` (or raw)."""
    times_ms = np.rint(np.asarray(times_s, np.float64) * 1000.0)
    lit = None
    if raw:
        lit = np.flatnonzero(frames.reshape(len(frames), -1).max(axis=0) > 0) if len(frames) \
            else np.zeros(0, np.intp)
    checker = Checker(universes, config, raw=raw, max_flashes=max_flashes, delta=delta,
                      path=path, sources=sources, lit=lit)
    checker.feed(frames, times_ms)
    return checker.finish()


def check_recording(path, config: Config | None, *, raw: bool = False,
                    max_flashes: float = WCAG_MAX_FLASHES, delta: float = WCAG_DELTA,
                    sources: dict[str, Path] | None = None,
                    progress: Callable[[int], None] | None = None) -> Report:
    """Check a recording file, streaming it chunk by chunk; a damaged file is checked up to
    the damage (noted in the report). `progress(n)` is called with frames done."""
    from .sim.record import open_show

    show = open_show(path)
    lit = None
    if raw:                                   # pass 1: which slots ever light
        peak = np.zeros(len(show.universes) * 512, np.uint8)
        for frames, _ in show.chunks():
            np.maximum(peak, frames.reshape(len(frames), -1).max(axis=0), out=peak)
        lit = np.flatnonzero(peak > 0)
    checker = Checker(show.universes, config, raw=raw, max_flashes=max_flashes, delta=delta,
                      path=str(path), sources=sources, lit=lit)
    for frames, times_ms in show.chunks():
        checker.feed(frames, times_ms)
        if progress is not None:
            progress(len(frames))
    rep = checker.finish()
    if show.damage is not None:
        rep.damaged = str(show.damage)
        rep.notes.insert(0, f"the recording is {show.damage}; checked those frames")
    return rep


def format_report(rep: Report) -> str:
    """The human-readable table."""
    lines = [f"{rep.path}: {rep.frames} frames, {rep.seconds:g} s, {rep.fps:g} fps",
             (f"flashes/s = most luminance transitions in any 1 s / 2 (limit "
              f"{rep.max_flashes_per_s:g}); speeds in deg/s (limit): the fastest the recording "
              f"proves, allowing one DMX step and {rep.jitter_ms:g} ms of recorder timing"), ""]
    head = f"{'fixture':<16} {'flashes/s':>9} {'red/s':>6} {'pan':>16} {'tilt':>16}"
    lines += [head, "-" * len(head)]

    def sp(v, lim):
        return "-" if v is None else f"{v:.1f} ({lim:g})"

    for r in [*rep.rows, rep.rig]:
        lines.append(f"{r.name:<16} {r.flashes_per_s:>9g} {r.red_flashes_per_s:>6g} "
                     f"{sp(r.pan_deg_per_s, r.pan_limit):>16} "
                     f"{sp(r.tilt_deg_per_s, r.tilt_limit):>16}")
    lines.append("")
    lines += [f"note: {n}" for n in rep.notes]
    if rep.violations:
        lines.append(f"{len(rep.violations)} violation(s):")
        lines += [f"  - {v}" for v in rep.violations]
    else:
        lines.append("no violations")
    return "\n".join(lines)


def parse_sources(items: Iterable[str]) -> dict[str, Path]:
    """``--fixture-source KEY=FILE`` values -> {profile key: fixture file}."""
    from .errors import LatentDMXError

    out: dict[str, Path] = {}
    for item in items:
        key, sep, file = item.partition("=")
        if not sep or not key or not file:
            raise LatentDMXError(f"{item!r} is not KEY=FILE", field="--fixture-source",
                                 fix="e.g. --fixture-source cameo-par=/usr/share/qlcplus/"
                                     "fixtures/Cameo/Cameo-LED-Mini-PAR-CAN-RGBW-7x8W.qxf")
        out[key] = Path(file)
    return out
