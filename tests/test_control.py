"""The control socket: a real server with a fake handler, driven through the CLI."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import threading
import time

import pytest
from click.testing import CliRunner

from pi_app.cli import main
from pi_app.control import (
    LISTEN_WAIT_S,
    ControlClient,
    ControlServer,
    client_socket_path,
    server_socket_path,
)
from pi_app.errors import ControlError


class FakeShow:
    """Records every call; answers like the show would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def __call__(self, cmd: str, args: dict) -> dict:
        with self.lock:
            self.calls.append((cmd, dict(args)))
        if cmd == "status":
            return {"model": "nat-default", "fps": 40.0, "fps_achieved": 39.97,
                    "late_frames": 3, "output_health": "ok", "uptime_s": 3725.0,
                    "master": 0.5, "paused": False}
        if cmd == "dim":
            return {"master": args["level"]}
        if cmd == "model" and args["name"] == "nope":
            raise ControlError("no model named 'nope'", field="model",
                               fix="`latentdmx status` lists the bundled models")
        if cmd == "boom":
            raise RuntimeError("handler bug")
        if cmd == "bad":
            raise ValueError("level must be in [0, 1]")
        return {"ok": cmd}


@pytest.fixture
def sock_path(tmp_path):
    return tmp_path / "run" / "control.sock"


@pytest.fixture
def server(sock_path):
    show = FakeShow()
    srv = ControlServer(sock_path, show, read_timeout_s=1.0).start()
    srv.show = show
    yield srv
    srv.close()


def _raw(path, payload: bytes, timeout: float = 2.0) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(path))
    s.sendall(payload)
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return data


# -- through the CLI ---------------------------------------------------------------------
@pytest.mark.parametrize("argv, cmd, args", [
    (["status"], "status", {}),
    (["dim", "0.2"], "dim", {"level": 0.2}),
    (["pause"], "pause", {}),
    (["resume"], "resume", {}),
    (["blackout"], "blackout", {}),
    (["seed", "5"], "seed", {"seed": 5}),
    (["model", "iae-default"], "model", {"name": "iae-default"}),
    (["tempo", "2"], "tempo", {"tempo": 2.0}),
])
def test_every_cli_command_reaches_the_handler(server, sock_path, argv, cmd, args):
    result = CliRunner().invoke(main, [*argv, "--socket", str(sock_path)])
    assert result.exit_code == 0, result.output
    assert server.show.calls == [(cmd, args)]


def test_status_prints_a_readable_table(server, sock_path):
    out = CliRunner().invoke(main, ["status", "--socket", str(sock_path)]).output
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert rows["model"] == "nat-default"
    assert rows["fps achieved"] == "39.97"
    assert rows["late frames"] == "3"
    assert rows["uptime"] == "1h 2m 5s"
    assert rows["paused"] == "no"
    assert list(rows)[:3] == ["model", "output health", "fps target"]


def test_socket_found_through_environment(server, sock_path, monkeypatch):
    monkeypatch.setenv("LATENTDMX_SOCKET", str(sock_path))
    result = CliRunner().invoke(main, ["dim", "1"])
    assert result.exit_code == 0 and "master 1" in result.output


def test_cli_rejects_out_of_range_before_sending(server, sock_path):
    result = CliRunner().invoke(main, ["dim", "1.5", "--socket", str(sock_path)])
    assert result.exit_code == 2 and server.show.calls == []


