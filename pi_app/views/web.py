"""The daemon's optional live web page (``[preview] web = true`` or ``latentdmx run --web``).

Stdlib only: a `ThreadingHTTPServer` in a daemon thread. Endpoints:

* ``GET /``          the page (HTML, CSS and JS inline): the rig drawn live on a canvas,
                     achieved fps, model and walk, music (BPM, beat, lock), master dimmer,
                     pause, blackout and a Tap tempo button.
* ``GET /state``     JSON `state.live_state(show)`: status, fixtures, the last frame decoded.
* ``GET /vocabulary`` JSON: the control vocabulary (`pi_app.vocabulary`: every command, its
                     arguments and help) and what to suggest for names (models, presets,
                     palettes, playlists); the page builds its controls from it.
* ``POST /control``  JSON ``{"cmd": "dim", "args": {"level": 0.5}}`` -> `Show.handle_control`,
                     the same path as the CLI's control socket: any command of the
                     vocabulary (``preset/recall``, ``seed``, ``tempo``, ``model``, ...).

Safety: bound to 127.0.0.1 by default, where the Host header must name localhost (so a web
page elsewhere cannot reach it through DNS rebinding). On any other address a ``token`` is
required (the daemon refuses to start without one) and every request must carry it:
``?token=...`` in the page URL (the page passes it on), or an ``X-LatentDMX-Token`` header.
POST needs ``Content-Type: application/json`` (browsers preflight that cross-origin and we
never allow it), bodies are capped at 4 KiB, and the page may not be framed.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..config import _is_loopback as is_loopback
from ..errors import ConfigError, LatentDMXError
from ..vocabulary import COMMANDS, lookup

log = logging.getLogger("latentdmx")

MAX_BODY = 4096
_LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")


def check_preview(preview) -> None:
    """Refuse a LAN-facing page without a token (one-line `ConfigError`)."""
    if not is_loopback(preview.host) and not preview.token:
        raise ConfigError(f"the web page on {preview.host} needs a token",
                          field="preview.token",
                          fix='set [preview] token = "a long random string", or host = '
                              '"127.0.0.1"')


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
        self._thread.join(timeout=2.0)


def start_web(show, preview, *, host: str | None = None, port: int | None = None) -> WebServer:
    """Serve `show`'s page per `preview` (a `PreviewConfig`); port 0 picks a free port."""
    check_preview(preview)
    host = preview.host if host is None else host
    port = preview.port if port is None else port
    token = preview.token
    local_only = is_loopback(host)

    class Handler(_Handler):
        pass

    Handler.show, Handler.token, Handler.local_only = show, token, local_only
    try:
        httpd = ThreadingHTTPServer((host.strip("[]"), port), Handler)
    except OSError as exc:
        raise ConfigError(f"cannot serve the web page on {host}:{port} "
                          f"({exc.strerror or exc})", field="preview.port",
                          fix="choose another [preview] port, or stop the program using it"
                          ) from None
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.5},
                              name="latentdmx-web", daemon=True)
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{httpd.server_address[1]}/" + (f"?token={token}" if token else "")
    log.info("web page: %s", url if not token else url.split("?")[0] + "?token=…")
    return WebServer(httpd, thread, url)


class _Handler(BaseHTTPRequestHandler):
    show: Any = None
    token = ""
    local_only = True
    server_version = "latentdmx"
    protocol_version = "HTTP/1.1"

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

    def _allowed(self) -> bool:
        if self.local_only:
            host = (self.headers.get("Host") or "").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in _LOCAL_NAMES:
                self._json(403, {"ok": False, "error": "wrong Host for a localhost page"})
                return False
        if self.token:
            query = parse_qs(urlsplit(self.path).query)
            given = self.headers.get("X-LatentDMX-Token") or (query.get("token") or [""])[0]
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                self._json(401, {"ok": False, "error": "token missing or wrong",
                                 "fix": "open the URL with ?token=... as the daemon logged"})
                return False
        return True

    # -- endpoints ----------------------------------------------------------------------
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
            return
        if not self._allowed():
            return
        if path == "/":
            self._send(200, PAGE.encode(), "text/html; charset=utf-8")
        elif path == "/vocabulary":
            self._json(200, vocabulary_json(self.show))
        elif path == "/state":
            from .state import live_state

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
        except (ValueError, AttributeError, LatentDMXError):
            self._json(400, {"ok": False, "error": "want {\"cmd\": ..., \"args\": {...}}",
                             "fix": "cmd is one of " + ", ".join(web_commands())})
            return
        try:
            result = self.show.handle_control(command.name, args, origin="web")
        except LatentDMXError as exc:
            self._json(400, {"ok": False, "error": exc.what, "fix": exc.fix})
            return
        self._json(200, {"ok": True, "result": result})


def web_commands() -> list[str]:
    return [c.name for c in COMMANDS.values() if c.web]


def vocabulary_json(show) -> dict:
    """The commands the page may send, with their arguments, and names to suggest."""
    from ..runtime import list_models

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
