"""sd_notify against a fake NOTIFY_SOCKET: a real datagram socket the test reads."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from pi_app.notify import Notifier


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield str(path), sock
    sock.close()


def _pending(sock: socket.socket) -> list[str]:
    """Every datagram waiting on the socket, without blocking."""
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2.0)
    return out


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_ready_status_stopping_reach_the_socket(notify_socket):
    path, sock = notify_socket
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready(status="first frame out")
    assert sock.recv(4096).decode() == "READY=1\nSTATUS=first frame out"
    assert n.status("50.0 fps\nmodel nat-default")          # newlines folded: one line
    assert sock.recv(4096).decode() == "STATUS=50.0 fps model nat-default"
    assert n.stopping()
    assert sock.recv(4096).decode() == "STOPPING=1"
    n.close()


def test_reloading_sends_monotonic_timestamp(notify_socket):
    path, sock = notify_socket
    n = Notifier({"NOTIFY_SOCKET": path})
    n.reloading()
    first, second = sock.recv(4096).decode().split("\n")
    assert first == "RELOADING=1"
    assert second.startswith("MONOTONIC_USEC=") and int(second.split("=")[1]) > 0


def test_abstract_namespace_socket():
    name = f"latentdmx-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.ready()
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_watchdog_is_rate_limited_to_half_the_period(notify_socket):
    path, sock = notify_socket
    clock = FakeClock()
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000",
                  "WATCHDOG_PID": str(os.getpid())}, clock=clock)
    assert n.watchdog_interval_s == pytest.approx(5.0)
    sent = []
    for _ in range(500):                       # 10 s of a 50 fps loop
        sent.append(n.watchdog())
        clock.t += 0.02
    assert sum(sent) == 2                      # at t=0 and t=5 s, not 500 datagrams
    assert _pending(sock) == ["WATCHDOG=1", "WATCHDOG=1"]


def test_watchdog_for_another_pid_is_off(notify_socket):
    path, sock = notify_socket
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000",
                  "WATCHDOG_PID": str(os.getpid() + 1)})
    assert n.watchdog_interval_s is None
    assert not n.watchdog()
    assert _pending(sock) == []


def test_watchdog_without_watchdog_usec_is_off(notify_socket):
    path, sock = notify_socket
    n = Notifier({"NOTIFY_SOCKET": path})
    assert not n.watchdog()
    assert n.ready()
    assert _pending(sock) == ["READY=1"]


def test_no_notify_socket_is_a_noop():
    n = Notifier({})
    assert not n.enabled
    assert not n.ready() and not n.watchdog() and not n.status("x") and not n.stopping()
    n.close()


def test_dead_socket_does_not_raise(tmp_path, caplog):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert not n.ready()
    assert not n.status("still fine")          # warned once, never raises
    assert sum("cannot notify systemd" in r.message for r in caplog.records) == 1
