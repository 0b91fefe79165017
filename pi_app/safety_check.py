"""An independent checker of recorded shows (``latentdmx safety-check RECORDING``).

It reads the DMX bytes of an ``ola_recorder`` show (ours or any other tool's) and the rig
config (to know what each slot means), and measures — without trusting the safety stage:

- **flashes**: transitions of relative luminance of ``delta`` (10 %) or more, counted with a
  hysteresis tracker (a transition is a swing of >= delta from the extreme since the previous
  transition, the other way; WCAG 2.3.1: luminance transitions count only when the darker state
  is below 0.80), per fixture, for the rig (mean of fixtures) and for red light (no darker-state
  condition); flashes/s = the most transitions in any 1-s window / 2. More than
  ``max_flashes`` (3) is a violation.
- **pan/tilt speed** in degrees per second (over lags of 1 frame .. 0.25 s, allowing one DMX
  step and 1 ms of timing rounding), against the safety limits; keep-out boxes entered or
  crossed (straight path between frames, in scene coordinates).
- **slots**: held channels (reset, macros, auto programs) not at their held value, strobe
  channels open (unless allowed), light channels outside their range (e.g. the Lumeri's
  dimmer above 134 is its strobe).

``raw=True`` needs no config: every slot is an intensity (value / 255), the rig is the mean
of the slots that ever light.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .config import Config
from .safety import _COLOUR_ATTRS, light_weights, segments_enter, slew_limits_deg_per_s

WCAG_MAX_FLASHES = 3.0
WCAG_DELTA = 0.1
DARK_LIMIT = 0.8            # WCAG: the darker state of a flash is below 0.80
SPEED_WINDOW_S = 0.25


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

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d


# -- flash counting -------------------------------------------------------------------------
def transition_frames(x: np.ndarray, delta: float, dark: np.ndarray) -> list[np.ndarray]:
    """Frames of luminance transitions of each signal: x (T, S); dark (S,): apply the
    darker-state < 0.8 rule. Returns one array of frame indices per signal."""
    T, S = x.shape
    if T == 0:
        return [np.zeros(0, np.int64) for _ in range(S)]
    d = np.zeros(S, np.int8)                 # +1: last transition up, -1: down, 0: none yet
    hi, lo = x[0].copy(), x[0].copy()        # extremes since the last transition
    thr = delta - 1e-9
    nodark = ~dark
    ev_t, ev_s = [], []
    for t in range(1, T):
        v = x[t]
        np.maximum(hi, v, out=hi)
        np.minimum(lo, v, out=lo)
        up = (d <= 0) & (v - lo >= thr) & (nodark | (lo < DARK_LIMIT))
        down = (d >= 0) & (hi - v >= thr) & (nodark | (v < DARK_LIMIT)) & ~up
        ev = up | down
        if ev.any():
            s = np.flatnonzero(ev)
            ev_t.append(np.full(len(s), t))
            ev_s.append(s)
            d[up] = 1
            d[down] = -1
            hi[ev] = v[ev]
            lo[ev] = v[ev]
    if not ev_t:
        return [np.zeros(0, np.int64) for _ in range(S)]
    et, es = np.concatenate(ev_t), np.concatenate(ev_s)
    return [et[es == s] for s in range(S)]


def max_in_window(frames_idx: np.ndarray, times_ms: np.ndarray, window_ms: int = 1000) -> int:
    """Most events in any half-open window [t, t + 1 s)."""
    if len(frames_idx) == 0:
        return 0
    t = times_ms[frames_idx]
    return int((np.searchsorted(t, t + window_ms, side="left") - np.arange(len(t))).max())


def flashes_per_s(x: np.ndarray, times_ms: np.ndarray, delta: float,
                  dark: np.ndarray) -> np.ndarray:
    """Max flashes (transitions / 2) in any 1-s window, per signal: (S,)."""
    ev = transition_frames(x, delta, dark)
    return np.array([max_in_window(e, times_ms) / 2.0 for e in ev])


# -- the rig's light and aim from DMX bytes ---------------------------------------------------
def _slot(patch_uidx: dict, universe: int, address: int) -> int:
    return patch_uidx[universe] * 512 + address - 1


def check_frames(frames: np.ndarray, universes: tuple[int, ...], times_s: np.ndarray,
                 config: Config | None = None, *, raw: bool = False,
                 max_flashes: float = WCAG_MAX_FLASHES, delta: float = WCAG_DELTA,
                 path: str = "<frames>") -> Report:
    """Check frames uint8[T, U, 512] at times_s (T,) against the rig of `config` (or raw)."""
    T = len(frames)
    times_ms = np.rint(np.asarray(times_s, np.float64) * 1000.0).astype(np.int64)
    span = (times_ms[-1] - times_ms[0]) / 1000.0 if T else 0.0
    fps = (T - 1) / span if T > 1 and span > 0 else 0.0
    rep = Report(path, T, round(span, 3), round(fps, 2), max_flashes)
    if T == 0:
        rep.notes.append("no frames")
        return rep
    flat = frames.reshape(T, -1).astype(np.float64)
    limit = 2 * max_flashes            # transitions allowed in any 1-s window
    if raw:
        lit = np.flatnonzero(flat.max(axis=0) > 0)
        x = flat[:, lit] / 255.0
        rig = x.mean(axis=1, keepdims=True) if len(lit) else np.zeros((T, 1))
        sig = np.concatenate([x, rig], axis=1)
        f = flashes_per_s(sig, times_ms, delta, np.ones(sig.shape[1], bool))
        for k, s in enumerate(lit):
            u, a = universes[s // 512], s % 512 + 1
            rep.rows.append(Row(f"{u}/{a}", float(f[k])))
            if f[k] * 2 > limit:
                rep.violations.append(f"slot {u}/{a}: {f[k]:g} flashes/s (limit {max_flashes:g})")
        rep.rig.flashes_per_s = float(f[-1])
        if f[-1] * 2 > limit:
            rep.violations.append(f"rig: {f[-1]:g} flashes/s (limit {max_flashes:g})")
        return rep
    assert config is not None, "a config is needed unless raw"
    from .patch import Patch

    patch = Patch(config)
    uidx = {u: k for k, u in enumerate(universes)}
    rig_universes = {f.universe for f in patch.fixtures}
    unchecked = [u for u in universes if u not in rig_universes and frames[:, uidx[u]].any()]
    if unchecked or not rig_universes & set(uidx):
        from .errors import LatentDMXError
        what = (f"universe(s) {unchecked} carry light the rig does not patch" if unchecked
                else f"none of the rig's universes {sorted(rig_universes)} is in it")
        raise LatentDMXError(f"{what}, so they cannot be checked", file=path,
                             field="universes", fix="give the rig's config with --config, or "
                                                    "check every slot with --raw")
    missing = sorted(rig_universes - set(uidx))
    if missing:
        rep.notes.append(f"universes {missing} not in the recording: read as 0")
    flat = np.concatenate([flat, np.zeros((T, 1))], axis=1)      # column -1: a zero slot
    zero = flat.shape[1] - 1
    n = len(patch.fixtures)
    Y = np.zeros((T, n))
    G = np.zeros((T, n))

    def col(fx, j):
        return _slot(uidx, fx.universe, fx.address + j) if fx.universe in uidx else zero

    for fx in patch.fixtures:
        chans = fx.mode.channels
        dim: np.ndarray = np.ones(T)
        colour = np.zeros((T, 4))
        for j, ch in enumerate(chans):
            v = flat[:, col(fx, j)]
            where = f"{fx.name} channel {j + 1} ({ch.label or ch.attr})"
            if ch.attr == "hold":
                bad = np.flatnonzero(v != ch.value)
                if len(bad):
                    rep.violations.append(f"{where}: held at {ch.value} but {int(v[bad[0]])} "
                                          f"at {times_ms[bad[0]] / 1000:g} s")
            elif ch.attr == "strobe":
                bad = np.flatnonzero(v != 0)
                if len(bad):
                    rep.violations.append(f"{where}: strobe channel open ({int(v[bad[0]])}) "
                                          f"at {times_ms[bad[0]] / 1000:g} s")
            elif ch.attr in ("dimmer", "intensity") or ch.attr in _COLOUR_ATTRS:
                bad = np.flatnonzero((v < ch.min) | (v > ch.max))
                if len(bad):
                    rep.violations.append(f"{where}: {int(v[bad[0]])} is outside its light range "
                                          f"{ch.min}..{ch.max} (strobe/macro part) at "
                                          f"{times_ms[bad[0]] / 1000:g} s")
                level = np.clip((v - ch.min) / max(ch.max - ch.min, 1), 0.0, 1.0)
                if ch.attr in ("dimmer", "intensity"):
                    dim *= level
                else:
                    colour[:, _COLOUR_ATTRS.index(ch.attr)] = level
        wy, wr = light_weights(fx.mode)
        if any(fx.mode.has(a) for a in _COLOUR_ATTRS):
            Y[:, fx.index] = dim * (colour @ wy.astype(np.float64))
            G[:, fx.index] = dim * (colour @ wr.astype(np.float64))
        else:
            Y[:, fx.index] = dim
        row = Row(fx.name)
        rep.rows.append(row)
        _check_aim(rep, row, fx, config, flat, col, times_ms, fps)
        check_aim_limits(rep, fx, flat, col, times_ms)
    sig = np.concatenate([Y, Y.mean(axis=1, keepdims=True)], axis=1)
    red = np.concatenate([np.maximum(G, 0.0), np.maximum(G.mean(axis=1, keepdims=True), 0.0)],
                         axis=1)
    fl = flashes_per_s(sig, times_ms, delta, np.ones(n + 1, bool))
    fr = flashes_per_s(red, times_ms, delta, np.zeros(n + 1, bool))
    for k, row in enumerate([*rep.rows, rep.rig]):
        row.flashes_per_s, row.red_flashes_per_s = float(fl[k]), float(fr[k])
        if fl[k] * 2 > limit:
            rep.violations.append(f"{row.name}: {fl[k]:g} flashes/s (limit {max_flashes:g})")
        if fr[k] * 2 > limit:
            rep.violations.append(f"{row.name}: {fr[k]:g} red flashes/s "
                                  f"(limit {max_flashes:g})")
    return rep


def _check_aim(rep: Report, row: Row, fx, config: Config, flat, col, times_ms, fps) -> None:
    """Pan/tilt speeds against the slew limits, and keep-out boxes, for one fixture."""
    chans = [c.attr for c in fx.mode.channels]
    pos = {}
    lims = slew_limits_deg_per_s(config, fx.profile)
    for k, (attr, full) in enumerate((("pan", fx.profile.pan_deg), ("tilt", fx.profile.tilt_deg))):
        if attr not in chans or full <= 0:
            continue
        coarse = flat[:, col(fx, chans.index(attr))]
        if attr + "_fine" in chans:
            u = (coarse * 256 + flat[:, col(fx, chans.index(attr + "_fine"))]) / 65535.0
            lsb = full / 65535.0
        else:
            u, lsb = coarse / 255.0, full / 255.0
        pos[attr] = u
        deg = u * full
        speed, over = 0.0, None
        lags = max(1, round(SPEED_WINDOW_S * fps)) if fps else 1
        for lag in range(1, min(lags, len(deg) - 1) + 1):
            dt = (times_ms[lag:] - times_ms[:-lag]) / 1000.0
            ok = dt > 0
            if not ok.any():
                continue
            v = np.abs(deg[lag:] - deg[:-lag])[ok] / dt[ok]
            tol = lims[k] * (1 + 0.001 / dt[ok]) + lsb / dt[ok] + 1e-6
            if lag == lags:
                speed = float(v.max())
            if over is None and (v > tol).any():
                i = int(np.argmax(v - tol))
                over = (float(v[i]), float(times_ms[:-lag][ok][i] / 1000))
        if lags > len(deg) - 1 and len(deg) > 1:      # short recording: longest lag there is
            dt = (times_ms[-1] - times_ms[0]) / 1000.0
            speed = float(abs(deg[-1] - deg[0]) / dt) if dt > 0 else 0.0
        setattr(row, f"{attr}_deg_per_s", round(speed, 1))
        setattr(row, f"{attr}_limit", round(lims[k], 1))
        if over is not None:
            rep.violations.append(f"{fx.name}: {attr} moves at {over[0]:.0f} deg/s at "
                                  f"{over[1]:g} s (limit {lims[k]:g})")
    if fx.config.keep_out and "pan" in pos and "tilt" in pos:
        p = np.stack([_to_scene(pos["pan"], fx.profile.pan_deg, fx.config.pan_limits_deg,
                                fx.config.invert_pan, fx.config.pan_offset_deg),
                      _to_scene(pos["tilt"], fx.profile.tilt_deg, fx.config.tilt_limits_deg,
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
                                      f"{list(box)} at {times_ms[i] / 1000:g} s")


def check_aim_limits(rep: Report, fx, flat: np.ndarray, col, times_ms: np.ndarray) -> None:
    """Pan/tilt outside the fixture's configured `pan/tilt_limits_deg` (the profile's range
    if none), in the fixture's own degrees, allowing one DMX step of rounding."""
    chans = [c.attr for c in fx.mode.channels]
    for attr, full in (("pan", fx.profile.pan_deg), ("tilt", fx.profile.tilt_deg)):
        if attr not in chans or full <= 0:
            continue
        lim = tuple(getattr(fx.config, f"{attr}_limits_deg"))
        lo, hi = lim if lim != (0.0, 0.0) else (0.0, full)
        coarse = flat[:, col(fx, chans.index(attr))]
        if attr + "_fine" in chans:
            deg = (coarse * 256 + flat[:, col(fx, chans.index(attr + "_fine"))]) / 65535 * full
            step = full / 65535
        else:
            deg, step = coarse / 255 * full, full / 255
        out = np.flatnonzero((deg < lo - step) | (deg > hi + step))
        if len(out):
            i = int(out[0])
            rep.violations.append(f"{fx.name}: {attr} at {deg[i]:.1f} deg at "
                                  f"{times_ms[i] / 1000:g} s is outside its limits "
                                  f"{lo:g}..{hi:g} deg ({len(out)} frames)")


def _to_scene(u: np.ndarray, full: float, lim, invert: bool, offset: float) -> np.ndarray:
    """Physical position (0..1 of the profile range) -> scene coordinate (inverse of patch)."""
    lo, hi = lim if tuple(lim) != (0.0, 0.0) else (0.0, full)
    a, b = (lo + offset) / full, (hi - lo) / full
    if invert:
        a, b = a + b, -b
    return (u - a) / b


def check_recording(path, config: Config | None, *, raw: bool = False,
                    max_flashes: float = WCAG_MAX_FLASHES, delta: float = WCAG_DELTA) -> Report:
    from .sim.record import read_show

    frames, universes, times = read_show(path)
    return check_frames(frames, universes, times, config, raw=raw, max_flashes=max_flashes,
                        delta=delta, path=str(path))


def format_report(rep: Report) -> str:
    """The human-readable table."""
    lines = [f"{rep.path}: {rep.frames} frames, {rep.seconds:g} s, {rep.fps:g} fps",
             (f"flashes/s = most luminance transitions in any 1 s / 2 (limit "
             f"{rep.max_flashes_per_s:g}); speeds in deg/s (limit)"), ""]
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
