"""DMX channels over DDP, the Distributed Display Protocol of 3waylabs (``--output ddp``):
WLED, Falcon Player (FPP) and xLights controllers take it natively; pixel strips need no
universes at all.

A DDP receiver has one flat byte range (its display buffer). Every rig universe is a block of
512 bytes in it: universe u, DMX address a at byte offset (u - 1) * 512 + a - 1, unless
``universe_map`` moves rig universe u to the block of another number (``{ "3" = 1 }``: rig
universe 3 at offset 0). Adjacent blocks make one range; each range goes out in packets of
at most 1,440 data bytes (480 RGB pixels: one Ethernet frame), each carrying its byte offset.
The last packet of a frame has the PUSH flag: receivers show the frame then, all at once.

Per frame, on the frame clock's thread (no thread of our own): the same packets to every
destination in ``destinations`` (``"HOST"`` or ``"HOST:PORT"``, unicast), or to the
``broadcast`` address when the list is empty. A destination that fails is one log line
(`net.UdpSender`); frames flow again when it is back.

Header (10 bytes, big-endian, timecode off): flags (version 1 = 0x40, PUSH = 0x01),
sequence number (low 4 bits, 1..15 then 1 again, the same for every packet of a frame),
data type 0 (undefined: the receiver's own pixel format), destination ID 1 (the display),
data offset (32 bits), data length (16 bits).

No library: the packets are 10 bytes of header, built once at `open()`; a frame is one copy
of each universe into them, the sequence number, and a ``sendto`` per packet and destination.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, OutputError
from . import net
from .base import SLOTS, Frames
from .net import NetOutput

PORT = 4048
HEADER_LEN = 10
MAX_DATA = 1440                      # bytes of data in one packet (480 RGB pixels)
FLAG_VERSION_1 = 0x40
FLAG_PUSH = 0x01
FLAGS, SEQUENCE, DATA_TYPE, DEST_ID = 0, 1, 2, 3
ID_DISPLAY = 1
MAX_SEQUENCE = 15
MAX_BLOCK = (2**32 - 1) // SLOTS     # the last 512-byte block a 32-bit offset reaches


def parse_destination(text: object, default_port: int, *, file: str,
                      field: str) -> tuple[str, int]:
    """``"HOST"`` or ``"HOST:PORT"`` (an IPv4 address or a host name) -> (host, port); a
    one-line `ConfigError`."""
    if not isinstance(text, str):
        raise ConfigError(f"{text!r} is not a destination", file=file, field=field,
                          fix='write "192.168.1.50", "192.168.1.50:4048" or "wled-strip.local"')
    host, sep, port_text = text.strip().partition(":")
    port = default_port
    if sep:
        if not port_text.isdigit():
            raise ConfigError(f"{text!r} has no port number after ':'", file=file, field=field,
                              fix=f'write "{host}:{PORT}", or leave the port out for '
                                  f"{default_port}")
        port = int(port_text)
        net.check_port(port, file=file, field=field)
    return net.node(host, file=file, field=field,
                    multicast_fix="DDP is unicast or broadcast: list the controllers' "
                                  "addresses or host names"), port


def block_of(value: object) -> int:
    """A ``universe_map`` value: the 512-byte block number (1 = offset 0)."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_BLOCK:
        return value
    raise ValueError(value)


def header(offset: int, length: int, *, push: bool = False, sequence: int = 0) -> bytes:
    """One DDP header (timecode off)."""
    flags = FLAG_VERSION_1 | (FLAG_PUSH if push else 0)
    return bytes([flags, sequence & 0x0F, 0, ID_DISPLAY]) + offset.to_bytes(4, "big") + \
        length.to_bytes(2, "big")


@dataclass(frozen=True)
class DdpConfig:
    """``[output.ddp]``."""

    destinations: tuple[str, ...] = ()   # "HOST" or "HOST:PORT"; empty: broadcast
    port: int = PORT                     # for destinations without their own port
    universe_map: dict = field(default_factory=dict)   # rig universe -> 512-byte block
    broadcast: str = "255.255.255.255"   # where frames go when no destination is listed
    interface: str = ""                  # name or IPv4 address; empty: the routing table's

    def validate(self, file: str) -> None:
        s = "output.ddp"
        net.check_port(self.port, file=file, field=f"{s}.port")
        for i, d in enumerate(self.destinations, 1):     # 1-based, as the parser counts
            parse_destination(d, self.port, file=file, field=f"{s}.destinations[{i}]")
        net.ipv4(self.broadcast, file=file, field=f"{s}.broadcast")
        net.universe_keys(self.universe_map, file=file, field=f"{s}.universe_map", lo=1,
                          hi=MAX_BLOCK, what="a block number from 1 (offset (n - 1) * 512)",
                          parse=block_of)
        net.check_interface(self.interface, file=file, field=f"{s}.interface")


