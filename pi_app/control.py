"""The daemon's local control socket: JSON lines over a Unix stream socket.

A request is one line, ``{"cmd": "dim", "args": {"level": 0.5}}``; the answer is one line,
``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": "...", "fix": "..."}``. A
connection may carry several requests, one after the other.

Where the socket lives (`server_socket_path`): ``$RUNTIME_DIRECTORY/control.sock`` under
systemd (``/run/latentdmx``), else ``$XDG_RUNTIME_DIR/latentdmx/control.sock``, else
``/tmp/latentdmx-$UID/control.sock``; ``[control] socket`` in the config overrides it. The
socket is mode 0660, so only the daemon's user and group may talk to it.

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
import selectors
import socket
import stat
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

from .errors import ControlError, LatentDMXError

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], dict[str, Any]]

SOCKET_NAME = "control.sock"
MAX_LINE_BYTES = 4096          # a request longer than this is refused and the client dropped
READ_TIMEOUT_S = 5.0           # a connection idle (or mid-line) for longer is dropped
MAX_CLIENTS = 16               # connections beyond this are refused at once
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
    candidates = [server_socket_path(None, env), Path("/run/latentdmx") / SOCKET_NAME,
                  Path(f"/tmp/latentdmx-{os.getuid()}") / SOCKET_NAME]
    for path in candidates:
        if path.exists():
            return path
    return candidates[0]


# -- the server -----------------------------------------------------------------------
class _Conn:
    __slots__ = ("closing", "deadline", "inbuf", "outbuf", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.deadline = deadline
        self.closing = False      # close once outbuf is flushed


class ControlServer:
    """Serves ``handler(cmd, args) -> dict`` on a Unix socket, from one daemon thread.

    The handler may raise `ControlError` (or any `LatentDMXError`) or `ValueError` for bad
    input: the client gets ``ok: false`` with the message. Any other exception is logged with
    its traceback and answered as an internal error; the server keeps going.
    """

    def __init__(self, path: str | os.PathLike[str], handler: Handler, *,
                 read_timeout_s: float = READ_TIMEOUT_S, max_line_bytes: int = MAX_LINE_BYTES,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.path = Path(path)
        self.handler = handler
        self.read_timeout_s = read_timeout_s
        self.max_line_bytes = max_line_bytes
        self.max_clients = max_clients
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._conns: dict[int, _Conn] = {}
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
            listener.listen(8)
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
            self._drop(conn)
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
        if parent.is_dir():
            # our own directory (e.g. /tmp/latentdmx-UID) made by someone else first, or
            # opened to everyone: never listen in there
            st = parent.stat()
            if parent.name.startswith("latentdmx") and (
                    st.st_uid != os.geteuid() or st.st_mode & 0o002):
                raise ControlError("the socket directory belongs to another user or is "
                                   "world-writable", file=parent, field="control.socket",
                                   fix="remove that directory, or set `[control] socket` "
                                       "to a place of your own")
            return
        try:
            parent.mkdir(mode=0o770, parents=True)
            os.chmod(parent, 0o770)                # mkdir's mode is filtered by the umask
        except FileExistsError:
            pass
        except OSError as exc:
            raise ControlError(f"cannot create the socket directory: {exc.strerror or exc}",
                               file=parent, field="control.socket",
                               fix="set `[control] socket` to a writable place") from exc

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
        assert self._selector is not None
        while not self._stop.is_set():
            timeout = self._next_timeout()
            for key, events in self._selector.select(timeout):
                if key.fileobj is self._listener:
                    self._accept()
                elif key.data is None:                  # the wake-up pipe
                    try:
                        os.read(self._wake_r, 64)
                    except OSError:
                        pass
                else:
                    conn: _Conn = key.data
                    try:
                        if events & selectors.EVENT_READ:
                            self._read(conn)
                        if events & selectors.EVENT_WRITE and conn.sock.fileno() >= 0:
                            self._write(conn)
                    except OSError:
                        self._drop(conn)
            self._expire()

    def _next_timeout(self) -> float:
        if not self._conns:
            return 1.0
        soonest = min(c.deadline for c in self._conns.values())
        return max(0.0, min(1.0, soonest - time.monotonic()))

    def _accept(self) -> None:
        assert self._listener is not None and self._selector is not None
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.warning("control socket accept failed: %s", exc)
            return
        sock.setblocking(False)
        if len(self._conns) >= self.max_clients:
            try:
                sock.send(_encode({"ok": False, "error": "too many control connections"}))
            except OSError:
                pass
            sock.close()
            return
        conn = _Conn(sock, time.monotonic() + self.read_timeout_s)
        self._conns[sock.fileno()] = conn
        self._selector.register(sock, selectors.EVENT_READ, conn)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        if not data:                                    # the client hung up
            self._drop(conn)
            return
        if conn.closing:
            return                                      # ignore anything after a refusal
        conn.inbuf += data
        conn.deadline = time.monotonic() + self.read_timeout_s
        while not conn.closing:
            end = conn.inbuf.find(b"\n")
            if end < 0:
                if len(conn.inbuf) > self.max_line_bytes:
                    self._refuse(conn, f"request longer than {self.max_line_bytes} bytes")
                return
            line = bytes(conn.inbuf[:end])
            del conn.inbuf[:end + 1]
            if len(line) > self.max_line_bytes:
                self._refuse(conn, f"request longer than {self.max_line_bytes} bytes")
                return
            if line.strip():
                self._queue(conn, self._answer(line))

    def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
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
        try:
            result = self.handler(cmd, args)
        except LatentDMXError as exc:
            return {"ok": False, "error": _one_line(exc.what), "fix": exc.fix}
        except (ValueError, TypeError, KeyError) as exc:
            return {"ok": False, "error": _one_line(str(exc) or type(exc).__name__)}
        except Exception as exc:                        # the server must keep serving
            log.exception("control command %r failed", cmd)
            return {"ok": False, "error": _one_line(f"internal error: {exc}")}
        return {"ok": True, "result": {} if result is None else result}

    def _queue(self, conn: _Conn, response: dict[str, Any]) -> None:
        try:
            conn.outbuf += _encode(response)
        except (TypeError, ValueError) as exc:          # a result JSON cannot carry
            log.error("control result not JSON-serialisable: %s", exc)
            conn.outbuf += _encode({"ok": False, "error": "internal error: bad result"})
        self._write(conn)

    def _refuse(self, conn: _Conn, error: str) -> None:
        conn.inbuf.clear()
        conn.closing = True
        self._queue(conn, {"ok": False, "error": error})

    def _write(self, conn: _Conn) -> None:
        assert self._selector is not None
        if conn.outbuf:
            try:
                sent = conn.sock.send(conn.outbuf)
                del conn.outbuf[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._drop(conn)
                return
        if conn.outbuf:
            self._selector.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
            return
        if conn.closing:
            self._drop(conn)
            return
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _expire(self) -> None:
        now = time.monotonic()
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            self._drop(conn)

    def _drop(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        self._conns.pop(fd, None)
        try:
            assert self._selector is not None
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError, AssertionError):
            pass
        conn.sock.close()


def _encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n").encode()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# -- the client -------------------------------------------------------------------------
class ControlClient:
    """Sends one request at a time to the running daemon and returns its ``result``."""

    def __init__(self, path: str | os.PathLike[str] | None = None, timeout: float = 2.0) -> None:
        self.path = Path(path) if path else client_socket_path()
        self.timeout = timeout

    def request(self, cmd: str, **args: Any) -> dict[str, Any]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout)
        try:
            self._connect(sock, cmd)
            try:
                sock.sendall(_encode({"cmd": cmd, "args": args}))
                reply = self._read_line(sock)
            except TimeoutError as exc:
                raise ControlError(f"the daemon did not answer within {self.timeout:g} s",
                                   file=self.path, field=cmd,
                                   fix="check `journalctl -u latentdmx`") from exc
            except OSError as exc:
                raise ControlError(f"connection failed: {exc.strerror or exc}",
                                   file=self.path, field=cmd, fix=START_FIX) from exc
        finally:
            sock.close()
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

    def _connect(self, sock: socket.socket, cmd: str) -> None:
        try:
            sock.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlError("no latentdmx daemon is listening", file=self.path, field=cmd,
                               fix=START_FIX) from exc
        except PermissionError as exc:
            raise ControlError("permission denied", file=self.path, field=cmd,
                               fix="run it as a member of the latentdmx group "
                                   "(`sudo usermod -aG latentdmx $USER`, then log in again)"
                               ) from exc
        except TimeoutError as exc:
            raise ControlError("the daemon does not accept connections", file=self.path,
                               field=cmd, fix="check `journalctl -u latentdmx`") from exc
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
                break
            buf += chunk
            if len(buf) > 1 << 20:
                break
        return buf.split(b"\n", 1)[0].decode("utf-8", "replace")
