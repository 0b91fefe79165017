"""The daemon's optional live web page (``[preview] web = true`` or ``latentdmx run --web``).

Stdlib only: a `ThreadingHTTPServer` in a daemon thread. Endpoints:

* ``GET /``          the page (HTML, CSS and JS inline): the rig drawn live on a canvas,
                     achieved fps, model and walk, music (BPM, beat, lock), master dimmer,
                     pause, blackout and a Tap tempo button.
* ``GET /state``     JSON `state.live_state(show)`: status, fixtures, the last frame decoded.
* ``GET /vocabulary`` JSON: the control vocabulary (`pi_app.vocabulary`: every command, its
                     arguments and help) and what to suggest for names (models, presets,
                     palettes, playlists); the page builds its controls from it.
* ``GET /metrics``   Prometheus text format: `pi_app.health` (frames, late frames, frame work,
                     output errors, limiter, group, audio lock, memory, uptime, config hash),
                     worked out when scraped. The token may also come as ``Authorization:
                     Bearer TOKEN`` (what Prometheus' ``authorization`` setting sends).
* ``POST /control``  JSON ``{"cmd": "dim", "args": {"level": 0.5}}`` -> `Show.handle_control`,
                     the same path as the CLI's control socket: any command of the
                     vocabulary (``preset/recall``, ``seed``, ``tempo``, ``model``, ...).

Safety: every request but the page itself (``GET /``, static, no data) carries the token, in
an ``X-LatentDMX-Token`` header (or ``?token=`` for scripts), on loopback too: any local
account can reach 127.0.0.1. The token is ``[preview] token`` / ``token_file``, else the
daemon's own, made on first start and kept 0600 in the state folder (`pi_app.secrecy`;
``latentdmx web-token`` prints it). The page takes it from the URL's fragment
(``http://127.0.0.1:8044/#token=...``, which browsers never send) once and keeps it. Wrong
tokens back off per source (`Backoff`: an address, or on loopback the local account that
owns the connecting socket), so guessing is slow and another account cannot lock the
operator out. A request's head is capped before it is parsed (`MAX_HEADERS` lines,
`MAX_HEAD_BYTES` in all) and the token is checked before a body is read. On loopback the
Host header must name localhost (no DNS rebinding). POST needs ``Content-Type:
application/json`` (browsers preflight that cross-origin and we never allow it), bodies are
capped at 4 KiB, and the page may not be framed.

Resources, whatever clients do (the same rule as the control socket, `pi_app.admission`): at
most `MAX_CONNECTIONS` connections (one thread each), `MAX_PER_HOST` from one address; a
newcomer displaces the stalest. Each request must arrive whole within `REQUEST_TIMEOUT_S` of
the connection being ready for it (a trickle does not extend that), so idle keep-alive
connections close after that long; no connection lives longer than `MAX_CONNECTION_S`. A
client that hangs up or resets is one debug line, never a traceback.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import secrecy
from .accounts import socket_owner
from .admission import make_room
from .decode import live_state
from .errors import ConfigError, LatentDMXError
from .health import health_of, prometheus_text
from .hosts import is_loopback
from .paths import state_dir
from .runtime import list_models
from .secrecy import Backoff
from .vocabulary import COMMANDS, lookup

log = logging.getLogger("latentdmx")

MAX_BODY = 4096
MAX_CONNECTIONS = 32           # open connections (threads) at once
MAX_PER_HOST = 16              # ... from one client address
REQUEST_TIMEOUT_S = 10.0       # each request must arrive whole within this (idle keep-alive too)
MAX_CONNECTION_S = 120.0       # no connection lives longer (the page simply reconnects)
REAP_EVERY_S = 0.5
MAX_LINE = 8192                # the request line, and any one header line
MAX_HEADERS = 32               # header lines in one request
MAX_HEAD_BYTES = 16384         # request line and headers together
_LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")


def check_preview(preview) -> None:
    """Refuse a weak configured token (one-line `ConfigError`)."""
    if preview.token:
        secrecy.check_token(preview.token, file="config", field="preview.token")


class WebServer:
    """The running page server: `url` to open, `close()` to stop (idempotent)."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread, url: str) -> None:
        self._httpd, self._thread, self.url = httpd, thread, url
        self._closed = False

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        if isinstance(self._httpd, _Server):
            self._httpd.close_all()
        self._thread.join(timeout=2.0)


class _Conn:
    __slots__ = ("born", "deadline", "host", "progress", "sock")

    def __init__(self, sock: socket.socket, host: str, now: float) -> None:
        self.sock, self.host = sock, host
        self.born = self.progress = now
        self.deadline = now + REQUEST_TIMEOUT_S


