"""Patch: scene -> one ``uint8[512]`` frame per universe, through the fixture profiles.

Built once from the config into flat index arrays, so a frame is a handful of vectorised
NumPy operations whatever the rig size. Pan/tilt go through per-fixture limits, invert and
offset (docs/architecture.md: scene 0..1 spans the profile's range after those; the result
is clamped to the limits, so an offset can never aim a head outside them), 16-bit pan/tilt are
split into coarse + fine channels, light channels are written only inside their range
(e.g. the Lumeri's dimmer part 0..134 of its dimmer/strobe channel), held channels (reset,
macros, auto, speed) keep their fixed value on every frame, blackouts included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .columns import colwise
from .config import SLOTS, Config, FixtureConfig
from .fixtures import Mode, Profile, find_profile
from .fixtures.profile import LIGHT_KINDS
from .fixtures.profile import SUBTRACTIVE as _SUBTRACTIVE
from .scene import AIM, ATTRS, COLOUR, DIMMER, INTENSITY, LUMA, N_ATTRS, N_COLOUR, dark_frames

# Columns of the per-frame source matrix the channels read from: the scene's attributes (in
# the scene's layout), then the patch's own: intensity (dimmer x colour luminance, for
# dimmer-only fixtures), strobe (always 0: LatentDMX never strobes), and the colours with the
# dimmer baked in (fixtures with no dimmer channel).
_SRC = {name: i for i, name in enumerate(ATTRS)}
_SRC.update(intensity=N_ATTRS, strobe=N_ATTRS + 1)
_BAKED = N_ATTRS + 2                      # first baked colour column
_N_SRC = _BAKED + N_COLOUR


@dataclass(frozen=True)
class PatchedFixture:
    index: int
    config: FixtureConfig
    profile: Profile
    mode: Mode

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def universe(self) -> int:
        return self.config.universe

    @property
    def address(self) -> int:
        return self.config.address

    @property
    def last_address(self) -> int:
        return self.config.address + self.mode.footprint - 1

    @property
    def moves(self) -> bool:
        return self.mode.has("pan") or self.mode.has("tilt")


def _flat_index(n: int, fixture: int, col: int) -> int:
    """Where source column `col` of a fixture lives in `Patch._flat`."""
    k = N_ATTRS
    return fixture * k + col if col < k else n * k + fixture * (_N_SRC - k) + col - k


class Patch:
    """The compiled patch of a config. `frames(scene)` is the per-frame call."""

    def __init__(self, config: Config) -> None:
        fixtures = []
        for i, fx in enumerate(config.fixtures):
            prof = find_profile(fx.profile)
            assert prof is not None, "config.validate() checks profiles"
            mode = prof.mode(fx.mode)
            assert mode is not None
            fixtures.append(PatchedFixture(i, fx, prof, mode))
        self.fixtures: tuple[PatchedFixture, ...] = tuple(fixtures)
        self.universes: tuple[int, ...] = tuple(sorted({f.universe for f in fixtures}))
        self._uidx = {u: k for k, u in enumerate(self.universes)}
        n = len(fixtures)
        # Pan/tilt: physical = clip(a + b * scene, lim_lo, lim_hi) per fixture, in 0..1 of
        # the profile's range: the offset shifts the aim, the limits hold whatever it is.
        self._pt_a = np.zeros((n, 2), np.float32)
        self._pt_b = np.ones((n, 2), np.float32)
        a0 = np.zeros((n, 2), np.float32)                  # a without the offset
        for f in fixtures:
            for k, (full, lim, inv, off) in enumerate((
                    (f.profile.pan_deg, f.config.pan_limits_deg, f.config.invert_pan,
                     f.config.pan_offset_deg),
                    (f.profile.tilt_deg, f.config.tilt_limits_deg, f.config.invert_tilt,
                     f.config.tilt_offset_deg))):
                if full <= 0:
                    continue
                lo, hi = lim if lim != (0.0, 0.0) else (0.0, full)
                a, b, a_lim = (lo + off) / full, (hi - lo) / full, lo / full
                if inv:
                    a, b, a_lim = a + b, -b, a_lim + b
                self._pt_a[f.index, k], self._pt_b[f.index, k] = a, b
                a0[f.index, k] = a_lim
        bake = np.array([not (f.mode.has("dimmer") or f.mode.has("intensity")) for f in fixtures])
        s8, src8, lo8, span8, s16c, s16f, src16, held, held_v, light = ([] for _ in range(10))
        dark_v: list[int] = []       # each light slot's dark value (`Channel.dark`)
        off_s: list[int] = []        # slots with a lamp-off value (`Channel.lamp_off`), and it
        off_v: list[int] = []
        switch_s: list[int] = []     # light channels that only switch (min == max) ...
        switch_v: list[int] = []     # ... and their dark values
        switch_f: list[int] = []     # ... and their fixtures
        wheel_s: list[int] = []      # colour wheels: held value here, turned by the show
        wheel_v: list[int] = []
        lo16: list[int] = []         # 16-bit pan/tilt: the coarse channel's min..max, x 256
        span16: list[int] = []
        for f in fixtures:
            base = self._uidx[f.universe] * SLOTS + f.address - 1
            chans = f.mode.channels
            for j, ch in enumerate(chans):
                slot = base + j
                if ch.lamp_off >= 0:
                    off_s.append(slot)
                    off_v.append(ch.lamp_off)
                if ch.attr in LIGHT_KINDS:
                    light.append(slot)
                    dark_v.append(ch.dark)
                    if ch.attr in ("dimmer", "intensity") and ch.min == ch.max:
                        switch_s.append(slot)       # a shutter switched open: no dimming
                        switch_v.append(ch.dark)
                        switch_f.append(f.index)
                if ch.attr == "hold":
                    held.append(slot)
                    held_v.append(ch.value)
                elif ch.attr == "wheel":        # its held value; `pi_app.wheels` turns it
                    wheel_s.append(slot)
                    wheel_v.append(ch.value)
                elif ch.attr in ("pan_fine", "tilt_fine"):
                    continue      # written with its coarse channel
                elif ch.attr in ("pan", "tilt") and any(
                        c.attr == ch.attr + "_fine" for c in chans):
                    fine = next(k for k, c in enumerate(chans) if c.attr == ch.attr + "_fine")
                    s16c.append(slot)
                    s16f.append(base + fine)
                    src16.append(_flat_index(n, f.index, _SRC[ch.attr]))
                    lo16.append(ch.min * 256)
                    span16.append((ch.max - ch.min) * 256 + 255)
                else:
                    # A subtractive flag is its additive colour upside down: cyan = 1 - red,
                    # written from max (no red: full cyan) down to min (full red: no cyan).
                    sub = ch.attr in _SUBTRACTIVE
                    col = _SRC[_SUBTRACTIVE.get(ch.attr, ch.attr)]
                    if bake[f.index] and COLOUR.start <= col < COLOUR.stop:
                        col += _BAKED - COLOUR.start
                    s8.append(slot)
                    src8.append(_flat_index(n, f.index, col))
                    lo8.append(ch.max if sub else ch.min)
                    span8.append(ch.min - ch.max if sub else ch.max - ch.min)
        def i64(v):
            return np.asarray(v, dtype=np.intp)
        # One dense gather over every slot of every universe, so a frame is four NumPy calls
        # and no scatter: slot k = int(src[gather[k]] * scale[k] + offset[k]) >> shift[k].
        # 8-bit channels scale by their span; 16-bit coarse ones by 65535, shifted right by 8,
        # their fine ones the same value unshifted (the uint8 store keeps v & 255); held and
        # unpatched slots read a zero and carry their value in the offset. + 0.5 then
        # truncation rounds to the nearest value (val >= 0.5; one call instead of np.rint).
        # A 16-bit pair kept to a coarse range min..max spans min*256 .. max*256 + 255.
        n_slots = len(self.universes) * SLOTS
        zero = n * _N_SRC                                # one more source element, always 0
        gather = np.full(n_slots, zero, np.intp)
        scale = np.zeros(n_slots, np.float32)
        offset = np.zeros(n_slots, np.float32)
        shift = np.zeros(n_slots, np.int32)
        offset[held] = held_v                            # in write order: held, then 8-bit
        offset[wheel_s] = wheel_v
        gather[s8], scale[s8], offset[s8] = src8, span8, lo8   # and coarse, then fine
        for c, fine_slot, g, lo, span in zip(s16c, s16f, src16, lo16, span16, strict=True):
            gather[c] = gather[fine_slot] = g
            scale[c] = scale[fine_slot] = span      # 65535 over the full range
            offset[c] = offset[fine_slot] = lo
            shift[c], shift[fine_slot] = 8, 0
        self._gather, self._scale, self._shift = gather, scale, shift
        self._offset = offset + np.float32(0.5)
        self._held, self._held_v = i64(held), np.asarray(held_v, np.uint8)
        self._light = i64(light)
        self._dark_v = np.asarray(dark_v, np.uint8)
        self._dark = self._per_universe(self._light, self._dark_v)
        self._held_u = self._per_universe(self._held, self._held_v)
        self._lamps_off = self._per_universe(i64(off_s), np.asarray(off_v, np.uint8))
        self._switch, self._switch_v = i64(switch_s), np.asarray(switch_v, np.uint8)
        self.switch_fixture = i64(switch_f)     # the fixture of each switch (`close_switches`)
        self.has_switches = bool(len(switch_s))
        self._bake = bake.any()
        self._intensity = any(f.mode.has("intensity") for f in fixtures)
        self._buf = np.zeros(n_slots, np.uint8)
        self._buf[self._held] = self._held_v
        # The gather's source, flat: the clipped scene (n, N_ATTRS), contiguous (ufuncs on it
        # are twice as fast as on a strided view), then the patch's columns, then the zero.
        k = N_ATTRS
        self._flat = np.zeros(zero + 1, np.float32)      # the strobe column stays 0
        self._attrs = self._flat[:n * k].reshape(n, k)
        self._zeros, self._ones = np.zeros((n, k), np.float32), np.ones((n, k), np.float32)
        self._extra = self._flat[n * k:zero].reshape(n, _N_SRC - k)
        # Pan/tilt: skip the affine map if it is the identity for every fixture, and the
        # clip after it if it maps [0, 1] into [0, 1] (float32 rounding is monotone, so
        # checking both ends in float32 is exact).
        # The limits are the float32 images of scene 0 and 1 with no offset (the same two
        # operations as `frames`), so a rig without offsets is never clipped.
        pa, pb = self._pt_a, self._pt_b
        self._pt_identity = bool(np.all(pa == 0) and np.all(pb == 1))
        edges = np.stack([pb * np.float32(0.0) + a0, pb * np.float32(1.0) + a0])
        self._pt_lo, self._pt_hi = edges.min(axis=0), edges.max(axis=0)
        ends = np.stack([pb * np.float32(0.0) + pa, pb * np.float32(1.0) + pa])
        self._pt_clip = not bool(np.all((ends >= self._pt_lo) & (ends <= self._pt_hi)))
        self._val = np.zeros(n_slots, np.float32)
        self._int = np.zeros(n_slots, np.int32)
        # Views of the flat buffer, one per universe (returned by `frames`).
        self._views = {u: self._buf[k * SLOTS:(k + 1) * SLOTS] for u, k in self._uidx.items()}

    def __len__(self) -> int:
        return len(self.fixtures)

    def frames(self, scene: np.ndarray) -> dict[int, np.ndarray]:
        """Scene (n, N_ATTRS) in [0, 1] -> {universe: uint8[512]}.

        The arrays are the patch's own buffers, valid until the next call: copy to keep
        (`Output.send` and the recorder copy)."""
        attrs, extra = self._attrs, self._extra
        np.maximum(scene, self._zeros, out=attrs)   # clip to [0, 1]: two ufuncs beat np.clip,
        np.minimum(attrs, self._ones, out=attrs)    # arrays beat Python scalars as operands
        if not self._pt_identity:
            pt = attrs[:, AIM]
            pt *= self._pt_b
            pt += self._pt_a
            if self._pt_clip:                   # an offset: the limits still hold
                np.maximum(pt, self._pt_lo, out=pt)
                np.minimum(pt, self._pt_hi, out=pt)
        colour = attrs[:, COLOUR]
        if self._intensity:
            extra[:, 0] = attrs[:, DIMMER] * np.minimum(colour @ LUMA, 1.0)
        if self._bake:
            colwise(np.multiply, colour, attrs[:, INTENSITY], out=extra[:, 2:2 + N_COLOUR])
        val, ival = self._val, self._int
        self._flat.take(self._gather, out=val)
        val *= self._scale
        np.add(val, self._offset, out=ival, casting="unsafe")   # truncates: rounds, see above
        np.right_shift(ival, self._shift, out=self._buf, casting="unsafe")
        return self._views

    def _per_universe(self, slots: np.ndarray, values: np.ndarray
                      ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """Flat slots (and their values) split per universe: 0-based slots, values."""
        by_slot, by_val = {}, {}
        for u, k in self._uidx.items():
            m = (slots >= k * SLOTS) & (slots < (k + 1) * SLOTS)
            by_slot[u], by_val[u] = slots[m] - k * SLOTS, values[m]
        return by_slot, by_val

    def close_switches(self, which: np.ndarray | None = None) -> None:
        """Close the shutters that only switch (a fixture whose shutter is its light: open
        on every frame `frames` writes) at their dark values, in the last `frames`: every one
        (a blackout while the show runs, which darkens the dimmers alone otherwise), or
        those `which` (a bool per switch, in `switch_fixture`'s order) says."""
        if which is None:
            self._buf[self._switch] = self._switch_v
        else:
            self._buf[self._switch[which]] = self._switch_v[which]

    @property
    def buffer(self) -> np.ndarray:
        """The flat frame buffer `frames` writes (every universe's 512 slots in a row; its
        views are the frames): for stages that write after the patch (`pi_app.wheels`)."""
        return self._buf

    def blackout_frames(self, frames) -> dict[int, np.ndarray]:
        """The rig's dark frame of `frames` (docs/architecture.md): every light slot at its
        dark value (`dark_slots`: 0, or a closed value that does not switch the lamp off),
        held channels at their held value (lamp on, fan auto...), pan/tilt as they are."""
        out = dark_frames(frames, *self._held_u)
        return dark_frames(out, *self._dark)

    def light_slots(self) -> dict[int, np.ndarray]:
        """0-based slots a blackout darkens (intensity, colour, strobe), per universe."""
        return dict(self._dark[0])

    def dark_slots(self) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """The light slots per universe and the value a blackout writes to each (`dark_frames`
        takes them): 0, unless the profile names another `dark` value."""
        return dict(self._dark[0]), dict(self._dark[1])

    def lamps_off_slots(self) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """The slots whose fixture file names a lamp-off value, and that value, per universe:
        sent by `latentdmx darken --lamps-off` only (the end of the day), never by a show."""
        return dict(self._lamps_off[0]), dict(self._lamps_off[1])

    def slot_map(self) -> dict[tuple[int, int], tuple[int, str]]:
        """(universe, 1-based slot) -> (fixture index, channel attr): for checkers and viewers."""
        out = {}
        for f in self.fixtures:
            for j, ch in enumerate(f.mode.channels):
                out[(f.universe, f.address + j)] = (f.index, ch.attr)
        return out

    def table(self) -> list[tuple[str, str, int, str, str]]:
        """Rows for `latentdmx check`: fixture, profile/mode, universe, addresses, channels."""
        return [(f.name, f"{f.profile.key} {f.mode.name}", f.universe,
                 f"{f.address}-{f.last_address}",
                 " ".join(c.attr if c.attr != "hold" else f"hold={c.value}"
                          for c in f.mode.channels)) for f in self.fixtures]


