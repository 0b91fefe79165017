"""`--output sacn` against real receivers: a raw socket parsed by the ``sacn`` package (an
independent reading of E1.31) and olad's E1.31 input, on loopback or on a test LAN of
network namespaces (`tests/netns.py`) — never any other address."""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from netns import LIGHTS_IP, PI_IP, Lan, lan_missing_reason
from network_show import assert_bad_output_section_is_one_line, run_against_olad
from olad_fixture import Olad, free_port, olad_missing_reason
from udp_capture import UdpCapture

from pi_app.outputs import e131
from pi_app.outputs.sacn import SacnConfig, SacnOutput

sacn_messages = pytest.importorskip("sacn.messages.data_packet")
from sacn.messages.data_packet import DataPacket  # noqa: E402
from sacn.messages.sync_packet import SyncPacket  # noqa: E402
from sacn.messages.universe_discovery import UniverseDiscoveryPacket  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def lan():
    if reason := lan_missing_reason():
        pytest.skip(reason)
    with Lan() as net:
        yield net


def frames_for(universes, n, seed=0):
    rng = np.random.default_rng(seed)
    return [{u: rng.integers(0, 256, 512, dtype=np.uint8) for u in universes} for _ in range(n)]


def parse(packets):
    """(kind, parsed, destination) per datagram, with the sacn package's parsers."""
    out = []
    for _, _, dest, raw in packets:
        vector = int.from_bytes(raw[18:22], "big")
        if vector == e131.VECTOR_ROOT_E131_DATA:
            out.append(("data", DataPacket.make_data_packet(raw), dest))
        elif int.from_bytes(raw[40:44], "big") == e131.VECTOR_E131_EXTENDED_SYNCHRONIZATION:
            out.append(("sync", SyncPacket.make_sync_packet(raw), dest))
        else:
            out.append(("discovery", UniverseDiscoveryPacket.make_universe_discovery_packet(raw),
                        dest))
    return out


# -- the packets, read by an independent parser -----------------------------------------------
def test_multicast_packets_priority_cid_sequence_sync_and_termination(lan):
    """Every field a receiver relies on, on a real multicast LAN: one data packet per universe
    to its group, priority (per universe), CID, source name, preview off, sequence +1 per
    packet, the sync address on every data packet and one sync packet after each frame; on
    close the blackout, its sync, then three stream-terminated packets per universe."""
    cfg = SacnConfig(priority=120, universe_priority={"2": 150}, universe_map={"3": 7},
                     sync_universe=4000, source_name="test rig ✓", interface="vpi")
    cid = uuid.uuid4()
    out = SacnOutput([1, 2, 3], config=cfg, cid=cid)
    groups = [e131.multicast_group(u) for u in (1, 2, 7, 4000, e131.DISCOVERY_UNIVERSE)]
    cap = UdpCapture(5568, groups=groups, iface=LIGHTS_IP, ns=lan.lights)
    try:
        lan.pi.call(out.open)
        sent = frames_for([1, 2, 3], 5)
        for f in sent:
            out.send(f)
        out.close()
        cap.settle()
    finally:
        cap.close()
    got = parse(cap.packets)
    discovery = [(p, d) for k, p, d in got if k == "discovery"]
    assert len(discovery) == 1                       # one at start, then every 10 s
    disc, dest = discovery[0]
    assert dest == e131.multicast_group(e131.DISCOVERY_UNIVERSE) == "239.255.250.214"
    assert disc.universes == (1, 2, 7) and disc.sourceName == "test rig ✓"
    assert tuple(disc.cid) == tuple(cid.bytes)
    data = [(p, d) for k, p, d in got if k == "data"]
    syncs = [(p, d) for k, p, d in got if k == "sync"]
    assert all(src == PI_IP for _, src, _, _ in cap.packets)
    sacn_of = {1: 1, 2: 2, 3: 7}
    for p, dest in data:
        assert tuple(p.cid) == tuple(cid.bytes)
        assert p.sourceName == "test rig ✓" and not p.option_PreviewData
        assert dest == e131.multicast_group(p.universe)
        assert p.priority == (150 if p.universe == 2 else 120)
    # frames: 5 + blackout, each followed by exactly one sync packet
    kinds = "".join("D" if k == "data" else "S" for k, _, _ in got if k != "discovery")
    assert kinds == "DDDS" * 6 + "DDD" * 3
    assert len(syncs) == 6
    for i, (s, dest) in enumerate(syncs):
        assert s.syncAddr == 4000 and dest == e131.multicast_group(4000)
        assert s.sequence == (syncs[0][0].sequence + i) % 256
    for u in (1, 2, 3):
        mine = [p for p, _ in data if p.universe == sacn_of[u]]
        assert len(mine) == 6 + 3
        seqs = [p.sequence for p in mine]
        assert all((b - a) % 256 == 1 for a, b in itertools.pairwise(seqs))
        for p, f in zip(mine[:5], sent, strict=True):
            assert p.dmxData == tuple(f[u].tolist()) and p.syncAddr == 4000
            assert not p.option_StreamTerminated
        assert mine[5].dmxData == (0,) * 512           # the blackout (no patch: all zero)
        assert not mine[5].option_StreamTerminated and mine[5].syncAddr == 4000
        assert all(p.option_StreamTerminated and p.syncAddr == 0 for p in mine[6:])


