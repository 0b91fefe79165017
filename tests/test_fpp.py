"""`[fpp] remote = true`: a stand-in FPP MultiSync master, written here from FPP's
``docs/ControlProtocol.txt`` (not from `pi_app.fpp`), on loopback, drives a running show:
discovery answered with a ping, a mapped sequence played from the master's position within
a frame (the phase line checked against the master's clock), a seek followed, stop taken
dark, an unknown sequence logged once."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time

import pytest

from pi_app.clock import FastClock, FrameClock
from pi_app.config import default_config_path, parse_config
from pi_app.errors import ConfigError
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import Show

FPS = 40
SPW = 6.0


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Master:
    """An FPP master as the protocol document describes it: 'FPPD', packet type, extra data
    length (16 bits, little-endian as FPP writes it), then the packet's own fields."""

    def __init__(self, remote_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(3.0)
        self.to = ("127.0.0.1", remote_port)

    def _send(self, kind: int, extra: bytes) -> None:
        self.sock.sendto(b"FPPD" + bytes([kind]) + len(extra).to_bytes(2, "little") + extra,
                         self.to)

    def sync(self, action: int, name: str, seconds: float, file_type: int = 0) -> None:
        """buf[7] action (0 start, 1 stop, 2 sync, 3 open), buf[8] file type (0 sequence),
        buf[9-12] frame number, buf[13-16] seconds as a float, then the NUL-ended name."""
        frame = int(seconds * FPS)
        self._send(1, bytes([action, file_type]) + struct.pack("<I", frame) +
                   struct.pack("<f", seconds) + name.encode() + b"\x00")

    def discover(self) -> dict:
        """A version 3 ping of subtype 1 (discover); the remote's answer, read by the
        document's byte numbers (buf[n] = packet byte n)."""
        body = bytearray(294)
        body[0], body[1], body[2] = 3, 1, 0x01
        body[7] = 0x04                                   # sending MultiSync
        self._send(4, bytes(body))
        buf, _ = self.sock.recvfrom(2048)
        return {"magic": buf[:4], "type": buf[4], "len": buf[5] | buf[6] << 8,
                "version": buf[7], "subtype": buf[8], "system": buf[9],
                "major": buf[10] << 8 | buf[11], "minor": buf[12] << 8 | buf[13],
                "mode": buf[14], "ip": socket.inet_ntoa(buf[15:19]),
                "hostname": buf[19:84].split(b"\x00")[0].decode(),
                "app_version": buf[84:125].split(b"\x00")[0].decode(),
                "hardware": buf[125:166].split(b"\x00")[0].decode(),
                "ranges": buf[166:287].split(b"\x00")[0].decode(), "size": len(buf)}

    def close(self) -> None:
        self.sock.close()


def config(port: int, extra: str = ""):
    return parse_config(default_config_path().read_text() + f"""
[presets.dusk]
seed = 5
tempo = 0.5
phase = 2.0
[fpp]
remote = true
host = "127.0.0.1"
port = {port}
multicast = false
[fpp.map]
"xmas.fseq" = "dusk"
intro = {{ model = "nat-neon", seed = 9 }}
""" + extra, "rig.toml")


class Running:
    """The show on the real frame clock, on a thread, with its FPP remote."""

    def __init__(self, cfg, tmp_path) -> None:
        patch = Patch(cfg)
        out = SimOutput(patch.universes, blackout=patch.blackout_frames)
        self.show = Show(cfg, out, control=False, presets_dir=tmp_path / "presets",
                         clock=FrameClock)
        self.thread = threading.Thread(target=self.show.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while self.show.frames_out < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.show.frames_out >= 5

    def phase_error(self, base: float, rate: float, m0: float, pos0: float) -> float:
        """Walk phase now minus where the master's position puts it, in frames."""
        clock = self.show.clock
        assert clock is not None
        mono = time.monotonic()
        t = mono - clock.start_s
        want = base + (pos0 + mono - m0) * rate
        return (self.show.pipeline.line.at(t) - want) / (rate / FPS)

    def close(self) -> None:
        self.show.stop()
        self.thread.join(timeout=30)


@pytest.fixture
def running(tmp_path):
    port = free_udp_port()
    run = Running(config(port), tmp_path)
    master = Master(port)
    yield run, master
    master.close()
    run.close()


@pytest.mark.slow
def test_discovery_is_answered_with_a_remote_ping(running):
    _, master = running
    got = master.discover()
    assert got["magic"] == b"FPPD" and got["type"] == 4 and got["len"] == 294
    assert got["size"] == 7 + 294
    assert (got["version"], got["subtype"], got["mode"]) == (3, 0, 0x08)
    assert got["ip"] == "127.0.0.1" and got["hostname"] == socket.gethostname()
    assert got["app_version"].startswith("LatentDMX ") and got["hardware"] == "LatentDMX"
    assert got["ranges"] == "0-511"


@pytest.mark.slow
def test_start_sync_seek_and_stop_follow_the_master_within_a_frame(running, caplog):
    run, master = running
    p = run.show.pipeline
    rate = 0.5 / SPW
    caplog.set_level(logging.INFO, logger="latentdmx")
    m0 = time.monotonic()
    master.sync(0, "xmas.fseq", 0.0)                     # start
    time.sleep(0.4)
    for _ in range(4):                                   # syncs, as a master sends them
        master.sync(2, "xmas.fseq", time.monotonic() - m0)
        time.sleep(0.1)
    plays = [r for r in caplog.records if "fpp/play" in r.getMessage()]
    assert len(plays) == 1 and "fpp 127.0.0.1:" in plays[0].getMessage()   # in step: quiet
    assert p.seed == 5 and p.line.tempo == 0.5 and run.show.director.preset == "dusk"
    assert abs(run.phase_error(2.0, rate, m0, 0.0)) <= 1.0
    # the master seeks to 30 s: the next sync moves the walk there
    m1 = time.monotonic()
    master.sync(2, "xmas.fseq", 30.0)
    time.sleep(0.3)
    master.sync(2, "xmas.fseq", 30.0 + time.monotonic() - m1)
    time.sleep(0.2)
    assert abs(run.phase_error(2.0, rate, m1, 30.0)) <= 1.0
    # stop: dark with it; a start of another sequence: that look, from its position
    master.sync(1, "xmas.fseq", 31.0)
    time.sleep(0.2)
    assert p.line.held and run.show.status_snapshot["state"] == "blackout"
    m2 = time.monotonic()
    master.sync(0, "intro", 5.0)
    time.sleep(0.3)
    assert p.seed == 9 and not p.line.held and run.show.director.preset == ""
    assert abs(run.phase_error(0.0, 1.0 / SPW, m2, 5.0)) <= 1.0
    # an unmapped sequence: one log line however often it comes, and nothing changes
    n0 = len(caplog.records)
    for _ in range(5):
        master.sync(2, "other.fseq", 1.0)
    time.sleep(0.3)
    assert p.seed == 9
    unknown = [r for r in caplog.records if "other.fseq" in r.getMessage()]
    assert len(unknown) == 1 and "does not map" in unknown[0].getMessage()
    assert [r for r in caplog.records[n0:] if "fpp/" in r.getMessage()] == []


@pytest.mark.parametrize("show_time_s", [3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0])
def test_seeking_is_exact_after_an_hour_a_day_a_month_a_year(tmp_path, show_time_s):
    """On virtual time: the show has run `show_time_s`; a start at master position 12.5 s,
    applied a frame later, puts the walk exactly where 12.5 s (+ that frame) of the preset
    is; the next frames walk on at the preset's rate."""
    cfg = config(free_udp_port())
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes), control=False,
                presets_dir=tmp_path / "presets", clock=FastClock)
    clock = show.clock = FastClock(FPS)
    clock._virtual = clock.start_s + show_time_s
    show.handle_control("fpp/play", {"sequence": "xmas.fseq", "position_s": 12.5,
                                     "start": True}, origin="fpp 127.0.0.1")
    t = show_time_s + 1 / FPS
    while not show._commands.empty():
        show._commands.get_nowait()(t)
    line, rate = show.pipeline.line, 0.5 / SPW
    for later in (0.0, 1.0, 3600.0):
        assert line.at(t + later) == pytest.approx(2.0 + (12.5 + 1 / FPS + later) * rate,
                                                   abs=1e-9)
    # a sync in step changes nothing; one a frame and a half off moves the walk
    clock._virtual = clock.start_s + t
    assert show.handle_control("fpp/play", {"sequence": "xmas.fseq",
                                            "position_s": 12.5 + 1 / FPS})["in_step"]
    assert "in_step" not in show.handle_control(
        "fpp/play", {"sequence": "xmas.fseq", "position_s": 12.5 + 2.5 / FPS})


