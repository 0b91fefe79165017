"""Safety stage, between the mapper and the patch: whatever the model says, what reaches the
lights is slow enough not to flash, not to whip a head across the room, and dark at the end.

Per frame, vectorised over fixtures (no per-fixture Python):

1. **Aim.** Pan/tilt move towards the model's aim at most ``pan/tilt_slew_deg_per_s``
   (default: the profile's full range in `DEFAULT_TRAVERSE_S`), starting from the park
   position. A move whose straight path would enter a keep-out box (expanded by one DMX step)
   is tried as a pan-only move, then as a tilt-only move (so the beam slides along the box),
   else the head stays put. On stop the aim is the park position.
2. **Light.** dimmer x `master` x `level` x fade-in x fade-out, then the optional colour slew.
   `master` is the grand master (the operator's dimmer: `latentdmx dim`, the page, OSC);
   `level` is the look's own level (a recalled preset's), which multiplies under it: a
   preset recall or a playlist step sets `level` and never touches `master`.
3. **Flash limiter.** WCAG 2.3.1 / ITU-R BT.1702: a flash is a pair of opposing changes of
   relative luminance of `flash_delta` (10 %) or more; at most `max_flashes_per_s` (3) in
   any second. Two consecutive transitions (as `safety_check` counts them on the DMX bytes)
   need a swing of at least ``delta - 2q`` in between (q = the DMX rounding of one value), so
   a luminance slew limit of ``r = 2 f (delta - 2q) / 1.01`` per second keeps any 2f + 1
   transitions more than 1.01 s apart, whatever the input: a 25 Hz square wave comes out as
   a gentle swell, a slow fade (full range in 2 s) passes unchanged. The limit holds for each
   fixture's luminance `Y`, the rig's (mean of all fixtures), each fixture's red signal and
   the rig's red signal. One blend factor per fixture between its last output light and the
   wanted light (dimmer x colour, so the colour stays a mix of the two) meets all of them:
   every signal is linear in the factor.

Signals (also used by `safety_check`, on the DMX bytes):

- ``Y = dimmer x (R, G, B, W) . LUMA / sum(LUMA)`` over the colours the fixture has: Rec. 709
  weights for R, G, B and a white emitter counted as 1.0, relative to the fixture's own
  maximum (all emitters full). A fixture with no colour channels: its dimmer/intensity value.
- red: ``dimmer x max(0, R - G - B - W)`` — positive only where red outweighs all other light
  (stricter than WCAG's R/(R+G+B) >= 0.8, and continuous so it can be rate-limited); for the
  rig ``max(0, mean(dimmer x (R - G - B - W)))``: the room's light as a whole.
"""

from __future__ import annotations

import math

import numpy as np

from . import columns as col
from . import scene as sc
from .config import FASTEST_TRAVERSE_S, PARK_GRACE_S, Config
from .errors import ConfigError
from .fixtures.profile import SUBTRACTIVE

DEFAULT_TRAVERSE_S = FASTEST_TRAVERSE_S   # pan/tilt slew: the profile's full range in 3 s
RED_W = sc.RED_W                 # red excess over other light (scene layout: colour roles)
WINDOW_MARGIN = 1.01          # transitions of one window kept 1 % further apart than 1 s
DARK = 1e-3                   # light below this counts as dark for `fade_out_done`
DARK_TO_PARK = 0.04          # on stop, a head heads for park once its light is this dark
SMOOTH_S = 0.25               # time constant of the target's low-pass while limiting
_COLOUR_ATTRS = sc.COLOUR_ATTRS
_ZERO = np.float32(0.0)


def _unit(value: float) -> float:
    """`value` clamped to 0..1 (NaN: 0)."""
    value = float(value)
    return 0.0 if math.isnan(value) else min(1.0, max(0.0, value))


