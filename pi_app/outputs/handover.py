"""The "newest frame wins" hand-over between the frame loop and an output's own thread.

The frame loop `post`s (never blocks, never waits for the device); the output's thread
`take`s whatever is pending — per key (an OLA universe, the UART's one packet) only the
newest item, the older ones are replaced and counted as dropped. A post wakes the thread
through a pipe, so it can sleep in ``select`` on its own sockets and the hand-over at once
(`fileno`, `wait`, `drain`); one byte per post, no "already woken" flag that could lose a
wake-up between a drain and its reset.

Counting, in posts (one `post` = one frame of the show): ``posted``; ``delivered`` — posts of
which at least one item went out (`mark_delivered`); ``pending``; ``dropped = posted -
delivered - pending``. Items put back with `requeue` (resent after a reconnect) are not posts.
Used by ``ola.py`` and ``uart.py``.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Batch(NamedTuple, Generic[K, V]):
    items: dict[K, V]             # newest item per key
    posts: frozenset[int]         # the posts they came from (for `mark_delivered`)
    arrival: float                # monotonic time of the newest of those posts


class LatestFrames(Generic[K, V]):
    def __init__(self) -> None:
        self._mx = threading.Lock()
        self._pending: dict[K, tuple[V, int]] = {}   # key -> (item, post number; 0 = requeued)
        self.posted = 0
        self.delivered = 0
        self.arrival = 0.0            # monotonic time of the newest post
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)

    # -- the frame loop's side ------------------------------------------------------------
    def post(self, items: Mapping[K, V]) -> None:
        """Hand over one frame's items; replaces whatever is pending under the same keys."""
        now = time.monotonic()
        with self._mx:
            self.posted += 1
            n = self.posted
            for k, v in items.items():
                self._pending[k] = (v, n)
            self.arrival = now
        self.wake()

    def wake(self) -> None:
        try:
            os.write(self._w, b"!")
        except OSError:               # a full pipe already means "wake up"; closed: done
            pass

    # -- the output thread's side ---------------------------------------------------------
    def take(self) -> Batch[K, V]:
        """Everything pending (newest per key), the posts it came from and when the newest
        arrived; clears it."""
        with self._mx:
            batch, self._pending = self._pending, {}
            arrival = self.arrival
        return Batch({k: v for k, (v, _) in batch.items()},
                     frozenset(i for _, i in batch.values() if i), arrival)

    def mark_delivered(self, posts: Iterable[int]) -> None:
        n = len(set(posts))
        if n:
            with self._mx:
                self.delivered += n

    def requeue(self, items: Mapping[K, V]) -> None:
        """Put items back for sending (not new posts) unless newer ones are pending."""
        with self._mx:
            for k, v in items.items():
                self._pending.setdefault(k, (v, 0))

    @property
    def has_pending(self) -> bool:
        with self._mx:
            return bool(self._pending)

    def counts(self) -> dict[str, int]:
        """posted, delivered, pending and dropped, read together."""
        with self._mx:
            pending = len({i for _, i in self._pending.values() if i})
            posted, delivered = self.posted, self.delivered
        return {"posted": posted, "delivered": delivered, "pending": pending,
                "dropped": max(0, posted - delivered - pending)}

    @property
    def dropped(self) -> int:
        return self.counts()["dropped"]

    def fileno(self) -> int:
        """Readable after a post (for ``select`` beside the output's own sockets)."""
        return self._r

    def drain(self) -> None:
        try:
            while os.read(self._r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def wait(self, timeout_s: float, others: Iterable[Any] = ()) -> list[Any]:
        """Sleep until a post, one of `others` is readable, or the timeout; drains the
        wake-ups and returns the readable `others`."""
        fds = [self._r, *others]
        ready, _, _ = select.select(fds, [], [], max(0.0, timeout_s))
        if self._r in ready:
            self.drain()
        return [f for f in ready if f != self._r]

    def close(self) -> None:
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._r = self._w = -1