class _Server(ThreadingHTTPServer):
    """`ThreadingHTTPServer` with a bounded connection table and deadlines (module doc)."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._conns: dict[int, _Conn] = {}
        self._closing = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="latentdmx-web-reaper",
                                        daemon=True)
        self._reaper.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        now = time.monotonic()
        conn = _Conn(request, str(client_address[0]), now)
        with self._lock:
            victim = make_room(list(self._conns.values()), conn.host, owner=lambda c: c.host,
                               last_useful=lambda c: c.progress, max_total=MAX_CONNECTIONS,
                               max_per_owner=MAX_PER_HOST)
            if victim is not None:                  # out of the table now, its thread
                self._conns = {k: c for k, c in self._conns.items() if c is not victim}
                _hang_up(victim.sock)               # ends on its own
            self._conns[id(request)] = conn
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._conns.pop(id(request), None)
        super().shutdown_request(request)

    def request_done(self, request: Any) -> None:
        """A whole request was answered: the connection gets a new deadline."""
        with self._lock:
            conn = self._conns.get(id(request))
            if conn is not None:
                conn.progress = now = time.monotonic()
                conn.deadline = now + REQUEST_TIMEOUT_S

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):            # reset, broken pipe, timed out: the client's
            log.debug("web: %s: %s", client_address[0], exc)
        else:                                   # a bug of ours: say so, once per request
            log.error("web: request from %s failed: %r", client_address[0], exc,
                      exc_info=log.isEnabledFor(logging.DEBUG))

    def _reap(self) -> None:
        while not self._closing.wait(REAP_EVERY_S):
            now = time.monotonic()
            with self._lock:
                late = [c for c in self._conns.values()
                        if c.deadline <= now or c.born + MAX_CONNECTION_S <= now]
                self._conns = {k: c for k, c in self._conns.items() if c not in late}
            for conn in late:
                _hang_up(conn.sock)

    def close_all(self) -> None:
        self._closing.set()
        with self._lock:
            conns = list(self._conns.values())
        for conn in conns:
            _hang_up(conn.sock)


def _hang_up(sock: socket.socket) -> None:
    """End a connection under its thread: its next read sees the end and it exits quietly."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Server6(_Server):
    address_family = socket.AF_INET6


def start_web(show, preview, *, host: str | None = None, port: int | None = None,
              token_dir: Path | None = None) -> WebServer:
    """Serve `show`'s page per `preview` (a `PreviewConfig`); port 0 picks a free port. No
    configured token: the daemon's own in `token_dir` (default: the state folder)."""
    check_preview(preview)
    host = preview.host if host is None else host
    port = preview.port if port is None else port
    token = preview.token or secrecy.web_token(token_dir or state_dir())
    local_only = is_loopback(host)

    class Handler(_Handler):
        pass

    Handler.show, Handler.token, Handler.local_only = show, token, local_only
    Handler.backoff = Backoff()
    try:
        bare = host.strip("[]")                 # an IPv6 address ("::1", "::") too
        httpd = (_Server6 if ":" in bare else _Server)((bare, port), Handler)
    except OSError as exc:
        raise ConfigError(f"cannot serve the web page on {host}:{port} "
                          f"({exc.strerror or exc})", field="preview.port",
                          fix="choose another [preview] port, or stop the program using it"
                          ) from None
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.5},
                              name="latentdmx-web", daemon=True)
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{httpd.server_address[1]}/"
    log.info("web page: %s#token=… (`latentdmx web-token` prints the token)", base)
    return WebServer(httpd, thread, base + "#token=" + token)


