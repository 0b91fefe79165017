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
import logging
import os
import select
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from ..errors import ConfigError, OutputError
from .base import Frames, Output
from .handover import LatestFrames

log = logging.getLogger("latentdmx.ola")

DEBIAN_OLA_DIRS = ("/usr/lib/python3/dist-packages/ola",
                   "/usr/local/lib/python3/dist-packages/ola",
                   "/usr/lib/python3/site-packages/ola")
MAX_IN_FLIGHT = 12             # unacknowledged requests (~7 KB): the socket never fills
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


@dataclass(frozen=True)
class OlaConfig:
    """``[output.ola]``."""

    host: str = "127.0.0.1"
    port: int = 9010                    # olad's RPC port
    universe_map: dict = field(default_factory=dict)   # {"1" = 3}: rig universe -> OLA universe
    retry_max_s: float = 2.0            # reconnect back-off ceiling

    def validate(self, file: str) -> None:
        for k, v in self.universe_map.items():
            if not (str(k).isdigit() and isinstance(v, int) and not isinstance(v, bool)
                    and v >= 0):
                raise ConfigError(f"bad universe mapping {k!r} = {v!r}", file=file,
                                  field="output.ola.universe_map",
                                  fix='map rig universe to OLA universe, e.g. { "1" = 1 }')


class _Disconnect(Exception):
    """olad is gone or misbehaving: drop the connection and reconnect."""