def default_slew_deg_per_s(full_deg: float) -> float:
    """The profile default pan/tilt speed limit: the full range in `DEFAULT_TRAVERSE_S`."""
    return full_deg / DEFAULT_TRAVERSE_S


def slew_limits_deg_per_s(config: Config, profile) -> tuple[float, float]:
    """(pan, tilt) speed limits of a fixture in degrees per second (config, else default)."""
    s = config.safety
    return (s.pan_slew_deg_per_s or default_slew_deg_per_s(profile.pan_deg),
            s.tilt_slew_deg_per_s or default_slew_deg_per_s(profile.tilt_deg))


def light_weights(mode) -> tuple[np.ndarray, np.ndarray]:
    """(Y weights, red weights) over (R, G, B, W) for a fixture mode: see module docstring."""
    mask = np.array([mode.has_colour(a) for a in _COLOUR_ATTRS], np.float32)
    if not mask.any():                       # dimmer/intensity only: light = that value
        k = sc.N_COLOUR
        return np.full(k, 1.0 / k, np.float32), np.zeros(k, np.float32)
    wy = mask * sc.LUMA
    red = mask[_COLOUR_ATTRS.index("red")]
    return wy / wy.sum(), mask * RED_W if red else np.zeros(sc.N_COLOUR, np.float32)


def quantisation(modes) -> tuple[float, float]:
    """Worst rounding error of one DMX value of (Y, red) over the patched modes."""
    qy = qr = 0.0
    for m in modes:
        # A shutter switched open (min == max: open on every frame, closed only by a
        # blackout) takes no part: its one step would leave the limiter no room at all.
        dims = [c.max - c.min for c in m.channels
                if c.attr in ("dimmer", "intensity") and c.max > c.min]
        cols = [c.max - c.min for c in m.channels
                if c.attr in _COLOUR_ATTRS or c.attr in SUBTRACTIVE]
        qd = 0.5 / max(min(dims), 1) if dims else 0.0
        qc = 0.5 / max(min(cols), 1) if cols else 0.0
        qy = max(qy, qd + qc)
        qr = max(qr, qd + len(cols) * qc)
    return qy, qr


def strobe_hazards(patch) -> list[tuple[str, str]]:
    """Channels through which a fixture could strobe, reset or run a macro: (fixture, why)."""
    out = []
    for f in patch.fixtures:
        for j, ch in enumerate(f.mode.channels):
            label = ch.label.lower()
            where = f"{f.name} channel {j + 1} ({ch.label or ch.attr})"
            if ch.attr == "hold" and ch.value != 0 and any(
                    w in label for w in ("strobe", "shutter", "reset", "macro", "auto",
                                         "program", "sound")):
                out.append((f.name, f"{where} is held at {ch.value}"))
            elif ch.attr in ("dimmer", "intensity") and "strobe" in label and ch.max == 255:
                out.append((f.name, f"{where} may be written up to 255, into its strobe part"))
    return out