@pytest.mark.parametrize("position", [0.0, 0.025, 3600.0, 86400.0, 30 * 86400.0,
                                      365 * 86400.0])
@pytest.mark.parametrize("step_ms", [25, 50])
def test_the_masters_position_is_exact_from_its_frame_number(position, step_ms):
    """The master's seconds are a 32-bit float (0.25 s coarse after a month); frame x step
    is exact, at an hour, a day, a month and a year into a sequence."""
    from pi_app.fpp import parse, position_s

    frame = round(position * 1000 / step_ms) + 1
    exact = frame * step_ms / 1000
    extra = bytes([2, 0]) + struct.pack("<If", frame, exact) + b"x.fseq\x00"
    pkt = parse(b"FPPD\x01" + len(extra).to_bytes(2, "little") + extra)
    assert pkt is not None and pkt["frame"] == frame
    assert position_s(pkt["frame"], pkt["seconds"]) == exact
    assert position_s(0, float("inf")) == 0.0 and position_s(3, float("nan")) == 0.0


def test_senders_outside_allow_are_ignored(tmp_path, caplog):
    from pi_app.fpp import FppRemote

    cfg = parse_config(default_config_path().read_text() + """
[presets.dusk]
seed = 5
[fpp]
remote = true
allow = ["192.168.7.0/24"]
[fpp.map]
"xmas.fseq" = "dusk"
""", "rig.toml")
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes), control=False,
                presets_dir=tmp_path / "presets", clock=FastClock)
    remote = FppRemote(show, cfg.fpp)
    extra = b"\x00\x00" + bytes(8) + b"xmas.fseq\x00"       # start, sequence, 0, 0.0
    pkt = b"FPPD\x01" + len(extra).to_bytes(2, "little") + extra
    with caplog.at_level(logging.WARNING, logger="latentdmx"):
        for _ in range(3):
            remote.handle(pkt, "127.0.0.1", 32320)
    assert show._commands.empty() and remote.packets == 0
    assert len([r for r in caplog.records if "not in [fpp] allow" in r.getMessage()]) == 1
    remote.handle(pkt, "192.168.7.20", 32320)
    assert not show._commands.empty() and remote.playing == "xmas.fseq"


