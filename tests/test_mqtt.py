"""Home Assistant over MQTT, against a real Mosquitto broker (tests/mosquitto_fixture.py:
password file, TLS listener with a throwaway CA). A test client subscribes as Home Assistant
does, checks every discovery document against the schemas below (written from Home
Assistant's MQTT light (JSON schema), select, number, switch, button and sensor pages), sends
commands and sees the DMX frames change. A broker that is down at the start, killed
mid-show or refusing the password: the show plays on, one log line, and it reconnects."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import pytest
from lateness import MachineLateness
from mosquitto_fixture import PASSWORD, USER, Broker, free_port

from pi_app.config import default_config_path, load_config
from pi_app.errors import ConfigError
from pi_app.health import cpu_temp_c
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import Show

REPO = Path(__file__).resolve().parents[1]

LOOKS = """
[presets.low]
seed = 3
master = 0.8

[presets.full]
seed = 4

[playlists.two]
items = ["low", "full"]
every = "10m"
fade_s = 0

[palettes.warm]
kelvin = 2700
"""

# -- Home Assistant's discovery schemas (its MQTT integration pages) -----------------------
STR, BOOL, INT, NUM, LIST, MAP = str, bool, int, (int, float), list, dict
COMMON = {   # every MQTT entity: availability, device, name, unique id, icon, category
    "availability_topic": STR, "payload_available": STR, "payload_not_available": STR,
    "device": MAP, "name": STR, "unique_id": STR, "icon": STR, "entity_category": STR,
    "qos": INT, "retain": BOOL, "enabled_by_default": BOOL, "object_id": STR}
SCHEMAS: dict[str, tuple[set[str], dict[str, Any]]] = {   # component: (required, optional)
    "light": ({"command_topic", "schema"}, {   # the JSON schema
        "schema": STR, "command_topic": STR, "state_topic": STR, "brightness": BOOL,
        "brightness_scale": INT, "effect": BOOL, "effect_list": LIST,
        "supported_color_modes": LIST, "optimistic": BOOL, "flash_time_long": INT,
        "flash_time_short": INT, "transition": BOOL}),
    "select": ({"command_topic", "options"}, {
        "command_topic": STR, "state_topic": STR, "options": LIST, "optimistic": BOOL,
        "value_template": STR, "command_template": STR}),
    "number": ({"command_topic"}, {
        "command_topic": STR, "state_topic": STR, "min": NUM, "max": NUM, "step": NUM,
        "mode": STR, "unit_of_measurement": STR, "device_class": STR, "optimistic": BOOL,
        "payload_reset": STR}),
    "switch": ({"command_topic"}, {
        "command_topic": STR, "state_topic": STR, "payload_on": STR, "payload_off": STR,
        "state_on": STR, "state_off": STR, "optimistic": BOOL, "device_class": STR}),
    "button": ({"command_topic"}, {
        "command_topic": STR, "payload_press": STR, "device_class": STR}),
    "sensor": ({"state_topic"}, {
        "state_topic": STR, "unit_of_measurement": STR, "device_class": STR,
        "state_class": STR, "expire_after": INT, "force_update": BOOL,
        "suggested_display_precision": INT, "value_template": STR}),
}
COLOR_MODES = {"onoff", "brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww", "white"}
STATE_CLASSES = {"measurement", "total", "total_increasing", "measurement_angle"}
DEVICE_UNITS = {"temperature": {"°C", "°F", "K"}, "duration": {"d", "h", "min", "s", "ms"},
                "data_size": {"B", "kB", "MB", "GB", "KiB", "MiB", "GiB", "bit", "kbit"}}


def check_discovery(component: str, doc: dict) -> None:
    """One discovery document against Home Assistant's schema for its component."""
    required, optional = SCHEMAS[component]
    allowed = {**COMMON, **optional}
    assert required <= set(doc), f"{component}: missing {required - set(doc)}"
    for key, value in doc.items():
        assert key in allowed, f"{component}: {key!r} is not a field Home Assistant knows"
        assert isinstance(value, allowed[key]), f"{component}.{key}: {value!r}"
    assert doc.get("entity_category", "diagnostic") in ("diagnostic", "config")
    dev = doc["device"]
    assert dev["identifiers"] and all(isinstance(i, str) for i in dev["identifiers"])
    if component == "light":
        assert doc["schema"] == "json"
        modes = set(doc["supported_color_modes"])
        assert modes <= COLOR_MODES
        assert not ({"onoff", "brightness"} & modes) or len(modes) == 1   # must stand alone
        assert all(isinstance(e, str) for e in doc.get("effect_list", []))
    if component == "select":
        assert doc["options"] and all(isinstance(o, str) for o in doc["options"])
    if component == "number":
        assert doc.get("min", 1) < doc.get("max", 100) and doc.get("step", 1) >= 0.001
        assert doc.get("mode", "auto") in ("auto", "box", "slider")
    if component == "sensor":
        assert doc.get("state_class", "measurement") in STATE_CLASSES
        dc = doc.get("device_class")
        if dc in DEVICE_UNITS:
            assert doc.get("unit_of_measurement") in DEVICE_UNITS[dc]


