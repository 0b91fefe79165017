"""One control vocabulary: every command the running daemon takes, in one table.

Each entry (`Command`) names the command, its arguments in order with their validators, its
help, and what it does. The control socket (`Show.handle_control`), the CLI
(`pi_app/commands/control.py` builds one click command per entry), the web page
(``GET /vocabulary``; ``POST /control``) and OSC (``/latentdmx/<name> args...``) all read this
table, so a new command is one entry here: ``@command("name", Arg(...), help=...)`` over
the function that does it.

* **Arguments** are validated strictly, from each transport's own types: JSON (the socket,
  the web page: ``{"on": "false"}`` is refused, not taken as true), command-line text
  (``on/off``, ``yes/no``, ``1/0``; ``dim -1`` is "outside 0..1", not an unknown option) and
  OSC (a TouchOSC button's 1.0/0.0, a fader's float, ``T``/``F``). A mistake is one line
  naming the argument and the fix.
* **Live changes** (``live=True``) return a `Change` whose ``apply(t_s)`` the frame loop runs
  between frames, at show time ``t_s``; anything slow (loading a model, reading a preset)
  happens before, on the client's thread, so a client never stalls the clock. A group of
  daemons in lockstep can apply the same change at the same show time on every member.
* **The status record** (`Status`) is typed; one field per line, each with its label and how
  it is read from the show, so a new status field is one line.
* Every command a client gives that changes something is logged by the daemon in one line,
  with where it came from (socket, web, osc HOST:PORT); read-only queries are logged at debug.

Handlers receive the `Show` (duck-typed here; only `pi_app.show` builds one) and the
validated arguments, and return a `Change`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ControlError
from .health import achieved_fps, health_of, show_state
from .install_config import NAME_FIX, NAME_RE

# -- validators ---------------------------------------------------------------------------
_TRUE = ("on", "true", "yes", "1")
_FALSE = ("off", "false", "no", "0")


class Kind:
    """An argument's type and range; converts from JSON, command-line text and OSC."""

    label = "a value"

    def check(self, value: Any) -> Any:            # a value of the right Python type
        return value

    def from_json(self, value: Any) -> Any:
        return self.check(value)

    def from_text(self, text: str) -> Any:
        return self.check(text)

    def from_osc(self, value: Any) -> Any:
        return self.from_json(value)

    def describe(self) -> dict[str, Any]:
        return {"kind": type(self).__name__.lower()}

    def example(self) -> str:
        return "VALUE"


@dataclass(frozen=True)
class Number(Kind):
    lo: float
    hi: float

    @property
    def label(self) -> str:                        # type: ignore[override]
        return f"a number in {self.lo:g}..{self.hi:g}"

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value) or not self.lo <= value <= self.hi:
            raise ValueError(f"{value!r} is not {self.label}")
        return float(value)

    def from_text(self, text: str) -> float:
        try:
            return self.check(float(text))
        except ValueError:
            raise ValueError(f"{text} is not {self.label}") from None

    def from_osc(self, value: Any) -> float:
        if isinstance(value, float):           # OSC floats are 32-bit: 0.2 arrives as
            value = float(f"{value:.7g}")      # 0.2000000029..., so keep what was meant
        return self.check(value)

    def describe(self) -> dict[str, Any]:
        return {"kind": "number", "lo": self.lo, "hi": self.hi}

    def example(self) -> str:
        return f"{(self.lo + self.hi) / 2:g}" if self.hi < 10 else f"{max(self.lo, 1):g}"


