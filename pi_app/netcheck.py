"""`latentdmx doctor --output sacn|artnet|ddp`: what stands between the daemon and the nodes.

For each output, in order:

* **the interface** — the configured one exists, is up, has an IPv4 address (and, for
  multicast, the MULTICAST flag); with none configured, the one the routing table picks;
* **a route** — to every multicast group, node and broadcast address (a UDP ``connect``
  asks the kernel, nothing is sent); multicast with no interface and no route is the classic
  "works on my desk, silent on the Pi" (fix: ``interface = "eth0"``);
* **the destinations answering, where they can** — unicast nodes answer ``ping``; an sACN
  node is sent a universe discovery packet (harmless: it only lists our universes), and an
  ICMP "port unreachable" back means the host is there but not listening for E1.31; Art-Net
  nodes are asked with ArtPoll and name themselves in their ArtPollReply (in broadcast mode
  this finds every node on the network). Multicast receivers cannot be asked (E1.31 has no
  poll): the doctor says so;
* **the port** — other programs on this machine with the protocol's UDP port open (olad's own
  E1.31 or Art-Net plugin, say, which would then be a second source); Art-Net's ArtPollReply
  comes back to port 6454, so it must be free for the poll;
* **the service** — when ``latentdmx.service`` is installed, its network drop-in allows what
  this config needs (`allow.py`; fix: ``sudo latentdmx service-network --install``).
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path

from . import allow
from .outputs.doctor import Finding
from .outputs.net import SIOCGIFADDR, interface_address
from .outputs.resolve import is_name, system_lookup

IFF_UP, IFF_RUNNING, IFF_MULTICAST = 0x1, 0x40, 0x1000
SIOCGIFFLAGS = 0x8913
ARP_TABLE = Path("/proc/thread-self/net/arp")      # this thread's network namespace


# -- interfaces and routes ----------------------------------------------------------
def _if_addresses() -> dict[str, str]:
    """interface name -> IPv4 address (interfaces that have one)."""
    import fcntl

    out = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(s.fileno(), SIOCGIFADDR,
                                     struct.pack("256s", name[:15].encode()))
            except OSError:
                continue
            out[name] = socket.inet_ntoa(packed[20:24])
    return out


def _flags(name: str) -> int:
    """The interface's flags (SIOCGIFFLAGS: asks the kernel, in this network namespace)."""
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, struct.pack("256s", name[:15].encode()))
        except OSError:
            return 0
    return struct.unpack("H", res[16:18])[0]


def _route(dest: str, port: int, source: str = "") -> tuple[str | None, str]:
    """(interface name or None, error) the kernel would send `dest` from."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if source:
                s.bind((source, 0))
            s.connect((dest, port))
        except OSError as exc:
            return None, exc.strerror or str(exc)
        src = s.getsockname()[0]
    names = [n for n, a in _if_addresses().items() if a == src]
    return (names[0] if names else src), ""


def check_interface(name: str, multicast: bool, field: str) -> list[Finding]:
    if not name:
        return []
    try:
        addr = interface_address(name)
    except Exception as exc:  # noqa: BLE001 - OutputError: does not exist / no address
        return [Finding(False, str(getattr(exc, "what", exc)),
                        f"set {field} to one of: {', '.join(_if_addresses()) or '-'} "
                        "(`ip -br addr`), or leave it empty")]
    dev = name if not name[0].isdigit() else next(
        (n for n, a in _if_addresses().items() if a == addr), name)
    flags = _flags(dev)
    if flags and (not flags & IFF_UP or not flags & IFF_RUNNING):
        return [Finding(False, f"interface {dev} ({addr}) is down",
                        f"plug the cable in / join the Wi-Fi; `ip link show {dev}`")]
    if multicast and flags and not flags & IFF_MULTICAST:
        return [Finding(False, f"interface {dev} cannot send multicast",
                        "use unicast destinations, or another interface")]
    return [Finding(True, f"interface {dev} is up ({addr})")]


def check_routes(dests: list[str], port: int, interface: str, multicast: bool,
                 field: str) -> list[Finding]:
    source = ""
    if interface:
        try:
            source = interface_address(interface)
        except Exception:  # noqa: BLE001 - reported by check_interface
            return []
    found = []
    by_dev: dict[str, list[str]] = {}
    for d in dests:
        if is_name(d) and resolve_finding(d)[0] is None:
            continue                            # check_unicast says it does not resolve
        dev, err = _route(d, port, source)
        if dev is None:
            fix = (f'set {field} = "eth0" (the interface the lights are on): multicast then '
                   "goes out there whatever the routing table says" if multicast and
                   not interface else "check the address and the network (`ip route get "
                   f"{d}`)")
            found.append(Finding(False, f"no route to {d} ({err})", fix))
        else:
            by_dev.setdefault(dev, []).append(d)
    for dev, ds in by_dev.items():
        shown = ", ".join(ds[:3]) + (f" and {len(ds) - 3} more" if len(ds) > 3 else "")
        how = " (interface setting)" if interface and multicast else ""
        found.append(Finding(True, f"{shown} go{'es' if len(ds) == 1 else ''} out {dev}{how}"))
    return found


# -- answering ----------------------------------------------------------------------
def _ping(host: str) -> bool | None:
    exe = shutil.which("ping")
    if not exe:
        return None
    try:
        r = subprocess.run([exe, "-c", "1", "-W", "1", host], capture_output=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.returncode == 0


def _arp(host: str, wait_s: float = 1.5) -> bool | None:
    """After a packet to an on-link `host`: True once its MAC is known, False if the kernel
    is still asking (no ARP reply), None if it never asked (off-link: a gateway)."""
    deadline = time.monotonic() + wait_s
    state = None
    while True:
        try:
            rows = [r.split() for r in ARP_TABLE.read_text().splitlines()[1:]]
        except OSError:
            return None
        flags = [int(r[2], 16) for r in rows if len(r) > 2 and r[0] == host]
        state = None if not flags else bool(flags[0] & 0x2)
        if state or time.monotonic() >= deadline:
            return state
        time.sleep(0.1)


def _port_refused(host: str, port: int, probe: bytes, source: str = "") -> bool:
    """Send `probe`; True if an ICMP port-unreachable comes back (nothing listens)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            if source:
                s.bind((source, 0))
            s.connect((host, port))
            s.send(probe)
            if select.select([s], [], [], 0.5)[0]:
                s.recv(2048)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def resolve_finding(name: str) -> tuple[str | None, Finding | None]:
    """A node given by host name: its address now (the system resolver, as the output
    asks it), or a finding saying it does not resolve; (name, None) for an address."""
    if not is_name(name):
        return name, None
    try:
        ip = system_lookup(name)
    except OSError as exc:
        return None, Finding(False, f"{name} does not resolve ({exc.strerror or exc})",
                             "is the node on and on this network? `.local` names need mDNS "
                             "(`sudo apt install libnss-mdns`); or write its address")
    return ip, Finding(True, f"{name} is {ip}")