def test_a_packet_read_late_is_aged_by_the_kernels_stamp():
    """A busy Pi's receive thread may read a sync long after it arrived: the kernel's receive
    stamp (SO_TIMESTAMPNS) says how long, so the master's position is taken as of now."""
    from pi_app.fpp import SO_TIMESTAMPNS, _age_s

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        rx.bind(("127.0.0.1", 0))
        deadline = time.monotonic() + 10
        while True:         # the kernel turns receive stamping on a moment after it is asked
            tx.sendto(b"FPPD", rx.getsockname())
            time.sleep(0.05)
            if _age_s(rx.recvmsg(2048, 64)[1]) >= 0.04 or time.monotonic() > deadline:
                break
        tx.sendto(b"FPPD", rx.getsockname())
        time.sleep(0.3)                                   # the thread is busy elsewhere
        _, anc, _, _ = rx.recvmsg(2048, 64)
    assert 0.29 <= _age_s(anc) < 1.0
    assert _age_s([]) == 0.0                              # no stamp: as read


@pytest.mark.slow
def test_a_start_read_late_plays_from_where_the_master_is_now(running):
    """A start the remote's thread got to 0.25 s after it arrived (a busy Pi): the walk is
    where the master is now, not 10 frames behind."""
    run, _master = running
    rate = 0.5 / SPW
    m0 = time.monotonic()
    run.show.handle_control("fpp/play", {"sequence": "xmas.fseq", "position_s": 1.0,
                                         "start": True, "received_at": m0 - 0.25},
                            origin="fpp 127.0.0.1")
    time.sleep(0.4)
    assert abs(run.phase_error(2.0, rate, m0, 1.25)) <= 1.0


