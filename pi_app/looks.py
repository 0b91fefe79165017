"""Looks and trims: the stage between the mapper and the safety stage.

    scene (mapper) -> palette -> heads still -> per-fixture trims -> safety

* **Palette** (``[palettes.NAME]``, live: ``latentdmx palette NAME``): either *hues* — every
  colour whose hue lies outside the chosen bands (``hues``, ``width_deg``) moves to the nearest
  band edge, keeping its saturation and brightness (greys stay grey; ``white = false`` turns
  the white emitter off) — or *warm white* (``kelvin``): every colour becomes white light of
  that colour temperature, as bright (relative luminance) as the colour it replaces.
* **Heads still** (``[looks] heads_still``, live: ``latentdmx still on``): pan and tilt are
  frozen where the heads are when it is switched on (at park before the first frame); colour
  and intensity go on. Spares the motors in a long installation.
* **Trims** (per fixture, ``trim = { ... }`` in its ``[[fixtures]]`` table):
  ``max_intensity`` scales the dimmer's range (0.7: never above 70 %, fades keep their
  shape), ``colour_balance`` scales red, green, blue and white (a fixture that is too blue:
  ``[1, 1, 0.8, 1]``), ``dimmer_gamma`` bends the dimmer curve (``out = in ** gamma``).

Everything here happens before the safety stage, so the flash limiter, slew limits and fades
see (and limit) the trimmed show. With no palette, no still heads and no trims the stage
returns the mapper's scene untouched (no copy).
"""

from __future__ import annotations

import math

import numpy as np

from . import scene as sc
from .config import Config, PaletteConfig


def kelvin_rgb(kelvin: float) -> np.ndarray:
    """Colour of a black body at `kelvin` as RGB in 0..1, brightest component 1 (Tanner
    Helland's fit of the CIE 1964 data: good to a few % from 1000 to 10000 K)."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = (99.4708025861 * math.log(t) - 161.1195681661 if t <= 66
         else 288.1221695283 * (t - 60) ** -0.0755148492)
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else
                               138.5177312231 * math.log(t - 10) - 305.0447927307)
    rgb = np.clip(np.array([r, g, b], np.float64) / 255.0, 0.0, 1.0)
    return (rgb / rgb.max()).astype(np.float32)


class Palette:
    """A compiled ``[palettes.NAME]``: ``apply(colour)`` on (n, 4) RGBW at full, in place,
    returns the dimmer gain (warm white keeps the luminance; hues keep brightness: 1)."""

    def __init__(self, name: str, cfg: PaletteConfig) -> None:
        self.name = name
        self.kelvin = cfg.kelvin
        self.white = cfg.white
        self.hues = np.array(cfg.hues, np.float32) % 360.0
        self.half = np.float32(cfg.width_deg / 2.0)
        self.warm = kelvin_rgb(cfg.kelvin) if cfg.kelvin > 0 else None
        if self.warm is not None:
            self._warm_y = float(self.warm @ sc.LUMA[:3])

    def apply(self, colour: np.ndarray, dimmer: np.ndarray) -> None:
        if self.warm is not None:
            y = colour @ sc.LUMA                                   # luminance at full
            colour[:, :3] = self.warm
            colour[:, 3] = 0.0
            np.multiply(dimmer, y / self._warm_y, out=dimmer)
            np.minimum(dimmer, 1.0, out=dimmer)
            return
        rgb = colour[:, :3]
        v = rgb.max(axis=1)
        m = rgb.min(axis=1)
        c = v - m
        hue = _hue_deg(rgb, v, c)
        d = (hue[:, None] - self.hues[None, :] + 180.0) % 360.0 - 180.0     # (n, k)
        nearest = np.argmin(np.abs(d), axis=1)
        dn = d[np.arange(len(d)), nearest]
        new = (self.hues[nearest] + np.clip(dn, -self.half, self.half)) % 360.0
        chromatic = c > 1e-4
        rgb[chromatic] = _hsv_rgb(new[chromatic], v[chromatic], m[chromatic])
        if not self.white:
            colour[:, 3] = 0.0


def _hue_deg(rgb: np.ndarray, v: np.ndarray, c: np.ndarray) -> np.ndarray:
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    cc = np.maximum(c, 1e-12)
    h = np.where(v == r, ((g - b) / cc) % 6.0,
                 np.where(v == g, (b - r) / cc + 2.0, (r - g) / cc + 4.0))
    return (h * 60.0).astype(np.float32)


def _hsv_rgb(hue: np.ndarray, v: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Hue (deg), max and min component -> RGB with that hue, max and min (the closed form
    f(n) = v - c * clip(min(k, 4 - k), 0, 1), k = (n + hue / 60) mod 6, n = 5, 3, 1)."""
    c = (v - m)[:, None]
    k = (np.array([5.0, 3.0, 1.0], np.float32)[None, :] + (hue / 60.0)[:, None]) % 6.0
    return (v[:, None] - c * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)).astype(np.float32)


