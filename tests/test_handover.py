"""`LatestFrames`: the one newest-frame-wins hand-over (OLA and UART outputs)."""

from __future__ import annotations

import threading
import time

import pytest

from pi_app.outputs.handover import LatestFrames


def test_newest_item_per_key_wins_and_replaced_posts_count_as_dropped():
    h: LatestFrames[int, str] = LatestFrames()
    h.post({1: "a1", 2: "a2"})
    h.post({1: "b1"})                       # replaces a1; a2 still pending
    assert h.counts() == {"posted": 2, "delivered": 0, "pending": 2, "dropped": 0}
    h.post({1: "c1", 2: "c2"})              # post 1 and 2 are now fully replaced
    items, posts, arrival = h.take()
    assert items == {1: "c1", 2: "c2"} and posts == {3} and arrival > 0
    h.mark_delivered(posts)
    assert h.counts() == {"posted": 3, "delivered": 1, "pending": 0, "dropped": 2}
    assert h.take().items == {} and not h.has_pending
    h.close()


def test_requeue_resends_without_counting_a_post_and_never_hides_a_newer_frame():
    h: LatestFrames[int, str] = LatestFrames()
    h.requeue({1: "old1", 2: "old2"})
    h.post({2: "new2"})
    h.requeue({2: "older2"})                # a newer frame is pending: kept
    items, posts, _ = h.take()
    assert items == {1: "old1", 2: "new2"} and posts == {1}
    h.mark_delivered(posts)
    assert h.counts()["dropped"] == 0 and h.counts()["delivered"] == 1
    h.close()


def test_a_post_wakes_a_thread_sleeping_in_select():
    h: LatestFrames[int, int] = LatestFrames()
    woke = []

    def sleeper():
        t0 = time.monotonic()
        h.wait(5.0)
        woke.append(time.monotonic() - t0)

    t = threading.Thread(target=sleeper)
    t.start()
    time.sleep(0.1)
    h.post({0: 1})
    t.join(5)
    assert woke and woke[0] < 2.0
    assert h.wait(0.0) == []                 # the wake-up was drained: nothing left
    h.close()


@pytest.mark.slow
def test_a_busy_producer_never_blocks_on_the_pipe():
    h: LatestFrames[int, int] = LatestFrames()
    t0 = time.monotonic()
    for k in range(200_000):                 # far more than a pipe holds
        h.post({0: k})
    assert time.monotonic() - t0 < 10
    assert h.take().items == {0: 199_999}
    h.close()
