"""The service's network allow-list, made from the config: which addresses the daemon may talk
to under systemd's ``IPAddressDeny=any`` (see ``systemd/latentdmx.service``).

The unit itself allows only ``localhost`` (olad, and nothing else). What the configured show
needs beyond that goes into a drop-in, ``/etc/systemd/system/latentdmx.service.d/network.conf``,
written by ``sudo latentdmx service-network --install`` (and by ``scripts/setup-pi.sh``):

* the output's own addresses (`Output.addresses`; with ``[[outputs]]`` every output's): for
  ``sacn`` the multicast group of every universe (239.255.<hi>.<lo>), the sync universe's
  and the discovery universe's, or the unicast destinations; for ``artnet`` the nodes, or the
  broadcast address, and the broadcast address for ArtSync; for ``ddp`` the destinations or
  the broadcast address; for ``ola`` olad's address when it is not this machine; the local
  networks when a node is given by host name (its address may change under DHCP);
* the local networks when the web page listens beyond localhost (``[preview] web`` on a host
  other than 127.0.0.1: its viewers are on the LAN);
* the OSC senders (``[osc] allow``) when the OSC server listens beyond localhost;
* FPP's MultiSync group (239.70.80.80) and the masters (``[fpp] allow``, else the local
  networks) when the FPP remote is on;
* a lockstep group's multicast address and the local networks its members send from;
* the MQTT broker (``[mqtt] host``): its address, or the local networks when it is a name.

Nothing else: a light show never talks to the internet. Consecutive addresses are merged
into prefixes (64 sACN universes: 239.255.0.1/32, 239.255.0.2/31, ..., the same set).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from .fpp_config import MULTICAST
from .hosts import is_loopback
from .outputs import output_for
from .outputs.several import kinds_text
from .patch import Patch
from .sync_config import SyncConfig

UNIT_NAME = "latentdmx.service"
UNIT_PATH = Path("/etc/systemd/system/latentdmx.service")      # installed by setup-pi.sh
DROPIN_PATH = Path("/etc/systemd/system/latentdmx.service.d/network.conf")
SERVICE_CONFIG = Path("/etc/latentdmx/config.toml")
LAN = ("link-local", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


def allowed(config) -> list[str]:
    """The ``IPAddressAllow=`` entries the config needs beyond ``localhost``."""
    addrs = []
    names = False                       # a node given by host name: its address may change
    for a in output_for(config, Patch(config)).addresses():
        try:
            ip = ipaddress.ip_address(a)
        except ValueError:
            names = True
            continue
        if not ip.is_loopback:
            addrs.append(ip)
    nets = [_entry(n) for n in ipaddress.collapse_addresses(
        ipaddress.IPv4Network(a) for a in addrs if isinstance(a, ipaddress.IPv4Address))]
    nets += [_entry(n) for n in ipaddress.collapse_addresses(
        ipaddress.IPv6Network(a) for a in addrs if isinstance(a, ipaddress.IPv6Address))]
    pv = config.preview
    if names or (pv.web and not is_loopback(pv.host)):
        nets += [n for n in LAN if n not in nets]
    osc = getattr(config, "osc", None)
    if osc is not None and osc.enabled and not is_loopback(osc.host):
        for a in osc.allow:
            net = ipaddress.ip_network(a.strip(), strict=False)
            if not net.is_loopback and _entry(net) not in nets:
                nets.append(_entry(net))
    fpp = getattr(config, "fpp", None)
    if fpp is not None and fpp.remote and not is_loopback(fpp.host):  # FPP masters
        want = [MULTICAST] if fpp.multicast else []
        want += [_entry(ipaddress.ip_network(a.strip(), strict=False)) for a in fpp.allow] \
            if fpp.allow else list(LAN)
        nets += [n for n in want if n not in nets]
    sync = getattr(config, "sync", None)
    if sync is not None and sync.group:      # a lockstep group: its address, members on the LAN
        nets += [n for n in allow_entries(sync) if n not in nets]
    mqtt = getattr(config, "mqtt", None)
    if mqtt is not None and mqtt.enabled and not is_loopback(mqtt.host):
        try:                                 # the broker: its address, or a name on the LAN
            broker = [_entry(ipaddress.ip_network(mqtt.host.strip("[]")))]
        except ValueError:
            broker = list(LAN)
        nets += [n for n in broker if n not in nets]
    return nets


def allow_entries(sync: SyncConfig) -> list[str]:
    """What the service's network allow-list needs for the group: its multicast address,
    and the LAN its members send from."""
    return [sync.address, *LAN] if sync.group else []


def _entry(net) -> str:
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def dropin_text(config) -> str:
    entries = allowed(config)
    why = ", ".join(entries) if entries else "nothing beyond localhost"
    lines = [
        f"# Made by `latentdmx service-network --install` from {config.path}:",
        f"# output {kinds_text(config)} (and the web page) talk to {len(entries)} address "
        "block(s) beyond localhost.",
        "# Run it again after changing [output], [[outputs]] or [preview], then",
        "# `sudo systemctl daemon-reload && sudo systemctl restart latentdmx`.",
        "[Service]",
    ]
    if entries:
        lines.append(f"IPAddressAllow={' '.join(entries)}")
    else:
        lines.append(f"# ({why})")
    return "\n".join(lines) + "\n"


def installed_entries(path: Path = DROPIN_PATH) -> list[str] | None:
    """The entries of an installed drop-in (None if there is none)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith("IPAddressAllow="):
            value = line.split("=", 1)[1].split()
            out = [] if not value else out + value
    return out
