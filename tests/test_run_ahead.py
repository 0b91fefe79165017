"""Frames worked out ahead (issue 18, `pi_app/ahead.py`): the show loop computes the next
frames back to back while nothing changes, and rolls back before anything does. Every frame
must be byte for byte the frame of a loop that never runs ahead, through live commands,
skipped frames, the schedule's playlist and the stop; `status` shows the frame that is out."""

from __future__ import annotations

import itertools

import hypothesis_profiles  # noqa: F401  (registers and loads the profile)
import pytest
from gapped_loop import play_with_gaps
from hypothesis import given, settings
from hypothesis import strategies as st

from pi_app import ahead as ahead_mod
from pi_app.clock import FastClock
from pi_app.config import default_config_path, parse_config
from pi_app.errors import LatentDMXError
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.pipeline import Pipeline
from pi_app.runtime import load_model
from pi_app.show import Show

RIG = default_config_path().read_text(encoding="utf-8") + \
    '\n[palettes.warm]\nkelvin = 2700\n[palettes.sea]\nhues = [200]\nwidth_deg = 40\n'

# live commands as a client sends them (name, args)
COMMANDS = [
    ("dim", {"level": 0.3}), ("dim", {"level": 1.0}), ("pause", {}), ("resume", {}),
    ("blackout", {"on": True}), ("blackout", {"on": False}), ("seed", {"seed": 9}),
    ("tempo", {"tempo": 2.5}), ("tempo", {"tempo": 0.5}), ("model", {"name": "nat-neon"}),
    ("palette", {"name": "sea"}), ("palette", {"name": "none"}), ("still", {"on": True}),
    ("still", {"on": False}), ("identify", {"fixtures": ["par-1"], "seconds": 0.3}),
    ("tap", {}), ("bpm", {"bpm": 0}),
]


class FrameCost:
    """The run-ahead's timer, in virtual seconds: each `pipeline.frames` call costs what
    `cost(k)` says (k: the call's index), so how far ahead the loop goes is known."""

    def __init__(self, mp: pytest.MonkeyPatch, pipe: Pipeline, cost) -> None:
        self.now, self.calls, self.cost = 0.0, 0, cost
        frames = pipe.frames

        def timed(t_s: float):
            self.now += self.cost(self.calls)
            self.calls += 1
            return frames(t_s)
        mp.setattr(pipe, "frames", timed)
        mp.setattr(ahead_mod, "_now", lambda: self.now)


def play(cues: dict[int, list[tuple[str, dict]]], *, ahead: bool, seconds: float = 6.0,
         config=None, listener=None, cost=lambda k: 2.0**-12, **kw
         ) -> tuple[list[bytes], list, Show]:
    """Play the demo rig on virtual time; `cues`: commands sent after frame k is out (they
    apply at frame k + 1, as a client's do); `cost`: what the k-th frame computed costs
    (`FrameCost`). Frames as sent, and the phase `status` showed after each frame (and
    what was refused)."""
    cfg = config or parse_config(RIG, "<rig>")
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    with pytest.MonkeyPatch.context() as mp:
        if not ahead:
            mp.setattr(ahead_mod, "AHEAD_FRAMES", 1)
        show = Show(cfg, out, control=False, clock=FastClock, duration_s=seconds, **kw)
        FrameCost(mp, show.pipeline, cost)
        phases: list = []                    # phases, and refusals (str)

        def cue(s: Show) -> None:
            phases.append(round(s.status_snapshot["phase"], 3))
            for name, args in cues.get(s.frames_out - 1, ()):
                try:
                    s.handle_control(name, dict(args), origin="test")
                except LatentDMXError as exc:         # refused (e.g. identify in blackout)
                    phases.append(str(exc))
        show.listeners.append(cue)
        if listener is not None:
            show.listeners.append(listener)
        show.run()
    frames = [b"".join(f[u].tobytes() for u in sorted(f)) for f in out.history]
    return frames, phases, show


def same_show(cues, fresh=dict, **kw) -> Show:
    """Play it running ahead and not; `fresh()` gives each play its own further arguments."""
    got, got_phases, show = play(cues, ahead=True, **kw, **fresh())
    want, want_phases, plain = play(cues, ahead=False, **kw, **fresh())
    assert plain.ahead is not None and plain.ahead.batches == 0      # the twin never ran ahead
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"frame {k} differs"
    assert got_phases == want_phases
    return show


