"""Settings that loosen the limits (issue 11, part 2): every safety field may make the safety
stage stricter, none looser; offsets cannot aim a head outside its limits; the strobe
settings that were never enforced are gone; the scene layout names each column's role.

Before (58fc28d): `flash_delta = 1.0` was accepted and `dim 0` / `dim 1` over the socket
gave 14.5 flashes/s; `pan_offset_deg = nan / -720 / 1e30` and `tilt_offset_deg = 1e6` were
accepted and pinned heads outside `pan_limits_deg`, and `safety-check` said nothing.
"""

from __future__ import annotations

import dataclasses
import math
import time

import hypothesis_profiles  # noqa: F401
import numpy as np
import pytest
from flash_counter import FlashCounter, read_show_file, rig_from_config
from hypothesis import given
from hypothesis import strategies as st
from procs import env_for, latentdmx, public_dir, rig_text, run_cli, stop, wait_for

from pi_app.config import load_config, parse_config, validate
from pi_app.control import ControlClient
from pi_app.errors import ConfigError
from pi_app.patch import Patch
from pi_app.scene import N_ATTRS

BASE = load_config(None)
TEXT = rig_text()


def with_safety(**fields) -> str:
    head, rest = TEXT.split("[safety]", 1)
    body = "".join(f"{k} = {v}\n" for k, v in fields.items())
    lines = [ln for ln in rest.splitlines(True) if ln.split("=")[0].strip() not in fields]
    return head + "[safety]" + lines[0] + body + "".join(lines[1:])


# -- every safety field: stricter yes, looser no -------------------------------------------
LOOSER = [
    ("flash_delta", "1.0"), ("flash_delta", "0.5"), ("flash_delta", "0.3"),
    ("flash_delta", "0.11"), ("flash_delta", "nan"), ("flash_delta", "0.0"),
    ("max_flashes_per_s", "3.5"), ("max_flashes_per_s", "inf"), ("max_flashes_per_s", "0"),
    ("max_flashes_per_s", "nan"),
    ("pan_slew_deg_per_s", "181"), ("pan_slew_deg_per_s", "1e9"),
    ("pan_slew_deg_per_s", "nan"), ("pan_slew_deg_per_s", "-1"),
    ("tilt_slew_deg_per_s", "91"), ("tilt_slew_deg_per_s", "inf"),
    ("colour_slew_per_s", "-1"), ("colour_slew_per_s", "nan"),
    ("master", "1.5"), ("master", "nan"), ("master", "-0.5"),
    ("fade_in_s", "-1"), ("fade_in_s", "nan"),
    ("fade_out_s", "3600"), ("fade_out_s", "31"), ("fade_out_s", "nan"), ("fade_out_s", "-1"),
    ("lit_move_deg_per_s", "41"), ("lit_move_deg_per_s", "0"), ("lit_move_deg_per_s", "nan"),
    ("lit_move_deg_per_s", "inf"),
]
STRICTER = [
    ("flash_delta", "0.1"), ("flash_delta", "0.05"), ("flash_delta", "0.08"),
    ("max_flashes_per_s", "3"), ("max_flashes_per_s", "1"), ("max_flashes_per_s", "0.5"),
    ("pan_slew_deg_per_s", "180"), ("pan_slew_deg_per_s", "30"),
    ("tilt_slew_deg_per_s", "90"), ("tilt_slew_deg_per_s", "5"),
    ("colour_slew_per_s", "0.5"), ("master", "0.2"), ("fade_in_s", "10"),
    ("fade_out_s", "30"), ("fade_out_s", "20"), ("fade_out_s", "0"),
    ("lit_move_deg_per_s", "40"), ("lit_move_deg_per_s", "10"),
]


@pytest.mark.parametrize("field, value", LOOSER)
def test_a_looser_safety_setting_is_refused(field, value):
    with pytest.raises(ConfigError) as exc:
        parse_config(with_safety(**{field: value}), "rig.toml")
    assert exc.value.file == "rig.toml" and exc.value.field == f"safety.{field}"
    assert exc.value.fix


@pytest.mark.parametrize("field, value", STRICTER)
def test_a_stricter_safety_setting_is_accepted(field, value):
    cfg = parse_config(with_safety(**{field: value}), "rig.toml")
    assert getattr(cfg.safety, field) == float(value)


def test_every_safety_field_is_covered():
    names = {f.name for f in dataclasses.fields(BASE.safety)}
    assert {f for f, _ in LOOSER} == names                # each field has a looser value...
    assert {f for f, _ in STRICTER} == names              # ... and a stricter one


def test_the_cli_says_flash_delta_in_one_line(tmp_path):
    cfg = tmp_path / "rig.toml"
    cfg.write_text(with_safety(flash_delta="1.0"))
    r = run_cli("check", str(cfg), env=env_for())
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith(f"error: {cfg}: safety.flash_delta: 1.0 is outside 0.05..0.1 — ")


