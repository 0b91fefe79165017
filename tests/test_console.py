"""The operator's controls behave like a console's: the master dimmer is a grand master (a
preset recall or a playlist step never resets it; a preset's own level multiplies under
it), and `status` says when the show is paused, blacked out or dark by the schedule rather
than quoting the rate of the frames it re-sends while it holds still."""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pytest
from procs import env_for, latentdmx, public_dir, rig_text, run_cli, stop, wait_for

from pi_app.clock import FastClock
from pi_app.config import parse_config
from pi_app.control import ControlClient
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import Show

LOOKS = """
[presets.low]
seed = 3
master = 0.8

[presets.low-full]
seed = 3

[presets.full]
seed = 4

[playlists.two]
items = ["low", "full"]
every = "10m"
fade_s = 0
"""


def _config(extra: str = LOOKS):
    return parse_config(rig_text() + extra, "rig.toml")


def _show(cfg, tmp_path, **kw) -> tuple[Show, SimOutput]:
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    return Show(cfg, out, control=False, clock=FastClock, presets_dir=tmp_path / "presets",
                **kw), out


def _at_frames(show: Show, plan: dict[int, list[tuple[str, dict]]]) -> list[dict]:
    """Give `plan[k]`'s commands after frame k is out; the status after each step."""
    seen: list[dict] = []

    def listener(s: Show) -> None:
        for cmd, args in plan.get(s.frames_out, ()):
            s.handle_control(cmd, args)
        if s.frames_out - 1 in plan:
            seen.append(s.status_snapshot)
    show.listeners.append(listener)
    return seen


# -- the grand master ---------------------------------------------------------------------
def test_grand_master_survives_playlist_steps_and_recalls(tmp_path):
    """`dim 0.5; playlist start; playlist next; preset recall`: the master stays 0.5
    throughout, while each look's own level (the preset's `master`) goes under it."""
    show, _ = _show(_config(), tmp_path, duration_s=6)
    seen = _at_frames(show, {1: [("dim", {"level": 0.5})],
                             20: [("playlist/start", {"name": "two"})],
                             60: [("playlist/next", {})],
                             100: [("preset/recall", {"name": "low", "fade_s": 0})],
                             140: [("dim", {"level": 0.25})],
                             180: [("preset/recall", {"name": "full", "fade_s": 0})]})
    assert show.run() == 0
    masters = [s["master"] for s in seen]
    assert masters == [0.5, 0.5, 0.5, 0.5, 0.25, 0.25], masters   # 52dfd6e: 1 after a step
    got = [(s["master"], s["level"], s["preset"]) for s in seen]
    assert got == [(0.5, 1.0, ""),          # dim 0.5
                   (0.5, 0.8, "low"),       # the playlist's first item: low's own 0.8
                   (0.5, 1.0, "full"),      # playlist next: the master stays 0.5
                   (0.5, 0.8, "low"),       # recall: the master stays 0.5
                   (0.25, 0.8, "low"),      # dim under a preset: the level stays
                   (0.25, 1.0, "full")], got


def test_grand_master_survives_a_schedule_window_opening(tmp_path):
    """Dimmed in the dark, the window opens on preset `low`: the master stays 0.5."""
    text = rig_text() + LOOKS + ('\n[location]\ntimezone = "UTC"\n\n[[schedule]]\n'
                                 'on = "12:00"\noff = "13:00"\npreset = "low"\n')
    start = dt.datetime(2026, 12, 7, 11, 59, 50, tzinfo=dt.UTC)
    show, _ = _show(parse_config(text, "rig.toml"), tmp_path, duration_s=20,
                    wall_clock=lambda t: start.timestamp() + t)
    seen = _at_frames(show, {40: [("dim", {"level": 0.5})], 600: []})
    assert show.run() == 0
    assert [(s["master"], s["preset"]) for s in seen] == [(0.5, ""), (0.5, "low")], seen
    assert seen[0]["state"] == "dark" and seen[1]["state"] == "playing"
    assert seen[1]["level"] == 0.8


