"""The daemon's optional live web page (``[preview] web = true`` or ``latentdmx run --web``).

Stdlib only: a `ThreadingHTTPServer` in a daemon thread. Endpoints:

* ``GET /``          the page (HTML, CSS and JS inline): the rig drawn live on a canvas,
                     achieved fps, model and walk, master dimmer, pause and blackout.
* ``GET /state``     JSON `state.live_state(show)`: status, fixtures, the last frame decoded.
* ``POST /control``  JSON ``{"cmd": "dim", "args": {"level": 0.5}}`` -> `Show.handle_control`,
                     the same path as the CLI's control socket (dim, pause, resume, blackout,
                     seed, tempo, status).

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
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError, LatentDMXError

log = logging.getLogger("latentdmx")

CONTROL_CMDS = frozenset({"status", "dim", "pause", "resume", "blackout", "seed", "tempo"})
MAX_BODY = 4096
_LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")


from ..config import _is_loopback as is_loopback


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
    show = None
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
            if cmd not in CONTROL_CMDS or not isinstance(args, dict):
                raise ValueError
        except (ValueError, AttributeError):
            self._json(400, {"ok": False, "error": "want {\"cmd\": ..., \"args\": {...}}",
                             "fix": "cmd is one of " + ", ".join(sorted(CONTROL_CMDS))})
            return
        try:
            result = self.show.handle_control(cmd, args)
        except LatentDMXError as exc:
            self._json(400, {"ok": False, "error": exc.what, "fix": exc.fix})
            return
        log.info("web: %s %s", cmd, args or "")
        self._json(200, {"ok": True, "result": result})


PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>LatentDMX</title>
<style>
 :root { color-scheme: dark; }
 body { margin: 0; background: #111114; color: #d7d7dc; font: 14px system-ui, sans-serif; }
 header { padding: 10px 16px; display: flex; gap: 18px; align-items: baseline; flex-wrap: wrap;
          border-bottom: 1px solid #2a2a30; }
 header b { font-size: 16px; color: #fff; }
 .dim { color: #8c8c96; }
 main { display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; }
 canvas { background: #111114; border: 1px solid #2a2a30; border-radius: 6px; width: 640px;
          max-width: 100%; aspect-ratio: 16 / 10; }
 aside { min-width: 250px; display: flex; flex-direction: column; gap: 12px; }
 button { font: inherit; padding: 8px 14px; border-radius: 6px; border: 1px solid #444;
          background: #24242a; color: #eee; cursor: pointer; }
 button.on { background: #7a1d1d; border-color: #b33; }
 input[type=range] { width: 100%; }
 table { border-collapse: collapse; }
 td { padding: 2px 8px 2px 0; font-variant-numeric: tabular-nums; }
 .sw { display: inline-block; width: 26px; height: 12px; border-radius: 3px;
       border: 1px solid #333; vertical-align: middle; }
 #err { color: #f77; min-height: 1.2em; }
</style></head>
<body>
<header><b>LatentDMX</b>
 <span>model <b id="model">…</b></span>
 <span><span id="fps">…</span> fps</span>
 <span class="dim">late <span id="late">0</span></span>
 <span class="dim">seed <span id="seed"></span> · tempo <span id="tempo"></span>
   · phase <span id="phase"></span></span>
 <span id="flags"></span>
</header>
<main>
 <canvas id="rig" width="1280" height="800"></canvas>
 <aside>
  <label>master dimmer <span id="mastertxt"></span>
   <input id="master" type="range" min="0" max="100" step="1"></label>
  <div><button id="pause">Pause</button> <button id="blackout">Blackout</button></div>
  <div id="err"></div>
  <table id="fixtures"></table>
  <div class="dim">frames <span id="frames">0</span> · updates <span id="updates">0</span></div>
 </aside>
</main>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const hdrs = token ? {"X-LatentDMX-Token": token} : {};
const $ = (id) => document.getElementById(id);
let last = null, updates = 0, sliding = false;

function rgb(c, a) {
  const v = c.map((x) => Math.round(Math.max(0, Math.min(1, x)) * 255));
  return a === undefined ? `rgb(${v})` : `rgba(${v},${a})`;
}

async function control(cmd, args) {
  try {
    const r = await fetch("control", {method: "POST", body: JSON.stringify({cmd, args: args || {}}),
                          headers: Object.assign({"Content-Type": "application/json"}, hdrs)});
    const j = await r.json();
    $("err").textContent = j.ok ? "" : (j.error + (j.fix ? " — " + j.fix : ""));
  } catch (e) { $("err").textContent = "cannot reach the daemon"; }
}

function draw(st) {
  const cv = $("rig"), g = cv.getContext("2d"), W = cv.width, H = cv.height;
  const pad = 0.08 * Math.min(W, H), reach = 0.42 * Math.min(W, H), pool = 0.1 * Math.min(W, H);
  g.globalCompositeOperation = "source-over";
  g.fillStyle = "#111114"; g.fillRect(0, 0, W, H);
  g.globalCompositeOperation = "lighter";
  const L = st.look, pts = [];
  st.fixtures.forEach((f, i) => {
    const x = pad + f.x * (W - 2 * pad), y = pad + f.y * (H - 2 * pad), c = L.colour[i];
    pts.push([x, y]);
    if (Math.max(...c) < 0.004) return;
    let ex = x, ey = y;
    if (f.moves) {
      const phi = L.pan[i] * (f.pan_deg || 360) * Math.PI / 180;
      const tau = (L.tilt[i] - 0.5) * (f.tilt_deg || 180) * Math.PI / 180;
      const d = reach * Math.sin(tau);
      ex = x + d * Math.cos(phi); ey = y + d * Math.sin(phi);
      const len = Math.hypot(ex - x, ey - y);
      if (len > 1) {
        const nx = -(ey - y) / len, ny = (ex - x) / len, s = pool * 0.9;
        const grad = g.createLinearGradient(x, y, ex, ey);
        grad.addColorStop(0, rgb(c, 0.55)); grad.addColorStop(1, rgb(c, 0.25));
        g.fillStyle = grad; g.beginPath();
        g.moveTo(x + nx * 3, y + ny * 3); g.lineTo(ex + nx * s, ey + ny * s);
        g.lineTo(ex - nx * s, ey - ny * s); g.lineTo(x - nx * 3, y - ny * 3); g.fill();
      }
    }
    const r = f.moves ? pool : pool * 1.15;
    const rad = g.createRadialGradient(ex, ey, 0, ex, ey, r);
    rad.addColorStop(0, rgb(c, 1)); rad.addColorStop(0.6, rgb(c, 0.6)); rad.addColorStop(1, rgb(c, 0));
    g.fillStyle = rad; g.beginPath(); g.arc(ex, ey, r, 0, 2 * Math.PI); g.fill();
  });
  g.globalCompositeOperation = "source-over";
  g.font = "22px system-ui, sans-serif"; g.textAlign = "center";
  st.fixtures.forEach((f, i) => {
    const [x, y] = pts[i];
    g.fillStyle = rgb(L.colour[i]); g.strokeStyle = "#a0a0aa"; g.lineWidth = 2;
    g.beginPath(); g.arc(x, y, 10, 0, 2 * Math.PI); g.fill(); g.stroke();
    g.fillStyle = "#8c8c96"; g.fillText(f.name, x, y - 18);
  });
}

function show(st) {
  const s = st.status;
  $("model").textContent = s.model; $("fps").textContent = `${s.fps_achieved.toFixed(1)} / ${s.fps}`;
  $("late").textContent = s.late_frames; $("seed").textContent = s.seed;
  $("tempo").textContent = s.tempo; $("phase").textContent = s.phase.toFixed(2);
  $("frames").textContent = s.frames; $("updates").textContent = ++updates;
  $("flags").textContent = (s.paused ? "PAUSED " : "") + (s.blackout ? "BLACKOUT" : "");
  $("mastertxt").textContent = Math.round(s.master * 100) + " %";
  if (!sliding) $("master").value = Math.round(s.master * 100);
  $("pause").textContent = s.paused ? "Resume" : "Pause";
  $("blackout").textContent = s.blackout ? "Lights on" : "Blackout";
  $("blackout").classList.toggle("on", s.blackout);
  const rows = st.fixtures.map((f, i) => {
    const pt = f.moves ? `${Math.round(st.look.pan[i] * f.pan_deg)}° / ${Math.round(st.look.tilt[i] * f.tilt_deg)}°` : "";
    return `<tr><td>${f.name.replace(/[<&]/g, "")}</td><td><span class="sw" style="background:${rgb(st.look.colour[i])}"></span></td>` +
           `<td>${Math.round(st.look.level[i] * 100)} %</td><td class="dim">${pt}</td></tr>`;
  });
  $("fixtures").innerHTML = rows.join("");
  draw(st);
}

async function poll() {
  try {
    const r = await fetch("state", {headers: hdrs, cache: "no-store"});
    if (r.ok) { last = await r.json(); show(last); if ($("err").textContent === "cannot reach the daemon") $("err").textContent = ""; }
    else if (r.status !== 503) $("err").textContent = (await r.json()).error;
  } catch (e) { $("err").textContent = "cannot reach the daemon"; }
  setTimeout(poll, 100);
}

$("master").addEventListener("input", () => { sliding = true; $("mastertxt").textContent = $("master").value + " %"; });
$("master").addEventListener("change", () => { sliding = false; control("dim", {level: $("master").value / 100}); });
$("pause").addEventListener("click", () => control(last && last.status.paused ? "resume" : "pause"));
$("blackout").addEventListener("click", () => control("blackout", {on: !(last && last.status.blackout)}));
poll();
</script>
</body></html>
"""
