"""DMX through `olad`, the Open Lighting Architecture daemon (``--output ola``).

OLA's Python client is wrapped here and never exposed. It is used as a plain RPC codec on a
socket this module owns, driven by one owner thread, because the client's own loop
(`ClientWrapper.Run`) has known faults: it never notices a closed server on Python 3
(``SocketReady`` compares ``b''`` with ``''``, OLA #2031) and then spins a core at 100 %; it
signals failure both by returning False and by raising; it writes with ``send`` not
``sendall`` (#1598); it is not thread-safe (#1616); it times events with ``datetime.now()``.

So: `send()` only hands the frames to the owner thread (`handover.LatestFrames`: the newest
frame wins, it never blocks the frame clock); the owner thread alone touches the client. It
waits in ``select`` on the socket and the hand-over's wake-up pipe (no spinning); a readable
socket with nothing to read (``MSG_PEEK`` returns ``b''``) is olad gone, as is any exception, a
False return or an ack missing for `ack_timeout_s` — all one "disconnect". It then reconnects
with back-off (0.1 s doubling to ``retry_max_s``, default 2 s), logs once when olad goes and
once when it is back, and resends the newest frame of every universe at once. Writes are
bounded (at most `MAX_IN_FLIGHT` unacknowledged requests), so a short ``send`` cannot happen on
a healthy connection.

Rig universes map to OLA universes through ``[output.ola] universe_map`` (default: same
number).

Getting the ``ola`` module into the project's Python 3.11 (venv): PyPI's ``ola`` 0.10.7 is
broken on Python 3.11 (``array.tostring``). Use Debian's:

    sudo apt-get install ola ola-python
    pip install 'protobuf<6'            # 3.20 .. 5.29 work; 6.x does not

`import_ola()` finds Debian's package at ``/usr/lib/python3/dist-packages/ola`` and loads it
by its own path, without putting the whole ``dist-packages`` folder on ``sys.path`` (that
could shadow the venv's packages), so ``--output ola`` works in a venv with no further step.
To ``import ola`` yourself in the venv, link only that folder in:

    ln -s /usr/lib/python3/dist-packages/ola "$(python -c 'import sysconfig; \
print(sysconfig.get_paths()["purelib"])')/ola"

(``LATENTDMX_OLA_PYTHON=/path/to/ola`` points `import_ola` at another copy.)
"""

from __future__ import annotations

import errno
import importlib.util
import itertools
import logging
import os
import select
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from ..errors import ConfigError, OutputError
from .base import Output, Prepared
from .ola_wire import Wire

log = logging.getLogger("latentdmx.ola")

DEBIAN_OLA_DIRS = ("/usr/lib/python3/dist-packages/ola",
                   "/usr/local/lib/python3/dist-packages/ola",
                   "/usr/lib/python3/site-packages/ola")
ACK_EVERY_S = 1.0              # an acknowledged frame this often: is olad still answering?
_SEND_FLAGS = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL
_INSTALL_FIX = ("sudo apt-get install ola ola-python, and in the venv: pip install "
                "'protobuf<6' (or use --output uart / sim)")


# -- finding Debian's ola package -----------------------------------------------------------
def _load_from(path: Path):
    spec = importlib.util.spec_from_file_location(
        "ola", path / "__init__.py", submodule_search_locations=[str(path)])
    if spec is None or spec.loader is None:
        raise ImportError(f"no package at {path}", name="ola")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ola"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["ola"]
        raise
    return module


