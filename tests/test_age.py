"""Age-free: an operation costs the frame loop the same on day 365 as in minute 1.

The show is started on virtual time (`FastClock`) at the frame of an hour, a day, a month and
a year of the default show, and is told to swap models, recall a preset, take a new seed, a new
tempo, step its playlist and reload its config, through the same doors a client uses. What
each tick costs the frame loop's thread is counted in the guarded walk's work (its looks at a
segment: `LatentWalk._choose`, a few ms each on the demo rig), not timed (`bench/age.py` times
it). Phases that no walk can play are refused in one line wherever they come in.
"""

from __future__ import annotations

import math
import re
import threading

import numpy as np
import pytest
from procs import env_for, run_cli

from pi_app.clock import FastClock
from pi_app.config import default_config_path, parse_config
from pi_app.errors import ConfigError, ControlError
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.phase import PhaseLine
from pi_app.pipeline import Pipeline
from pi_app.runtime import load_model
from pi_app.show import Show
from pi_app.walk import LatentWalk

AGES = {"an hour": 3600.0, "a day": 86400.0, "a month": 30 * 86400.0,
        "a year": 365 * 86400.0}
WALL0 = 1.78e9                      # Unix time of show time 0
PER_TICK = 2                        # guarded looks a tick may cost the frame loop
START = 33                          # ... and the first tick (a block's, at most)
EXTRA = """
[presets.deep]
model = "nat-retina"
seed = 11
phase = {phase}

[playlists.p]
items = [{{ model = "nat-neon", seed = 4 }}, "deep", {{ seed = 5, tempo = 2.0 }}]
every = "10m"
fade_s = 1.0
"""


