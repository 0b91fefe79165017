"""Move in black: a head whose wanted aim jumps dims, moves and comes back; it never sweeps
lit across the room. Real pipeline (moves, safety, patch), the wanted scene injected."""

from __future__ import annotations

import numpy as np
import pytest

from pi_app.config import load_config
from pi_app.decode import Rig
from pi_app.pipeline import Pipeline
from pi_app.runtime import load_model
from pi_app.scene import DIMMER, N_ATTRS, PAN, RED, TILT, WHITE

FPS = 40


def play(wanted_at, seconds: float, model: str = "nat-aurora"):
    """Frames of a show whose mapper output at time t is `wanted_at(t)` (n, N_ATTRS)."""
    config = load_config(None)
    pipe = Pipeline(config, load_model(model), seed=0)
    pipe.heads.heads = []                   # the wanted aim as injected (no slow paths)
    clock = {"t": 0.0}
    pipe.source.scene = lambda phase: wanted_at(clock["t"])
    pipe.source.scene_ahead = lambda phase, ahead: wanted_at(clock["t"])    # the show's way
    rig = Rig.from_patch(pipe.patch)
    frames = []
    for k in range(int(seconds * FPS)):
        clock["t"] = k / FPS
        frames.append(rig.frames_array(pipe.frames(k / FPS)))
    return rig, rig.decode(np.stack(frames)), pipe


def scene(n: int, pan: float, tilt: float, level: float = 0.8) -> np.ndarray:
    s = np.zeros((n, N_ATTRS), np.float32)
    s[:, PAN], s[:, TILT], s[:, DIMMER] = pan, tilt, level
    s[:, RED:WHITE + 1] = (1.0, 0.5, 0.2, 0.3)
    return s


def rel(rig, look, i):
    f = rig.fixtures[i]
    return np.stack([(look.pan[:, i] - f.pan_range[0]) / (f.pan_range[1] - f.pan_range[0]),
                     (look.tilt[:, i] - f.tilt_range[0]) / (f.tilt_range[1] - f.tilt_range[0])],
                    1)


def test_a_jump_is_moved_in_the_dark():
    n = len(load_config(None).fixtures)
    rig, look, pipe = play(lambda t: scene(n, 0.1, 0.2) if t < 4 else scene(n, 0.9, 0.8), 9)
    heads = [i for i, f in enumerate(rig.fixtures) if f.moves]
    for i in heads:
        aim, light = rel(rig, look, i), look.colour[:, i].max(axis=1)
        assert np.allclose(aim[150], (0.1, 0.2), atol=0.01) and light[150] > 0.5   # lit, there
        assert np.allclose(aim[-1], (0.9, 0.8), atol=0.01) and light[-1] > 0.5     # and back
        step = np.abs(np.diff(aim, axis=0)).max(axis=1)
        after = np.arange(len(step)) >= 4 * FPS
        lit = light[1:] > 0.05
        # while lit the head crept at most at the lit speed limit; the way across (0.8 of
        # the range) was travelled in the dark
        for k in range(4 * FPS, len(aim) - FPS):
            if (light[k:k + FPS + 1] > 0.05).all():
                assert np.abs(aim[k + FPS] - aim[k]).max() <= 0.2
        assert step[after & lit].sum() < 0.25 and step[after & ~lit].sum() > 0.5
    assert pipe.moves.moves_in_black >= len(heads)


def test_slow_motion_passes_unchanged_and_pars_are_untouched():
    n = len(load_config(None).fixtures)

    def wander(t):
        return scene(n, 0.5 + 0.2 * np.sin(0.3 * t), 0.5 + 0.2 * np.cos(0.3 * t))

    rig, look, pipe = play(wander, 12)
    for i, f in enumerate(rig.fixtures):
        light = look.colour[:, i].max(axis=1)
        if f.moves:                                 # after the dark start: following, lit
            aim = rel(rig, look, i)
            t = np.arange(len(aim)) / FPS
            want = np.stack([0.5 + 0.2 * np.sin(0.3 * t), 0.5 + 0.2 * np.cos(0.3 * t)], 1)
            assert np.abs(aim[200:] - want[200:]).max() < 0.02
        assert light[200:].min() > 0.5             # nobody dims: nothing jumped
    assert pipe.moves.moves_in_black == 0