@pytest.mark.parametrize("section, field, fix", [
    ("port = 0", "fpp.port", "32320"),
    ('host = "any"', "fpp.host", "0.0.0.0"),
    ('allow = ["0.0.0.0/0"]', "fpp.allow[1]", "the LAN"),
    ('allow = ["nope"]', "fpp.allow[1]", "192.168.1.10"),
    ("[fpp.map]\nx = 3", 'fpp.map."x"', "preset name"),
    ('[fpp.map]\nx = { model = "a", bpm = 3 }', 'fpp.map."x"', "model, seed"),
    ("remot = true", "fpp.remot", "did you mean 'remote'"),
])
def test_bad_fpp_config_is_one_line(tmp_path, section, field, fix):
    from pi_app.config import load_config

    path = tmp_path / "rig.toml"
    head = "[fpp]\nremote = true\n"
    if not section.startswith("[fpp.map]"):
        head += section + '\n[fpp.map]\n"a" = "dusk"\n'
    else:
        head += section + "\n"
    path.write_text(head + '[[fixtures]]\nname = "p"\nprofile = "generic-rgbw-par"\n'
                    'mode = "4ch"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {field}: ") and fix in msg and "\n" not in msg, msg


@pytest.mark.slow
def test_remote_without_a_map_is_one_line_from_check(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "rig.toml"
    path.write_text('[fpp]\nremote = true\n[[fixtures]]\nname = "p"\n'
                    'profile = "generic-rgbw-par"\nmode = "4ch"\n')
    done = subprocess.run([sys.executable, "-m", "pi_app.cli", "check", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "fpp.map" in lines[0] and "show.fseq" in lines[0], done.stderr


@pytest.mark.slow
def test_the_daemon_follows_a_master_and_logs_it_with_origin_fpp(tmp_path):
    """`latentdmx run` itself (its own process, its control socket in its own folder)."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from pi_app.control import ControlClient
    from pi_app.errors import ControlError

    port = free_udp_port()
    rig = tmp_path / "rig.toml"
    rig.write_text(default_config_path().read_text() + f"""
[presets.dusk]
seed = 5
[fpp]
remote = true
host = "127.0.0.1"
port = {port}
multicast = false
[fpp.map]
"xmas.fseq" = "dusk"
""")
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RUNTIME_DIRECTORY", "NOTIFY_SOCKET", "LATENTDMX_SOCKET")}
    env.update(XDG_RUNTIME_DIR=str(xdg), STATE_DIRECTORY=str(tmp_path / "state"),
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--config", str(rig),
                             "--duration", "60"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    client = ControlClient(xdg / "latentdmx" / "control.sock")
    master = Master(port)

    def status() -> dict:
        try:
            return client.request("status")
        except ControlError:
            return {}

    def until(pred, timeout_s: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            st = status()
            if pred(st):
                return st
            time.sleep(0.05)
        pytest.fail(f"not reached: {status()}")

    try:
        until(lambda st: st.get("frames", 0) > 10)
        assert master.discover()["mode"] == 0x08
        master.sync(0, "xmas.fseq", 1.0)
        assert until(lambda st: st.get("preset") == "dusk")["seed"] == 5
        master.sync(1, "xmas.fseq", 2.0)
        until(lambda st: st.get("state") == "blackout")
    finally:
        master.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "FPP remote: listening" in out
    assert "fpp/play" in out and "fpp/stop" in out and "fpp 127.0.0.1" in out, out


def test_reload_changes_the_map_live_and_the_socket_needs_a_restart(tmp_path, caplog):
    from pi_app.config import load_config

    path = tmp_path / "rig.toml"
    base = default_config_path().read_text() + "[presets.dusk]\nseed = 5\n"
    path.write_text(base + '[fpp]\nremote = true\n[fpp.map]\n"a.fseq" = "dusk"\n')
    cfg = load_config(path)
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes), control=False, config_path=path,
                presets_dir=tmp_path / "presets", clock=FastClock)
    path.write_text(base + '[fpp]\nremote = true\n[fpp.map]\n"b.fseq" = "dusk"\n')
    with caplog.at_level(logging.INFO, logger="latentdmx"):
        show._reload(1.0)
    assert show.config.fpp.lookup("b.fseq") and not show.config.fpp.lookup("a.fseq")
    path.write_text(base + '[fpp]\nremote = true\nport = 32321\n[fpp.map]\n"b.fseq" = "dusk"\n')
    with caplog.at_level(logging.INFO, logger="latentdmx"):
        show._reload(2.0)
    assert show.config.fpp.port == 32320
    assert any("reload rejected" in r.getMessage() and "fpp" in r.getMessage()
               for r in caplog.records)


def test_show_time_now_is_the_frame_clocks_on_a_group_clock_too():
    """What a sync is measured against: frame k's show time k / fps, on the plain clock and
    on a lockstep group's clock (show time = wall time - the epoch)."""
    from types import SimpleNamespace

    from pi_app.sync.clock import SyncClock
    from pi_app.vocabulary import _show_time_now

    wall = [1_000_000.0]
    mono = [50.0]
    clock = SyncClock(FPS, epoch_s=999_000.0, now=lambda: mono[0], wall=lambda: wall[0])
    show = SimpleNamespace(clock=clock)
    assert _show_time_now(show) == pytest.approx(1000.0)
    mono[0] += 2.5
    assert _show_time_now(show) == pytest.approx(1002.5)
    plain = FrameClock(FPS, now=lambda: mono[0])
    mono[0] += 1.0
    assert _show_time_now(SimpleNamespace(clock=plain)) == pytest.approx(1.0)
