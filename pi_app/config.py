"""The rig config: one TOML file -> validated frozen dataclasses.

Every field has a default (see ``pi_app/data/default.toml`` and README "Configuration").
`load_config(None)` loads the bundled default rig. Every mistake is one `ConfigError`
naming the file, the field (``fixtures[2].address``) and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import reprlib
import stat
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from . import secrecy
from .config_rules import check_rules
from .errors import ConfigError
from .fpp_config import FppConfig
from .install_config import (
    LocationConfig,
    LooksConfig,
    OscConfig,
    PaletteConfig,
    PlaylistConfig,
    PresetConfig,
    ScheduleEntry,
    TrimConfig,
    validate_install,
)
from .mqtt.config import MqttConfig, validate_mqtt
from .outputs.ola import OlaConfig as OlaConfig
from .outputs.uart import UartConfig as UartConfig
from .sync.config import SyncConfig

SCHEMA = 1
MIN_FPS = 1.0
MAX_FPS = 44.0          # DMX512 with 512 slots: 22.7 ms a frame on the wire
SLOTS = 512
MAX_FILE_BYTES = 1 << 20        # a rig config is a few KB; anything this big is a mistake
MAX_STRING = 4096               # longest string value (a path, a name)
MAX_UNIVERSE = 65535
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 40

# Safety ceilings (README "Safety"): a setting may make the safety stage stricter than these,
# never looser. The stop budget must fit in the unit's TimeoutStopSec (a test reads it).
WCAG_MAX_FLASHES_PER_S = 3.0     # WCAG 2.3.1 general and red flash threshold
WCAG_FLASH_DELTA = 0.1           # WCAG 2.3.1: a change of 10 % of the maximum luminance
MIN_FLASH_DELTA = 0.05           # below it the DMX rounding leaves the limiter no room
FASTEST_TRAVERSE_S = 3.0         # pan/tilt: never faster than the profile's range in 3 s
MAX_FADE_OUT_S = 30.0            # fade-out on stop
PARK_GRACE_S = 5.0               # after the fade-out, at most this long for heads to park
STOP_MARGIN_S = 10.0             # the blackout frame, flushing the output, exiting
STOP_BUDGET_S = MAX_FADE_OUT_S + PARK_GRACE_S + STOP_MARGIN_S
# Keys that once existed: an old config gets one line saying what to do instead.
REMOVED_KEYS = {
    "safety.allow_strobe": ("removed: LatentDMX never drives a strobe, since a strobe is a "
                            "flash (WCAG 2.3.1: at most 3 a second)",
                            "delete the line; a fixture whose dimmer channel can strobe needs "
                            "its dimmer range restricted (see `latentdmx fixtures show`)"),
    "safety.strobe_max_hz": ("removed: no strobe is ever driven, so there is nothing to cap",
                             "delete the line"),
}


@dataclass(frozen=True)
class WalkConfig:
    seconds_per_waypoint: float = 6.0   # time from one latent waypoint to the next, at tempo 1
    tempo: float = 1.0                  # speed multiplier (2 = twice as fast)
    loop_waypoints: int = 0             # 0: endless new waypoints; N: loop through N waypoints
    spread: float = 1.0                 # waypoint radius scale (1 = the model's N(0, I))


# [output]: `kind` plus one section per output that has settings, from the output table
# (`pi_app.outputs.registry`): each section's dataclass lives in its output's own module.
# (OlaConfig and UartConfig stay importable from here.)


def _output_config_class() -> type:
    from .outputs import registry

    fields: list[tuple[str, type, typing.Any]] = [("kind", str, field(default="sim"))]
    fields += [(name, cls, field(default_factory=cls))
               for name, cls in registry.sections().items()]
    return dataclasses.make_dataclass("OutputConfig", fields, frozen=True,
                                      namespace={"__module__": __name__})


if typing.TYPE_CHECKING:
    @dataclass(frozen=True)
    class OutputConfig:
        kind: str = "sim"               # a row of pi_app.outputs.registry.KINDS

        def __getattr__(self, name: str) -> typing.Any: ...   # [output.<name>] sections
else:
    OutputConfig = _output_config_class()


@dataclass(frozen=True)
class SafetyConfig:
    master: float = 1.0                 # master dimmer 0..1
    fade_in_s: float = 1.0
    fade_out_s: float = 1.0
    max_flashes_per_s: float = 3.0      # WCAG 2.3.1 general flash threshold; at most 3
    flash_delta: float = 0.1            # luminance change that counts as half a flash; <= 0.1
    pan_slew_deg_per_s: float = 0.0     # 0: the profile default (its fastest allowed)
    tilt_slew_deg_per_s: float = 0.0
    colour_slew_per_s: float = 0.0      # 0: colour not rate-limited

    def replace_master(self, master: float) -> SafetyConfig:
        return dataclasses.replace(self, master=master)


@dataclass(frozen=True)
class ControlConfig:
    socket: str = ""                    # empty: $RUNTIME_DIRECTORY or $XDG_RUNTIME_DIR
    enabled: bool = True


@dataclass(frozen=True)
class PreviewConfig:
    web: bool = False
    host: str = "127.0.0.1"
    port: int = 8044
    token: str = ""                     # empty: the daemon's own (`latentdmx web-token`)
    token_file: str = ""                # or a file holding it (pi_app/secrecy.py)


@dataclass(frozen=True)
class AudioConfig:
    device: str = ""                    # live capture: "" none, "default", or a device name/number
    file: str = ""                      # a sound file played in real time (as `run --audio`)
    samplerate: int = 0                 # 0: the device's own


@dataclass(frozen=True)
class MusicConfig:
    beats_per_waypoint: int = 4         # a waypoint every N beats ...
    align: str = "bar"                  # ... arriving on beat 1 of a bar ("bar") or any beat
    energy_to: str = "master"           # master | intensity | none
    energy_range: tuple[float, float] = (0.35, 1.0)   # light level at silence .. at the loudest
    silence_db: float = -50.0           # quieter than this (dBFS) ...
    silence_s: float = 2.0              # ... for this long is silence: back to the free walk
    release_s: float = 4.0              # how long the drift back to the free walk takes
    bpm: float = 0.0                    # a fixed tempo; 0: follow the audio (or `tap`)
    min_bpm: float = 60.0               # the tempo range the tracker looks in
    max_bpm: float = 200.0


@dataclass(frozen=True)
class RdmConfig:
    """``[rdm]``: RDM sensors in `latentdmx status` (OLA output; `pi_app.rdm_sensors`)."""
    sensors: bool = False               # read the responders' sensors and lamp hours
    interval_s: float = 60.0            # how often (off the frame loop)

    def validate(self, file: str) -> None:
        if not 5.0 <= self.interval_s <= 86400.0:
            raise ConfigError(f"interval_s {self.interval_s:g} is out of range", file=file,
                              field="rdm.interval_s",
                              fix="read the sensors every 5 s to 86400 s (60 is usual)")


@dataclass(frozen=True)
class FixtureConfig:
    name: str = ""
    profile: str = ""
    mode: str = ""
    universe: int = 1
    address: int = 1                    # 1-based DMX start address
    position: tuple[float, float] = (0.5, 0.5)   # x, y in the rig, seen from the audience
    pan_limits_deg: tuple[float, float] = (0.0, 0.0)    # (0, 0): the profile's full range
    tilt_limits_deg: tuple[float, float] = (0.0, 0.0)
    invert_pan: bool = False
    invert_tilt: bool = False
    pan_offset_deg: float = 0.0
    tilt_offset_deg: float = 0.0
    park: tuple[float, float] = (0.5, 0.5)      # pan, tilt (0..1) taken slowly on stop
    # [[pan_lo, pan_hi, tilt_lo, tilt_hi], ...] in 0..1 (a bare `tuple` could not be parsed)
    keep_out: tuple[tuple[float, float, float, float], ...] = ()
    trim: TrimConfig = field(default_factory=TrimConfig)   # max intensity, colour, dimmer curve


@dataclass(frozen=True)
class Config:
    schema: int = SCHEMA
    fps: float = 40.0
    seed: int = 0
    model: str = "nat-aurora"
    walk: WalkConfig = field(default_factory=WalkConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    preview: PreviewConfig = field(default_factory=PreviewConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    music: MusicConfig = field(default_factory=MusicConfig)
    fixtures: tuple[FixtureConfig, ...] = ()
    # running an installation (pi_app/install_config.py)
    playlist: str = ""                  # a [playlists.NAME] to rotate from the start
    location: LocationConfig = field(default_factory=LocationConfig)
    schedule: tuple[ScheduleEntry, ...] = ()
    presets: dict[str, PresetConfig] = field(default_factory=dict)
    playlists: dict[str, PlaylistConfig] = field(default_factory=dict)
    palettes: dict[str, PaletteConfig] = field(default_factory=dict)
    looks: LooksConfig = field(default_factory=LooksConfig)
    osc: OscConfig = field(default_factory=OscConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)   # lockstep group (pi_app/sync/)
    fpp: FppConfig = field(default_factory=FppConfig)      # FPP MultiSync remote (pi_app/fpp.py)

    mqtt: MqttConfig = field(default_factory=MqttConfig)   # Home Assistant (pi_app/mqtt/)
    rdm: RdmConfig = field(default_factory=RdmConfig)      # RDM sensors in `status`
    path: str = "<default>"

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes)


def default_config_path() -> Path:
    return Path(__file__).parent / "data" / "default.toml"


# -- parsing -------------------------------------------------------------------------------
def _type_name(tp) -> str:
    return {int: "a whole number", float: "a number", bool: "true or false",
            str: "a string"}.get(tp, str(tp))


def _show(value) -> str:
    """A value for an error message: short, and safe for any depth or size."""
    return _REPR.repr(value)


def _coerce(value, tp, file: str, fld: str):
    origin = typing.get_origin(tp)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{_show(value)} is not true/false", file=file, field=fld,
                              fix="write true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{_show(value)} is not a whole number", file=file, field=fld,
                              fix="write a whole number, e.g. 1")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{_show(value)} is not a number", file=file, field=fld,
                              fix="write a number, e.g. 1.0")
        try:
            number = float(value)
        except OverflowError:               # a whole number too big for a float
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{_show(value)} is not a finite number", file=file, field=fld,
                              fix="write an ordinary number, e.g. 1.0")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{_show(value)} is not a string", file=file, field=fld,
                              fix='write it in quotes, e.g. "name"')
        if "\0" in value or len(value) > MAX_STRING:
            raise ConfigError("has a NUL character" if "\0" in value else
                              f"is longer than {MAX_STRING} characters", file=file, field=fld,
                              fix="write a shorter, plain string")
        return value
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError("expected a table", file=file, field=fld,
                              fix='write e.g. { "1" = 1 }')
        return dict(value)
    if tp is object:                    # anything TOML holds; validated by its user
        return value
    if origin is dict:                  # dict[str, Section]: named tables, [presets.NAME]
        if not isinstance(value, dict):
            raise ConfigError("expected a table", file=file, field=fld,
                              fix=f"write [{fld}.NAME] tables")
        val_tp = typing.get_args(tp)[1]
        return {str(k): _coerce(v, val_tp, file, f"{fld}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, file, fld)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{_show(value)} is not a list", file=file, field=fld,
                              fix="write a list in square brackets")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], file, f"{fld}[{i}]")
                         for i, v in enumerate(value, 1))
        if not args:     # loosely typed list (validated by its user)
            return tuple(tuple(v) if isinstance(v, list) else v for v in value)
        if len(value) != len(args):
            raise ConfigError(f"expected {len(args)} values, got {len(value)}", file=file,
                              field=fld, fix=f"write [{', '.join(_type_name(a) for a in args)}]")
        return tuple(_coerce(v, a, file, f"{fld}[{i}]") for i, (v, a) in
                     enumerate(zip(value, args, strict=True), 1))
    raise TypeError(f"unsupported config type {tp}")  # pragma: no cover - programming error


@functools.cache
def _fields_of(cls) -> tuple[dict, list[str]]:
    """A dataclass's resolved type hints and field names (once per class: resolving hints
    costs ~0.3 ms, which a rig of 10,000 pixel fixtures would pay 10,000 times)."""
    return (typing.get_type_hints(cls),
            [f.name for f in dataclasses.fields(cls) if f.name != "path"])


def _build(cls, table, file: str, prefix: str):
    if not isinstance(table, dict):
        raise ConfigError("expected a table", file=file, field=prefix or "(top level)",
                          fix=f"write [{prefix}] with its keys")
    hints, names = _fields_of(cls)
    kwargs = {}
    for key, value in table.items():
        fld = f"{prefix}.{key}" if prefix else key
        if key not in names and fld in REMOVED_KEYS:
            what, fix = REMOVED_KEYS[fld]
            raise ConfigError(what, file=file, field=fld, fix=fix)
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            fix = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(names)}"
            raise ConfigError("unknown key", file=file, field=fld, fix=fix)
        kwargs[key] = _coerce(value, hints[key], file, fld)
    return cls(**kwargs)


def _check_range(value: float, lo: float, hi: float, file: str, fld: str, fix: str) -> None:
    if not lo <= value <= hi:
        raise ConfigError(f"{value} is outside {lo}..{hi}", file=file, field=fld, fix=fix)


def validate(cfg: Config) -> Config:
    """Cross-field checks: fps, output kind, addresses, profiles, overlaps."""
    from .fixtures.profile import missing_profile_error, scan_profiles

    f = cfg.path
    if cfg.schema != SCHEMA:
        raise ConfigError(f"schema {cfg.schema} is not supported", file=f, field="schema",
                          fix=f"set schema = {SCHEMA} (see README 'Configuration')")
    if not MIN_FPS <= cfg.fps <= MAX_FPS:
        raise ConfigError(f"fps {cfg.fps:g} is above the DMX limit" if cfg.fps > MAX_FPS else
                          f"fps {cfg.fps:g} is below {MIN_FPS:g}", file=f, field="fps",
                          fix=f"use {MIN_FPS:g}..{MAX_FPS:g} (a 512-slot DMX frame takes "
                              "22.7 ms)")
    if not 0 <= cfg.seed < 2**63:
        raise ConfigError(f"seed {cfg.seed} is out of range", file=f, field="seed",
                          fix="use a whole number from 0, e.g. seed = 7")
    from .outputs import registry

    if cfg.output.kind not in registry.names():
        raise ConfigError(f"unknown output {cfg.output.kind!r}", file=f, field="output.kind",
                          fix=f"use one of: {', '.join(registry.names())}")
    w = cfg.walk
    _check_range(w.seconds_per_waypoint, 0.1, 3600, f, "walk.seconds_per_waypoint",
                 "use 0.1..3600 seconds")
    _check_range(w.tempo, 0.01, 100, f, "walk.tempo", "use 0.01..100")
    _check_range(w.spread, 0.0, 10, f, "walk.spread", "use 0..10")
    if w.loop_waypoints < 0 or w.loop_waypoints == 1:
        raise ConfigError("a loop needs at least 2 waypoints", file=f,
                          field="walk.loop_waypoints", fix="use 0 (endless) or 2 or more")
    _validate_safety(cfg)
    for name in registry.sections():                # every [output.<name>] section
        section = getattr(cfg.output, name)
        if hasattr(section, "validate"):
            section.validate(f)
    c = cfg.control
    if c.socket and len(os.fsencode(c.socket)) > 107:
        raise ConfigError("the socket path is longer than 107 bytes", file=f,
                          field="control.socket", fix="choose a shorter path")
    pv = cfg.preview
    if not 1 <= pv.port <= 65535:
        raise ConfigError(f"port {pv.port} is out of range", file=f, field="preview.port",
                          fix="use 1..65535, e.g. 8044")
    if not pv.host:
        raise ConfigError("no host", file=f, field="preview.host",
                          fix='use "127.0.0.1" (this machine) or "0.0.0.0" (the LAN, with a '
                              'token)')
    if pv.token:
        secrecy.check_token(pv.token, file=f, field="preview.token_file" if pv.token_file
                            else "preview.token")
    _validate_music(cfg)
    if not cfg.fixtures:
        raise ConfigError("no fixtures patched", file=f, field="fixtures",
                          fix="add at least one [[fixtures]] table")
    profiles, broken = scan_profiles()
    used: dict[tuple[int, int], str] = {}
    names: set[str] = set()
    for i, fx in enumerate(cfg.fixtures, 1):
        fld = fixture_label(i, fx.name)
        if not fx.name:
            raise ConfigError("fixture has no name", file=f, field=f"{fld}.name",
                              fix='give it a name, e.g. name = "head-1"')
        if fx.name in names:
            raise ConfigError(f"name {fx.name!r} is used twice", file=f, field=f"{fld}.name",
                              fix="give every fixture its own name")
        names.add(fx.name)
        prof = profiles.get(fx.profile)
        if prof is None:
            exc = missing_profile_error(fx.profile, profiles, broken)
            if exc.file:
                raise exc                  # the profile's own file is broken: say why
            raise ConfigError(exc.what, file=f, field=f"{fld}.profile", fix=exc.fix)
        mode = prof.mode(fx.mode)
        if mode is None:
            raise ConfigError(f"profile {prof.key!r} has no mode {fx.mode!r}", file=f,
                              field=f"{fld}.mode", fix=f"use one of: {', '.join(prof.mode_names)}")
        if not 0 <= fx.universe <= MAX_UNIVERSE:
            raise ConfigError(f"universe {fx.universe} is out of range", file=f,
                              field=f"{fld}.universe", fix="use an OLA universe number, e.g. 1")
        if not 1 <= fx.address <= SLOTS:
            raise ConfigError(f"address {fx.address} is not a DMX address", file=f,
                              field=f"{fld}.address", fix="use 1..512, as on the fixture display")
        last = fx.address + mode.footprint - 1
        if last > SLOTS:
            raise ConfigError(f"{mode.footprint} channels from {fx.address} run past slot 512 "
                              f"(to {last})", file=f, field=f"{fld}.address",
                              fix=f"use an address of at most {SLOTS - mode.footprint + 1}")
        for slot in range(fx.address, last + 1):
            other = used.get((fx.universe, slot))
            if other is not None:
                raise ConfigError(f"slot {slot} of universe {fx.universe} is also used by "
                                  f"{other!r}", file=f, field=f"{fld}.address",
                                  fix="move one of them so their channels do not overlap")
            used[(fx.universe, slot)] = fx.name
        for j, v in enumerate(fx.position, 1):
            _check_range(v, 0, 1, f, f"{fld}.position[{j}]", "use x, y in 0..1")
        for j, v in enumerate(fx.park, 1):
            _check_range(v, 0, 1, f, f"{fld}.park[{j}]", "use pan, tilt in 0..1")
        for lim, full in (("pan_limits_deg", prof.pan_deg), ("tilt_limits_deg", prof.tilt_deg)):
            lo, hi = getattr(fx, lim)
            if (lo, hi) != (0.0, 0.0) and not 0 <= lo < hi <= max(full, 0.0):
                raise ConfigError(f"limits [{lo:g}, {hi:g}] are not inside 0..{full:g}", file=f,
                                  field=f"{fld}.{lim}",
                                  fix=f"use [min, max] with 0 <= min < max <= {full:g}")
        _validate_aim(cfg, fx, prof, fld)
        for j, box in enumerate(fx.keep_out, 1):
            ok = (isinstance(box, tuple) and len(box) == 4 and
                  all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1
                      for v in box) and box[0] < box[1] and box[2] < box[3])
            if not ok:
                raise ConfigError(f"bad keep-out box {_show(box)}", file=f,
                                  field=f"{fld}.keep_out[{j}]",
                                  fix="write [pan_lo, pan_hi, tilt_lo, tilt_hi] in 0..1, lo < hi")
            if box[0] < fx.park[0] < box[1] and box[2] < fx.park[1] < box[3]:
                raise ConfigError(f"park position {list(fx.park)} is inside keep-out box "
                                  f"{list(box)}", file=f, field=f"{fld}.park",
                                  fix="park the head outside its keep-out boxes")
    validate_install(cfg)
    validate_mqtt(cfg.mqtt, f)
    cfg.sync.validate(f)
    cfg.fpp.validate(f)
    cfg.rdm.validate(f)
    check_rules(cfg)                # what it must mean: one validation for check, run, reload
    return cfg


def fixture_label(index: int, name: object = "") -> str:
    """How errors name a fixture: ``fixtures[3] ('par-1')``, counted from 1 as the
    [[fixtures]] tables are read (every list index in a config error counts from 1)."""
    return f"fixtures[{index}] ({_show(name)})" if isinstance(name, str) and name else \
        f"fixtures[{index}]"


def _validate_music(cfg: Config) -> None:
    f, m, a = cfg.path, cfg.music, cfg.audio
    if a.device and a.file:
        raise ConfigError("both a capture device and a file are set", file=f, field="audio.file",
                          fix="keep one: device for live sound, file for a recording")
    if a.samplerate and not 8000 <= a.samplerate <= 192000:
        raise ConfigError(f"samplerate {a.samplerate} is not a sound card rate", file=f,
                          field="audio.samplerate", fix="use 0 (the device's own) or e.g. 44100")
    if not 1 <= m.beats_per_waypoint <= 64:
        raise ConfigError(f"{m.beats_per_waypoint} beats per waypoint", file=f,
                          field="music.beats_per_waypoint", fix="use 1..64, e.g. 4 (one bar)")
    if m.align not in ("bar", "beat"):
        raise ConfigError(f"unknown alignment {m.align!r}", file=f, field="music.align",
                          fix='use "bar" or "beat"')
    if m.energy_to not in ("master", "intensity", "none"):
        raise ConfigError(f"unknown energy target {m.energy_to!r}", file=f,
                          field="music.energy_to", fix='use "master", "intensity" or "none"')
    lo, hi = m.energy_range
    if not 0 <= lo <= hi <= 1:
        raise ConfigError(f"energy_range [{lo:g}, {hi:g}] is not inside 0..1", file=f,
                          field="music.energy_range", fix="use [low, high], 0 <= low <= high <= 1")
    _check_range(m.silence_db, -120, 0, f, "music.silence_db", "use a level in dBFS, e.g. -50")
    _check_range(m.silence_s, 0.1, 60, f, "music.silence_s", "use 0.1..60 seconds")
    _check_range(m.release_s, 0, 60, f, "music.release_s", "use 0..60 seconds")
    if not 30 <= m.min_bpm < m.max_bpm <= 300:
        raise ConfigError(f"tempo range {m.min_bpm:g}..{m.max_bpm:g} BPM", file=f,
                          field="music.max_bpm", fix="use 30 <= min_bpm < max_bpm <= 300")
    if m.bpm and not 20 <= m.bpm <= 400:
        raise ConfigError(f"bpm {m.bpm:g} is out of range", file=f, field="music.bpm",
                          fix="use 0 (follow the music) or 20..400")


def _validate_safety(cfg: Config) -> None:
    """Every safety field: a setting may make the safety stage stricter, never looser."""
    f, s = cfg.path, cfg.safety
    _check_range(s.master, 0, 1, f, "safety.master", "use 0..1")
    for name in ("fade_in_s", "pan_slew_deg_per_s", "tilt_slew_deg_per_s",
                 "colour_slew_per_s"):
        _check_range(getattr(s, name), 0, 3600, f, f"safety.{name}", "use 0 or more")
    _check_range(s.fade_out_s, 0, MAX_FADE_OUT_S, f, "safety.fade_out_s",
                 f"use 0..{MAX_FADE_OUT_S:g} s: a stop must end before systemd kills the "
                 f"daemon (TimeoutStopSec, {STOP_BUDGET_S:g} s with parking and blackout)")
    _check_range(s.max_flashes_per_s, 0, WCAG_MAX_FLASHES_PER_S, f, "safety.max_flashes_per_s",
                 "WCAG 2.3.1 allows at most 3 flashes a second: use 0..3")
    if s.max_flashes_per_s <= 0:       # 0 would freeze every light change (safety.py)
        raise ConfigError("0 flashes a second would forbid any change of light", file=f,
                          field="safety.max_flashes_per_s", fix="use a number above 0, up to 3")
    _check_range(s.flash_delta, MIN_FLASH_DELTA, WCAG_FLASH_DELTA, f, "safety.flash_delta",
                 f"WCAG 2.3.1 counts changes of 10 %; a larger step lets bigger flashes "
                 f"through: use {MIN_FLASH_DELTA:g}..{WCAG_FLASH_DELTA:g} (smaller is stricter)")


def _validate_aim(cfg: Config, fx: FixtureConfig, prof, fld: str) -> None:
    """A fixture's offsets (finite, leaving room inside its limits) and the slew limits
    (never faster than its profile's full range in `FASTEST_TRAVERSE_S`)."""
    f, s = cfg.path, cfg.safety
    for axis, full in (("pan", prof.pan_deg), ("tilt", prof.tilt_deg)):
        off = getattr(fx, f"{axis}_offset_deg")
        lo, hi = getattr(fx, f"{axis}_limits_deg")
        span = (hi - lo) if (lo, hi) != (0.0, 0.0) else max(full, 0.0)
        if not math.isfinite(off) or (full <= 0 and off != 0) or (full > 0 and
                                                                   not -span < off < span):
            room = (f"use -{span:g} < {axis}_offset_deg < {span:g}: the head stays inside "
                    f"{axis}_limits_deg whatever the offset" if full > 0 else
                    f"remove it: profile {prof.key!r} has no {axis}")
            raise ConfigError(f"offset {off:g} is not a usable number of degrees", file=f,
                              field=f"{fld}.{axis}_offset_deg", fix=room)
        slew = getattr(s, f"{axis}_slew_deg_per_s")
        fastest = full / FASTEST_TRAVERSE_S
        if full > 0 and slew > fastest + 1e-9:
            raise ConfigError(f"{slew:g} deg/s is faster than {fx.name!r} may move ({prof.key}: "
                              f"its {full:g} deg in {FASTEST_TRAVERSE_S:g} s = {fastest:g} "
                              "deg/s)", file=f, field=f"safety.{axis}_slew_deg_per_s",
                              fix=f"use 0 (the profile's own limit) or at most {fastest:g}")


def parse_config(text: str, path: str) -> Config:
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML ({exc})", file=path, field="(syntax)",
                          fix="fix the TOML syntax at that line") from None
    except RecursionError:
        raise ConfigError("nested too deeply to read", file=path, field="(syntax)",
                          fix="a rig config nests a few levels at most: check the brackets"
                          ) from None
    except ValueError as exc:                  # e.g. an integer of thousands of digits
        raise ConfigError(f"not valid TOML ({str(exc).split(':')[0]})", file=path,
                          field="(syntax)", fix="write ordinary numbers") from None
    fixtures = table.pop("fixtures", [])
    if not isinstance(fixtures, list):
        raise ConfigError("fixtures must be an array of tables", file=path, field="fixtures",
                          fix="write each fixture as a [[fixtures]] table")
    cfg = secrecy.resolve_files(_build(Config, table, path, ""), path)
    fx = tuple(_build(FixtureConfig, t, path,
                      fixture_label(i, t.get("name") if isinstance(t, dict) else ""))
               for i, t in enumerate(fixtures, 1))
    return validate(dataclasses.replace(cfg, fixtures=fx, path=path))


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate a config file; None loads the bundled default rig.

    Only a regular file of at most `MAX_FILE_BYTES` is read (a FIFO or a device such as
    /dev/zero would block or never end). A `model` given as a relative path is taken from
    the config's folder, not from wherever the command runs."""
    p = default_config_path() if path is None else Path(path)
    try:
        text = _read_small_file(p)
    except FileNotFoundError:
        raise ConfigError("file not found", file=p, field="(file)",
                          fix="check the path, or leave out --config for the default rig") from None
    except IsADirectoryError:
        raise ConfigError("is a folder, not a file", file=p, field="(file)",
                          fix="give the path of a .toml file") from None
    except ConfigError:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"cannot read ({exc.__class__.__name__})", file=p, field="(file)",
                          fix="check the file's permissions and encoding (UTF-8)") from None
    cfg = parse_config(text, str(p) if path is not None else "<default config>")
    if path is not None:
        model = _model_beside(cfg.model, p.parent)
        if model != cfg.model:
            cfg = cfg.replace(model=model)
    return cfg