def test_a_plain_show_runs_ahead_and_plays_the_same_frames():
    show = same_show({})
    assert show.ahead.size == ahead_mod.AHEAD_FRAMES == 32
    assert show.ahead.batches >= 6               # 6 s at 40 fps: most frames worked out ahead
    assert show.ahead.rollbacks == 0             # the fade-out is known: no batch crosses it


def test_a_command_inside_a_batch_rolls_back_and_applies_at_its_frame():
    show = same_show({30: [("dim", {"level": 0.2})], 61: [("seed", {"seed": 3})],
                      90: [("pause", {})], 130: [("resume", {})]})
    assert show.ahead.rollbacks == 3             # not the resume: a paused show holds still


@pytest.mark.slow
@settings(deadline=None)
@given(st.dictionaries(st.integers(0, 230),
                       st.lists(st.sampled_from(range(len(COMMANDS))), min_size=1, max_size=3),
                       max_size=8))
def test_any_commands_at_any_frames_give_the_same_show(cues):
    same_show({k: [COMMANDS[i] for i in v] for k, v in cues.items()})


@pytest.mark.parametrize("cost_s, size", [(2.0**-12, 32), (2.0**-11, 20), (3 * 2.0**-11, 6),
                                          (2.0**-8, 2), (3 * 2.0**-8, 1)])
def test_how_far_ahead_is_what_fits_in_the_frame_period(cost_s, size):
    """A batch stays within 40 % of the period (10 ms at 40 fps): as many frames as fit, at
    most 32; none when a frame alone takes more than that (a large rig on a Pi Zero 2 W)."""
    show = same_show({}, cost=lambda k: cost_s, seconds=3.0)   # 0.24, 0.49, 1.5, 3.9, 12 ms
    assert show.ahead.size == size
    assert (show.ahead.batches > 0) == (size > 1)


@pytest.mark.slow
def test_a_slow_spell_shortens_the_batches_and_they_grow_back():
    """Frames that cost 12 ms for a while (another program on the core): the loop stops
    running ahead at once, and starts again, 2, 4, 8 ... frames, when they are cheap again."""
    plays: list[list[int]] = []                      # the size after each frame, per play

    def fresh() -> dict:
        sizes: list[int] = []
        plays.append(sizes)
        return {"listener": lambda s: sizes.append(s.ahead.size)}
    show = same_show({}, fresh, cost=lambda k: 3 * 2.0**-8 if 100 <= k < 160 else 2.0**-11,
                     seconds=8.0)
    sizes = plays[0]                                 # the play that ran ahead
    assert show.ahead.size == 20 and sizes[40] == 20     # 10 ms / 0.49 ms
    last_slow = len(sizes) - 1 - sizes[::-1].index(1)
    assert 20 < last_slow < len(sizes) - 20          # the slow spell: no batch ...
    after = sizes[last_slow:]
    grow = [n for i, n in enumerate(after) if i == 0 or n != after[i - 1]]
    assert grow[:4] == [1, 2, 4, 8] and grow[-1] == 20   # ... then back, at most twice as
    assert all(a < b <= 2 * a for a, b in itertools.pairwise(grow))  # far each batch


@pytest.mark.slow
@pytest.mark.parametrize("cost_ms", [0.5, 12.0])
def test_a_large_rig_runs_ahead_when_it_fits_and_plays_the_same_frames(cost_ms):
    """100 fixtures: bigger state to save and restore, the same frames either way."""
    text = "".join(f'[[fixtures]]\nname = "p{i}"\nprofile = "generic-rgb"\nmode = "3ch"\n'
                   f"address = {i * 3 + 1}\nposition = [{i / 99:.3f}, 0.5]\n"
                   for i in range(100))
    cfg = parse_config(text, "<pixels>")
    show = same_show({30: [("dim", {"level": 0.4})]}, config=cfg, seconds=2.0,
                     cost=lambda k: cost_ms / 1000)
    assert show.ahead.batches > 3 if cost_ms < 10 else show.ahead.batches == 0


