"""Node addresses that are host names (``wled-strip.local``, ``node-2.lan``), resolved off the
frame loop and followed when they change.

A network output's destinations may be IPv4 literals or host names. Names go through the
system resolver (``getaddrinfo``: ``/etc/hosts``, DNS, and mDNS ``.local`` names where
nss-mdns is installed, as on Raspberry Pi OS), on a thread of their own: the frame loop only
reads the last answer (`Resolver.address`, a dict read), never waits for one. Every name is
asked again every `REFRESH_S` seconds and soon after a send to it fails (`Resolver.again`),
so a node whose DHCP address changes is followed within a refresh. A name that does not
resolve is one log line when it starts failing (and one when it resolves); frames for it are
skipped meanwhile, and flow as soon as it resolves.

`host` checks the form of a name or literal for the config (one `ConfigError` line).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable

from ..errors import ConfigError

log = logging.getLogger("latentdmx.net")

REFRESH_S = 30.0           # every name is asked again this often
RETRY_MIN_S = 1.0          # at most this often after send errors or failures
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

Lookup = Callable[[str], str]       # name -> an IPv4 address; raises OSError if none


def host(text: object, *, file: str, field: str) -> str:
    """A node's address from the config: an IPv4 literal or a host name (RFC 1123), as the
    output will use it (names lower-cased, without a trailing dot); else a one-line error."""
    fix = ('write the node\'s address, e.g. "192.168.1.50", or its host name, e.g. '
           '"wled-strip.local"')
    if not isinstance(text, str):
        raise ConfigError(f"{text!r} is not an address or host name", file=file, field=field,
                          fix=fix)
    name = text.strip().lower()
    try:
        return str(ipaddress.IPv4Address(name))
    except ValueError:
        pass
    bare = name[:-1] if name.endswith(".") else name
    labels = bare.split(".")
    if (not bare or len(bare) > 253 or not all(_LABEL.match(p) for p in labels)
            or labels[-1].isdigit()):        # 10.0.0.300: a bad address, not a name
        raise ConfigError(f"{text!r} is not an IPv4 address or a host name", file=file,
                          field=field, fix=fix)
    return bare


def is_name(text: str) -> bool:
    """True for a host name, False for an IP literal."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return True
    return False


def system_lookup(name: str) -> str:
    """The first IPv4 address the system resolver gives for `name` (OSError if none)."""
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise OSError(exc.errno, exc.strerror or str(exc)) from None
    if not infos:
        raise OSError(0, "no IPv4 address")
    return str(infos[0][4][0])


class Resolver:
    """Host names -> their current IPv4 addresses, kept fresh by one thread (module doc).

    `address(name)` is what the frame loop reads: the last address, or None while the name
    has not resolved. Literals are never given to it (they need no resolving)."""

    def __init__(self, names: Iterable[str], owner: str, *, lookup: Lookup = system_lookup,
                 refresh_s: float = REFRESH_S, retry_min_s: float = RETRY_MIN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.names = tuple(dict.fromkeys(names))
        self.owner = owner
        self.lookup = lookup
        self.refresh_s = refresh_s
        self.retry_min_s = retry_min_s
        self.clock = clock
        self.addresses: dict[str, str] = {}       # name -> address (read by the frame loop)
        self.failing: dict[str, str] = {}         # name -> why it does not resolve
        self.lookups = 0
        self.version = 0                          # bumped whenever an address changes
        self._soon = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = -1e18

    def address(self, name: str) -> str | None:
        return self.addresses.get(name)

    def start(self) -> None:
        if self._thread is None and self.names:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"latentdmx-resolve-{self.owner}")
            self._thread.start()

    def again(self) -> None:
        """Ask again soon (a send failed: the node may have moved). Never blocks."""
        self._soon.set()

    def close(self) -> None:
        self._stop.set()
        self._soon.set()
        t, self._thread = self._thread, None
        if t is not None:
            t.join(timeout=1.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.resolve_all()
            self._soon.wait(self.refresh_s if not self.failing else
                            min(self.refresh_s, 5.0))
            self._soon.clear()
            wait = self._last + self.retry_min_s - self.clock()
            if wait > 0:                       # not more than once a `retry_min_s`
                self._stop.wait(wait)

    def resolve_all(self) -> None:
        """Ask for every name once, now (the thread's step; tests call it directly)."""
        self._last = self.clock()
        for name in self.names:
            if self._stop.is_set():
                return
            self.lookups += 1
            try:
                addr = self.lookup(name)
            except (OSError, UnicodeError) as exc:
                why = getattr(exc, "strerror", None) or str(exc) or "no address"
                if name not in self.failing:
                    self.failing[name] = why
                    log.error("%s: %s does not resolve (%s); frames to it wait until it "
                              "does%s", self.owner, name, why,
                              ", still sent to its last address " + self.addresses[name]
                              if name in self.addresses else "")
                continue
            old = self.addresses.get(name)
            if name in self.failing:
                del self.failing[name]
            if old != addr:
                self.addresses[name] = addr
                self.version += 1
                if old is None:
                    log.warning("%s: %s is %s: sending", self.owner, name, addr)
                else:
                    log.warning("%s: %s moved from %s to %s: following it", self.owner, name,
                                old, addr)
