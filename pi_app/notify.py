"""systemd's notify protocol (``sd_notify``) with no dependency.

Under a ``Type=notify`` unit systemd puts the path of a datagram socket in ``$NOTIFY_SOCKET``
(``@name`` means Linux's abstract namespace) and, with ``WatchdogSec=``, the watchdog period
in ``$WATCHDOG_USEC`` (and the pid it is meant for in ``$WATCHDOG_PID``). The daemon sends
newline-separated ``KEY=value`` assignments: ``READY=1`` once the first frame is out,
``WATCHDOG=1`` from the frame loop, ``STOPPING=1`` on the way out, ``STATUS=...`` whenever it
has something to say. Outside systemd every method is a cheap no-op, so the show calls them
unconditionally.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Talks to systemd's notify socket; does nothing when ``$NOTIFY_SOCKET`` is unset.

    `watchdog()` is meant to be called from every frame: it sends at most once per half
    watchdog period (systemd's advice), so a 50 fps loop costs one datagram every few seconds.
    Sending never raises: a notify failure must not stop the lights, it is logged once.
    """

    def __init__(self, env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        env = os.environ if env is None else env
        self._clock = clock
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._warned = False
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval_s = _watchdog_interval_s(env) if self._address else None
        self._last_ping: float | None = None

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self._address is not None

    # -- the messages -----------------------------------------------------------------
    def ready(self, status: str | None = None) -> bool:
        """The service is up (the first frame is out)."""
        return self._send("READY=1", _status(status))

    def watchdog(self) -> bool:
        """Keep-alive from the frame loop; rate-limited to once per half watchdog period."""
        if self.watchdog_interval_s is None:
            return False
        now = self._clock()
        if self._last_ping is not None and now - self._last_ping < self.watchdog_interval_s:
            return False
        self._last_ping = now
        return self._send("WATCHDOG=1")

    def reloading(self) -> bool:
        """A SIGHUP reload begins; send `ready()` when it is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self._send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str | None = None) -> bool:
        """The daemon is shutting down (fade-out and blackout follow)."""
        return self._send("STOPPING=1", _status(status))

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status``."""
        return self._send(_status(text))

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    # -- plumbing ---------------------------------------------------------------------
    def _send(self, *fields: str | None) -> bool:
        if self._address is None:
            return False
        payload = "\n".join(f for f in fields if f is not None)   # one assignment a line
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX,
                                               socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(payload.encode("utf-8"), self._address)
                return True
            except OSError as exc:
                if not self._warned:
                    log.warning("cannot notify systemd at %s: %s", self._address, exc)
                    self._warned = True
                return False


def _status(text: str | None) -> str | None:
    return None if text is None else "STATUS=" + " ".join(str(text).split())


def _socket_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):                # abstract namespace: leading NUL byte
        return b"\0" + value[1:].encode("utf-8")
    if value.startswith("/"):
        return value
    log.warning("ignoring NOTIFY_SOCKET=%r: not an absolute path or @abstract name", value)
    return None


def _watchdog_interval_s(env: Mapping[str, str]) -> float | None:
    """Half of ``$WATCHDOG_USEC``, or None when there is no watchdog for this process."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 2 / 1e6
