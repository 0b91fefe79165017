"""Patch: Lumeri layouts, forbidden ranges never written, 16-bit splitting, blackout."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pi_app.config import parse_config
from pi_app.fixtures import find_profile
from pi_app.patch import Patch
from pi_app.scene import ATTRS, N_ATTRS, blackout

RIG = """
[[fixtures]]
name = "h14"
profile = "lumeri-wash-7-10"
mode = "14ch"
address = 1
[[fixtures]]
name = "h9"
profile = "lumeri-wash-7-10"
mode = "9ch"
address = 20
[[fixtures]]
name = "par"
profile = "generic-rgbw-par"
mode = "4ch"
address = 40
[[fixtures]]
name = "dim"
profile = "generic-dimmer"
mode = "1ch"
universe = 2
address = 512
"""


@pytest.fixture(scope="module")
def patch():
    return Patch(parse_config(RIG, "rig.toml"))


def scene_of(**cols):
    s = np.zeros((4, len(ATTRS)), np.float32)
    for k, v in cols.items():
        s[:, ATTRS.index(k)] = v
    return s


def test_lumeri_layouts():
    prof = find_profile("lumeri-wash-7-10")
    assert [c.attr for c in prof.mode("9ch").channels] == [
        "pan", "tilt", "dimmer", "red", "green", "blue", "white", "hold", "hold"]
    assert [c.attr for c in prof.mode("14ch").channels] == [
        "pan", "pan_fine", "tilt", "tilt_fine", "hold", "dimmer", "red", "green", "blue",
        "white", "hold", "hold", "hold", "hold"]
    for m in prof.modes:
        dim = next(c for c in m.channels if c.attr == "dimmer")
        assert (dim.min, dim.max) == (0, 134)
        assert all(c.value == 0 for c in m.channels if c.attr == "hold")
    assert (prof.pan_deg, prof.tilt_deg) == (540, 270)


def test_full_scene_values(patch):
    f = patch.frames(scene_of(pan=1, tilt=1, dimmer=1, red=1, green=1, blue=1, white=1))
    u1 = f[1]
    assert list(u1[0:14]) == [255, 255, 255, 255, 0, 134, 255, 255, 255, 255, 0, 0, 0, 0]
    assert list(u1[19:28]) == [255, 255, 134, 255, 255, 255, 255, 0, 0]
    assert list(u1[39:43]) == [255, 255, 255, 255]
    assert f[2][511] == 255                  # dimmer: dimmer x luminance(1,1,1,1) clipped


@given(arrays(np.float32, (4, N_ATTRS), elements=st.floats(-1, 2, width=32)))
def test_forbidden_ranges_never_written(patch, scene):
    u1 = patch.frames(scene)[1]
    for base, dimmer_at, held in ((0, 5, (4, 10, 11, 12, 13)), (19, 2, (7, 8))):
        assert u1[base + dimmer_at] <= 134               # never the strobe range
        assert all(u1[base + h] == 0 for h in held)      # reset, macro, auto, speed held


@given(st.floats(0, 1, width=32))
def test_16bit_coarse_fine_split(patch, pan):
    u1 = patch.frames(scene_of(pan=pan))[1]
    v16 = int(u1[0]) * 256 + int(u1[1])
    f32 = np.float32

    def round_half_up(x: float, scale: float) -> int:    # what the patch does, in float32
        return int(f32(f32(x) * f32(scale)) + f32(0.5))

    assert v16 == round_half_up(pan, 65535)
    # nearest, up to float32's rounding of the product (half an ulp at 65535: 2^-9)
    assert abs(v16 - pan * 65535) <= 0.5 + 2.0 ** -8
    assert int(u1[19]) == round_half_up(pan, 255)             # 9ch: 8-bit pan


def test_limits_invert_offset():
    rig = RIG.replace('mode = "14ch"\n', 'mode = "14ch"\npan_limits_deg = [180, 360]\n'
                      'invert_tilt = true\n', 1)
    p = Patch(parse_config(rig, "rig.toml"))
    u1 = p.frames(scene_of(pan=0.0, tilt=0.0))[1]
    assert int(u1[0]) * 256 + int(u1[1]) == round(180 / 540 * 65535)
    assert int(u1[2]) * 256 + int(u1[3]) == 65535               # tilt inverted
    u1 = p.frames(scene_of(pan=1.0))[1]
    assert int(u1[0]) * 256 + int(u1[1]) == round(360 / 540 * 65535)


def test_blackout_holds_pan_tilt(patch):
    s = scene_of(pan=0.3, tilt=0.7, dimmer=1, red=1, white=1)
    lit = {u: f.copy() for u, f in patch.frames(s).items()}
    dark = patch.frames(blackout(s))
    assert np.array_equal(patch.blackout_frames(lit)[1], dark[1])
    assert list(dark[1][0:4]) == list(lit[1][0:4])         # pan/tilt hold
    assert dark[1][5] == 0 and not dark[1][6:10].any() and not dark[1][39:43].any()
    assert dark[2][511] == 0
