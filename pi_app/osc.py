"""OSC control for tablets (TouchOSC, Open Stage Control, QLC+, Chromatik): ``[osc]``.

Every command of the control vocabulary (`pi_app.vocabulary`) has the address
``/latentdmx/<command>``, its arguments the CLI's, in order::

    /latentdmx/dim 0.5              /latentdmx/preset/recall "dusk"  (optional: fade seconds)
    /latentdmx/blackout 1           /latentdmx/seed 7                /latentdmx/still 0

A command without arguments (``/latentdmx/pause``) runs on any message except a lone 0 or
false, so a push button (1 on press, 0 on release) runs it once. Feedback goes back to the
sender — at its own port, or at ``[osc] reply_port`` — as the same addresses with the current
values (``/latentdmx/dim 0.5``, ``/latentdmx/preset/recall "dusk"``), so faders and labels
follow; ``/latentdmx/status`` also sends ``/latentdmx/status/<field>`` for every status
field; a refused command answers ``/latentdmx/error "what — fix"``. Clients heard from in the
last `CLIENT_TTL_S` get changed values pushed (every `PUSH_INTERVAL_S`), so a change made
from the CLI, the web page or the schedule shows on the tablet too.

Senders: loopback only by default; on the LAN, only the addresses and networks in
``[osc] allow``. Anything else is dropped before it is parsed (one log line per address).
Bundle time tags are not waited for (a far-future tag could otherwise hold the server).

One daemon thread runs python-osc's blocking UDP server; commands go through
`Show.handle_control`, like the socket's and the web page's.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from typing import Any

from .errors import ConfigError, LatentDMXError
from .install_config import allowed_networks

log = logging.getLogger("latentdmx")

PREFIX = "/latentdmx/"
CLIENT_TTL_S = 600.0          # push feedback to clients heard from within this time
MAX_CLIENTS = 16
PUSH_INTERVAL_S = 0.5
MAX_DENIED_LOGGED = 64


def feedback_values(show: Any, result: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    """(address, value) for every command whose state the status shows, `result` on top
    (a change the frame loop has not applied yet)."""
    from .vocabulary import COMMANDS

    status = dict(show.status_snapshot)
    status.update(result or {})
    out = []
    for cmd in COMMANDS.values():
        if cmd.state and cmd.state in status:
            out.append((PREFIX + cmd.name, _osc_value(status[cmd.state])))
    return out


def _osc_value(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    if v is None or isinstance(v, int | float | str):
        return v                            # None: OSC nil (no fps while holding still)
    return str(v)


class OscServer:
    """`start()` / `close()`; `port` is the bound port (0 in the config picks a free one)."""

    def __init__(self, show: Any, cfg: Any, *, port: int | None = None) -> None:
        self.show = show
        self.cfg = cfg
        self._port = cfg.port if port is None else port
        self._allow = allowed_networks(cfg.allow)
        self._clients: dict[tuple[str, int], float] = {}      # reply address -> last heard
        self._last_pushed: dict[str, Any] = {}
        self._denied: set[str] = set()
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._next_push = 0.0

    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server else self._port

    def start(self) -> OscServer:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        owner = self
        dispatcher = Dispatcher(strict_timing=False)
        dispatcher.set_default_handler(self._on_message, needs_reply_address=True)

        class Server(BlockingOSCUDPServer):
            def verify_request(self, request, client_address) -> bool:
                return owner._allowed(client_address) and super().verify_request(
                    request, client_address)

            def service_actions(self) -> None:
                owner._push()

            def handle_error(self, request, client_address) -> None:
                log.exception("OSC: error handling a message from %s", client_address[0])

        try:
            self._server = Server((self.cfg.host.strip("[]"), self._port), dispatcher)
        except OSError as exc:
            raise ConfigError(f"cannot listen for OSC on {self.cfg.host}:{self._port} "
                              f"({exc.strerror or exc})", field="osc.port",
                              fix="choose another [osc] port, or stop the program using it"
                              ) from None
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": PUSH_INTERVAL_S / 2},
                                        name="latentdmx-osc", daemon=True)
        self._thread.start()
        log.info("OSC: listening on %s:%d (%s)", self.cfg.host, self.port,
                 "senders: " + (", ".join(self.cfg.allow) if self.cfg.allow else "loopback"))
        return self

    def close(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._server = None

    # -- senders ----------------------------------------------------------------------------
    def _allowed(self, client_address: Any) -> bool:
        try:
            ip = ipaddress.ip_address(client_address[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self._allow):
            return True
        host = str(ip)
        if host not in self._denied and len(self._denied) < MAX_DENIED_LOGGED:
            self._denied.add(host)
            log.warning("OSC: ignoring %s (not in [osc] allow)", host)
        return False

    def _reply_address(self, client: tuple[str, int]) -> tuple[str, int]:
        return (client[0], self.cfg.reply_port or client[1])

    # -- messages -------------------------------------------------------------------------
    def _on_message(self, client: tuple[str, int], address: str, *values: Any) -> None:
        from .vocabulary import lookup

        reply_to = self._reply_address(client)
        with self._lock:
            self._clients[reply_to] = time.monotonic()
            if len(self._clients) > MAX_CLIENTS:
                oldest = min(self._clients, key=self._clients.__getitem__)
                del self._clients[oldest]
        if not address.startswith(PREFIX):
            return
        name = address[len(PREFIX):].strip("/")
        origin = f"osc {client[0]}:{client[1]}"
        try:
            cmd = lookup(name)
            if not cmd.args:                               # a push button: 1 on press,
                if len(values) == 1 and values[0] in (0, False):
                    return                                 # 0 on release (ignored)
                values = ()
            args = cmd.parse_osc(list(values))
            result = self.show.handle_control(cmd.name, args, origin=origin)
        except LatentDMXError as exc:
            self._send(reply_to, [(PREFIX + "error", _one_line(exc))])
            return
        if cmd.name == "status":
            self._send(reply_to, [(PREFIX + "status/" + k, _osc_value(v))
                                  for k, v in result.items()
                                  if isinstance(v, int | float | str | bool)])
        self._send(reply_to, feedback_values(self.show, result if cmd.live else None))

    def _send(self, to: tuple[str, int], messages: list[tuple[str, Any]]) -> None:
        from pythonosc.osc_message_builder import build_msg

        server = self._server
        if server is None:
            return
        for address, value in messages:
            try:
                server.socket.sendto(build_msg(address, [value]).dgram, to)
            except OSError as exc:                     # an unreachable tablet: not fatal
                log.debug("OSC: feedback to %s failed: %s", to, exc)
                return

    def _push(self) -> None:
        """Send changed feedback values to recent clients (the server thread, ~2 Hz)."""
        now = time.monotonic()
        if now < self._next_push:
            return
        self._next_push = now + PUSH_INTERVAL_S
        with self._lock:
            clients = [c for c, seen in self._clients.items() if now - seen < CLIENT_TTL_S]
        if not clients or not self.show.status_snapshot:
            return
        values = feedback_values(self.show)
        changed = [(a, v) for a, v in values if self._last_pushed.get(a) != v]
        self._last_pushed.update(values)
        if changed:
            for client in clients:
                self._send(client, changed)


def _one_line(exc: LatentDMXError) -> str:
    text = f"{exc.what} — {exc.fix}" if exc.fix else exc.what
    return " ".join(text.split())


def start_osc(show: Any, cfg: Any) -> OscServer:
    return OscServer(show, cfg).start()
