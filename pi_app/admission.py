"""Who gives up a slot when a newcomer arrives: one rule for the control socket and the web
page, so a flood of connections can never lock the operator out.

A newcomer is always let in. If its owner (a uid on the control socket, an address on the
web page) already holds `max_per_owner` connections, that owner's stalest one makes room;
else, if the table is full, the stalest connection of the owner holding the most does.
"Stalest" is the connection that last did something useful (connected, or completed a
request) longest ago: a slow-loris client, one that never reads its answers, or an idle one.
So one misbehaving owner cannot take another's place, and within one owner a fresh request
displaces a stale or hostile connection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")


def make_room(conns: Sequence[T], newcomer_owner: Hashable, *, owner: Callable[[T], Hashable],
              last_useful: Callable[[T], float], max_total: int,
              max_per_owner: int) -> T | None:
    """The connection to drop so the newcomer fits, or None if it fits as it is."""
    mine = [c for c in conns if owner(c) == newcomer_owner]
    if len(mine) >= max_per_owner:
        return min(mine, key=last_useful)
    if len(conns) < max_total:
        return None
    per_owner = Counter(owner(c) for c in conns)
    most = max(per_owner.values())
    return min((c for c in conns if per_owner[owner(c)] == most), key=last_useful)
