"""The control socket against clients that trickle, never read, flood or send garbage: a real
server (`ControlServer`) with a recording handler, real Unix sockets, short deadlines."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time

import pytest

from pi_app.control import ControlClient, ControlServer, current_peer
from pi_app.errors import ControlError


class Handler:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict, object]] = []
        self.lock = threading.Lock()

    def __call__(self, cmd: str, args: dict) -> dict:
        with self.lock:
            self.calls.append((cmd, dict(args), current_peer()))
        if cmd == "big":
            return {"blob": "x" * 20_000}
        return {"cmd": cmd}


@pytest.fixture
def sock_path(tmp_path):
    return tmp_path / "run" / "control.sock"


def serve(path, **kw) -> tuple[ControlServer, Handler]:
    h = Handler()
    kw.setdefault("read_timeout_s", 1.0)
    kw.setdefault("write_timeout_s", 1.0)
    return ControlServer(path, h, **kw).start(), h


def connect(path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    return s


def closed_by_server(s: socket.socket, within_s: float) -> float | None:
    """Seconds until the server closed `s` (reading and discarding), or None."""
    t0 = time.monotonic()
    s.settimeout(0.05)
    while time.monotonic() - t0 < within_s:
        try:
            if s.recv(65536) == b"":
                return time.monotonic() - t0
        except TimeoutError:
            pass
        except OSError:
            return time.monotonic() - t0
    return None


@pytest.mark.slow
def test_a_trickle_does_not_extend_the_deadline(sock_path):
    server, h = serve(sock_path)
    try:
        s = connect(sock_path)
        t0 = time.monotonic()
        request = b'{"cmd": "status", "args": {}}'
        dropped_at = None
        for byte in request:                   # one byte every 0.2 s: 6 s for the request
            try:
                s.send(bytes([byte]))
            except OSError:
                dropped_at = time.monotonic() - t0
                break
            time.sleep(0.2)
            s.setblocking(False)
            try:
                if s.recv(100) == b"":
                    dropped_at = time.monotonic() - t0
                    break
            except BlockingIOError:
                pass
            except ConnectionResetError:            # dropped with our bytes unread
                dropped_at = time.monotonic() - t0
                break
            s.setblocking(True)
        assert dropped_at is not None and dropped_at < 2.0, dropped_at   # deadline 1 s
        assert h.calls == []
        # whole requests are fine, and each one opens a new window
        c = connect(sock_path)
        c.settimeout(2)
        for _ in range(3):
            time.sleep(0.6)
            c.sendall(b'{"cmd": "status"}\n')
            assert json.loads(c.recv(1000))["ok"] is True
        c.close()
    finally:
        server.close()


@pytest.mark.slow
def test_a_client_that_never_reads_costs_one_answer(sock_path):
    server, h = serve(sock_path)
    try:
        s = connect(sock_path)
        s.setblocking(False)
        sent = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.5:      # pipeline as fast as the kernel takes it
            try:
                sent += s.send(b'{"cmd": "big"}\n' * 100)
            except BlockingIOError:
                time.sleep(0.01)
        conns = list(server._conns.values())
        assert len(conns) == 1
        held = len(conns[0].outbuf) + len(conns[0].inbuf)
        assert held < 64 * 1024, held                     # one 20 KB answer, a little input
        assert len(h.calls) < 40                          # the rest waits in the kernel
        assert sent > 100 * 1024                          # (and there was plenty sent)
        time.sleep(2.0)                                   # still not reading...
        assert closed_by_server(s, 3.0) is not None       # ...dropped (write deadline 1 s)
        assert ControlClient(sock_path).request("status") == {"cmd": "status"}
    finally:
        server.close()


def test_pipelined_requests_are_all_answered_in_order(sock_path):
    server, _h = serve(sock_path)
    try:
        s = connect(sock_path)
        s.sendall(b"".join(b'{"cmd": "n%d"}\n' % i for i in range(50)))
        s.settimeout(3)
        buf = b""
        while buf.count(b"\n") < 50:
            buf += s.recv(65536)
        answers = [json.loads(line)["result"]["cmd"] for line in buf.splitlines()]
        assert answers == [f"n{i}" for i in range(50)]
    finally:
        server.close()


def test_a_newcomer_displaces_the_stalest(sock_path):
    server, _h = serve(sock_path, max_clients=8, max_per_user=4, read_timeout_s=30.0)
    try:
        idle = [connect(sock_path) for _ in range(4)]
        time.sleep(0.2)
        busy = connect(sock_path)                 # newest, and it completes a request
        busy.sendall(b'{"cmd": "status"}\n')
        busy.settimeout(2)
        assert busy.recv(1000)
        for _ in range(3):
            assert ControlClient(sock_path).request("blackout") == {"cmd": "blackout"}
        assert closed_by_server(idle[0], 1.0) is not None     # the stalest went first
        assert closed_by_server(busy, 0.3) is None            # the useful one stays
        assert len(server._conns) <= 4
    finally:
        server.close()


def test_the_peer_is_known_to_the_handler(sock_path):
    server, h = serve(sock_path)
    try:
        ControlClient(sock_path).request("dim", level=0.5)
        (_, _, peer), = h.calls
        assert peer.pid == os.getpid() and peer.uid == os.getuid()
    finally:
        server.close()


@pytest.mark.parametrize("payload", [
    b"[" * 4000 + b"\n",                              # too deep for the JSON parser
    b'{"cmd": "x", "args": ' + b"[" * 3000 + b"]" * 3000 + b"}\n",
    b"1" * 4090 + b"\n",                              # a 4090-digit number
    b'{"cmd": "\\ud800"}\n',                          # a lone surrogate
])
def test_garbage_never_kills_the_server(sock_path, payload):
    server, _h = serve(sock_path)
    try:
        s = connect(sock_path)
        s.sendall(payload)
        s.settimeout(2)
        reply = json.loads(s.recv(10000))
        assert reply["ok"] is False or reply["result"] == {"cmd": "\ud800"}
        assert ControlClient(sock_path).request("status") == {"cmd": "status"}
    finally:
        server.close()


def test_client_retries_while_the_queue_is_full(tmp_path):
    """A listener whose backlog is full answers connect() with EAGAIN: the client retries
    until its timeout and then says so in one line."""
    path = tmp_path / "full.sock"
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(str(path))
    lst.listen(0)
    fillers = []
    for _ in range(8):                               # fill the backlog
        f = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        f.setblocking(False)
        try:
            f.connect(str(path))
        except BlockingIOError:
            f.close()
            break
        fillers.append(f)
    t0 = time.monotonic()
    with pytest.raises(ControlError, match="does not accept connections"):
        ControlClient(path, timeout=0.5).request("status")
    assert 0.4 < time.monotonic() - t0 < 2.0
    # now a server that accepts late: the client gets through
    answered = []

    def late_accept() -> None:
        time.sleep(0.3)
        for _f in fillers:
            conn, _ = lst.accept()
            conn.close()
        conn, _ = lst.accept()
        conn.recv(1000)
        conn.sendall(b'{"ok": true, "result": {"late": 1}}\n')
        answered.append(conn)

    th = threading.Thread(target=late_accept)
    th.start()
    assert ControlClient(path, timeout=3.0).request("status") == {"late": 1}
    th.join()
    lst.close()


ATTACKER = r"""
import socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.send(b'{"cmd"')                                # and never the rest
    socks.append(s)
