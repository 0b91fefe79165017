"""The group's messages: HMAC-SHA256 signatures, replay window, age window (pi_app/sync/wire.py).
The multi-process test (tests/test_lockstep_e2e.py) refuses the same things on the LAN."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pi_app.sync.wire import MAGIC, WINDOW, Guard, Refused, Signer

KEY = "correct horse battery staple"
NOW = 1_795_000_000.0


def _pair(max_age_s: float = 5.0) -> tuple[Signer, Guard]:
    return Signer(KEY, "foyer"), Guard(KEY, "foyer", max_age_s, own_src="me")


def _refused(guard: Guard, data: bytes, now: float = NOW) -> str:
    with pytest.raises(Refused) as exc:
        guard.open(data, now)
    return exc.value.reason


def test_a_sealed_message_opens_once():
    signer, guard = _pair()
    data = signer.seal("change", {"cmd": "seed", "args": {"seed": 5}}, NOW)
    body = guard.open(data, NOW + 0.01)
    assert body["cmd"] == "seed" and body["args"] == {"seed": 5} and body["g"] == "foyer"
    assert _refused(guard, data, NOW + 0.02) == "replayed"
    assert guard.refused == {"replayed": 1}


def test_a_stranger_cannot_sign():
    _, guard = _pair()
    forged = Signer("not the group's key at all", "foyer").seal("change", {"cmd": "seed"}, NOW)
    assert _refused(guard, forged) == "forged"
    data = Signer(KEY, "foyer").seal("change", {"cmd": "dim", "args": {"level": 0.1}}, NOW)
    tampered = data.replace(b"0.1", b"1.0")
    assert tampered != data and _refused(guard, tampered) == "forged"
    assert _refused(guard, b"some other program's datagram") == "foreign"
    assert _refused(guard, data[:len(MAGIC) + 10]) == "forged"


def test_signed_with_the_key_but_not_ours_to_take():
    _, guard = _pair()
    raw = json.dumps({"v": 1, "g": "foyer", "src": "x", "seq": "1", "sent": NOW,
                      "type": "change"}).encode()
    bad = MAGIC + hmac.new(KEY.encode(), MAGIC + raw, hashlib.sha256).digest() + raw
    assert _refused(guard, bad) == "malformed"                     # seq not a number
    other_group = Signer(KEY, "garden").seal("hello", {}, NOW)
    assert _refused(guard, other_group) == "group"
    own = Signer(KEY, "foyer", src="me").seal("hello", {}, NOW)
    assert _refused(guard, own) == "own"


@pytest.mark.parametrize("age_s", [-30.0, 5.5, 60.0, 86400.0])
def test_old_or_future_messages_are_refused(age_s):
    signer, guard = _pair(max_age_s=5.0)
    data = signer.seal("change", {"cmd": "seed"}, NOW - age_s)
    assert _refused(guard, data) == "stale"


def test_out_of_order_within_the_window_is_taken_once():
    signer, guard = _pair()
    msgs = [signer.seal("announce", {"i": i}, NOW) for i in range(WINDOW + 10)]
    guard.open(msgs[5], NOW)
    guard.open(msgs[2], NOW)                     # late, within the window: taken
    assert _refused(guard, msgs[2]) == "replayed"
    guard.open(msgs[-1], NOW)                    # jumps ahead by more than the window
    assert _refused(guard, msgs[3]) == "replayed"   # fell out of the window: refused
    guard.open(msgs[-2], NOW)


def test_a_restarted_sender_is_a_new_sender():
    _, guard = _pair()
    first = Signer(KEY, "foyer")
    for _ in range(3):
        guard.open(first.seal("announce", {}, NOW), NOW)
    again = Signer(KEY, "foyer")                 # a new process: new id, numbers from 1
    assert guard.open(again.seal("announce", {}, NOW), NOW)["seq"] == 1


@given(st.lists(st.integers(1, 600), max_size=300))
def test_every_message_is_taken_at_most_once(order):
    """Whatever order the network delivers (and repeats) them in: a message is taken the
    first time it arrives within WINDOW numbers of the newest taken, and never again."""
    signer, guard = _pair()
    sealed = [signer.seal("announce", {}, NOW) for _ in range(600)]
    top, taken = 0, set()
    for n in order:
        expect = n not in taken and top - n < WINDOW
        try:
            guard.open(sealed[n - 1], NOW)
            got = True
        except Refused as exc:
            assert exc.reason == "replayed"
            got = False
        assert got == expect, (n, top)
        if got:
            taken.add(n)
            top = max(top, n)
