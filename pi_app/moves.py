"""Move in black: between the mapper and the safety stage, a moving head never sweeps lit.

Lighting programmers reposition a head in the dark: dim, move, come back. This stage does it
for every head, whatever makes its wanted aim jump (a tear of a NAT map, a new seed, a model
swap, the start of the show):

* **Follow.** While lit, the head's aim follows the wanted aim at most `lit_deg_per_s`
  degrees a second (pan and tilt together: each axis at most that over the square root of
  2; `safety.lit_move_deg_per_s`, at most `MAX_LIT_MOVE_DEG_PER_S`), whatever the head's
  range. A backstop: the wanted aim of a head is slow already (`heads.py`), so slow motion
  passes unchanged.
* **Dim.** When the wanted aim is more than `JUMP` of the range away from where the head
  aims (it jumped, or ran away faster than a lit head may follow), the light fades out at
  `DIM_PER_S` while the head holds still.
* **Move.** Once the light that left the safety stage last frame is dark (`DARK`), the aim
  goes straight to the wanted one; the safety stage slews the head there at its own limit.
* **Rise.** When the head has arrived (the last safe aim within `ARRIVED`, or after
  `MOVE_TIMEOUT_S`, e.g. held by a keep-out box), the light fades back in at `RISE_PER_S`
  and the aim follows again.

Fixtures without pan/tilt pass through untouched. The stage reads the last safe scene
(what the safety stage sent) so it waits for the real light and the real head, including
the flash limiter's and slew limiter's delays. It never makes light brighter than wanted,
and it is deterministic: the same scenes give the same output.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from .config import MAX_LIT_MOVE_DEG_PER_S
from .scene import BLUE, DIMMER, N_ATTRS, PAN, RED, TILT, WHITE

JUMP = 0.1                # lag (fraction of the range) that starts a move in black
DIM_PER_S = 1.5           # light gain fade-out rate (the flash limiter may slow it)
RISE_PER_S = 1.0          # light gain fade-in rate after a move
DARK = 0.04               # emitted light at or below this counts as dark
ARRIVED = 0.004           # safe aim this close to the target (fraction of range): arrived
MOVE_TIMEOUT_S = 4.0      # give up waiting for the head (blocked by a keep-out box)

FOLLOW, DIM, MOVE, RISE = range(4)
FEW_HEADS = 16            # up to this many heads, the fast path's test is a Python loop
_JUMP32 = float(np.float32(JUMP))   # NumPy compares a float32 with JUMP rounded to float32
# JUMP as a float32 scalar: a float32 maximum compared with it is a float32 comparison on
# every NumPy (1.x would compare a float32 scalar with the Python float in float64).
_JUMP_F32 = np.float32(JUMP)
_DARK32 = float(np.float32(DARK))
_ARRIVED32 = float(np.float32(ARRIVED))
_F32 = struct.Struct("f")


def _r32(x: float) -> float:
    """x rounded to float32 (as NumPy's float32 arithmetic rounds its exact result)."""
    return _F32.unpack(_F32.pack(x))[0]


def lit_steps(patch, fps: float, deg_per_s: float) -> np.ndarray:
    """(fixtures, 2) float32: the most a lit head's pan and tilt may move in a frame, as a
    fraction of the range in use (the config's limits, else the profile's), so that the aim
    moves at most `deg_per_s` degrees a second with pan and tilt together (1: no axis)."""
    steps = np.ones((len(patch.fixtures), 2), np.float32)
    for f in patch.fixtures:
        for k, (full, lim) in enumerate(((f.profile.pan_deg, f.config.pan_limits_deg),
                                         (f.profile.tilt_deg, f.config.tilt_limits_deg))):
            span = (lim[1] - lim[0]) if lim != (0.0, 0.0) else full    # degrees of 0..1
            if span > 0:
                steps[f.index, k] = deg_per_s / math.sqrt(2.0) / fps / span
    return steps


def _jump(rows: list[list[float]]) -> bool:
    """``np.abs(d).max() > JUMP`` for a float32 array d given as ``d.tolist()`` (a few heads:
    a Python loop costs less than a NumPy reduction): a NaN anywhere makes the maximum NaN,
    which is no jump."""
    return _jump_flat([x for row in rows for x in row])


def _jump_flat(values) -> bool:
    worst = 0.0
    for x in values:
        if x != x:
            return False
        x = abs(x)
        if x > worst:
            worst = x
    return worst > _JUMP32


class Moves:
    """``Moves(patch, fps, lit_deg_per_s)(wanted, last_safe)`` -> scene (the stage's own
    buffer)."""

    def __init__(self, patch, fps: float,
                 lit_deg_per_s: float = MAX_LIT_MOVE_DEG_PER_S) -> None:
        n = len(patch.fixtures)
        self.fps = float(fps)
        self.moving = np.array([bool(f.moves) for f in patch.fixtures], bool)
        self._patch = patch
        self._dim = np.float32(DIM_PER_S / self.fps)
        self._rise = np.float32(RISE_PER_S / self.fps)
        self._timeout = max(1, round(MOVE_TIMEOUT_S * self.fps))
        self.mode = np.full(n, MOVE, np.int8)           # the start is a move in the dark
        self.gain = np.zeros(n, np.float32)
        self.aim = np.zeros((n, 2), np.float32)
        self._moving_frames = np.zeros(n, np.int32)
        self._first = True
        self._out = np.zeros((n, N_ATTRS), np.float32)
        self.moves_in_black = 0                         # counted when a dim starts
        self._idx = np.flatnonzero(self.moving)
        self._any_moving = bool(len(self._idx))
        self._aim_m = np.zeros((len(self._idx), 2), np.float32)   # aims of the moving heads
        self._following = False                         # every head in FOLLOW: fast path
        i = self._idx                                   # the heads: a slice if in a row
        self._heads = slice(int(i[0]), int(i[-1]) + 1) if len(i) and \
            np.array_equal(i, np.arange(i[0], i[-1] + 1)) else i
        self._d = np.zeros_like(self._aim_m)            # the fast path's work buffers
        self._new = np.zeros_like(self._aim_m)
        self.set_lit(lit_deg_per_s)
        m = len(self._idx)                              # a few heads: in Python floats
        self._few = 0 < m <= FEW_HEADS
        self._f32 = struct.Struct(f"{2 * m}f")          # rounds doubles to float32
        self._aim_l: list[float] | None = None          # the aims, when newer than _aim_m
        self._pan_tilt = (self._idx[:, None] * N_ATTRS + np.array([PAN, TILT])).ravel()

    def set_lit(self, deg_per_s: float) -> None:
        """The lit speed limit, degrees a second (at most `MAX_LIT_MOVE_DEG_PER_S`): per
        fixture and axis, and the fast path's clip bounds as arrays (a ufunc with a scalar
        operand costs more than with an array)."""
        self._step = lit_steps(self._patch, self.fps, min(deg_per_s, MAX_LIT_MOVE_DEG_PER_S))
        self._hi = self._step[self._idx]
        self._lo = -self._hi
        self._hi_l = self._hi.ravel().tolist()

    def steady(self) -> bool:
        """Every head follows its aim (none dimming, moving or rising): with the same wanted
        aim, a head that has reached it stays."""
        return not self._any_moving or (self._following and not self._first)

    def __call__(self, wanted: np.ndarray, last_safe: np.ndarray | None) -> np.ndarray:
        out = self._out
        np.copyto(out, wanted)
        if not self._any_moving:
            return out
        want = wanted[:, PAN:TILT + 1]
        if self._first:
            self._first = False
            self.aim[:] = want
            self._aim_m[:] = want[self._idx]
        elif self._following and (self._follow_few(want, out) if self._few else
                                  self._follow(want, out)):
            return out
        if self._aim_l is not None:                     # the few heads' aims, as an array
            self._aim_m[:] = np.array(self._aim_l, np.float32).reshape(-1, 2)
            self._aim_l = None
        self._following = False
        if not (self._few and self._general_few(out, last_safe)):
            self._general(want, last_safe, out)
            self._following = bool((self.mode[self.moving] == FOLLOW).all())
        return out

    def _follow(self, want: np.ndarray, out: np.ndarray) -> bool:
        """The usual frame: every head lit and following, nothing jumps (a few NumPy calls).
        False (and nothing changed) if some head must start a move in black."""
        heads, aim, d, new = self._heads, self._aim_m, self._d, self._new
        w = want[heads]                                 # (m, 2)
        np.subtract(w, aim, out=d)                      # clip(w - aim, -step, step) as
        np.maximum(d, self._lo, out=d)                  # np.clip does it (max, then min),
        np.minimum(d, self._hi, out=d)                  # without its Python wrapper
        np.add(aim, d, out=new)
        np.subtract(w, new, out=d)
        if _jump(d.tolist()) if len(d) <= FEW_HEADS else \
                np.maximum.reduce(np.abs(d, out=d), axis=None) > _JUMP_F32:  # |w - new|.max()
            return False
        self._aim_m, self._new = new, aim               # the new aims (no copy)
        out[heads, PAN:TILT + 1] = new
        return True

    def _follow_few(self, want: np.ndarray, out: np.ndarray) -> bool:
        """`_follow` for a few heads in Python floats: each float32 operation as a double
        one rounded to float32 (exactly NumPy's result: a double holds the exact sum or
        difference of two float32s to well within a rounding), one NumPy call in and one
        out instead of nine."""
        w = [x for row in want[self._heads].tolist() for x in row]
        aim = self._aim_l
        if aim is None:
            aim = self._aim_m.ravel().tolist()
        f32 = self._f32
        try:
            d = f32.unpack(f32.pack(*[a - b for a, b in zip(w, aim, strict=True)]))
            new = f32.unpack(f32.pack(*[a + (hi if x > hi else -hi if x < -hi else x)
                                        for a, x, hi in zip(aim, d, self._hi_l,
                                                            strict=True)]))
            lag = f32.unpack(f32.pack(*[a - b for a, b in zip(w, new, strict=True)]))
        except OverflowError:                           # beyond float32: NumPy's way
            self._aim_m[:] = np.array(aim, np.float32).reshape(-1, 2)
            self._aim_l = None
            return self._follow(want, out)
        if _jump_flat(lag):
            return False
        self._aim_l = list(new)
        out.put(self._pan_tilt, new)
        return True

    def _general_few(self, out: np.ndarray, last_safe: np.ndarray | None) -> bool:
        """`_general` for a few heads in Python floats (each float32 operation a double one
        rounded to float32, each comparison with the constant as NumPy rounds it): the same
        numbers, a dozen NumPy calls instead of forty. False (nothing changed) where a NaN
        would need NumPy's own rules: then `_general` does it."""
        heads = self._heads
        rows = out[heads].tolist()                      # out is the wanted scene still
        safe = None if last_safe is None else last_safe[heads].tolist()
        for row in rows if safe is None else rows + safe:
            for x in row:
                if x != x:
                    return False
        aims = self._aim_m.tolist()
        modes = self.mode[heads].tolist()
        gains = self.gain[heads].tolist()
        frames = self._moving_frames[heads].tolist()
        try:
            dims = self._heads_few(rows, safe, aims, modes, gains, frames)
        except OverflowError:                           # beyond float32: NumPy's way
            return False
        self.moves_in_black += dims
        self.mode[heads] = modes
        self.gain[heads] = gains
        self._moving_frames[heads] = frames
        self.aim[heads] = aims
        self._aim_m[:] = aims
        out.put(self._pan_tilt, [x for a in aims for x in a])
        out[heads, DIMMER] = [row[DIMMER] for row in rows]
        self._following = all(m == FOLLOW for m in modes)
        return True

    def _heads_few(self, rows: list, safe: list | None, aims: list, modes: list,
                   gains: list, frames: list) -> int:
        """`_general_few`'s state machine on lists, in place; returns the dims started."""
        dim, rise, r32, his = float(self._dim), float(self._rise), _r32, self._hi_l
        dims = 0
        for i, row in enumerate(rows):
            hp, ht = his[2 * i], his[2 * i + 1]
            wp, wt = row[PAN], row[TILT]
            ap, at = aims[i]
            mode, gain, mf = modes[i], gains[i], frames[i]
            if safe is None:
                safe_light, arrived = 0.0, False
            else:
                ls = safe[i]
                light = r32(max(ls[RED:BLUE + 1]) + ls[WHITE])
                safe_light = r32(ls[DIMMER] * (1.0 if light > 1.0 else light))
                arrived = max(abs(r32(ls[PAN] - ap)), abs(r32(ls[TILT] - at))) <= _ARRIVED32
            m_move = mode == MOVE
            if m_move:                                  # straight to the wanted aim
                ap, at = wp, wt
                mf += 1
            done = m_move and ((mf > 1 and arrived) or mf >= self._timeout)
            if done:
                mode, mf = RISE, 0
            if not m_move and mode != DIM:              # lit: follow at the limit
                dp, dt = r32(wp - ap), r32(wt - at)
                ap = r32(ap + (hp if dp > hp else -hp if dp < -hp else dp))
                at = r32(at + (ht if dt > ht else -ht if dt < -ht else dt))
                if max(abs(r32(wp - ap)), abs(r32(wt - at))) > _JUMP32:
                    dims += 1
                    mode = DIM
            if mode == DIM:
                g = r32(gain - dim)
                gain = g if g > 0.0 else 0.0
                if gain <= 0.0 and safe_light <= _DARK32:
                    mode = MOVE
            if mode == RISE and not done:
                g = r32(gain + rise)
                gain = g if g < 1.0 else 1.0
                if gain >= 1.0:
                    mode = FOLLOW
            if mode == MOVE:
                gain = 0.0
            aims[i] = [ap, at]
            modes[i], gains[i], frames[i] = mode, gain, mf
            row[DIMMER] = r32(row[DIMMER] * gain)
        return dims

    def _general(self, want: np.ndarray, last_safe: np.ndarray | None,
                 out: np.ndarray) -> None:
        self.aim[self._idx] = self._aim_m               # the fast path keeps it there
        mode, gain, aim = self.mode, self.gain, self.aim
        # what the lights did last frame (before the first frame: dark, not arrived)
        if last_safe is None:
            safe_light = np.zeros(len(mode), np.float32)
            arrived = np.zeros(len(mode), bool)
        else:
            safe_light = last_safe[:, DIMMER] * np.minimum(
                1.0, last_safe[:, RED:BLUE + 1].max(axis=1) + last_safe[:, WHITE])
            arrived = np.abs(last_safe[:, PAN:TILT + 1] - aim).max(axis=1) <= ARRIVED

        moving = self.moving
        m_move = (mode == MOVE) & moving
        # Move: straight to the wanted aim; rise once the head is there (or waited enough)
        aim[m_move] = want[m_move]
        self._moving_frames[m_move] += 1
        # (the aim compared with is last frame's, so it must already have been the target)
        done = m_move & (((self._moving_frames > 1) & arrived)
                         | (self._moving_frames >= self._timeout))
        mode[done] = RISE
        self._moving_frames[done] = 0
        # Follow / Rise: the aim follows at the lit speed limit (Dim: it holds)
        lit = moving & ~m_move & (mode != DIM)
        step = np.clip(want - aim, -self._step, self._step)   # per head and axis
        aim[lit] += step[lit]
        lag = np.abs(want - aim).max(axis=1)
        start_dim = lit & (lag > _JUMP_F32)
        self.moves_in_black += int(start_dim.sum())
        mode[start_dim] = DIM
        m_dim = (mode == DIM) & moving
        gain[m_dim] = np.maximum(gain[m_dim] - self._dim, 0.0)
        to_move = m_dim & (gain <= 0.0) & (safe_light <= DARK)
        mode[to_move] = MOVE
        m_rise = (mode == RISE) & moving & ~done
        gain[m_rise] = np.minimum(gain[m_rise] + self._rise, 1.0)
        mode[m_rise & (gain >= 1.0)] = FOLLOW
        gain[moving & (mode == MOVE)] = 0.0

        out[moving, PAN:TILT + 1] = aim[moving]
        out[moving, DIMMER] *= gain[moving]
        self._aim_m[:] = aim[self._idx]