class _Handler(BaseHTTPRequestHandler):
    show: Any = None
    token = ""
    local_only = True
    backoff: Backoff
    server_version = "latentdmx"
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(REQUEST_TIMEOUT_S)   # no read waits longer (then: reaper)

    def handle_one_request(self) -> None:
        """The stdlib's, with the request's head read under caps first (`_read_head`)."""
        try:
            head = self._read_head()
            if head is None:
                return
            self.raw_requestline = head[0]
            rfile, self.rfile = self.rfile, io.BytesIO(b"".join(head[1:]))
            try:
                ok = self.parse_request()
            finally:
                self.rfile = rfile
            if not ok:
                return
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.close_connection = True
                self.send_error(HTTPStatus.NOT_IMPLEMENTED)
                return
            method()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True
            return
        if isinstance(self.server, _Server) and not self.close_connection:
            self.server.request_done(self.request)

    def _read_head(self) -> list[bytes] | None:
        """The request line and header lines, or None (answered 431/414, or hung up): at
        most `MAX_LINE` bytes a line, `MAX_HEADERS` lines, `MAX_HEAD_BYTES` in all, so a
        hostile client costs a few KiB however many or large headers it sends."""
        self.close_connection = True
        self.command, self.request_version, self.requestline = "", "HTTP/0.9", ""
        line = self.rfile.readline(MAX_LINE + 1)
        if not line:
            return None
        if len(line) > MAX_LINE:
            self._refuse_head(HTTPStatus.REQUEST_URI_TOO_LONG)
            return None
        head, total = [line], len(line)
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            total += len(line)
            if len(line) > MAX_LINE or total > MAX_HEAD_BYTES or len(head) > MAX_HEADERS:
                self._refuse_head(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
                return None
            head.append(line)
            if line in (b"\r\n", b"\n", b""):
                break
        self.close_connection = False
        return head

    def _refuse_head(self, status: HTTPStatus) -> None:
        self.close_connection = True
        self.request_version = "HTTP/1.1"           # a status line, whatever came in
        self.send_response_only(status)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()

    # -- plumbing ---------------------------------------------------------------------
    def log_message(self, format: str, *args) -> None:
        log.debug("web: " + format, *args)

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        if ctype.startswith("text/html"):
            self.send_header("Content-Security-Policy",
                             "default-src 'none'; script-src 'unsafe-inline'; style-src "
                             "'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj: dict) -> None:
        self._send(code, json.dumps(obj, separators=(",", ":"), allow_nan=False).encode(),
                   "application/json")

    def _source(self) -> str:
        """Who backs off after a wrong token: an address, or on loopback its local account."""
        host = str(self.client_address[0])
        if is_loopback(host):
            uid = socket_owner("tcp", self.client_address, self.connection.getsockname())
            if uid is not None:
                return f"uid {uid}"
        return host

    def _host_ok(self) -> bool:
        if self.local_only:
            host = (self.headers.get("Host") or "").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in _LOCAL_NAMES:
                self.close_connection = True
                self._json(403, {"ok": False, "error": "wrong Host for a localhost page"})
                return False
        return True

    def _allowed(self) -> bool:
        """Host (on loopback), then the token, before anything else is read."""
        if not self._host_ok():
            return False
        source = self._source()
        wait = self.backoff.wait_s(source)
        if wait > 0:
            self.close_connection = True
            self._json(429, {"ok": False, "error": "too many wrong tokens: wait",
                             "retry_s": round(wait, 2)})
            return False
        query = parse_qs(urlsplit(self.path).query)
        bearer = (self.headers.get("Authorization") or "").partition(" ")
        given = (self.headers.get("X-LatentDMX-Token") or
                 (bearer[2].strip() if bearer[0].lower() == "bearer" else "") or
                 (query.get("token") or [""])[0])
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode()):
            if given:                       # a guess (none at all is not one)
                wait = self.backoff.failed(source)
                log.warning("web: wrong token from %s (%s waits %.2g s)",
                            self.client_address[0], source, wait)
            self.close_connection = True
            self._json(401, {"ok": False, "error": "token missing or wrong",
                             "fix": "open the page as http://HOST:PORT/#token=TOKEN with the "
                                    "token `latentdmx web-token` prints"})
            return False
        self.backoff.passed(source)
        return True

    # -- endpoints ----------------------------------------------------------------------
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
            return
        if path == "/":                     # the page itself: static, it holds no data
            if self._host_ok():
                self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            return
        if not self._allowed():
            return
        if path == "/vocabulary":
            self._json(200, vocabulary_json(self.show))
        elif path == "/metrics":            # Prometheus (pi_app/health.py), read when asked
            if not self.show.status_snapshot:
                self._json(503, {"ok": False, "error": "no frame yet"})
                return
            self._send(200, prometheus_text(health_of(self.show)).encode(),
                       "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/state":
            if not self.show.status_snapshot:
                self._json(503, {"ok": False, "error": "no frame yet"})
                return
            self._json(200, live_state(self.show))
        else:
            self._json(404, {"ok": False, "error": "not found"})

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if not self._allowed():
            return
        if urlsplit(self.path).path != "/control":
            self._json(404, {"ok": False, "error": "not found"})
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if ctype != "application/json" or not 0 < length <= MAX_BODY:
            self.close_connection = True
            self._json(400, {"ok": False, "error": "want a JSON body of at most 4 KiB"})
            return
        try:
            req = json.loads(self.rfile.read(length))
            cmd, args = req.get("cmd"), req.get("args") or {}
            command = lookup(cmd)
            if not command.web or not isinstance(args, dict):
                raise ValueError
        except (ValueError, AttributeError, RecursionError, LatentDMXError):
            self._json(400, {"ok": False, "error": "want {\"cmd\": ..., \"args\": {...}}",
                             "fix": "cmd is one of " + ", ".join(web_commands())})
            return
        try:
            result = self.show.handle_control(command.name, args,
                                              origin=f"web ({self.client_address[0]})")
        except LatentDMXError as exc:
            self._json(400, {"ok": False, "error": exc.what, "fix": exc.fix})
            return
        self._json(200, {"ok": True, "result": result})


def web_commands() -> list[str]:
    return [c.name for c in COMMANDS.values() if c.web]


def vocabulary_json(show) -> dict:
    """The commands the page may send, with their arguments, and names to suggest."""
    looks = show.pipeline.looks
    try:
        models = [name for name, _ in list_models()]
    except LatentDMXError:
        models = []
    return {"commands": [c.describe() for c in COMMANDS.values() if c.web],
            "suggest": {"models": models, "presets": show.presets.names(),
                        "palettes": ["none", *sorted(looks.palettes)],
                        "playlists": sorted(show.config.playlists)}}


PAGE = Path(__file__).with_name("web.html").read_text(encoding="utf-8")   # the page itself
