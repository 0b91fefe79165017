"""Config sections for running an installation: where the rig is, when it plays, what it plays.

    [location]      latitude, longitude, timezone (IANA, e.g. "Europe/Berlin")
    [[schedule]]    on/off windows: "HH:MM", "sunrise", "sunset", "dawn", "dusk", with offsets
                    ("sunset+20m", "sunrise-1h"), optional days, dates, preset or playlist
    [presets.NAME]  named looks written in the config (saved ones live in the state folder)
    [playlists.NAME] items (preset names, or {model, seed} tables) rotated every N minutes
    [palettes.NAME] hues to keep the show inside, or a warm-white colour temperature
    [looks]         the palette in use and "heads still" at start
    [osc]           the OSC server for tablets (off by default; localhost unless allowed)
    [[fixtures]] trim = { max_intensity, colour_balance, dimmer_gamma }

Only the dataclasses and their checks live here; `config.py` parses them like every other
section. Every mistake is one `ConfigError` naming the field and the fix.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, fixture_label
from .hosts import check_allow_list, is_loopback
from .phase import PHASE_FIX, phase_ok
from .ranges import check_ranges, ranged

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_GROUPS = {"daily": DAY_NAMES, "weekdays": DAY_NAMES[:5], "weekends": DAY_NAMES[5:]}
SUN_EVENTS = ("sunrise", "sunset", "dawn", "dusk")
# \A..\Z, not ^..$: "$" also matches before a final newline ("dusk\n" is not a name)
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}\Z")
NAME_FIX = "use 1..64 letters, digits, spaces, '_', '.' or '-', starting with a letter or digit"


@dataclass(frozen=True)
class LocationConfig:
    latitude: float = math.nan          # degrees north (south negative)
    longitude: float = math.nan         # degrees east (west negative)
    timezone: str = ""                  # IANA name; empty: the system's time zone

    def validate(self, file: str, needs_place: bool = False) -> None:
        """`needs_place`: the schedule has sun times (then latitude and longitude are due)."""
        f = file
        if not math.isnan(self.latitude) and not -90 <= self.latitude <= 90:
            raise ConfigError(f"latitude {self.latitude:g} is not on Earth", file=f,
                              field="location.latitude", fix="use -90..90 (north positive)")
        if not math.isnan(self.longitude) and not -180 <= self.longitude <= 180:
            raise ConfigError(f"longitude {self.longitude:g} is not on Earth", file=f,
                              field="location.longitude", fix="use -180..180 (east positive)")
        if needs_place and (math.isnan(self.latitude) or math.isnan(self.longitude)):
            raise ConfigError("sunrise/sunset times need the rig's place", file=f,
                              field="location",
                              fix="add [location] latitude = 52.52, longitude = 13.40, "
                                  'timezone = "Europe/Berlin"')
        if self.timezone:
            check_timezone(self.timezone, f, "location.timezone")


@dataclass(frozen=True)
class ScheduleEntry:
    on: str = ""                        # "HH:MM", "sunset", "sunset+20m", "sunrise-1h", ...
    off: str = ""                       # the first such time after `on` (may be the next day)
    days: tuple[str, ...] = ()          # of the `on` time: mon..sun, weekdays, weekends, daily
    dates: tuple[str, ...] = ()         # ["MM-DD", "MM-DD"] (or YYYY-MM-DD): inclusive range
    preset: str = ""                    # the look inside the window (cross-faded in)
    playlist: str = ""                  # or a playlist rotating inside the window

    def validate(self, file: str, fld: str) -> None:
        f = file
        for key in ("on", "off"):
            text = getattr(self, key)
            if not text:
                example = "sunset+20m" if key == "on" else "23:30"
                raise ConfigError(f"needs an {key} time", file=f, field=f"{fld}.{key}",
                                  fix=f'write e.g. {key} = "{example}"')
            if parse_time(text) is None:
                raise ConfigError(f"{text!r} is not a time", file=f, field=f"{fld}.{key}",
                                  fix='write "HH:MM", "sunrise", "sunset", "dawn", "dusk", or '
                                      'one of them with an offset such as "sunset+20m", '
                                      '"sunrise-1h30m"')
        if same_time(parse_time(self.on), parse_time(self.off)):
            raise ConfigError(f"on ({self.on!r}) and off ({self.off!r}) are the same time", file=f,
                              field=f"{fld}.off", fix="give the window a length")
        for j, d in enumerate(self.days):
            if day_names(d) is None:
                raise ConfigError(f"{d!r} is not a day", file=f, field=f"{fld}.days[{j}]",
                                  fix="use mon..sun (or monday..sunday), weekdays, "
                                      "weekends or daily")
        if self.dates:
            if len(self.dates) != 2 or any(parse_date(d) is None for d in self.dates):
                raise ConfigError(f"bad date range {list(self.dates)!r}", file=f,
                                  field=f"{fld}.dates",
                                  fix='write ["MM-DD", "MM-DD"] (inclusive; may run over New '
                                      'Year) or ["YYYY-MM-DD", "YYYY-MM-DD"]')
        if self.preset and self.playlist:
            raise ConfigError("both a preset and a playlist", file=f, field=f"{fld}.playlist",
                              fix="choose one")
        if self.preset and not NAME_RE.match(self.preset):
            raise ConfigError(f"{self.preset!r} is not a preset name", file=f,
                              field=f"{fld}.preset", fix=NAME_FIX)


@dataclass(frozen=True)
class PresetConfig:
    model: str = ""                     # empty: the config's model
    seed: int = -1                      # -1: the config's seed
    phase: float = 0.0                  # walk phase, in waypoints
    tempo: float = 0.0                  # 0: the config's walk.tempo
    master: float = -1.0                # the look's own level under the grand master; -1: 1
    palette: str = ""                   # a [palettes.NAME], or "" for none
    heads_still: bool = False
    music: dict = field(default_factory=dict)   # music settings (reserved for the music stage)

    def validate(self, file: str, fld: str) -> None:
        f = file
        if self.seed < -1:
            raise ConfigError("seed must be 0 or more", file=f, field=f"{fld}.seed",
                              fix="use a whole number from 0")
        if not phase_ok(self.phase):
            raise ConfigError(f"phase {self.phase!r} is not a finite number in range", file=f,
                              field=f"{fld}.phase", fix=PHASE_FIX)
        if self.tempo and not 0.01 <= self.tempo <= 100:
            raise ConfigError(f"tempo {self.tempo:g} is outside 0.01..100", file=f,
                              field=f"{fld}.tempo", fix="use 0.01..100")
        if self.master != -1.0 and not 0 <= self.master <= 1:
            raise ConfigError(f"master {self.master:g} is outside 0..1", file=f,
                              field=f"{fld}.master", fix="use 0..1")


@dataclass(frozen=True)
class PlaylistConfig:
    items: tuple[object, ...] = ()      # preset names, or { model = "...", seed = N } tables
    every: str = "15m"                  # "90s", "15m", "1h30m"
    fade_s: float = ranged(2.0, 0, 60, "use 0..60 seconds",        # cross-fade between items
                           "fade {value:g} s is outside {lo}..{hi}")

    def validate(self, file: str, fld: str) -> None:
        f = file
        every = parse_duration_s(self.every)
        if every is None or every < 10:
            raise ConfigError(f"{self.every!r} is not a duration of 10 s or more", file=f,
                              field=f"{fld}.every", fix='write e.g. "15m", "1h30m" or "90s"')
        check_ranges(self, f, fld)
        if not self.items:
            raise ConfigError("the playlist is empty", file=f, field=f"{fld}.items",
                              fix='list preset names, e.g. items = ["dusk", "aurora"], or '
                                  '{ model = "iae-glyphs", seed = 3 } tables')
        for j, item in enumerate(self.items):
            check_playlist_item(item, f, f"{fld}.items[{j}]")


@dataclass(frozen=True)
class PaletteConfig:
    hues: tuple[float, ...] = ()        # degrees: 0 red, 60 yellow, 120 green, 240 blue
    # each hue's band; colours outside move to the nearest
    width_deg: float = ranged(30.0, 1, 360, "use e.g. 30 (degrees of hue)",
                              "width {value:g} is outside {lo}..{hi}")
    kelvin: float = 0.0                 # > 0: warm white only, at this colour temperature
    white: bool = True                  # false: the white emitter stays off (hue palettes)

    def validate(self, file: str, fld: str) -> None:
        f = file
        if bool(self.hues) == (self.kelvin > 0):
            raise ConfigError("a palette needs hues or a kelvin temperature (not both)",
                              file=f, field=fld,
                              fix="write hues = [20, 40] (degrees) or kelvin = 2700")
        if self.kelvin and not 1000 <= self.kelvin <= 10000:
            raise ConfigError(f"{self.kelvin:g} K is outside 1000..10000", file=f,
                              field=f"{fld}.kelvin", fix="warm white is 2200..3000 K")
        check_ranges(self, f, fld)


@dataclass(frozen=True)
class LooksConfig:
    palette: str = ""                   # a [palettes.NAME] in use at start, "" for none
    heads_still: bool = False           # aim frozen, colour only (spares the motors)


@dataclass(frozen=True)
class OscConfig:
    enabled: bool = False
    host: str = "127.0.0.1"             # localhost; "0.0.0.0" for the LAN (then set allow)
    port: int = 9000
    allow: tuple[str, ...] = ()         # sender addresses or networks; empty: loopback only
    reply_port: int = 0                 # feedback goes to the sender's address at this port;
                                        # 0: back to the port it sent from

    def validate(self, file: str) -> None:
        f = file
        if not 1 <= self.port <= 65535 or not 0 <= self.reply_port <= 65535:
            raise ConfigError("port out of range", file=f,
                              field="osc.port" if not 1 <= self.port <= 65535
                              else "osc.reply_port",
                              fix="use 1..65535 (OSC's usual port is 9000)")
        check_allow_list(self.allow, f, "osc.allow", "control the show", "192.168.1.20")
        if self.enabled and not is_loopback(self.host) and not self.allow:
            raise ConfigError(f"OSC on {self.host} needs an allow-list", file=f, field="osc.allow",
                              fix='list the tablets, e.g. allow = ["192.168.1.20"], or host = '
                                  '"127.0.0.1"')


_NAMED_OUTSIDE = "{name} {value:g} is outside {lo}..{hi}"


@dataclass(frozen=True)
class TrimConfig:
    # 0..1: the dimmer never goes above this
    max_intensity: float = ranged(1.0, 0, 1, "use 0..1 (0.7 = 70 %)", _NAMED_OUTSIDE)
    colour_balance: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)   # R, G, B, W gains
    # dimmer curve: out = in ** gamma (2.2: gentle lows)
    dimmer_gamma: float = ranged(1.0, 0.2, 5, "use 1 (linear), 2.2 (gentle lows) or 0.2..5",
                                 _NAMED_OUTSIDE)

    def validate(self, file: str, fld: str) -> None:
        check_ranges(self, file, fld, ("max_intensity",))
        if any(not 0 <= g <= 1 for g in self.colour_balance):
            raise ConfigError(f"colour_balance {list(self.colour_balance)} is outside 0..1",
                              file=file, field=f"{fld}.colour_balance",
                              fix="give [red, green, blue, white] gains in 0..1, e.g. "
                                  "[1, 1, 0.8, 1] for a fixture that is too blue")
        check_ranges(self, file, fld, ("dimmer_gamma",))


# -- time specs ----------------------------------------------------------------------------
_CLOCK_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_SUN_RE = re.compile(r"^(sunrise|sunset|dawn|dusk)(?:([+-])((?:\d+(?:\.\d+)?[hms])+))?$")
_DUR_RE = re.compile(r"(\d+(?:\.\d+)?)([hms])")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0}


@dataclass(frozen=True)
class TimeSpec:
    """A parsed on/off time: a clock time (minutes after midnight) or a sun event + offset."""
    event: str              # "clock" or one of SUN_EVENTS
    minutes: int = 0        # clock: minutes after local midnight
    offset_s: float = 0.0   # sun events: seconds after (negative: before) the event
    text: str = ""

    def __str__(self) -> str:
        return self.text


REF_MINUTES = {"sunrise": 6 * 60, "dawn": 5 * 60 + 30, "sunset": 18 * 60, "dusk": 18 * 60 + 30}


def ref_minutes(spec: TimeSpec) -> float:
    """Where a time sits in a typical day (sunrise 06:00, sunset 18:00): decides, from the
    times as written, whether a window closes the same day or the next."""
    if spec.event == "clock":
        return spec.minutes
    return REF_MINUTES[spec.event] + spec.offset_s / 60.0


def parse_duration_s(text: str) -> float | None:
    """"15m", "1h30m", "90s", "1.5h" -> seconds; None if it is not a duration."""
    text = text.strip().lower().replace(" ", "")
    if not text or _DUR_RE.sub("", text):
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in _DUR_RE.findall(text))


def same_time(a: TimeSpec | None, b: TimeSpec | None) -> bool:
    """Whether two times are the same moment of every day ("9:00" and "09:00")."""
    return a is not None and b is not None and \
        (a.event, a.minutes, a.offset_s) == (b.event, b.minutes, b.offset_s)


def parse_time(text: str) -> TimeSpec | None:
    """"21:30", "sunset", "sunset+20m", "sunrise-1h" -> `TimeSpec`; None if not one."""
    t = text.strip().lower().replace(" ", "")
    m = _CLOCK_RE.match(t)
    if m:
        return TimeSpec("clock", int(m.group(1)) * 60 + int(m.group(2)), text=text.strip())
    m = _SUN_RE.match(t)
    if m:
        off = parse_duration_s(m.group(3)) if m.group(3) else 0.0
        assert off is not None
        return TimeSpec(m.group(1), offset_s=-off if m.group(2) == "-" else off,
                        text=text.strip())
    return None


def day_names(day: str) -> tuple[str, ...] | None:
    """A day or a group of days -> their short names; None if it is not one. A day is its
    name or a start of it of 3 letters or more ("mon", "tues", "Thursday"), never a word that
    merely starts like one ("monster")."""
    key = day.strip().lower()
    if key in DAY_GROUPS:
        return DAY_GROUPS[key]
    for short, full in zip(DAY_NAMES, FULL_DAY_NAMES, strict=True):
        if len(key) >= 3 and full.startswith(key):
            return (short,)
    return None


def expand_days(days: tuple[str, ...]) -> frozenset[int]:
    """Day names -> weekday numbers (0 = Monday); empty means every day."""
    out: set[int] = set()
    for d in days or ("daily",):
        names = day_names(d)
        if names is None:
            raise ValueError(f"{d!r} is not a day")
        out.update(DAY_NAMES.index(n) for n in names)
    return frozenset(out)


def parse_date(text: str) -> tuple[int | None, int, int] | None:
    """"12-24" -> (None, 12, 24); "2026-12-24" -> (2026, 12, 24); None if not a date that
    exists ("2027-02-29", "04-31"; "02-29" without a year is a leap day, which exists)."""
    import datetime as dt

    m = re.fullmatch(r"(?:(\d{4})-)?(\d{1,2})-(\d{1,2})", text.strip())
    if not m:
        return None
    year = int(m.group(1)) if m.group(1) else None
    month, day = int(m.group(2)), int(m.group(3))
    try:
        dt.date(2000 if year is None else year, month, day)     # 2000: a leap year
    except ValueError:
        return None
    if year is not None and year < 1:
        return None
    return year, month, day


def allowed_networks(allow: tuple[str, ...]) -> list[ipaddress.IPv4Network |
                                                       ipaddress.IPv6Network]:
    """The OSC allow-list as networks; empty -> loopback only."""
    if not allow:
        return [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    return [ipaddress.ip_network(a.strip(), strict=False) for a in allow]


def system_timezone() -> str:
    """The system's IANA time zone name (TZ, /etc/timezone, /etc/localtime), else "UTC"."""
    import os
    from pathlib import Path

    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and "/" in tz and not tz.startswith("/"):
        return tz
    try:
        name = Path("/etc/timezone").read_text(encoding="utf-8").strip()
        if name:
            return name
    except OSError:
        pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return "UTC"