def test_a_presets_level_multiplies_under_the_grand_master(tmp_path):
    """The light of `dim 0.5` + preset at level 0.8 is, byte for byte, the light of
    `dim 0.4` + the same look at level 1: one gain, master x level."""
    runs = []
    for level, name in ((0.5, "low"), (0.4, "low-full")):
        show, out = _show(_config(), tmp_path, duration_s=4)
        show.handle_control("dim", {"level": level})
        show.handle_control("preset/recall", {"name": name, "fade_s": 0})
        assert show.run() == 0
        runs.append(np.stack([f[1] for f in out.history]))
        assert show.pipeline.safety.master == level
    a, b = runs
    assert a.shape == b.shape and a.max() > 0
    np.testing.assert_array_equal(a, b)


def test_a_saved_preset_stores_the_looks_level_not_the_grand_master(tmp_path):
    show, _ = _show(_config(), tmp_path)
    show._live = True
    for cmd, args in (("preset/recall", {"name": "low", "fade_s": 0}), ("dim", {"level": 0.3})):
        show.handle_control(cmd, args)
    while not show._commands.empty():
        show._commands.get_nowait()(0.0)
    path = show.handle_control("preset/save", {"name": "mine"})["file"]
    assert json.loads(open(path).read())["master"] == 0.8       # low's own level
    show.handle_control("dim", {"level": 0.6})
    show.handle_control("preset/recall", {"name": "mine", "fade_s": 0})
    while not show._commands.empty():
        show._commands.get_nowait()(1.0)
    snap = show.status_snapshot
    assert (snap["master"], snap["level"]) == (0.6, 0.8)


# -- status while the show holds still ----------------------------------------------------
def _rows(text: str) -> dict[str, str]:
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in text.splitlines()
                if re.search(r"\S\s{2,}\S", line))


@pytest.mark.slow
def test_status_of_a_real_daemon_says_paused_blacked_out_and_keeps_the_master(tmp_path):
    """A real daemon (its own runtime and state folders): `dim 0.5; playlist next` keeps the
    master at 0.5; paused or blacked out, `status` says so, with no fps (the quiet spell
    re-sends the frame 4 times a second), in its text and its JSON; playing again, the fps is
    the show's own."""
    xdg, state = public_dir(), public_dir()
    xdg.chmod(0o700)
    cfg = tmp_path / "rig.toml"
    cfg.write_text(rig_text() + LOOKS)
    env = env_for(xdg=xdg, STATE_DIRECTORY=str(state))
    proc = latentdmx("run", "--config", str(cfg), "--output", "sim", "--duration", "120",
                     env=env)

    def cli(*args: str) -> str:
        res = run_cli(*args, env=env)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        return res.stdout

    def status() -> dict:
        res = run_cli("status", env=env)
        return _rows(res.stdout) if res.returncode == 0 else {}
    try:
        wait_for((xdg / "latentdmx" / "control.sock").exists, 60, "the daemon's own socket")
        wait_for(lambda: status().get("frames", "0") not in ("0", ""), 60, "the first frames")
        cli("dim", "0.5")
        cli("playlist", "start", "two")
        wait_for(lambda: status().get("preset") == "low", 10, "the playlist's first item")
        cli("playlist", "next")
        rows = wait_for(lambda: (r := status()).get("preset") == "full" and r, 10,
                        "the playlist's next item")
        assert rows["master"] == "0.5", rows                    # 52dfd6e: 1
        assert rows["preset level"] == "1", rows
        cli("preset", "recall", "low", "0")
        rows = wait_for(lambda: (r := status()).get("preset level") == "0.8" and r, 10,
                        "the recall")
        assert rows["master"] == "0.5", rows
        assert rows["state"] == "playing" and float(rows["fps achieved"]) > 20, rows

        cli("pause")                  # the light settles (~2 s), then the quiet spell
        rows = wait_for(lambda: (r := status())["fps achieved"].startswith("-") and r, 15,
                        "the quiet spell")
        assert rows["state"].startswith("paused"), rows
        assert rows["fps achieved"] == \
            "- (paused: the same frame is re-sent, none computed)", rows
        assert rows["fps target"] == "40", rows

        cli("blackout")
        rows = wait_for(lambda: (r := status())["state"].startswith("blacked out") and
                        r["fps achieved"].startswith("-") and r, 15, "a quiet blackout")
        raw = run_cli("status", env=env).stdout
        assert not re.search(r"fps achieved\s+\d", raw), raw
        snap = ControlClient(xdg / "latentdmx" / "control.sock").request("status")
        assert snap["state"] == "blackout" and snap["fps_achieved"] is None, snap

        cli("resume")
        rows = wait_for(lambda: (r := status())["state"] == "playing" and
                        r["fps achieved"][:1].isdigit() and float(r["fps achieved"]) > 30
                        and r, 10, "the full rate again")
        assert rows["master"] == "0.5", rows
    finally:
        out = stop(proc)
    assert "Traceback" not in out, out