@dataclass(frozen=True)
class Integer(Kind):
    lo: int = 0
    hi: int = 2**63 - 1

    @property
    def label(self) -> str:                        # type: ignore[override]
        return f"a whole number from {self.lo}" if self.hi >= 2**62 else \
            f"a whole number in {self.lo}..{self.hi}"

    def check(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or \
                not self.lo <= value <= self.hi:
            raise ValueError(f"{value!r} is not {self.label}")
        return value

    def from_text(self, text: str) -> int:
        if not re.fullmatch(r"[+-]?\d{1,19}", text.strip()):
            raise ValueError(f"{text} is not {self.label}")
        try:
            return self.check(int(text))
        except ValueError:
            raise ValueError(f"{text} is not {self.label}") from None

    def from_osc(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():    # a fader or a number box
            value = int(value)
        return self.check(value)

    def describe(self) -> dict[str, Any]:
        return {"kind": "integer", "lo": self.lo, "hi": self.hi}

    def example(self) -> str:
        return "7"


@dataclass(frozen=True)
class Flag(Kind):
    label = "on or off"

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true or false")
        return value

    def from_text(self, text: str) -> bool:
        t = text.strip().lower()
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
        raise ValueError(f"{text!r} is not on or off")

    def from_osc(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            return self.from_text(value)
        raise ValueError(f"{value!r} is not 1/0 or T/F")

    def describe(self) -> dict[str, Any]:
        return {"kind": "flag"}

    def example(self) -> str:
        return "on"


@dataclass(frozen=True)
class Text(Kind):
    max_len: int = 1024
    label = "a name"

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > self.max_len \
                or any(ord(c) < 32 for c in value):
            raise ValueError(f"{value!r} is not a name of 1..{self.max_len} characters")
        return value.strip()

    def describe(self) -> dict[str, Any]:
        return {"kind": "text", "max_len": self.max_len}


@dataclass(frozen=True)
class ModelName(Text):
    """A model: any name or folder from this machine's own clients; from the network only a
    model of the model folders, by name (`Command.check_origin`)."""


# Where a request may come from. Only these are this machine's own clients (the 0660 control
# socket, a claim's authorised peer); every other origin -- web, OSC, MQTT, whatever comes
# next -- is the network, and takes no paths.
LOCAL_ORIGINS = ("socket", "claim")


def is_local(origin: str) -> bool:
    return origin.split(" ", 1)[0] in LOCAL_ORIGINS


@dataclass(frozen=True)
class Name(Kind):
    """A preset, palette or playlist name (letters, digits, space, _ . -)."""
    label = "a name"

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not NAME_RE.match(value):
            raise ValueError(f"{value!r} is not a valid name ({NAME_FIX})")
        return value

    def describe(self) -> dict[str, Any]:
        return {"kind": "name"}

    def example(self) -> str:
        return "dusk"


@dataclass(frozen=True)
class Names(Kind):
    """Fixture names: a JSON list, or comma-separated text."""
    label = "names, comma-separated"

    def check(self, value: Any) -> list[str]:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        if not isinstance(value, list) or not 0 < len(value) <= 4096 or not all(
                isinstance(v, str) and 0 < len(v) <= 256 for v in value):
            raise ValueError(f"{value!r} is not a list of fixture names")
        return list(value)

    def describe(self) -> dict[str, Any]:
        return {"kind": "names"}

    def example(self) -> str:
        return "par-1"


@dataclass(frozen=True)
class Arg:
    name: str
    kind: Kind
    help: str
    required: bool = True
    default: Any = None
    suggest: str = ""       # what the web page offers: models, presets, palettes, playlists

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "help": self.help, "required": self.required,
                "default": self.default, "suggest": self.suggest, **self.kind.describe()}


# -- commands -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """A handler's answer: the reply, and for a live change what the frame loop applies."""
    result: dict[str, Any]
    apply: Callable[[float], None] | None = None      # called with the show time t_s


Handler = Callable[[Any, dict[str, Any]], Change]


@dataclass(frozen=True)
class Command:
    name: str                   # "dim", "preset/recall" (CLI: `latentdmx preset recall`)
    args: tuple[Arg, ...]
    help: str                   # first line: the summary; the rest: details
    run: Handler
    live: bool = False          # a live change of the show, applied at a show time
    group: bool = True          # live: in a lockstep group, for every member (pi_app/sync)
    reads: bool = False         # read-only: not logged, safe to poll
    state: str = ""             # the status field holding its current value (OSC feedback)
    cli: bool = True            # a `latentdmx` command
    web: bool = True            # offered by the web page's POST /control
    show_as: str = "short"      # how the CLI prints the reply: short, table, presets

    @property
    def summary(self) -> str:
        return self.help.strip().splitlines()[0]

    def parse(self, raw: dict[str, Any], source: str = "json") -> dict[str, Any]:
        """Validate `raw` (named arguments, JSON or OSC types) -> {name: value}."""
        known = {a.name for a in self.args}
        extra = sorted(set(raw) - known)
        if extra:
            raise ControlError(f"unknown argument {extra[0]!r}", field=self.name,
                               fix=f"{self.name} takes {self.usage() or 'no arguments'}")
        out: dict[str, Any] = {}
        for a in self.args:
            if a.name not in raw or raw[a.name] is None:
                if a.required:
                    raise ControlError(f"needs {a.name.upper()} ({a.kind.label})",
                                       field=self.name, fix=self.example())
                if a.default is not None:
                    out[a.name] = a.default
                continue
            convert = a.kind.from_osc if source == "osc" else a.kind.from_json
            out[a.name] = self._convert(a, convert, raw[a.name])
        return out

    def check_origin(self, values: dict[str, Any], origin: str) -> None:
        """Requests from the network (`is_local`) name models of the model folders only: a
        path, even to a model, is refused (it could load anything a local account planted)."""
        if is_local(origin):
            return
        for a in self.args:
            if isinstance(a.kind, ModelName) and a.name in values:
                from .runtime import find_model

                find_model(values[a.name], named_only=True)

    def parse_text(self, values: list[str]) -> dict[str, Any]:
        """Command-line arguments in order -> {name: value} (only those given)."""
        if len(values) > len(self.args):
            raise ControlError(f"too many arguments ({' '.join(values)})", field=self.name,
                               fix=self.example())
        out = {}
        for a, text in zip(self.args, values, strict=False):
            out[a.name] = self._convert(a, a.kind.from_text, text)
        missing = [a for a in self.args[len(values):] if a.required]
        if missing:
            raise ControlError(f"needs {missing[0].name.upper()} ({missing[0].kind.label})",
                               field=self.name, fix=self.example())
        return out

    def parse_osc(self, values: list[Any]) -> dict[str, Any]:
        """OSC message arguments in order -> {name: value}."""
        if len(values) > len(self.args):
            raise ControlError(f"too many arguments ({len(values)})", field=self.name,
                               fix=self.example())
        return self.parse({a.name: v for a, v in zip(self.args, values, strict=False)},
                          source="osc")

    def _convert(self, a: Arg, convert: Callable[[Any], Any], value: Any) -> Any:
        try:
            return convert(value)
        except ValueError as exc:
            raise ControlError(f"{a.name}: {exc}", field=self.name,
                               fix=self.example()) from None

    def usage(self) -> str:
        return " ".join(a.name.upper() if a.required else f"[{a.name.upper()}]"
                        for a in self.args)

    def example(self) -> str:
        words = ["latentdmx", *self.name.split("/")]
        words += [a.kind.example() for a in self.args if a.required]
        return "e.g. `" + " ".join(words) + "`"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "help": self.help.strip(), "summary": self.summary,
                "args": [a.describe() for a in self.args], "live": self.live,
                "reads": self.reads, "state": self.state}


COMMANDS: dict[str, Command] = {}


def command(name: str, *args: Arg, help: str, **flags: Any) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of command `name`."""
    def register(fn: Handler) -> Handler:
        if name in COMMANDS:
            raise ValueError(f"command {name!r} registered twice")
        COMMANDS[name] = Command(name, tuple(args), help, fn, **flags)
        return fn
    return register


def lookup(name: object) -> Command:
    """The command called `name` ("preset/recall"; "preset recall" and "preset.recall" too)."""
    key = re.sub(r"[ .]+", "/", name.strip().lower()) if isinstance(name, str) else ""
    cmd = COMMANDS.get(key)
    if cmd is None:
        raise ControlError(f"unknown command {name!r}", field="cmd",
                           fix="use one of: " + ", ".join(COMMANDS))
    return cmd


def args_text(args: object) -> str:
    """``level=0.5 name='dusk'`` for the log (one line, bounded)."""
    if not isinstance(args, dict) or not args:
        return ""
    text = " ".join(f"{k}={v!r}" for k, v in args.items())
    return " ".join(text.split())[:200]


# -- the status record -------------------------------------------------------------------
def stat(label: str, read: Callable[[Any], Any]) -> dict[str, Any]:
    """A status field's metadata: its label for `latentdmx status`, how it is read."""
    return {"label": label, "read": read}


STATES = {
    "playing": "playing",
    "paused": "paused: the look holds",
    "blackout": "blacked out: `resume` or `blackout off` brings the light back",
    "dark": "dark by the schedule: heads parked, no frames computed",
    "fading": "fading out: the schedule's window closed",
    "stopping": "stopping: fading out",
    "identify": "identifying fixtures",
}


@dataclass(frozen=True)
class Status:
    """What `latentdmx status`, the web page, `watch` and OSC feedback show. One line each:
    ``name: type = field(metadata=stat("label", read))`` (`read` takes the show, on any thread)."""
    state: str = field(metadata=stat("state", show_state))     # one of `STATES`
    model: str = field(metadata=stat("model", lambda s: s.pipeline.model.info.name))
    output: str = field(metadata=stat("output", lambda s: s.output.name))
    output_health: dict = field(metadata=stat("output health", lambda s: s.output_health()))
    fps: float = field(metadata=stat("fps target", lambda s: s.fps))
    fps_achieved: float | None = field(metadata=stat("fps achieved", achieved_fps))
    late_frames: int = field(metadata=stat("late frames", lambda s: s.late_frames()))
    frames: int = field(metadata=stat("frames", lambda s: s.frames_out))
    uptime_s: float = field(metadata=stat("uptime", lambda s: s.uptime_s()))
    master: float = field(metadata=stat("master", lambda s: s.pipeline.safety.master))
    level: float = field(metadata=stat("preset level", lambda s: s.pipeline.safety.level))
    paused: bool = field(metadata=stat("paused", lambda s: s.pipeline.paused))
    blackout: bool = field(metadata=stat("blackout", lambda s: s.pipeline.blacked_out))
    seed: int = field(metadata=stat("seed", lambda s: s.pipeline.seed))
    tempo: float = field(metadata=stat("tempo", lambda s: s.pipeline.tempo))
    phase: float = field(metadata=stat("phase", lambda s: round(s.pipeline.phase, 3)))
    preset: str = field(metadata=stat("preset", lambda s: s.director.preset))
    playlist: str = field(metadata=stat("playlist", lambda s: s.director.playlist_text()))
    palette: str = field(metadata=stat("palette", lambda s: s.pipeline.looks.palette_name))
    heads_still: bool = field(metadata=stat("heads still", lambda s: s.pipeline.looks.heads_still))
    schedule: str = field(metadata=stat("schedule", lambda s: s.director.schedule_text()))
    next_event: str = field(metadata=stat("next event", lambda s: s.director.next_event_text()))
    family: str = field(metadata=stat("family", lambda s: s.pipeline.model.info.family))
    fixtures: list = field(metadata=stat("fixtures", lambda s: s.pipeline.fixture_names()))
    universes: list = field(metadata=stat("universes", lambda s: list(s.pipeline.patch.universes)))
    # music (pi_app/music/drive.py): off | silent | searching | locked; where the beat is
    music: str = field(metadata=stat("music", lambda s: s.music.status()["music"]))
    music_source: str = field(metadata=stat("tempo from",
                                            lambda s: s.music.status()["music_source"]))
    bpm: float = field(metadata=stat("bpm", lambda s: s.music.status()["bpm"]))
    beat_phase: float = field(metadata=stat("beat phase",
                                            lambda s: s.music.status()["beat_phase"]))
    bar_beat: int = field(metadata=stat("beat of bar", lambda s: s.music.status()["bar_beat"]))
    energy: float = field(metadata=stat("energy", lambda s: s.music.status()["energy"]))
    audio: str = field(metadata=stat("audio", lambda s: s.music.status()["audio"]))
    excitement: float = field(metadata=stat("excitement", lambda s: s.music.cfg.excitement))
    background: float = field(metadata=stat("background", lambda s: s.music.cfg.background))
    movement_range: float = field(metadata=stat("movement",
                                                lambda s: s.music.cfg.movement_range))
    # a lockstep group (pi_app/sync/group.py): the group, its members as last heard, the clock
    group: str = field(metadata=stat("group", lambda s: s.lockstep.group_text()
                                     if s.lockstep else "off (no [sync] group)"))
    members: list = field(metadata=stat("members", lambda s: s.lockstep.members_text()
                                        if s.lockstep else []))
    clock: str = field(metadata=stat("clock", lambda s: s.lockstep.clock_text()
                                     if s.lockstep else ""))
    frame_index: int = field(metadata=stat("frame index", lambda s: s.clock.frame - 1
                                           if s.clock else 0))
    config: str = field(metadata=stat("config", lambda s: str(s.config.path)))
    # [rdm] sensors = true (pi_app/rdm_sensors.py): what the responders measure, read off the loop
    sensors: list = field(metadata=stat("sensors", lambda s: s.sensors.lines()
                                        if getattr(s, "sensors", None) else []))

    @classmethod
    def of(cls, show: Any) -> Status:
        return cls(**{f.name: f.metadata["read"](show) for f in fields(cls)})

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @staticmethod
    def labels() -> tuple[tuple[str, str], ...]:
        return tuple((f.name, f.metadata["label"]) for f in fields(Status))


# -- the commands --------------------------------------------------------------------------
def _set(obj: Any, attr: str, value: Any) -> Callable[[float], None]:
    return lambda t_s: setattr(obj, attr, value)


@command("status", help="Show what the running daemon is doing: playing, paused, blacked out "
         "or dark by the schedule; model, fps, late frames, output, master, preset, schedule "
         "and the next event.", reads=True, show_as="table")
def _status(show: Any, a: dict[str, Any]) -> Change:
    return Change(show.status_snapshot)


@command("health", help="The daemon's health: frames sent and late, frame work p50/p99, "
         "output errors, the flash limiter's interventions, the group's members and clock "
         "offset, the audio lock, memory, uptime, CPU temperature and the config's hash (what "
         "`GET /metrics` and the MQTT sensors show).", reads=True, show_as="table")
def _health(show: Any, a: dict[str, Any]) -> Change:
    return Change(health_of(show))


@command("scene", help="The rig's live state, decoded from the last frame (for `watch`).",
         reads=True, cli=False, web=False)
def _scene(show: Any, a: dict[str, Any]) -> Change:
    from .decode import live_state  # NumPy: not on the command line's import path

    return Change(live_state(show))


@command("dim", Arg("level", Number(0.0, 1.0), "0 = dark, 1 = full"),
         help="Set the master dimmer to LEVEL (0 = dark, 1 = full).\n\nA grand master: "
              "it stays where you put it through preset recalls, playlist steps and the "
              "schedule (a preset's own level multiplies under it). The change goes "
              "through the flash limiter, so a big step fades over up to ~2 s.",
         live=True, state="master")
def _dim(show: Any, a: dict[str, Any]) -> Change:
    return Change({"master": a["level"]}, _set(show.pipeline.safety, "master", a["level"]))


@command("pause", help="Hold the current look (the walk stops; the lights stay as they are).",
         live=True, state="paused")
def _pause(show: Any, a: dict[str, Any]) -> Change:
    p = show.pipeline
    return Change({"paused": True}, lambda t_s: p.set_paused(True, t_s))


@command("resume", help="Carry on walking after `pause` (or after `blackout`).", live=True)
def _resume(show: Any, a: dict[str, Any]) -> Change:
    p = show.pipeline

    def apply(t_s: float) -> None:
        p.set_paused(False, t_s)
        p.set_blackout(False, t_s)
    return Change({"paused": False, "blackout": False}, apply)


@command("blackout", Arg("on", Flag(), "on or off", required=False, default=True),
         help="Take the lights dark (intensity and colour to 0; the walk and the heads hold, "
              "like pause); `resume` or `blackout off` ends it.\n\nThe lights go dark "
              "through the flash limiter (within ~2 s from full), so toggling blackout can "
              "never make a strobe.",
         live=True, state="blackout")
def _blackout(show: Any, a: dict[str, Any]) -> Change:
    p = show.pipeline
    return Change({"blackout": a["on"]}, lambda t_s: p.set_blackout(a["on"], t_s))


@command("seed", Arg("seed", Integer(0), "the walk's seed: the same seed plays the same show"),
         help="Jump to a new walk, seeded with SEED (the same seed gives the same show).",
         live=True, state="seed")
def _seed(show: Any, a: dict[str, Any]) -> Change:
    p = show.pipeline
    p.prepare_walk(p.model, a["seed"], 0.0)          # the new walk, made on this thread
    return Change({"seed": a["seed"]}, lambda t_s: p.set_seed(a["seed"], t_s))


@command("tempo", Arg("tempo", Number(0.01, 100.0), "speed multiplier: 0.5 = half, 2 = double"),
         help="Walk TEMPO times as fast as configured (0.5 = half speed, 2 = double).",
         live=True, state="tempo")
def _tempo(show: Any, a: dict[str, Any]) -> Change:
    p = show.pipeline
    return Change({"tempo": a["tempo"]}, lambda t_s: p.set_tempo(a["tempo"], t_s))


@command("tap", help="Tap tempo: send one on every beat; two or more set the tempo, the last "
         "one is beat 1.\n\nThe tempo is the median of the last 8 intervals; a single tap "
         "later re-aligns beat 1 at the same tempo; a pause of more than 2 s starts afresh. "
         "The time the tap arrives is the beat, so it is taken at once (not between frames). "
         "`latentdmx tap` sends one per Enter; `bpm 0` follows the audio again.")
def _tap(show: Any, a: dict[str, Any]) -> Change:
    import time

    clock = show.clock
    t_tap = time.monotonic() - clock.start_s if clock is not None else 0.0
    return Change(show.music.tap(t_tap))


@command("bpm", Arg("bpm", Number(0.0, 400.0), "beats per minute; 0 = follow the music"),
         help="Fix the tempo at BPM from now (beat 1 now); `bpm 0` follows the music (the "
              "audio, or taps) again.", live=True, state="bpm")
def _bpm(show: Any, a: dict[str, Any]) -> Change:
    bpm = a["bpm"]
    if 0 < bpm < 20:
        raise ControlError("bpm must be 0 (follow the music) or 20..400", field="bpm",
                           fix="e.g. `latentdmx bpm 128`, `latentdmx bpm 0`")
    music = show.music
    return Change({"bpm": bpm or "follow the music"}, lambda t_s: music.set_bpm(bpm, t_s))


def _feel(show: Any, field_name: str, value: float) -> Change:
    music = show.music
    return Change({field_name: value}, lambda t_s: music.set_feel(**{field_name: value}))


@command("feel/excitement", Arg("level", Number(0.0, 1.0), "0 = no accents, 1 = deepest"),
         help="How much the beat shows: the depth of the light's accents on the beat (0..1)."
              "\n\nThe accents always stay within the flash limit, so at 1 they are as deep as "
              "the limiter lets through at the tempo.", live=True, state="excitement")
def _excitement(show: Any, a: dict[str, Any]) -> Change:
    return _feel(show, "excitement", a["level"])


@command("feel/background", Arg("level", Number(0.0, 1.0), "0 = dark, 1 = the show's own"),
         help="The light between the accents, as a share of the show's own light (0..1).",
         live=True, state="background")
def _background(show: Any, a: dict[str, Any]) -> Change:
    return _feel(show, "background", a["level"])


@command("feel/movement", Arg("level", Number(0.0, 1.0), "0 = half the walk's pace, 1 = twice"),
         help="How far the heads travel per bar while the music leads (0..1; 0.5 = the free "
              "walk's pace, in whole bars).", live=True, state="movement_range")
def _movement(show: Any, a: dict[str, Any]) -> Change:
    return _feel(show, "movement_range", a["level"])


@command("model", Arg("name", ModelName(), "a bundled or user model name, or a model folder "
                      "(a folder only from this machine: the CLI)", suggest="models"),
         help="Swap to model NAME (bundled name, user model or path) with a cross-fade.",
         live=True, state="model")
def _model(show: Any, a: dict[str, Any]) -> Change:
    from .runtime import MAX_MODEL_SHARE, load_model

    model = load_model(a["name"], frame_budget_s=MAX_MODEL_SHARE / show.fps)   # client's thread
    show.pipeline.check_model(model)              # and what could fail on the loop is tried
    p = show.pipeline                             # the new walk, made here (at its phase
    p.prepare_walk(model, p.seed, p.line.at(p._t + 1.0 / p.fps))   # a frame from now)
    d = show.director
    return Change({"model": model.info.name},
                  lambda t_s: d.set_model(model, a["name"], t_s))


@command("palette", Arg("name", Text(64), "a [palettes.NAME] of the config, or none",
                        suggest="palettes"),
         help="Keep the show inside palette NAME (hues, or warm white); `palette none` lifts "
              "it.", live=True, state="palette")
def _palette(show: Any, a: dict[str, Any]) -> Change:
    looks = show.pipeline.looks
    name = "" if a["name"].lower() == "none" else a["name"]
    if name and name not in looks.palettes:
        known = ", ".join(sorted(looks.palettes)) or "none defined"
        raise ControlError(f"no palette {name!r}", field="palette",
                           fix=f"known palettes: {known} (define [palettes.NAME] in the "
                               "config)")
    return Change({"palette": name}, lambda t_s: looks.set_palette(name))


@command("still", Arg("on", Flag(), "on or off", required=False, default=True),
         help="Heads still: freeze pan and tilt where they are and play colour only (spares "
              "the motors); `still off` lets them move again.", live=True, state="heads_still")
def _still(show: Any, a: dict[str, Any]) -> Change:
    p = show.pipeline
    return Change({"heads_still": a["on"]},
                  lambda t_s: p.looks.set_heads_still(a["on"], p.still_aim(t_s)))


@command("preset/save", Arg("name", Name(), "the preset's name", suggest="presets"),
         help="Save the current look as preset NAME: model, seed, walk phase, tempo, level, "
              "palette, heads still.\n\nThe level is the look's own (1 unless a recalled "
              "preset set another), never the master dimmer, which stays the operator's. "
              "Saved in the state folder ($STATE_DIRECTORY under systemd), atomically: a "
              "power cut leaves the old preset or the new one whole.")
def _preset_save(show: Any, a: dict[str, Any]) -> Change:
    preset = show.director.capture(a["name"])
    path = show.presets.save(preset)
    return Change({"saved": preset.name, "file": str(path)})


@command("preset/recall", Arg("name", Name(), "the preset to play", suggest="presets"),
         Arg("fade_s", Number(0.0, 60.0), "cross-fade seconds (default 2)", required=False),
         help="Recall preset NAME with a cross-fade of FADE_S seconds (default 2).",
         live=True, state="preset")
def _preset_recall(show: Any, a: dict[str, Any]) -> Change:
    d = show.director
    preset, model = d.prepare_recall(a["name"])     # reads and loads on the client's thread
    show.pipeline.prepare_walk(model, preset.seed, preset.phase)    # and makes its walk
    fade_s = a.get("fade_s", d.default_fade_s)
    return Change({"preset": preset.name, "model": model.info.name, "fade_s": fade_s},
                  lambda t_s: d.recall(preset, model, t_s, fade_s))


@command("preset/list", help="List the presets: saved ones and those in the config.",
         reads=True, show_as="presets")
def _preset_list(show: Any, a: dict[str, Any]) -> Change:
    return Change({"presets": [p.to_json() | {"source": p.source}
                               for p in show.presets.list()],
                   "folder": str(show.presets.folder)})


@command("preset/delete", Arg("name", Name(), "the saved preset to delete", suggest="presets"),
         help="Delete saved preset NAME (presets written in the config stay).")
def _preset_delete(show: Any, a: dict[str, Any]) -> Change:
    show.presets.delete(a["name"])
    return Change({"deleted": a["name"]})


@command("playlist/start", Arg("name", Name(), "a [playlists.NAME] of the config",
                               suggest="playlists"),
         help="Start playlist NAME: its items rotate every N minutes (as configured).",
         live=True, state="playlist")
def _playlist_start(show: Any, a: dict[str, Any]) -> Change:
    d = show.director
    d.check_playlist(a["name"])
    return Change({"playlist": a["name"]}, lambda t_s: d.start_playlist(a["name"], t_s))


@command("playlist/stop", help="Stop rotating; the current look stays.", live=True)
def _playlist_stop(show: Any, a: dict[str, Any]) -> Change:
    d = show.director
    return Change({"playlist": ""}, lambda t_s: d.stop_playlist())


@command("playlist/next", help="Skip to the playlist's next item now.", live=True)
def _playlist_next(show: Any, a: dict[str, Any]) -> Change:
    d = show.director
    if not d.playlist:
        raise ControlError("no playlist is playing", field="playlist/next",
                           fix="start one with `latentdmx playlist start NAME`")
    return Change({"playlist": d.playlist.name}, lambda t_s: d.next_item(t_s))


@command("identify",
         Arg("fixtures", Names(), "the fixtures, one after another", required=False),
         Arg("all", Flag(), "every fixture of the show", required=False, default=False),
         Arg("seconds", Number(0.1, 600.0), "seconds each", required=False, default=5.0),
         Arg("level", Number(0.0, 1.0), "the white's level", required=False, default=0.3),
         Arg("cancel", Flag(), "back to the show now", required=False, default=False),
         help="Light FIXTURES one after another in steady white through the show, the "
              "others dark, then back to the show (what `latentdmx identify` asks a "
              "running show; every frame still goes through the flash limiter).",
         live=True, group=False, cli=False, web=False)
def _identify(show: Any, a: dict[str, Any]) -> Change:
    return identify_change(show, a)


def identify_change(show, a: dict):
    """The ``identify`` control command (`pi_app.vocabulary`) on a running `Show`: validated
    arguments -> a live change that starts (or with ``cancel`` ends) an `IdentifySequence`."""
    from .identify import IdentifySequence  # NumPy: not on the command line's import path

    p = show.pipeline
    if a.get("cancel"):
        return Change({"cancelled": True}, lambda t_s: setattr(p, "identify", None))
    names = [f.name for f in p.patch.fixtures]
    wanted = names if a.get("all") else a.get("fixtures")
    if not wanted:
        raise ControlError("identify needs fixture names", field="identify",
                           fix="e.g. `latentdmx identify par-1`")
    for name in wanted:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            raise ControlError(f"the running show has no fixture {name!r}", field="identify",
                               fix=(f"did you mean {close[0]!r}? " if close else "") +
                               f"its fixtures: {', '.join(names)}")
    d = show.director
    if d.idle or getattr(d, "_going_dark", False):    # the schedule's dark spell
        nxt = d.next_event_text()
        raise ControlError("the show is dark outside its schedule" +
                           (f" (next: {nxt})" if nxt else ""), field="identify",
                           fix="identify while it plays, or stop it (sudo systemctl stop "
                               "latentdmx) and identify on its own")
    if show.stop_requested or p.safety.stopping:
        raise ControlError("the show is stopping", field="identify",
                           fix="run identify again once it has stopped")
    if p.blacked_out:
        raise ControlError("the show is blacked out", field="identify",
                           fix="`latentdmx resume` first")
    indices = [names.index(n) for n in wanted]
    level, seconds = float(a["level"]), float(a["seconds"])
    fixtures = [{"name": f.name, "universe": f.universe,
                 "addresses": f"{f.address}-{f.last_address}",
                 "profile": f"{f.profile.key} {f.mode.name}"}
                for f in (p.patch.fixtures[i] for i in indices)]
    return Change({"fixtures": fixtures, "seconds": seconds, "level": level,
                   "master": p.safety.master * p.safety.level,   # what the white goes under
                   "pid": os.getpid()},
                  lambda t_s: setattr(p, "identify",
                                      IdentifySequence(p.patch, indices, level, seconds, t_s)))


# -- following a Falcon Player master (pi_app/fpp.py) ---------------------------------------
def _show_time_now(show: Any) -> float | None:
    """The show time now, as the frame clock counts it (frame k at k / fps; a lockstep
    group's clock too); None before the first frame."""
    clock = show.clock
    return None if clock is None else clock.now() - clock.due(0)


def fpp_look(show: Any, sequence: str) -> tuple[str, object, Any, Any]:
    """(the [fpp.map] key, its item, its preset, its model) for a master's sequence; the
    model is loaded here (the caller's thread, never the frame loop)."""
    found = show.config.fpp.lookup(sequence)
    if found is None:
        raise ControlError(f"sequence {sequence!r} is not mapped", field="fpp.map",
                           fix=f'map it in the config: [fpp.map] "{sequence}" = "PRESET"')
    key, item = found
    preset, model = show.director.resolve_item(item)
    if isinstance(item, dict):      # the config's tempo and palette, not the last look's
        cfg = show.config
        preset = dataclasses.replace(
            preset, tempo=float(item.get("tempo", cfg.walk.tempo)),
            palette=str(item.get("palette", cfg.looks.palette)))
    return key, item, preset, model


def _fpp_playing(show: Any, item: object, preset: Any) -> bool:
    d, p = show.director, show.pipeline
    if isinstance(item, str):
        return bool(d.preset == item)
    return bool(d.model_ref == preset.model and p.seed == preset.seed and not d.preset)


MAX_WAITED_S = 1.0      # a packet that waited longer: the clock is not to be trusted


def waited_s(received_at: float | None) -> float:
    """Seconds since a packet arrived at `received_at` (`time.monotonic()` seconds; None:
    just now): the master's position it carried is that much further on now."""
    if received_at is None:
        return 0.0
    waited = time.monotonic() - received_at
    return waited if 0.0 <= waited <= MAX_WAITED_S else 0.0


def fpp_in_step(show: Any, sequence: str, position_s: float,
                received_at: float | None = None) -> bool:
    """The show plays `sequence`'s look and its walk is within a frame of where the master's
    `position_s` (in a packet that arrived at `received_at`) puts it, now (a client's thread:
    reads numbers, and the preset)."""
    if show.config.fpp.lookup(sequence) is None:
        return False
    _, item, preset, _ = fpp_look(show, sequence)
    t_rx = _show_time_now(show)
    if t_rx is None:
        return False
    return _in_step(show, item, preset, position_s + waited_s(received_at), t_rx)


def _in_step(show: Any, item: object, preset: Any, position_s: float, t_rx: float) -> bool:
    line = show.pipeline.line
    rate = preset.tempo / line.seconds_per_waypoint
    return (_fpp_playing(show, item, preset) and not line.still and
            line.tempo == preset.tempo and
            abs(line.at(t_rx) - (preset.phase + position_s * rate)) <= rate / show.fps)


@command("fpp/play", Arg("sequence", Text(), "the master's sequence, a key of [fpp.map]"),
         Arg("position_s", Number(0.0, 1e7), "the master's position in it, in seconds"),
         Arg("start", Flag(), "the master started it (else: a sync)", required=False,
             default=False),
         Arg("received_at", Number(0.0, 1e12), "when the master's packet arrived "
             "(time.monotonic() seconds): its position is that much further on now",
             required=False, default=None),
         help="Play what [fpp.map] maps SEQUENCE to from the master's POSITION_S: the walk's "
              "phase is set to where the look is POSITION_S seconds after its start, so the "
              "show stays within a frame of the master (a sync that is already in step "
              "changes nothing).",
         live=True, group=False, cli=False, web=False)
def _fpp_play(show: Any, a: dict[str, Any]) -> Change:
    d, p = show.director, show.pipeline
    t_rx = _show_time_now(show)             # the master's position is of now: before loading
    position_s = a["position_s"] + waited_s(a.get("received_at"))
    key, item, preset, model = fpp_look(show, a["sequence"])
    if not a["start"] and t_rx is not None and _in_step(show, item, preset,
                                                        position_s, t_rx):
        return Change({"fpp": key, "in_step": True})       # within a frame: leave it
    look = _fpp_playing(show, item, preset)

    def apply(t_s: float) -> None:
        at = position_s + (0.0 if t_rx is None else t_s - t_rx)
        if look and model is p.model:               # the same look: only the phase moves
            p.set_tempo(preset.tempo, t_s)
        else:
            d.recall(preset, model, t_s, 0.0)
            d.preset = item if isinstance(item, str) else ""
        phase = preset.phase + at * p.line.tempo / p.line.seconds_per_waypoint
        p.line = p.line.jump(t_s, phase)
        p.phase = phase
        p.set_blackout(False, t_s)
    return Change({"fpp": key, "position_s": a["position_s"]}, apply)


@command("fpp/stop", Arg("sequence", Text(), "the master's sequence, a key of [fpp.map]"),
         help="The master stopped SEQUENCE: go dark with it (as `blackout`).",
         live=True, group=False, cli=False, web=False)
def _fpp_stop(show: Any, a: dict[str, Any]) -> Change:
    p = show.pipeline
    if show.config.fpp.lookup(a["sequence"]) is None:
        raise ControlError(f"sequence {a['sequence']!r} is not mapped", field="fpp.map",
                           fix="nothing to stop")
    return Change({"blackout": True}, lambda t_s: p.set_blackout(True, t_s))
