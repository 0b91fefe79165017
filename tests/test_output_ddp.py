"""`--output ddp` against a receiver written here from the DDP spec (3waylabs, "Distributed
Display Protocol"), not from the output's code: a WLED-style display buffer filled from the
data offset of each packet and shown when a packet carries PUSH. On loopback, or on a test
LAN of network namespaces (`tests/netns.py`) — never any other address."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from netns import BROADCAST, LIGHTS_IP, PI_IP, Lan, lan_missing_reason
from network_show import assert_bad_output_section_is_one_line
from olad_fixture import free_port
from udp_capture import UdpCapture

from pi_app.errors import OutputError
from pi_app.outputs.ddp import DdpConfig, DdpOutput

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def lan():
    if reason := lan_missing_reason():
        pytest.skip(reason)
    with Lan() as net:
        yield net


def read_ddp(raw: bytes) -> dict:
    """The DDP header as the spec writes it: byte 0 = VV x T S R Q P (version 1 = 01),
    byte 1 = xxxx nnnn (sequence, 0 = unused), byte 2 = data type, byte 3 = destination ID,
    bytes 4-7 data offset, bytes 8-9 data length (both MSB first), then 4 bytes of timecode
    only when T is set, then the data."""
    b0 = raw[0]
    timecode = bool(b0 & 0b0001_0000)
    start = 14 if timecode else 10
    length = raw[8] << 8 | raw[9]
    return {"version": b0 >> 6, "timecode": timecode, "storage": bool(b0 & 0b1000),
            "reply": bool(b0 & 0b100), "query": bool(b0 & 0b10), "push": bool(b0 & 1),
            "seq": raw[1] & 0x0F, "type": raw[2], "id": raw[3],
            "offset": int.from_bytes(raw[4:8], "big"), "length": length,
            "data": raw[start:start + length], "size": len(raw) - start}


class WledStyleReceiver:
    """A display buffer: data lands at its offset, a PUSH shows the buffer as one frame."""

    def __init__(self, size: int = 1 << 16) -> None:
        self.buffer = bytearray(size)
        self.shown: list[bytes] = []
        self.packets: list[dict] = []

    def feed(self, raw: bytes) -> None:
        p = read_ddp(raw)
        self.packets.append(p)
        assert p["size"] == p["length"]
        self.buffer[p["offset"]:p["offset"] + p["length"]] = p["data"]
        if p["push"]:
            self.shown.append(bytes(self.buffer))


def frames_for(universes, n, seed=0):
    rng = np.random.default_rng(seed)
    return [{u: rng.integers(0, 256, 512, dtype=np.uint8) for u in universes} for _ in range(n)]


def expected(frame, place, size=1 << 16) -> bytes:
    buf = bytearray(size)
    for u, f in frame.items():
        buf[place[u]:place[u] + 512] = f.tobytes()
    return bytes(buf)


def run_loopback(universes, cfg_kw, frames, *, receivers=1):
    caps = [UdpCapture(0, bind="127.0.0.1") for _ in range(receivers)]
    cfg = DdpConfig(destinations=tuple(f"127.0.0.1:{c.port}" for c in caps), **cfg_kw)
    out = DdpOutput(universes, config=cfg)
    try:
        out.open()
        for f in frames:
            out.send(f)
        out.close()
        for c in caps:
            c.settle()
    finally:
        for c in caps:
            c.close()
    return out, [[raw for _, _, _, raw in c.packets] for c in caps]


def test_every_frame_arrives_whole_at_its_offsets_with_push_and_sequence():
    """Universes 1..3 at bytes 0, 512, 1024: one range of 1,536 bytes, two packets (1,440 +
    96), PUSH only on the second; sequence 1..15 then 1 again, the same in both packets of a
    frame; version 1, no timecode, ID 1; the receiver shows exactly the frames sent, then
    the blackout."""
    sent = frames_for([1, 2, 3], 40)
    _, (raws,) = run_loopback([1, 2, 3], {}, sent)
    rx = WledStyleReceiver()
    for raw in raws:
        rx.feed(raw)
    assert len(raws) == 2 * 41
    assert [(p["offset"], p["length"], p["push"]) for p in rx.packets[:2]] == \
        [(0, 1440, False), (1440, 96, True)]
    assert all(p["version"] == 1 and not p["timecode"] and not p["storage"] and
               not p["query"] and not p["reply"] and p["id"] == 1 for p in rx.packets)
    seqs = [p["seq"] for p in rx.packets]
    assert seqs[::2] == seqs[1::2] == [k % 15 + 1 for k in range(41)]
    place = {1: 0, 2: 512, 3: 1024}
    assert rx.shown[:40] == [expected(f, place) for f in sent]
    assert rx.shown[40] == bytes(1 << 16)                   # the blackout on close


def test_gaps_make_separate_ranges_and_universe_map_moves_blocks():
    """Rig universes 1, 2 and 5; 5 mapped to block 4 (byte 1,536): one range 0..1,535 (all
    three adjacent now), a push per frame. Universe 7 unmapped: its own range at 3,072."""
    sent = frames_for([1, 2, 5, 7], 3, seed=2)
    out, (raws,) = run_loopback([1, 2, 5, 7], {"universe_map": {"5": 3}}, sent)
    assert out.packet_layout() == [(0, 1440), (1440, 96), (3072, 512)]
    rx = WledStyleReceiver()
    for raw in raws:
        rx.feed(raw)
    assert [p["push"] for p in rx.packets[:3]] == [False, False, True]
    place = {1: 0, 2: 512, 5: 1024, 7: 3072}
    assert rx.shown[:3] == [expected(f, place) for f in sent]
    assert [t.rsplit("/", 1)[1] for t in out.targets()] == ["u1", "u2", "u3", "u7"]


def test_64_universes_is_23_packets_of_at_most_1440_bytes_to_every_destination():
    sent = frames_for(range(1, 65), 5, seed=3)
    _, per_rx = run_loopback(list(range(1, 65)), {}, sent, receivers=2)
    place = {u: (u - 1) * 512 for u in range(1, 65)}
    for raws in per_rx:
        rx = WledStyleReceiver()
        for raw in raws:
            rx.feed(raw)
        assert len(raws) == 23 * 6
        assert max(p["length"] for p in rx.packets) == 1440
        assert sum(p["push"] for p in rx.packets) == 6
        assert rx.shown[:5] == [expected(f, place) for f in sent]


def test_targets_addresses_and_health_name_every_destination():
    cfg = DdpConfig(destinations=("10.0.0.7", "10.0.0.8:4049"), universe_map={"2": 9})
    out = DdpOutput([1, 2], config=cfg)
    assert out.targets() == ("ddp:10.0.0.7:4048/u1", "ddp:10.0.0.8:4049/u1",
                             "ddp:10.0.0.7:4048/u9", "ddp:10.0.0.8:4049/u9")
    assert out.addresses() == ("10.0.0.7", "10.0.0.8")
    assert DdpOutput([1], config=DdpConfig()).addresses() == ("255.255.255.255",)


def test_the_patch_blackout_holds_pan_and_tilt():
    """close() sends the patch's blackout (here: slot 1 held), as every output does."""
    def blackout(frames):
        out = {u: np.zeros(512, np.uint8) for u in frames}
        for u, f in frames.items():
            out[u][0] = f[0]
        return out

    cap = UdpCapture(0, bind="127.0.0.1")
    out = DdpOutput([1], config=DdpConfig(destinations=(f"127.0.0.1:{cap.port}",)),
                    blackout=blackout)
    try:
        out.open()
        out.send({1: np.full(512, 77, np.uint8)})
        out.close()
        cap.settle()
    finally:
        cap.close()
    last = read_ddp(cap.packets[-1][3])
    assert last["push"] and last["data"][0] == 77 and not any(last["data"][1:])


