"""DMX over E1.31 (sACN) straight to the lighting network (``--output sacn``): nodes, WLED,
pixel controllers, consoles' inputs — no olad in between, as many universes as the rig has.

Per frame, on the frame clock's thread (no thread of our own): one data packet per universe
— to the universe's multicast group 239.255.<hi>.<lo>, or to every ``unicast`` destination —
each carrying the configured priority and, with ``sync = true``, the synchronization
universe; then one synchronization packet, so receivers that support E1.31 universe
synchronization change every universe of the frame at the same moment. Every 10 s a universe
discovery packet lists the universes. On stop, after the blackout frame, three
stream-terminated packets per universe tell receivers the source is gone (not a fault).
Preview data is never set.

The CID (the source's identity, which consoles and merging receivers key on) is made once
per installation and kept in the state folder (`e131.installation_cid`), unless ``cid`` is set.

**Multi-source lockstep.** Set `auto_sync` to False and the output still stamps every data
packet with the sync universe but sends no synchronization packet itself; whoever owns the
clock calls `send_sync()` once per frame after every source has sent its data (e.g. one
leader for several Pis on one sync universe). `send_sync()` is safe to call from the thread
that calls `send()`.

Why not the ``sacn`` package (python-sacn 1.11): its sender runs its own thread at its own
rate; its ``manual_flush`` mode does run on the caller's thread but converts and validates
all 512 slots per universe in Python (milliseconds at 64 universes), sends the sync packet
to the multicast group even when the data is unicast, sends each universe to only one
destination, and reports send errors by raising from its thread. We write the packets
(`e131.py`) and check them against olad's E1.31 input and against ``sacn``'s own parser.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from . import e131, net
from .base import Frames
from .net import NetOutput


@dataclass(frozen=True)
class SacnConfig:
    """``[output.sacn]``."""

    unicast: tuple[str, ...] = ()     # destinations; empty: multicast 239.255.<hi>.<lo>
    port: int = e131.PORT
    priority: int = e131.DEFAULT_PRIORITY               # 0..200
    universe_priority: dict = field(default_factory=dict)   # { "2" = 150 }: per rig universe
    sync: bool = True                 # universe synchronization (one sync packet a frame)
    sync_universe: int = 63999        # the universe the sync packets go on
    source_name: str = ""             # empty: "LatentDMX on <hostname>"
    universe_map: dict = field(default_factory=dict)    # rig universe -> sACN universe
    interface: str = ""               # name or IPv4 address; empty: the routing table's
    cid: str = ""                     # empty: made once, kept in the state folder
    discovery: bool = True            # universe discovery every 10 s

    def validate(self, file: str) -> None:
        s = "output.sacn"
        for i, host in enumerate(self.unicast):
            net.node(host, file=file, field=f"{s}.unicast[{i}]",
                     multicast_fix="leave unicast empty for multicast; list only the "
                                   "addresses (or host names) of receivers here")
        net.check_port(self.port, file=file, field=f"{s}.port")
        for fld, value in (("priority", self.priority),
                           *((f"universe_priority.{k}", v)
                             for k, v in self.universe_priority.items())):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    not 0 <= value <= e131.MAX_PRIORITY:
                raise ConfigError(f"priority {value!r} is out of range", file=file,
                                  field=f"{s}.{fld}",
                                  fix="use 0..200 (100 is the default; higher wins)")
        net.universe_keys(self.universe_priority, file=file, field=f"{s}.universe_priority",
                          lo=0, hi=e131.MAX_PRIORITY, what="a priority 0..200")
        net.universe_keys(self.universe_map, file=file, field=f"{s}.universe_map", lo=1,
                          hi=e131.MAX_UNIVERSE, what="an sACN universe 1..63999")
        if not 1 <= self.sync_universe <= e131.MAX_UNIVERSE:
            raise ConfigError(f"sync universe {self.sync_universe} is out of range", file=file,
                              field=f"{s}.sync_universe",
                              fix="use 1..63999, a universe no data goes on (63999)")
        if len(self.source_name.encode("utf-8")) > 63:
            raise ConfigError("source name is longer than 63 bytes", file=file,
                              field=f"{s}.source_name", fix="shorten it")
        net.check_interface(self.interface, file=file, field=f"{s}.interface")
        if self.cid:
            try:
                uuid.UUID(self.cid)
            except ValueError:
                raise ConfigError(f"{self.cid!r} is not a UUID", file=file, field=f"{s}.cid",
                                  fix="leave it empty (one is made and kept), or write a "
                                      "UUID such as `python3 -c 'import uuid; "
                                      "print(uuid.uuid4())'` prints") from None


def _next_sequence(seq: int) -> int:
    return (seq + 1) & 0xFF                 # 0..255, per universe


def default_source_name() -> str:
    import socket

    return f"LatentDMX on {socket.gethostname()}"[:63]


class SacnOutput(NetOutput):
    """E1.31 data to multicast groups or unicast destinations (see the module doc).

    `cid`: the source CID (default: the installation's, `e131.installation_cid`)."""

    name = "sacn"
    config_class = SacnConfig
    data_at, sequence_at = e131.HEADER_LEN, e131.SEQUENCE

    def __init__(self, universes, *, config: SacnConfig | None = None, blackout=None,
                 cid: uuid.UUID | None = None) -> None:
        super().__init__(universes, blackout=blackout)
        self.config = c = config or SacnConfig()
        self.sacn_universe = self._map(c.universe_map, int, "sACN universe")
        self.priority = {u: int(c.universe_priority.get(str(u), c.priority))
                         for u in self.universes}
        self.source_name = c.source_name or default_source_name()
        self.sync_address = c.sync_universe if c.sync else 0
        self.auto_sync = True           # False: the caller sends `send_sync()` itself
        self.unicast = tuple(net.host(h, file="", field="") for h in c.unicast)
        self.cid = cid
        self._dests = [self._destinations(self.sacn_universe[u]) for u in self.universes]
        self._sync_dests = self._destinations(c.sync_universe)
        self._sync_seq = 0
        self._next_discovery = 0.0
        self.syncs_sent = 0

    def _destinations(self, universe: int) -> tuple[tuple[str, int], ...]:
        hosts = self.unicast or (e131.multicast_group(universe),)
        return tuple((h, self.config.port) for h in hosts)

    # -- hooks ----------------------------------------------------------------------------
    def _open(self) -> None:
        if self.cid is None:
            self.cid = e131.installation_cid(self.config.cid)
        self._keep_packets(np.stack([
            e131.data_packet(self.cid, self.source_name, self.sacn_universe[u],
                             priority=self.priority[u], sync_address=self.sync_address)
            for u in self.universes]))
        self._open_socket(self.config.interface, self.unicast)

    def _send(self, frames: Frames) -> None:
        self._send_universes(frames, self._dests, _next_sequence)
        if self.sync_address and self.auto_sync:
            self._send_sync()
        if self.config.discovery:
            now = time.monotonic()
            if now >= self._next_discovery:
                self._next_discovery = now + e131.DISCOVERY_INTERVAL_S
                self._send_discovery()

    def send_sync(self) -> None:
        """One synchronization packet on the sync universe, now (for lockstep callers; the
        output sends its own after every frame while `auto_sync` is True)."""
        if not self.sync_address:
            return
        with self._lock:
            if self._opened and not self._closed:
                self._send_sync()

    def _send_sync(self) -> None:
        self._sync_seq = (self._sync_seq + 1) & 0xFF
        pk = e131.sync_packet(self.cid, self.sync_address, self._sync_seq)   # type: ignore
        for dest in self._sync_dests:
            self.sender.send(pk, dest)                   # type: ignore[union-attr]
        self.syncs_sent += 1

    def _send_discovery(self) -> None:
        unis = list(self.sacn_universe.values())
        dests = self._destinations(e131.DISCOVERY_UNIVERSE)
        for pk in e131.discovery_packets(self.cid, self.source_name, unis):  # type: ignore
            for dest in dests:
                self.sender.send(pk, dest)               # type: ignore[union-attr]

    def _close(self) -> None:
        # Base close() has just sent the blackout (and its sync packet): now tell receivers
        # this source is gone — three stream-terminated packets per universe, sync address 0
        # so nothing waits for a sync packet that will not come.
        try:
            if self.sender is not None and self.sender.sock is not None and len(self._views):
                packets = self._packets
                packets[:, e131.OPTIONS] |= e131.OPT_TERMINATED
                packets[:, e131.SYNC_ADDRESS:e131.SYNC_ADDRESS + 2] = 0
                for _ in range(e131.TERMINATE_PACKETS):
                    for i in range(len(self.universes)):
                        packets[i, e131.SEQUENCE] = self._seq[i] = (self._seq[i] + 1) & 0xFF
                        for dest in self._dests[i]:
                            self.sender.send(self._views[i], dest)
        finally:
            super()._close()

    # -- status ---------------------------------------------------------------------------
    def targets(self) -> tuple[str, ...]:
        return tuple(f"sacn:{h}:{p}/u{self.sacn_universe[u]}"
                     for i, u in enumerate(self.universes) for h, p in self._dests[i])

    def addresses(self) -> tuple[str, ...]:
        """Data destinations, the sync universe's and the discovery universe's."""
        dests = [*(d for ds in self._dests for d in ds)]
        if self.sync_address:
            dests += self._sync_dests
        if self.config.discovery:
            dests += self._destinations(e131.DISCOVERY_UNIVERSE)
        return tuple(dict.fromkeys(h for h, _ in dests))

    def health(self) -> dict:
        h = super().health()
        h.update(mode="unicast" if self.unicast else "multicast",
                 universes={u: s for u, s in self.sacn_universe.items()},
                 sync_universe=self.sync_address or None, cid=str(self.cid or ""),
                 source_name=self.source_name)
        return h
