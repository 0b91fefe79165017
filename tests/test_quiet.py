"""Idle cheaply (issue 18): a paused or blacked-out show, once its light has settled, stops
computing frames and sends its last frame a few times a second; any change ends that at
once, and the show goes on as if it had computed every frame."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from lateness import MachineLateness

from pi_app.config import load_config
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import QUIET_REFRESH_S, Show


class Counting(SimOutput):
    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.sent_at: list[float] = []

    def _send(self, frames) -> None:
        super()._send(frames)
        self.sent_at.append(time.monotonic())


def start(tmp_path, **kw):
    cfg = load_config(None)
    patch = Patch(cfg)
    out = Counting(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    show = Show(cfg, out, seed=4, control=False, presets_dir=tmp_path, **kw)
    computed: list[float] = []
    frames = show.pipeline.frames

    def counted(t_s):
        computed.append(t_s)
        return frames(t_s)
    show.pipeline.frames = counted
    thread = threading.Thread(target=show.run, daemon=True)
    thread.start()
    return show, out, computed, thread


def stop(show, thread) -> None:
    show.stop()
    thread.join(15)
    assert not thread.is_alive()


@pytest.mark.slow
def test_paused_show_goes_quiet_keeps_refreshing_and_resumes_where_it_was(tmp_path):
    machine = MachineLateness(40).__enter__()
    show, out, computed, thread = start(tmp_path)
    try:
        time.sleep(1.5)                                   # past the fade-in
        show.handle_control("pause", {})
        time.sleep(2.5)                                   # the light settles, then quiet
        n0, s0 = len(computed), len(out.sent_at)
        frame = out.history[-1][1].copy()
        time.sleep(2.0)
        assert len(computed) == n0, "a settled, paused show still computes frames"
        refreshes = len(out.sent_at) - s0
        assert 2.0 / QUIET_REFRESH_S - 3 <= refreshes <= 2.0 * 40 / 4, refreshes
        assert all(np.array_equal(f[1], frame) for f in out.history[-refreshes:])
        phase = show.pipeline.phase
        t = time.monotonic()
        show.handle_control("resume", {})
        while len(computed) == n0 and time.monotonic() - t < 2:
            time.sleep(0.005)
        assert time.monotonic() - t < QUIET_REFRESH_S / 2, "resume waited for the refresh"
        time.sleep(0.5)
        step = show.pipeline.phase - phase                # ~0.5 s of walk, not 4.5 s
        rate = show.pipeline.tempo / show.config.walk.seconds_per_waypoint
        assert 0 < step < 0.8 * rate, step
    finally:
        stop(show, thread)
        machine.__exit__()
    assert show.late_frames() <= 2 + machine.allowance(), (show.late_frames(), machine.late)


@pytest.mark.slow
def test_blacked_out_show_goes_quiet_dark_and_holds_its_heads(tmp_path):
    show, out, computed, thread = start(tmp_path)
    try:
        time.sleep(1.5)
        show.handle_control("blackout", {"on": True})
        time.sleep(3.5)
        n0 = len(computed)
        time.sleep(1.5)
        assert len(computed) == n0
        patch = show.pipeline.patch
        light = np.concatenate(list(patch.light_slots().values()))
        assert not out.history[-1][1][light].any()        # dark
        show.handle_control("blackout", {"on": False})
        time.sleep(0.3)
        assert len(computed) > n0
    finally:
        stop(show, thread)


@pytest.mark.slow
def test_a_playing_show_never_goes_quiet(tmp_path):
    show, out, computed, thread = start(tmp_path)
    try:
        time.sleep(3.0)
        assert len(computed) >= 0.9 * len(out.sent_at) > 100
    finally:
        stop(show, thread)