@pytest.mark.parametrize("section, field, fix", [
    ('destinations = ["wled_strip.local"]', "output.ddp.destinations[1]", "192.168.1.50"),
    ('destinations = ["10.0.0.7:x"]', "output.ddp.destinations[1]", "10.0.0.7:4048"),
    ('destinations = ["10.0.0.7:70000"]', "output.ddp.destinations[1]", "1..65535"),
    ('destinations = ["239.1.2.3"]', "output.ddp.destinations[1]", "unicast or broadcast"),
    ('destinations = [7]', "output.ddp.destinations[1]", "string"),
    ("port = 0", "output.ddp.port", "1..65535"),
    ('broadcast = "all"', "output.ddp.broadcast", "192.168.1.50"),
    ('universe_map = { "1" = 0 }', "output.ddp.universe_map", "block number"),
    ('universe_map = { "x" = 1 }', "output.ddp.universe_map", "block number"),
    ('interface = "eth 0"', "output.ddp.interface", "eth0"),
    ("destination = []", "output.ddp.destination", "did you mean 'destinations'"),
])
def test_bad_ddp_config_is_one_line(tmp_path, section, field, fix):
    assert_bad_output_section_is_one_line(tmp_path, "ddp", section, field, fix)


def test_two_rig_universes_on_one_block_and_universe_0_are_refused():
    with pytest.raises(OutputError, match="both go to DDP block 3"):
        DdpOutput([1, 3], config=DdpConfig(universe_map={"1": 3}))
    with pytest.raises(OutputError, match="universe_map"):
        DdpOutput([0, 1], config=DdpConfig())
    assert DdpOutput([0, 1], config=DdpConfig(universe_map={"0": 5})).block == {0: 5, 1: 1}


