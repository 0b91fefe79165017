"""`--output artnet` against real receivers: a raw socket read with the Art-Net 4 layout
written out here (not the output's code), and olad's Art-Net input, on a test LAN of network
namespaces (`tests/netns.py`) or loopback — never any other address."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from netns import BROADCAST, LIGHTS_IP, PI_IP, Lan, lan_missing_reason
from network_show import assert_bad_output_section_is_one_line, run_against_olad
from olad_fixture import Olad, free_port, olad_missing_reason
from udp_capture import UdpCapture

from pi_app.errors import OutputError
from pi_app.outputs.artnet import ArtNetConfig, ArtNetOutput, port_address


@pytest.fixture
def lan():
    if reason := lan_missing_reason():
        pytest.skip(reason)
    with Lan() as net:
        yield net


def read_artnet(raw: bytes) -> dict:
    """Art-Net 4: 'Art-Net\\0', OpCode (little-endian), ProtVer (big-endian) 14, then per op."""
    assert raw[:8] == b"Art-Net\x00"
    op = struct.unpack("<H", raw[8:10])[0]
    assert struct.unpack(">H", raw[10:12])[0] == 14
    if op == 0x5000:                                  # OpDmx
        seq, phys, subuni, net, length = struct.unpack(">BBBBH", raw[12:18])
        return {"op": "dmx", "seq": seq, "physical": phys, "net": net, "sub": subuni >> 4,
                "uni": subuni & 0xF, "data": raw[18:18 + length], "length": length}
    if op == 0x5200:                                  # OpSync
        assert raw[12:14] == b"\x00\x00" and len(raw) == 14
        return {"op": "sync"}
    return {"op": hex(op)}


def test_artdmx_fields_sequence_port_address_and_artsync(lan):
    """Unicast ArtDmx to the node, one per universe per frame: sequence 1..255 then 1 again
    (0 would switch re-ordering off), physical 0, 15-bit Port-Address split into net /
    sub-net / universe, 512 slots; then one ArtSync per frame, broadcast."""
    cfg = ArtNetConfig(nodes=(LIGHTS_IP,), sync=True, broadcast=BROADCAST, interface="vpi",
                       universe_map={"1": "1:2:3", "2": 0x7FFF})
    out = ArtNetOutput([1, 2], config=cfg)
    cap = UdpCapture(6454, ns=lan.lights)
    rng = np.random.default_rng(1)
    sent = [{u: rng.integers(0, 256, 512, dtype=np.uint8) for u in (1, 2)} for _ in range(260)]
    try:
        lan.pi.call(out.open)
        for f in sent:
            out.send(f)
        out.close()                                    # + the blackout frame
        cap.settle()
    finally:
        cap.close()
    got = [(read_artnet(raw), src, dest) for _, src, dest, raw in cap.packets]
    assert all(src == PI_IP for _, src, _ in got)
    assert "".join("S" if p["op"] == "sync" else "D" for p, _, _ in got) == "DDS" * 261
    assert all(dest == BROADCAST for p, _, dest in got if p["op"] == "sync")
    for u, (net, sub, uni) in ((1, (1, 2, 3)), (2, (127, 15, 15))):
        mine = [p for p, _, dest in got if p["op"] == "dmx" and
                (p["net"], p["sub"], p["uni"]) == (net, sub, uni)]
        assert len(mine) == 261
        assert [p["seq"] for p in mine] == [k % 255 + 1 for k in range(261)]
        assert all(p["physical"] == 0 and p["length"] == 512 for p in mine)
        assert [p["data"] for p in mine[:260]] == [f[u].tobytes() for f in sent]
        assert mine[-1]["data"] == bytes(512)          # blackout (no patch: all zero)
    assert all(dest == LIGHTS_IP for p, _, dest in got if p["op"] == "dmx")
    assert out.targets() == (f"artnet:{LIGHTS_IP}:6454/u{0x123}", f"artnet:{LIGHTS_IP}:6454/u32767")


def test_no_nodes_means_broadcast_and_no_sync_when_off(lan):
    out = ArtNetOutput([4], config=ArtNetConfig(broadcast=BROADCAST, interface="vpi"))
    cap = UdpCapture(6454, ns=lan.lights)
    try:
        lan.pi.call(out.open)
        for k in range(3):
            out.send({4: np.full(512, k, np.uint8)})
        out.close()
        cap.settle()
    finally:
        cap.close()
    got = [(read_artnet(raw), dest) for _, _, dest, raw in cap.packets]
    assert [p["op"] for p, _ in got] == ["dmx"] * 4
    assert {dest for _, dest in got} == {BROADCAST}
    assert [p["uni"] for p, _ in got] == [4] * 4


def test_loopback_node_and_custom_port():
    """A node on 127.0.0.1 (e.g. a local visualiser) on its own port."""
    port = free_port()
    cap = UdpCapture(port, bind="127.0.0.1")
    try:
        with ArtNetOutput([1], config=ArtNetConfig(nodes=("127.0.0.1",), port=port)) as out:
            out.send({1: np.full(512, 5, np.uint8)})
        cap.settle()
    finally:
        cap.close()
    assert [read_artnet(raw)["data"][:2] for *_, raw in cap.packets] == [b"\x05\x05", b"\0\0"]


def test_port_address_forms():
    assert port_address(0) == 0 and port_address(32767) == 0x7FFF
    assert port_address("0:1:3") == 0x13 == port_address("0.1.3")
    assert port_address("127:15:15") == 0x7FFF
    for bad in (-1, 32768, "128:0:0", "0:16:0", "1:2", True, 1.5):
        with pytest.raises(ValueError):
            port_address(bad)


@pytest.mark.parametrize("section, field, fix", [
    ('nodes = ["wled_strip.local"]', "output.artnet.nodes[0]", "node's address"),
    ('nodes = ["239.1.1.1"]', "output.artnet.nodes[0]", "unicast or broadcast"),
    ('universe_map = { "1" = "0:16:0" }', "output.artnet.universe_map", "net:sub:uni"),
    ('universe_map = { "x" = 1 }', "output.artnet.universe_map", "Port-Address"),
    ('broadcast = "everyone"', "output.artnet.broadcast", "address"),
    ("port = 0", "output.artnet.port", "1..65535"),
])
def test_bad_artnet_config_is_one_line(tmp_path, section, field, fix):
    assert_bad_output_section_is_one_line(tmp_path, "artnet", section, field, fix)


def test_two_rig_universes_on_one_port_address_is_refused():
    with pytest.raises(OutputError, match="both go to Port-Address 1"):
        ArtNetOutput([1, 2], config=ArtNetConfig(universe_map={"2": "0:0:1"}))


# -- olad's Art-Net input -------------------------------------------------------------------
@pytest.fixture
def artnet_olad(lan):
    if reason := olad_missing_reason():
        pytest.skip(reason)
    # OLA's Art-Net input port patched to OLA universe N listens to Port-Address N (net 0,
    # sub-net 0): rig universes 1 and 2 -> Port-Addresses 1 and 2 -> OLA universes 1 and 2.
    d = Olad(plugins={"artnet": {"ip": LIGHTS_IP}}, patch={"2-1-I-0": 1, "2-1-I-1": 2},
             netns=lan.lights)
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


@pytest.mark.olad
@pytest.mark.slow
def test_olad_receives_the_simulators_show(lan, artnet_olad, tmp_path):
    """`latentdmx run --output artnet` (unicast to the node, ArtSync on) on the Pi's side;
    olad's Art-Net input gets every frame, and the simulator's show for the same seed."""
    run_against_olad(lan, artnet_olad, tmp_path, "artnet",
                     f'[output.artnet]\nnodes = ["{LIGHTS_IP}"]\nsync = true\n'
                     f'broadcast = "{BROADCAST}"\ninterface = "vpi"\n')


@pytest.mark.olad
def test_broadcast_reaches_olad(lan, artnet_olad):
    out = ArtNetOutput([1], config=ArtNetConfig(broadcast=BROADCAST, interface="vpi"))
    lan.pi.call(out.open)
    try:
        out.send({1: np.full(512, 77, np.uint8)})
        assert artnet_olad.wait_dmx(lambda f: f[0] == 77)[0] == 77
    finally:
        out.close()
    assert artnet_olad.wait_dmx(lambda f: f[0] == 0)[0] == 0      # the blackout
