"""The scene: what every fixture should do this frame, before the patch.

A scene is ``float32[n_fixtures, N_ATTRS]`` in [0, 1]; columns are `ATTRS`, rows are the
patch's fixture order. Pan/tilt 0..1 span the profile's range after per-fixture limits.

The layout is declared once, in `LAYOUT`: every attribute has a **role**, and the patch and
the safety stage take their column sets from the roles, never from positions:

- ``aim``: where a head points (pan, tilt): slew-limited, kept out of keep-out boxes, parked
  on stop, held where it is by a blackout;
- ``intensity``: the one dimmer the light is scaled by;
- ``colour``: an emitter, with its weight in relative luminance and in the red signal;
  intensity and colour together are the light: flash-limited, faded, zeroed by a blackout;
- ``held``: anything else a scene may carry (zoom, focus, ...): passed through, kept by a
  blackout, never counted as light.

Columns are grouped by role in that order, so each role is a slice (a NumPy view: the hot
path stays as cheap as with hard-coded positions); `_role_slices` refuses a layout that
breaks this, so a new attribute cannot land inside the light columns by accident.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROLES: tuple[str, ...] = ("aim", "intensity", "colour", "held")


@dataclass(frozen=True)
class Attr:
    name: str
    role: str              # one of ROLES
    rest: float = 0.0      # its value in a dark scene with heads centred (`empty_scene`)
    luma: float = 0.0      # colour: weight in relative luminance (Rec. 709 / WCAG)
    red: float = 0.0       # colour: weight in the red signal (+1 red, -1 every other light)
    spelled: str = ""      # held: what fixture files call it (a QLC+ preset's or channel's
    #                        word, an OFL capability type, a GDTF attribute), e.g. "Zoom"


LAYOUT: tuple[Attr, ...] = (
    Attr("pan", "aim", rest=0.5),
    Attr("tilt", "aim", rest=0.5),
    Attr("dimmer", "intensity"),
    Attr("red", "colour", luma=0.2126, red=1.0),
    Attr("green", "colour", luma=0.7152, red=-1.0),
    Attr("blue", "colour", luma=0.0722, red=-1.0),
    Attr("white", "colour", luma=1.0, red=-1.0),     # a white emitter counts fully
    Attr("zoom", "held", rest=0.5, spelled="Zoom"),  # 0..1 over its channel's DMX range
)


def _role_slices(layout: tuple[Attr, ...]) -> dict[str, slice]:
    """{role: slice of its columns}; the roles must come in `ROLES` order, each contiguous,
    with exactly one intensity attribute (light = intensity x colour)."""
    order = [ROLES.index(a.role) if a.role in ROLES else -1 for a in layout]
    bad = [a.name for a, k in zip(layout, order, strict=True) if k < 0]
    if bad:
        raise ValueError(f"scene layout: attribute(s) {bad} have no known role {ROLES}")
    if order != sorted(order):
        raise ValueError("scene layout: attributes must be grouped by role, in the order "
                         f"{ROLES}: {[(a.name, a.role) for a in layout]}")
    out = {}
    for k, role in enumerate(ROLES):
        cols = [i for i, r in enumerate(order) if r == k]
        out[role] = slice(cols[0], cols[-1] + 1) if cols else slice(len(layout), len(layout))
    if out["intensity"].stop - out["intensity"].start != 1:
        raise ValueError("scene layout: exactly one intensity attribute is needed")
    return out


_SLICES = _role_slices(LAYOUT)
ATTRS: tuple[str, ...] = tuple(a.name for a in LAYOUT)
N_ATTRS = len(ATTRS)
_COL = {name: i for i, name in enumerate(ATTRS)}
PAN, TILT, DIMMER = _COL["pan"], _COL["tilt"], _COL["dimmer"]
RED, GREEN, BLUE, WHITE = _COL["red"], _COL["green"], _COL["blue"], _COL["white"]
AIM = _SLICES["aim"]                     # pan, tilt
INTENSITY = _SLICES["intensity"]         # dimmer (a one-column slice: keeps the 2-D shape)
COLOUR = _SLICES["colour"]               # red, green, blue, white
HELD = _SLICES["held"]                   # zoom
HELD_ATTRS: tuple[str, ...] = ATTRS[HELD]
LIGHT = slice(INTENSITY.start, COLOUR.stop)       # everything that emits light
COLOUR_ATTRS: tuple[str, ...] = ATTRS[COLOUR]
N_COLOUR = len(COLOUR_ATTRS)
assert (AIM.stop - AIM.start, PAN, TILT) == (2, AIM.start, AIM.start + 1), "aim is pan, tilt"
assert LIGHT.stop - LIGHT.start == 1 + N_COLOUR

# Luminance and red weights of the colour columns, in column order. The patch drives
# dimmer-only fixtures with dimmer x min(colour . LUMA, 1); the safety stage derives its flash
# luminance and red signal from them.
LUMA = np.array([a.luma for a in LAYOUT[COLOUR]], dtype=np.float32)
RED_W = np.array([a.red for a in LAYOUT[COLOUR]], dtype=np.float32)
REST = np.array([a.rest for a in LAYOUT], dtype=np.float32)


def held_named(text: str, *, within: bool = False) -> str | None:
    """The held attribute a fixture file's `text` names (its `Attr.spelled`, any case), or
    None; `within`: the spelling may be a word inside `text` ("BeamZoomSmallBig", "Zoom
    fine" for QLC+)."""
    low = text.lower()
    for a in LAYOUT[HELD]:
        word = a.spelled.lower()
        if word and (low == word or (within and word in low)):
            return a.name
    return None


def column(name: str) -> int:
    """The column of a scene attribute (KeyError for an unknown name)."""
    return _COL[name]


def empty_scene(n_fixtures: int) -> np.ndarray:
    """A dark scene with heads centred: (n, N_ATTRS) float32."""
    return np.repeat(REST[None, :], n_fixtures, axis=0)


def blackout(scene: np.ndarray) -> np.ndarray:
    """The one definition of blackout: light to 0; aim and held attributes stay as they are."""
    out = np.array(scene, dtype=np.float32, copy=True)
    out[:, LIGHT] = 0.0
    return out


def dark_frames(frames, light, dark=None) -> dict[int, np.ndarray]:
    """The one definition of a dark frame: `frames` ({universe: uint8[512]}) with every light
    slot (``light``: {universe: 0-based slots}) at its dark value (``dark``: {universe: values,
    one per slot in ``light``}; missing: 0) and every other slot as it was. A light channel's
    dark value is 0 unless its 0 switches a lamp off or resets the fixture (`Patch.dark_slots`
    is the rig's; a blackout, `latentdmx darken` and the end of a show all go through here)."""
    out = {}
    for u, f in frames.items():
        d = np.array(f, dtype=np.uint8, copy=True)
        slots = light.get(u)
        if slots is not None and len(slots):
            vals = None if dark is None else dark.get(u)
            d[np.asarray(slots, np.intp)] = 0 if vals is None else np.asarray(vals, np.uint8)
        out[u] = d
    return out


def lit_slots(frames, light, dark=None) -> int:
    """How many light slots of `frames` are not at their dark value (see `dark_frames`)."""
    n = 0
    for u, f in frames.items():
        slots = light.get(u)
        if slots is None or not len(slots):
            continue
        vals = None if dark is None else dark.get(u)
        ref = 0 if vals is None else np.asarray(vals, np.uint8)
        n += int(np.count_nonzero(np.asarray(f)[np.asarray(slots, np.intp)] != ref))
    return n