# -- on the test LAN -------------------------------------------------------------------------
def test_broadcast_when_no_destination_is_given(lan):
    out = DdpOutput([1], config=DdpConfig(broadcast=BROADCAST, interface="vpi"))
    cap = UdpCapture(4048, ns=lan.lights)
    try:
        lan.pi.call(out.open)
        deadline = time.monotonic() + 5              # (a fresh veth link: until it carries)
        while not cap.packets and time.monotonic() < deadline:
            out.send({1: np.full(512, 5, np.uint8)})
            time.sleep(0.02)
        out.close()
        cap.settle()
    finally:
        cap.close()
    assert len(cap.packets) >= 2
    assert {(src, dest) for _, src, dest, _ in cap.packets} == {(PI_IP, BROADCAST)}
    assert read_ddp(cap.packets[0][3])["data"] == bytes([5]) * 512
    assert read_ddp(cap.packets[-1][3])["data"] == bytes(512)      # the blackout


def test_a_failing_destination_is_one_log_line_and_frames_flow_again(lan, caplog):
    cap = UdpCapture(4048, ns=lan.lights)
    out = DdpOutput([1], config=DdpConfig(destinations=(LIGHTS_IP,), interface="vpi"))
    lan.pi.call(out.open)
    frame = {1: np.full(512, 9, np.uint8)}
    try:
        with caplog.at_level(logging.WARNING):
            out.send(frame)
            lan.pi.ip("link", "set", "vpi", "down")
            for _ in range(20):
                out.send(frame)                     # never raises
            h = out.health()
            assert h["errors"] == 20 and not h["ok"] and f"{LIGHTS_IP}:4048" in h["last_error"]
            lan.pi.ip("link", "set", "vpi", "up")
            lan.pi.ip("addr", "replace", f"{PI_IP}/24", "dev", "vpi")
            assert cap.wait_for(lambda p: len(p) >= 1)
            n0 = len(cap.packets)
            deadline = time.monotonic() + 5
            while len(cap.packets) == n0 and time.monotonic() < deadline:
                out.send(frame)
                time.sleep(0.02)
        assert len(cap.packets) > n0, "frames did not resume after the link came back"
        assert out.health()["ok"]
        errors = [r for r in caplog.records if "cannot send" in r.getMessage()]
        assert len(errors) == 1
        assert any("works again" in r.getMessage() for r in caplog.records)
    finally:
        out.close()
        cap.close()


