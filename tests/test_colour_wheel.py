"""Colour wheels: a static slot nearest the model's colour, turned only while the head is dark.

Real files: the Stairville B5R's colour wheel (qlcplus-data, QLC+ ``ColorMacro`` slots with
their colours), the Fun Generation PicoSpot 45 LED's (OFL ``WheelSlot`` on a wheel of
``Color`` slots) and the ACME AE-610 Beam's (GDTF ``Color1`` wheel slots in CIE xyY).
Checked on the DMX bytes of a recorded show: the wheel is only ever at a
static slot (never a rotation or split-colour range), changes only on frames where the
fixture's dimmer is 0, and follows the colour the model wants.
"""

from __future__ import annotations

import colorsys
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from procs import REPO, env_for, public_dir, run_cli

from pi_app.sim.record import read_show

QLC = Path("/usr/share/qlcplus/fixtures")
B5R = QLC / "Stairville/Stairville-Beam-Moving-Head-B5R.qxf"
PICO = REPO / "tests/data/fixtures/ofl-corpus/fun-generation/picospot-45-led.json"
ACME = REPO / "tests/data/gdtf/ACME@ACME_AE-610_BEAM@ACME_AE-610_BEAM.gdtf"

pytestmark = pytest.mark.skipif(not B5R.is_file(), reason="Debian's qlcplus-data is not installed")

RIG = """
fps = 40
[control]
enabled = false
""" + "".join(f"""
[[fixtures]]
name = "b5r-{i}"
profile = "stairville-beam-moving-head-b5r"
mode = "16-channel"
address = {1 + 16 * i}
position = [{0.15 + 0.25 * i:.2f}, 0.4]
""" for i in range(3)) + """
[[fixtures]]
name = "pico"
profile = "fun-generation-picospot-45-led"
mode = "9ch"
address = 100
position = [0.9, 0.7]
"""
# 0-based slots: B5R 16-channel: wheel 0, shutter 1, dimmer 2; PicoSpot 9ch: see the profile.
B5R_WHEEL = [16 * i for i in range(3)]
B5R_DIMMER = [16 * i + 2 for i in range(3)]


@pytest.fixture(scope="module")
def profiles() -> Path:
    home = public_dir("latentdmx-wheel-")
    env = env_for(xdg=public_dir(), XDG_CONFIG_HOME=str(home))
    for f in (B5R, PICO):
        r = run_cli("fixtures", "import", str(f), env=env)
        assert r.returncode == 0, r.stdout + r.stderr
    return home


def _load(profiles: Path, key: str):
    from pi_app.fixtures.profile import load_profile_file

    return load_profile_file(profiles / "latentdmx" / "fixtures" / f"{key}.json")


def _hue(rgb) -> float:
    return colorsys.rgb_to_hsv(*(float(x) for x in rgb))[0] * 360.0


def _hue_gap(a: float, b: float) -> float:
    return min(abs(a - b), 360.0 - abs(a - b))


