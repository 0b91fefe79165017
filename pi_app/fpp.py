"""A Falcon Player (FPP) MultiSync remote (``[fpp] remote = true``): a master's show starts,
follows and stops LatentDMX looks.

FPP's control protocol (FPP's ``docs/ControlProtocol.txt``) is UDP on port 32320, to the
multicast group 239.70.80.80, to the broadcast address or unicast. Every packet starts with
``FPPD``, a packet type and the length of what follows (16 bits; numbers are little-endian,
as FPP writes them on every platform it runs on). This remote reads two types:

* **Ping** (type 4): a *discover* (subtype 1) is answered with a ping of our own (version 3,
  subtype 0, mode "remote", our address on the master's network, host name and version), sent
  to the master's address, so LatentDMX shows in the master's MultiSync list.
* **MultiSync** (type 1): action (start 0, stop 1, sync 2, open 3), file type (0 sequence,
  1 media), the master's frame number, its position in seconds (a 32-bit float) and the
  file's name (the position is taken as frame x step when the two agree: the float alone
  is coarse in a long sequence). A sequence named in ``[fpp.map]`` is played from the
  master's position
  (``fpp/play``: start, and every sync that finds the walk more than a frame off) and stopped
  with it (``fpp/stop``). A sequence name that is not mapped is logged once and ignored;
  media sync packets are ignored (the sequence's own packets carry the position).

Every change goes through the control vocabulary (`Show.handle_control`, origin ``fpp
ADDRESS``), so the log, the flash limiter and the frame loop treat it as any client's; what
comes from the network is a sequence name and a number, never a path. Packets from addresses
outside ``allow`` (default: loopback and the private LAN ranges) are dropped.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import select
import socket
import struct
import threading
import time
from typing import Any

from . import __version__
from .errors import LatentDMXError
from .fpp_config import MULTICAST, FppConfig
from .vocabulary import fpp_in_step

log = logging.getLogger("latentdmx.fpp")

MAGIC = b"FPPD"
TYPE_SYNC, TYPE_PING = 1, 4
SYNC_START, SYNC_STOP, SYNC_SYNC, SYNC_OPEN = 0, 1, 2, 3
FILE_SEQUENCE, FILE_MEDIA = 0, 1
PING_VERSION = 3
PING_LEN = 294                     # extra data of a version 3 ping
PING_DISCOVER = 1
MODE_REMOTE = 0x08
SYSTEM_UNKNOWN = 0x00              # not an FPP build, not a listed controller
LAN = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")
MAX_UNKNOWN = 256                  # names remembered as "logged once"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)   # Linux; kernel receive stamps
MAX_AGE_S = 1.0                    # a packet older than this: the clock stepped, age unknown


def position_s(frame: int, seconds: float) -> float:
    """The master's position: its seconds are a 32-bit float (a quarter of a second coarse
    after a month), its frame number is exact, and a sequence steps in whole milliseconds:
    frame x step, when the two agree; else the seconds."""
    if not math.isfinite(seconds):
        return 0.0
    if frame > 0 and seconds > 0:
        step_ms = round(seconds * 1000.0 / frame)
        exact = frame * step_ms / 1000.0
        if 1 <= step_ms <= 255 and abs(exact - seconds) <= max(step_ms / 1000.0,
                                                               abs(seconds) * 1e-6):
            return exact
    return max(0.0, seconds)


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace")


def _cstr(text: str, size: int) -> bytes:
    data = text.encode("utf-8")[:size - 1]
    return data + bytes(size - len(data))


def parse(data: bytes) -> dict[str, Any] | None:
    """One control packet -> its fields (types 1 and 4), or None if it is not one we read."""
    if len(data) < 7 or data[:4] != MAGIC:
        return None
    kind = data[4]
    extra = data[7:7 + struct.unpack_from("<H", data, 5)[0]]
    if kind == TYPE_SYNC and len(extra) >= 11:
        action, ftype, frame, seconds = struct.unpack_from("<BBIf", extra, 0)
        return {"type": "sync", "action": action, "file_type": ftype, "frame": frame,
                "seconds": seconds, "name": _text(extra[10:])}
    if kind == TYPE_PING and len(extra) >= 2:
        return {"type": "ping", "version": extra[0], "subtype": extra[1]}
    return None


def ping_packet(address: str, hostname: str, ranges: str = "") -> bytes:
    """Our ping (version 3, subtype 0 = a ping, mode remote)."""
    major, minor = (int(x) for x in [*__version__.split("."), "0", "0"][:2])
    body = bytearray(PING_LEN)
    body[0], body[1], body[2] = PING_VERSION, 0, SYSTEM_UNKNOWN
    body[3:5] = major.to_bytes(2, "big")
    body[5:7] = minor.to_bytes(2, "big")
    body[7] = MODE_REMOTE
    body[8:12] = socket.inet_aton(address)
    body[12:77] = _cstr(hostname, 65)
    body[77:118] = _cstr(f"LatentDMX {__version__}", 41)
    body[118:159] = _cstr("LatentDMX", 41)
    body[159:280] = _cstr(ranges, 121)
    return MAGIC + bytes([TYPE_PING]) + struct.pack("<H", PING_LEN) + bytes(body)


def _local_address(peer: str) -> str:
    """Our address on the way to `peer` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((peer, 9))
            return s.getsockname()[0]
        except OSError:
            return "0.0.0.0"