# -- a client as Home Assistant -------------------------------------------------------------
class HomeAssistant:
    """Subscribes to discovery and the device's topics; keeps the last payload per topic."""

    def __init__(self, broker: Broker, base: str, *, tls: bool = True) -> None:
        self.base = base
        self.last: dict[str, str] = {}
        self.lock = threading.Lock()
        c = self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                      client_id="ha-" + uuid.uuid4().hex[:8])
        c.username_pw_set(USER, PASSWORD)
        if tls:
            c.tls_set(ca_certs=str(broker.ca))
        c.on_message = self._message
        c.on_connect = lambda cl, *_: (cl.subscribe("homeassistant/#", 1),
                                       cl.subscribe(base + "/#", 1))
        c.connect("localhost", broker.tls_port if tls else broker.port)
        c.loop_start()

    def _message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.last[msg.topic] = msg.payload.decode()

    def get(self, topic: str) -> str | None:
        with self.lock:
            return self.last.get(topic)

    def discovery(self) -> dict[str, tuple[str, dict]]:
        with self.lock:
            items = list(self.last.items())
        return {t.split("/")[-2]: (t.split("/")[1], json.loads(p)) for t, p in items
                if t.startswith("homeassistant/") and t.endswith("/config") and p}

    def send(self, key: str, payload: str, verb: str = "set") -> None:
        self.client.publish(f"{self.base}/{key}/{verb}", payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_for(pred, timeout_s: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what or pred}")


# -- a show with [mqtt] ---------------------------------------------------------------------
def mqtt_section(broker: Broker, base: str, tmp_path: Path, *, tls: bool = True,
                 password: str = PASSWORD, port: int | None = None) -> str:
    pw = tmp_path / "mqtt-password"
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    return f"""
[mqtt]
host = "{'localhost' if tls else '127.0.0.1'}"
port = {port or (broker.tls_port if tls else broker.port)}
username = "{USER}"
password_file = "{pw}"
tls = {'true' if tls else 'false'}
{f'ca_file = "{broker.ca}"' if tls else ''}
topic_prefix = "{base}"
stats_s = 1.0
"""


class RunningShow:
    def __init__(self, tmp_path: Path, mqtt: str) -> None:
        path = tmp_path / "rig.toml"
        path.write_text(default_config_path().read_text() + LOOKS + mqtt, encoding="utf-8")
        self.cfg = load_config(path)
        self.patch = Patch(self.cfg)
        self.out = SimOutput(self.patch.universes, blackout=self.patch.blackout_frames,
                             keep_history=True)
        self.show = Show(self.cfg, self.out, seed=4, control=False,
                         presets_dir=tmp_path / "presets")
        self.thread = threading.Thread(target=self.show.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.show.frames_out > 10, what="frames")

    def slots(self, attrs: tuple[str, ...]) -> list[tuple[int, int]]:
        return [(u, s - 1) for (u, s), (_, attr) in self.patch.slot_map().items()
                if attr in attrs]

    def last(self, attrs: tuple[str, ...]) -> np.ndarray:
        frame = self.out.history[-1]
        return np.array([frame[u][s] for u, s in self.slots(attrs)])

    def stop(self) -> None:
        self.show.stop()
        self.thread.join(20)
        assert not self.thread.is_alive()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker").start()
    yield b
    b.close()


def mqtt_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("MQTT:")
            and r.levelno >= logging.WARNING]