@pytest.mark.parametrize("speed", [0.3, 1.0])
def test_a_fast_sweep_is_never_lit(speed):
    """A wanted aim racing across the range (faster than a lit head may go) is followed at
    the lit limit and repositioned in the dark: no 1-s window moves > 20 % while lit."""
    n = len(load_config(None).fixtures)

    def race(t):
        x = 0.5 + 0.45 * np.sin(2 * np.pi * speed * t / 1.8)
        return scene(n, x, 0.5)

    rig, look, _ = play(race, 20)
    for i, f in enumerate(rig.fixtures):
        if not f.moves:
            continue
        aim, light = rel(rig, look, i), look.colour[:, i].max(axis=1)
        for k in range(len(aim) - FPS):
            if (light[k:k + FPS + 1] > 0.1).all():
                assert np.abs(aim[k + FPS] - aim[k]).max() <= 0.2, (f.name, k / FPS)


def test_the_fast_paths_jump_test_is_numpys():
    """`_jump` (a Python loop over a few heads) says what the many-heads path's
    ``np.abs(d).max() > float32(JUMP)`` says, at the edge, with signed zeros and with NaN -
    on NumPy 1.x too, which compares a float32 scalar with a Python float in float64."""
    from pi_app.moves import JUMP, _jump

    edge = np.float32(JUMP)
    rng = np.random.default_rng(5)
    cases = [rng.normal(0, 0.08, (m, 2)).astype(np.float32) for m in (1, 3, 8) for _ in range(200)]
    cases += [np.array([[edge, 0]], np.float32), np.array([[-edge, -0.0]], np.float32),
              np.array([[np.nextafter(edge, np.float32(1)), 0]], np.float32),
              np.array([[np.nan, 0.5]], np.float32), np.array([[0.5, np.nan]], np.float32),
              np.array([[0.0, -0.0]], np.float32)]
    for d in cases:
        assert _jump(d.tolist()) == bool(np.abs(d).max() > edge), d


