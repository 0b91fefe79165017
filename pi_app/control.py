"""The daemon's local control socket: JSON lines over a Unix stream socket.

A request is one line, ``{"cmd": "dim", "args": {"level": 0.5}}``; the answer is one line,
``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": "...", "fix": "..."}``. A
connection may carry several requests, one after the other.

Where the socket lives (`server_socket_path`): ``$RUNTIME_DIRECTORY/control.sock`` under
systemd (``/run/latentdmx``), else ``$XDG_RUNTIME_DIR/latentdmx/control.sock``, else
``/tmp/latentdmx-$UID/control.sock``; ``[control] socket`` in the config overrides it. The
socket is mode 0660, so only the daemon's user and group may talk to it.

Who is at the other end, both ways (`check_dir`, `check_peer`): a ``latentdmx*`` folder the
daemon makes is mode 0700, and before binding or connecting its folder is checked: a real
folder (not a symbolic link), owned by this user, root or the service user ``latentdmx``,
that nobody else may write. So a ``/tmp/latentdmx-UID`` made first by another account is
refused in one line, never used. The client believes an answer only from a daemon run by
the same user, root or the service user (the kernel's ``SO_PEERCRED``). Root without
``$XDG_RUNTIME_DIR`` (under sudo) looks for the service's ``/run/latentdmx`` first.

`ControlServer` runs one daemon thread around a selector. Every connection has a deadline
and a line-length cap, so a client that sends garbage, sends too much or connects and hangs
is answered or dropped without holding anyone up. The show's handler is called on that
thread; the show makes it thread-safe.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import selectors
import socket
import stat
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from .accounts import trusted_uids, user_label
from .admission import make_room
from .errors import ControlError, LatentDMXError

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], dict[str, Any]]

SOCKET_NAME = "control.sock"
MAX_LINE_BYTES = 4096          # a request longer than this is refused and the client dropped
READ_TIMEOUT_S = 5.0           # each request must arrive whole within this (trickling or not)
WRITE_TIMEOUT_S = 5.0          # an answer not read within this drops the client
MAX_CONNECTION_S = 60.0        # no connection lives longer
MAX_CLIENTS = 64               # connections at once (a newcomer displaces the stalest)
MAX_PER_USER = 16              # ... of which one uid may hold at most this many
MAX_ANSWER_BYTES = 1 << 20     # an answer larger than this is an internal error
BACKLOG = 128                  # connections the kernel queues until the thread accepts them
ACCEPT_BATCH = 64              # accepted per turn, after the clients already connected
TURN_REQUESTS = 4              # pipelined requests answered per client per turn
RECV_BYTES = 8192
REPORT_EVERY_S = 60.0          # dropped connections are summed up in the log this often
CPU_SHARE = 0.5                # of one core, at most, for serving clients (the frame loop first)
CPU_WINDOW_S = 0.1
LISTEN_WAIT_S = 2.0            # a client waits at most this for a socket that refuses (bound,
                               # not yet listening: a daemon starting); then: no daemon
START_FIX = "start it with `latentdmx run` or `systemctl start latentdmx`"
_SUN_PATH_MAX = 107            # sockaddr_un.sun_path is 108 bytes including the NUL


# -- where the socket is ------------------------------------------------------------------
def server_socket_path(configured: str | os.PathLike[str] | None = None,
                       env: Mapping[str, str] | None = None) -> Path:
    """The path the daemon listens on: the config's ``[control] socket``, else automatic."""
    if configured:
        return Path(configured).expanduser()
    env = os.environ if env is None else env
    if env.get("RUNTIME_DIRECTORY"):                  # systemd's RuntimeDirectory=
        # several directories are separated by ':'; ours is the first
        return Path(env["RUNTIME_DIRECTORY"].split(":")[0]) / SOCKET_NAME
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "latentdmx" / SOCKET_NAME
    return Path(f"/tmp/latentdmx-{os.getuid()}") / SOCKET_NAME


