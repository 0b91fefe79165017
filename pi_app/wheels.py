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
  rotation, split-colour or effect range.

The chosen slot is the pipeline's state (`Pipeline.wheel_slot`, an array the run-ahead's
snapshot copies), so a frame worked out ahead is the frame of a loop that never ran ahead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SLOTS

RED_SHARE = 0.8          # WCAG 2.3.1: saturated red is R / (R + G + B) >= 0.8


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], np.float64) / 255.0


@dataclass(frozen=True)
class _Wheel:
    fixture: int                 # index in the patch
    universe: int
    slot: int                    # 0-based slot of the wheel channel in its universe
    held: int                    # its held (open) value
    values: np.ndarray           # the slots' DMX values, red slots left out
    colours: np.ndarray          # (k, 3) their colours, scaled to their brightest component
    dimmer: int                  # 0-based slot of the fixture's dimmer (-1: none: never turns)
    dark: frozenset[int]         # the dimmer's dark values


class Wheels:
    """``write(frames, colour, state)`` after ``patch.frames``: every wheel at its slot."""

    def __init__(self, patch) -> None:
        wheels = []
        for f in patch.fixtures:
            chans = f.mode.channels
            dim = next((j for j, c in enumerate(chans) if c.attr in ("dimmer", "intensity")
                        and c.max > c.min), None)
            for j, ch in enumerate(chans):
                if ch.attr != "wheel":
                    continue
                keep = []
                for v, col in ch.slots:
                    rgb = _rgb(col)
                    if rgb.sum() > 0 and rgb[0] / rgb.sum() >= RED_SHARE:
                        continue
                    keep.append((v, rgb / max(rgb.max(), 1e-6)))
                d = chans[dim] if dim is not None else None
                wheels.append(_Wheel(
                    f.index, f.universe, f.address - 1 + j, ch.value,
                    np.array([v for v, _ in keep], np.int64),
                    np.array([c for _, c in keep], np.float64).reshape(-1, 3),
                    f.address - 1 + dim if dim is not None else -1,
                    frozenset({d.dark, d.min}) if d is not None else frozenset()))
                break                                  # one wheel per fixture
        self.wheels: tuple[_Wheel, ...] = tuple(wheels)
        assert all(0 <= w.slot < SLOTS for w in self.wheels)

    def __len__(self) -> int:
        return len(self.wheels)

    def state(self) -> np.ndarray:
        """A fresh state: every wheel at its held value (-1)."""
        return np.full(len(self.wheels), -1, np.int64)

    def write(self, frames, colour: np.ndarray | None, state: np.ndarray) -> None:
        """Turn the dark heads' wheels towards `colour` (n_fixtures, 4: R, G, B, W wanted;
        None: keep) and write every wheel's value into `frames` (the patch's buffers).
        `state` (from `state`) is updated in place."""
        for k, w in enumerate(self.wheels):
            frame = frames[w.universe]
            if colour is not None and w.dimmer >= 0 and len(w.values) \
                    and int(frame[w.dimmer]) in w.dark:
                r, g, b, white = (float(x) for x in colour[w.fixture])
                want = np.array([r + white, g + white, b + white])
                top = want.max()
                if top > 1e-3:
                    d = ((w.colours - want / top) ** 2).sum(axis=1)
                    state[k] = int(np.argmin(d))
            frame[w.slot] = w.held if state[k] < 0 else w.values[state[k]]