def test_handler_error_is_one_line_exit_2(server, sock_path):
    result = CliRunner().invoke(main, ["model", "nope", "--socket", str(sock_path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {sock_path}: model: no model named 'nope' — ")


def test_no_daemon_is_one_line_exit_2(tmp_path):
    path = tmp_path / "nobody.sock"
    result = CliRunner().invoke(main, ["status", "--socket", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        (f"error: {path}: status: no latentdmx daemon is listening — start it with "
         "`latentdmx run` or `systemctl start latentdmx`")]


@pytest.mark.slow
def test_a_daemon_between_bind_and_listen_is_waited_for(tmp_path):
    """The socket file exists from the daemon's bind(), a moment before its listen(): a
    client that comes in between (`watch` right after `run`) waits for the listen instead of
    saying there is no daemon; a socket that never listens (left by a daemon that died) is
    still "no daemon", after at most LISTEN_WAIT_S."""
    path = tmp_path / "c.sock"
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(str(path))                            # bound, not listening yet

    def listen_late() -> None:
        time.sleep(0.3)
        lst.listen(1)
        lst.settimeout(10)                         # gives up if the client did
        try:
            conn, _ = lst.accept()
        except OSError:
            return
        conn.recv(1000)
        conn.sendall(b'{"ok": true, "result": {"late": 1}}\n')
        conn.close()

    th = threading.Thread(target=listen_late, daemon=True)
    th.start()
    t0 = time.monotonic()
    try:
        assert ControlClient(path).request("status") == {"late": 1}
        assert time.monotonic() - t0 >= 0.25       # it was refused first, then waited
    finally:
        th.join(10)
        lst.close()
    dead = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(dead))
    s.close()
    t0 = time.monotonic()
    with pytest.raises(ControlError, match="no latentdmx daemon is listening"):
        ControlClient(dead).request("status")
    assert LISTEN_WAIT_S - 0.1 < time.monotonic() - t0 < LISTEN_WAIT_S + 5


# -- the protocol -------------------------------------------------------------------------
def test_client_and_errors(server, sock_path):
    client = ControlClient(sock_path)
    assert client.request("dim", level=0.5) == {"master": 0.5}
    with pytest.raises(ControlError, match="level must be"):
        client.request("bad")
    with pytest.raises(ControlError, match="internal error: handler bug"):
        client.request("boom")
    assert client.request("pause") == {"ok": "pause"}        # still serving


def test_several_requests_on_one_connection(server, sock_path):
    data = _raw(sock_path, b'{"cmd":"pause"}\n{"cmd":"resume"}\n', timeout=2.0)
    # _raw stops at a newline: the first answer, maybe both
    assert json.loads(data.splitlines()[0]) == {"ok": True, "result": {"ok": "pause"}}
    deadline = time.monotonic() + 2
    while len(server.show.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [c for c, _ in server.show.calls] == ["pause", "resume"]


@pytest.mark.parametrize("payload, error", [
    (b"\xff\xfe garbage \x00\n", "not a JSON request"),
    (b"[1, 2, 3]\n", '"cmd"'),
    (b'{"cmd": "dim", "args": 5}\n', '"args"'),
])
def test_garbage_gets_a_one_line_error(server, sock_path, payload, error):
    reply = json.loads(_raw(sock_path, payload))
    assert reply["ok"] is False and error in reply["error"]
    assert server.show.calls == []


def test_over_long_line_is_refused_and_dropped(server, sock_path):
    reply = _raw(sock_path, b"x" * 10_000)        # no newline at all
    assert json.loads(reply) == {"ok": False, "error": "request longer than 4096 bytes"}
    assert ControlClient(sock_path).request("pause") == {"ok": "pause"}


def test_hanging_client_does_not_stall_others(server, sock_path):
    hangers = []
    for _ in range(3):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(sock_path))
        s.sendall(b'{"cmd": "dim", "ar')          # half a line, then nothing
        hangers.append(s)
    t0 = time.monotonic()
    assert ControlClient(sock_path, timeout=1.0).request("status")["model"] == "nat-default"
    # not held up by the hanging clients: waiting for one of them would take the read
    # timeout (1 s here); the margin below it is for a busy machine
    assert time.monotonic() - t0 < 0.9
    # the hanging clients are dropped after the read timeout (1 s here)
    hangers[0].settimeout(3.0)
    assert hangers[0].recv(100) == b""
    for s in hangers:
        s.close()
    assert [c for c, _ in server.show.calls] == ["status"]


def test_client_disconnecting_mid_line(server, sock_path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(sock_path))
    s.sendall(b'{"cmd": "blackout"')
    s.close()
    assert ControlClient(sock_path).request("resume") == {"ok": "resume"}
    assert server.show.calls == [("resume", {})]


def test_socket_and_directory_modes(server, sock_path):
    assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o660
    assert stat.S_IMODE(os.stat(sock_path.parent).st_mode) == 0o700  # this user only


def test_close_removes_the_socket(sock_path):
    srv = ControlServer(sock_path, FakeShow()).start()
    assert sock_path.exists()
    srv.close()
    srv.close()                                    # idempotent
    assert not sock_path.exists()


def test_stale_socket_is_replaced(sock_path):
    sock_path.parent.mkdir(parents=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock_path))                      # bound, never listening: a dead daemon
    dead.close()
    with ControlServer(sock_path, FakeShow()):
        assert ControlClient(sock_path).request("pause") == {"ok": "pause"}


def test_live_daemon_is_not_replaced(server, sock_path):
    with pytest.raises(ControlError, match="another latentdmx is running"):
        ControlServer(sock_path, FakeShow()).start()
    assert ControlClient(sock_path).request("pause") == {"ok": "pause"}


def test_regular_file_in_the_way(sock_path):
    sock_path.parent.mkdir(parents=True)
    sock_path.write_text("not a socket")
    with pytest.raises(ControlError, match="not a socket"):
        ControlServer(sock_path, FakeShow()).start()
    assert sock_path.read_text() == "not a socket"


# -- paths ------------------------------------------------------------------------------
def test_socket_path_rules(tmp_path):
    uid = os.getuid()
    assert server_socket_path("/x/y.sock", {}) == type(tmp_path)("/x/y.sock")
    assert str(server_socket_path("", {"RUNTIME_DIRECTORY": "/run/latentdmx",
                                       "XDG_RUNTIME_DIR": "/run/user/1000"})) \
        == "/run/latentdmx/control.sock"
    assert str(server_socket_path(None, {"XDG_RUNTIME_DIR": "/run/user/1000"})) \
        == "/run/user/1000/latentdmx/control.sock"
    assert str(server_socket_path(None, {})) == f"/tmp/latentdmx-{uid}/control.sock"
    # the client prefers a socket that exists
    xdg = tmp_path / "xdg"
    assert client_socket_path({"XDG_RUNTIME_DIR": str(xdg)}) in (
        xdg / "latentdmx" / "control.sock",                  # nothing runs: the first
        type(tmp_path)("/run/latentdmx/control.sock"),       # (unless a service runs here)
        type(tmp_path)(f"/tmp/latentdmx-{uid}/control.sock"))