# -- checks ----------------------------------------------------------------------------------
def validate_install(cfg: Any) -> None:
    """Cross-field checks of the installation sections (called by `config.validate`)."""
    f = cfg.path
    _validate_location(cfg, f)
    _validate_schedule(cfg, f)
    _validate_presets(cfg, f)
    _validate_playlists(cfg, f)
    _validate_palettes(cfg, f)
    _validate_osc(cfg.osc, f)
    _validate_trims(cfg, f)


def _validate_location(cfg: Any, f: str) -> None:
    loc = cfg.location
    uses_sun = any(
        (spec := parse_time(t)) is not None and spec.event != "clock"
        for e in cfg.schedule for t in (e.on, e.off))
    loc.validate(f, needs_place=uses_sun)


def _validate_schedule(cfg: Any, f: str) -> None:
    for i, e in enumerate(cfg.schedule, 1):          # counted from 1, as the tables are read
        fld = f"schedule[{i}]"
        e.validate(f, fld)
        if e.playlist and e.playlist not in cfg.playlists:
            raise ConfigError(f"no playlist {e.playlist!r}", file=f, field=f"{fld}.playlist",
                              fix=_known("playlists", cfg.playlists))


def _validate_presets(cfg: Any, f: str) -> None:
    for name, p in cfg.presets.items():
        fld = f"presets.{name}"
        if not NAME_RE.match(name):
            raise ConfigError(f"{name!r} is not a preset name", file=f,
                              field=f"presets.{name!r}", fix=NAME_FIX)   # repr: one line
        p.validate(f, fld)
        if p.palette and p.palette not in cfg.palettes:
            raise ConfigError(f"no palette {p.palette!r}", file=f, field=f"{fld}.palette",
                              fix=_known("palettes", cfg.palettes))


