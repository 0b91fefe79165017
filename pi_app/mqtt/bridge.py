"""The show as one Home Assistant device over MQTT (``[mqtt]``, docs/home-assistant.md).

One table, `entities`, says everything: each entity's Home Assistant component, its
discovery fields, how its state is read from the show and how its commands become commands
of the control vocabulary. From it:

* **Discovery**: one retained document per entity at
  ``<discovery_prefix>/<component>/<node_id>/<key>/config``, all naming the same device and
  the availability topic ``<base>/availability`` (``online``; the broker publishes the
  last will ``offline`` when the daemon vanishes, and the daemon says ``offline`` itself when
  it stops). Republished on every (re)connect, and when a list of options changes (a preset
  saved, a model installed).
* **State**: retained, published on change only, by one publisher thread that reads the
  show every `TICK_S` (and at once after a command); the health figures (`pi_app.health`)
  at most every ``[mqtt] stats_s``. The frame loop never waits on MQTT: it does not know it exists.
* **Commands**: ``<base>/<key>/set`` (a button: ``<base>/<key>/press``). Each becomes one or
  more commands of the control vocabulary, given to `Show.handle_control` with origin
  ``mqtt``, so they are checked, logged, rate-limited and applied between frames like any
  client's, in step across a lockstep group; a network origin names no model paths.

paho-mqtt runs its network loop on its own thread (``loop_start``) and reconnects with
back-off (`RECONNECT_MIN_S` doubling to `RECONNECT_MAX_S`); a broker that is down, goes away
or refuses the credentials is one log line until the next successful connection.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import paho.mqtt.client as paho

from .. import __version__
from ..errors import ConfigError, LatentDMXError
from ..health import cpu_temp_c, health_of
from ..mqtt_config import MqttConfig
from ..runtime import list_models
from ..vocabulary import Status, lookup

log = logging.getLogger("latentdmx")

TICK_S = 0.5                 # the publisher reads the show this often (and after a command)
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 60
MAX_PAYLOAD = 4096           # a command longer than this is ignored
QOS = 1
ORIGIN = "mqtt"
_STATUS_FIELDS = ("state", "blackout", "master", "preset", "model", "palette", "tempo",
                  "heads_still", "paused", "next_event", "bpm", "music", "late_frames")
_READERS = {f.name: f.metadata["read"] for f in fields(Status) if f.name in _STATUS_FIELDS}

View = dict[str, Any]                         # status fields, health figures, option lists
Commands = list[tuple[str, list[str]]]        # (vocabulary command, its arguments as text)


@dataclass(frozen=True)
class Entity:
    component: str                            # light, select, number, switch, button, sensor
    key: str                                  # object id: topics and unique_id
    name: str
    fields: dict[str, Any] = field(default_factory=dict)   # the component's discovery fields
    state: Callable[[View], Any] | None = None             # view -> payload (None: unknown)
    command: Callable[[str], Commands] | None = None       # payload -> vocabulary commands
    slow: bool = False                        # a health figure: read every stats_s
    options: str = ""                         # the view's option list this entity offers


# -- commands ------------------------------------------------------------------------------
def light_commands(payload: str) -> Commands:
    """HA's JSON light schema: ``{"state": "ON"|"OFF", "brightness": 0..255, "effect": ...}``
    -> blackout off/on, the master dimmer, a preset recall."""
    try:
        msg = json.loads(payload)
    except ValueError:
        msg = None
    if not isinstance(msg, dict) or msg.get("state") not in ("ON", "OFF"):
        raise ValueError('want {"state": "ON" or "OFF", ...}')
    if msg["state"] == "OFF":
        return [("blackout", ["on"])]
    out: Commands = []
    if "effect" in msg:
        out.append(("preset/recall", [str(msg["effect"])]))
    if "brightness" in msg:
        b = msg["brightness"]
        if isinstance(b, bool) or not isinstance(b, int | float) or not 0 <= b <= 255:
            raise ValueError("brightness must be 0..255")
        out.append(("dim", [f"{b / 255:.6g}"]))
    out.append(("blackout", ["off"]))
    return out


def _switch(on: Commands, off: Commands) -> Callable[[str], Commands]:
    def parse(payload: str) -> Commands:
        if payload not in ("ON", "OFF"):
            raise ValueError("want ON or OFF")
        return on if payload == "ON" else off
    return parse


def _light_state(v: View) -> str:
    doc: dict[str, Any] = {"state": "OFF" if v["blackout"] else "ON",
                           "brightness": round(float(v["master"]) * 255),
                           "color_mode": "brightness"}
    if v["preset"]:
        doc["effect"] = v["preset"]
    return json.dumps(doc, separators=(",", ":"))


def _on_off(flag: Any) -> str:
    return "ON" if flag else "OFF"


def _round(key: str, digits: int) -> Callable[[View], Any]:
    return lambda v: None if v.get(key) is None else round(float(v[key]), digits)


def entities(cfg: MqttConfig, *, cpu_temp: bool, group: bool) -> list[Entity]:
    """The device's entities (module doc); `cpu_temp`/`group`: those sensors too."""
    diag = {"entity_category": "diagnostic"}
    total = {"state_class": "total_increasing"}
    measure = {"state_class": "measurement"}
    out = [
        Entity("light", "light", "Light", {
            "schema": "json", "brightness": True, "brightness_scale": 255,
            "supported_color_modes": ["brightness"], "effect": True, "effect_list": []},
            _light_state, light_commands, options="presets"),
        Entity("select", "model", "Model", {"options": []}, lambda v: v["model"],
               lambda p: [("model", [p])], options="models"),
        Entity("select", "playlist", "Playlist", {"options": []},
               lambda v: v["playlist_name"] or "none",
               lambda p: [("playlist/stop", [])] if p == "none" else
               [("playlist/start", [p])], options="playlists"),
        Entity("select", "palette", "Palette", {"options": []},
               lambda v: v["palette"] or "none", lambda p: [("palette", [p])],
               options="palettes"),
        Entity("number", "tempo", "Tempo", {"min": 0.01, "max": 100, "step": 0.01,
                                           "mode": "box", "icon": "mdi:speedometer"},
               _round("tempo", 3), lambda p: [("tempo", [p])]),
        Entity("switch", "still", "Heads still", {"icon": "mdi:pan"},
               lambda v: _on_off(v["heads_still"]),
               _switch([("still", ["on"])], [("still", ["off"])])),
        Entity("switch", "pause", "Pause", {"icon": "mdi:pause"},
               lambda v: _on_off(v["paused"]), _switch([("pause", [])], [("resume", [])])),
        Entity("button", "next", "Next playlist item", {"payload_press": "PRESS",
                                                       "icon": "mdi:skip-next"},
               None, lambda p: [("playlist/next", [])] if p == "PRESS" else []),
        Entity("sensor", "state", "State", {"icon": "mdi:information-outline"},
               lambda v: v["state"]),
        Entity("sensor", "fps", "Frames a second", {"unit_of_measurement": "fps", **measure},
               lambda v: None if "fps_achieved" not in v else       # holding still: 0
               round(float(v["fps_achieved"] or 0.0), 1), slow=True),
        Entity("sensor", "late_frames", "Late frames", {**total, **diag},
               lambda v: int(v["late_frames"])),
        Entity("sensor", "limiter", "Flashes held back", {**total, "icon": "mdi:flash-off"},
               lambda v: v.get("limiter_interventions"), slow=True),
        Entity("sensor", "bpm", "BPM", {"unit_of_measurement": "BPM", **measure,
                                        "icon": "mdi:metronome"}, _round("bpm", 1)),
        Entity("sensor", "music", "Beat lock", {"icon": "mdi:music"}, lambda v: v["music"]),
        Entity("sensor", "next_event", "Next event", {"icon": "mdi:calendar-clock"},
               lambda v: v["next_event"] or "none"),
        Entity("sensor", "frames", "Frames sent", {**total, **diag},
               lambda v: v.get("frames_sent"), slow=True),
        Entity("sensor", "work_p50", "Frame work p50", {"unit_of_measurement": "ms", **measure,
                                                        **diag},
               lambda v: v.get("frame_work_p50_ms"), slow=True),
        Entity("sensor", "work_p99", "Frame work p99", {"unit_of_measurement": "ms", **measure,
                                                        **diag},
               lambda v: v.get("frame_work_p99_ms"), slow=True),
        Entity("sensor", "output_errors", "Output errors", {**total, **diag},
               lambda v: v.get("output_errors"), slow=True),
        Entity("sensor", "rss", "Memory", {"unit_of_measurement": "MiB",
                                           "device_class": "data_size", **measure, **diag},
               lambda v: None if v.get("rss_bytes") is None else
               round(v["rss_bytes"] / 2**20, 1), slow=True),
        Entity("sensor", "uptime", "Uptime", {"unit_of_measurement": "s",
                                              "device_class": "duration", **measure, **diag},
               lambda v: None if v.get("uptime_s") is None else int(v["uptime_s"]),
               slow=True),
        Entity("sensor", "config_hash", "Config hash", {**diag, "icon": "mdi:pound"},
               lambda v: v.get("config_hash"), slow=True),
    ]
    if group:
        out += [Entity("sensor", "group_members", "Group members", {**measure, **diag},
                       lambda v: v.get("group_members"), slow=True),
                Entity("sensor", "group_offset", "Group clock offset",
                       {"unit_of_measurement": "ms", **measure, **diag},
                       lambda v: v.get("group_offset_ms"), slow=True)]
    if cpu_temp:
        out.append(Entity("sensor", "cpu_temp", "CPU temperature", {
            "unit_of_measurement": "°C", "device_class": "temperature", **measure, **diag},
            lambda v: v.get("cpu_temp_c"), slow=True))
    return out