@pytest.mark.slow
def test_skipped_frames_roll_back(monkeypatch):
    """A late frame skips ticks: the frames worked out for them are dropped, and the frame
    after the gap is computed from the state after the last frame sent, as without."""
    cfg = parse_config(RIG, "<rig>")
    model = load_model(cfg.model)
    plain, ahead_pipe = Pipeline(cfg, model, seed=2), Pipeline(cfg, load_model(cfg.model), seed=2)
    fps = cfg.fps
    run = ahead_mod.RunAhead(ahead_pipe, 1.0 / fps)
    FrameCost(monkeypatch, ahead_pipe, lambda k: 0.5e-3)
    play_with_gaps(run, plain, fps, 400)
    assert run.batches > 10 and run.rollbacks > 10


PLAYLIST = 'playlist = "p"\n' + RIG + (
    '\n[playlists.p]\nitems = [{ model = "nat-aurora", seed = 1 }, '
    '{ model = "nat-neon", seed = 2 }]\nevery = "10s"\nfade_s = 1.0\n')


@pytest.mark.slow
def test_a_playlist_switch_on_the_show_clock_ends_a_batch():
    """The installation's playlist switches model on the wall clock; when it maps show time
    (a group's epoch, tests), no batch runs past the switch."""
    cfg = parse_config(PLAYLIST, "<rig>")
    show = same_show({}, config=cfg, seconds=23.0, wall_clock=lambda t: 1.78e9 + 0.0625 + t)
    assert show.pipeline.model.info.name == "nat-aurora"           # switched twice
    assert show.ahead.batches > 20 and show.ahead.rollbacks == 0


@pytest.mark.slow
def test_a_playlist_switch_on_the_wall_clock_rolls_back():
    """On `time.time()` (the daemon's), a batch cannot know the switch: the frame loop sees
    it due at its frame and rolls back first."""
    cfg = parse_config(PLAYLIST, "<rig>")

    def fresh() -> dict:
        wall = {"now": 1.78e9 + 0.0625}

        def tick(s: Show) -> None:        # the wall clock moves with the frames sent only
            wall["now"] = 1.78e9 + 0.0625 + s.frames_out / cfg.fps
        return {"wall_clock": lambda t: wall["now"], "listener": tick}
    show = same_show({}, fresh, config=cfg, seconds=23.0)
    assert show.pipeline.model.info.name == "nat-aurora"
    assert show.ahead.batches > 20 and show.ahead.rollbacks >= 2


def test_a_change_arriving_while_the_loop_decides_on_a_rollback_is_not_undone():
    """Another thread's change can land in the queue between the frame loop's look at it and
    its rollback of the batch: it waits for the next frame instead of being applied to the
    pipeline mid-batch and then undone by the batch's restore (seen as a reload that said
    "reloaded" and did nothing)."""
    def injector(s: Show) -> None:
        if s.frames_out != 60 or s.ahead is None:
            return
        ahead, real = s.ahead, s.ahead.next_is

        def next_is(t_s: float) -> bool:          # a client's change lands just now
            ahead.next_is = real
            s.handle_control("seed", {"seed": 3}, origin="test")
            return real(t_s)
        ahead.next_is = next_is

    got, _, show = play({}, ahead=True, listener=injector)
    want, _, plain = play({}, ahead=False, listener=injector)
    assert show.ahead.batches > 0 and plain.ahead.batches == 0
    assert show.pipeline.seed == plain.pipeline.seed == 3
    assert len(got) == len(want) and all(g == w for g, w in zip(got, want, strict=True))


def test_after_a_change_the_batches_start_small_and_grow_back():
    """A change can make a frame dearer (a model swap's cross-fade works out two walks): a
    batch sized for the cheaper frames would overrun the period, so after a rollback the
    batches start again at one frame and grow back as they are measured."""
    sizes: dict[int, int] = {}                   # frames out -> the next batch's size

    def watch(s: Show) -> None:
        sizes[s.frames_out] = s.ahead.size
    _, _, show = play({60: [("model", {"name": "nat-neon"})]}, ahead=True, listener=watch)
    assert show.ahead.rollbacks >= 1
    assert sizes[61] == 32                       # before the swap (it applies at frame 62)
    assert sizes[62] <= 2                        # the swap's frame: measured alone, then 2
    grown = [sizes[k] for k in range(62, 100)]
    assert grown == sorted(grown) and grown[-1] == 32    # and grown back, doubling
