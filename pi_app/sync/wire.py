"""The group's messages on the wire: JSON, signed with HMAC-SHA256, replays refused.

A datagram is ``MAGIC | HMAC-SHA256(key, MAGIC | body) | body``, the body one JSON object::

    {"v": 1, "g": "foyer", "src": "9f2c...", "seq": 17, "sent": 1795000000.123,
     "type": "change" | "announce" | "hello" | "bye", ...}

* **Authentication**: the key is the ``[sync] key`` every member has; a message whose MAC
  does not match (a stranger, a typo in the key, a bit flipped on the way) is refused before
  its body is read. The group name is inside the signed body, so two groups that share a key
  still keep apart.
* **Replays**: every sender (``src``: a random id made at each start, so a restart is a new
  sender) numbers its messages (``seq``) and stamps them with its wall clock (``sent``). A
  receiver refuses a message stamped more than ``max_age_s`` away from its own clock (an old
  capture played back later), and, within that window, any ``(src, seq)`` it has already
  taken (a sliding window of the last `WINDOW` numbers per sender, as IPsec's). Senders
  not heard for twice the age window are forgotten: their messages are stale by then anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from typing import Any

MAGIC = b"LDMXSYNC1"
MAC_BYTES = 32
VERSION = 1
WINDOW = 256                 # sequence numbers remembered per sender
MAX_SENDERS = 512


class Refused(Exception):
    """A datagram that is not taken; `reason` is one of: foreign (not ours at all), forged,
    malformed, group (another group, same key), stale, replayed, own."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def new_src() -> str:
    """A sender id: 64 random bits, new at every start."""
    return os.urandom(8).hex()


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, MAGIC + body, hashlib.sha256).digest()


class Signer:
    """Seals this member's messages: group, sender id, sequence number, wall-clock stamp."""

    def __init__(self, key: str, group: str, src: str | None = None) -> None:
        self._key = key.encode()
        self.group = group
        self.src = src or new_src()
        self._seq = 0
        self._lock = threading.Lock()

    def seal(self, kind: str, payload: dict[str, Any], sent_s: float) -> bytes:
        with self._lock:
            self._seq += 1
            seq = self._seq
        body = {"v": VERSION, "g": self.group, "src": self.src, "seq": seq,
                "sent": round(sent_s, 6), "type": kind, **payload}
        raw = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        return MAGIC + _mac(self._key, raw) + raw


class _Window:
    __slots__ = ("bits", "seen_s", "top")

    def __init__(self) -> None:
        self.top = 0            # the highest sequence number taken
        self.bits = 0           # bit i: top - i was taken
        self.seen_s = 0.0


class Guard:
    """Opens datagrams: checks the MAC, the group, the age and the sequence window."""

    def __init__(self, key: str, group: str, max_age_s: float, own_src: str = "") -> None:
        self._key = key.encode()
        self.group = group
        self.max_age_s = float(max_age_s)
        self.own_src = own_src
        self._windows: dict[str, _Window] = {}
        self.refused: dict[str, int] = {}

    def open(self, data: bytes, now_s: float) -> dict[str, Any]:
        """The message's body, or `Refused` (counted in `refused` by reason)."""
        try:
            return self._open(data, now_s)
        except Refused as exc:
            self.refused[exc.reason] = self.refused.get(exc.reason, 0) + 1
            raise

    def _open(self, data: bytes, now_s: float) -> dict[str, Any]:
        if not data.startswith(MAGIC):
            raise Refused("foreign", "not a LatentDMX group message")
        mac, raw = data[len(MAGIC):len(MAGIC) + MAC_BYTES], data[len(MAGIC) + MAC_BYTES:]
        if len(mac) != MAC_BYTES or not hmac.compare_digest(mac, _mac(self._key, raw)):
            raise Refused("forged", "its signature does not match our key")
        try:
            body = json.loads(raw)
            src, seq, sent = body["src"], body["seq"], float(body["sent"])
            if not (isinstance(body, dict) and isinstance(src, str) and isinstance(seq, int)
                    and body.get("v") == VERSION and isinstance(body.get("type"), str)):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise Refused("malformed", "signed, but not a message we understand") from None
        if body.get("g") != self.group:
            raise Refused("group", f"for group {body.get('g')!r}")
        if src == self.own_src:
            raise Refused("own")
        age = now_s - sent
        if abs(age) > self.max_age_s:
            raise Refused("stale", f"sent {age:+.1f} s from our clock (more than "
                                   f"{self.max_age_s:g} s: a replay, or a clock out of sync)")
        self._take(src, seq, now_s)
        return body

    def _take(self, src: str, seq: int, now_s: float) -> None:
        w = self._windows.get(src)
        if w is None:
            self._forget(now_s)
            w = self._windows[src] = _Window()
        if seq > w.top:
            shift = seq - w.top
            w.bits = ((w.bits << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            w.top = seq
        else:
            back = w.top - seq
            if back >= WINDOW or w.bits >> back & 1:
                raise Refused("replayed", f"message {seq} from {src} again")
            w.bits |= 1 << back
        w.seen_s = now_s

    def _forget(self, now_s: float) -> None:
        """Drop senders not heard for 2 x max_age (their messages are stale anyway)."""
        if len(self._windows) < 16:
            return
        old = [s for s, w in self._windows.items() if now_s - w.seen_s > 2 * self.max_age_s]
        for s in old:
            del self._windows[s]
        while len(self._windows) >= MAX_SENDERS:       # only signed senders get here
            del self._windows[min(self._windows, key=lambda s: self._windows[s].seen_s)]