@pytest.mark.slow
def test_a_show_over_ddp_reaches_the_receiver(tmp_path):
    """The daemon itself (`latentdmx run --output ddp`), two seconds, to a loopback
    receiver: frames shown, the last one dark."""
    port = free_port()
    cap = UdpCapture(port, bind="127.0.0.1")
    cfg = tmp_path / "rig.toml"
    cfg.write_text(f'[output]\nkind = "ddp"\n[output.ddp]\ndestinations = ["127.0.0.1:{port}"]\n'
                   '[control]\nenabled = false\n'
                   '[[fixtures]]\nname = "p"\nprofile = "generic-rgbw-par"\nmode = "4ch"\n')
    env = {**os.environ, "STATE_DIRECTORY": str(tmp_path / "state"),
           "RUNTIME_DIRECTORY": str(tmp_path / "run"), "LATENTDMX_FAKE_CLOCK": "1",
           "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run([sys.executable, "-m", "pi_app.cli", "run", "--config", str(cfg),
                               "--duration", "2"], env=env, capture_output=True, text=True,
                              timeout=120)
        cap.settle()
    finally:
        cap.close()
    assert done.returncode == 0, done.stderr
    rx = WledStyleReceiver(512)
    for _, _, _, raw in cap.packets:
        rx.feed(raw)
    assert len(rx.shown) >= 40
    assert any(any(s[:4]) for s in rx.shown)
    assert not any(rx.shown[-1][:4])


@pytest.mark.parametrize("section", [
    '[output]\nkind = "ddp"\n',                                     # universe 0: no place
    '[output]\nkind = "sacn"\n[output.sacn]\nuniverse_map = { "0" = 1 }\n',   # 0 and 1 on 1
])
@pytest.mark.slow
def test_an_output_map_mistake_is_one_line_from_check_and_run(tmp_path, section):
    rig = tmp_path / "rig.toml"
    rig.write_text(section + '[[fixtures]]\nname = "a"\nprofile = "generic-rgbw-par"\n'
                   'mode = "4ch"\nuniverse = 0\n[[fixtures]]\nname = "b"\n'
                   'profile = "generic-rgbw-par"\nmode = "4ch"\nuniverse = 1\n')
    env = {**os.environ, "STATE_DIRECTORY": str(tmp_path / "state"),
           "RUNTIME_DIRECTORY": str(tmp_path / "run"), "PYTHONPATH": str(ROOT)}
    for args in (["check", str(rig)], ["run", "--config", str(rig), "--duration", "1"]):
        done = subprocess.run([sys.executable, "-m", "pi_app.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1, done.stderr
        assert f"{rig}: output." in lines[0] and "universe_map" in lines[0]


@pytest.mark.slow
def test_darken_sends_the_blackout_over_ddp(tmp_path):
    """`latentdmx darken` (what the service runs after the daemon): dark frames to the
    controller, pushed, for about a second; nothing lit in any of them."""
    cap = UdpCapture(0, bind="127.0.0.1")
    rig = tmp_path / "rig.toml"
    rig.write_text(f'[output]\nkind = "ddp"\n[output.ddp]\ndestinations = '
                   f'["127.0.0.1:{cap.port}"]\n[[fixtures]]\nname = "p"\n'
                   'profile = "generic-rgbw-par"\nmode = "4ch"\n')
    env = {**os.environ, "STATE_DIRECTORY": str(tmp_path / "state"),
           "RUNTIME_DIRECTORY": str(tmp_path / "run"), "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run([sys.executable, "-m", "pi_app.cli", "darken", "--config",
                               str(rig)], env=env, capture_output=True, text=True, timeout=60)
        cap.settle()
    finally:
        cap.close()
    assert done.returncode == 0, done.stderr
    assert "blackout sent to ddp:127.0.0.1:" in done.stdout + done.stderr
    rx = WledStyleReceiver(512)
    for _, _, _, raw in cap.packets:
        rx.feed(raw)
    assert len(rx.shown) >= 10 and not any(any(s[:4]) for s in rx.shown)
