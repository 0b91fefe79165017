"""DMX over Art-Net 4 straight to the lighting network (``--output artnet``): nodes, WLED,
pixel controllers — no olad in between, as many universes as the rig has.

Per frame, on the frame clock's thread (no thread of our own): one ArtDmx packet per
universe to every node in ``nodes`` (unicast), or to the ``broadcast`` address when the list
is empty; then, with ``sync = true``, one ArtSync, broadcast as Art-Net 4 requires, so nodes
that support it output every universe of the frame together. Nodes fall back to
unsynchronised output by themselves 4 s after the last ArtSync.

Addressing is Art-Net 4's 15-bit Port-Address: net (0..127) << 8 | sub-net (0..15) << 4 |
universe (0..15). A rig universe goes to the Port-Address of the same number unless
``universe_map`` says otherwise, as a number (``{ "1" = 0 }``) or as ``"net:sub-net:universe"``
(``{ "1" = "0:1:3" }``, as node manuals and WLED's settings write it). Each Port-Address
has its own sequence number, 1..255 then 1 again (0 would switch the receiver's re-ordering
off). Data is always the full 512 slots.

ArtDmx layout: ``"Art-Net\\0"``, OpDmx 0x5000 (little-endian), protocol version 14
(big-endian), sequence, physical (0), SubUni (Port-Address low byte), Net (high 7 bits),
length (big-endian), data. ArtSync: the same header with OpSync 0x5200 and two zero bytes.

Why not ``stupidArtnet`` (1.6): one socket and object per universe and destination; it sends
an ArtSync after *every universe* (which outputs each universe on its own, the opposite of
sync); the sequence number it keeps is never written into the packets it sends; errors are
printed and swallowed. ``pyartnet`` runs its own asyncio refresh loop. Art-Net's packets are
18 bytes of header: we write them, and test them against olad's Art-Net input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import net
from .base import Frames
from .net import NetOutput

PORT = 6454
ID = b"Art-Net\x00"
OP_POLL, OP_POLL_REPLY, OP_DMX, OP_SYNC = 0x2000, 0x2100, 0x5000, 0x5200
PROTOCOL_VERSION = 14
HEADER_LEN = 18
DMX_LEN = HEADER_LEN + 512
SEQUENCE, SUBUNI, NET = 12, 14, 15
MAX_PORT_ADDRESS = 0x7FFF
SYNC_TIMEOUT_S = 4.0                     # nodes drop out of sync mode after this


def port_address(value: object) -> int:
    """A Port-Address from an integer 0..32767 or ``"net:sub-net:universe"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= MAX_PORT_ADDRESS:
            return value
        raise ValueError(value)
    if isinstance(value, str):
        parts = value.replace(".", ":").split(":")
        if len(parts) == 3 and all(p.strip().isdigit() for p in parts):
            n, s, u = (int(p) for p in parts)
            if n <= 127 and s <= 15 and u <= 15:
                return n << 8 | s << 4 | u
    raise ValueError(value)


def split_port_address(pa: int) -> str:
    """``net:sub-net:universe`` of a Port-Address."""
    return f"{pa >> 8}:{pa >> 4 & 0xF}:{pa & 0xF}"


def header(opcode: int) -> bytes:
    return ID + opcode.to_bytes(2, "little") + PROTOCOL_VERSION.to_bytes(2, "big")


def dmx_packet(pa: int, sequence: int = 0, slots: bytes | np.ndarray = b"") -> np.ndarray:
    """An ArtDmx packet with 512 slots (zero-padded), as ``uint8[530]``."""
    pk = np.zeros(DMX_LEN, np.uint8)
    head = header(OP_DMX) + bytes([sequence & 0xFF, 0, pa & 0xFF, pa >> 8 & 0x7F]) + \
        (512).to_bytes(2, "big")
    pk[:HEADER_LEN] = np.frombuffer(head, np.uint8)
    data = np.frombuffer(bytes(slots), np.uint8) if isinstance(slots, bytes) else slots
    pk[HEADER_LEN:HEADER_LEN + len(data)] = data
    return pk


