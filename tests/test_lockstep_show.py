"""Lockstep shows in one process, on virtual time: members started apart compute the same
frames from the config and the clock alone (playlist included); a snapshot carries the live
state to a member that starts late; clock steps are slewed or jumped without a flash or a
whip. Each show is a real `Show` in a group, alone in a namespace that has only its loopback.
(Several daemons as processes on a LAN: tests/test_lockstep_e2e.py.)"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from group_lan import LoOnly, lan_missing_reason
from lockstep_daemons import with_sync

from pi_app.clock import FastClock
from pi_app.config import default_config_path, parse_config
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.safety_check import check_recording
from pi_app.show import Show
from pi_app.sim.record import read_show
from pi_app.sync.clock import FastSyncClock, VirtualTime

pytestmark = pytest.mark.skipif(lan_missing_reason() is not None,
                                reason=lan_missing_reason() or "")

EPOCH = 1767225600.0
FPS = 40
SYNC = """group = "test"
key = "kV3q-Zt8wPn2RbX7_mLc9YfH4sJd6GaE"
interface = "127.0.0.1"
"""
PLAYLIST = """
[playlists.round]
items = ["a", "b"]
every = "10s"
fade_s = 1.0

[presets.a]
seed = 3
tempo = 1.5

[presets.b]
model = "iae-glyphs"
seed = 8
palette = "sea"