print("ready", flush=True)
time.sleep(30)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
def test_another_user_cannot_take_the_operators_slots():
    import tempfile
    from pathlib import Path

    shared = Path(tempfile.mkdtemp(prefix="latentdmx-test-"))   # the other user can reach it
    shared.chmod(0o755)
    sock_path = shared / "run" / "control.sock"
    (shared / "run").mkdir()
    (shared / "run").chmod(0o750)                   # the daemon's group may come in
    server, _h = serve(sock_path, max_clients=8, max_per_user=4, read_timeout_s=30.0)
    script = shared / "attack.py"
    script.write_text(ATTACKER)
    script.chmod(0o644)
    mine = [connect(sock_path) for _ in range(3)]   # the operator's own idle connections
    proc = subprocess.Popen(["/usr/bin/python3", str(script), str(sock_path), "40"],
                            user=65534, group=os.getgid(), extra_groups=[],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)                               # the server has accepted them all
        uids = [c.peer.uid for c in server._conns.values()]
        assert uids.count(65534) == 4                 # the attacker holds its share only
        assert uids.count(os.getuid()) == 3           # and none of the operator's
        for s in mine:
            assert closed_by_server(s, 0.1) is None
        assert ControlClient(sock_path).request("blackout") == {"cmd": "blackout"}
    finally:
        proc.kill()
        proc.wait()
        server.close()
        import shutil

        shutil.rmtree(shared, ignore_errors=True)


def test_the_server_thread_survives_its_own_bugs(sock_path, monkeypatch, caplog):
    server, _h = serve(sock_path)
    try:
        calls = {"n": 0}
        real = server._expire

        def broken() -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("a bug in the loop")
            real()

        monkeypatch.setattr(server, "_expire", broken)
        deadline = time.monotonic() + 5
        while calls["n"] < 2:                 # the bug has struck, and the loop went on
            assert time.monotonic() < deadline
            ControlClient(sock_path).request("status")
            time.sleep(0.05)
        assert ControlClient(sock_path).request("status") == {"cmd": "status"}
        assert "a bug in the loop" in caplog.text
    finally:
        server.close()


def _thread_cpu_s(native_id: int) -> float:
    fields = open(f"/proc/self/task/{native_id}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
def test_greedy_clients_get_half_a_core_at_most(sock_path):
    """Clients asking as fast as they can (and reading every answer) cost the daemon at most
    about `cpu_share` of a core: the frame loop keeps the rest."""

    def slow(cmd: str, args: dict) -> dict:
        t_end = time.thread_time() + 0.002          # a request that costs 2 ms of CPU
        while time.thread_time() < t_end:
            pass
        return {"cmd": cmd}

    server = ControlServer(sock_path, slow, cpu_share=0.5).start()
    stop = threading.Event()

    def greedy() -> None:
        s = connect(sock_path)
        s.settimeout(5)
        while not stop.is_set():
            s.sendall(b'{"cmd": "status"}\n' * 8)
            got = 0
            while got < 8:
                got += s.recv(65536).count(b"\n")
        s.close()

    threads = [threading.Thread(target=greedy) for _ in range(4)]
    try:
        assert server._thread is not None
        tid = server._thread.native_id
        for t in threads:
            t.start()
        time.sleep(0.5)
        cpu0, t0 = _thread_cpu_s(tid), time.monotonic()
        time.sleep(3.0)
        share = (_thread_cpu_s(tid) - cpu0) / (time.monotonic() - t0)
        assert share < 0.7, share
        assert ControlClient(sock_path).request("blackout") == {"cmd": "blackout"}
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        server.close()
