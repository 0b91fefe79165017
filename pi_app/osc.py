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
``[osc] allow`` (a list that lets in most of the internet, ``0.0.0.0/0``, is refused). A
sender on this machine itself (loopback, or one of its own addresses) is a local account:
the kernel's socket table names it, and only the daemon's user, root or a member of its
group is obeyed, the people the control socket admits; any other account's packets are
dropped (one log line per account). Anything else is dropped before it is parsed (one log
line per address). Bundle time tags are not waited for (a far-future tag could otherwise
hold the server); bundles nest at most `MAX_BUNDLE_DEPTH` deep, and a packet that cannot be
read (too deep, an address or string not UTF-8) is dropped with one warning line a minute.

**Spoofing.** UDP carries no proof of who sent it: a machine on the LAN can forge a packet
from an allowed tablet's address, and it is obeyed like the tablet (README "OSC"). What
such a forger cannot do: reach a local account's privileges (local senders are told apart
by the kernel, not by address), load anything but the installed models (no paths from the
network, `pi_app.vocabulary.is_local`), or use the daemon as an amplifier: a source that has
not authenticated gets replies no larger than its request (its own command's value first)
and no pushed feedback. A source authenticates by being a local account of the operator,
or by sending ``/latentdmx/auth TOKEN`` with the web page's token (`latentdmx web-token`),
which a tablet can do on load; it then gets full feedback while it is heard from.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
import threading
import time
from collections import Counter
from typing import Any

from .accounts import admitted, socket_owner
from .errors import ConfigError, LatentDMXError
from .install_config import allowed_networks
from .secrecy import Backoff
from .vocabulary import COMMANDS, lookup

log = logging.getLogger("latentdmx")

PREFIX = "/latentdmx/"
CLIENT_TTL_S = 600.0          # push feedback to clients heard from within this time
MAX_CLIENTS = 16
PUSH_INTERVAL_S = 0.5
MAX_DENIED_LOGGED = 64
MAX_BUNDLE_DEPTH = 8          # bundles in bundles, deeper is dropped unread
DROPPED_REPORT_S = 60.0       # unreadable packets: one summary line at most this often


def feedback_values(show: Any, result: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    """(address, value) for every command whose state the status shows, `result` on top
    (a change the frame loop has not applied yet)."""
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


def screen(data: bytes) -> str | None:
    """Why a packet is dropped unread (bundles too deep, an address not UTF-8), or None.
    Iterative: a packet of nested bundles costs its length, never the stack."""
    stack = [(memoryview(data), 0)]
    while stack:
        pkt, depth = stack.pop()
        if bytes(pkt[:8]) == b"#bundle\0":
            if depth >= MAX_BUNDLE_DEPTH:
                return f"bundles nested deeper than {MAX_BUNDLE_DEPTH}"
            i = 16
            while i + 4 <= len(pkt):
                n = int.from_bytes(pkt[i:i + 4], "big", signed=True)
                if n <= 0 or i + 4 + n > len(pkt):
                    break                          # malformed: python-osc refuses it
                stack.append((pkt[i + 4:i + 4 + n], depth + 1))
                i += 4 + n
        else:
            raw = bytes(pkt[:256])
            end = raw.find(b"\0")
            try:
                (raw if end < 0 else raw[:end]).decode("utf-8")
            except UnicodeDecodeError:
                return "an address that is not UTF-8"
    return None


def _is_own_address(ip: str, _cache: dict[str, bool] = {}) -> bool:   # noqa: B006
    """Whether `ip` is one of this machine's addresses (a socket can be bound to it)."""
    if ip not in _cache:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.bind((ip, 0))
            _cache[ip] = True
        except OSError:
            _cache[ip] = False
        if len(_cache) > 256:
            _cache.clear()
    return _cache[ip]


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
        self._trusted: dict[tuple[str, int], float] = {}     # authenticated -> last heard
        self._budget: int | None = None         # reply bytes left for this packet (None: any)
        self._dropped: Counter[str] = Counter()
        self._next_report = 0.0
        self.token = ""                          # for /latentdmx/auth (set by start_osc)
        self._guesses = Backoff()
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
                return owner._admit(request[0], client_address) and super().verify_request(
                    request, client_address)

            def service_actions(self) -> None:
                owner._push()

            def handle_error(self, request, client_address) -> None:
                import sys

                exc = sys.exc_info()[1]
                if isinstance(exc, UnicodeError | RecursionError) or \
                        type(exc).__module__.startswith("pythonosc"):    # the packet's fault
                    why = ("a string that is not UTF-8" if isinstance(exc, UnicodeError)
                           else f"unreadable ({type(exc).__name__})")
                    owner._drop(client_address[0], why)
                    log.debug("OSC: packet from %s", client_address[0], exc_info=True)
                else:                                   # a bug of ours: once a minute
                    owner._drop(client_address[0], f"failed ({type(exc).__name__})",
                                exc_info=True)

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

    def _admit(self, data: bytes, client: tuple[str, int]) -> bool:
        """Allowed address, an admitted account if sent from this machine, a readable packet.
        Sets this packet's reply budget: none for an authenticated source, else its size."""
        if not self._allowed(client):
            return False
        ip = str(client[0]).removeprefix("::ffff:")
        if not self._local_ok(ip, int(client[1])):
            return False
        why = screen(data)
        if why is not None:
            self._drop(ip, why)
            return False
        trusted = self._reply_address(client) in self._trusted
        self._budget = None if trusted else len(data)
        return True

    def _local_ok(self, ip: str, port: int) -> bool:
        """A sender on this machine: only an admitted account (`accounts.admitted`). Asked
        for every packet (a port another account takes over is its packet then)."""
        now = time.monotonic()
        local = ipaddress.ip_address(ip).is_loopback or _is_own_address(ip)
        ok, uid = True, None
        if local:
            uid = socket_owner("udp", (ip, port))
            ok = uid is not None and admitted(uid)
        if local and ok:
            with self._lock:                   # the operator's own programs: authenticated
                self._trusted[self._reply_address((ip, port))] = now
                while len(self._trusted) > MAX_CLIENTS:
                    del self._trusted[min(self._trusted, key=self._trusted.__getitem__)]
        if not ok:
            who = f"uid {uid}" if uid is not None else "an unknown local sender"
            key = f"{ip} ({who})"
            if key not in self._denied and len(self._denied) < MAX_DENIED_LOGGED:
                self._denied.add(key)
                log.warning("OSC: ignoring %s: not the daemon's user or group", key)
        return ok

    def _drop(self, host: str, why: str, exc_info: bool = False) -> None:
        """Count a dropped packet; one summary line a minute at most."""
        self._dropped[why] += 1
        now = time.monotonic()
        if now >= self._next_report:
            self._next_report = now + DROPPED_REPORT_S
            log.warning("OSC: dropped %s (last from %s)", ", ".join(
                f"{n} packet{'s' if n != 1 else ''} ({w})"
                for w, n in self._dropped.most_common()), host, exc_info=exc_info)
            self._dropped.clear()

    def _reply_address(self, client: tuple[str, int]) -> tuple[str, int]:
        return (client[0], self.cfg.reply_port or client[1])

    # -- messages -------------------------------------------------------------------------
    def _on_message(self, client: tuple[str, int], address: str, *values: Any) -> None:
        reply_to = self._reply_address(client)
        now = time.monotonic()
        if address == PREFIX + "auth":
            self._auth(reply_to, values, now)
            return
        with self._lock:
            if reply_to in self._trusted:      # pushed feedback: authenticated sources only
                self._trusted[reply_to] = now
                self._clients[reply_to] = now
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
        values_back = feedback_values(self.show, result if cmd.live else None)
        own = [(a, v) for a, v in values_back if a == PREFIX + cmd.name]
        if cmd.name in ("status", "health"):          # every field, one message each
            self._send(reply_to, [(PREFIX + cmd.name + "/" + k, _osc_value(v))
                                  for k, v in result.items()
                                  if isinstance(v, int | float | str | bool)])
        self._send(reply_to, own + [(a, v) for a, v in values_back if a != PREFIX + cmd.name])

    def _auth(self, reply_to: tuple[str, int], values: tuple, now: float) -> None:
        """``/latentdmx/auth TOKEN``: the source gets full feedback while it is heard from."""
        given = str(values[0]) if len(values) == 1 else ""
        if self._guesses.wait_s(reply_to[0]) > 0:     # wrong tokens back off, as on the web
            self._drop(reply_to[0], "/latentdmx/auth too soon after a wrong token")
            return
        if self.token and hmac.compare_digest(given.encode("utf-8", "replace"),
                                              self.token.encode()):
            self._guesses.passed(reply_to[0])
            with self._lock:
                self._trusted[reply_to] = self._clients[reply_to] = now
                while len(self._trusted) > MAX_CLIENTS:
                    del self._trusted[min(self._trusted, key=self._trusted.__getitem__)]
                while len(self._clients) > MAX_CLIENTS:
                    del self._clients[min(self._clients, key=self._clients.__getitem__)]
            log.info("OSC: %s:%d authenticated", *reply_to)
            self._send(reply_to, [(PREFIX + "auth", 1)])
        else:
            self._guesses.failed(reply_to[0])
            self._drop(reply_to[0], "wrong /latentdmx/auth token")

    def _send(self, to: tuple[str, int], messages: list[tuple[str, Any]]) -> None:
        from pythonosc.osc_message_builder import build_msg

        server = self._server
        if server is None:
            return
        for address, value in messages:
            dgram = build_msg(address, [value]).dgram
            if self._budget is not None:           # not authenticated: no amplification
                if len(dgram) > self._budget:
                    return
                self._budget -= len(dgram)
            try:
                server.socket.sendto(dgram, to)
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
            clients = [c for c, seen in self._clients.items()
                       if now - seen < CLIENT_TTL_S and c in self._trusted]
        if not clients or not self.show.status_snapshot:
            return
        values = feedback_values(self.show)
        changed = [(a, v) for a, v in values if self._last_pushed.get(a) != v]
        self._last_pushed.update(values)
        self._budget = None                        # authenticated clients only
        if changed:
            for client in clients:
                self._send(client, changed)


def _one_line(exc: LatentDMXError) -> str:
    text = f"{exc.what} — {exc.fix}" if exc.fix else exc.what
    return " ".join(text.split())


def start_osc(show: Any, cfg: Any, token: str = "") -> OscServer:
    """Serve OSC for `show`; `token` (the web page's) authenticates ``/latentdmx/auth``."""
    server = OscServer(show, cfg)
    server.token = token
    return server.start()