def test_unicast_sends_data_and_sync_to_every_destination_on_loopback():
    """Unicast mode: data and sync packets go to each destination (here two receivers on
    127.0.0.1 and 127.0.0.2, one port), never to a multicast group."""
    port = free_port()
    caps = [UdpCapture(port, bind=ip) for ip in ("127.0.0.1", "127.0.0.2")]
    out = SacnOutput([5], config=SacnConfig(unicast=("127.0.0.1", "127.0.0.2"), port=port,
                                            discovery=False), cid=uuid.uuid4())
    try:
        with out:
            for f in frames_for([5], 3):
                out.send(f)
        for c in caps:
            c.settle()
    finally:
        for c in caps:
            c.close()
    for ip, c in zip(("127.0.0.1", "127.0.0.2"), caps, strict=True):
        got = parse(c.packets)
        assert {d for _, _, d in got} == {ip}
        assert "".join(k[0] for k, _, _ in got) == "ds" * 4 + "ddd"
    assert out.targets() == (f"sacn:127.0.0.1:{port}/u5", f"sacn:127.0.0.2:{port}/u5")


def test_cid_is_made_once_and_kept_across_restarts(tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    port = free_port()
    cids = []
    for _ in range(2):                              # two runs of the daemon
        out = SacnOutput([1], config=SacnConfig(unicast=("127.0.0.1",), port=port))
        with out:
            cids.append(out.cid)
    assert cids[0] == cids[1]
    assert (tmp_path / "state" / "sacn-cid").read_text().strip() == str(cids[0])
    fixed = "4b1bd0a0-0a3e-4a8e-9f11-2a0b5c9d0e01"
    out = SacnOutput([1], config=SacnConfig(unicast=("127.0.0.1",), port=port, cid=fixed))
    with out:
        assert str(out.cid) == fixed


def test_unwritable_state_folder_gives_a_stable_machine_cid(tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with caplog.at_level(logging.WARNING):
        a = e131.installation_cid("", blocked / "state")
        b = e131.installation_cid("", blocked / "state")
    assert a == b and "derived from this machine's id" in caplog.text


@pytest.mark.parametrize("section, field, fix", [
    ('unicast = ["192.168.1.500"]', "output.sacn.unicast[0]", "node's address"),
    ('unicast = ["239.255.0.1"]', "output.sacn.unicast[0]", "leave unicast empty"),
    ("priority = 201", "output.sacn.priority", "0..200"),
    ('universe_priority = { "2" = -1 }', "output.sacn.universe_priority.2", "0..200"),
    ('universe_map = { "1" = 64000 }', "output.sacn.universe_map", "1..63999"),
    ("sync_universe = 0", "output.sacn.sync_universe", "1..63999"),
    ('cid = "nope"', "output.sacn.cid", "UUID"),
    ('interface = "eth 0"', "output.sacn.interface", "eth0"),
    ("port = 70000", "output.sacn.port", "1..65535"),
    ("prority = 1", "output.sacn.prority", "did you mean 'priority'"),
])
def test_bad_sacn_config_is_one_line(tmp_path, section, field, fix):
    assert_bad_output_section_is_one_line(tmp_path, "sacn", section, field, fix)


def test_two_rig_universes_on_one_sacn_universe_is_refused():
    from pi_app.errors import OutputError

    with pytest.raises(OutputError, match="both go to sACN universe 3"):
        SacnOutput([1, 3], config=SacnConfig(universe_map={"1": 3}))


# -- network trouble ----------------------------------------------------------------------------
def test_interface_down_is_logged_once_and_the_show_goes_on(lan, caplog):
    cap = UdpCapture(5568, groups=["239.255.0.1"], iface=LIGHTS_IP, ns=lan.lights)
    out = SacnOutput([1], config=SacnConfig(interface="vpi", discovery=False, sync=False),
                     cid=uuid.uuid4())
    lan.pi.call(out.open)
    frame = {1: np.full(512, 9, np.uint8)}
    try:
        with caplog.at_level(logging.WARNING):
            out.send(frame)
            assert cap.wait_for(lambda p: len(p) >= 1)     # delivered before the link goes
            lan.pi.ip("link", "set", "vpi", "down")
            for _ in range(20):
                out.send(frame)                     # never raises
            h = out.health()
            assert h["errors"] == 20 and not h["ok"] and "239.255.0.1:5568" in h["last_error"]
            lan.pi.ip("link", "set", "vpi", "up")
            lan.pi.ip("addr", "replace", f"{PI_IP}/24", "dev", "vpi")
            n0 = len(cap.packets)
            deadline = time.monotonic() + 5
            while len(cap.packets) == n0 and time.monotonic() < deadline:
                out.send(frame)
                time.sleep(0.02)
        assert len(cap.packets) > n0, "frames did not resume after the link came back"
        assert out.health()["ok"]
        errors = [r for r in caplog.records if "cannot send" in r.getMessage()]
        assert len(errors) == 1                     # once, not once per frame
        assert any("works again" in r.getMessage() for r in caplog.records)
    finally:
        out.close()
        cap.close()


@pytest.mark.slow
def test_an_interface_without_an_address_yet_is_waited_for(lan, caplog):
    """A Pi booting: wlan0 exists but DHCP has not answered. The show starts anyway and the
    frames flow once the address comes; a misspelt interface is an error at once."""
    lan.pi.ip("addr", "flush", "dev", "vpi")
    cap = UdpCapture(5568, groups=["239.255.0.1"], iface=LIGHTS_IP, ns=lan.lights)
    out = SacnOutput([1], config=SacnConfig(interface="vpi", discovery=False, sync=False),
                     cid=uuid.uuid4())
    try:
        with caplog.at_level(logging.WARNING):
            lan.pi.call(out.open)
            out.send({1: np.full(512, 3, np.uint8)})
            assert not out.health()["ok"] and "no IPv4 address" in out.health()["last_error"]
            lan.pi.ip("addr", "add", f"{PI_IP}/24", "brd", "+", "dev", "vpi")
            deadline = time.monotonic() + 5
            while not cap.packets and time.monotonic() < deadline:
                lan.pi.call(lambda: out.send({1: np.full(512, 3, np.uint8)}))
                time.sleep(0.05)
        assert cap.packets and out.health()["ok"]
        assert "has an address now" in caplog.text
    finally:
        out.close()
        cap.close()
    from pi_app.errors import OutputError

    with pytest.raises(OutputError, match="eth7 does not exist"):
        lan.pi.call(SacnOutput([1], config=SacnConfig(interface="eth7")).open)


# -- olad's E1.31 input ---------------------------------------------------------------------------
@pytest.fixture
def e131_olad(lan):
    if reason := olad_missing_reason():
        pytest.skip(reason)
    d = Olad(plugins={"e131": {"ip": LIGHTS_IP}},
             patch={"11-1-I-0": 1, "11-1-I-1": 2}, netns=lan.lights)
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


@pytest.mark.olad
@pytest.mark.slow
def test_olad_receives_the_simulators_show(lan, e131_olad, tmp_path):
    """`latentdmx run --output sacn` on the Pi's side of the LAN, multicast, two universes;
    ola_recorder on olad's side records what olad's E1.31 input got: every frame the daemon
    sent, ending in the blackout, and the simulator's show for the same seed
    (`network_show.run_against_olad`)."""
    run_against_olad(lan, e131_olad, tmp_path, "sacn", '[output.sacn]\ninterface = "vpi"\n')


@pytest.mark.slow
@pytest.mark.olad
def test_a_higher_priority_source_wins_at_olad_and_latentdmx_resumes(lan, e131_olad):
    """A console at priority 150 (python-sacn's sender: another implementation) takes
    universe 1 over from LatentDMX at 100, with *lower* levels (so it is priority, not
    OLA's highest-takes-precedence merge); when it stops, LatentDMX's frames are back."""
    from sacn import sACNsender

    ours = np.full(512, 40, np.uint8)
    out = SacnOutput([1], config=SacnConfig(interface="vpi", unicast=(LIGHTS_IP,)),
                     cid=uuid.uuid4())
    lan.pi.call(out.open)
    stop = False

    def pump():                                       # LatentDMX's frame clock at 40 fps
        while not stop:
            out.send({1: ours})
            time.sleep(0.025)

    import threading
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    console = lan.pi.call(lambda: sACNsender(bind_address=PI_IP, bind_port=0,
                                             source_name="console", universeDiscovery=False))
    try:
        assert e131_olad.wait_dmx(lambda f: f[0] == 40)[0] == 40
        console.manual_flush = True
        console.activate_output(1)
        console[1].multicast = False
        console[1].destination = LIGHTS_IP
        console[1].priority = 150
        console[1].dmx_data = (7,) * 512
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            console.flush()
            time.sleep(0.025)
        assert e131_olad.get_dmx()[0] == 7, "the priority-150 source should own the universe"
        console.deactivate_output(1)                  # three stream-terminated packets
        back = e131_olad.wait_dmx(lambda f: f[0] == 40, timeout_s=5)
        assert back[0] == 40, "LatentDMX's frames did not come back"
    finally:
        stop = True
        t.join(2)
        console.stop()
        out.close()
