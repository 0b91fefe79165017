"""`identify` inside a running show (Show.handle_control "identify"), on the simulator and
virtual time: every fixture in turn, the others dark, through the flash limiter, back to
the show; refused with the reason when it cannot be done."""

from __future__ import annotations

import pytest
from flash_counter import FlashCounter, rig_from_config

from pi_app.clock import FastClock
from pi_app.config import load_config
from pi_app.errors import ControlError
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import Show

CFG = load_config(None)


def play(seconds: float, at: dict[int, tuple[str, dict]]):
    """Play the default show; at frame k, send control command at[k]; return (frames,
    answers)."""
    patch = Patch(CFG)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    show = Show(CFG, out, duration_s=seconds, control=False, clock=FastClock)
    answers: dict[int, object] = {}

    def inject(s: Show) -> None:
        k = s.frames_out
        if k in at:
            cmd, args = at[k]
            try:
                answers[k] = s.handle_control(cmd, args)
            except ControlError as exc:
                answers[k] = exc

    show.listeners.append(inject)
    show.run()
    return [h[1] for h in out.history], answers


def lit(frame, rig) -> set[str]:
    return {f.name for f in rig if any(frame[c.slot] for c in f.channels)}


@pytest.mark.slow
def test_identify_all_walks_the_rig_then_returns_to_the_show():
    rig = rig_from_config(None)
    names = [f.name for f in rig]
    start = 200                                   # 5 s in: the show is lit
    frames, answers = play(30.0, {start: ("identify", {"all": True, "seconds": 2.0,
                                                       "level": 0.3})})
    reply = answers[start]
    assert [f["name"] for f in reply["fixtures"]] == names
    assert reply["fixtures"][3] == {"name": "par-1", "universe": 1, "addresses": "41-44",
                                    "profile": "generic-rgbw-par 4ch"}
    for i, name in enumerate(names):              # the last second of each one's 2 s
        window = frames[start + 80 * i + 45:start + 80 * (i + 1)]
        assert all(lit(f, rig) == {name} for f in window), name
    after = frames[start + 80 * len(names) + 120:]
    assert any(len(lit(f, rig)) > 1 for f in after)          # the show is back
    counter = FlashCounter(rig)
    for k, f in enumerate(frames):
        counter.add(k / 40, {1: bytes(f)})
    assert counter.worst()[1] <= 3.0, counter.summary()


def test_cancel_returns_to_the_show_at_once():
    rig = rig_from_config(None)
    frames, _ = play(12.0, {120: ("identify", {"fixtures": ["par-2"], "seconds": 60.0,
                                               "level": 0.5}),
                            200: ("identify", {"cancel": True})})
    assert lit(frames[190], rig) == {"par-2"}
    assert any(len(lit(f, rig)) > 1 for f in frames[300:])


@pytest.mark.parametrize("args, before, seconds, why", [
    ({"fixtures": ["par-9"]}, None, 5.0, "no fixture 'par-9'"),
    ({"fixtures": []}, None, 5.0, "is not a list of fixture names"),
    ({}, None, 5.0, "needs fixture names"),
    ({"fixtures": ["par-1"], "seconds": 0.0}, None, 5.0, "seconds: 0.0 is not a number"),
    ({"fixtures": ["par-1"], "level": 2}, None, 5.0, "level: 2 is not a number in 0..1"),
    ({"fixtures": ["par-1"], "color": 2}, None, 5.0, "unknown argument 'color'"),
    ({"fixtures": ["par-1"]}, ("blackout", {}), 5.0, "blacked out"),
    ({"fixtures": ["par-1"]}, None, 3.0, "stopping"),      # fading out from 2 s
])
def test_identify_is_refused_with_the_reason(args, before, seconds, why):
    args = {"seconds": 1.0, "level": 0.3, **args}
    if not args.get("fixtures", True):
        args.pop("seconds")
    at = {100: ("identify", args)}
    if before:
        at = {90: before, 100: ("identify", args)}
    _, answers = play(seconds, at)
    assert isinstance(answers[100], ControlError) and why in str(answers[100])


def test_identify_is_refused_while_the_schedule_keeps_the_rig_dark(tmp_path):
    import datetime as dt
    from zoneinfo import ZoneInfo

    from pi_app.config import default_config_path, parse_config

    text = default_config_path().read_text() + (
        '[location]\nlatitude = 52.52\nlongitude = 13.40\ntimezone = "Europe/Berlin"\n'
        '[[schedule]]\non = "20:00"\noff = "23:00"\n')
    cfg = parse_config(text, "rig.toml")
    start = dt.datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames)
    show = Show(cfg, out, clock=FastClock, control=False, duration_s=5.0,
                wall_clock=lambda t: start.timestamp() + t, presets_dir=tmp_path / "presets")
    answers = []

    def ask(s: Show) -> None:
        if s.frames_out == 100:
            try:
                answers.append(s.handle_control("identify", {"fixtures": ["par-1"]}))
            except ControlError as exc:
                answers.append(exc)

    show.listeners.append(ask)
    show.run()
    assert isinstance(answers[0], ControlError)
    assert "dark outside its schedule (next: " in str(answers[0])
    assert "sudo systemctl stop latentdmx" in str(answers[0])