LIGHT = ("dimmer", "red", "green", "blue", "white")
EXPECTED = {"light": "light", "model": "select", "playlist": "select", "palette": "select",
            "tempo": "number", "still": "switch", "pause": "switch", "next": "button",
            "state": "sensor", "fps": "sensor", "late_frames": "sensor", "limiter": "sensor",
            "bpm": "sensor", "music": "sensor", "next_event": "sensor", "frames": "sensor",
            "work_p50": "sensor", "work_p99": "sensor", "output_errors": "sensor",
            "rss": "sensor", "uptime": "sensor", "config_hash": "sensor"}


@pytest.mark.slow
def test_home_assistant_discovers_the_device_and_drives_the_show(broker, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="latentdmx")
    base = "ldmx-test/" + uuid.uuid4().hex[:8]
    ha = HomeAssistant(broker, base)
    run = RunningShow(tmp_path, mqtt_section(broker, base, tmp_path))
    show = run.show
    try:
        expected = dict(EXPECTED)
        if cpu_temp_c() is not None:
            expected["cpu_temp"] = "sensor"
        found = wait_for(lambda: (d := ha.discovery()) and set(expected) <= set(d) and d,
                         what="discovery of every entity")
        devices = set()
        for key, (component, doc) in found.items():
            assert component == expected[key], key
            check_discovery(component, doc)
            devices.add(json.dumps(doc["device"], sort_keys=True))
            assert doc["availability_topic"] == f"{base}/availability"
        assert len(devices) == 1                                # one device
        assert "cpu_temp" in found or cpu_temp_c() is None
        light = found["light"][1]
        assert light["effect_list"] == ["full", "low"]
        assert found["playlist"][1]["options"] == ["none", "two"]
        assert found["palette"][1]["options"] == ["none", "warm"]
        assert "nat-aurora" in found["model"][1]["options"]
        assert wait_for(lambda: ha.get(f"{base}/availability") == "online")
        state = wait_for(lambda: ha.get(light["state_topic"]), what="light state")
        assert json.loads(state)["state"] == "ON"
        time.sleep(2.0)                                           # past the fade-in
        assert run.last(LIGHT).max() > 0

        # the light: OFF = blackout (through the flash limiter, so within ~2 s)
        ha.send("light", '{"state": "OFF"}')
        wait_for(lambda: run.last(LIGHT).max() == 0, 6, "a dark frame")
        assert show.pipeline.blacked_out
        assert wait_for(lambda: json.loads(ha.get(light["state_topic"]) or "{}").get(
            "state") == "OFF")
        # ON with a brightness: blackout off, the master at 128/255
        ha.send("light", '{"state": "ON", "brightness": 128}')
        wait_for(lambda: run.last(("dimmer",)).max() > 0, 6, "light again")
        assert abs(show.pipeline.safety.master - 128 / 255) < 1e-6
        wait_for(lambda: run.last(("dimmer",)).max() <= 129, 6, "dimmer under the master")
        st = wait_for(lambda: (s := json.loads(ha.get(light["state_topic"]) or "{}")) and
                      s.get("brightness") == 128 and s)
        assert st["state"] == "ON" and st["color_mode"] == "brightness"
        # effect = a preset
        ha.send("light", '{"state": "ON", "effect": "low"}')
        wait_for(lambda: show.director.preset == "low", what="preset low")
        wait_for(lambda: json.loads(ha.get(light["state_topic"])).get("effect") == "low")

        # number, selects, switches, button
        ha.send("tempo", "2.5")
        wait_for(lambda: show.pipeline.tempo == 2.5, what="tempo")
        wait_for(lambda: ha.get(f"{base}/tempo/state") == "2.5")
        ha.send("palette", "warm")
        wait_for(lambda: show.pipeline.looks.palette_name == "warm", what="palette")
        wait_for(lambda: ha.get(f"{base}/palette/state") == "warm")
        ha.send("still", "ON")
        wait_for(lambda: show.pipeline.looks.heads_still, what="heads still")
        wait_for(lambda: ha.get(f"{base}/still/state") == "ON")
        ha.send("pause", "ON")
        wait_for(lambda: show.pipeline.paused, what="paused")
        wait_for(lambda: ha.get(f"{base}/pause/state") == "ON")
        ha.send("pause", "OFF")
        wait_for(lambda: not show.pipeline.paused, what="resumed")
        ha.send("playlist", "two")
        wait_for(lambda: show.director.playlist is not None, what="playlist")
        wait_for(lambda: ha.get(f"{base}/playlist/state") == "two")
        first = show.director.playlist.index
        ha.send("next", "PRESS", verb="press")
        wait_for(lambda: show.director.playlist.index != first, what="next item")
        ha.send("playlist", "none")
        wait_for(lambda: show.director.playlist is None, what="playlist stopped")

        # MQTT is the network: no model paths, and nonsense is refused
        model, tempo = show.pipeline.model.info.name, show.pipeline.tempo
        ha.send("model", str(Path(__file__).parents[1] / "models" / "nat-neon"))
        ha.send("tempo", "fast")
        ha.send("light", "not json")
        ha.send("model", "no-such-model")
        time.sleep(1.0)
        assert show.pipeline.model.info.name == model and show.pipeline.tempo == tempo
        ha.send("model", "nat-neon")
        wait_for(lambda: show.pipeline.model.info.name == "nat-neon", 15, "model swap")
        wait_for(lambda: ha.get(f"{base}/model/state") == "nat-neon")

        # sensors: the state and the health figures
        assert wait_for(lambda: ha.get(f"{base}/state/state") == "playing")
        wait_for(lambda: int(ha.get(f"{base}/frames/state") or 0) > 0, 3, "frames sensor")
        assert float(ha.get(f"{base}/work_p99/state") or 0) > 0
        assert len(ha.get(f"{base}/config_hash/state") or "") == 16
        assert float(ha.get(f"{base}/rss/state") or 0) > 10
        assert ha.get(f"{base}/limiter/state") is not None
        logged = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("mqtt: blackout on=True") for m in logged), logged
        assert any(m.startswith("mqtt: tempo tempo=2.5") for m in logged)
        assert any("mqtt: model" in m and "refused" in m for m in logged)
        assert any("mqtt: tempo b'fast' refused" in m for m in logged), logged
        assert mqtt_lines(caplog) == []                     # nothing went wrong
    finally:
        run.stop()
        ha_avail = wait_for(lambda: ha.get(f"{base}/availability") == "offline", 5,
                            "offline on stop")
        ha.close()
    assert ha_avail