class Looks:
    """``Looks(config, patch)(scene, aim)`` per frame: palette, still heads, trims.

    `aim` is the last safe scene's (pan, tilt) (n, 2), used when heads still is switched on."""

    def __init__(self, config: Config, patch) -> None:
        n = len(patch.fixtures)
        self._park = np.array([f.park for f in config.fixtures], np.float32).reshape(n, 2)
        self._buf = np.zeros((n, len(sc.ATTRS)), np.float32)
        self.palette: Palette | None = None
        self._still: np.ndarray | None = None
        self._config = config
        self._load(config)
        self.set_palette(config.looks.palette)
        if config.looks.heads_still:
            self._still = self._park.copy()

    def _load(self, config: Config) -> None:
        n = len(config.fixtures)
        trims = [f.trim for f in config.fixtures]
        self._max = np.array([t.max_intensity for t in trims], np.float32).reshape(n)
        self._balance = np.array([t.colour_balance for t in trims], np.float32).reshape(n, 4)
        self._gamma = np.array([t.dimmer_gamma for t in trims], np.float32).reshape(n)
        self._trim_max = bool((self._max < 1.0).any())
        self._trim_balance = bool((self._balance != 1.0).any())
        self._trim_gamma = bool((self._gamma != 1.0).any())
        self.palettes = {name: Palette(name, p) for name, p in config.palettes.items()}

    def reconfigure(self, config: Config) -> list[str]:
        """A reloaded config (same fixtures): new palettes and trims, live. What changed."""
        old, self._config = self._config, config
        changes = []
        if [f.trim for f in config.fixtures] != [f.trim for f in old.fixtures]:
            changes.append("trims")
        if config.palettes != old.palettes:
            changes.append("palettes")
        if not changes:
            return []
        current = self.palette_name
        self._load(config)
        self.set_palette(current if current in self.palettes else "")
        return changes

    # -- live changes (between frames) -------------------------------------------------
    @property
    def palette_name(self) -> str:
        return self.palette.name if self.palette else ""

    def set_palette(self, name: str) -> None:
        """"" or "none": no palette; else one of the config's ``[palettes.NAME]``."""
        self.palette = None if name in ("", "none") else self.palettes[name]

    @property
    def heads_still(self) -> bool:
        return self._still is not None

    def set_heads_still(self, on: bool, aim: np.ndarray | None) -> None:
        """Freeze the heads at `aim` ((n, 2) pan/tilt; None: park), or let them move."""
        if not on:
            self._still = None
        elif self._still is None:
            self._still = (self._park if aim is None else aim[:, 0:2]).astype(np.float32)

    # -- per frame ---------------------------------------------------------------------
    def __call__(self, scene: np.ndarray) -> np.ndarray:
        if not (self.palette or self._still is not None or self._trim_max or
                self._trim_balance or self._trim_gamma):
            return scene
        out = self._buf
        np.copyto(out, scene)
        if self.palette is not None:
            self.palette.apply(out[:, sc.COLOUR], out[:, sc.DIMMER])
        if self._still is not None:
            out[:, sc.PAN:sc.TILT + 1] = self._still
        if self._trim_balance:
            out[:, sc.COLOUR] *= self._balance
        if self._trim_gamma:
            np.power(np.clip(out[:, sc.DIMMER], 0.0, 1.0), self._gamma, out=out[:, sc.DIMMER])
        if self._trim_max:
            out[:, sc.DIMMER] *= self._max
        return out