class Safety:
    """The safety stage: ``Safety(config, patch, fps)(scene, t_s)`` per frame."""

    def __init__(self, config: Config, patch, fps: float) -> None:
        cfg = self.cfg = config.safety
        hazards = strobe_hazards(patch)
        if hazards:                         # LatentDMX never strobes (WCAG 2.3.1)
            raise ConfigError(hazards[0][1], file=config.path, field="fixtures",
                              fix="restrict the profile's dimmer range (e.g. max 134) or hold "
                                  "the channel at 0 (`latentdmx fixtures show` shows it)")
        self.fps = float(fps)
        self.master = cfg.master       # the grand master (live: `dim`)
        self.level = 1.0               # the look's own level (a preset's), under the master
        n = len(patch.fixtures)
        f32 = np.float32
        # -- aim: per-fixture scene step per frame, park, keep-out boxes ------------------
        steps, margins = np.ones((n, 2), f32), np.zeros((n, 2), f32)
        for f in patch.fixtures:
            lims = slew_limits_deg_per_s(config, f.profile)
            for k, (full, lim, deg_s) in enumerate((
                    (f.profile.pan_deg, f.config.pan_limits_deg, lims[0]),
                    (f.profile.tilt_deg, f.config.tilt_limits_deg, lims[1]))):
                if full <= 0:
                    continue
                span = (lim[1] - lim[0]) if lim != (0.0, 0.0) else full     # degrees of 0..1
                steps[f.index, k] = deg_s / self.fps / span
                attr = ("pan", "tilt")[k]
                fine = f.mode.has(attr + "_fine")
                margins[f.index, k] = (1.0 / (65535 if fine else 255)) * full / span + 1e-4
        self._step_pt = steps
        self._held = sc.HELD.stop > sc.HELD.start
        self._park = np.array([f.park for f in config.fixtures], f32).reshape(n, 2)
        boxes, owner = [], []
        for f in patch.fixtures:
            for b in f.config.keep_out:
                mx, my = margins[f.index]
                boxes.append((b[0] - mx, b[1] + mx, b[2] - my, b[3] + my))
                owner.append(f.index)
        self._boxes = np.array(boxes, np.float64).reshape(-1, 4)
        self._boxes_exact = np.array([b for f in patch.fixtures for b in f.config.keep_out],
                                     np.float64).reshape(-1, 4)
        self._owner = np.array(owner, np.intp)
        # -- light: signal weights, canonical colour for colourless fixtures ---------------
        wy, wr = (zip(*(light_weights(f.mode) for f in patch.fixtures), strict=True) if n
                  else ((), ()))
        self._wy = np.array(wy, f32).reshape(n, sc.N_COLOUR)
        self._wr = np.array(wr, f32).reshape(n, sc.N_COLOUR)
        self._colourless = np.array([not any(f.mode.has_colour(a) for a in _COLOUR_ATTRS)
                                     for f in patch.fixtures], bool)
        self._intensity = np.array([f.mode.has("intensity") and not f.mode.has("dimmer")
                                    for f in patch.fixtures], bool)
        self._any_colourless = bool(self._colourless.any())
        qy, qr = quantisation([f.mode for f in patch.fixtures])
        self.q_y, self.q_red = qy, qr
        two_f = 2.0 * cfg.max_flashes_per_s
        self.lum_slew_per_s = max(0.0, two_f * (cfg.flash_delta - 2 * qy) / WINDOW_MARGIN)
        self.red_slew_per_s = max(0.0, two_f * (cfg.flash_delta - 2 * qr) / WINDOW_MARGIN)
        self._sy = f32(self.lum_slew_per_s / self.fps)
        self._sr = f32(self.red_slew_per_s / self.fps)
        self._sc = f32(cfg.colour_slew_per_s / self.fps) if cfg.colour_slew_per_s > 0 else None
        self._k_smooth = f32(1.0 - math.exp(-1.0 / (self.fps * SMOOTH_S)))
        self._smooth = np.zeros((n, 1 + sc.N_COLOUR), f32)   # low-passed wanted dimmer, colour
        self._limited = np.zeros(n, bool)             # was the limiter active last frame?
        self._free = np.ones((n, 1), bool)            # ~_limited, shaped for `where=`
        self._w2 = np.stack([self._wy, self._wr], axis=1)          # (n, 2, 4): Y, red weights
        self._w2_rows = np.ascontiguousarray(self._w2.transpose(1, 2, 0))   # (2, 4, n)
        self._prod_rows = np.zeros((2, n), f32)          # one weighted term, one sum
        self._prod = np.zeros((n, 2, sc.N_COLOUR), f32)  # ... a small rig's (`_signals`)
        inv = (1.0 / np.maximum(np.array([self._sy, self._sr], f32), 1e-12)).astype(f32)
        self._inv_sy, self._inv_sr = inv               # float32 scalars
        # `_nothing_to_limit` proves a == 1 from |dy| <= sy: true only if sy >= the 1e-12
        # floor of `_limit`'s divisor (sy = 0 would hold every fixture, however still)
        self._exact_gate = bool(self._sy >= f32(1e-12))
        # bound on the rounding of the rig's mean red excess (float32 sums of n values of g in
        # [-3, 1] and dg in [-4, 4]): (n - 1) * 2^-24 * (3 + 4), doubled for the float64 steps
        self._rig_slack = 14.0 * max(n - 1, 1) * 2.0 ** -24
        self._absd = np.zeros((n, 2), f32)            # |dY|, |dg| per fixture
        self._mx = np.zeros(2, f32)                   # their maxima
        self._v = np.zeros(n, f32)
        self._t = np.zeros(n, f32)
        self._d5 = np.zeros((n, 1 + sc.N_COLOUR), f32)
        self._any_limited = False
        self.interventions = 0          # times the limiter started holding light back (health)
        self._step = np.zeros((n, 2), f32)
        self._neg_step_pt = -self._step_pt
        self._raw = np.zeros((n, sc.N_ATTRS), f32)
        self._ones = np.ones((n, sc.N_ATTRS), f32)
        self._e_d = np.zeros((n, sc.N_COLOUR), f32)
        self._de = np.zeros((n, sc.N_COLOUR), f32)
        self._dyg = np.zeros((n, 2), f32)
        self._e = np.zeros((n, sc.N_COLOUR), f32)               # emitted light of the last output
        self._yg = np.zeros((n, 2), f32)              # its Y and red excess g
        # -- state: the last output --------------------------------------------------------
        self._out = sc.empty_scene(n)
        self._out[:, sc.AIM] = self._park
        self._raw_light = self._raw[:, sc.LIGHT]
        self._out_light = self._out[:, sc.LIGHT]
        self._out_pt = self._out[:, sc.AIM]
        self._t0: float | None = None
        self._stop_t: float | None = None
        self._frames = 0

    # -- live master and level -------------------------------------------------------------
    @property
    def master(self) -> float:
        """The grand master, 0..1: the operator's dimmer over everything."""
        return self._master

    @master.setter
    def master(self, value: float) -> None:
        self._master = _unit(value)

    @property
    def level(self) -> float:
        """The look's own level, 0..1 (a recalled preset's `master`), under the grand master."""
        return self._level

    @level.setter
    def level(self, value: float) -> None:
        self._level = _unit(value)

    # -- per frame ------------------------------------------------------------------------
    def _gain(self, t_s: float) -> float:
        cfg = self.cfg
        if self._t0 is None:
            self._t0 = t_s
        gain = self._master * self._level
        if cfg.fade_in_s > 0:
            gain *= min(1.0, max(0.0, (t_s - self._t0) / cfg.fade_in_s))
        if self._stop_t is not None:
            gain *= (max(0.0, 1.0 - (t_s - self._stop_t) / cfg.fade_out_s)
                     if cfg.fade_out_s > 0 else 0.0)
        return gain

    def __call__(self, scene: np.ndarray, t_s: float) -> np.ndarray:
        """Raw scene (n, N_ATTRS) -> safe scene, float32 (the stage's own buffer: copy to keep).

        Kept to ~15 NumPy calls when nothing needs limiting (the usual case); `_limit` runs
        only on frames where some fixture changes faster than the flash limiter allows."""
        raw, out = self._raw, self._out
        np.fmax(scene, 0.0, out=raw)             # NaN -> 0, and clip to [0, 1]
        np.fmin(raw, self._ones, out=raw)       # (an array operand is cheaper than 1.0)
        gain = self._gain(t_s)
        aim = raw[:, sc.AIM]
        if self._stop_t is not None:     # park in the dark: a head moves once its light is out
            lit = out[:, sc.DIMMER] * out[:, sc.COLOUR].max(axis=1) > DARK_TO_PARK
            aim = np.where(lit[:, None], aim, self._park)
        self._aim(aim, out)
        if self._held:                           # held attributes pass through as they are
            out[:, sc.HELD] = raw[:, sc.HELD]
        light = self._raw_light                  # wanted (dimmer, R, G, B, W): view of raw
        if gain != 1.0:
            light[:, 0] *= gain
        if self._any_colourless:                 # they carry their light in the dimmer
            cl = self._colourless
            lum = np.where(self._intensity, np.minimum(light[:, 1:] @ sc.LUMA, 1.0), 1.0)
            light[:, 0] = np.where(cl, light[:, 0] * lum, light[:, 0])
            light[cl, 1:] = 1.0
        # while the limiter is active, aim at a low-pass of the wanted light (a strobe comes
        # out as its average glow, not as a slow triangle); otherwise at the wanted light
        smoothed = self._any_limited
        if smoothed:
            sm, d = self._smooth, self._d5
            col.colwise(np.subtract, light, sm, out=d)    # sm += k * (light - sm), in place
            d *= self._k_smooth
            sm += d
            col.copyto(sm, light, where=self._free)
            light = sm
        if self._frames == 0:
            out[:, sc.COLOUR] = light[:, 1:]     # dark start: the first colour is the wanted one
        if self._sc is not None:
            c_p = out[:, sc.COLOUR]
            light = light.copy()
            light[:, 1:] = c_p + np.clip(light[:, 1:] - c_p, -self._sc, self._sc)
        # flash limiter: emitted light e = dimmer x colour; every signal is linear in e
        e_d = col.colwise(np.multiply, light[:, 1:], light[:, 0:1], out=self._e_d)
        de = np.subtract(e_d, self._e, out=self._de)
        dyg = self._signals(de, self._dyg)                        # (n, 2): change of Y, red
        # quick gate: every |change| / allowed <= 1 (rounding is monotone, so scaling the
        # largest |change| of each signal decides it: one float32 product each)
        mx = col.max_rows(np.abs(dyg, out=self._absd), self._mx)
        quick = mx[0] * self._inv_sy <= 1.0 and mx[1] * self._inv_sr <= 1.0
        if not quick:
            yg = self._last_yg()
        if quick or self._nothing_to_limit(dyg, yg):    # nothing to limit; the rig's signals
            np.copyto(self._out_light, light)    # are means of these, so they are within too
            self._e, self._e_d = e_d, self._e    # e_d is the new e: swap buffers, no copy
            if self._any_limited:
                self._limited[:] = False
                self._free[:] = True
                self._any_limited = False
        else:
            if not smoothed:
                np.copyto(self._smooth, light)
            self._limit(light, dyg, yg, out)
            col.colwise(np.multiply, out[:, sc.COLOUR], out[:, sc.INTENSITY], out=self._e)
        self._frames += 1
        return out

    def _last_yg(self) -> np.ndarray:
        """(Y, red excess g) of the last output light, exactly (not accumulated): (n, 2)."""
        return self._signals(self._e, self._yg)

    def _signals(self, e: np.ndarray, out: np.ndarray) -> np.ndarray:
        """(Y, red excess g) of emitted light e (n, 4) into out (n, 2): per signal
        ``sum_last(e * w2[:, k, :])``, the same sums in the same order, bit for bit, with
        every term a contiguous row (`tests/test_columns.py`)."""
        if len(e) < col.SMALL:                       # a small rig: the broadcast form
            np.multiply(e[:, None, :], self._w2, out=self._prod)
            return sum_last(self._prod, out)
        w, (term, acc) = self._w2_rows, self._prod_rows
        for k in range(2):
            np.multiply(e[:, 0], w[k, 0], out=acc)
            for j in range(1, w.shape[1]):
                np.multiply(e[:, j], w[k, j], out=term)
                acc += term
            acc += _ZERO
            out[:, k] = acc
        return out

    def _nothing_to_limit(self, dyg: np.ndarray, yg: np.ndarray) -> bool:
        """True if `_limit` would leave every fixture's factor at exactly 1 (its output is then
        the wanted light, bit for bit: the light holds no -0.0, as fmax(x, 0.0) gives +0.0): a
        cheap exact test for the many frames where the quick gate fails only because some
        fixture's red excess g swings while it stays negative. (`tests/test_safety_fastpath`)

        Per fixture, `_limit` lowers a only if |dy| > sy, or if the red excess crosses its band
        (v > hi, or v < lo where rho_p > sr). hi >= sr and hi >= g_p + sr (in float32 too, as
        rounding is monotone), so v > hi needs dg > sr and v > sr; v < lo needs dg < -sr and
        g_p > sr. So a < 1 needs |dy| > sy or min(|dg|, max(g_p, v)) > sr. With every a = 1
        the rig's factor is computed exactly as `_limit` does; if no fixture's g_p or v is
        above 0 it is 1 (the rig's mean g stays <= 0, and its new mean is off an exact <= 0 by
        float32 rounding of the sums only, < `_rig_slack` < sr)."""
        if not self._exact_gate:
            return False
        absd = self._absd                            # (|dy|, |dg|)
        if self._mx[0] > self._sy:
            return False                             # Y may need limiting: `_limit` says
        g_p, dg = yg[:, 1], dyg[:, 1]
        v, t = self._v, self._t
        np.add(g_p, dg, out=v)
        np.maximum(g_p, v, out=t)
        if np.maximum.reduce(t) <= 0.0 and self._rig_slack < self._sr:
            return True                              # no red anywhere, before or after
        np.minimum(t, absd[:, 1], out=t)
        if np.maximum.reduce(t) > self._sr:
            return False
        n = len(g_p)
        gm_p = float(np.add.reduce(g_p)) / n
        np.copyto(t, dg)                             # a * dg with a = 1, contiguous as there
        dgm = float(np.add.reduce(t)) / n
        sr = float(self._sr)
        rm_p = max(gm_p, 0.0)
        return _alpha1(gm_p, dgm, rm_p - sr if rm_p > sr else -math.inf, rm_p + sr) >= 1.0

    def _limit(self, light: np.ndarray, dyg: np.ndarray, yg: np.ndarray,
               out: np.ndarray) -> None:
        """Blend each fixture between its last light and the wanted one, as far as allowed
        (yg: the exact (Y, g) of the last light)."""
        sy, sr = self._sy, self._sr
        g_p, dy, dg = yg[:, 1], dyg[:, 0], dyg[:, 1]
        a = np.minimum(1.0, sy / np.maximum(np.abs(dy), 1e-12))
        rho_p = np.maximum(g_p, 0.0)
        a = np.minimum(a, _alpha(g_p, dg, rho_p - sr, rho_p + sr, rho_p > sr))
        # the rig's red, max(0, mean g), moves by at most sr too: one factor for all
        n = len(a)
        gm_p = float(np.add.reduce(g_p)) / n
        dgm = float(np.add.reduce(a * dg)) / n
        rm_p = max(gm_p, 0.0)
        srf = float(sr)
        beta = _alpha1(gm_p, dgm, rm_p - srf if rm_p > srf else -math.inf, rm_p + srf)
        if beta < 1.0:
            a *= beta
        np.less(a, 1.0, out=self._limited)
        np.logical_not(self._limited[:, None], out=self._free)
        was = self._any_limited
        self._any_limited = bool(self._limited.any())
        if self._any_limited and not was:
            self.interventions += 1
        d_p, c_p = out[:, sc.DIMMER], out[:, sc.COLOUR]
        d_d, c_d = light[:, 0], light[:, 1:]
        w_p = (1.0 - a) * d_p
        w = w_p + a * d_d                        # the new dimmer
        ratio = w_p / np.maximum(w, 1e-30)       # colour: mix weighted by each side's dimmer
        self._mix(c_p, c_d, ratio)
        out[:, sc.DIMMER] = w

    def _mix(self, c_p: np.ndarray, c_d: np.ndarray, ratio: np.ndarray) -> None:
        """``c_p[:] = c_d + ratio[:, None] * (c_p - c_d)``, column by column (the same
        numbers; NumPy runs the broadcast form as one short loop per fixture)."""
        if len(ratio) < col.SMALL:                   # a small rig: the broadcast form
            c_p[:] = c_d + ratio[:, None] * (c_p - c_d)
            return
        diff = self._v
        for j in range(c_d.shape[1]):
            np.subtract(c_p[:, j], c_d[:, j], out=diff)
            np.multiply(ratio, diff, out=diff)
            np.add(c_d[:, j], diff, out=c_p[:, j])

    def _aim(self, target: np.ndarray, out: np.ndarray) -> None:
        prev = self._out_pt
        step = col.colwise(np.subtract, target, prev, out=self._step)
        np.minimum(step, self._step_pt, out=step)
        np.maximum(step, self._neg_step_pt, out=step)
        if not len(self._boxes):
            col.colwise(np.add, prev, step, out=prev)
            return
        p0 = prev.astype(np.float64)
        full = p0 + step
        blocked = _blocked(p0, full, self._boxes, self._boxes_exact, self._owner, len(p0))
        if blocked.any():       # slide: pan only, else tilt only, else stay
            pan_only = p0.copy()
            pan_only[:, 0] = full[:, 0]
            tilt_only = p0.copy()
            tilt_only[:, 1] = full[:, 1]
            n = len(p0)
            both = _blocked(np.concatenate([p0, p0]), np.concatenate([pan_only, tilt_only]),
                            np.concatenate([self._boxes, self._boxes]),
                            np.concatenate([self._boxes_exact, self._boxes_exact]),
                            np.concatenate([self._owner, self._owner + n]), 2 * n)
            alt = np.where((~both[:n])[:, None], pan_only,
                           np.where((~both[n:])[:, None], tilt_only, p0))
            full = np.where(blocked[:, None], alt, full)
        prev[:] = full

    # -- stop -------------------------------------------------------------------------------
    def start_fade_out(self, t_s: float) -> None:
        """Stop requested: light fades to dark over fade_out_s, heads go slowly to park."""
        if self._stop_t is None:
            self._stop_t = t_s

    def steady(self, t_s: float) -> bool:
        """Nothing here changes the light by itself any more: no fade in or out under way,
        the flash limiter not gliding (with the same input, the next output is the last)."""
        fade_in = self.cfg.fade_in_s
        return (self._stop_t is None and not self._any_limited and self._t0 is not None
                and (fade_in <= 0 or t_s - self._t0 >= fade_in))

    @property
    def stopping(self) -> bool:
        """The fade-out has begun."""
        return self._stop_t is not None

    def restart(self, t_s: float) -> None:
        """After a finished fade-out (the schedule's dark spell): fade in again from the dark,
        parked state, as at the start. The limiter goes on from the last output."""
        self._stop_t = None
        self._t0 = t_s

    def fade_out_done(self, t_s: float) -> bool:
        """True once the fade-out is over: lights dark and heads parked (or out of time)."""
        if self._stop_t is None:
            return False
        fade = self.cfg.fade_out_s
        if fade <= 0:
            return True
        elapsed = t_s - self._stop_t
        if elapsed < fade - 1e-9:
            return False
        dark = float(self.luminance().max(initial=0.0)) <= DARK
        parked = bool(np.all(np.abs(self._out[:, sc.AIM] - self._park) <= 1e-4))
        return (dark and parked) or elapsed >= fade + PARK_GRACE_S

    def luminance(self) -> np.ndarray:
        """Relative luminance Y of each fixture's last output: (n,)."""
        o = self._out
        return np.einsum("ij,ij->i", o[:, sc.COLOUR] * o[:, sc.INTENSITY], self._wy)

    def blackout(self, scene: np.ndarray | None = None) -> np.ndarray:
        """`scene.blackout` of the last safe scene (or of `scene` before the first frame)."""
        if self._frames == 0 and scene is not None:
            return sc.blackout(scene)
        return sc.blackout(self._out)