# -- the bridge ----------------------------------------------------------------------------
class MqttBridge:
    """`start()` / `close()`; everything else runs on paho's thread and the publisher's."""

    def __init__(self, show: Any, cfg: MqttConfig) -> None:
        self.show, self.cfg = show, cfg
        self.base = cfg.base_topic()
        self.node = cfg.node_id()
        self.availability = f"{self.base}/availability"
        self.entities = entities(cfg, cpu_temp=cpu_temp_c() is not None,
                                 group=show.lockstep is not None)
        self._commands = {self._command_topic(e): e for e in self.entities if e.command}
        self._published: dict[str, str] = {}   # topic -> payload last published (retained)
        self._lock = threading.Lock()
        self._generation = 0                   # connections so far (the publisher follows)
        self._connected = False
        self._complained = ""                  # the failure already logged since connected
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._health: dict[str, Any] = {}
        self._next_stats = 0.0
        self._last_refusal = 0.0
        self.connects = 0                      # successful connections (tests, status)
        self.client = self._make_client()
        self._thread = threading.Thread(target=self._publisher, name="latentdmx-mqtt-state",
                                        daemon=True)

    def _make_client(self) -> paho.Client:
        cfg = self.cfg
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"latentdmx-{self.node}",
                        protocol=paho.MQTTv311)
        c.will_set(self.availability, "offline", qos=QOS, retain=True)
        if cfg.username:
            c.username_pw_set(cfg.username, cfg.password or None)
        if cfg.tls:
            try:
                c.tls_set(ca_certs=cfg.ca_file or None)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot set up TLS ({exc})", file=self.show.config.path,
                                  field="mqtt.ca_file",
                                  fix="give the PEM file of the broker's CA") from None
        c.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        return c

    def start(self) -> MqttBridge:
        cfg = self.cfg
        log.info("MQTT: connecting to %s:%d%s (Home Assistant discovery under %s/, topics "
                 "under %s/)", cfg.host, cfg.port, " with TLS" if cfg.tls else "",
                 cfg.discovery_prefix, self.base)
        try:
            self.client.connect_async(cfg.host.strip("[]"), cfg.port, keepalive=cfg.keepalive_s)
        except (OSError, ValueError) as exc:         # the show never waits on the broker
            self._complain("cannot reach", f"{exc}")
        self.client.loop_start()
        self._thread.start()
        return self

    def close(self) -> None:
        """Say ``offline`` (retained) if connected, then disconnect; at most ~2 s."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2.0)
        if self._connected:
            try:
                info = self.client.publish(self.availability, "offline", qos=QOS, retain=True)
                info.wait_for_publish(timeout=1.0)
            except (RuntimeError, ValueError, OSError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho's thread --------------------------------------------------------------------
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self._complain("was refused by", f"{reason}; check [mqtt] username and "
                           "password_file")
            return
        with self._lock:
            self._connected = True
            self._generation += 1
            again = self.connects > 0
            self.connects += 1
            self._complained = ""
        log.info("MQTT: %sconnected to %s:%d", "re" if again else "", self.cfg.host,
                 self.cfg.port)
        for topic in self._commands:
            client.subscribe(topic, qos=QOS)
        self._wake.set()

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self._complain("cannot reach", "no answer, or the connection was refused" +
                       (", or TLS failed: check ca_file and that host matches the "
                        "broker's certificate" if self.cfg.tls else ""))

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        with self._lock:
            was, self._connected = self._connected, False
        if was and not self._stop.is_set():
            self._complain("lost", str(reason))

    def _complain(self, verb: str, why: str) -> None:
        """One line per outage: the broker gone (lost, cannot reach) or refusing us, until
        the next successful connection."""
        kind = "refused" if "refused" in verb else "down"
        with self._lock:
            if self._complained == kind:
                log.debug("MQTT: still %s the broker (%s)", verb, why)
                return
            self._complained = kind
        log.warning("MQTT: %s the broker %s:%d (%s); retrying with back-off (up to %d s), "
                    "the show goes on", verb, self.cfg.host, self.cfg.port, why,
                    RECONNECT_MAX_S)

    def _on_message(self, client: paho.Client, userdata: Any, msg: Any) -> None:
        entity = self._commands.get(msg.topic)
        if entity is None or entity.command is None or len(msg.payload) > MAX_PAYLOAD:
            return
        try:
            payload = msg.payload.decode("utf-8").strip()
            todo = [(command, command.parse_text(words)) for command, words in
                    ((lookup(name), words) for name, words in entity.command(payload))]
        except (LatentDMXError, ValueError) as exc:      # (UnicodeDecodeError too)
            self._refused(entity, msg.payload, exc)
            return
        for command, values in todo:
            try:
                self.show.handle_control(command.name, values, origin=ORIGIN)
            except LatentDMXError:
                break                            # handle_control logged it (rate-limited)
        self._wake.set()                         # the new state, at once

    def _refused(self, entity: Entity, payload: bytes, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_refusal >= 1.0:      # a flood of bad payloads: a line a second
            self._last_refusal = now
            log.info("%s: %s %r refused: %s", ORIGIN, entity.key, payload[:60], exc)

    # -- the publisher thread -------------------------------------------------------------
    def _publisher(self) -> None:
        seen = 0
        while not self._stop.is_set():
            self._wake.wait(TICK_S)
            self._wake.clear()
            if self._stop.is_set():
                break
            with self._lock:
                connected, generation = self._connected, self._generation
            if not connected or not self.show.status_snapshot:
                continue
            try:
                if generation != seen:           # a fresh connection: everything again
                    self._published.clear()
                    self._next_stats = 0.0
                self.publish_all()
                seen = generation
            except Exception:                    # a bug of ours: say it, keep the show
                log.exception("MQTT: publishing the state failed")
                self._stop.wait(self.cfg.stats_s)

    def view(self, *, stats: bool) -> View:
        """What the entities read: the status fields they need, option lists, and the
        health figures (refreshed when `stats`)."""
        show = self.show
        v: View = {name: read(show) for name, read in _READERS.items()}
        pl = show.director.playlist
        v["playlist_name"] = pl.name if pl is not None else ""
        if stats:
            self._health = health_of(show)
        v.update(self._health)
        return v

    def options(self) -> dict[str, list[str]]:
        show = self.show
        try:
            models = [name for name, _ in list_models()]
        except LatentDMXError:
            models = []
        current = show.pipeline.model.info.name
        return {"presets": show.presets.names(),
                "models": models if current in models else [*models, current],
                "playlists": ["none", *sorted(show.config.playlists)],
                "palettes": ["none", *sorted(show.pipeline.looks.palettes)]}

    def publish_all(self) -> None:
        now = time.monotonic()
        stats = now >= self._next_stats
        if stats:
            self._next_stats = now + self.cfg.stats_s
        fresh = not self._published
        if stats or fresh:                       # discovery: on connect, options changed
            opts = self.options()
            for e in self.entities:
                self._put(self._discovery_topic(e), json.dumps(
                    self.discovery(e, opts), separators=(",", ":"), ensure_ascii=False))
        if fresh:
            self._put(self.availability, "online")
        v = self.view(stats=stats)
        for e in self.entities:
            if e.state is None or (e.slow and not stats):
                continue
            value = e.state(v)
            if value is not None:
                self._put(self._state_topic(e), str(value))

    def _put(self, topic: str, payload: str) -> None:
        if self._published.get(topic) == payload:
            return
        self.client.publish(topic, payload, qos=QOS, retain=True)
        self._published[topic] = payload

    # -- topics and documents -------------------------------------------------------------
    def _discovery_topic(self, e: Entity) -> str:
        return f"{self.cfg.discovery_prefix}/{e.component}/{self.node}/{e.key}/config"

    def _state_topic(self, e: Entity) -> str:
        return f"{self.base}/{e.key}/state"

    def _command_topic(self, e: Entity) -> str:
        return f"{self.base}/{e.key}/{'press' if e.component == 'button' else 'set'}"

    def discovery(self, e: Entity, opts: dict[str, list[str]]) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": e.name, "unique_id": f"{self.node}_{e.key}",
            "availability_topic": self.availability,
            "payload_available": "online", "payload_not_available": "offline",
            "device": {"identifiers": [self.node], "name": self.cfg.device_name(),
                       "manufacturer": "LatentDMX", "model": "LatentDMX show",
                       "sw_version": __version__},
            **e.fields}
        if e.state is not None:
            doc["state_topic"] = self._state_topic(e)
        if e.command is not None:
            doc["command_topic"] = self._command_topic(e)
        if e.options:
            key = "effect_list" if e.component == "light" else "options"
            doc[key] = opts[e.options]
        if e.component == "light" and not doc["effect_list"]:    # no presets: no effects
            del doc["effect"], doc["effect_list"]
        return doc


def start_mqtt(show: Any, cfg: MqttConfig) -> MqttBridge:
    """The show's MQTT bridge, connecting in the background (never blocks the show)."""
    return MqttBridge(show, cfg).start()