class FppRemote:
    """Listens for a master on its own thread; see the module doc."""

    def __init__(self, show: Any, cfg: FppConfig) -> None:
        self.show = show
        self.cfg = cfg
        self._allow = [ipaddress.ip_network(a.strip(), strict=False)
                       for a in (cfg.allow or LAN)]
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._unknown: set[str] = set()
        self._refused: set[str] = set()
        self.playing = ""                    # the master's sequence we follow ("" none)
        self.packets = 0
        self.in_step = 0                     # syncs that found the walk within a frame

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1] if self._sock else self.cfg.port

    def start(self) -> FppRemote:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)   # when each packet arrived
            s.bind((self.cfg.host, self.cfg.port))
            if self.cfg.multicast:
                try:
                    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                                 socket.inet_aton(MULTICAST) + socket.inet_aton(
                                     self.cfg.host))
                except OSError as exc:          # no multicast route: unicast still works
                    log.warning("FPP: cannot join %s (%s); masters must send to this Pi's "
                                "address", MULTICAST, exc.strerror or exc)
        except OSError as exc:
            s.close()
            raise LatentDMXError(f"cannot listen on UDP {self.cfg.host}:{self.cfg.port} "
                                 f"({exc.strerror or exc})", field="fpp.port",
                                 fix="is FPP (fppd) or another remote running on this Pi? "
                                     "stop it, or set [fpp] remote = false") from None
        self._sock = s
        self._thread = threading.Thread(target=self._run, name="fpp", daemon=True)
        self._thread.start()
        log.info("FPP remote: listening on UDP %s:%d for a MultiSync master", self.cfg.host,
                 self.port)
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            if not select.select([sock], [], [], 0.1)[0]:
                continue
            try:
                data, anc, _, (ip, port) = sock.recvmsg(2048, 64)
            except OSError:
                continue
            try:
                self.handle(data, ip, port, age_s=_age_s(anc))
            except Exception:     # one bad packet never ends the remote
                log.exception("FPP: a packet from %s could not be handled", ip)

    def _allowed(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        if any(addr in net for net in self._allow):
            return True
        if ip not in self._refused and len(self._refused) < MAX_UNKNOWN:
            self._refused.add(ip)
            log.warning("FPP: packets from %s ignored (not in [fpp] allow)", ip)
        return False

    def handle(self, data: bytes, ip: str, port: int, age_s: float = 0.0) -> None:
        """One packet from `ip`:`port` (the receive thread), which arrived `age_s` seconds
        ago: the master's position is taken as of now, so a busy Pi whose thread reads the
        packet late does not fall out of step with it."""
        received_at = time.monotonic() - age_s
        pkt = parse(data)
        if pkt is None or not self._allowed(ip):
            return
        self.packets += 1
        if pkt["type"] == "ping":
            if pkt["subtype"] == PING_DISCOVER:
                self._answer(ip, port)
            return
        if pkt["file_type"] != FILE_SEQUENCE:
            return
        name = pkt["name"]
        if self.show.config.fpp.lookup(name) is None:
            if name not in self._unknown and len(self._unknown) < MAX_UNKNOWN:
                self._unknown.add(name)
                log.warning("FPP: the master plays %r, which [fpp.map] does not map; "
                            "ignored", name)
            return
        action, origin = pkt["action"], f"fpp {ip}"
        try:
            if action in (SYNC_START, SYNC_SYNC):
                pos = position_s(pkt["frame"], pkt["seconds"])
                start = action == SYNC_START or name != self.playing
                if not start and fpp_in_step(self.show, name, pos, received_at):
                    self.in_step += 1               # the usual sync: nothing to change
                    return
                self.show.handle_control("fpp/play", {
                    "sequence": name, "position_s": pos, "start": start,
                    "received_at": received_at}, origin=origin)
                self.playing = name
            elif action == SYNC_STOP and name == self.playing:
                self.show.handle_control("fpp/stop", {"sequence": name}, origin=origin)
                self.playing = ""
        except LatentDMXError as exc:       # logged by handle_control (rate-limited)
            if name not in self._unknown and len(self._unknown) < MAX_UNKNOWN:
                self._unknown.add(name)
                log.error("FPP: %s cannot be played: %s", name, exc)

    def _answer(self, ip: str, port: int) -> None:
        """Our ping to the master, at the port it sent from (its control port, 32320)."""
        if self._sock is None:
            return
        me = _local_address(ip)
        ranges = ",".join(f"{(u - 1) * 512}-{u * 512 - 1}"
                          for u in getattr(self.show.pipeline.patch, "universes", ()) if u)
        try:
            self._sock.sendto(ping_packet(me, socket.gethostname(), ranges[:120]),
                              (ip, port))
        except OSError as exc:
            log.warning("FPP: cannot answer %s's discovery (%s)", ip, exc.strerror or exc)


def _age_s(ancillary) -> float:
    """How long ago the kernel received a packet (its SO_TIMESTAMPNS stamp; 0 without one, or
    when the clock stepped: at most `MAX_AGE_S`)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            age = time.time() - (sec + nsec * 1e-9)
            return age if 0.0 <= age <= MAX_AGE_S else 0.0
    return 0.0


def start_fpp(show: Any, cfg: FppConfig) -> FppRemote:
    """Follow FPP masters for `show`."""
    return FppRemote(show, cfg).start()