def client_socket_path(env: Mapping[str, str] | None = None) -> Path:
    """Where a CLI command looks for the daemon when no ``--socket`` is given.

    The first of: this session's own path (as `server_socket_path` picks it), the systemd
    service's ``/run/latentdmx/control.sock``, the ``/tmp`` fallback — that exists. If none
    exists, the first one (so the error names the most likely place).
    """
    env = os.environ if env is None else env
    service = Path("/run/latentdmx") / SOCKET_NAME
    candidates = [server_socket_path(None, env), service,
                  Path(f"/tmp/latentdmx-{os.getuid()}") / SOCKET_NAME]
    if os.geteuid() == 0 and not env.get("XDG_RUNTIME_DIR") and \
            not env.get("RUNTIME_DIRECTORY"):           # sudo: the service first
        candidates = [service, *[c for c in candidates if c != service]]
    for path in candidates:
        if path.exists():
            return path
    return candidates[0]


def check_dir(folder: Path, *, field: str = "control.socket", mine: bool = False) -> None:
    """Refuse the socket's folder if it is a symbolic link, not a folder, owned by anyone but
    `trusted_uids`, or writable by others than its owner and our own group (only
    ``latentdmx*`` folders: the ones we make).
    `mine` (the daemon): a folder of this user's that others may write (an older version
    made it 0770) loses those write bits instead."""
    if not folder.name.startswith("latentdmx"):
        return
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return
    fix = ("remove it (another account may have made it to catch your commands), or set "
           "`[control] socket` / --socket to a folder of your own")
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise ControlError("the socket folder is a symbolic link or not a folder",
                           file=folder, field=field, fix=fix)
    if st.st_uid not in trusted_uids():
        raise ControlError(f"the socket folder belongs to {user_label(st.st_uid)}, not to you or "
                           "the service", file=folder, field=field, fix=fix)
    if mine and st.st_uid == os.geteuid() and st.st_mode & 0o022:
        os.chmod(folder, stat.S_IMODE(st.st_mode) & ~0o022)
        return
    if st.st_mode & 0o002 or (st.st_mode & 0o020 and st.st_gid != os.getegid()):
        raise ControlError(f"the socket folder may be written by others (mode "
                           f"{stat.S_IMODE(st.st_mode):o})", file=folder, field=field, fix=fix)


def check_peer(sock: socket.socket, path: Path, cmd: str) -> None:
    """Believe an answer only from a daemon of this user, root or the service user."""
    peer = _peer_of(sock)
    if peer.uid < 0:                            # not Linux: the folder check stands alone
        return
    if peer.uid not in trusted_uids():
        raise ControlError(f"answered by {user_label(peer.uid)}, pid {peer.pid}: not your daemon "
                           "nor the service", file=path, field=cmd,
                           fix="remove that socket (another account made it) and start the "
                               "daemon again")


# -- the server -----------------------------------------------------------------------
@dataclass(frozen=True)
class Peer:
    """Who is at the other end of a connection (the kernel's ``SO_PEERCRED``)."""

    pid: int
    uid: int
    gid: int

    def __str__(self) -> str:
        return f"pid {self.pid}, uid {self.uid}"


_PEER: ContextVar[Peer | None] = ContextVar("latentdmx_control_peer", default=None)


def current_peer() -> Peer | None:
    """The client whose request the handler is answering (None outside a request)."""
    return _PEER.get()


def _peer_of(sock: socket.socket) -> Peer:
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", raw)
    except OSError:                                 # not Linux, or not a Unix socket
        pid, uid, gid = 0, -1, -1
    return Peer(pid, uid, gid)


class _Conn:
    __slots__ = ("born", "closing", "deadline", "inbuf", "outbuf", "peer", "progress", "sock",
                 "want")

    def __init__(self, sock: socket.socket, peer: Peer, now: float, deadline: float) -> None:
        self.sock = sock
        self.peer = peer
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.born = now
        self.progress = now       # when it last sent a whole request (or connected)
        self.deadline = deadline  # its request must be in by then, or its answer taken
        self.closing = False      # close once outbuf is flushed
        self.want = selectors.EVENT_READ