def test_few_heads_in_python_floats_are_numpys_bit_for_bit():
    """The fast path for a few heads (Python floats rounded to float32) gives NumPy's frames
    bit for bit: slow wandering, steps beyond the lit limit, jumps (moves in black), a
    lower lit limit, values at float32's edges."""
    from pi_app.moves import Moves
    from pi_app.patch import Patch

    patch = Patch(load_config(None))
    few, numpy_way = Moves(patch, FPS), Moves(patch, FPS)
    assert few._few
    numpy_way._few = False
    n = len(patch.fixtures)
    rng = np.random.default_rng(11)
    want = scene(n, 0.3, 0.6)
    last = None
    for k in range(3000):
        step = rng.normal(0, [0.002, 0.01, 0.05][k // 400 % 3], (n, 2))
        want[:, PAN:TILT + 1] = np.clip(want[:, PAN:TILT + 1] + step, 0, 1)
        if k % 250 == 100:                                   # a jump
            want[:, PAN:TILT + 1] = rng.random((n, 2))
        if k % 700 == 0:
            want[0, PAN] = np.float32(1e-30)                 # tiny values
        if k % 300 == 0:
            lit = (40.0, 12.5)[(k // 300) % 2]
            few.set_lit(lit)
            numpy_way.set_lit(lit)
        a = few(want.astype(np.float32), last).copy()
        b = numpy_way(want.astype(np.float32), last).copy()
        assert a.tobytes() == b.tobytes(), k
        last = a.copy()                                      # the light that went out:
        last[:, DIMMER] *= np.float32(0.9)                  # a little less, and the heads
        if k % 3:                                            # there, or not quite
            last[:, PAN] += np.float32(0.003)
        assert few.mode.tobytes() == numpy_way.mode.tobytes()
        assert few.gain.tobytes() == numpy_way.gain.tobytes()
    assert few.moves_in_black == numpy_way.moves_in_black > 5


@pytest.mark.parametrize("case", ["dark-edge", "arrived-edge", "rise-top", "timeout"])
def test_few_heads_at_the_thresholds_are_numpys(case):
    """At the very thresholds (a light exactly DARK, a head exactly ARRIVED away, a gain
    that reaches 1, the move timeout) the Python-float path decides as NumPy does."""
    from pi_app.moves import ARRIVED, DARK, DIM, MOVE, RISE, Moves
    from pi_app.patch import Patch

    patch = Patch(load_config(None))
    n = len(patch.fixtures)
    outs = []
    for few_path in (True, False):
        m = Moves(patch, FPS)
        m._few = few_path
        m._first = False
        heads = m._idx
        want = scene(n, 0.0, 0.0)
        last = scene(n, 0.0, 0.0)
        last[:, RED:WHITE + 1] = (1.0, 1.0, 1.0, 0.0)
        if case == "dark-edge":
            m.mode[heads], m.gain[heads] = DIM, 0.0
            last[:, DIMMER] = np.float32(DARK)
        elif case == "arrived-edge":
            m.mode[heads], m._moving_frames[heads] = MOVE, 1
            last[:, PAN] = np.float32(ARRIVED)
        elif case == "rise-top":
            m.mode[heads], m.gain[heads] = RISE, np.float32(1.0) - m._rise
        else:
            m.mode[heads], m._moving_frames[heads] = MOVE, m._timeout - 1
            last[:, PAN] = 0.5
        out = m(want, last).copy()
        outs.append((out.tobytes(), m.mode.tobytes(), m.gain.tobytes()))
    assert outs[0] == outs[1]


# -- heads in degrees, resting (a show of the real model, on virtual time) ----------------
def _rig_text(pan_limits: str, n: int = 4, model: str = "nat-aurora") -> str:
    out = [f'schema = 1\nfps = {FPS}\nseed = 0\nmodel = "{model}"\n']
    for i in range(n):
        out.append(f'[[fixtures]]\nname = "h{i}"\nprofile = "lumeri-wash-7-10"\n'
                   f'mode = "14ch"\nuniverse = 1\naddress = {i * 14 + 1}\n'
                   f"position = [{i / max(1, n - 1):.3f}, 0.5]\n{pan_limits}\n")
    return "".join(out)


def _show_heads(tmp_path, pan_limits: str, seconds: float, model: str = "nat-aurora"):
    """(pan deg, tilt deg, light) per frame and head of a show's DMX, and the fps."""
    path = tmp_path / "rig.toml"
    path.write_text(_rig_text(pan_limits, model=model))
    config = load_config(str(path))
    pipe = Pipeline(config, load_model(model), seed=3)
    rig = Rig.from_patch(pipe.patch)
    frames = [rig.frames_array(pipe.frames(k / FPS)) for k in range(int(seconds * FPS))]
    look = rig.decode(np.stack(frames))
    deg = np.array([(f.pan_deg, f.tilt_deg) for f in rig.fixtures])
    return look.pan * deg[:, 0], look.tilt * deg[:, 1], look.colour.max(axis=2)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["nat-aurora", "iae-blobs"])
@pytest.mark.parametrize("limits", ["", "pan_limits_deg = [180, 360]"])
def test_lit_heads_move_slowly_in_degrees_and_rest(tmp_path, limits, model):
    """While lit (> 10 % of full) a head's aim moves at most 25 deg/s at p99 over 0.25 s
    windows and 40 deg/s ever, on a 540-deg and a 180-deg pan rig; it repositions in the
    dark at most once a minute (and a slot's first), dark a few % of the time for it."""
    seconds = 150.0
    pan, tilt, light = _show_heads(tmp_path, limits, seconds, model)
    k0 = 10 * FPS                                       # after the dark start
    pan, tilt, light = pan[k0:], tilt[k0:], light[k0:]
    lit = light > 0.1
    w = FPS // 4
    v = np.hypot(pan[w:] - pan[:-w], tilt[w:] - tilt[:-w]) * (FPS / w)
    lit_through = np.ones_like(v, bool)
    for d in range(w + 1):
        lit_through &= lit[d:len(lit) - w + d]
    speeds = v[lit_through]
    assert len(speeds) > 0.5 * v.size
    assert np.percentile(speeds, 99) <= 25.0
    assert speeds.max() <= 40.0
    # fast dark moves (a move a lit head may not make), per head
    fast = (v > 40.0) & ~lit_through
    starts = (fast[1:] & ~fast[:-1]).sum(axis=0) + fast[0]
    minutes = len(pan) / FPS / 60
    assert (starts <= 1 + minutes).all(), starts
    assert fast.mean() <= 0.05


def test_head_aims_are_a_pure_function_of_the_phase():
    """Two pipelines that played different phases before (a member that joined late, a
    frame worked out ahead) give the same heads' aims at the same phase, byte for byte; a
    head's aim is continuous except at its own slot starts (a move in the dark)."""
    config = load_config(None)
    model = load_model("nat-aurora")
    a, b = Pipeline(config, model, seed=4), Pipeline(config, model, seed=4)
    for p in (37.3, 1000.0, 5.5):                      # b has been elsewhere
        b.heads.aims(p, b.source.aims_at, b.source)
    heads = a.heads
    phases = [k / 40 / 6 for k in range(0, 40 * 6 * 30, 7)]
    got_a = [heads.aims(p, a.source.aims_at, a.source) for p in phases]
    got_b = [b.heads.aims(p, b.source.aims_at, b.source) for p in reversed(phases)][::-1]
    assert np.array(got_a, np.float32).tobytes() == np.array(got_b, np.float32).tobytes()
    aims = np.array(got_a).reshape(len(phases), -1, 2)
    jumps = np.abs(np.diff(aims, axis=0)).max(axis=2) > 0.05
    for j in range(aims.shape[1]):                     # only where a slot starts
        for k in np.flatnonzero(jumps[:, j]):
            x0 = (phases[k] - heads.offsets[j]) / heads.per_slot
            x1 = (phases[k + 1] - heads.offsets[j]) / heads.per_slot
            assert np.floor(x0) != np.floor(x1)


def test_a_config_may_lower_the_lit_limit_in_degrees():
    """`safety.lit_move_deg_per_s` is the lit limit in degrees a second (pan and tilt
    together), whatever a head's range: the default rig's heads use 180 deg of pan."""
    import dataclasses

    config = load_config(None)
    slow = dataclasses.replace(config, safety=dataclasses.replace(config.safety,
                                                                  lit_move_deg_per_s=10.0))
    for cfg, deg in ((config, 40.0), (slow, 10.0)):
        pipe = Pipeline(cfg, load_model("nat-aurora"), seed=0)
        for j, i in enumerate(pipe.moves._idx):
            f = pipe.patch.fixtures[i]
            lo, hi = f.config.pan_limits_deg if f.config.pan_limits_deg != (0.0, 0.0) else \
                (0.0, f.profile.pan_deg)
            per_s = float(pipe.moves._hi[j, 0]) * FPS * (hi - lo)
            assert per_s == pytest.approx(deg / np.sqrt(2), rel=1e-5)
        assert pipe.heads.ease_deg_per_s <= 0.4 * deg


@pytest.mark.parametrize("show_s", [3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0])
def test_heads_ease_the_same_after_an_hour_a_day_a_month_a_year(show_s):
    """The heads' paths at walk phases an hour to a year into a show: still within the ease's
    speed in degrees between slot starts, still moving, and the same whichever phase the
    pipeline came from (a year's phase is ~5 million waypoints: no precision lost)."""
    config = load_config(None)
    model = load_model("nat-aurora")
    a, b = Pipeline(config, model, seed=4), Pipeline(config, model, seed=4)
    spw = config.walk.seconds_per_waypoint
    heads = a.heads
    fps = 40
    phases = [(show_s + k / fps) / spw for k in range(int(2 * heads.slot_s * fps))]
    b.heads.aims(phases[0] - 1000.0, b.source.aims_at, b.source)     # b came from elsewhere
    got = np.array([heads.aims(p, a.source.aims_at, a.source) for p in phases])
    again = np.array([b.heads.aims(p, b.source.aims_at, b.source) for p in phases])
    assert got.tobytes() == again.tobytes()
    aims = got.reshape(len(phases), -1, 2)
    spans = np.array(heads.spans)
    deg_s = np.hypot(*(np.diff(aims, axis=0) * spans).transpose(2, 0, 1)) * fps
    for j, off in enumerate(heads.offsets):
        slot = np.floor((np.array(phases) - off) / heads.per_slot)
        within = np.diff(slot) == 0                                   # no slot start between
        assert deg_s[within, j].max() <= heads.ease_deg_per_s * 1.001, (j, show_s)
    assert deg_s.max() > 1.0                                          # the heads did move