@pytest.mark.slow
def test_wrong_password_is_one_line_and_the_show_plays_on(broker, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="latentdmx")
    base = "ldmx-test/" + uuid.uuid4().hex[:8]
    run = RunningShow(tmp_path, mqtt_section(broker, base, tmp_path, tls=False,
                                             password="not-the-password"))
    try:
        n0, late0 = run.show.frames_out, run.show.late_frames()
        with MachineLateness(40) as machine:
            time.sleep(4.0)                     # several refused attempts (back-off 1, 2 s)
        assert run.show.frames_out - n0 >= 4.0 * 40 * 0.9 - machine.late   # it did not wait
        assert run.show.late_frames() - late0 <= 2 + machine.allowance()
        lines = mqtt_lines(caplog)
        assert len(lines) == 1, lines
        assert "refused" in lines[0] and "Not authorized" in lines[0]
        assert "password_file" in lines[0]
        retries = [r for r in caplog.records if "still was refused by" in r.getMessage()]
        assert retries, "no retry"
    finally:
        run.stop()


@pytest.mark.slow
def test_broker_down_at_start_then_up_and_killed_mid_show(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="latentdmx")
    broker = Broker(tmp_path / "broker", port=free_port(), tls_port=free_port())
    base = "ldmx-test/" + uuid.uuid4().hex[:8]
    run = RunningShow(tmp_path, mqtt_section(broker, base, tmp_path, tls=False))
    show = run.show
    try:
        time.sleep(1.5)                             # nobody there: the show plays on
        lines = mqtt_lines(caplog)
        assert len(lines) == 1 and "cannot reach" in lines[0], lines
        n0 = show.frames_out
        broker.start()
        ha = HomeAssistant(broker, base, tls=False)
        wait_for(lambda: ha.get(f"{base}/availability") == "online", 20, "connected")
        assert show.frames_out > n0
        ha.close()

        broker.kill()                                # a crash mid-show
        n1, late1 = show.frames_out, show.late_frames()
        time.sleep(2.0)
        assert show.frames_out - n1 >= 2.0 * 40 * 0.9
        assert show.late_frames() - late1 <= 2
        lines = mqtt_lines(caplog)
        assert len(lines) == 2 and "lost" in lines[1], lines
        broker.start()                               # no persistence: retained state gone
        ha = HomeAssistant(broker, base, tls=False)
        wait_for(lambda: ha.get(f"{base}/availability") == "online", 30, "reconnected")
        wait_for(lambda: "light" in ha.discovery(), 10, "discovery again")
        ha.send("tempo", "3")
        wait_for(lambda: show.pipeline.tempo == 3.0, what="a command after reconnecting")
        ha.close()
        assert any("MQTT: reconnected" in r.getMessage() for r in caplog.records)
        assert len(mqtt_lines(caplog)) == 2
    finally:
        run.stop()
        broker.close()