class ControlServer:
    """Serves ``handler(cmd, args) -> dict`` on a Unix socket, from one daemon thread.

    The handler may raise `ControlError` (or any `LatentDMXError`) or `ValueError` for bad
    input: the client gets ``ok: false`` with the message. Any other exception is logged with
    its traceback and answered as an internal error; the server keeps going.

    What a client may cost, whatever it does (README "Control socket under load"):

    * **Time.** Each request must arrive whole within `read_timeout_s` of the connection
      being ready for it (connected, or its last answer sent); bytes that trickle in do not
      extend that. An answer must be taken within `write_timeout_s`. No connection lives
      longer than `max_connection_s`.
    * **Memory.** A line is at most `max_line_bytes`; while an answer is waiting to be read,
      nothing more is read from that client (the kernel's socket buffer holds the rest), so a
      client that never reads holds one answer, not a growing queue.
    * **Slots.** At most `max_clients` connections, and at most `max_per_user` from any one
      user (uid, from ``SO_PEERCRED``). A newcomer is never turned away: when its user is at
      the cap, that user's stalest connection (the one that completed a request longest ago)
      makes room; when the table is full, the stalest connection of the user holding the
      most does. So one misbehaving account cannot lock out another, and within one account
      a fresh `latentdmx blackout` displaces a stale or hostile connection.
    * **Turns.** A request that arrives with the connection is answered at once (before
      any more newcomers are accepted); pipelined requests are answered a few per client per
      turn, so one chatty client cannot hold up the others.
    * **CPU.** Serving every client together takes at most `cpu_share` of one core (measured
      on this thread over 0.1-s windows); beyond that the thread pauses, so the frame loop
      always has the processor and the GIL it needs.
    """

    def __init__(self, path: str | os.PathLike[str], handler: Handler, *,
                 read_timeout_s: float = READ_TIMEOUT_S, max_line_bytes: int = MAX_LINE_BYTES,
                 max_clients: int = MAX_CLIENTS, max_per_user: int = MAX_PER_USER,
                 write_timeout_s: float = WRITE_TIMEOUT_S,
                 max_connection_s: float = MAX_CONNECTION_S,
                 cpu_share: float = CPU_SHARE) -> None:
        self.path = Path(path)
        self.cpu_share = cpu_share
        self.handler = handler
        self.read_timeout_s = read_timeout_s
        self.write_timeout_s = write_timeout_s
        self.max_connection_s = max_connection_s
        self.max_line_bytes = max_line_bytes
        self.max_clients = max_clients
        self.max_per_user = max(1, min(max_per_user, max_clients))
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._conns: dict[int, _Conn] = {}
        self._ready: dict[int, _Conn] = {}        # whole requests still waiting for a turn
        self._next_expiry = 0.0
        self._dropped: Counter[str] = Counter()   # reported at most once a minute
        self._next_report = 0.0
        self._wake_r, self._wake_w = -1, -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inode: tuple[int, int] | None = None

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> Self:
        if self._thread is not None:
            return self
        if len(os.fsencode(self.path)) > _SUN_PATH_MAX:
            raise ControlError(f"socket path is longer than {_SUN_PATH_MAX} bytes",
                               file=self.path, field="control.socket",
                               fix="choose a shorter `[control] socket` path")
        self._prepare_dir()
        self._remove_stale()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            listener.bind(str(self.path))
            os.chmod(self.path, 0o660)
            listener.listen(BACKLOG)
            listener.setblocking(False)
        except OSError as exc:
            listener.close()
            raise ControlError(f"cannot listen: {exc.strerror or exc}", file=self.path,
                               field="control.socket",
                               fix="check the directory's permissions or set "
                                   "`[control] socket`") from exc
        st = os.stat(self.path)
        self._inode = (st.st_dev, st.st_ino)
        self._listener = listener
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._serve, name="latentdmx-control",
                                        daemon=True)
        self._thread.start()
        log.info("control socket listening on %s", self.path)
        return self

    def close(self) -> None:
        """Stop the thread, drop every client and remove the socket file. Idempotent."""
        if self._thread is None:
            return
        self._stop.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._thread = None
        for conn in list(self._conns.values()):
            self._drop(conn, "")
        assert self._selector is not None and self._listener is not None
        self._selector.close()
        self._listener.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._remove_own_socket()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- start-up checks ----------------------------------------------------------------
    def _prepare_dir(self) -> None:
        parent = self.path.parent
        check_dir(parent, mine=True)               # squatted, a link, open to others: never
        if parent.is_dir() or parent.is_symlink():
            return
        try:
            parent.mkdir(mode=0o700, parents=True)
            os.chmod(parent, 0o700)                # mkdir's mode is filtered by the umask
        except FileExistsError:
            pass
        except OSError as exc:
            raise ControlError(f"cannot create the socket directory: {exc.strerror or exc}",
                               file=parent, field="control.socket",
                               fix="set `[control] socket` to a writable place") from exc
        check_dir(parent, mine=True)               # made by someone else meanwhile?

    def _remove_stale(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlError("exists and is not a socket", file=self.path,
                               field="control.socket",
                               fix="remove it or set `[control] socket` elsewhere")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.path))
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("removing stale control socket %s", self.path)
            self.path.unlink(missing_ok=True)      # a daemon died without cleaning up
            return
        except OSError:
            pass                                  # e.g. a full backlog: someone is there
        finally:
            probe.close()
        raise ControlError("another latentdmx is running", file=self.path,
                           field="control.socket",
                           fix="stop it (`systemctl stop latentdmx`) or give this one its "
                               "own `[control] socket`")

    def _remove_own_socket(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == self._inode:  # never remove a newer daemon's socket
            self.path.unlink(missing_ok=True)

    # -- the loop -------------------------------------------------------------------------
    def _serve(self) -> None:
        window_t, window_cpu = time.monotonic(), time.thread_time()
        while not self._stop.is_set():
            try:
                self._turn()
            except Exception:                       # the thread must never die
                log.exception("control socket: unexpected error, carrying on")
                time.sleep(0.1)
            # The frame loop comes first: at most `cpu_share` of a core for all clients
            # together, however many there are or however fast they ask.
            now, cpu = time.monotonic(), time.thread_time()
            used, spent = cpu - window_cpu, now - window_t
            if used > self.cpu_share * CPU_WINDOW_S:
                self._stop.wait(min(CPU_WINDOW_S, used / self.cpu_share - spent))
            if spent >= CPU_WINDOW_S:
                window_t, window_cpu = time.monotonic(), time.thread_time()

    def _turn(self) -> None:
        assert self._selector is not None
        timeout = 0.0 if self._ready else self._next_timeout()
        accept = False
        for key, events in self._selector.select(timeout):
            if key.fileobj is self._listener:
                accept = True                       # after the clients already in
            elif key.data is None:                  # the wake-up pipe
                try:
                    os.read(self._wake_r, 64)
                except OSError:
                    pass
            else:
                conn: _Conn = key.data
                if conn.sock.fileno() < 0:          # dropped earlier in this turn
                    continue
                try:
                    if events & selectors.EVENT_WRITE:
                        self._write(conn)
                    if events & selectors.EVENT_READ:
                        self._read(conn)
                    self._process(conn)
                except OSError:
                    self._drop(conn, "")
        for conn in list(self._ready.values()):     # pipelined requests: a few each
            self._ready.pop(conn.sock.fileno(), None)
            try:
                self._process(conn)
            except OSError:
                self._drop(conn, "")
        if accept:
            self._accept()
        self._expire()

    def _next_timeout(self) -> float:
        return max(0.0, min(1.0, self._next_expiry - time.monotonic())) if self._conns else 1.0

    def _accept(self) -> None:
        assert self._listener is not None and self._selector is not None
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:                  # e.g. out of file descriptors
                self._count("accept failed: " + (exc.strerror or str(exc)))
                return
            sock.setblocking(False)
            now = time.monotonic()
            conn = _Conn(sock, _peer_of(sock), now, now + self.read_timeout_s)
            self._make_room(conn.peer)
            self._conns[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)
            self._next_expiry = min(self._next_expiry, conn.deadline)
            try:                                    # its request is usually there already
                self._read(conn)
                self._process(conn)
            except OSError:
                self._drop(conn, "")

    def _make_room(self, peer: Peer) -> None:
        conns = list(self._conns.values())
        victim = make_room(conns, peer.uid, owner=lambda c: c.peer.uid,
                           last_useful=lambda c: c.progress, max_total=self.max_clients,
                           max_per_owner=self.max_per_user)
        if victim is not None:
            self._drop(victim, "making room for a newcomer")

    def _read(self, conn: _Conn) -> None:
        if conn.outbuf or conn.closing:             # one answer at a time
            return
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        if not data:                                # the client hung up
            self._drop(conn, "")
            return
        conn.inbuf += data

    def _process(self, conn: _Conn) -> None:
        """Answer up to `TURN_REQUESTS` whole requests; the rest wait for the next turn."""
        answered = 0
        while conn.sock.fileno() >= 0 and not conn.outbuf and not conn.closing:
            end = conn.inbuf.find(b"\n", 0, self.max_line_bytes + 1)
            if end < 0:
                if len(conn.inbuf) > self.max_line_bytes:
                    self._refuse(conn, f"request longer than {self.max_line_bytes} bytes")
                break
            if answered == TURN_REQUESTS:
                self._ready[conn.sock.fileno()] = conn
                break
            line = bytes(conn.inbuf[:end])
            del conn.inbuf[:end + 1]
            if not line.strip():
                continue
            answered += 1
            conn.progress = time.monotonic()
            self._queue(conn, self._answer(line, conn.peer))
        self._want(conn)

    def _answer(self, line: bytes, peer: Peer) -> dict[str, Any]:
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return {"ok": False, "error": "not a JSON request",
                    "fix": 'send one line like {"cmd": "status", "args": {}}'}
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return {"ok": False, "error": 'the request needs a "cmd" string'}
        args = request.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return {"ok": False, "error": '"args" must be an object'}
        cmd = request["cmd"]
        token = _PEER.set(peer)
        try:
            result = self.handler(cmd, args)
        except LatentDMXError as exc:
            return {"ok": False, "error": _one_line(exc.what), "fix": exc.fix}
        except (ValueError, TypeError, KeyError) as exc:
            return {"ok": False, "error": _one_line(str(exc) or type(exc).__name__)}
        except Exception as exc:                        # the server must keep serving
            log.exception("control command %r failed", _one_line(cmd)[:40])
            return {"ok": False, "error": _one_line(f"internal error: {exc}")}
        finally:
            _PEER.reset(token)
        return {"ok": True, "result": {} if result is None else result}

    def _queue(self, conn: _Conn, response: dict[str, Any]) -> None:
        try:
            data = _encode(response)
        except (TypeError, ValueError) as exc:          # a result JSON cannot carry
            log.error("control result not JSON-serialisable: %s", exc)
            data = _encode({"ok": False, "error": "internal error: bad result"})
        if len(data) > MAX_ANSWER_BYTES:
            log.error("control answer of %d bytes not sent (limit %d)", len(data),
                      MAX_ANSWER_BYTES)
            data = _encode({"ok": False, "error": "internal error: answer too large"})
        conn.outbuf += data
        conn.deadline = time.monotonic() + self.write_timeout_s
        self._write(conn)

    def _refuse(self, conn: _Conn, error: str) -> None:
        conn.inbuf.clear()
        conn.closing = True
        self._queue(conn, {"ok": False, "error": error})

    def _write(self, conn: _Conn) -> None:
        if conn.outbuf:
            try:
                sent = conn.sock.send(conn.outbuf)
                del conn.outbuf[:sent]
            except (BlockingIOError, InterruptedError):
                pass
        if not conn.outbuf:
            if conn.closing:
                self._drop(conn, "")
                return
            conn.deadline = time.monotonic() + self.read_timeout_s   # ready for the next
        self._next_expiry = min(self._next_expiry, conn.deadline)

    def _want(self, conn: _Conn) -> None:
        """Wait for the client to read its answer, or for its next request."""
        if conn.sock.fileno() < 0:
            return
        want = selectors.EVENT_WRITE if conn.outbuf else selectors.EVENT_READ
        if want != conn.want:
            assert self._selector is not None
            self._selector.modify(conn.sock, want, conn)
            conn.want = want

    def _expire(self) -> None:
        now = time.monotonic()
        if now < self._next_expiry:
            return
        soonest = now + 1.0
        for conn in list(self._conns.values()):
            end = min(conn.deadline, conn.born + self.max_connection_s)
            if end <= now:
                self._drop(conn, "too slow" if not conn.outbuf else "not reading its answer")
            else:
                soonest = min(soonest, end)
        self._next_expiry = soonest

    def _drop(self, conn: _Conn, reason: str) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        self._conns.pop(fd, None)
        self._ready.pop(fd, None)
        try:
            assert self._selector is not None
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError, AssertionError):
            pass
        conn.sock.close()
        if reason:
            self._count(reason)

    def _count(self, reason: str) -> None:
        """Tell the log what was dropped, summed up at most once a minute."""
        self._dropped[reason] += 1
        now = time.monotonic()
        if now >= self._next_report:
            self._next_report = now + REPORT_EVERY_S
            log.warning("control socket: dropped %s", ", ".join(
                f"{n} ({why})" for why, n in self._dropped.most_common()))
            self._dropped.clear()