def _validate_playlists(cfg: Any, f: str) -> None:
    for name, pl in cfg.playlists.items():
        fld = f"playlists.{name}"
        pl.validate(f, fld)
    if cfg.playlist and cfg.playlist not in cfg.playlists:
        raise ConfigError(f"no playlist {cfg.playlist!r}", file=f, field="playlist",
                          fix=_known("playlists", cfg.playlists))


def _validate_palettes(cfg: Any, f: str) -> None:
    for name, pal in cfg.palettes.items():
        fld = f"palettes.{name}"
        if not NAME_RE.match(name):
            raise ConfigError(f"{name!r} is not a palette name", file=f,
                              field=f"palettes.{name!r}", fix=NAME_FIX)
        pal.validate(f, fld)
    if cfg.looks.palette and cfg.looks.palette not in cfg.palettes:
        raise ConfigError(f"no palette {cfg.looks.palette!r}", file=f, field="looks.palette",
                          fix=_known("palettes", cfg.palettes))


def _validate_osc(osc: Any, f: str) -> None:
    osc.validate(f)

def _validate_trims(cfg: Any, f: str) -> None:
    for i, fx in enumerate(cfg.fixtures, 1):
        fx.trim.validate(f, f"{fixture_label(i, fx.name)}.trim")


def check_timezone(name: str, file: str | None, fld: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}", file=file, field=fld,
                          fix='use an IANA name such as "Europe/Berlin" or "America/New_York"'
                              " (install the tzdata package if none is found)") from None


def check_playlist_item(item: object, file: str | None, fld: str) -> None:
    if isinstance(item, str):
        if not NAME_RE.match(item):
            raise ConfigError(f"{item!r} is not a preset name", file=file, field=fld,
                              fix=NAME_FIX)
        return
    if isinstance(item, dict):
        unknown = set(item) - {"model", "seed", "tempo", "palette"}
        seed = item.get("seed", 0)
        if unknown or not item or (isinstance(seed, bool) or not isinstance(seed, int)
                                   or seed < 0) or not isinstance(item.get("model", ""), str):
            raise ConfigError(f"bad playlist item {item!r}", file=file, field=fld,
                              fix='write { model = "iae-glyphs", seed = 3 } (model, seed, '
                                  'tempo, palette)')
        return
    raise ConfigError(f"bad playlist item {item!r}", file=file, field=fld,
                      fix='a preset name ("dusk") or { model = "iae-glyphs", seed = 3 }')


def _known(what: str, table: dict) -> str:
    return (f"known {what}: {', '.join(sorted(table))}" if table
            else f"define it as [{what}.NAME] first")
