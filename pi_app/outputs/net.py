"""What the network outputs (``sacn``, ``artnet``, ``ddp``) share: one non-blocking UDP socket,
sent to on the frame clock's own thread, the error bookkeeping around it, node addresses that
are host names (`resolve.py`), and the send loop of a frame's prebuilt packets.

No thread and no event loop: a frame is a few dozen ``sendto`` calls on a socket that never
blocks (a full send buffer drops that packet and counts it; the next frame carries fresh
data anyway). A destination that fails (no route, network down, the service's
``IPAddressAllow=`` refusing it) is logged once when it starts failing and once when it works
again, and the show goes on: lights on the network get the frames as soon as the network is
back, with nothing to reconnect.

`NetOutput` is the base of the three outputs: rig universe -> protocol universe map, the
socket, `health()`. Subclasses build their packets once at `open()` and only patch the data,
the sequence number and the flags per frame.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, OutputError
from .base import Output
from .resolve import Resolver, host, is_name

log = logging.getLogger("latentdmx.net")

SIOCGIFADDR = 0x8915
SEND_BUFFER_BYTES = 1 << 20         # 64 universes x a few destinations fit, with room
MULTICAST_TTL = 8
SERVICE_FIX = ("the service's IPAddressAllow= does not let it through: run `sudo latentdmx "
               "service-network --install`, then `sudo systemctl restart latentdmx`")
_WHY = {
    errno.ENETUNREACH: "no route to it (is the network up? `latentdmx doctor`)",
    errno.EHOSTUNREACH: "host unreachable (`latentdmx doctor`)",
    errno.ENETDOWN: "the network interface is down (`latentdmx doctor`)",
    errno.EADDRNOTAVAIL: "the interface's address is gone (`latentdmx doctor`)",
    errno.EPERM: SERVICE_FIX,
    errno.EACCES: "broadcast refused (SO_BROADCAST)",
}


# -- config helpers ---------------------------------------------------------------------------
def ipv4(text: object, *, file: str, field: str) -> ipaddress.IPv4Address:
    """A dotted IPv4 address from the config, or a one-line `ConfigError`."""
    try:
        if not isinstance(text, str):
            raise ValueError
        return ipaddress.IPv4Address(text.strip())
    except ValueError:
        raise ConfigError(f"{text!r} is not an IPv4 address", file=file, field=field,
                          fix='write the node\'s address, e.g. "192.168.1.50" (give the node '
                              'a fixed address or a DHCP reservation)') from None


def node(text: object, *, file: str, field: str, multicast_fix: str) -> str:
    """A receiver's address from the config: an IPv4 literal that is not multicast, or a
    host name (`resolve.host`); a one-line `ConfigError` otherwise."""
    h = host(text, file=file, field=field)
    if not is_name(h) and ipaddress.IPv4Address(h).is_multicast:
        raise ConfigError(f"{h} is a multicast address", file=file, field=field,
                          fix=multicast_fix)
    return h


def check_port(port: int, *, file: str, field: str) -> None:
    if not 1 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range", file=file, field=field,
                          fix="use 1..65535 (leave it out for the standard port)")


def check_interface(name: str, *, file: str, field: str) -> None:
    """`interface` is a name (``eth0``) or an IPv4 address; only its form is checked here
    (the interface may not exist on the machine that validates the config)."""
    if not name:
        return
    if any(c.isspace() for c in name) or (len(name) > 15 and not name[0].isdigit()):
        raise ConfigError(f"{name!r} is not an interface name or address", file=file,
                          field=field, fix='write e.g. "eth0", "wlan0" or "192.168.1.10"')
    if name[0].isdigit():
        ipv4(name, file=file, field=field)


def universe_keys(mapping: dict, *, file: str, field: str, lo: int, hi: int,
                  what: str, parse=None) -> None:
    """Check a ``universe_map`` table: rig universe (a string of digits) -> a number in
    lo..hi (or what `parse` accepts)."""
    for k, v in mapping.items():
        ok = str(k).isdigit()
        if ok and parse is not None:
            try:
                parse(v)
            except ValueError:
                ok = False
        elif ok:
            ok = isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
        if not ok:
            raise ConfigError(f"bad universe mapping {k!r} = {v!r}", file=file, field=field,
                              fix=f'map a rig universe to {what}, e.g. {{ "1" = {max(lo, 1)} }}')


# -- the interface ------------------------------------------------------------------------------
class NoAddressYet(OutputError):
    """The interface exists but has no IPv4 address (yet: DHCP, Wi-Fi still joining)."""


def interface_address(name: str) -> str:
    """The IPv4 address of an interface given by name or address ("" -> "")."""
    if not name or name[0].isdigit():
        return name
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), SIOCGIFADDR,
                                 struct.pack("256s", name[:15].encode()))
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise OutputError(f"network interface {name} does not exist",
                                  field="interface",
                                  fix="see `ip -br addr` for the interfaces there are, or "
                                      "leave interface empty to let the routing table "
                                      "choose") from None
            raise NoAddressYet(f"network interface {name} has no IPv4 address",
                               field="interface",
                               fix="is it connected (cable, Wi-Fi)? `ip -br addr`") from None
    return socket.inet_ntoa(packed[20:24])


# -- the socket -----------------------------------------------------------------------------------
class UdpSender:
    """A non-blocking UDP socket that counts what it could not send and says why, once.

    Destinations are ``(host, port)`` where host is an address or a host name: names go to
    their current address (`resolve.Resolver`, its own thread; `names` lists them, and
    `lookup` replaces the system resolver in tests). A packet for a name that has not
    resolved yet is skipped and counted (`unresolved`); a send error asks the resolver again."""

    def __init__(self, owner: str, *, interface: str = "", broadcast: bool = False,
                 names: Iterable[str] = (), lookup=None) -> None:
        self.owner = owner                  # "sacn" / "artnet" / "ddp", for the log and errors
        self.interface = interface
        self.broadcast = broadcast
        names = [n for n in dict.fromkeys(names) if is_name(n)]
        self.resolver: Resolver | None = None
        if names:
            self.resolver = Resolver(names, owner, **({"lookup": lookup} if lookup else {}))
        self._names = frozenset(names)
        self.unresolved = 0                 # not sent: the host name has no address yet
        self.sock: socket.socket | None = None
        self.source = ""                    # the local address bound to ("" = any)
        self.packets = 0                    # datagrams handed to the kernel
        self.dropped = 0                    # not sent: the send buffer was full
        self.errors = 0                     # not sent: an error (no route, refused, ...)
        self.last_error: str | None = None
        self._failing: dict[tuple[str, int], int] = {}    # destination -> errno
        self._retry_at = 0.0                # no socket yet: when to try again

    def open(self) -> None:
        """Set the socket up. An interface that exists but has no address yet (a Pi
        booting, Wi-Fi joining) is waited for: logged once, retried every second from
        `send`, frames meanwhile counted as errors. A missing interface is an error."""
        if self.resolver is not None:
            self.resolver.start()
        try:
            self._setup()
        except NoAddressYet as exc:
            self.last_error = exc.what
            self._retry_at = time.monotonic() + 1.0
            log.warning("%s: %s yet; sending starts when it has one", self.owner, exc.what)

    def _setup(self) -> None:
        source = interface_address(self.interface)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            if self.broadcast:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, MULTICAST_TTL)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            if source:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                             socket.inet_aton(source))
                s.bind((source, 0))
        except OSError as exc:
            s.close()
            raise OutputError(f"cannot set up the {self.owner} socket on "
                              f"{self.interface or 'any interface'} ({exc.strerror or exc})",
                              field=f"output.{self.owner}.interface",
                              fix="check the interface (`ip -br addr`), or leave it "
                                  "empty") from None
        self.sock, self.source = s, source

    def close(self) -> None:
        self._retry_at = 0.0
        if self.resolver is not None:
            self.resolver.close()
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def send(self, data: Any, dest: tuple[str, int]) -> bool:
        """One datagram; never blocks, never raises for network trouble."""
        if self.sock is None and not self._retry():
            self.errors += 1
            return False
        to = dest
        if dest[0] in self._names:
            addr = self.resolver.addresses.get(dest[0])   # type: ignore[union-attr]
            if addr is None:
                self.unresolved += 1
                return False
            to = (addr, dest[1])
        try:
            self.sock.sendto(data, to)       # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            self.dropped += 1
            return False
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                self.dropped += 1
                return False
            self._failed(dest, exc)
            return False
        self.packets += 1
        if self._failing and dest in self._failing:
            del self._failing[dest]
            log.warning("%s: sending to %s:%d works again", self.owner, *dest)
            if not self._failing:
                self.last_error = None
        return True

    def _retry(self) -> bool:
        """No socket yet (the interface had no address): try again, at most once a second."""
        now = time.monotonic()
        if self._retry_at == 0.0 or now < self._retry_at:
            return False
        self._retry_at = now + 1.0
        try:
            self._setup()
        except OutputError:
            return False
        self._retry_at = 0.0
        self.last_error = None
        log.warning("%s: interface %s has an address now (%s): sending", self.owner,
                    self.interface, self.source)
        return True

    def _failed(self, dest: tuple[str, int], exc: OSError) -> None:
        self.errors += 1
        if dest[0] in self._names:
            self.resolver.again()            # type: ignore[union-attr]  # moved, perhaps
        code = exc.errno or 0
        if self._failing.get(dest) != code:
            self._failing[dest] = code
            why = _WHY.get(code, exc.strerror or str(exc))
            self.last_error = f"{dest[0]}:{dest[1]}: {why}"
            log.error("%s: cannot send to %s:%d: %s; the show goes on and sends again "
                      "every frame", self.owner, dest[0], dest[1], why)

    @property
    def failing(self) -> list[str]:
        return [f"{h}:{p}" for h, p in self._failing]

    @property
    def unresolved_names(self) -> list[str]:
        return sorted(self.resolver.failing.keys() | (self._names - set(
            self.resolver.addresses))) if self.resolver is not None else []


# -- the base output ----------------------------------------------------------------------------
class NetOutput(Output):
    """What the network outputs share: the universe map, the socket (and its host names),
    the packets of a frame built once at `open()` and patched per frame, health.

    sACN and Art-Net send one packet per universe (`_send_universes`: the slots at
    `data_at`, the universe's own sequence number at `sequence_at`, to its destinations);
    DDP packs the universes into a byte range and sends `_views` whole."""

    broadcast = False              # Art-Net and DDP set SO_BROADCAST
    data_at = 0                    # where a universe's 512 slots start in its packet
    sequence_at = 0                # where its sequence number is
    lookup: Callable[[str], str] | None = None   # tests: a resolver instead of the system's

    def __init__(self, universes: Iterable[int], *, blackout=None) -> None:
        super().__init__(universes, blackout=blackout)
        self.sender: UdpSender | None = None
        self._index = {u: i for i, u in enumerate(self.universes)}
        self._packets = np.zeros((0, 0), np.uint8)   # one row per packet (`_keep_packets`)
        self._views: list[memoryview] = []
        self._seq = [0] * len(self.universes)       # per universe, as in the packets

    def _keep_packets(self, packets: np.ndarray, lengths: Iterable[int] | None = None) -> None:
        """A frame's packets, one a row (its first `lengths` bytes sent, default all)."""
        self._packets = packets
        n = [packets.shape[1]] * len(packets) if lengths is None else list(lengths)
        self._views = [memoryview(row)[:k] for row, k in zip(packets, n, strict=True)]

    def _send_universes(self, frames: Mapping[int, np.ndarray],
                        dests: Sequence[Sequence[tuple[str, int]]],
                        step: Callable[[int], int]) -> None:
        """One packet per universe of `frames` (its row: the slots, the next sequence number
        by `step`) to each of that universe's `dests`."""
        send = self.sender.send                              # type: ignore[union-attr]
        packets, views, seq = self._packets, self._views, self._seq
        at, seq_at, index = self.data_at, self.sequence_at, self._index
        for u, frame in frames.items():
            i = index[u]
            row = packets[i]
            row[at:] = frame
            row[seq_at] = seq[i] = step(seq[i])
            view = views[i]
            for dest in dests[i]:
                send(view, dest)

    def _map(self, mapping: dict, default_of, what: str) -> dict[int, int]:
        """rig universe -> protocol universe; two rig universes on one is refused."""
        out: dict[int, int] = {}
        seen: dict[int, int] = {}
        for u in self.universes:
            v = default_of(mapping.get(str(u), u))
            if v in seen:
                raise OutputError(f"rig universes {seen[v]} and {u} both go to {what} {v}",
                                  field=f"output.{self.name}.universe_map",
                                  fix="map every rig universe to its own universe")
            seen[v] = u
            out[u] = v
        return out

    def _open_socket(self, interface: str, hosts: Iterable[str] = ()) -> None:
        """The socket; `hosts`: the destinations, names among them resolved (resolve.py)."""
        self.sender = UdpSender(self.name, interface=interface, broadcast=self.broadcast,
                                names=hosts, lookup=self.lookup)
        try:
            self.sender.open()
        except OutputError as exc:
            raise OutputError(exc.what, field=f"output.{self.name}.interface",
                              fix=exc.fix) from None

    def _close(self) -> None:
        if self.sender is not None:
            self.sender.close()

    def health(self) -> dict:
        h = super().health()
        s = self.sender
        if s is not None:
            h.update(packets=s.packets, dropped=s.dropped, errors=s.errors,
                     last_error=s.last_error, failing=s.failing)
            if s.resolver is not None:
                h.update(unresolved=s.unresolved, unresolved_names=s.unresolved_names,
                         resolved=dict(s.resolver.addresses))
            h["ok"] = h["ok"] and s.sock is not None and not s.failing and \
                not h.get("unresolved_names")
        return h
