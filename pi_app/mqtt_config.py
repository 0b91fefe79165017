"""``[mqtt]``: the broker Home Assistant listens to. A section with a ``host`` turns it on.

    [mqtt]
    host = "homeassistant.local"     # the broker (Mosquitto, the HA add-on); "" = off
    port = 1883                      # 8883 is the usual TLS port
    username = "latentdmx"
    password_file = "/etc/latentdmx/mqtt-password"   # first line; warned if others may read it
    tls = false                      # true: TLS, checked against ca_file or the system's CAs
    ca_file = ""                     # a PEM file of the CA that signed the broker's certificate
    discovery_prefix = "homeassistant"
    topic_prefix = ""                # "" = latentdmx/<this machine's name>
    name = ""                        # the device's name in Home Assistant ("" = LatentDMX <host>)
    stats_s = 10.0                   # the health sensors are published at most this often

Every mistake is one `ConfigError` naming the file, the field and the fix.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from dataclasses import dataclass

from .errors import ConfigError
from .ranges import check_ranges, ranged

MAX_TOPIC = 200
_HOST_RE = re.compile(r"^[A-Za-z0-9._:\[\]-]{1,253}$")
_NODE_RE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class MqttConfig:
    host: str = ""
    port: int = ranged(1883, 1, 65535, "use 1883 (plain) or 8883 (TLS), or your broker's port",
                       "port {value} is outside {lo}..{hi}")
    username: str = ""
    password: str = ""               # better: password_file (read into this at load)
    password_file: str = ""
    tls: bool = False
    ca_file: str = ""
    discovery_prefix: str = "homeassistant"
    topic_prefix: str = ""
    name: str = ""
    keepalive_s: int = ranged(30, 5, 3600, "use 30 (the default)",
                              "keepalive {value} s is outside {lo}..{hi}")
    # health sensors (fps, frame work, memory...) this often
    stats_s: float = ranged(10.0, 1.0, 3600.0, "use 10 (the default)",
                            "stats_s {value:g} is outside {lo:g}..{hi:g}")

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    def base_topic(self) -> str:
        return self.topic_prefix or f"latentdmx/{node_name()}"

    def node_id(self) -> str:
        """The device's id in Home Assistant (unique per topic prefix)."""
        return _NODE_RE.sub("_", self.base_topic()).strip("_") or "latentdmx"

    def device_name(self) -> str:
        return self.name or f"LatentDMX {node_name()}"

    def validate(self, file: str) -> None:
        """The ``[mqtt]`` section's own checks (ports, topics, credentials, CA file)."""
        check_ranges(self, file, "mqtt")
        if not self.enabled:
            return
        if not _HOST_RE.match(self.host):
            raise ConfigError(f"{self.host!r} is not a host name or address", file=file,
                              field="mqtt.host", fix='write e.g. "homeassistant.local" or '
                                                     '"192.168.1.10"')
        _check_topic(self.discovery_prefix, file, "mqtt.discovery_prefix", empty_ok=False)
        _check_topic(self.topic_prefix, file, "mqtt.topic_prefix", empty_ok=True)
        if self.password and not self.username:
            raise ConfigError("a password without a username", file=file,
                              field="mqtt.password_file" if self.password_file
                              else "mqtt.password", fix="set [mqtt] username too")
        if self.ca_file:
            _check_ca(self, file)


def node_name() -> str:
    return _NODE_RE.sub("-", socket.gethostname()).strip("-") or "latentdmx"


def _check_topic(text: str, file: str, fld: str, *, empty_ok: bool) -> None:
    if not text and empty_ok:
        return
    bad = ("is empty" if not text else
           "has a wildcard (+ or #)" if "+" in text or "#" in text else
           "starts or ends with /" if text.startswith("/") or text.endswith("/") else
           "has an empty level (//)" if "//" in text else
           "has a control character" if any(ord(c) < 32 for c in text) else
           f"is longer than {MAX_TOPIC} characters" if len(text) > MAX_TOPIC else "")
    if bad:
        raise ConfigError(f"topic {text!r} {bad}", file=file, field=fld,
                          fix='use plain topic levels, e.g. "latentdmx/gallery"')


def _check_ca(m: MqttConfig, file: str) -> None:
    if not m.tls:
        raise ConfigError("ca_file is set but tls is off", file=file, field="mqtt.ca_file",
                          fix="set tls = true (or remove ca_file)")
    path = os.path.expanduser(m.ca_file)
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigError(f"cannot read {path}", file=file, field="mqtt.ca_file",
                          fix="give the path of the PEM file of the broker's CA")
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"{path} holds no CA certificate ({exc.__class__.__name__})",
                          file=file, field="mqtt.ca_file",
                          fix="give the PEM file of the CA that signed the broker's "
                              "certificate") from None
