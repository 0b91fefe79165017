"""ANSI E1.31-2018 (sACN) packets, written from the standard: data, synchronization and
universe discovery packets, the multicast address of a universe, and the installation's CID.

Byte layout of a data packet (all multi-byte fields big-endian; the three "flags & length"
fields are ``0x7000 | length of the rest of the packet from that field on``):

    0   preamble size 0x0010, post-amble size 0      22  CID (16 bytes)
    4   ACN packet identifier "ASC-E1.17\\0\\0\\0"      38  framing flags & length
    16  root flags & length                          40  vector VECTOR_E131_DATA_PACKET (2)
    18  vector VECTOR_ROOT_E131_DATA (4)             44  source name (64, NUL-terminated)
    108 priority   109 sync address   111 sequence   112 options   113 universe
    115 DMP flags & length   117 vector 0x02   118 address/data type 0xa1
    119 first address 0   121 increment 1   123 property count 513
    125 START code 0   126.. 512 slots

Options (112): bit 7 preview data (always 0 here), bit 6 stream terminated, bit 5 force
synchronization (0: a receiver that loses synchronization holds its last look).
"""

from __future__ import annotations

import logging
import socket
import struct
import uuid
from pathlib import Path

import numpy as np

from ..paths import atomic_write

log = logging.getLogger("latentdmx.sacn")

PORT = 5568                              # ACN_SDT_MULTICAST_PORT
ACN_PID = b"ASC-E1.17\x00\x00\x00"
VECTOR_ROOT_E131_DATA = 0x00000004
VECTOR_ROOT_E131_EXTENDED = 0x00000008
VECTOR_E131_DATA_PACKET = 0x00000002
VECTOR_E131_EXTENDED_SYNCHRONIZATION = 0x00000001
VECTOR_E131_EXTENDED_DISCOVERY = 0x00000002
VECTOR_UNIVERSE_DISCOVERY_UNIVERSE_LIST = 0x00000001
VECTOR_DMP_SET_PROPERTY = 0x02
DISCOVERY_UNIVERSE = 64214               # E131_DISCOVERY_UNIVERSE
DISCOVERY_INTERVAL_S = 10.0              # E131_UNIVERSE_DISCOVERY_INTERVAL
TERMINATE_PACKETS = 3                    # "three packets ... shall be sent" on termination
DATA_LEN = 638
HEADER_LEN = 126                         # up to and including the START code
SYNC_LEN = 49
MAX_UNIVERSE = 63999
MAX_PRIORITY = 200
DEFAULT_PRIORITY = 100

# offsets in a data packet
PRIORITY, SYNC_ADDRESS, SEQUENCE, OPTIONS, UNIVERSE = 108, 109, 111, 112, 113
OPT_PREVIEW, OPT_TERMINATED, OPT_FORCE_SYNC = 0x80, 0x40, 0x20


def _flags_length(n: int) -> bytes:
    return struct.pack("!H", 0x7000 | n)


def _root(cid: uuid.UUID, vector: int, total: int) -> bytes:
    return (struct.pack("!HH", 0x0010, 0) + ACN_PID + _flags_length(total - 16)
            + struct.pack("!I", vector) + cid.bytes)


def _name(source_name: str) -> bytes:
    raw = source_name.encode("utf-8")[:63]
    while raw:                            # never cut a UTF-8 sequence in half
        try:
            raw.decode("utf-8")
            break
        except UnicodeDecodeError:
            raw = raw[:-1]
    return raw.ljust(64, b"\x00")