def _encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n").encode()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# -- the client -------------------------------------------------------------------------
class ControlClient:
    """Sends one request at a time to the running daemon and returns its ``result``.

    A daemon under load may have its connection queue full, or may let a newer connection
    displace this one before it is read: both are retried (every command is idempotent: it
    sets a value) until `timeout` has passed since the request began. A socket file that
    refuses is a daemon between binding its socket and listening on it (just started), or
    one that died without removing it: retried for up to `LISTEN_WAIT_S` (and `timeout`),
    then "no latentdmx daemon is listening"."""

    def __init__(self, path: str | os.PathLike[str] | None = None, timeout: float = 2.0) -> None:
        self.path = Path(path) if path else client_socket_path()
        self.timeout = timeout

    def request(self, cmd: str, **args: Any) -> dict[str, Any]:
        payload = _encode({"cmd": cmd, "args": args})
        deadline = time.monotonic() + self.timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                self._connect(sock, cmd, deadline)
                check_peer(sock, self.path, cmd)       # before a word is sent or believed
                try:
                    sock.settimeout(max(0.01, deadline - time.monotonic()))
                    sock.sendall(payload)
                    reply = self._read_line(sock)
                except TimeoutError as exc:
                    raise ControlError(f"the daemon did not answer within {self.timeout:g} s",
                                       file=self.path, field=cmd,
                                       fix="check `journalctl -u latentdmx`") from exc
                except (ConnectionResetError, BrokenPipeError, EOFError) as exc:
                    if time.monotonic() < deadline:     # displaced before it was read
                        time.sleep(random.uniform(0.005, 0.03))
                        continue
                    raise ControlError("the daemon closed the connection before answering",
                                       file=self.path, field=cmd,
                                       fix="it may be busy; check `journalctl -u latentdmx`"
                                       ) from exc
                except OSError as exc:
                    raise ControlError(f"connection failed: {exc.strerror or exc}",
                                       file=self.path, field=cmd, fix=START_FIX) from exc
            finally:
                sock.close()
            break
        try:
            response = json.loads(reply)
        except json.JSONDecodeError as exc:
            raise ControlError("the daemon sent a malformed answer", file=self.path,
                               field=cmd, fix="is that socket really latentdmx's?") from exc
        if not isinstance(response, dict):
            raise ControlError("the daemon sent a malformed answer", file=self.path, field=cmd)
        if not response.get("ok"):
            raise ControlError(str(response.get("error") or "request refused"),
                               file=self.path, field=cmd, fix=response.get("fix") or None)
        result = response.get("result")
        return result if isinstance(result, dict) else {"value": result}

    def _connect(self, sock: socket.socket, cmd: str, deadline: float) -> None:
        check_dir(self.path.parent, field=cmd)
        sock.setblocking(False)            # a full queue says so at once (EAGAIN): retry
        listen_by = min(deadline, time.monotonic() + LISTEN_WAIT_S)
        while True:
            try:
                sock.connect(str(self.path))
                return
            except (BlockingIOError, InterruptedError) as exc:
                if time.monotonic() >= deadline:
                    raise ControlError("the daemon does not accept connections", file=self.path,
                                       field=cmd, fix="it may be under load; check "
                                       "`journalctl -u latentdmx`") from exc
                time.sleep(random.uniform(0.002, 0.02))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                if isinstance(exc, ConnectionRefusedError) and time.monotonic() < listen_by:
                    time.sleep(0.02)       # bound, not listening yet: a daemon starting
                    continue
                raise ControlError("no latentdmx daemon is listening", file=self.path,
                                   field=cmd, fix=START_FIX) from exc
            except PermissionError as exc:
                raise ControlError("permission denied", file=self.path, field=cmd,
                                   fix="run it as a member of the latentdmx group "
                                       "(`sudo usermod -aG latentdmx $USER`, then log in "
                                       "again)") from exc
            except OSError as exc:
                if exc.errno == errno.ENOTSOCK:
                    raise ControlError("not a socket", file=self.path, field=cmd,
                                       fix="pass the daemon's socket with --socket") from exc
                raise ControlError(f"cannot connect: {exc.strerror or exc}", file=self.path,
                                   field=cmd, fix=START_FIX) from exc

    def _read_line(self, sock: socket.socket) -> str:
        buf = bytearray()
        deadline = time.monotonic() + self.timeout
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                if not buf:
                    raise EOFError          # closed before a word of the answer
                break
            buf += chunk
            if len(buf) > 1 << 20:
                break
        return buf.split(b"\n", 1)[0].decode("utf-8", "replace")
