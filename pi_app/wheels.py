"""Colour wheels: the static slot nearest the model's colour, turned only while the head is dark.

A fixture with a colour wheel and no colour mixing (a discharge spot or beam: GLP Junior Scan,
Stairville B5R) gets its wheel as a ``wheel`` channel (`pi_app.fixtures.importing`): the
static colour slots its file names, each with its colour. Per frame, after the patch:

- a wheel turns only on a frame where its fixture's dimmer channel writes its dark value (the
  dimmer at 0, or closed, as the safety stage left it): a wheel seen turning is a rainbow
  effect, so a lit head keeps its slot whatever the model wants;
- while dark, the slot is the one nearest the colour the model wants for the fixture (the
  scene's colour before the safety stage, which counts a wheel fixture as white): both
  colours scaled to their brightest component, the nearest in RGB. A saturated red slot (red
  at least 80 % of R + G + B, WCAG 2.3.1's red) is never chosen: the flash limiter counts a
  wheel fixture as white and would not see its red flashes;
- a wheel is only ever at its held (open) value or one of its slots' values, never in a
  rotation, split-colour or effect range;
- after a wheel changes, its fixture stays dark for `WHEEL_DWELL_S` of show time, the time a
  wheel takes to reach its slot (GDTF files sometimes give a wheel's timing, QLC+ and OFL
  files never: one constant for every wheel, long enough for a full-wheel turn of common
  spots and beams), and the wheel does not change again within it: nobody sees a wheel
  travel. The dwell darkens the fixture's light before the safety stage (`hold_dark`), so
  the flash limiter sees the light come back as any other rise.

The chosen slot and the end of each wheel's dwell are the pipeline's state
(`Pipeline.wheel_slot`, `Pipeline.wheel_until`: arrays the run-ahead's snapshot copies) and
the dwell is counted in show time, so a frame worked out ahead is the frame of a loop that
never ran ahead.
"""

from __future__ import annotations

import numpy as np

from .config import SLOTS
from .scene import LIGHT

RED_SHARE = 0.8          # WCAG 2.3.1: saturated red is R / (R + G + B) >= 0.8
WHEEL_DWELL_S = 0.5      # dark after a wheel change: the wheel reaches its slot unseen


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], np.float64) / 255.0


class Wheels:
    """``write(frames, colour, state)`` after ``patch.frames``: every wheel at its slot.

    Vectorised over the wheels: a dozen NumPy calls a frame whatever the rig size."""

    def __init__(self, patch) -> None:
        fixture, flat, held, dimmer, dark_a, dark_b, tables = ([] for _ in range(7))
        uidx = {u: k for k, u in enumerate(patch.universes)}
        for f in patch.fixtures:
            chans = f.mode.channels
            base = uidx[f.universe] * SLOTS + f.address - 1
            dim = next((j for j, c in enumerate(chans) if c.attr in ("dimmer", "intensity")
                        and c.max > c.min), None)
            j = next((j for j, c in enumerate(chans) if c.attr == "wheel"), None)
            if j is None:
                continue                               # one wheel per fixture
            keep = []
            for v, col in chans[j].slots:
                rgb = _rgb(col)
                if rgb.sum() > 0 and rgb[0] / rgb.sum() >= RED_SHARE:
                    continue
                keep.append((v, rgb / max(rgb.max(), 1e-6)))
            d = chans[dim] if dim is not None else None
            fixture.append(f.index)
            flat.append(base + j)
            held.append(chans[j].value)
            dimmer.append(base + dim if dim is not None else -1)
            dark_a.append(d.dark if d is not None else -1)
            dark_b.append(d.min if d is not None else -1)
            tables.append(keep)
        n, k = len(fixture), max((len(t) for t in tables), default=0)
        self.fixture = np.asarray(fixture, np.intp)
        self.flat = np.asarray(flat, np.intp)          # the wheel's slot in the patch buffer
        self.held = np.asarray(held, np.int64)
        self.dimmer = np.maximum(np.asarray(dimmer, np.intp), 0)
        self.turns = np.asarray(dimmer, np.int64) >= 0  # no dimmer: never dark, never turns
        self.dark_a = np.asarray(dark_a, np.int64)
        self.dark_b = np.asarray(dark_b, np.int64)
        # slot tables padded to k slots: a missing slot is infinitely far from any colour
        self.values = np.zeros((n, max(k, 1)), np.int64)
        self.colours = np.full((n, max(k, 1), 3), np.inf)
        for w, t in enumerate(tables):
            for s, (v, rgb) in enumerate(t):
                self.values[w, s], self.colours[w, s] = v, rgb
        self.turns &= np.array([len(t) > 0 for t in tables], bool)
        self._rows = np.arange(n)
        self._buffer = patch.buffer

    def __len__(self) -> int:
        return len(self.fixture)

    def state(self) -> np.ndarray:
        """A fresh state: every wheel at its held value (-1)."""
        return np.full(len(self.fixture), -1, np.int64)

    def dwell_state(self) -> np.ndarray:
        """A fresh dwell state: the show time each wheel's dwell ends (none running)."""
        return np.full(len(self.fixture), -np.inf, np.float64)

    def dwelling(self, until: np.ndarray, t_s: float) -> bool:
        """Is any wheel's dwell still running at show time `t_s`?"""
        return bool(len(until)) and bool((until > t_s + 1e-9).any())

    def hold_dark(self, scene: np.ndarray, until: np.ndarray, t_s: float) -> np.ndarray:
        """`scene` with the light of every fixture whose wheel is still on its way (its dwell
        running at show time `t_s`) at 0: a copy if any, else `scene` itself. A dwell longer
        than `WHEEL_DWELL_S` from `t_s` (show time went back) is cut to it."""
        if not len(until):
            return scene
        np.minimum(until, t_s + WHEEL_DWELL_S, out=until)
        on = until > t_s + 1e-9
        if not on.any():
            return scene
        scene = scene.copy()
        scene[self.fixture[on], LIGHT] = 0.0
        return scene

    def write(self, frames, colour: np.ndarray | None, state: np.ndarray,
              until: np.ndarray | None = None, t_s: float = 0.0) -> None:
        """Turn the dark heads' wheels towards `colour` (n_fixtures, 4: R, G, B, W wanted;
        None: keep) and write every wheel's value into the patch's buffers (`frames` are
        their views). `state` (from `state`) is updated in place; so is `until` (from
        `dwell_state`): a wheel that changes at show time `t_s` dwells until
        ``t_s + WHEEL_DWELL_S``, and one still dwelling does not change."""
        buf = self._buffer
        if colour is not None:
            d = buf[self.dimmer]
            dark = self.turns & ((d == self.dark_a) | (d == self.dark_b))
            if until is not None:
                dark &= until <= t_s + 1e-9
            if dark.any():
                c = np.asarray(colour, np.float64)[self.fixture]
                want = c[:, :3] + c[:, 3:4]
                top = want.max(axis=1)
                dark &= top > 1e-3
                want /= np.maximum(top, 1e-3)[:, None]
                dist = ((self.colours - want[:, None, :]) ** 2).sum(axis=2)
                slot = dist.argmin(axis=1)
                if until is not None:              # a change of the wheel's DMX value
                    moved = dark & (self._value(slot) != self._value(state))
                    until[moved] = t_s + WHEEL_DWELL_S
                np.copyto(state, slot, where=dark)
        buf[self.flat] = self._value(state)

    def _value(self, state: np.ndarray) -> np.ndarray:
        """Each wheel's DMX value at `state` (-1: its held value)."""
        return np.where(state < 0, self.held, self.values[self._rows, np.maximum(state, 0)])