class DdpOutput(NetOutput):
    """The rig's channels as one flat DDP byte range per destination (see the module doc)."""

    name = "ddp"
    config_class = DdpConfig
    broadcast = True

    def __init__(self, universes, *, config: DdpConfig | None = None, blackout=None) -> None:
        super().__init__(universes, blackout=blackout)
        self.config = c = config or DdpConfig()
        if 0 in self.universes and "0" not in c.universe_map:
            raise OutputError("rig universe 0 has no place in DDP's byte range (universe u "
                              "starts at byte (u - 1) * 512)", field="output.ddp.universe_map",
                              fix='map it to a block, e.g. universe_map = { "0" = 1 }, or '
                                  "patch the rig from universe 1")
        self.block = self._map(c.universe_map, lambda v: int(v), "DDP block")
        self.dests = tuple(parse_destination(d, c.port, file="", field="")
                           for d in c.destinations) or ((c.broadcast, c.port),)
        self.ranges = self._ranges()
        # (packet row, column, length, universe, byte in the universe): where frames go
        self._pieces: dict[int, list[tuple[int, int, int, int]]] = {}
        self._frame_seq = 0

    def _ranges(self) -> list[tuple[int, list[int]]]:
        """(first byte, rig universes in order) for each run of adjacent blocks."""
        out: list[tuple[int, list[int]]] = []
        last = None
        for u in sorted(self.universes, key=lambda u: self.block[u]):
            b = self.block[u]
            if last is not None and b == last + 1:
                out[-1][1].append(u)
            else:
                out.append(((b - 1) * SLOTS, [u]))
            last = b
        return out

    def packet_layout(self) -> list[tuple[int, int]]:
        """(byte offset, data length) of every packet of a frame, in sending order."""
        out = []
        for start, us in self.ranges:
            size = len(us) * SLOTS
            out += [(start + k, min(MAX_DATA, size - k)) for k in range(0, size, MAX_DATA)]
        return out

    # -- hooks ----------------------------------------------------------------------------
    def _open(self) -> None:
        layout = self.packet_layout()
        packets = np.zeros((len(layout), HEADER_LEN + MAX_DATA), np.uint8)
        for i, (offset, length) in enumerate(layout):
            packets[i, :HEADER_LEN] = np.frombuffer(
                header(offset, length, push=i == len(layout) - 1), np.uint8)
        pieces: dict[int, list[tuple[int, int, int, int]]] = {u: [] for u in self.universes}
        row = 0
        for _start, us in self.ranges:
            for j, u in enumerate(us):
                done = 0
                while done < SLOTS:
                    at = j * SLOTS + done          # byte in this range
                    r, col = row + at // MAX_DATA, at % MAX_DATA
                    n = min(SLOTS - done, MAX_DATA - col)
                    pieces[u].append((r, HEADER_LEN + col, n, done))
                    done += n
            row += -(-len(us) * SLOTS // MAX_DATA)
        self._pieces = pieces
        self._keep_packets(packets, (HEADER_LEN + n for _, n in layout))
        self._open_socket(self.config.interface, (h for h, _ in self.dests))

    def _send(self, frames: Frames) -> None:
        packets, pieces = self._packets, self._pieces
        for u, frame in frames.items():
            for r, col, n, src in pieces[u]:
                packets[r, col:col + n] = frame[src:src + n]
        self._frame_seq = self._frame_seq % MAX_SEQUENCE + 1  # 1..15, never 0 (= unused)
        packets[:, SEQUENCE] = self._frame_seq
        send = self.sender.send                              # type: ignore[union-attr]
        for dest in self.dests:
            for view in self._views:
                send(view, dest)

    # -- status ---------------------------------------------------------------------------
    def targets(self) -> tuple[str, ...]:
        return tuple(f"ddp:{h}:{p}/u{self.block[u]}" for u in self.universes
                     for h, p in self.dests)

    def addresses(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(h for h, _ in self.dests))

    def health(self) -> dict:
        h = super().health()
        h.update(mode="unicast" if self.config.destinations else "broadcast",
                 destinations=[f"{d}:{p}" for d, p in self.dests],
                 ranges=[(start, len(us) * SLOTS) for start, us in self.ranges])
        return h