def data_packet(cid: uuid.UUID, source_name: str, universe: int, *, priority: int = 100,
                sync_address: int = 0, sequence: int = 0, options: int = 0,
                slots: bytes | np.ndarray = b"") -> np.ndarray:
    """One full data packet (512 slots, zero-padded) as ``uint8[638]``."""
    head = (_root(cid, VECTOR_ROOT_E131_DATA, DATA_LEN) + _flags_length(DATA_LEN - 38)
            + struct.pack("!I", VECTOR_E131_DATA_PACKET) + _name(source_name)
            + struct.pack("!BHBBH", priority, sync_address, sequence, options, universe)
            + _flags_length(DATA_LEN - 115)
            + struct.pack("!BBHHH", VECTOR_DMP_SET_PROPERTY, 0xA1, 0, 1, 513) + b"\x00")
    assert len(head) == HEADER_LEN
    pk = np.zeros(DATA_LEN, np.uint8)
    pk[:HEADER_LEN] = np.frombuffer(head, np.uint8)
    data = np.frombuffer(bytes(slots), np.uint8) if isinstance(slots, bytes) else slots
    pk[HEADER_LEN:HEADER_LEN + len(data)] = data
    return pk


def sync_packet(cid: uuid.UUID, sync_address: int, sequence: int) -> bytes:
    """An E1.31 synchronization packet (49 bytes)."""
    return (_root(cid, VECTOR_ROOT_E131_EXTENDED, SYNC_LEN) + _flags_length(SYNC_LEN - 38)
            + struct.pack("!IBHH", VECTOR_E131_EXTENDED_SYNCHRONIZATION, sequence & 0xFF,
                          sync_address, 0))


def discovery_packets(cid: uuid.UUID, source_name: str, universes) -> list[bytes]:
    """Universe discovery packets: the sorted universe list, 512 a page."""
    unis = sorted(set(universes))
    pages = [unis[i:i + 512] for i in range(0, len(unis), 512)] or [[]]
    out = []
    for page, chunk in enumerate(pages):
        total = 120 + 2 * len(chunk)
        out.append(_root(cid, VECTOR_ROOT_E131_EXTENDED, total) + _flags_length(total - 38)
                   + struct.pack("!I", VECTOR_E131_EXTENDED_DISCOVERY) + _name(source_name)
                   + b"\x00" * 4 + _flags_length(total - 112)
                   + struct.pack("!IBB", VECTOR_UNIVERSE_DISCOVERY_UNIVERSE_LIST, page,
                                 len(pages) - 1)
                   + struct.pack(f"!{len(chunk)}H", *chunk))
    return out


def multicast_group(universe: int) -> str:
    """239.255.<high byte>.<low byte> of the universe number."""
    return f"239.255.{universe >> 8}.{universe & 0xFF}"


# -- the CID ----------------------------------------------------------------------------------
CID_FILE = "sacn-cid"


def installation_cid(explicit: str = "", directory: Path | None = None) -> uuid.UUID:
    """The source's CID: `explicit` if given, else the one kept in the state folder
    (`pi_app.paths.state_dir`, ``/var/lib/latentdmx`` for the service), made once and read
    back on every start, so receivers and consoles see the same source after a restart.

    If the folder cannot be written, a CID derived from ``/etc/machine-id`` (stable on this
    machine) is used and the log says so."""
    if explicit:
        return uuid.UUID(explicit)
    if directory is None:
        from ..paths import state_dir

        directory = state_dir()
    path = directory / CID_FILE
    try:
        return uuid.UUID(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        log.warning("ignoring the unreadable sACN CID in %s (%s): making a new one", path, exc)
    cid = uuid.uuid4()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(path, [f"{cid}\n".encode("ascii")], 0o644)   # a power cut: old or new
        log.info("sACN source CID %s (kept in %s)", cid, path)
        return cid
    except OSError as exc:
        cid = _machine_cid()
        log.warning("cannot keep the sACN CID in %s (%s): using %s, derived from this "
                    "machine's id", directory, exc.strerror or exc, cid)
        return cid


def _machine_cid() -> uuid.UUID:
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            mid = Path(p).read_text().strip()
        except OSError:
            continue
        if mid:
            return uuid.uuid5(uuid.NAMESPACE_OID, f"latentdmx-sacn:{mid}")
    return uuid.uuid5(uuid.NAMESPACE_DNS, f"latentdmx-sacn.{socket.gethostname()}")