def test_wheels_are_imported_as_static_slots(profiles):
    """The B5R's wheel: its 15 static colours (white, red, orange ... UV), none of its
    'rotation' or split-colour ranges; the PicoSpot's from its OFL wheel. A fixture that mixes
    colour keeps its colour-macro channel held: a wheel only where nothing else colours."""
    from fixture_judge import read_raw

    b5r = _load(profiles, "stairville-beam-moving-head-b5r").mode("16-channel")
    assert b5r is not None
    (wheel,) = [c for c in b5r.channels if c.attr == "wheel"]
    assert wheel.value == 0 and len(wheel.slots) >= 10
    raw = read_raw(B5R)["16-channel"][0]
    for v, _colour in wheel.slots:
        cap = raw.at(v)
        assert cap is not None and cap.preset == "ColorMacro", (v, cap)
        assert "rotation" not in cap.text.lower() and "+" not in cap.text, (v, cap.text)
    pico = _load(profiles, "fun-generation-picospot-45-led").mode("9ch")
    assert pico is not None and sum(c.attr == "wheel" for c in pico.channels) == 1
    # a GDTF wheel: its slots' CIE colours (the ACME's "Color 1" is x 0.6401, y 0.33: the sRGB
    # red primary), its spin ranges never
    from pi_app.fixtures.importing import import_file as imp

    acme, _ = imp(ACME)
    (gw,) = [c for c in acme.modes[0].channels if c.attr == "wheel"]
    assert gw.value == 0 and len(gw.slots) >= 10 and (12, "#ff0000") in gw.slots
    assert all(v < 128 for v, _ in gw.slots)           # 128-255: "Color Spin"

    from pi_app.errors import LatentDMXError
    from pi_app.fixtures.importing import import_file

    for f in sorted((REPO / "tests/data/fixtures/ofl-corpus").rglob("*.json"))[:400]:
        try:
            prof, _ = import_file(f)
        except LatentDMXError:      # refused files: test_fixtures' sweep says why
            continue
        for m in prof.modes:
            mixes = any(c.attr in ("red", "green", "blue", "cyan", "magenta", "yellow")
                        for c in m.channels)
            assert not (mixes and any(c.attr == "wheel" for c in m.channels)), (f, m.name)


def test_a_dark_head_turns_to_the_nearest_hue_and_a_lit_one_never_turns(profiles, monkeypatch):
    """The stage itself, on the patch's real buffers: while the dimmer writes 0 the wheel goes
    to the slot nearest the wanted colour (pure green -> a green slot, blue -> a blue one, ...);
    while it is lit the wheel keeps its slot whatever the colour."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(profiles))
    from pi_app.config import parse_config
    from pi_app.patch import Patch
    from pi_app.scene import COLOUR, DIMMER, empty_scene
    from pi_app.wheels import Wheels

    cfg = parse_config(RIG, "rig.toml")
    patch = Patch(cfg)
    wheels = Wheels(patch)
    assert len(wheels) == 4
    state = wheels.state()
    b5r = _load(profiles, "stairville-beam-moving-head-b5r").mode("16-channel")
    colour_of = {v: c for v, c in next(c for c in b5r.channels if c.attr == "wheel").slots}
    n = len(patch.fixtures)
    for want in ([0, 1, 0, 0], [0, 0, 1, 0], [1, 1, 0, 0], [0, 0.3, 1, 0], [0, 1, 1, 0],
                 [1, 0.5, 0, 0], [0, 0, 0, 1]):
        scene = empty_scene(n)
        scene[:, DIMMER] = 0.0
        colour = np.tile(np.array(want, np.float32), (n, 1))
        frames = patch.frames(scene)
        wheels.write(frames, colour, state)
        got = int(frames[1][B5R_WHEEL[0]])
        slot = colour_of[got]
        rgb = [int(slot[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        if want == [0, 0, 0, 1]:
            assert min(rgb) > 0.9, (want, slot)                  # white: the open slot
        else:
            w = [want[0], want[1], want[2]]
            assert _hue_gap(_hue(rgb), _hue(w)) <= 40, (want, slot)
        # lit: the wheel stays, whatever the model wants now
        scene[:, DIMMER] = 0.8
        scene[:, COLOUR] = 1.0              # (the safety stage whitens a wheel fixture)
        frames = patch.frames(scene)
        wheels.write(frames, 1.0 - colour, state)
        assert int(frames[1][B5R_WHEEL[0]]) == got
        assert frames[1][B5R_DIMMER[0]] > 0


def _record(profiles: Path, tmp: Path, seconds: int) -> tuple[Path, Path, dict]:
    d = public_dir(ram=True)
    cfg = d / "rig.toml"
    cfg.write_text(RIG)
    env = env_for(runtime=d, XDG_CONFIG_HOME=str(profiles), STATE_DIRECTORY=str(d / "state"))
    rec = tmp / "show.txt"
    r = subprocess.run([sys.executable, "-m", "pi_app.cli", "run", "--config", str(cfg),
                        "--seed", "11", "--duration", str(seconds), "--record", str(rec)],
                       env={**env, "LATENTDMX_FAKE_CLOCK": "1"}, cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return rec, cfg, env


def _frames(rec: Path) -> np.ndarray:
    """Universe 1's frames of a recording (uint8 [n, 512])."""
    frames, universes, _ = read_show(rec)
    return frames[:, universes.index(1)]


