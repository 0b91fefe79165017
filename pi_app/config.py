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
import stat
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from . import secrecy
from .config_rules import check_rules
from .errors import ConfigError, fixture_label
from .errors import shown as _show
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
from .mqtt_config import MqttConfig
from .outputs.ola import OlaConfig as OlaConfig
from .outputs.several import OutputEntry
from .outputs.uart import UartConfig as UartConfig
from .ranges import Range, check_ranges, ranged
from .scene import HELD_ATTRS
from .sync_config import SyncConfig

SCHEMA = 1
MIN_FPS = 1.0
MAX_FPS = 44.0          # DMX512 with 512 slots: 22.7 ms a frame on the wire
SLOTS = 512
MAX_FILE_BYTES = 1 << 20        # a rig config is a few KB; anything this big is a mistake
MAX_STRING = 4096               # longest string value (a path, a name)
MAX_UNIVERSE = 65535

# Safety ceilings (README "Safety"): a setting may make the safety stage stricter than these,
# never looser. The stop budget must fit in the unit's TimeoutStopSec (a test reads it).
WCAG_MAX_FLASHES_PER_S = 3.0     # WCAG 2.3.1 general and red flash threshold
WCAG_FLASH_DELTA = 0.1           # WCAG 2.3.1: a change of 10 % of the maximum luminance
MIN_FLASH_DELTA = 0.05           # below it the DMX rounding leaves the limiter no room
FASTEST_TRAVERSE_S = 3.0         # pan/tilt: never faster than the profile's range in 3 s
MAX_FADE_OUT_S = 30.0            # fade-out on stop
MAX_LIT_MOVE_DEG_PER_S = 40.0    # a lit head's aim, degrees/s: faster reads as a sweep
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
    # time from one latent waypoint to the next, at tempo 1
    seconds_per_waypoint: float = ranged(6.0, 0.1, 3600, "use 0.1..3600 seconds")
    tempo: float = ranged(1.0, 0.01, 100, "use 0.01..100")   # speed multiplier (2: twice as fast)
    loop_waypoints: int = 0             # 0: endless new waypoints; N: loop through N waypoints
    spread: float = ranged(1.0, 0.0, 10, "use 0..10")   # waypoint radius (1: the model's N(0, I))

    def validate(self, file: str) -> None:
        check_ranges(self, file, "walk")
        if self.loop_waypoints < 0 or self.loop_waypoints == 1:
            raise ConfigError("a loop needs at least 2 waypoints", file=file,
                              field="walk.loop_waypoints", fix="use 0 (endless) or 2 or more")


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


_ANY_RATE = Range(0, 3600, "use 0 or more")


@dataclass(frozen=True)
class SafetyConfig:
    """Every safety field: a setting may make the safety stage stricter, never looser."""
    master: float = ranged(1.0, 0, 1, "use 0..1")               # master dimmer 0..1
    fade_in_s: float = ranged(1.0, _ANY_RATE.lo, _ANY_RATE.hi, _ANY_RATE.fix)
    fade_out_s: float = ranged(
        1.0, 0, MAX_FADE_OUT_S,
        f"use 0..{MAX_FADE_OUT_S:g} s: a stop must end before systemd kills the daemon "
        f"(TimeoutStopSec, {STOP_BUDGET_S:g} s with parking and blackout)")
    # WCAG 2.3.1 general flash threshold; at most 3
    max_flashes_per_s: float = ranged(3.0, 0, WCAG_MAX_FLASHES_PER_S,
                                      "WCAG 2.3.1 allows at most 3 flashes a second: use 0..3")
    # luminance change that counts as half a flash; <= 0.1
    flash_delta: float = ranged(
        0.1, MIN_FLASH_DELTA, WCAG_FLASH_DELTA,
        f"WCAG 2.3.1 counts changes of 10 %; a larger step lets bigger flashes through: use "
        f"{MIN_FLASH_DELTA:g}..{WCAG_FLASH_DELTA:g} (smaller is stricter)")
    # 0: the profile default (its fastest allowed)
    pan_slew_deg_per_s: float = ranged(0.0, _ANY_RATE.lo, _ANY_RATE.hi, _ANY_RATE.fix)
    tilt_slew_deg_per_s: float = ranged(0.0, _ANY_RATE.lo, _ANY_RATE.hi, _ANY_RATE.fix)
    # 0: colour not rate-limited
    colour_slew_per_s: float = ranged(0.0, _ANY_RATE.lo, _ANY_RATE.hi, _ANY_RATE.fix)
    # how fast a lit head's aim may move (pan and tilt together), degrees/s; larger moves dark
    lit_move_deg_per_s: float = ranged(
        MAX_LIT_MOVE_DEG_PER_S, 1, MAX_LIT_MOVE_DEG_PER_S,
        f"use 1..{MAX_LIT_MOVE_DEG_PER_S:g} degrees a second (a faster lit head reads as a "
        "sweep; larger moves happen in the dark)")

    def replace_master(self, master: float) -> SafetyConfig:
        return dataclasses.replace(self, master=master)

    def validate(self, file: str) -> None:
        check_ranges(self, file, "safety", ("master", "fade_in_s", "pan_slew_deg_per_s",
                                            "tilt_slew_deg_per_s", "colour_slew_per_s",
                                            "fade_out_s", "max_flashes_per_s",
                                            "lit_move_deg_per_s"))
        if self.max_flashes_per_s <= 0:       # 0 would freeze every light change (safety.py)
            raise ConfigError("0 flashes a second would forbid any change of light", file=file,
                              field="safety.max_flashes_per_s",
                              fix="use a number above 0, up to 3")
        check_ranges(self, file, "safety", ("flash_delta",))