def sum_last(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.add.reduce(a, axis=-1, out=out)`` for a last axis shorter than 8, added in the
    order NumPy adds it, ``(((0 + a0) + a1) + a2) + a3``: the same numbers bit for bit
    (`tests/test_frame_cost.py`), and at 1,000 fixtures seven times faster than a reduction
    over four elements, which NumPy runs as one short loop per row. (Adding the 0 last
    instead of first differs only where every term is -0.0, and gives +0.0 there too.)"""
    k = a.shape[-1]
    assert 2 <= k < 8, "NumPy sums 8 or more elements pairwise"
    np.add(a[..., 0], a[..., 1], out=out)
    for j in range(2, k):
        out += a[..., j]
    out += _ZERO
    return out


def _alpha(v_p: np.ndarray, dv: np.ndarray, lo: np.ndarray, hi: np.ndarray,
           use_lo: np.ndarray) -> np.ndarray:
    """Per element: largest a in [0, 1] with v_p + a * dv <= hi, and >= lo where use_lo."""
    v = v_p + dv
    a = np.ones_like(v)
    np.divide(hi - v_p, dv, out=a, where=v > hi)
    np.divide(lo - v_p, dv, out=a, where=use_lo & (v < lo))
    return np.maximum(a, 0.0, out=a)


def _alpha1(v_p: float, dv: float, lo: float, hi: float) -> float:
    """`_alpha` for one value."""
    v = v_p + dv
    if v > hi:
        return max(0.0, (hi - v_p) / dv)
    if v < lo:
        return max(0.0, (lo - v_p) / dv)
    return 1.0


def _blocked(p0: np.ndarray, p1: np.ndarray, boxes: np.ndarray, exact: np.ndarray,
             owner: np.ndarray, n: int) -> np.ndarray:
    """Per fixture: does the segment p0 -> p1 enter any of its boxes (owner: box -> fixture)?

    The boxes are expanded by one DMX step; a head already inside that margin (parked next
    to a box) is held to the exact box, so it can leave."""
    a = p0[owner]
    near = ((a[:, 0] > boxes[:, 0]) & (a[:, 0] < boxes[:, 1]) & (a[:, 1] > boxes[:, 2]) &
            (a[:, 1] < boxes[:, 3]))
    hit = segments_enter(a, p1[owner], np.where(near[:, None], exact, boxes))
    return np.bincount(owner[hit], minlength=n) > 0


def segments_enter(a: np.ndarray, b: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Does segment a -> b (M, 2) enter the open interior of box (M, 4) [x0, x1, y0, y1]?

    Slab test: touching or sliding along a face is not entering."""
    d = b - a
    lo_t = np.full(len(a), -np.inf)
    hi_t = np.full(len(a), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in (0, 1):
            blo, bhi, dk, ak = boxes[:, 2 * k], boxes[:, 2 * k + 1], d[:, k], a[:, k]
            t1, t2 = (blo - ak) / dk, (bhi - ak) / dk
            moving = dk != 0
            inside = (ak > blo) & (ak < bhi)
            lo_t = np.maximum(lo_t, np.where(moving, np.minimum(t1, t2),
                                             np.where(inside, -np.inf, np.inf)))
            hi_t = np.minimum(hi_t, np.where(moving, np.maximum(t1, t2),
                                             np.where(inside, np.inf, -np.inf)))
    return (lo_t < hi_t) & (lo_t < 1.0) & (hi_t > 0.0)
