"""The web page against idle, trickling and vanishing clients: a real show with its page on,
real TCP connections on loopback."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import struct
import threading
import time
import urllib.request

import pytest
from test_views import TEST_TOKEN, start_web_show

from pi_app import web
from pi_app.config import load_config


@pytest.fixture
def page(monkeypatch):
    monkeypatch.setattr(web, "REQUEST_TIMEOUT_S", 1.0, raising=False)
    cfg = load_config(None)
    cfg = cfg.replace(safety=dataclasses.replace(cfg.safety, fade_out_s=0.0))   # quick stop
    show, _, url = start_web_show(cfg)
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    yield show, url, port
    show.stop()
    show._test_thread.join(5)


def handler_threads() -> int:
    """The page server's threads, one per open connection ("Thread-N (process_request_thread)")."""
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def still_open(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def get_state(url: str) -> dict:
    with urllib.request.urlopen(url + "state?token=" + TEST_TOKEN, timeout=3) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_idle_connections_are_capped_and_timed_out(page):
    _show, url, port = page
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
    time.sleep(0.5)
    assert sum(map(still_open, socks)) <= web.MAX_PER_HOST        # the rest were displaced
    assert handler_threads() <= web.MAX_PER_HOST + 1
    assert get_state(url)["status"]["frames"] > 0                   # a fresh client gets in
    time.sleep(2.0)
    assert sum(map(still_open, socks)) == 0                         # idle: timed out (1 s)
    for s in socks:
        s.close()


@pytest.mark.slow
def test_a_trickle_does_not_extend_the_deadline(page):
    _show, _url, port = page
    s = socket.create_connection(("127.0.0.1", port))
    request = (b"GET /state HTTP/1.1\r\nHost: localhost\r\nX-LatentDMX-Token: "
               + TEST_TOKEN.encode() + b"\r\n\r\n")
    t0 = time.monotonic()
    for byte in request:                          # one byte every 0.1 s: 4 s for the request
        try:
            s.send(bytes([byte]))
        except OSError:
            break
        time.sleep(0.1)
        if not still_open(s):
            break
        s.setblocking(True)
    assert time.monotonic() - t0 < 2.5            # cut at the 1-s deadline (+ the reaper)
    s.close()


@pytest.mark.slow
def test_keep_alive_requests_each_open_a_new_window(page):
    _show, _url, port = page
    import http.client

    conn = http.client.HTTPConnection("localhost", port, timeout=3)
    for _ in range(3):
        time.sleep(0.6)                           # 1.8 s in all, each request within 1 s
        conn.request("GET", "/state", headers={"X-LatentDMX-Token": TEST_TOKEN})
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["status"]
    assert conn.sock is not None                  # one connection all along
    conn.close()


@pytest.mark.slow
def test_resets_log_no_tracebacks(page, caplog, capfd):
    _show, url, port = page
    caplog.set_level(logging.INFO, logger="latentdmx")
    socks = []
    for _ in range(30):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /state HTTP/1.1\r\nHost: localhost\r\n")   # half a request
        socks.append(s)
    time.sleep(0.3)
    for s in socks:                               # then a reset on every one
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(0.5)
    assert get_state(url)["status"]["frames"] > 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "Traceback" not in caplog.text + capfd.readouterr().err   # the stdlib prints them


@pytest.mark.slow
@pytest.mark.parametrize("span_s", [3600, 86400, 30 * 86400, 365 * 86400])
def test_token_backoff_stays_bounded_on_virtual_time(span_s):
    """A guesser at every opening for an hour, a day, a month, a year of virtual time: the
    wait stays capped, guesses stay few, the table stays small; a right token clears it."""
    from pi_app.secrecy import BACKOFF_MAX_S, BACKOFF_SOURCES, Backoff

    now = [0.0]
    b = Backoff(clock=lambda: now[0])
    guesses = 0
    while now[0] < span_s:
        assert b.wait_s("uid 65534") == 0
        wait = b.failed("uid 65534")
        assert 0 < wait <= BACKOFF_MAX_S
        guesses += 1
        now[0] += wait
    assert guesses <= span_s / BACKOFF_MAX_S + 10
    assert b.wait_s("uid 0") == 0                   # the operator's own account: untouched
    for k in range(3 * BACKOFF_SOURCES):            # many addresses
        b.failed(f"10.0.{k // 256}.{k % 256}")
    assert len(b._fails) <= BACKOFF_SOURCES
    b.passed("uid 65534")
    assert b.wait_s("uid 65534") == 0


@pytest.mark.parametrize("head", [
    b"GET /state HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % k for k in range(40)) + b"\r\n",
    b"GET /state HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    b"GET /state HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (k, b"a" * 4000)
                                          for k in range(5)) + b"\r\n",
])
def test_a_head_over_the_caps_is_answered_431_unparsed(page, head):
    _show, _url, port = page
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(head)
        assert s.recv(100).startswith(b"HTTP/1.1 431 ")