@dataclass(frozen=True)
class ControlConfig:
    socket: str = ""                    # empty: $RUNTIME_DIRECTORY or $XDG_RUNTIME_DIR
    enabled: bool = True

    def validate(self, file: str) -> None:
        if self.socket and len(os.fsencode(self.socket)) > 107:
            raise ConfigError("the socket path is longer than 107 bytes", file=file,
                              field="control.socket", fix="choose a shorter path")


@dataclass(frozen=True)
class PreviewConfig:
    web: bool = False
    host: str = "127.0.0.1"
    port: int = ranged(8044, 1, 65535, "use 1..65535, e.g. 8044", "port {value} is out of range")
    token: str = ""                     # empty: the daemon's own (`latentdmx web-token`)
    token_file: str = ""                # or a file holding it (pi_app/secrecy.py)

    def validate(self, file: str) -> None:
        check_ranges(self, file, "preview")
        if not self.host:
            raise ConfigError("no host", file=file, field="preview.host",
                              fix='use "127.0.0.1" (this machine) or "0.0.0.0" (the LAN, with '
                                  'a token)')
        if self.token:
            secrecy.check_token(self.token, file=file, field="preview.token_file"
                                if self.token_file else "preview.token")


@dataclass(frozen=True)
class AudioConfig:
    device: str = ""                    # live capture: "" none, "default", or a device name/number
    file: str = ""                      # a sound file played in real time (as `run --audio`)
    samplerate: int = 0                 # 0: the device's own

    def validate(self, file: str) -> None:
        if self.device and self.file:
            raise ConfigError("both a capture device and a file are set", file=file,
                              field="audio.file",
                              fix="keep one: device for live sound, file for a recording")
        if self.samplerate and not 8000 <= self.samplerate <= 192000:
            raise ConfigError(f"samplerate {self.samplerate} is not a sound card rate", file=file,
                              field="audio.samplerate",
                              fix="use 0 (the device's own) or e.g. 44100")


