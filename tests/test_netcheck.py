"""`latentdmx doctor` for sACN, Art-Net and DDP, on a test LAN of network namespaces: each problem
found for real (no route, a missing interface, a host that does not answer, a port with
nothing listening, a node answering ArtPoll), each with its fix."""

from __future__ import annotations

import socket

import pytest
from netns import BROADCAST, LIGHTS_IP, Lan, lan_missing_reason
from olad_fixture import Olad, olad_missing_reason

from pi_app import allow, netcheck
from pi_app.config import parse_config

RIG = '[[fixtures]]\nname = "p"\nprofile = "generic-rgbw-par"\nmode = "4ch"\n'
NOBODY = "10.77.0.9"          # on the test LAN, no host has it


@pytest.fixture
def lan():
    if reason := lan_missing_reason():
        pytest.skip(reason)
    with Lan() as net:
        yield net


def doctor(lan, kind: str, section: str) -> list:
    cfg = parse_config(f'[output]\nkind = "{kind}"\n[output.{kind}]\n{section}\n{RIG}', "rig.toml")
    check = {"sacn": netcheck.check_sacn, "artnet": netcheck.check_artnet,
             "ddp": netcheck.check_ddp}[kind]
    return lan.pi.call(lambda: check(cfg))


def text(found) -> str:
    return "\n".join(f"{'ok' if f.ok else 'FAIL'} {f.what} | {f.fix}" for f in found)


def test_multicast_without_interface_or_route_says_set_the_interface(lan):
    found = doctor(lan, "sacn", "")
    bad = [f for f in found if not f.ok]
    assert bad and all("no route to 239.255." in f.what for f in bad), text(found)
    assert 'interface = "eth0"' in bad[0].fix
    found = doctor(lan, "sacn", 'interface = "vpi"')
    assert all(f.ok for f in found), text(found)
    assert "interface vpi is up (10.77.0.2)" in text(found)
    assert "go out vpi (interface setting)" in text(found)


def test_missing_and_down_interfaces(lan):
    found = doctor(lan, "sacn", 'interface = "eth9"')
    assert not found[0].ok and "eth9 does not exist" in found[0].what
    assert "vpi" in found[0].fix                       # the interfaces there are
    lan.pi.ip("link", "set", "vpi", "down")
    found = doctor(lan, "artnet", 'interface = "vpi"')
    assert not found[0].ok and "is down" in found[0].what, text(found)


@pytest.mark.slow
def test_unicast_host_that_does_not_answer_and_port_with_nobody_listening(lan):
    found = doctor(lan, "sacn", f'unicast = ["{NOBODY}"]')
    assert any(not f.ok and f"{NOBODY} does not answer" in f.what for f in found), text(found)
    # the lights' side is there (ARP answers) but nothing listens on 5568: ICMP says so
    found = doctor(lan, "sacn", f'unicast = ["{LIGHTS_IP}"]')
    bad = [f for f in found if not f.ok]
    assert len(bad) == 1 and "nothing listens on UDP 5568" in bad[0].what, text(found)
    assert "enable E1.31" in bad[0].fix


@pytest.mark.slow
def test_ddp_destinations_answer_or_not_and_a_listener_is_found(lan):
    found = doctor(lan, "ddp", f'destinations = ["{NOBODY}", "{LIGHTS_IP}:4049"]')
    bad = [f for f in found if not f.ok]
    assert len(bad) == 2, text(found)
    assert f"{NOBODY} does not answer" in bad[0].what
    assert "nothing listens on UDP 4049" in bad[1].what and "enable DDP" in bad[1].fix
    rx = lan.lights.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    try:
        lan.lights.call(lambda: rx.bind((LIGHTS_IP, 4048)))
        found = doctor(lan, "ddp", f'destinations = ["{LIGHTS_IP}"]')
        assert all(f.ok for f in found), text(found)
        assert f"{LIGHTS_IP} answers" in text(found)
    finally:
        rx.close()
    found = doctor(lan, "ddp", f'broadcast = "{BROADCAST}"')
    assert all(f.ok for f in found) and "cannot be asked" in text(found), text(found)


@pytest.mark.slow
@pytest.mark.olad
def test_artnet_nodes_answer_artpoll_by_name(lan):
    if reason := olad_missing_reason():
        pytest.skip(reason)
    node = Olad(plugins={"artnet": {"ip": LIGHTS_IP, "short_name": "stage-left"},
                         "e131": {"ip": LIGHTS_IP}}, netns=lan.lights)
    try:
        node.start()
        found = doctor(lan, "artnet", f'nodes = ["{LIGHTS_IP}"]')
        assert all(f.ok for f in found), text(found)
        assert f"{LIGHTS_IP} answers ArtPoll: 'stage-left'" in text(found)
        found = doctor(lan, "artnet", f'broadcast = "{BROADCAST}"\ninterface = "vpi"')
        assert f"Art-Net nodes found: 'stage-left' ({LIGHTS_IP})" in text(found), text(found)
        found = doctor(lan, "artnet", f'nodes = ["{NOBODY}"]')
        assert any(not f.ok and "does not answer ArtPoll" in f.what for f in found)
        # olad's E1.31 plugin listens on 5568 on that side: a unicast sACN node answers
        found = doctor(lan, "sacn", f'unicast = ["{LIGHTS_IP}"]')
        assert all(f.ok for f in found), text(found)
    finally:
        node.cleanup()


def test_port_holders_are_named(lan):
    """Another program on the Pi with UDP 6454 open (say olad's Art-Net plugin): named."""
    import subprocess
    import sys

    holder = lan.pi.popen([sys.executable, "-c", "import socket, time; s = socket.socket("
                           "socket.AF_INET, socket.SOCK_DGRAM); s.bind(('', 6454)); "
                           "print('bound', flush=True); time.sleep(30)"],
                          stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "bound"
        found = doctor(lan, "artnet", f'broadcast = "{BROADCAST}"')
        assert any(f.what.startswith("UDP port 6454 is taken by python") and
                   f"(pid {holder.pid})" in f.what for f in found), text(found)
    finally:
        holder.kill()
        holder.wait()


def test_service_drop_in_checked_when_the_service_is_installed(tmp_path, monkeypatch):
    cfg = parse_config(f'[output]\nkind = "sacn"\n[output.sacn]\nunicast = ["10.1.2.3"]\n{RIG}',
                       "rig.toml")
    monkeypatch.setattr(allow, "UNIT_PATH", tmp_path / "latentdmx.service")
    monkeypatch.setattr(allow, "DROPIN_PATH", tmp_path / "network.conf")
    assert netcheck.check_service(cfg) == []                # no service: nothing to say
    allow.UNIT_PATH.write_text("[Service]\n")
    f, = netcheck.check_service(cfg)
    assert not f.ok and "only talk to localhost" in f.what and "service-network" in f.fix
    allow.DROPIN_PATH.write_text(allow.dropin_text(cfg))
    f, = netcheck.check_service(cfg)
    assert f.ok
    other = parse_config(f'[output]\nkind = "sacn"\n{RIG}', "rig.toml")
    f, = netcheck.check_service(other)
    assert not f.ok and "does not match" in f.what