def check_unicast(hosts: list[str], port: int, probe: bytes | None, protocol: str,
                  enable_fix: str, source: str = "") -> list[Finding]:
    found = []
    for name in hosts:
        h, said = resolve_finding(name)
        if said is not None:
            found.append(said)
        if h is None:
            continue
        refused = probe is not None and _port_refused(h, port, probe, source)
        pong = _ping(h)
        if pong is None:                     # no ping here: ask the neighbour table
            if probe is None:
                _port_refused(h, port, b"", source)
            pong = _arp(h)
        if refused:
            found.append(Finding(False, f"{h} answers but nothing listens on UDP {port} "
                                        f"({protocol})", enable_fix))
        elif pong is False:
            found.append(Finding(False, f"{h} does not answer (ping / ARP)",
                                 "is it powered and on this network? check its address "
                                 "(WLED shows it under Config > WiFi Setup); some nodes "
                                 "never answer ping"))
        elif pong:
            found.append(Finding(True, f"{h} answers (ping / ARP)"))
    return found


def _udp_holders(port: int) -> list[str]:
    """'comm (pid N)' of processes with a UDP socket bound to `port`."""
    inodes = set()
    for table in ("/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f[9])
    if not inodes:
        return []
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            for fd in (d / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    found.append(f"{(d / 'comm').read_text().strip()} (pid {d.name})")
                    break
        except OSError:
            continue
    return found or ["another program"]


def check_service(cfg) -> list[Finding]:
    if not allow.UNIT_PATH.exists():            # no service here: nothing to allow
        return []
    have = allow.installed_entries(allow.DROPIN_PATH)
    want = allow.allowed(cfg)
    fix = ("sudo latentdmx service-network --install --config " + str(cfg.path) +
           ", then sudo systemctl daemon-reload && sudo systemctl restart latentdmx")
    if want and have is None:
        return [Finding(False, "the service may only talk to localhost (no network drop-in)",
                        fix)]
    if have is not None and sorted(have) != sorted(want):
        return [Finding(False, f"the service's network drop-in ({allow.DROPIN_PATH}) does not "
                               "match this config", fix)]
    return [Finding(True, "the service's IPAddressAllow= lets the output through")]


# -- the two outputs ----------------------------------------------------------------
def check_sacn(cfg) -> list[Finding]:
    from .outputs import e131
    from .outputs.sacn import SacnOutput

    c = cfg.output.sacn
    out = SacnOutput(sorted({f.universe for f in cfg.fixtures}), config=c,
                     cid=uuid.UUID(int=0))
    multicast = not c.unicast
    found = check_interface(c.interface, multicast, "output.sacn.interface")
    if found and not found[0].ok:
        return found + check_service(cfg)
    dests = list(out.addresses())
    found += check_routes(dests, c.port, c.interface, multicast, "output.sacn.interface")
    if multicast:
        found.append(Finding(True, f"multicast to {len(out.universes)} universe(s): sACN "
                                   "receivers cannot be asked whether they listen — if a node "
                                   "stays dark, check it is set to sACN/E1.31 multicast on "
                                   f"universe {min(out.sacn_universe.values())}.."))
    else:
        source = interface_address(c.interface) if c.interface else ""
        probe = e131.discovery_packets(uuid.UUID(int=0), out.source_name,
                                       out.sacn_universe.values())[0]
        found += check_unicast(list(out.unicast), c.port, probe, "E1.31",
                               "enable E1.31 on the node (WLED: Config > Sync Interfaces > "
                               "DMX / E1.31 input) or check output.sacn.port", source)
    holders = _udp_holders(c.port)
    if holders:
        found.append(Finding(True, f"UDP port {c.port} is also open in {', '.join(holders)} "
                                   "(fine, unless it sends the same universes: receivers "
                                   "would see two sources)"))
    return found + check_service(cfg)


def check_artnet(cfg) -> list[Finding]:
    from .outputs.artnet import ArtNetOutput

    c = cfg.output.artnet
    out = ArtNetOutput(sorted({f.universe for f in cfg.fixtures}), config=c)
    found = check_interface(c.interface, False, "output.artnet.interface")
    if found and not found[0].ok:
        return found + check_service(cfg)
    found += check_routes(list(out.addresses()), c.port, c.interface, False,
                          "output.artnet.interface")
    source = interface_address(c.interface) if c.interface else ""
    if c.nodes:
        found += check_unicast(list(c.nodes), c.port, None, "Art-Net", "", source)
    found += _poll(list(c.nodes) or [c.broadcast], c.port, source, broadcast=not c.nodes)
    return found + check_service(cfg)


def check_ddp(cfg) -> list[Finding]:
    from .outputs.ddp import DdpOutput, header

    c = cfg.output.ddp
    out = DdpOutput(sorted({f.universe for f in cfg.fixtures}), config=c)
    found = check_interface(c.interface, False, "output.ddp.interface")
    if found and not found[0].ok:
        return found + check_service(cfg)
    source = interface_address(c.interface) if c.interface else ""
    for host, port in out.dests:
        found += check_routes([host], port, c.interface, False, "output.ddp.interface")
        if c.destinations:       # an empty packet without PUSH: receivers show nothing
            found += check_unicast([host], port, header(0, 0), "DDP",
                                   "enable DDP on the controller (WLED: Config > Sync "
                                   "Interfaces > Receive UDP realtime; FPP: Input/Output Setup > "
                                   "Channel Inputs) or check output.ddp.destinations", source)
    if not c.destinations:
        found.append(Finding(True, f"broadcast to {c.broadcast}:{c.port}: DDP receivers cannot "
                                   "be asked whether they listen — if a controller stays "
                                   "dark, list it in output.ddp.destinations"))
    return found + check_service(cfg)


def _poll(dests: list[str], port: int, source: str, *, broadcast: bool) -> list[Finding]:
    """ArtPoll the nodes (or the broadcast address); the ArtPollReplies name them."""
    from .outputs.artnet import OP_POLL_REPLY, poll_packet

    ip_of = {d: resolve_finding(d)[0] for d in dests}     # nodes given by host name
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            s.bind(("", port))              # replies may be unicast or broadcast
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            holders = ", ".join(_udp_holders(port))
            return [Finding(True, f"UDP port {port} is taken by {holders}: the doctor cannot "
                                  "hear ArtPollReply (the output itself does not need the "
                                  "port; if that is olad's Art-Net plugin, it is a second "
                                  "Art-Net source)")]
        for d in dests:
            if ip_of[d] is None:                # does not resolve: said by check_unicast
                continue
            try:
                s.sendto(poll_packet(), (ip_of[d], port))
            except OSError as exc:
                return [Finding(False, f"cannot ArtPoll {d} ({exc.strerror or exc})",
                                "see the route finding above")]
        replies: dict[str, str] = {}
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if not select.select([s], [], [], max(0.0, deadline - time.monotonic()))[0]:
                break
            data, (ip, _) = s.recvfrom(2048)
            if data[:8] == b"Art-Net\x00" and int.from_bytes(data[8:10], "little") == \
                    OP_POLL_REPLY and len(data) >= 44:
                name = data[26:44].split(b"\x00", 1)[0].decode("utf-8", "replace")
                replies[ip] = name
    except OSError as exc:
        return [Finding(False, f"ArtPoll failed ({exc.strerror or exc})", "")]
    finally:
        s.close()
    if broadcast:
        if not replies:
            return [Finding(False, f"no Art-Net node answered an ArtPoll to {dests[0]}",
                            "are the nodes on and on this network, with Art-Net enabled? "
                            "or list them in output.artnet.nodes")]
        return [Finding(True, "Art-Net nodes found: " + ", ".join(
            f"{n!r} ({ip})" for ip, n in sorted(replies.items())))]
    found = []
    for d in dests:
        ip = ip_of[d]
        if ip is None:
            continue
        if ip in replies:
            found.append(Finding(True, f"{d} answers ArtPoll: {replies[ip]!r}"))
        else:
            found.append(Finding(False, f"{d} does not answer ArtPoll",
                                 "is Art-Net enabled on the node (WLED: Config > Sync "
                                 "Interfaces > DMX / Art-Net)? is the address right?"))
    return found