@dataclass(frozen=True)
class MusicConfig:
    beats_per_waypoint: int = 0         # a waypoint every N beats (0: whole bars, paced) ...
    align: str = "bar"                  # ... arriving on beat 1 of a bar ("bar") or any beat
    energy_to: str = "master"           # master | intensity | none
    energy_range: tuple[float, float] = (0.35, 1.0)   # light level at silence .. at the loudest
    # quieter than this (dBFS) ...
    silence_db: float = ranged(-50.0, -120, 0, "use a level in dBFS, e.g. -50")
    # ... for this long is silence: back to the free walk
    silence_s: float = ranged(2.0, 0.1, 60, "use 0.1..60 seconds")
    # how long the drift back to the free walk takes
    release_s: float = ranged(4.0, 0, 60, "use 0..60 seconds")
    bpm: float = 0.0                    # a fixed tempo; 0: follow the audio (or `tap`)
    min_bpm: float = 60.0               # the tempo range the tracker looks in
    max_bpm: float = 200.0
    # feel (live: `latentdmx feel`): accent depth, the light between accents, head travel
    excitement: float = ranged(0.8, 0, 1, "use 0 (no accents) .. 1 (deepest)")
    background: float = ranged(0.35, 0, 1, "use 0 (dark between accents) .. 1 (no dip)")
    movement_range: float = ranged(0.5, 0, 1, "use 0 (half the free walk's pace) .. 1 (twice)")

    def validate(self, file: str) -> None:
        f = file
        if not 0 <= self.beats_per_waypoint <= 64:
            raise ConfigError(f"{self.beats_per_waypoint} beats per waypoint", file=f,
                              field="music.beats_per_waypoint",
                              fix="use 0 (whole bars at the walk's pace) or 1..64, e.g. 4")
        if self.align not in ("bar", "beat"):
            raise ConfigError(f"unknown alignment {self.align!r}", file=f, field="music.align",
                              fix='use "bar" or "beat"')
        if self.energy_to not in ("master", "intensity", "none"):
            raise ConfigError(f"unknown energy target {self.energy_to!r}", file=f,
                              field="music.energy_to", fix='use "master", "intensity" or "none"')
        lo, hi = self.energy_range
        if not 0 <= lo <= hi <= 1:
            raise ConfigError(f"energy_range [{lo:g}, {hi:g}] is not inside 0..1", file=f,
                              field="music.energy_range",
                              fix="use [low, high], 0 <= low <= high <= 1")
        check_ranges(self, f, "music")
        if not 30 <= self.min_bpm < self.max_bpm <= 300:
            raise ConfigError(f"tempo range {self.min_bpm:g}..{self.max_bpm:g} BPM", file=f,
                              field="music.max_bpm", fix="use 30 <= min_bpm < max_bpm <= 300")
        if self.bpm and not 20 <= self.bpm <= 400:
            raise ConfigError(f"bpm {self.bpm:g} is out of range", file=f, field="music.bpm",
                              fix="use 0 (follow the music) or 20..400")


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
    universe: int = ranged(1, 0, MAX_UNIVERSE, "use an OLA universe number, e.g. 1",
                           "universe {value} is out of range")
    address: int = ranged(1, 1, SLOTS, "use 1..512, as on the fixture display",
                          "address {value} is not a DMX address")       # 1-based
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
    # the scene's held attributes (scene.HELD_ATTRS: zoom): { zoom = 0.5 } holds it at that
    # (0..1 of its channel's range), { zoom = [0.2, 0.8] } lets the show drive it within them
    held: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    schema: int = SCHEMA
    fps: float = 40.0
    seed: int = 0
    model: str = "nat-aurora"
    walk: WalkConfig = field(default_factory=WalkConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    outputs: tuple[OutputEntry, ...] = ()      # [[outputs]]: several (pi_app/outputs/several.py)
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


def _coerce(value, tp, file: str, fld: str):
    """`value` read from the TOML as type `tp` (a scalar, a table, a dataclass, a tuple)."""
    scalar = _SCALARS.get(tp)
    if scalar is not None:
        return scalar(value, file, fld)
    origin = typing.get_origin(tp)
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
        from_table = getattr(tp, "from_table", None)    # a table whose keys depend on it
        if from_table is not None:
            return from_table(value, file, fld, _build)
        return _build(tp, value, file, fld)
    if origin is tuple:
        return _coerce_tuple(value, typing.get_args(tp), file, fld)
    raise TypeError(f"unsupported config type {tp}")  # pragma: no cover - programming error


def _coerce_bool(value, file: str, fld: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{_show(value)} is not true/false", file=file, field=fld,
                          fix="write true or false")
    return value


def _coerce_int(value, file: str, fld: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{_show(value)} is not a whole number", file=file, field=fld,
                          fix="write a whole number, e.g. 1")
    return value


def _coerce_float(value, file: str, fld: str) -> float:
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


def _coerce_str(value, file: str, fld: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{_show(value)} is not a string", file=file, field=fld,
                          fix='write it in quotes, e.g. "name"')
    if "\0" in value or len(value) > MAX_STRING:
        raise ConfigError("has a NUL character" if "\0" in value else
                          f"is longer than {MAX_STRING} characters", file=file, field=fld,
                          fix="write a shorter, plain string")
    return value


_SCALARS: dict[object, typing.Callable[[typing.Any, str, str], typing.Any]] = {
    bool: _coerce_bool, int: _coerce_int, float: _coerce_float, str: _coerce_str}


def _coerce_tuple(value, args: tuple, file: str, fld: str) -> tuple:
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
    """Every section validates itself (its ranges are declared with its fields), then what
    ties the sections together: fixtures against their profiles, the installation, and what
    the config must mean (`check_rules`)."""
    f = cfg.path
    _validate_top(cfg)
    cfg.walk.validate(f)
    cfg.safety.validate(f)
    from .outputs import registry

    for name in registry.sections():                # every [output.<name>] section
        section = getattr(cfg.output, name)
        if hasattr(section, "validate"):
            section.validate(f)
    cfg.control.validate(f)
    cfg.preview.validate(f)
    cfg.audio.validate(f)
    cfg.music.validate(f)
    _validate_fixtures(cfg)
    validate_install(cfg)
    cfg.mqtt.validate(f)
    cfg.sync.validate(f)
    cfg.fpp.validate(f)
    cfg.rdm.validate(f)
    check_rules(cfg)                # what it must mean: one validation for check, run, reload
    return cfg


def _validate_top(cfg: Config) -> None:
    """The top-level keys: schema, fps, seed and the output's kind."""
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


def _validate_fixtures(cfg: Config) -> None:
    """Every fixture: its name, profile and mode, where it is patched (no two fixtures on
    one slot), its aim and keep-out boxes."""
    from .fixtures.profile import scan_profiles

    f = cfg.path
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
        prof = _profile_of(fx, profiles, broken, f, fld)
        mode = prof.mode(fx.mode)
        if mode is None:
            raise ConfigError(f"profile {prof.key!r} has no mode {fx.mode!r}", file=f,
                              field=f"{fld}.mode", fix=f"use one of: {', '.join(prof.mode_names)}")
        check_ranges(fx, f, fld, ("universe", "address"))
        _validate_slots(fx, mode.footprint, used, f, fld)
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
        _validate_keep_out(fx, f, fld)
        _validate_held(fx, mode, f, fld)


def _profile_of(fx: FixtureConfig, profiles: dict, broken: list, f: str, fld: str):
    """A fixture's profile, or one line saying what is wrong with its name or its file."""
    from .fixtures.profile import missing_profile_error

    prof = profiles.get(fx.profile)
    if prof is None:
        exc = missing_profile_error(fx.profile, profiles, broken)
        if exc.file:
            raise exc                  # the profile's own file is broken: say why
        raise ConfigError(exc.what, file=f, field=f"{fld}.profile", fix=exc.fix)
    return prof


def _validate_slots(fx: FixtureConfig, footprint: int, used: dict[tuple[int, int], str],
                    f: str, fld: str) -> None:
    """The fixture's channels fit in the universe and overlap no other fixture's (`used`:
    the slots taken so far, which this adds to)."""
    last = fx.address + footprint - 1
    if last > SLOTS:
        raise ConfigError(f"{footprint} channels from {fx.address} run past slot 512 "
                          f"(to {last})", file=f, field=f"{fld}.address",
                          fix=f"use an address of at most {SLOTS - footprint + 1}")
    for slot in range(fx.address, last + 1):
        other = used.get((fx.universe, slot))
        if other is not None:
            raise ConfigError(f"slot {slot} of universe {fx.universe} is also used by "
                              f"{other!r}", file=f, field=f"{fld}.address",
                              fix="move one of them so their channels do not overlap")
        used[(fx.universe, slot)] = fx.name


def _validate_held(fx: FixtureConfig, mode, f: str, fld: str) -> None:
    """``held = { zoom = 0.5 }`` or ``{ zoom = [lo, hi] }``: attributes of the scene's
    layout that the fixture's mode has, at a value or within limits in 0..1."""
    for name, v in fx.held.items():
        where = f"{fld}.held.{name}"
        if name not in HELD_ATTRS:
            raise ConfigError(f"{_show(name)} is not a held attribute", file=f, field=where,
                              fix=f"use one of: {', '.join(HELD_ATTRS) or 'none'}")
        if not mode.has(name):
            raise ConfigError(f"mode {mode.name!r} of {fx.profile!r} has no {name} channel",
                              file=f, field=where, fix="delete the line, or use a mode with it")
        numbers = v if isinstance(v, list) else [v]
        ok = len(numbers) == (2 if isinstance(v, list) else 1) and all(
            isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x <= 1
            for x in numbers) and numbers[0] <= numbers[-1]
        if not ok:
            raise ConfigError(f"{_show(v)} is not a value or limits in 0..1", file=f,
                              field=where, fix=f"write {name} = 0.5 (held there) or {name} = "
                                              "[0.2, 0.8] (driven within them)")


def _validate_keep_out(fx: FixtureConfig, f: str, fld: str) -> None:
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


def load_run_config(config_path, *, output=None, model=None, fps=None, seed=None):
    """The config with CLI overrides applied and validated (shared by run/render/identify)."""
    cfg = load_config(config_path)
    changes: dict[str, object] = {}
    if fps is not None:
        changes["fps"] = float(fps)
    if seed is not None:
        changes["seed"] = int(seed)
    if model is not None:
        changes["model"] = model
    if output is not None:
        changes["output"] = dataclasses.replace(cfg.output, kind=output)
        changes["outputs"] = ()          # --output: that one output for every universe
    if changes:
        cfg = cfg.replace(**changes)
        try:
            cfg = validate(cfg)
        except ConfigError as exc:   # a flag, not the file, is wrong: say so
            flag = {"fps": "--fps", "output.kind": "--output", "seed": "--seed",
                    "model": "--model"}.get(exc.field or "", exc.field)
            raise ConfigError(exc.what, file="command line", field=flag, fix=exc.fix) from None
    return cfg
