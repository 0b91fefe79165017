"""The schedule: when the show plays, computed offline from the config.

Each ``[[schedule]]`` entry opens a *window* on every day it applies to (``days``, ``dates``):
from its ``on`` time that day to its ``off`` time. Whether the window closes the same day or
the next is decided from the times as written, with sunrise counted as 06:00 and sunset as
18:00: ``"sunset+20m"`` to ``"23:30"`` closes the same evening, ``"22:00"`` to ``"02:00"`` and
``"sunset"`` to ``"sunrise"`` the next morning. On a day when the on time comes after the
off time (far north in May: sunset after 23:30) the window is skipped. Times are the
location's local wall-clock times (``[location] timezone``, an IANA name, through
`zoneinfo`), so a window follows the clocks across a DST change. A clock time that does not
exist that day (spring forward, 02:30) is taken one hour later, as the clocks show it; one
that happens twice (fall back) is the first.

Sun times come from `astral` (offline): ``sunrise``/``sunset`` (the sun's upper limb on the
horizon, with refraction) and ``dawn``/``dusk`` (civil twilight, sun 6° below), each with an
optional offset (``"sunset+20m"``, ``"sunrise-1h30m"``). A morning event belongs to the day
whose solar noon follows it, an evening event to the day whose solar noon precedes it, so a
sunset just after midnight (far north, early summer) still counts as that evening's sunset.
On a day with no such event — midnight sun (no sunset), polar night (no sunrise), white nights
(no dusk) — a window that needs it is skipped that day, and `latentdmx schedule` says why.

At any moment the show plays if some window is open; if several are, the one opened last
wins (its preset or playlist plays). Outside every window the rig is dark, heads parked. With
no ``[[schedule]]`` entries the show always plays.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from .install_config import (
    LocationConfig,
    ScheduleEntry,
    TimeSpec,
    expand_days,
    parse_date,
    parse_time,
    ref_minutes,
    system_timezone,
)

UTC = dt.UTC
LOOK_BACK_DAYS = 2
# the sun's geometric elevation at each event: sunrise/sunset when the upper limb touches the
# horizon (0.833° = 34' of refraction + 16' of semi-diameter), dawn/dusk: civil twilight
SUN_ANGLE_DEG = {"sunrise": -0.833, "sunset": -0.833, "dawn": -6.0, "dusk": -6.0}
SUN_STEP_MIN = 10      # a window may open up to this many days before the moment asked about


@dataclass(frozen=True)
class Window:
    """One opening of an entry: from `on` to `off`, in UTC (aware datetimes in one zone
    compare by their wall-clock fields, wrong across a fall-back hour; UTC never is)."""
    index: int              # the entry's index in the config's [[schedule]] list
    entry: ScheduleEntry
    on: dt.datetime
    off: dt.datetime

    @property
    def what(self) -> str:
        if self.entry.preset:
            return f"preset {self.entry.preset}"
        if self.entry.playlist:
            return f"playlist {self.entry.playlist}"
        return "the show"


@dataclass(frozen=True)
class Skipped:
    index: int
    entry: ScheduleEntry
    day: dt.date
    reason: str


@dataclass(frozen=True)
class State:
    """What the schedule says at a moment: `window` is None when the rig is dark."""
    window: Window | None
    next_change: dt.datetime | None      # when `window` changes next (None: never, in range)
    next_window: Window | None           # what plays after that change (None: dark)

    @property
    def on(self) -> bool:
        return self.window is not None


class Schedule:
    def __init__(self, entries: tuple[ScheduleEntry, ...], location: LocationConfig) -> None:
        self.entries = tuple(entries)
        self.tz = ZoneInfo(location.timezone or system_timezone())
        self.location = location
        self._specs = [(parse_time(e.on), parse_time(e.off)) for e in self.entries]
        self._days = [expand_days(e.days) for e in self.entries]
        self._observer: Any = None              # astral.Observer, made when first needed
        self._sun_cache: dict[tuple[str, dt.date], dt.datetime | str] = {}

    @property
    def always_on(self) -> bool:
        return not self.entries

    # -- sun ----------------------------------------------------------------------------
    def _obs(self):
        if self._observer is None:
            from astral import Observer

            loc = self.location
            self._observer = Observer(loc.latitude, loc.longitude)
        return self._observer

    def sun_event(self, event: str, day: dt.date) -> dt.datetime | str:
        """The time (UTC) of `event` on local `day`, or the reason there is none."""
        key = (event, day)
        hit = self._sun_cache.get(key)
        if hit is None:
            hit = self._sun_cache[key] = self._compute_sun(event, day)
        return hit

    def _compute_sun(self, event: str, day: dt.date) -> dt.datetime | str:
        """Root of the sun's elevation (astral's solar position) through the event's angle,
        in the half day before (sunrise, dawn) or after (sunset, dusk) that day's solar noon.

        Not astral's own `sunrise()`/`sunset()`: near the polar days they miss events that
        happen ("Unable to find a sunrise time on the date specified" for Tromsø's sunrise
        at 01:55 on 14 May 2026)."""
        from astral import sun as asun

        obs = self._obs()
        noon = asun.noon(obs, day, tzinfo=self.tz).astimezone(UTC)
        target = SUN_ANGLE_DEG[event]
        rising = event in ("sunrise", "dawn")
        start = noon - dt.timedelta(hours=12) if rising else noon

        def above(t: dt.datetime) -> float:
            return asun.elevation(obs, t, with_refraction=False) - target

        step = dt.timedelta(minutes=SUN_STEP_MIN)
        prev_t, prev = start, above(start)
        for k in range(1, int(12 * 60 / SUN_STEP_MIN) + 1):
            t = start + k * step
            v = above(t)
            if (prev < 0 <= v) if rising else (prev >= 0 > v):
                lo, hi = prev_t, t
                for _ in range(24):                     # bisect to well under a second
                    mid = lo + (hi - lo) / 2
                    if (above(mid) < 0) == rising:
                        lo = mid
                    else:
                        hi = mid
                return lo + (hi - lo) / 2
            prev_t, prev = t, v
        up = above(noon) + target > 0
        if event in ("dawn", "dusk"):
            return ("white night: it never gets darker than civil twilight"
                    if above(noon - dt.timedelta(hours=12)) >= 0 else
                    "polar night: no civil twilight")
        return "midnight sun: the sun does not set" if up else \
            "polar night: the sun does not rise"

    # -- times --------------------------------------------------------------------------
    def _local(self, day: dt.date, minutes: int) -> dt.datetime:
        naive = dt.datetime.combine(day, dt.time(minutes // 60, minutes % 60))
        aware = naive.replace(tzinfo=self.tz)                   # fold=0: the first, if twice
        return aware.astimezone(UTC)                            # a gap's time moves forward

    def local(self, t: dt.datetime) -> dt.datetime:
        return t.astimezone(self.tz)

    def resolve(self, spec: TimeSpec, day: dt.date) -> dt.datetime | str:
        if spec.event == "clock":
            return self._local(day, spec.minutes)
        t = self.sun_event(spec.event, day)
        if isinstance(t, str):
            return f"no {spec.event} on {day:%a %d %b}: {t}"
        return t + dt.timedelta(seconds=spec.offset_s)

    def _applies(self, i: int, day: dt.date) -> bool:
        if day.weekday() not in self._days[i]:
            return False
        dates = self.entries[i].dates
        if not dates:
            return True
        a, b = parse_date(dates[0]), parse_date(dates[1])
        assert a is not None and b is not None
        if a[0] is not None and b[0] is not None:
            return dt.date(a[0], a[1], a[2]) <= day <= dt.date(b[0], b[1], b[2])
        md, lo, hi = (day.month, day.day), (a[1], a[2]), (b[1], b[2])
        return lo <= md <= hi if lo <= hi else (md >= lo or md <= hi)   # over New Year

    def day_plan(self, day: dt.date) -> tuple[list[Window], list[Skipped]]:
        """The windows that open on local `day` (and the entries skipped that day, why)."""
        wins, skipped = [], []
        for i, e in enumerate(self.entries):
            if not self._applies(i, day):
                continue
            on_spec, off_spec = self._specs[i]
            assert on_spec is not None and off_spec is not None
            on = self.resolve(on_spec, day)
            if isinstance(on, str):
                skipped.append(Skipped(i, e, day, on))
                continue
            over_midnight = ref_minutes(off_spec) <= ref_minutes(on_spec)
            off = self.resolve(off_spec, day + dt.timedelta(days=1 if over_midnight else 0))
            if isinstance(off, str):
                skipped.append(Skipped(i, e, day, off))
                continue
            if off <= on:
                skipped.append(Skipped(i, e, day, f"on ({self.local(on):%H:%M}) comes after "
                                                  f"off ({self.local(off):%H:%M}) that day"))
                continue
            wins.append(Window(i, e, on, off))
        return wins, skipped

    def windows(self, start: dt.datetime, end: dt.datetime) -> list[Window]:
        """Every window overlapping [start, end), ordered by opening time."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        first = start.astimezone(self.tz).date() - dt.timedelta(days=LOOK_BACK_DAYS)
        last = end.astimezone(self.tz).date()
        out: list[Window] = []
        day = first
        while day <= last:
            out.extend(w for w in self.day_plan(day)[0] if w.off > start and w.on < end)
            day += dt.timedelta(days=1)
        return sorted(out, key=lambda w: (w.on, w.index))

    # -- the state at a moment -------------------------------------------------------------
    def state(self, when: dt.datetime, horizon_days: int = 8) -> State:
        """What plays at `when` (aware), and when that changes next."""
        if when.tzinfo is None:
            raise ValueError("an aware datetime is needed")
        when = when.astimezone(UTC)
        if self.always_on:
            return State(None, None, None)
        end = when + dt.timedelta(days=horizon_days)
        wins = self.windows(when, end)
        current = _winner(wins, when)
        points = sorted({t for w in wins for t in (w.on, w.off) if when < t < end})
        for t in points:
            w = _winner(wins, t)
            if w != current:
                return State(current, t, w)
        return State(current, None, None)


def _winner(wins: list[Window], t: dt.datetime) -> Window | None:
    """The window opened last among those open at `t` (ties: the later entry)."""
    open_now = [w for w in wins if w.on <= t < w.off]
    return max(open_now, key=lambda w: (w.on, w.index)) if open_now else None


def format_local(t: dt.datetime, now: dt.datetime | None = None) -> str:
    """``Tue 21:30 CEST`` (with the date when more than 6 days away)."""
    if now is not None and abs((t - now).total_seconds()) > 6 * 86400:
        return f"{t:%a %d %b %H:%M %Z}"
    return f"{t:%a %H:%M %Z}"