@pytest.mark.slow
def test_a_recorded_show_turns_wheels_only_in_the_dark(profiles, tmp_path):
    """Three minutes of show on the DMX bytes: every wheel value a static slot of its file;
    a wheel changes only on a frame where its dimmer is 0; the wheels do turn (not held at
    white); `safety-check` passes, and fails on the same recording with one wheel turned on a
    lit frame."""
    rec, cfg, env = _record(profiles, tmp_path, 180)
    frames = _frames(rec)
    b5r = _load(profiles, "stairville-beam-moving-head-b5r").mode("16-channel")
    wheel = next(c for c in b5r.channels if c.attr == "wheel")
    allowed = {wheel.value, *(v for v, _ in wheel.slots)}
    turns = 0
    for ws, ds in zip(B5R_WHEEL, B5R_DIMMER, strict=True):
        w, d = frames[:, ws].astype(int), frames[:, ds]
        assert set(np.unique(w).tolist()) <= allowed
        changed = np.flatnonzero(np.diff(w)) + 1
        assert (d[changed] == 0).all(), [(int(k), int(d[k])) for k in changed if d[k]][:5]
        turns += len(changed)
        assert (d > 0).any()
    print(f"\nwheel turns in 180 s: {turns}")
    assert turns >= 3, "the wheels never turned: held at one slot"
    r = run_cli("safety-check", str(rec), "--config", str(cfg), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    # the checker can fail: one wheel turned on a lit frame
    lit = int(np.flatnonzero(frames[:, B5R_DIMMER[0]] > 0)[len(frames) // 4 % 50])
    other = next(v for v, _ in wheel.slots if v != frames[lit, B5R_WHEEL[0]])
    lines = rec.read_text().splitlines()
    k = 1 + 2 * lit                     # one universe: a frame line, then its delay line
    vals = lines[k].split(" ", 1)[1].split(",")
    vals[B5R_WHEEL[0]] = str(other)
    lines[k] = "1 " + ",".join(vals)
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(lines) + "\n")
    r = run_cli("safety-check", str(bad), "--config", str(cfg), env=env)
    assert r.returncode == 1 and "colour wheel turned while lit" in r.stdout, r.stdout


@pytest.mark.slow
def test_a_wheel_is_never_seen_travelling(profiles, tmp_path):
    """After every wheel change the head stays dark for the wheel's dwell (0.5 s: 20 frames
    at 40 fps) so the wheel reaches its slot unseen, and the wheel does not change again
    within it; the show still passes `safety-check` (its flash counter and the wheel rules)."""
    from pi_app.wheels import WHEEL_DWELL_S

    rec, cfg, env = _record(profiles, tmp_path, 120)
    frames = _frames(rec)
    dwell = int(np.ceil(WHEEL_DWELL_S * 40 - 1e-9))
    assert dwell >= 10
    turns = 0
    for ws, ds in zip(B5R_WHEEL, B5R_DIMMER, strict=True):
        w, d = frames[:, ws].astype(int), frames[:, ds].astype(int)
        changed = np.flatnonzero(np.diff(w)) + 1
        seen = [(int(k), int(np.flatnonzero(d[k:k + dwell])[0]))
                for k in changed if d[k:k + dwell].any()]
        assert not seen, f"lit before the wheel arrived (frame, frames after): {seen[:5]}"
        assert (np.diff(changed) >= dwell).all(), np.diff(changed).min()
        turns += len(changed)
        assert (d > 0).any()
    assert turns >= 3, "the wheels never turned: held at one slot"
    r = run_cli("safety-check", str(rec), "--config", str(cfg), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    # the checker can fail: a head lit 5 frames after its wheel turned (the first turn with
    # 5 frames after it: heads that rest may keep one colour for most of the show)
    first, head = min((int(np.flatnonzero(np.diff(frames[:, ws]))[0]) + 1, i)
                      for i, ws in enumerate(B5R_WHEEL) if np.diff(frames[:, ws]).any())
    k = first + 5
    assert k < len(frames), "no wheel turned early enough to light the head after it"
    lines = rec.read_text().splitlines()
    vals = lines[1 + 2 * k].split(" ", 1)[1].split(",")
    vals[B5R_DIMMER[head]] = "40"
    lines[1 + 2 * k] = "1 " + ",".join(vals)
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(lines) + "\n")
    r = run_cli("safety-check", str(bad), "--config", str(cfg), env=env)
    assert r.returncode == 1 and "s after its colour wheel turned" in r.stdout, r.stdout


@pytest.mark.parametrize("t0", [0.0, 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0])
def test_the_dwell_on_show_time_from_an_hour_to_a_year(profiles, monkeypatch, t0):
    """The stage on the patch's buffers at an hour, a day, a month and a year of show time:
    a wheel that changes at `t0` keeps its head dark (`hold_dark`) and does not change again
    for 20 frames at 40 fps, then the head may light; show time that goes back (a new show)
    cuts a dwell to at most `WHEEL_DWELL_S`."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(profiles))
    from pi_app.config import parse_config
    from pi_app.patch import Patch
    from pi_app.scene import DIMMER, LIGHT, empty_scene
    from pi_app.wheels import WHEEL_DWELL_S, Wheels

    patch = Patch(parse_config(RIG, "rig.toml"))
    wheels = Wheels(patch)
    state, until = wheels.state(), wheels.dwell_state()
    n = len(patch.fixtures)
    dark = empty_scene(n)
    dark[:, DIMMER] = 0.0
    lit = dark.copy()
    lit[:, DIMMER] = 0.8
    green = np.tile(np.array([0, 1, 0, 0], np.float32), (n, 1))
    blue = np.tile(np.array([0, 0, 1, 0], np.float32), (n, 1))
    frames = patch.frames(dark)
    wheels.write(frames, green, state, until, t0)
    first = int(frames[1][B5R_WHEEL[0]])
    assert first != 0 and (until == t0 + WHEEL_DWELL_S)[:3].all()
    frames_in = round(WHEEL_DWELL_S * 40)
    for k in range(1, frames_in):               # on its way: dark, and it stays put
        t = t0 + k / 40.0
        held = wheels.hold_dark(lit, until, t)
        assert held is not lit and not held[wheels.fixture, LIGHT].any(), k
        frames = patch.frames(held)
        wheels.write(frames, blue, state, until, t)
        assert int(frames[1][B5R_WHEEL[0]]) == first, k
    t = t0 + frames_in / 40.0                   # arrived: may light, or turn again
    assert wheels.hold_dark(lit, until, t) is lit
    frames = patch.frames(dark)
    wheels.write(frames, blue, state, until, t)
    assert int(frames[1][B5R_WHEEL[0]]) != first        # dark at the dwell's end: turns
    wheels.hold_dark(lit, until, 1.0)                   # a new show from 1 s
    assert (until <= 1.0 + WHEEL_DWELL_S).all()


def test_wheels_run_ahead_and_roll_back_to_the_same_frames(profiles, monkeypatch):
    """The chosen slot is the pipeline's state: a show of wheel fixtures worked out ahead, with
    commands inside its batches (rollbacks), sends every frame byte for byte as a show that
    never ran ahead — and its wheels do turn."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(profiles))
    from test_run_ahead import same_show

    from pi_app.config import parse_config

    cfg = parse_config(RIG, "rig.toml")
    show = same_show({40: [("dim", {"level": 0.0})], 120: [("dim", {"level": 1.0})],
                      200: [("seed", {"seed": 5})]}, config=cfg, seconds=12.0)
    assert show.ahead is not None and show.ahead.rollbacks >= 2
    assert (show.pipeline.wheel_slot >= 0).any()       # the wheels left their white slot