SYNC_PACKET = header(OP_SYNC) + b"\x00\x00"


def poll_packet() -> bytes:
    """ArtPoll (for `latentdmx doctor`): no flags, diagnostics off."""
    return header(OP_POLL) + b"\x00\x00"


@dataclass(frozen=True)
class ArtNetConfig:
    """``[output.artnet]``."""

    nodes: tuple[str, ...] = ()       # unicast node addresses; empty: broadcast
    port: int = PORT
    sync: bool = False                # ArtSync (broadcast) after every frame
    universe_map: dict = field(default_factory=dict)   # rig universe -> Port-Address
    broadcast: str = "255.255.255.255"   # where broadcast ArtDmx and ArtSync go
    interface: str = ""               # name or IPv4 address; empty: the routing table's

    def validate(self, file: str) -> None:
        s = "output.artnet"
        for i, host in enumerate(self.nodes):
            net.node(host, file=file, field=f"{s}.nodes[{i}]",
                     multicast_fix="Art-Net is unicast or broadcast: list node addresses "
                                   "or host names")
        net.ipv4(self.broadcast, file=file, field=f"{s}.broadcast")
        net.check_port(self.port, file=file, field=f"{s}.port")
        net.universe_keys(self.universe_map, file=file, field=f"{s}.universe_map", lo=0,
                          hi=MAX_PORT_ADDRESS, what='a Port-Address 0..32767 or "net:sub:uni"',
                          parse=port_address)
        net.check_interface(self.interface, file=file, field=f"{s}.interface")


def _next_sequence(seq: int) -> int:
    return seq % 255 + 1                    # 1..255 per Port-Address, never 0 (= off)


class ArtNetOutput(NetOutput):
    """ArtDmx to nodes or broadcast, ArtSync after each frame (see the module doc)."""

    name = "artnet"
    config_class = ArtNetConfig
    broadcast = True
    data_at, sequence_at = HEADER_LEN, SEQUENCE

    def __init__(self, universes, *, config: ArtNetConfig | None = None,
                 blackout=None) -> None:
        super().__init__(universes, blackout=blackout)
        self.config = c = config or ArtNetConfig()
        self.port_address = self._map(c.universe_map, port_address, "Port-Address")
        hosts = tuple(net.host(h, file="", field="") for h in c.nodes) or (c.broadcast,)
        self.dests = tuple((h, c.port) for h in hosts)
        self._sync_dest = (c.broadcast, c.port)
        self._dests = [self.dests] * len(self.universes)    # every universe to every node
        self.syncs_sent = 0

    def _open(self) -> None:
        self._keep_packets(np.stack([dmx_packet(self.port_address[u]) for u in self.universes]))
        self._open_socket(self.config.interface, (h for h, _ in self.dests))

    def _send(self, frames: Frames) -> None:
        self._send_universes(frames, self._dests, _next_sequence)
        if self.config.sync:
            self.send_sync()

    def send_sync(self) -> None:
        """One ArtSync now (the output sends one after every frame when ``sync`` is on)."""
        self.sender.send(SYNC_PACKET, self._sync_dest)        # type: ignore[union-attr]
        self.syncs_sent += 1

    def targets(self) -> tuple[str, ...]:
        return tuple(f"artnet:{h}:{p}/u{self.port_address[u]}"
                     for u in self.universes for h, p in self.dests)

    def addresses(self) -> tuple[str, ...]:
        """The nodes (or the broadcast address), and the broadcast address for ArtSync."""
        hosts = [h for h, _ in self.dests] + ([self._sync_dest[0]] if self.config.sync else [])
        return tuple(dict.fromkeys(hosts))

    def health(self) -> dict:
        h = super().health()
        h.update(mode="unicast" if self.config.nodes else "broadcast",
                 universes={u: split_port_address(pa) for u, pa in self.port_address.items()},
                 sync=self.config.sync)
        return h