# -- the output -----------------------------------------------------------------------------
class OlaOutput(Output):
    """Frames to olad over its RPC port, from one owner thread (see the module doc)."""

    name = "ola"
    config_class = OlaConfig

    def __init__(self, universes, *, config: OlaConfig | None = None, blackout=None,
                 connect_timeout_s: float = 1.0, ack_timeout_s: float = 1.5,
                 close_timeout_s: float = 1.5) -> None:
        super().__init__(universes, blackout=blackout)
        self.config = config or OlaConfig()
        umap = self.config.universe_map
        self.ola_universe = {u: int(umap.get(str(u), u)) for u in self.universes}
        self.server = f"{self.config.host}:{self.config.port}"
        self.connect_timeout_s = connect_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.close_timeout_s = close_timeout_s
        self._mod: Any = None                # the `ola.OlaClient` module, at open()
        self._handover: LatestFrames[int, np.ndarray] | None = None   # OLA universe -> frame
        self._latest: dict[int, np.ndarray] = {}                # resent after a reconnect
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        # owner-thread state
        self._sock: socket.socket | None = None
        self._client: Any = None             # OLA's OlaClient, owner thread only
        self._in_flight: dict[int, tuple[float, int]] = {}      # request -> (sent at, universe)
        self._req = 0
        self._refused_logged: set[int] = set()
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
        self._mod = import_ola()
        self._handover = LatestFrames()
        self._thread = threading.Thread(target=self._run, name="latentdmx-ola", daemon=True)
        self._thread.start()

    def _send(self, frames: Frames) -> None:
        assert self._handover is not None
        self._handover.post({self.ola_universe[u]: f.copy() for u, f in frames.items()})

    def _close(self) -> None:
        # Base close() has just handed over the blackout; the owner thread delivers it (one
        # quick reconnect if olad is down), waits for its ack, then closes the connection.
        self._closing.set()
        if self._handover is not None:
            self._handover.wake()
        if self._thread is not None:
            self._thread.join(self.close_timeout_s + self.connect_timeout_s + 1.0)
            if self._thread.is_alive():
                log.error("the OLA thread did not stop in time")
        if self._handover is not None:
            self._handover.close()

    def targets(self) -> tuple[str, ...]:
        host = _canonical_host(self.config.host)
        return tuple(f"ola:{host}:{self.config.port}/u{u}"
                     for u in sorted(set(self.ola_universe.values())))

    def health(self) -> dict:
        n = self._handover.counts() if self._handover is not None else \
            {"delivered": 0, "dropped": 0}
        h = super().health()
        h.update(server=self.server, connected=self.connected, reconnects=self.reconnects,
                 delivered=n["delivered"], dropped=n["dropped"],
                 refused=self.refused, last_error=self.last_error)
        h["ok"] = h["ok"] and self.connected
        if self._down_since is not None:
            h["down_s"] = round(time.monotonic() - self._down_since, 1)
        return h

    # -- the owner thread ---------------------------------------------------------------
    def _run(self) -> None:
        next_try = 0.0
        close_by: float | None = None
        try:
            while True:
                now = time.monotonic()
                closing = self._closing.is_set()
                if closing and close_by is None:
                    close_by = now + self.close_timeout_s
                if self._client is None:
                    if closing:                     # one last try to deliver the blackout
                        if (close_by is not None and now > close_by) or not self._connect():
                            log.warning("olad at %s is down: the blackout frame was not "
                                        "sent", self.server)
                            return
                    elif now >= next_try and not self._connect():
                        next_try = time.monotonic() + self._next_backoff()
                    if self._client is None:
                        self._wait(None, max(0.0, next_try - time.monotonic()))
                        continue
                try:
                    self._write_pending()
                    if closing:
                        done = not self._handover.has_pending     # type: ignore[union-attr]
                        assert close_by is not None
                        if (done and not self._in_flight) or time.monotonic() > close_by:
                            return
                    self._wait(self._sock, self._wait_timeout(close_by))
                    self._check_acks()
                except _Disconnect as exc:
                    was_up = self.connected
                    self._disconnect(str(exc))
                    # olad was answering: try again at once; else it is hung: back off.
                    next_try = 0.0 if was_up else time.monotonic() + self._next_backoff()
        except Exception:                   # never let the thread die silently
            log.exception("OLA output thread failed")
        finally:
            self._drop_connection()

    def _next_backoff(self) -> float:
        self._backoff = min(max(0.1, self._backoff * 2), self.config.retry_max_s)
        return self._backoff

    def _wait_timeout(self, close_by: float | None) -> float:
        timeout = 1.0
        if self._in_flight:
            oldest = min(t for t, _ in self._in_flight.values())
            timeout = max(0.0, oldest + self.ack_timeout_s - time.monotonic()) + 0.01
        if close_by is not None:
            timeout = min(timeout, max(0.0, close_by - time.monotonic()))
        return timeout

    def _wait(self, sock: socket.socket | None, timeout: float) -> None:
        """Sleep in select until the socket is readable, a wake-up or the timeout."""
        handover = self._handover
        assert handover is not None
        ready = handover.wait(timeout, [] if sock is None else [sock])
        if sock is not None and sock in ready:
            self._read()
        if sock is None:
            # olad is down: frames handed over meanwhile are dropped (the newest is kept).
            self._latest.update(handover.take().items)

    def _read(self) -> None:
        assert self._sock is not None
        try:
            peek = self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            raise _Disconnect(f"connection error ({exc.strerror or exc})") from None
        if not peek:
            raise _Disconnect("olad closed the connection")
        try:
            self._client.SocketReady()
        except Exception as exc:            # noqa: BLE001 - the client raises anything
            raise _Disconnect(f"bad reply ({exc.__class__.__name__}: {exc})") from None

    def _write_pending(self) -> None:
        handover = self._handover
        assert handover is not None
        if len(self._in_flight) >= MAX_IN_FLIGHT or not handover.has_pending:
            return
        batch, posts, _ = handover.take()
        for u, frame in batch.items():
            self._req += 1
            req = self._req
            self._in_flight[req] = (time.monotonic(), u)
            try:
                ok = self._client.SendDmx(u, frame, self._ack_callback(req, u))
            except Exception as exc:        # noqa: BLE001 - OLADNotRunningException & co.
                raise _Disconnect(f"send failed ({exc.__class__.__name__}: {exc})") from None
            if not ok:
                raise _Disconnect("send failed (the client's socket is closed)")
            self._latest[u] = frame
        handover.mark_delivered(posts)

    def _ack_callback(self, req: int, universe: int) -> Callable:
        def done(status) -> None:
            self._in_flight.pop(req, None)
            if not self.connected:
                self._up()
            if status.Succeeded():
                return
            self.refused += 1
            if universe not in self._refused_logged:
                self._refused_logged.add(universe)
                log.error("olad refused universe %d: %s — patch it to an output port in OLA "
                          "(see `latentdmx doctor`)", universe, _text(status.message))
        return done

    def _check_acks(self) -> None:
        if self._in_flight:
            oldest = min(t for t, _ in self._in_flight.values())
            if time.monotonic() - oldest > self.ack_timeout_s:
                raise _Disconnect(f"olad stopped answering (no ack for "
                                  f"{self.ack_timeout_s:g} s)")

    def _connect(self) -> bool:
        """Open the TCP connection. olad counts as up only once it answers (`_up`)."""
        try:
            sock = socket.create_connection((self.config.host, self.config.port),
                                            timeout=self.connect_timeout_s)
        except OSError as exc:
            reason = "connection refused" if exc.errno == errno.ECONNREFUSED else \
                (exc.strerror or str(exc))
            self._went_down(f"not reachable ({reason})")
            return False
        sock.settimeout(1.0)        # a send that cannot complete in 1 s is a disconnect
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._client = self._mod.OlaClient(sock)
        self._in_flight.clear()
        self._refused_logged.clear()
        handover = self._handover
        assert handover is not None
        handover.requeue(self._latest)       # the newest frames go out again at once
        idle = not handover.has_pending
        try:
            if idle:
                self._probe()
        except _Disconnect as exc:
            self._disconnect(str(exc))
            return False
        return True

    def _probe(self) -> None:
        """Nothing to send yet: ask olad something cheap so we learn it is answering."""
        self._req += 1
        req = self._req
        self._in_flight[req] = (time.monotonic(), -1)

        def answered(status, plugins) -> None:
            self._in_flight.pop(req, None)
            if not self.connected:
                self._up()

        try:
            ok = self._client.FetchPlugins(answered)
        except Exception as exc:            # noqa: BLE001
            raise _Disconnect(f"send failed ({exc.__class__.__name__}: {exc})") from None
        if not ok:
            raise _Disconnect("send failed (the client's socket is closed)")

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

    def _disconnect(self, reason: str) -> None:
        self._went_down(reason)
        self._drop_connection()

    def _drop_connection(self) -> None:
        self.connected = False
        sock, self._sock, self._client = self._sock, None, None
        self._in_flight.clear()
        if sock is not None:
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
