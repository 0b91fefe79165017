"""The schedule: clock and sun times, DST, midnight, the far north; and a show driven by it on
virtual time with an injected wall clock, read from the recorded DMX frames."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from click.testing import CliRunner

from pi_app.cli import main
from pi_app.clock import FastClock
from pi_app.config import parse_config
from pi_app.decode import Rig
from pi_app.errors import ConfigError
from pi_app.install_config import LocationConfig, ScheduleEntry, parse_time
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.schedule import Schedule
from pi_app.show import Show

BERLIN = LocationConfig(52.52, 13.40, "Europe/Berlin")
TROMSO = LocationConfig(69.65, 18.96, "Europe/Oslo")
NEW_YORK = LocationConfig(40.71, -74.01, "America/New_York")
TZ = ZoneInfo("Europe/Berlin")


def berlin(*a) -> dt.datetime:
    return dt.datetime(*a, tzinfo=TZ)


def sched(*entries, loc=BERLIN) -> Schedule:
    return Schedule(tuple(ScheduleEntry(**e) for e in entries), loc)


# -- times ------------------------------------------------------------------------------------
def test_time_specs():
    assert parse_time("21:30").minutes == 21 * 60 + 30
    s = parse_time("sunset+20m")
    assert (s.event, s.offset_s) == ("sunset", 1200)
    s = parse_time("sunrise-1h30m")
    assert (s.event, s.offset_s) == ("sunrise", -5400)
    for bad in ("25:00", "sunset+", "noon", "21.30", "sunset+20x", ""):
        assert parse_time(bad) is None


def test_sunset_offset_matches_astral_within_a_minute():
    from astral import Observer
    from astral.sun import sunset

    s = sched({"on": "sunset+20m", "off": "23:30"})
    for day in (dt.date(2026, 1, 10), dt.date(2026, 3, 28), dt.date(2026, 6, 21),
                dt.date(2026, 10, 26)):
        (w,), _ = s.day_plan(day)
        ref = sunset(Observer(52.52, 13.40), day, tzinfo=TZ) + dt.timedelta(minutes=20)
        assert abs((w.on - ref).total_seconds()) < 60, day
        assert w.off == berlin(day.year, day.month, day.day, 23, 30)


def test_dst_spring_forward_and_fall_back():
    s = sched({"on": "sunset+20m", "off": "23:30"}, {"on": "02:30", "off": "03:30"})
    # 2026-03-29: clocks jump 02:00 CET -> 03:00 CEST; sunset moves an hour later on the clock
    sat, _ = s.day_plan(dt.date(2026, 3, 28))
    sun, _ = s.day_plan(dt.date(2026, 3, 29))
    assert s.local(sat[0].on).utcoffset() == dt.timedelta(hours=1)
    assert s.local(sun[0].on).utcoffset() == dt.timedelta(hours=2)
    gap = (sun[0].on - sat[0].on).total_seconds()       # a solar day later, ~2 min of drift
    assert 86400 < gap < 86400 + 300
    assert s.local(sun[0].on).hour == 19 and s.local(sat[0].on).hour == 18   # clocks: +1 h
    # 02:30 does not exist on 29 March: taken as 03:30 CEST; the window is then empty
    assert [w.on for w in sun if w.index == 1] == []
    # 2026-10-25: 02:30 happens twice; the first (CEST) one is used, the window lasts 2 h
    oct25, _ = s.day_plan(dt.date(2026, 10, 25))
    w = next(w for w in oct25 if w.index == 1)
    assert s.local(w.on).utcoffset() == dt.timedelta(hours=2)
    assert (w.off - w.on) == dt.timedelta(hours=2)


def test_across_midnight_and_days():
    s = sched({"on": "22:00", "off": "02:00", "days": ["fri", "sat"]},
              {"on": "sunset", "off": "sunrise", "dates": ["12-20", "01-06"]})
    fri = dt.date(2026, 3, 27)
    (w,), _ = s.day_plan(fri)
    assert (w.on, w.off) == (berlin(2026, 3, 27, 22, 0), berlin(2026, 3, 28, 2, 0))
    assert s.day_plan(dt.date(2026, 3, 26)) == ([], [])           # a Thursday
    assert s.state(berlin(2026, 3, 28, 1, 59)).on
    st = s.state(berlin(2026, 3, 28, 2, 0))
    assert not st.on and st.next_change == berlin(2026, 3, 28, 22, 0)
    # a date range over New Year, sunset to the next sunrise
    (w,), _ = s.day_plan(dt.date(2026, 12, 31))
    on, off = s.local(w.on), s.local(w.off)
    assert on.date() == dt.date(2026, 12, 31) and off.date() == dt.date(2027, 1, 1)
    assert off.hour == 8
    assert s.day_plan(dt.date(2026, 1, 7)) == ([], [])


def test_latest_opened_window_wins_and_next_event():
    s = sched({"on": "18:00", "off": "23:30", "preset": "evening"},
              {"on": "21:00", "off": "22:00", "preset": "late"})
    assert s.state(berlin(2026, 5, 1, 20, 0)).window.entry.preset == "evening"
    st = s.state(berlin(2026, 5, 1, 21, 30))
    assert st.window.entry.preset == "late"
    assert st.next_change == berlin(2026, 5, 1, 22, 0)
    assert st.next_window.entry.preset == "evening"


def test_far_north_midnight_sun_and_polar_night():
    s = sched({"on": "sunset+20m", "off": "23:30"}, {"on": "sunrise", "off": "12:00"},
              loc=TROMSO)
    # midsummer: no sunset and no sunrise -> both windows skipped, with the reason
    wins, skipped = s.day_plan(dt.date(2026, 6, 21))
    assert wins == [] and len(skipped) == 2
    assert all("midnight sun" in k.reason for k in skipped)
    # mid-May: sunset is after 23:10, so sunset+20m comes after 23:30: skipped, said so
    wins, skipped = s.day_plan(dt.date(2026, 5, 13))
    assert [w.index for w in wins] == [1]
    assert "comes after off" in skipped[0].reason
    # a sunset just after midnight still belongs to that evening (not to the next day)
    t = s.sun_event("sunset", dt.date(2026, 5, 17))
    assert isinstance(t, dt.datetime)
    assert s.local(t).date() == dt.date(2026, 5, 18) and s.local(t).hour == 0
    # astral's own sunrise() misses this one ("Unable to find a sunrise time"); we do not
    t = s.sun_event("sunrise", dt.date(2026, 5, 14))
    assert isinstance(t, dt.datetime) and s.local(t).hour == 1
    # midwinter: polar night
    wins, skipped = s.day_plan(dt.date(2026, 12, 21))
    assert wins == [] and all("polar night" in k.reason for k in skipped)


def test_time_zones_are_the_locations():
    s = sched({"on": "sunset", "off": "23:00"}, loc=NEW_YORK)
    (w,), _ = s.day_plan(dt.date(2026, 7, 4))
    assert s.tz.key == "America/New_York" and 20 <= s.local(w.on).hour <= 21
    assert w.off == dt.datetime(2026, 7, 4, 23, 0, tzinfo=ZoneInfo("America/New_York"))


@pytest.mark.parametrize("snippet, field", [
    ('[[schedule]]\non = "sunset"\noff = "23:30"\n', "location"),
    ('[location]\nlatitude = 52.5\nlongitude = 13.4\ntimezone = "Mars/Olympus"\n',
     "location.timezone"),
    ('[[schedule]]\non = "8pm"\noff = "23:30"\n', "schedule[1].on"),
    ('[[schedule]]\non = "20:00"\n', "schedule[1].off"),
    ('[[schedule]]\non = "20:00"\noff = "23:00"\ndays = ["funday"]\n', "schedule[1].days[0]"),
    ('[[schedule]]\non = "20:00"\noff = "23:00"\ndates = ["13-01", "01-01"]\n',
     "schedule[1].dates"),
    ('[[schedule]]\non = "20:00"\noff = "23:00"\nplaylist = "nope"\n', "schedule[1].playlist"),
    ('[location]\nlatitude = 95.0\n', "location.latitude"),
])
def test_config_mistakes_are_one_line(default_config, snippet, field):
    base = open(default_config_path(), encoding="utf-8").read()
    with pytest.raises(ConfigError) as exc:
        parse_config(base + snippet, "rig.toml")
    assert exc.value.field == field and exc.value.fix and "\n" not in str(exc.value)


def default_config_path():
    from pi_app.config import default_config_path as p

    return p()


# -- the show on virtual time --------------------------------------------------------------
def installation(extra: str, fps: int = 2):
    base = open(default_config_path(), encoding="utf-8").read().replace("fps = 40",
                                                                       f"fps = {fps}")
    return parse_config(base + extra, "rig.toml")


def play(cfg, start: dt.datetime, seconds: float, tmp_path, calls: list | None = None):
    """Run the show on virtual time with the wall clock starting at `start`."""
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    show = Show(cfg, out, clock=FastClock, control=False, duration_s=seconds,
                wall_clock=lambda t: start.timestamp() + t, presets_dir=tmp_path / "presets")
    if calls is not None:
        gen = show.pipeline.model.generate

        stacked = show.pipeline.model.generate_stacked

        def counted(z):
            calls.append(1)
            return gen(z)

        def counted_stacked(z):              # the next frames at once: one call a frame
            calls.extend([1] * len(z))
            return stacked(z)
        show.pipeline.model.generate = counted
        show.pipeline.model.generate_stacked = counted_stacked
    show.run()
    rig = Rig.from_patch(patch)
    look = rig.decode(np.stack([rig.frames_array(f) for f in out.history]))
    return look, out


LOCATION = '[location]\nlatitude = 52.52\nlongitude = 13.40\ntimezone = "Europe/Berlin"\n'


@pytest.mark.slow
def test_show_across_the_dst_night(tmp_path):
    """01:50 CET to 03:10 CEST on 29 March 2026 is 20 minutes of light, not 80; dark before
    and after, heads parked, and no model work while dark."""
    cfg = installation(LOCATION + '[[schedule]]\non = "01:50"\noff = "03:10"\n')
    calls: list = []
    fps = 2
    look, out = play(cfg, berlin(2026, 3, 29, 1, 40), 40 * 60, tmp_path, calls)
    level = look.level.max(axis=1)
    lit = np.flatnonzero(level > 0.005) / fps
    assert lit[0] == pytest.approx(600, abs=1.0)                  # 01:50 CET
    assert lit[-1] == pytest.approx(600 + 20 * 60 + cfg.safety.fade_out_s, abs=1.5)
    on_frames = len(calls)
    # no model work while dark: one call a frame while lit, plus the walk's look ahead at
    # each new segment (a guarded NAT walk checks the segment for tears before it starts)
    segments = 20 * 60 / cfg.walk.seconds_per_waypoint + 2
    assert on_frames <= (20 * 60 + 8) * fps + segments
    # dark stretches: identical frames (the same dark frame, refreshed every period)
    first, last = out.history[0][1], out.history[-2][1]
    assert all(np.array_equal(f[1], first) for f in out.history[:int(599 * fps)])
    assert all(np.array_equal(f[1], last) for f in out.history[int(1810 * fps):-1])
    park = np.array([f.park for f in cfg.fixtures])[:3]          # the moving heads
    heads = [i for i, f in enumerate(Rig.from_patch(Patch(cfg)).fixtures) if f.moves]
    assert len(heads) == 3
    for k in (0, -1):
        np.testing.assert_allclose(look.pan[k, heads], park[:, 0], atol=0.01)


@pytest.mark.slow
def test_show_across_midnight_and_status_next_event(tmp_path):
    cfg = installation(LOCATION + '[[schedule]]\non = "23:55"\noff = "00:05"\n')
    look, _ = play(cfg, berlin(2026, 6, 1, 23, 50), 16 * 60, tmp_path)
    lit = np.flatnonzero(look.level.max(axis=1) > 0.005) / 2
    assert lit[0] == pytest.approx(300, abs=1) and lit[-1] == pytest.approx(900 + 1, abs=1.5)
    # the status names the next event
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes), control=False, presets_dir=tmp_path,
                wall_clock=lambda t: berlin(2026, 6, 1, 23, 50).timestamp() + t)
    show.director.start(0.0)
    show._live = True
    snap = show.status_snapshot
    assert snap["schedule"].startswith("off") and snap["next_event"].startswith(
        "on at Mon 23:55 CEST")


def test_schedule_command_prints_the_week(tmp_path):
    cfg = tmp_path / "rig.toml"
    cfg.write_text(open(default_config_path(), encoding="utf-8").read() +
                   '[location]\nlatitude = 69.65\nlongitude = 18.96\ntimezone = "Europe/Oslo"'
                   '\n[[schedule]]\non = "sunset+20m"\noff = "23:30"\n', encoding="utf-8")
    r = CliRunner().invoke(main, ["schedule", "--config", str(cfg), "--from", "2026-05-09",
                                  "--days", "12"])
    assert r.exit_code == 0, r.output
    assert "Sat 09 May 2026  sunrise 02:3" in r.output
    assert "on  23:1" in r.output                                 # 9 May: 23:1x - 23:30
    assert "midnight sun" in r.output and "comes after off" in r.output
    bad = CliRunner().invoke(main, ["schedule", "--config", str(cfg), "--from", "May 9"])
    assert bad.exit_code == 2 and "--from" in bad.output