def import_ola():
    """Return OLA's ``ola.OlaClient`` module, or raise a one-line `OutputError` with the fix.

    Tries a normal import first, then Debian's package by its path (see the module doc)."""
    with warnings.catch_warnings():   # protobuf warns that its `service` module is deprecated
        warnings.simplefilter("ignore")
        try:
            try:
                import ola.OlaClient as ola_client
                return ola_client
            except ModuleNotFoundError as exc:
                if exc.name not in ("ola", "ola.OlaClient"):
                    raise
            dirs = [os.environ.get("LATENTDMX_OLA_PYTHON", ""), *DEBIAN_OLA_DIRS]
            for d in filter(None, dirs):
                path = Path(d)
                if (path / "OlaClient.py").is_file():
                    _load_from(path)
                    import ola.OlaClient as ola_client
                    return ola_client
        except ImportError as exc:
            if (exc.name or "").startswith("google") or "protobuf" in str(exc):
                raise OutputError(f"OLA's Python client needs protobuf 3.20..5.x ({exc})",
                                  field="output.ola",
                                  fix="pip install 'protobuf<6' in the same Python") from None
            raise OutputError(f"OLA's Python client does not import ({exc})",
                              field="output.ola", fix=_INSTALL_FIX) from None
        except Exception as exc:  # noqa: BLE001 - e.g. protobuf 6 rejecting the _pb2 code
            raise OutputError(f"OLA's Python client does not load ({exc.__class__.__name__}: "
                              f"{exc})", field="output.ola",
                              fix="pip install 'protobuf<6' in the same Python") from None
    raise OutputError("OLA's Python client (ola-python) is not installed", field="output.ola",
                      fix=_INSTALL_FIX)


MAX_RIG_UNIVERSE = 65535
MAX_OLA_UNIVERSE = 2**31 - 1        # OLA's universe ids are int32 on the wire


@dataclass(frozen=True)
class OlaConfig:
    """``[output.ola]``."""

    host: str = "127.0.0.1"
    port: int = 9010                    # olad's RPC port
    universe_map: dict = field(default_factory=dict)   # {"1" = 3}: rig universe -> OLA universe
    retry_max_s: float = 2.0            # reconnect back-off ceiling

    def validate(self, file: str) -> None:
        if not self.host:
            raise ConfigError("no host", file=file, field="output.ola.host",
                              fix='use where olad runs, e.g. host = "127.0.0.1"')
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is outside 1..65535", file=file,
                              field="output.ola.port", fix="use olad's RPC port, 9010")
        if not 0.1 <= self.retry_max_s <= 600:      # below, a dead olad would spin a core
            raise ConfigError(f"{self.retry_max_s:g} s is outside 0.1..600", file=file,
                              field="output.ola.retry_max_s", fix="use e.g. 2 (the default)")
        mapped: dict[int, int] = {}
        for k, v in self.universe_map.items():
            fld = f"output.ola.universe_map.{str(k)[:20]}"
            if not (k.isascii() and k.isdecimal() and int(k) <= MAX_RIG_UNIVERSE):
                raise ConfigError(f"{str(k)[:20]!r} is not a rig universe number", file=file,
                                  field=fld, fix=f"use a universe 0..{MAX_RIG_UNIVERSE} as the "
                                                 'key, e.g. { "1" = 3 }')
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_OLA_UNIVERSE:
                raise ConfigError(f"{str(v)[:20]} is not an OLA universe number", file=file,
                                  field=fld, fix=f"use a whole number 0..{MAX_OLA_UNIVERSE}")
            if v in mapped:
                raise ConfigError(f"rig universes {mapped[v]} and {int(k)} both map to OLA "
                                  f"universe {v}", file=file, field=fld,
                                  fix="give every rig universe its own OLA universe")
            mapped[v] = int(k)


class _Disconnect(Exception):
    """olad is gone or misbehaving: drop the connection and reconnect."""


class _Conn:
    """One TCP connection to olad: the socket (non-blocking) and what goes with it."""

    def __init__(self, sock: socket.socket, wire: Wire) -> None:
        self.sock = sock
        self.wire = wire
        self.backlog = b""                    # the unwritten tail of the last write
        self.next_ack_s = 0.0                 # the first frame is acknowledged at once
        self.failed: str | None = None        # set by the frame thread when a write fails