@pytest.mark.slow
def test_status_of_a_real_daemon_dark_by_schedule(tmp_path):
    """Outside every window the daemon idles (the dark frame re-sent): `status` says dark by
    the schedule, in its text and JSON, not an fps."""
    xdg, state = public_dir(), public_dir()
    xdg.chmod(0o700)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=12)).hour
    cfg = tmp_path / "rig.toml"
    cfg.write_text(rig_text() + f'\n[location]\ntimezone = "UTC"\n\n[[schedule]]\n'
                   f'on = "{later:02d}:00"\noff = "{later:02d}:30"\n')
    env = env_for(xdg=xdg, STATE_DIRECTORY=str(state))
    proc = latentdmx("run", "--config", str(cfg), "--output", "sim", "--duration", "120",
                     env=env)
    try:
        own = xdg / "latentdmx" / "control.sock"   # this daemon's (the CLI would otherwise
        wait_for(own.exists, 60, "the daemon's socket")   # find a user's own show)
        rows = wait_for(lambda: (r := _rows(run_cli("status", env=env).stdout))
                        .get("frames", "0") not in ("0", "") and r, 60, "the first frames")
        assert rows["state"].startswith("dark by the schedule"), rows
        assert rows["fps achieved"].startswith("- (dark"), rows
        snap = ControlClient(xdg / "latentdmx" / "control.sock").request("status")
        assert snap["state"] == "dark" and snap["fps_achieved"] is None, snap
    finally:
        out = stop(proc)
    assert "Traceback" not in out, out


def test_status_json_of_a_quiet_show(tmp_path):
    """The JSON status (socket, page, OSC) says what the show does, in a word, and has no
    fps while it computes no frames; on virtual time a show dark by the schedule."""
    text = rig_text() + ('\n[location]\ntimezone = "UTC"\n\n[[schedule]]\non = "20:00"\n'
                         'off = "21:00"\n')
    start = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
    show, _ = _show(parse_config(text, "rig.toml"), tmp_path, duration_s=3,
                    wall_clock=lambda t: start.timestamp() + t)
    seen = _at_frames(show, {10: []})
    assert show.run() == 0
    assert seen[0]["state"] == "dark" and seen[0]["fps_achieved"] is None, seen[0]


def test_osc_status_sends_nil_not_the_word_none_for_no_fps():
    """OSC feedback of `/latentdmx/status/fps_achieved` while the show holds still: OSC's
    nil, which a tablet shows as empty (52dfd6e would have sent the string "None")."""
    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import build_msg

    from pi_app.osc import _osc_value

    msg = build_msg("/latentdmx/status/fps_achieved", [_osc_value(None)])
    assert OscMessage(msg.dgram).params == [None]
    assert _osc_value("paused") == "paused" and _osc_value(0.8) == 0.8


def test_watch_header_says_paused_not_an_fps():
    from rich.console import Console

    from pi_app.views.watch import header

    c = Console(record=True, width=160)
    c.print(header({"state": "paused", "model": "m", "fps": 40, "fps_achieved": None,
                    "master": 0.5, "level": 0.8, "frames": 9}))
    text = c.export_text()
    assert "PAUSED" in text and "fps" not in text and "master 50% (preset 80%)" in text, text