# -- configuration: one line each ------------------------------------------------------------
@pytest.mark.parametrize(("section", "field"), [
    ('host = "broker"\nport = 0', "mqtt.port"),
    ('host = "broker"\ntopic_prefix = "a/#"', "mqtt.topic_prefix"),
    ('host = "broker"\ndiscovery_prefix = ""', "mqtt.discovery_prefix"),
    ('host = "broker"\nca_file = "/etc/hostname"', "mqtt.ca_file"),
    ('host = "broker"\ntls = true\nca_file = "/no/such/ca.pem"', "mqtt.ca_file"),
    ('host = "broker"\ntls = true\nca_file = "/etc/hostname"', "mqtt.ca_file"),
    ('host = "broker"\npassword = "x"', "mqtt.password"),
    ('host = "bad host/"', "mqtt.host"),
    ('host = "broker"\nstats_s = 0.1', "mqtt.stats_s"),
    ('host = "broker"\nusername = "u"\npassword = "x"\npassword_file = "pw"',
     "mqtt.password_file"),
    ('host = "broker"\npasword_file = "pw"', "mqtt.pasword_file"),
    ('host = "broker"\nusername = "u"\npassword_file = "/no/such/file"', "mqtt.password_file"),
])
def test_bad_mqtt_config_is_one_line(tmp_path, section, field):
    path = tmp_path / "rig.toml"
    path.write_text(default_config_path().read_text() + "\n[mqtt]\n" + section + "\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.field == field
    assert str(path) in str(exc.value) and "\n" not in str(exc.value) and exc.value.fix


def test_password_file_readable_by_others_is_one_warning(tmp_path, caplog):
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    pw.chmod(0o644)
    path = tmp_path / "rig.toml"
    path.write_text(default_config_path().read_text() +
                    f'\n[mqtt]\nhost = "broker"\nusername = "u"\npassword_file = "{pw}"\n')
    caplog.set_level(logging.WARNING, logger="latentdmx")
    cfg = load_config(path)
    assert cfg.mqtt.password == "s3cret" and cfg.mqtt.enabled
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "chmod o-r" in warned[0] and str(pw) in warned[0]
    pw.chmod(0o600)
    caplog.clear()
    load_config(path)
    assert not caplog.records


def test_no_section_no_host_no_mqtt():
    cfg = load_config(None)
    assert not cfg.mqtt.enabled


@pytest.mark.slow
def test_daemon_health_cli_and_last_will_when_it_dies(broker, tmp_path):
    """A real `latentdmx run` daemon: `latentdmx health` answers over the control socket;
    SIGKILL (no goodbye): the broker publishes the last will, Home Assistant sees offline."""
    base = "ldmx-test/" + uuid.uuid4().hex[:8]
    config = tmp_path / "rig.toml"
    config.write_text(default_config_path().read_text() +
                      mqtt_section(broker, base, tmp_path), encoding="utf-8")
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RUNTIME_DIRECTORY", "NOTIFY_SOCKET", "LATENTDMX_SOCKET")}
    env.update(XDG_RUNTIME_DIR=str(xdg), STATE_DIRECTORY=str(tmp_path / "state"),
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    ha = HomeAssistant(broker, base)
    proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--config",
                             str(config), "--duration", "60"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: ha.get(f"{base}/availability") == "online", 30, "online")
        cli = subprocess.run([sys.executable, "-m", "pi_app.cli", "health"], env=env,
                             capture_output=True, text=True, timeout=30)
        assert cli.returncode == 0, cli.stderr
        text = cli.stdout
        for label in ("frames sent", "frames late", "frame work p50 ms", "frame work p99 ms",
                      "output errors", "limiter interventions", "group members",
                      "audio locked", "rss bytes", "uptime", "fps achieved", "config hash"):
            assert f"\n{label} " in "\n" + text, (label, text)
        assert hashlib.sha256(config.read_bytes()).hexdigest()[:16] in text
        proc.kill()                                          # a crash: no "offline" of its own
        proc.wait(10)
        wait_for(lambda: ha.get(f"{base}/availability") == "offline", 10, "the last will")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        ha.close()


@pytest.mark.parametrize(("host", "want"), [("192.168.1.10", ["192.168.1.10"]),
                                            ("127.0.0.1", []), ("localhost", []),
                                            ("homeassistant.local", ["192.168.0.0/16"])])
def test_the_service_may_reach_the_broker(tmp_path, host, want):
    from pi_app.allow import allowed

    path = tmp_path / "rig.toml"
    path.write_text(default_config_path().read_text() + f'\n[mqtt]\nhost = "{host}"\n')
    got = allowed(load_config(path))
    assert all(w in got for w in want) and (want or got == [])


@pytest.mark.slow
def test_check_and_run_say_a_bad_mqtt_section_in_one_line(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text(default_config_path().read_text() + '\n[mqtt]\nhost = "b"\nport = 99999\n')
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_RUNTIME_DIR": str(tmp_path)}
    for args in (["check", str(path)], ["run", "--config", str(path), "--duration", "1"]):
        r = subprocess.run([sys.executable, "-m", "pi_app.cli", *args], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0
        lines = (r.stdout + r.stderr).strip().splitlines()
        assert lines == [f"error: {path}: mqtt.port: port 99999 is outside 1..65535 — use "
                         "1883 (plain) or 8883 (TLS), or your broker's port"], lines


def test_a_reload_that_changes_mqtt_says_it_needs_a_restart(tmp_path, caplog):
    path = tmp_path / "rig.toml"
    path.write_text(default_config_path().read_text())
    cfg = load_config(path)
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes), control=False, config_path=path,
                presets_dir=tmp_path / "presets")
    path.write_text(default_config_path().read_text() + '\n[mqtt]\nhost = "broker"\n')
    caplog.set_level(logging.INFO, logger="latentdmx")
    show._reload(0.0)
    assert not show.config.mqtt.enabled
    assert any("changes to mqtt need a restart" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_a_broker_whose_certificate_our_ca_did_not_sign_is_one_line(broker, tmp_path, caplog):
    from mosquitto_fixture import make_ca

    other = tmp_path / "other-ca"
    other.mkdir()
    ca, _, _ = make_ca(other)
    caplog.set_level(logging.INFO, logger="latentdmx")
    base = "ldmx-test/" + uuid.uuid4().hex[:8]
    section = mqtt_section(broker, base, tmp_path).replace(str(broker.ca), str(ca))
    run = RunningShow(tmp_path, section)
    try:
        n0 = run.show.frames_out
        time.sleep(3.0)
        assert run.show.frames_out - n0 >= 3.0 * 40 * 0.9
        lines = mqtt_lines(caplog)
        assert len(lines) == 1 and "TLS failed: check ca_file" in lines[0], lines
    finally:
        run.stop()


@pytest.mark.slow
def test_state_is_published_on_change_only(broker, tmp_path):
    base = "ldmx-test/" + uuid.uuid4().hex[:8]
    counts: dict[str, int] = {}
    ha = HomeAssistant(broker, base)
    ha.client.on_message = lambda c, u, m: counts.__setitem__(m.topic, counts.get(m.topic, 0)
                                                             + 1) or ha._message(c, u, m)
    run = RunningShow(tmp_path, mqtt_section(broker, base, tmp_path))
    try:
        light = f"{base}/light/state"
        wait_for(lambda: ha.get(light), what="the light's state")
        time.sleep(1.5)
        before = dict(counts)
        time.sleep(3.0)                             # nothing changes: nothing is sent again
        for key in ("light", "tempo", "still", "pause", "palette", "model", "state"):
            topic = f"{base}/{key}/state"
            assert counts.get(topic) == before.get(topic) == 1, (topic, counts.get(topic))
        assert sum(v for t, v in counts.items() if t.endswith("/config")) == \
            sum(v for t, v in before.items() if t.endswith("/config"))   # nor discovery
        ha.send("tempo", "1.5")                     # a change: one message
        wait_for(lambda: ha.get(f"{base}/tempo/state") == "1.5")
        time.sleep(1.0)
        assert counts[f"{base}/tempo/state"] == 2
    finally:
        run.stop()
        ha.close()


@pytest.mark.slow
def test_a_broker_that_never_answers_does_not_hold_the_show(tmp_path, caplog):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)                                 # takes the connection, never answers
    port = silent.getsockname()[1]
    caplog.set_level(logging.INFO, logger="latentdmx")
    base = "ldmx-test/" + uuid.uuid4().hex[:8]
    section = (f'\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\ntopic_prefix = "{base}"\n'
               'keepalive_s = 5\n')
    run = RunningShow(tmp_path, section)
    try:
        n0, late0 = run.show.frames_out, run.show.late_frames()
        time.sleep(4.0)
        assert run.show.frames_out - n0 >= 4.0 * 40 * 0.9
        assert run.show.late_frames() - late0 <= 2
    finally:
        t0 = time.monotonic()
        run.stop()
        assert time.monotonic() - t0 < 10.0          # stopping does not wait for it either
        silent.close()


@pytest.mark.slow
def test_a_command_from_home_assistant_plays_on_every_member_of_a_group(tmp_path, caplog):
    """Two members of a lockstep group, one with [mqtt]: Home Assistant's tempo reaches the
    other member too, at the same frame (the vocabulary's group path), in a namespace with
    only its loopback (the group's multicast and the broker stay inside it)."""
    from group_lan import LoOnly, lan_missing_reason
    from lockstep_daemons import with_sync

    if lan_missing_reason() is not None:
        pytest.skip(lan_missing_reason() or "")
    sync = ('group = "mqtt-test"\nkey = "kV3q-Zt8wPn2RbX7_mLc9YfH4sJd6GaE"\n'
            'interface = "127.0.0.1"\n')
    caplog.set_level(logging.INFO, logger="latentdmx")
    with LoOnly() as ns:
        broker = Broker(tmp_path / "broker", ns=ns).start()
        base = "ldmx-test/" + uuid.uuid4().hex[:8]
        shows, threads = [], []
        try:
            for name, extra in (("a", mqtt_section(broker, base, tmp_path, tls=False)),
                                ("b", "")):
                path = tmp_path / f"{name}.toml"
                path.write_text(with_sync(default_config_path().read_text(), sync) + extra)
                cfg = load_config(path)
                patch = Patch(cfg)
                show = Show(cfg, SimOutput(patch.universes), control=False,
                            presets_dir=tmp_path / f"{name}-presets")
                th = threading.Thread(target=ns.call, args=(show.run,), daemon=True)
                th.start()
                shows.append(show)
                threads.append(th)
            a, b = shows
            wait_for(lambda: a.frames_out > 40 and b.frames_out > 40, 20, "both playing")
            ha = ns.call(lambda: HomeAssistant(broker, base, tls=False))
            wait_for(lambda: ha.get(f"{base}/availability") == "online", 20, "online")
            wait_for(lambda: len(a.lockstep.members_text()) >= 1, 10, "a hears b")
            ha.send("tempo", "2.5")
            wait_for(lambda: a.pipeline.tempo == 2.5 and b.pipeline.tempo == 2.5, 10,
                     "the tempo on both members")
            ha.close()
        finally:
            for show in shows:
                show.stop()
            for th in threads:
                th.join(20)
            broker.close()
    got = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("mqtt: tempo tempo=2.5") for m in got)
    assert any(m.startswith("group: tempo tempo=2.5 from ") for m in got), \
        [m for m in got if m.startswith("group")]