class Looks:
    """Counts the guarded walk's looks at a segment made on the calling thread, per tick;
    more than `cap` in one tick raises at once (the original code's climb from waypoint 0
    would otherwise take minutes to fail)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cap: int) -> None:
        self.cap = cap
        self.n = 0
        self.thread = threading.get_ident()
        choose = LatentWalk._choose

        def counted(walk, *args, **kw):
            if threading.get_ident() == self.thread:
                self.n += 1
                if self.n > self.cap:
                    raise AssertionError(f"{self.n} guarded looks in one tick")
            return choose(walk, *args, **kw)
        monkeypatch.setattr(LatentWalk, "_choose", counted)

    def tick(self, cap: int) -> int:
        n, self.n, self.cap = self.n, 0, cap
        return n


def _start_at(k0: int):
    def make(fps: float, *, stop=None, **_):
        clock = FastClock(fps, stop=stop)
        clock.frame = k0                          # the show starts at frame k0
        return clock
    return make


def _show(tmp_path, age_s: float, phase: float, **kw) -> tuple[Show, float]:
    text = default_config_path().read_text() + EXTRA.format(phase=phase)
    path = tmp_path / "rig.toml"
    path.write_text(text)
    cfg = parse_config(text, str(path))
    out = SimOutput(Patch(cfg).universes)
    k0 = round(age_s * cfg.fps)
    show = Show(cfg, out, clock=_start_at(k0), control=False, config_path=path,
                presets_dir=tmp_path / "presets", wall_clock=lambda t: WALL0 + t, **kw)
    return show, k0 / cfg.fps


OPS = {   # what a client does, at the tick it is done (`show`, `path` of its config)
    "model swap": lambda show, path: show.handle_control("model", {"name": "nat-neon"}),
    "preset recall": lambda show, path: show.handle_control("preset/recall",
                                                            {"name": "deep"}),
    "seed": lambda show, path: show.handle_control("seed", {"seed": 9}),
    "tempo": lambda show, path: show.handle_control("tempo", {"tempo": 3.0}),
    "playlist start": lambda show, path: show.handle_control("playlist/start", {"name": "p"}),
    "playlist step": lambda show, path: show.handle_control("playlist/next", {}),
    "reload": lambda show, path: (
        path.write_text(re.sub(r'^seed = 0', 'seed = 2', re.sub(
            r'^model = "nat-aurora"', 'model = "nat-retina"', path.read_text(), count=1,
            flags=re.M), count=1, flags=re.M)),
        show.request_reload()),
}


@pytest.mark.slow
@pytest.mark.parametrize("age", AGES)
def test_every_operation_costs_the_same_at_any_age(tmp_path, monkeypatch, age):
    """At an hour, a day, a month and a year of show time: each operation, and every tick
    around it, costs the frame loop at most `PER_TICK` guarded looks (on 52dfd6e a new walk
    climbed from waypoint 0: an hour's phase is 600 looks, a year's 5 million)."""
    age_s = AGES[age]
    spw = 6.0
    show, _ = _show(tmp_path, age_s, phase=round(age_s / spw, 3), duration_s=None)
    looks = Looks(monkeypatch, START)
    fps = show.fps
    plan = {int(2 * fps) + 10 * i: name for i, name in enumerate(OPS)}   # a tick each
    end = max(plan) + int(8 * fps)
    per_tick: list[int] = []
    state: dict = {}

    def listener(s: Show) -> None:
        n = looks.tick(PER_TICK)
        per_tick.append(n)
        i = s.frames_out
        if i in (1, 2):
            state[f"phase{i}"] = s.pipeline.phase
        if i in plan:
            OPS[plan[i]](s, s.config_path)
            state[plan[i]] = i
        if i == end:
            state["rows"] = len(s.pipeline.source._row_of)
            s.stop()
    show.listeners.append(listener)
    show.run()
    assert per_tick[0] <= START                      # the start: a block, at most
    assert max(per_tick[1:]) <= PER_TICK, per_tick
    assert sum(per_tick[1:]) <= 2 * len(OPS) + 4     # the new walks; the rest worked ahead
    p = show.pipeline
    assert p.model.info.name == "nat-retina" and p.seed == 2          # the reload came last
    assert show.frames_out > end and show.clock.frame > round(age_s * fps)
    # the phase at its age, and a frame's step still resolved (float64: ~1e-9 there)
    assert state["phase1"] == pytest.approx(age_s / spw, abs=1e-3)
    assert state["phase2"] - state["phase1"] == pytest.approx(1 / spw / fps, rel=1e-6)
    assert state["rows"] <= 32                      # the frames worked out ahead: a batch
    assert p.source.walk.anchor is not None and p.source.walk.anchor <= math.floor(p.phase)


@pytest.mark.slow
@pytest.mark.parametrize("age", AGES)
def test_an_anchored_walk_is_a_pure_function_of_its_inputs(monkeypatch, age):
    """A walk made at a phase (a recall, a swap) is the same walk however it got there: a
    fresh pipeline told the same recall computes the same scenes at any later show time,
    without the frames in between (what run-ahead's rollback and a group's late joiner
    rely on)."""
    cfg = parse_config(default_config_path().read_text(), "<rig>")
    aurora, neon = load_model("nat-aurora"), load_model("nat-neon")
    t1 = AGES[age]
    phase = t1 / cfg.walk.seconds_per_waypoint + 0.97      # just before a segment's end
    looks = Looks(monkeypatch, START)                      # a block's, at most, each
    a = Pipeline(cfg, aurora)
    a.raw_scene(t1 - 0.025)
    looks.tick(START)
    a.recall(neon, 7, phase, t1, 2.0)
    played = {}
    for k in range(int(80 * cfg.fps)):                     # 80 s: across ~13 segments
        t = t1 + k / cfg.fps
        scene = a.raw_scene(t)
        if k % 331 == 0 and k / cfg.fps > 2.0:             # after a's cross-fade
            played[t] = scene.copy()
        looks.tick(START)
    for t, scene in played.items():
        b = Pipeline(cfg, aurora)
        b.recall(neon, 7, phase, t1, 0.0)
        assert np.array_equal(b.raw_scene(t), scene), t
        looks.tick(START)


BAD = ["1e308", "nan", "inf", "-inf", "-1.0", "3.2e10"]


@pytest.mark.parametrize("phase", BAD)
def test_a_config_preset_phase_out_of_range_is_refused_in_one_line(phase):
    text = default_config_path().read_text() + f"\n[presets.far]\nphase = {phase}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "rig.toml")
    line = str(err.value)
    assert "\n" not in line and "rig.toml" in line and "presets.far.phase" in line
    assert "a year" in line or "finite" in line


@pytest.mark.slow
def test_check_refuses_the_phase_that_froze_the_show(tmp_path):
    """`latentdmx check` and `run` refuse it in one line (on 52dfd6e the show froze at the
    recall and ignored SIGTERM)."""
    cfg = tmp_path / "rig.toml"
    cfg.write_text('playlist = "p"\n' + default_config_path().read_text() +
                   '\n[presets.far]\nphase = 1e308\n'
                   '[playlists.p]\nitems = ["far"]\nevery = "1m"\n')
    env = env_for(xdg=tmp_path)
    for args in (("check", str(cfg)), ("run", "--config", str(cfg), "--duration", "2")):
        done = run_cli(*args, env=env, timeout_s=60)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = [x for x in (done.stdout + done.stderr).splitlines() if x.strip()]
        assert len(lines) == 1 and "presets.far.phase" in lines[0], lines


@pytest.mark.parametrize("phase", ["1e308", "NaN", "Infinity", "-5", "4e10"])
def test_a_saved_preset_phase_out_of_range_is_refused_in_one_line(tmp_path, phase):
    show, _ = _show(tmp_path, 0.0, phase=0.0, duration_s=1.0)
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "far.json").write_text(
        '{"schema": 1, "name": "far", "model": "nat-aurora", "seed": 1, '
        f'"phase": {phase}, "tempo": 1.0, "master": 1.0}}')
    with pytest.raises(ControlError) as err:
        show.handle_control("preset/recall", {"name": "far"})
    line = str(err.value)
    assert "\n" not in line and "far.json" in line and "phase" in line
    assert show._commands.empty()                      # nothing reaches the frame loop


def test_anything_else_that_sets_a_phase_refuses_one_out_of_range():
    cfg = parse_config(default_config_path().read_text(), "<rig>")
    p = Pipeline(cfg, load_model("nat-aurora"))
    for phase in (1e308, math.nan, math.inf, -1.0, -1e11):
        with pytest.raises(ControlError, match="phase"):
            p.recall(p.model, 1, phase, 0.0, 0.0)
        if phase != -1.0:                               # a line runs both ways
            with pytest.raises(ValueError):             # a group's snapshot, off the wire
                PhaseLine.from_json([0.0, phase, 1.0, 6.0, False])
    assert p.line == PhaseLine(0.0, 0.0, 1.0, 6.0)      # untouched
    with pytest.raises(ValueError):
        PhaseLine.from_json([math.nan, 1.0, 1.0, 6.0, False])


@pytest.mark.slow
def test_a_reload_reads_and_loads_off_the_frame_loop(tmp_path, monkeypatch):
    """SIGHUP on a live show: the config is read and its model loaded and tried on a thread
    of its own, and applied at a frame (on 52dfd6e the frame loop did it all: a model's load
    and probe stalled the show)."""
    import pi_app.show as show_mod

    text = default_config_path().read_text()
    path = tmp_path / "rig.toml"
    path.write_text(text)
    cfg = parse_config(text, str(path))
    where: list[str] = []
    for name in ("load_config", "load_model"):
        real = getattr(show_mod, name)

        def spy(*a, _real=real, **kw):
            where.append(threading.current_thread().name)
            return _real(*a, **kw)
        monkeypatch.setattr(show_mod, name, spy)
    show = Show(cfg, SimOutput(Patch(cfg).universes), control=False, config_path=path,
                presets_dir=tmp_path / "presets", duration_s=3.0, model=load_model(cfg.model))
    frame_thread = threading.current_thread().name
    looks = Looks(monkeypatch, 10**9)
    swap: list[int] = []                         # the frame loop's looks at the swap's tick

    def listener(s: Show) -> None:
        n = looks.tick(10**9)
        if s.pipeline.model.info.name == "nat-neon" and not swap:
            swap.append(n)
        if s.frames_out == 20:
            path.write_text(re.sub(r'(?m)^model = "nat-aurora"', 'model = "nat-neon"', text,
                                   count=1))
            s.request_reload()
    show.listeners.append(listener)
    show.run()
    assert show.pipeline.model.info.name == "nat-neon"            # applied
    assert where and frame_thread not in where, where
    assert swap == [0]                    # the new model's walk: made by the reader too


@pytest.mark.slow
def test_a_late_joiner_takes_the_anchor_with_the_walk(tmp_path):
    """A group's snapshot carries the walk's anchor (and the cross-fade's): a member that
    takes it plays the very walk the others play; a snapshot with a bad anchor is refused."""
    from pi_app.sync import state as snap

    text = default_config_path().read_text() + EXTRA.format(phase=AGES["a day"] / 6 + 0.6)
    cfg = parse_config(text, "<rig>")
    shows = [Show(cfg, SimOutput(Patch(cfg).universes), control=False,
                  presets_dir=tmp_path / f"p{i}", wall_clock=lambda t: WALL0 + t)
             for i in range(2)]
    a, b = shows
    t = AGES["a day"]
    if not hasattr(a.pipeline, "anchor"):
        pytest.fail("no anchor: the walk climbs from waypoint 0 (52dfd6e)")
    a.pipeline.raw_scene(t)
    a.director.recall(*a.director.prepare_recall("deep"), t + 0.025, 2.0)
    a.pipeline.raw_scene(t + 0.05)
    state = snap.check(snap.capture(a, t + 0.05))
    assert state["anchor"] == math.floor(t / 6 + 0.6) and state["xfade"]["anchor"] is None
    models = {ref: load_model(ref) for ref in snap.models_of(state)}
    snap.restore(b, state, models)
    for dt_s in (0.075, 1.0, 30.0, 200.0):
        assert np.array_equal(a.pipeline.raw_scene(t + dt_s), b.pipeline.raw_scene(t + dt_s))
    for bad in (-1, 1e308, "7", True, 10**12):
        with pytest.raises(ValueError):
            snap.check(state | {"anchor": bad})
    for bad in (math.nan, 1e308):
        with pytest.raises(ValueError):
            snap.check(state | {"xfade": state["xfade"] | {"offset": bad}})
        with pytest.raises(ValueError):
            snap.check(state | {"still": {"model": "nat-aurora", "seed": 1, "phase": bad}})


@pytest.mark.slow
def test_a_client_makes_the_new_walk_on_its_own_thread(tmp_path, monkeypatch):
    """A recall, a new seed, a model swap: the client's thread makes the new walk and its
    first look at a segment (on a large rig one look costs more than a frame period), and
    the frame loop takes it as it is, bit for bit the walk it would have made."""
    age = AGES["a year"]
    show, _ = _show(tmp_path, age, phase=round(age / 6 + 0.5, 3), duration_s=None)
    p = show.pipeline
    t = age
    looks = Looks(monkeypatch, START)
    p.frames(t)                                    # the start: a block, at most
    twin = Pipeline(show.config, p.model)
    looks.tick(0)                                  # the frame loop's thread: none at all
    for cmd, args in (("preset/recall", {"name": "deep"}), ("seed", {"seed": 9}),
                      ("model", {"name": "nat-neon"})):
        client = threading.Thread(target=show.handle_control, args=(cmd, args))
        client.start()
        client.join()
        t += 1 / 40
        show._commands.get_nowait()(t)
        p.frames(t)
        assert looks.tick(0) == 0, cmd
        looks.cap = 10**9                          # the twin makes its walks here
        twin.recall(p.model, p.seed, p.line.at(t), t, 0.0) if cmd != "seed" else \
            twin.set_seed(p.seed, t)
        twin.line = p.line
        ph = p.line.at(t + 3.0)                    # the heads' slow aims (pi_app/heads.py)
        aims = p.heads.aims(ph, p.source.aims_at, p.source)
        want = p.heads.put(p.source.scene(ph).copy(), aims)
        assert np.array_equal(twin.raw_scene(t + 3.0)[:, :], want)
        looks.tick(0)


@pytest.mark.slow
@pytest.mark.parametrize("keep_up", [True, False])
def test_a_group_member_dark_by_the_schedule_wakes_without_a_climb(monkeypatch, keep_up):
    """A lockstep member dark for 20 minutes of the group's show: its walk went on (the
    group's clock did), so on waking the chain must be where the phase is. Kept up a segment
    at a time in the dark (`Pipeline.keep_up`, each dark tick), the first lit frame costs at
    most `PER_TICK` looks; without, it works out the block up to there at once."""
    cfg = parse_config(default_config_path().read_text(), "rig.toml")
    p = Pipeline(cfg, load_model(cfg.model))
    p.lockstep = True
    fps, t = cfg.fps, 0.0
    for k in range(int(2 * fps)):                   # lit for 2 s
        t = k / fps
        p.frames(t)
    looks = Looks(monkeypatch, 10_000)
    dark_ticks = int(20 * 60 * fps)
    for k in range(int(2 * fps), int(2 * fps) + dark_ticks):   # dark: idle frames only
        t = k / fps
        if keep_up:
            p.keep_up(t)
    looks.tick(10_000)
    t += 1 / fps
    p.wake(t)
    p.frames(t)                                      # the first lit frame
    n = looks.tick(10_000)
    k = math.floor(p.phase)
    if keep_up:
        assert n <= PER_TICK, n
    else:                                            # the climb this avoids
        assert n > PER_TICK and n >= k % 32 - 1, (n, k)
    fresh = Pipeline(cfg, load_model(cfg.model))     # and the walk is the group's own walk
    fresh.lockstep = True
    np.testing.assert_array_equal(fresh.source.walk.at(p.phase), p.source.walk.at(p.phase))


@pytest.mark.parametrize("age", ["a day", "a year"])
def test_playlist_steps_cost_the_frame_loop_no_look(tmp_path, monkeypatch, age):
    """The playlist's loader makes the next item's walk with its model: the frame loop only
    takes it (on a large rig a look at a segment costs more than a frame period; before,
    each rotation made its walk at the frame)."""
    age_s = AGES[age]
    show, _ = _show(tmp_path, age_s, phase=round(age_s / 6.0, 3), duration_s=None)
    looks = Looks(monkeypatch, START)
    fps = show.fps
    ops = ["playlist start"] + ["playlist step"] * 4
    plan = {int(2 * fps) + int(fps) * i: name for i, name in enumerate(ops)}
    end = max(plan) + int(4 * fps)
    per_tick: list[int] = []
    models: list[str] = []

    def listener(s: Show) -> None:
        per_tick.append(looks.tick(0 if s.frames_out > 1 else START))
        models.append(s.pipeline.model.info.name)
        if s.frames_out in plan:
            OPS[plan[s.frames_out]](s, s.config_path)
        if s.frames_out == end:
            s.stop()
    show.listeners.append(listener)
    show.run()
    # the items played: neon, deep (retina at its phase), a new seed, neon again, deep
    assert show.director.playlist is not None and show.director.playlist.index == 4
    assert [m for i, m in enumerate(models) if i == 0 or m != models[i - 1]] == \
        ["nat-aurora", "nat-neon", "nat-retina", "nat-neon", "nat-retina"]
    assert show.pipeline.seed == 11
    assert max(per_tick[1:]) == 0, per_tick


@pytest.mark.parametrize("prepared", [True, False])
def test_a_snapshot_taken_mid_show_costs_the_frame_loop_no_climb(tmp_path, monkeypatch,
                                                                  prepared):
    """A member that takes the group's state mid-show (a late join, a rejoin after a
    partition) gets a walk anchored where another member made it, up to a block of its
    chain behind the group's phase. The socket thread makes those walks and looks at the
    phase where the snapshot lands (`sync.state.prepare`), so the frame that takes it costs
    no look; without, it climbs the chain from the anchor at once."""
    from pi_app.sync import state as snap

    t = AGES["a day"]
    text = default_config_path().read_text() + EXTRA.format(phase=t / 6 + 0.2)
    cfg = parse_config(text, "<rig>")
    a, b = (Show(cfg, SimOutput(Patch(cfg).universes), control=False,
                 presets_dir=tmp_path / f"p{i}", wall_clock=lambda t: WALL0 + t)
            for i in range(2))
    a.director.recall(*a.director.prepare_recall("deep"), t, 2.0)   # anchored at t / 6
    for k in range(25 * 6 * 40):           # 25 waypoints on (6 s each): far from it
        a.pipeline.raw_scene(t + k / 40)
    t_now = t + 25 * 6 + 1.0
    state = snap.check(snap.capture(a, t_now))
    models = {ref: load_model(ref) for ref in snap.models_of(state)}
    b.pipeline.raw_scene(t_now - 1 / 40)         # b plays on, a frame before
    looks = Looks(monkeypatch, 10**9)
    if prepared:                                 # the socket thread's part
        worker = threading.Thread(target=snap.prepare, args=(b.pipeline, state, models,
                                                             t_now))
        worker.start()
        worker.join()
    looks.tick(10**9)
    snap.restore(b, state, models)               # the frame loop's part
    got = b.pipeline.raw_scene(t_now)
    n = looks.tick(10**9)
    if prepared:
        assert n == 0, n
    else:                                        # the climb this avoids
        assert n >= 20, n
    np.testing.assert_array_equal(got, a.pipeline.raw_scene(t_now))


def test_a_new_seed_during_a_cross_fade_leaves_the_fading_walk_where_it_is():
    """A seed change while a recall's cross-fade is under way: the new walk starts at phase
    0, and the walk fading out goes on from where it is (before, its phase jumped with the
    show's, to another part of its walk, mid-fade)."""
    cfg = parse_config(default_config_path().read_text(), "rig.toml")
    p = Pipeline(cfg, load_model(cfg.model))
    t = AGES["a day"]
    p.frames(t)
    p.recall(load_model("nat-neon"), 4, 100.0, t, 2.0)
    for k in range(1, 21):
        p.frames(t + k / 40)
    t_seed = t + 21 / 40

    def old_phase(at: float) -> float:
        return p.line.at(at) + p._old_offset

    before = old_phase(t_seed)
    p.set_seed(9, t_seed)
    assert p._old is not None and p.line.at(t_seed) == 0.0
    assert old_phase(t_seed) == pytest.approx(before, abs=1e-9)


@pytest.mark.slow
def test_a_reloads_schedule_is_worked_out_by_its_reader(tmp_path, monkeypatch):
    """A reload makes the new config's schedule and works out today's sun on the reader's
    thread; the frame that applies it only swaps it in (the first schedule check after a
    reload cost the frame loop 15 ms of sun positions)."""
    from pi_app.schedule import Schedule

    text = default_config_path().read_text() + (
        '\n[location]\nlatitude = 52.52\nlongitude = 13.40\ntimezone = "Europe/Berlin"\n'
        '\n[[schedule]]\non = "sunrise"\noff = "sunrise-1h"\n')
    path = tmp_path / "rig.toml"
    path.write_text(text)
    cfg = parse_config(text, str(path))
    where: list[tuple[int, str]] = []
    real = Schedule._compute_sun
    show = Show(cfg, SimOutput(Patch(cfg).universes), control=False, config_path=path,
                presets_dir=tmp_path / "presets", duration_s=3.0,
                wall_clock=lambda t: WALL0 + t)

    def spy(self, *a, **kw):
        where.append((show.frames_out, threading.current_thread().name))
        return real(self, *a, **kw)
    monkeypatch.setattr(Schedule, "_compute_sun", spy)
    frame_thread = threading.current_thread().name
    reloaded: list[int] = []

    def listener(s: Show) -> None:
        if s.frames_out == 20:
            path.write_text(text.replace('off = "sunrise-1h"', 'off = "sunrise-2h"'))
            s.request_reload()
        if not reloaded and s.config.schedule[0].off == "sunrise-2h":
            reloaded.append(s.frames_out)
    show.listeners.append(listener)
    show.run()
    assert reloaded, "the reload never applied"
    after = [name for k, name in where if k >= 20]
    assert after and frame_thread not in after, where