@pytest.mark.slow
def test_dim_toggled_over_the_socket_stays_under_3_flashes(tmp_path):
    """The issue's reproduction, at the largest flash_delta now allowed: `dim 0` and `dim 1`
    over the control socket every 25 ms, on a real daemon; the recorded show counted by the
    independent counter."""
    d = public_dir()
    cfg = d / "rig.toml"
    cfg.write_text(with_safety(flash_delta="0.1", fade_in_s="0.0"))
    rec = d / "show.txt"
    show = latentdmx("run", "--config", str(cfg), "--output", "sim", "--record", str(rec),
                     env=env_for(xdg=d))
    sock = d / "latentdmx" / "control.sock"
    try:
        wait_for(sock.exists, 30, "the control socket")
        time.sleep(1.0)
        client, t0, k = ControlClient(sock), time.monotonic(), 0
        while time.monotonic() - t0 < 6.0:            # 58fc28d, flash_delta 1.0: 20/s
            client.request("dim", level=float(k % 2))
            k += 1
            time.sleep(0.025)
        assert k > 100
    finally:
        stop(show)
    counter = FlashCounter(rig_from_config(cfg))
    for t, frames in read_show_file(rec):
        counter.add(t, frames)
    print(counter.summary())                            # the figures, with `pytest -s`
    assert counter.frames > 100
    assert counter.worst()[1] <= 3.0, counter.summary()


# -- offsets, inverts, limits ---------------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("pan_offset_deg", "nan"), ("pan_offset_deg", "-720"), ("pan_offset_deg", "1e30"),
    ("tilt_offset_deg", "1e6"), ("pan_offset_deg", "inf"), ("pan_offset_deg", "180"),
    ("tilt_offset_deg", "-180")])
def test_unusable_offsets_are_refused(field, value):
    text = TEXT.replace('name = "head-left"\n', f'name = "head-left"\n{field} = {value}\n', 1)
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "rig.toml")
    assert exc.value.field == f"fixtures[1] ('head-left').{field}"
    # nan/inf are refused when the file is read (every number must be finite)
    assert "limits" in exc.value.fix or (value in ("nan", "inf") and "ordinary number" in
                                         exc.value.fix)


def test_an_offset_on_a_fixture_without_that_axis_is_refused():
    text = TEXT.replace('name = "par-1"\n', 'name = "par-1"\npan_offset_deg = 10\n', 1)
    with pytest.raises(ConfigError, match="has no pan"):
        parse_config(text, "rig.toml")


def _head(lim_pan, lim_tilt, off_pan, off_tilt, inv_pan, inv_tilt):
    fx = BASE.fixtures[0]
    return dataclasses.replace(fx, pan_limits_deg=lim_pan, tilt_limits_deg=lim_tilt,
                               pan_offset_deg=off_pan, tilt_offset_deg=off_tilt,
                               invert_pan=inv_pan, invert_tilt=inv_tilt)


limits = st.tuples(st.floats(0, 539), st.floats(1, 540)).map(
    lambda t: (0.0, 0.0) if t[0] >= t[1] else (float(t[0]), float(t[1])))


@given(lp=limits, lt=limits.map(lambda t: (t[0] / 2, t[1] / 2)),
       fp=st.floats(-0.999, 0.999), ft=st.floats(-0.999, 0.999),
       ip=st.booleans(), it=st.booleans(),
       scene=st.lists(st.floats(-0.5, 1.5, width=32), min_size=2, max_size=2))
def test_limits_hold_after_offset_and_invert(lp, lt, fp, ft, ip, it, scene):
    """Whatever the (valid) offset and invert, the head stays inside its limits."""
    span_p = (lp[1] - lp[0]) or 540.0
    span_t = (lt[1] - lt[0]) or 270.0
    fx = _head(lp, lt, fp * span_p, ft * span_t, ip, it)
    cfg = validate(BASE.replace(fixtures=(fx,)))
    patch = Patch(cfg)
    s = np.zeros((1, N_ATTRS), np.float32)
    s[0, :2] = scene
    f = patch.frames(s)[1]
    pan = (int(f[0]) * 256 + int(f[1])) / 65535 * 540        # 14ch: pan, pan fine, tilt, ...
    tilt = (int(f[2]) * 256 + int(f[3])) / 65535 * 270
    lo_p, hi_p = lp if lp != (0.0, 0.0) else (0.0, 540.0)
    lo_t, hi_t = lt if lt != (0.0, 0.0) else (0.0, 270.0)
    step_p, step_t = 540 / 65535, 270 / 65535
    assert lo_p - step_p <= pan <= hi_p + step_p
    assert lo_t - step_t <= tilt <= hi_t + step_t