[palettes.sea]
hues = [200]
width_deg = 40
"""


def _config(tables: str = "", top: str = ""):
    """The bundled rig in group "test", with `top` keys and `tables` added."""
    return parse_config(top + "\n" + with_sync(default_config_path().read_text(), SYNC) +
                        tables, "<test>")


@pytest.fixture(scope="module")
def ns():
    with LoOnly() as n:
        yield n


def _play(ns, cfg, tmp: Path, name: str, wall0: float, seconds: float,
          listener=None, vt: VirtualTime | None = None) -> dict[int, np.ndarray]:
    """Run a member alone on virtual time from wall time `wall0`; its frames by index."""
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames)
    vt = vt or VirtualTime(wall0)
    rec = tmp / f"{name}.txt"
    show = Show(cfg, out, duration_s=seconds, record_path=rec, control=False,
                clock=functools.partial(FastSyncClock, vtime=vt),
                presets_dir=tmp / f"{name}-presets")
    if listener is not None:
        show.listeners.append(listener)
    ns.call(show.run)
    return frames_by_index(rec)


def frames_by_index(rec: Path) -> dict[int, np.ndarray]:
    return dict(played(rec))


def played(rec: Path) -> list[tuple[int, np.ndarray]]:
    """(frame index, frame) in the order played (a clock jumped back repeats indices)."""
    frames, _, _ = read_show(rec)
    lines = (str(rec) + ".stamps")
    ks = [int(line.split()[0]) for line in Path(lines).read_text().splitlines()
          if not line.startswith("#")]
    return list(zip(ks, frames, strict=False))


@pytest.mark.slow
def test_members_started_apart_play_the_same_frames(ns, tmp_path):
    """No message needed: the config (a playlist rotating presets across two models) and
    the clock decide every frame; a member started 7.3 s later joins on the same frames."""
    cfg = _config(PLAYLIST, top='playlist = "round"')
    w0 = EPOCH + 28_900_000.0
    a = _play(ns, cfg, tmp_path, "a", w0, 26.0)
    b = _play(ns, cfg, tmp_path, "b", w0 + 7.3, 16.0)
    k_b = min(b)
    assert k_b == min(a) + round(7.3 * FPS)
    fade_out = 60                        # each member's own last 1.5 s (fade-out, park)
    # each member's own first seconds: its stages' state (slew, flash limiter, moves) meets
    # the other's within 4 s (the retrained iae-glyphs' larger steps: 3.2 s at most here)
    steady = [k for k in sorted(b) if k_b + 4 * FPS <= k <= max(b) - fade_out]
    assert len(steady) > 9 * FPS
    same = [np.array_equal(a[k], b[k]) for k in steady]
    assert all(same), f"first difference at +{steady[same.index(False)] - k_b} frames"
    # the playlist rotated in the common part (items every 10 s from the epoch)
    assert len({a[k].tobytes() for k in steady}) > len(steady) // 2


@pytest.mark.slow
def test_a_clock_step_is_slewed_or_jumped_without_flash_or_whip(ns, tmp_path, caplog):
    cfg = _config()
    w0 = EPOCH + 10_000_000.0
    vt = VirtualTime(w0)
    steps = {80: 0.2, 300: 4.0, 500: -4.0, 700: -0.15}
    count = iter(range(10**9))

    def stepper(show) -> None:
        n = next(count)
        if n in steps:
            vt.step(steps[n])

    caplog.set_level(logging.INFO, "latentdmx.sync")
    _play(ns, cfg, tmp_path, "stepped", w0, 24.0, listener=stepper, vt=vt)
    stepped = played(tmp_path / "stepped.txt")
    reference = _play(ns, cfg, tmp_path, "ref", w0 - 10.0, 40.0)
    log = caplog.text
    assert "stepped by +200.0 ms; the show follows it over 2.0 s" in log
    jumps = [int(j) for j in re.findall(r"stepped by [+-]4.000 s; jumping ([+-]\d+) frames", log)]
    assert len(jumps) == 2 and abs(jumps[0] - 160) <= 1 and abs(jumps[1] + 160) <= 1, jumps
    assert "stepped by -150.0 ms" in log
    report = check_recording(tmp_path / "stepped.txt", cfg)
    assert report.violations == [], report.violations      # no flash, no whip, ever
    # and it plays the group's frames again soon after each step
    same = [np.array_equal(frame, reference[k]) for k, frame in stepped]
    for n in (80, 300, 500, 700):              # the frames after a step: as the group's
        assert all(same[n + 3 * FPS: n + 5 * FPS]), n
    assert all(same[2 * FPS:301])              # a slew changes no frame, only when it plays


def test_a_late_member_takes_the_live_state_from_a_snapshot(ns, tmp_path):
    """capture() on one show, restore() on a fresh one: the same walk from then on — a new
    seed and tempo, a model cross-fade half done, a palette, heads still, paused and on."""
    from pi_app.runtime import load_model
    from pi_app.sync.state import capture, models_of, restore
    from pi_app.vocabulary import lookup

    cfg = _config(PLAYLIST)

    def make() -> Show:
        patch = Patch(cfg)
        return Show(cfg, SimOutput(patch.universes, blackout=patch.blackout_frames),
                    control=False, clock=FastClock, presets_dir=tmp_path / "p")

    a = make()
    p = a.pipeline
    t = 1000.0
    for k in range(40):
        p.frames(t + k / FPS)
    for cmd, args, at in (("seed", {"seed": 21}, 1001.0), ("tempo", {"tempo": 1.7}, 1002.0),
                          ("palette", {"name": "sea"}, 1002.5), ("still", {"on": True}, 1003.0),
                          ("model", {"name": "iae-glyphs"}, 1004.0)):
        lookup(cmd).run(a, lookup(cmd).parse(args)).apply(at)
    t_snap = 1004.75                          # the model's cross-fade is 2 s: half done
    state = capture(a, t_snap)
    assert state["xfade"] and state["still"] and state["palette"] == "sea"
    b = make()
    restore(b, state, {ref: load_model(ref) for ref in models_of(state)})
    for t_s in (t_snap, 1005.5, 1007.0, 1030.0):
        assert np.array_equal(b.pipeline.looks(b.pipeline.raw_scene(t_s)).copy(),
                              a.pipeline.looks(a.pipeline.raw_scene(t_s)).copy()), t_s
    lookup("pause").run(a, {}).apply(1031.0)
    state = capture(a, 1032.0)
    restore(b, state, {ref: load_model(ref) for ref in models_of(state)})
    assert b.pipeline.paused and b.pipeline.line.at(1e6) == a.pipeline.line.at(1031.0)