# -- the output -----------------------------------------------------------------------------
class OlaOutput(Output):
    """Frames to olad over its RPC port (see the module doc)."""

    name = "ola"
    config_class = OlaConfig

    def __init__(self, universes, *, config: OlaConfig | None = None, blackout=None,
                 connect_timeout_s: float = 1.0, ack_timeout_s: float = 1.5,
                 close_timeout_s: float = 1.5, ack_every_s: float = ACK_EVERY_S) -> None:
        super().__init__(universes, blackout=blackout)
        self.config = config or OlaConfig()
        umap = self.config.universe_map
        self.ola_universe = {u: int(umap.get(str(u), u)) for u in self.universes}
        wire = Wire()                        # StreamDmxData's bytes before the slots
        self._prefix = {ou: wire.stream_template(ou).prefix
                        for ou in set(self.ola_universe.values())}
        self.server = f"{self.config.host}:{self.config.port}"
        self.connect_timeout_s = connect_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.close_timeout_s = close_timeout_s
        self.ack_every_s = ack_every_s
        self._conn: _Conn | None = None      # set by the owner thread once olad answered
        self._mx = threading.Lock()          # writes on the socket; `_conn`; `_in_flight`
        self._in_flight: dict[int, tuple[float, int]] = {}    # request -> (sent at, universe)
        self._newest: dict[int, bytes] = {}  # OLA universe -> its newest frame (resent)
        self._missed = False                 # frames came while no connection was up
        self._ids = itertools.count(1)
        self._closing = threading.Event()
        self._wake_r = self._wake_w = -1     # wakes the owner thread (failures, close)
        self._thread: threading.Thread | None = None
        self._refused_logged: set[int] = set()
        # counts, in frames (`send` calls)
        self.posted = 0
        self.delivered = 0                   # written (at least in part) to olad's socket
        # health
        self.connected = False
        self._ever_connected = False
        self._backoff = 0.0
        self.reconnects = 0
        self.refused = 0
        self.last_error: str | None = None
        self._down_since: float | None = None

    # -- hooks (caller's thread) --------------------------------------------------------
    def _open(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="latentdmx-ola", daemon=True)
        self._thread.start()

    def _send(self, frames: Prepared) -> None:
        """On the frame loop's thread: one non-blocking write of every universe's frame (a
        ``StreamDmxData`` each; an acknowledged ``UpdateDmxData`` once per `ack_every_s`).
        Never blocks: with olad down, or its socket full, the frame is dropped (the newest
        frames go out again when it is back)."""
        self.posted += 1
        omap = self.ola_universe
        slots, stream = frames.packed                   # `_pack`: the bytes, the messages
        with self._mx:
            self._newest.update(slots)
            conn = self._conn
            if conn is None:
                self._missed = True
                return
            try:
                if conn.backlog and not self._flush(conn):
                    return                          # olad is behind: this frame is dropped
                now = time.monotonic()
                if now >= conn.next_ack_s and not self._in_flight:
                    conn.next_ack_s = now + self.ack_every_s
                    data = b"".join([self._acked(conn, omap[u]) for u in frames])
                else:
                    data = stream
                n = conn.sock.send(data, _SEND_FLAGS)
                if n < len(data):
                    conn.backlog = data[n:]
                self.delivered += 1
            except BlockingIOError:
                return                              # nothing written: dropped
            except OSError as exc:
                conn.failed = f"connection error ({exc.strerror or exc})"
                self._conn = None
                self._wake()

    def _pack(self, frames: Prepared) -> tuple[dict[int, bytes], bytes]:
        """The frames' bytes per OLA universe and their ``StreamDmxData`` messages, as
        `_send` writes them (the messages do not depend on the connection)."""
        omap = self.ola_universe
        slots = {omap[u]: f.tobytes() for u, f in frames.items()}
        prefix = self._prefix
        return slots, b"".join([prefix[ou] + slots[ou] for ou in [omap[u] for u in frames]])

    def _acked(self, conn: _Conn, ola_universe: int) -> bytes:
        """An ``UpdateDmxData`` of the newest frame whose ack the owner thread waits for
        (the caller holds `_mx`)."""
        req = next(self._ids)
        self._in_flight[req] = (time.monotonic(), ola_universe)
        return conn.wire.update_dmx(req, ola_universe, self._newest[ola_universe])

    def _flush(self, conn: _Conn) -> bool:
        """Write the backlog without blocking (caller holds `_mx`); True when it is out."""
        n = conn.sock.send(conn.backlog, _SEND_FLAGS)
        conn.backlog = conn.backlog[n:]
        return not conn.backlog

    def _close(self) -> None:
        # Base close() has just sent the blackout; the owner thread sends it once more with
        # an acknowledgement (one quick reconnect if olad is down), waits for the ack, then
        # closes the connection.
        self._closing.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(self.close_timeout_s + self.connect_timeout_s + 1.0)
            if self._thread.is_alive():
                log.error("the OLA thread did not stop in time")
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except OSError:               # a full pipe already means "wake up"; closed: done
            pass

    def targets(self) -> tuple[str, ...]:
        host = _canonical_host(self.config.host)
        return tuple(f"ola:{host}:{self.config.port}/u{u}"
                     for u in sorted(set(self.ola_universe.values())))

    def health(self) -> dict:
        h = super().health()
        posted, delivered = self.posted, self.delivered
        h.update(server=self.server, connected=self.connected, reconnects=self.reconnects,
                 delivered=delivered, dropped=max(0, posted - delivered),
                 refused=self.refused, last_error=self.last_error)
        h["ok"] = h["ok"] and self.connected
        if self._down_since is not None:
            h["down_s"] = round(time.monotonic() - self._down_since, 1)
        return h

    # -- the owner thread ---------------------------------------------------------------
    def _run(self) -> None:
        next_try = 0.0
        conn: _Conn | None = None
        try:
            while not self._closing.is_set():
                if conn is None:
                    if time.monotonic() >= next_try:
                        conn = self._connect()
                        if conn is None:
                            next_try = time.monotonic() + self._next_backoff()
                    if conn is None:
                        self._sleep(None, max(0.0, next_try - time.monotonic()))
                    continue
                try:
                    self._sleep(conn, self._ack_wait_s())
                    if conn.failed:
                        raise _Disconnect(conn.failed)
                    self._check_acks()
                except _Disconnect as exc:
                    was_up = self.connected
                    self._disconnect(conn, str(exc))
                    conn = None
                    # olad was answering: try again at once; else it is hung: back off.
                    next_try = 0.0 if was_up else time.monotonic() + self._next_backoff()
            self._deliver_last(conn)
        except Exception:                   # never let the thread die silently
            log.exception("OLA output thread failed")
        finally:
            with self._mx:
                conn, self._conn = self._conn or conn, None
            if conn is not None:
                _close_socket(conn.sock)
            self.connected = False

    def _next_backoff(self) -> float:
        self._backoff = min(max(0.1, self._backoff * 2), self.config.retry_max_s)
        return self._backoff

    def _ack_wait_s(self) -> float:
        with self._mx:
            times = [t for t, _ in self._in_flight.values()]
        if not times:
            return 1.0
        return max(0.0, min(times) + self.ack_timeout_s - time.monotonic()) + 0.01

    def _sleep(self, conn: _Conn | None, timeout_s: float) -> None:
        """Wait in select for olad's replies, a wake-up or the timeout; handle replies."""
        fds: list[Any] = [self._wake_r] if conn is None else [self._wake_r, conn.sock]
        ready, _, _ = select.select(fds, [], [], max(0.0, timeout_s))
        if self._wake_r in ready:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except OSError:
                pass
        if conn is not None and conn.sock in ready:
            self._read(conn)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            raise _Disconnect(f"connection error ({exc.strerror or exc})") from None
        if not data:
            raise _Disconnect("olad closed the connection")
        try:
            replies = conn.wire.feed(data)
        except Exception as exc:            # noqa: BLE001 - protobuf raises anything
            raise _Disconnect(f"bad reply ({exc.__class__.__name__}: {exc})") from None
        for kind, req, payload in replies:
            with self._mx:
                sent = self._in_flight.pop(req, None)
            if sent is None:
                continue
            if not self.connected:
                self._up()
            universe = sent[1]
            if kind == conn.wire.RESPONSE or universe < 0:
                continue
            self.refused += 1
            if universe not in self._refused_logged:
                self._refused_logged.add(universe)
                log.error("olad refused universe %d: %s — patch it to an output port in OLA "
                          "(see `latentdmx doctor`)", universe, _text(payload))

    def _check_acks(self) -> None:
        with self._mx:
            times = [t for t, _ in self._in_flight.values()]
        if times and time.monotonic() - min(times) > self.ack_timeout_s:
            raise _Disconnect(f"olad stopped answering (no ack for {self.ack_timeout_s:g} s)")

    def _write(self, conn: _Conn, data: bytes, timeout_s: float) -> None:
        """Write all of `data` from the owner thread (waits for room, up to `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while data:
            try:
                n = conn.sock.send(data, _SEND_FLAGS)
                data = data[n:]
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([], [conn.sock], [], left)[1]:
                    raise _Disconnect("olad does not take our frames") from None
            except OSError as exc:
                raise _Disconnect(f"send failed ({exc.strerror or exc})") from None

    def _connect(self, final: bool = False) -> _Conn | None:
        """Open the TCP connection and wait for olad to answer (the newest frames, or a
        question), then hand the connection to the frame loop (`final`: keep it, to send
        the last frames on close). None: not now."""
        try:
            sock = socket.create_connection((self.config.host, self.config.port),
                                            timeout=self.connect_timeout_s)
        except OSError as exc:
            reason = "connection refused" if exc.errno == errno.ECONNREFUSED else \
                (exc.strerror or str(exc))
            self._went_down(f"not reachable ({reason})")
            return None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)       # the frame loop's writes must never wait
        wire = Wire()
        conn = _Conn(sock, wire)
        self._refused_logged.clear()
        with self._mx:
            self._in_flight.clear()
            missed, self._missed = self._missed, False
            acked = bool(self._newest)
            if acked:                     # the newest frames go out again at once
                data = b"".join([self._acked(conn, ou) for ou in self._newest])
            else:                         # nothing to send yet: ask olad something cheap
                req = next(self._ids)
                self._in_flight[req] = (time.monotonic(), -1)
                data = wire.get_plugins(req)
        try:
            self._write(conn, data, self.ack_timeout_s)
            deadline = time.monotonic() + self.ack_timeout_s
            while not self.connected:                # olad counts as up once it answers
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Disconnect(f"olad stopped answering (no ack for "
                                      f"{self.ack_timeout_s:g} s)")
                self._sleep(conn, left)
                if self._closing.is_set() and not final and not self.connected:
                    raise _Disconnect("closing")
        except _Disconnect as exc:
            self._disconnect(conn, str(exc))
            return None
        # the next ack in a second; at once if no frame has been acknowledged yet
        conn.next_ack_s = time.monotonic() + self.ack_every_s if acked else 0.0
        with self._mx:
            if missed and not final:      # a frame the show sent while olad was away is out
                self.delivered += 1
            if not final:
                self._conn = conn
            if self._missed:              # frames came meanwhile: the newest go out now
                self._missed = False
                if conn.next_ack_s == 0.0:    # the first frames: acknowledged
                    conn.next_ack_s = time.monotonic() + self.ack_every_s
                    data = b"".join([self._acked(conn, ou) for ou in self._newest])
                else:
                    data = b"".join([self._prefix[ou] + f
                                     for ou, f in self._newest.items()])
                try:
                    n = conn.sock.send(data, _SEND_FLAGS)
                    conn.backlog = data[n:]
                    self.delivered += 1
                except OSError:
                    pass                  # the next frame's write finds out
        return conn

    def _deliver_last(self, conn: _Conn | None) -> None:
        """Closing: the last frames (the blackout) once more, acknowledged; one quick
        reconnect if olad is down."""
        close_by = time.monotonic() + self.close_timeout_s
        with self._mx:
            self._conn = None             # the frame loop sends nothing more
            if not self._newest:
                return
        if conn is not None and conn.failed:
            self._disconnect(conn, conn.failed)
            conn = None
        if conn is None:
            conn = self._connect(final=True)
            if conn is None:
                log.warning("olad at %s is down: the blackout frame was not sent",
                            self.server)
                return
        try:
            with self._mx:
                data = conn.backlog + b"".join([self._acked(conn, ou) for ou in self._newest])
                conn.backlog = b""
            self._write(conn, data, max(0.0, close_by - time.monotonic()))
            while True:
                with self._mx:
                    if not self._in_flight:
                        self.delivered += 1       # acknowledged: olad has the last frames
                        break
                left = close_by - time.monotonic()
                if left <= 0:
                    log.warning("olad at %s did not acknowledge the blackout frame",
                                self.server)
                    break
                self._sleep(conn, left)
        except _Disconnect as exc:
            log.warning("olad at %s: the blackout frame was not confirmed (%s)", self.server,
                        exc)
        finally:
            _close_socket(conn.sock)

    def _up(self) -> None:
        down = time.monotonic() - self._down_since if self._down_since else 0.0
        if not self._ever_connected:
            self._ever_connected = True
            log.info("connected to olad at %s%s (universes %s)", self.server,
                     f" after {down:.1f} s" if down else "",
                     ", ".join(f"{r}->{o}" if r != o else str(r)
                               for r, o in self.ola_universe.items()))
        else:
            self.reconnects += 1
            log.warning("reconnected to olad at %s after %.1f s", self.server, down)
        self.connected = True
        self._down_since = None
        self.last_error = None
        self._backoff = 0.0

    def _went_down(self, reason: str) -> None:
        """Log once per outage (and when the reason changes), not once per retry."""
        if self._down_since is None:
            self._down_since = time.monotonic()
        if reason != self.last_error:
            verb = "lost olad at" if self.connected else "olad at"
            log.warning("%s %s: %s; retrying (back-off up to %g s) — is it running? "
                        "(`sudo systemctl start olad`, `latentdmx doctor`)", verb, self.server,
                        reason, self.config.retry_max_s)
        self.last_error = reason
        self.connected = False

    def _disconnect(self, conn: _Conn, reason: str) -> None:
        with self._mx:
            if self._conn is conn:
                self._conn = None
            self._in_flight.clear()
        self._went_down(reason)
        _close_socket(conn.sock)


def _close_socket(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _canonical_host(host: str) -> str:
    """One name per olad: loopback names and addresses -> 127.0.0.1, others resolved."""
    import ipaddress

    name = host.strip("[]")
    if name == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        try:
            ip = ipaddress.ip_address(socket.gethostbyname(name))
        except (OSError, ValueError):
            return name.lower()
    return "127.0.0.1" if ip.is_loopback else str(ip)


def _text(message) -> str:
    if isinstance(message, bytes):
        return message.decode("utf-8", "replace")
    return str(message or "failed")


# -- one-shot queries (for `latentdmx doctor`) -----------------------------------------------
class OlaQuery:
    """Synchronous questions to olad: ``with OlaQuery(host, port) as q: q.universes()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9010, timeout_s: float = 2.0):
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._sock: Any = None
        self._client: Any = None

    def __enter__(self) -> Self:
        mod = import_ola()
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except OSError as exc:
            raise OutputError(f"olad is not running at {self.host}:{self.port} "
                              f"({exc.strerror or exc})", field="output.ola",
                              fix="start it: sudo systemctl enable --now olad (check "
                                  "output.ola.host/port)") from None
        self._client = mod.OlaClient(self._sock)
        return self

    def __exit__(self, *exc) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self._client = None

    def _call(self, method: str, *args):
        result: list = []
        ok = getattr(self._client, method)(*args, lambda status, *rest: result.append(
            (status, rest)))
        if not ok:
            raise OutputError("olad closed the connection", field="output.ola",
                              fix="check olad's log: journalctl -u olad")
        deadline = time.monotonic() + self.timeout_s
        while not result:
            left = deadline - time.monotonic()
            if left <= 0:
                raise OutputError("olad did not answer", field="output.ola",
                                  fix="restart it: sudo systemctl restart olad")
            ready, _, _ = select.select([self._sock], [], [], left)
            if ready:
                if not self._sock.recv(1, socket.MSG_PEEK):
                    raise OutputError("olad closed the connection", field="output.ola",
                                      fix="check olad's log: journalctl -u olad")
                self._client.SocketReady()
        status, rest = result[0]
        if not status.Succeeded():
            raise OutputError(f"olad: {_text(status.message)}", field="output.ola",
                              fix="check olad's log: journalctl -u olad")
        return rest

    def universes(self) -> list:
        """OLA `Universe` objects (``.id``, ``.output_ports``, ``.input_ports``)."""
        return list(self._call("FetchUniverses")[0] or [])

    def plugins(self) -> list:
        """OLA `Plugin` objects (``.id``, ``.name``, ``.enabled``, ``.active``)."""
        return list(self._call("FetchPlugins")[0] or [])

    def devices(self) -> list:
        """OLA `Device` objects (``.name``, ``.plugin_id``, ``.output_ports``)."""
        return list(self._call("FetchDevices")[0] or [])

    def dmx(self, universe: int) -> np.ndarray:
        """The universe's current data, as uint8 (empty if it has none)."""
        _, data = self._call("FetchDmx", universe)
        return np.array(data or [], dtype=np.uint8)