def test_a_small_offset_still_moves_and_is_clamped_at_the_limit():
    fx = _head((180.0, 360.0), (45.0, 225.0), 30.0, 0.0, False, False)
    patch = Patch(validate(BASE.replace(fixtures=(fx,))))
    pans = []
    for v in (0.0, 0.5, 1.0):
        s = np.zeros((1, N_ATTRS), np.float32)
        s[0, :2] = v
        f = patch.frames(s)[1]
        pans.append((int(f[0]) * 256 + int(f[1])) / 65535 * 540)
    assert pans[0] == pytest.approx(210, abs=0.01)          # 180 + 30
    assert pans[1] == pytest.approx(300, abs=0.01)
    assert pans[2] == pytest.approx(360, abs=0.01)          # 390 clamped to the limit


def test_safety_check_reports_aim_outside_the_limits(tmp_path):
    """A recording whose head sits outside its configured limits (what 58fc28d played with
    pan_offset_deg = -720): the checker reports it."""
    from pi_app.safety_check import check_frames

    patch = Patch(BASE)
    s = np.zeros((40, len(patch), N_ATTRS), np.float32)
    s[:, :, :2] = 0.5
    frames = []
    for k in range(40):
        f = {u: v.copy() for u, v in patch.frames(s[k]).items()}
        if k >= 10:
            f[1][0] = f[1][1] = 0            # head-left's pan at 0 deg: its limits are 180..360
        frames.append([f[1]])
    rep = check_frames(np.array(frames, np.uint8), (1,), np.arange(40) / 40, BASE)
    hits = [v for v in rep.violations if "outside its limits" in v]
    assert hits == ["head-left: pan at 0.0 deg at 0.25 s is outside its limits 180..360 deg "
                    "(30 frames)"], rep.violations


# -- strobe: removed with its promise --------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("key, value", [("allow_strobe", "true"), ("allow_strobe", "false"),
                                        ("strobe_max_hz", "3.0")])
def test_old_strobe_keys_get_one_line_saying_what_to_do(tmp_path, key, value):
    cfg = tmp_path / "old.toml"
    cfg.write_text(TEXT.replace("[safety]", f"[safety]\n{key} = {value}", 1))
    r = run_cli("check", str(cfg), env=env_for())
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"error: {cfg}: safety.{key}: removed: ")
    assert "delete the line" in r.stderr


def test_nothing_promises_a_strobe_cap():
    from procs import REPO

    from pi_app.config import SafetyConfig

    assert not {"allow_strobe", "strobe_max_hz"} & {f.name for f in
                                                    dataclasses.fields(SafetyConfig)}
    for path in ("README.md", "docs/safety.md", "docs/configuration.md",
                 "pi_app/data/default.toml", "pi_app/config.py", "pi_app/safety.py",
                 "systemd/latentdmx.service"):
        text = (REPO / path).read_text()
        assert "capped at" not in text and "strobe_max_hz =" not in text, path


# -- the scene layout ----------------------------------------------------------------------
def test_scene_roles_drive_the_column_sets():
    from pi_app import scene as sc

    assert sc.ATTRS[sc.AIM] == ("pan", "tilt")
    assert sc.ATTRS[sc.LIGHT] == ("dimmer", "red", "green", "blue", "white")
    assert sc.COLOUR_ATTRS == ("red", "green", "blue", "white")
    assert sc.ATTRS[sc.HELD] == ("zoom",)                      # held or driven in limits
    np.testing.assert_allclose(sc.LUMA, [0.2126, 0.7152, 0.0722, 1.0], rtol=1e-6)


def test_a_new_attribute_cannot_count_as_light_by_accident():
    from pi_app.scene import LAYOUT, Attr, _role_slices

    iris = Attr("iris", "held", rest=0.5)                       # another held one, after zoom
    slices = _role_slices((*LAYOUT, iris))
    assert slices["held"] == slice(7, 9)
    assert (slices["intensity"].start, slices["colour"].stop) == (2, 7)    # light: 2..6
    with pytest.raises(ValueError, match="grouped by role"):
        _role_slices((*LAYOUT[:2], iris, *LAYOUT[2:]))         # iris among the light
    with pytest.raises(ValueError, match="no known role"):
        _role_slices((*LAYOUT, Attr("gobo", "mystery")))
    with pytest.raises(ValueError, match="one intensity"):
        _role_slices((*LAYOUT[:3], Attr("dimmer2", "intensity"), *LAYOUT[3:]))


def test_empty_scene_and_blackout_follow_the_roles():
    from pi_app import scene as sc

    s = sc.empty_scene(3)
    assert s.shape == (3, sc.N_ATTRS) and s.dtype == np.float32
    assert (s[:, sc.AIM] == 0.5).all() and (s[:, sc.LIGHT] == 0).all()
    lit = np.full((3, sc.N_ATTRS), 0.7, np.float32)
    dark = sc.blackout(lit)
    assert (dark[:, sc.LIGHT] == 0).all() and (dark[:, sc.AIM] == 0.7).all()
    assert math.isclose(float(lit[0, 0]), 0.7, rel_tol=1e-6)       # a copy