class _NotAFile(ConfigError):
    pass


def _read_small_file(p: Path) -> str:
    """The text of regular file `p`, opened without blocking and read with a size cap."""
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(p)
        if not stat.S_ISREG(st.st_mode):
            raise _NotAFile("is not a regular file (a device, a pipe or a socket)", file=p,
                            field="(file)", fix="give the path of a .toml file")
        if st.st_size > MAX_FILE_BYTES:
            raise _NotAFile(f"is {st.st_size} bytes; a rig config is a few KB", file=p,
                            field="(file)", fix="give the path of a .toml file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    return data.decode("utf-8").removeprefix("\ufeff")     # a BOM (Windows editors) is fine


def _model_beside(model: str, folder: Path) -> str:
    """A model named by a relative path, resolved from the config's folder.

    A bare name stays a name (bundled or user models first), unless only a folder of that
    name beside the config holds a model. Absolute paths and ``~`` stay as written."""
    if not model or model.startswith("~") or Path(model).is_absolute():
        return model
    beside = folder / model
    try:
        here = (beside / "model.json").is_file() or beside.name == "model.json"
    except (OSError, ValueError):
        return model
    if "/" in model or os.sep in model or model in (".", ".."):
        return str(beside)
    if here:
        from .errors import ModelError
        from .runtime import find_model

        try:
            find_model(model)                   # a bundled or user model of that name wins
            return model
        except (ModelError, OSError, ValueError):
            return str(beside)
    return model


