"""Node addresses given as host names: checked in one line, resolved off the frame loop,
followed when they move, one log line while one does not resolve. The resolver function is
injected at its seam (`lookup`) for the moves; one test goes through the system's own
getaddrinfo (``localhost``)."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
from udp_capture import UdpCapture

from pi_app.errors import ConfigError
from pi_app.outputs.artnet import ArtNetConfig, ArtNetOutput
from pi_app.outputs.ddp import DdpConfig, DdpOutput
from pi_app.outputs.resolve import Resolver, host, system_lookup
from pi_app.outputs.sacn import SacnConfig, SacnOutput

FRAME = {1: np.full(512, 7, np.uint8)}


@pytest.mark.parametrize("text, want", [
    ("wled-strip.local", "wled-strip.local"), ("WLED-Strip.Local.", "wled-strip.local"),
    ("node2", "node2"), ("192.168.1.50", "192.168.1.50"), (" 10.0.0.1 ", "10.0.0.1"),
    ("a" * 63 + ".lan", "a" * 63 + ".lan"), ("1x.example", "1x.example"),
])
def test_a_valid_host_name_or_address_is_taken(text, want):
    assert host(text, file="rig.toml", field="f") == want


@pytest.mark.parametrize("text", [
    "wled_strip.local", "-node.lan", "node-.lan", "a..b", "", ".", "10.0.0.300", "1.2.3",
    "a" * 64 + ".lan", "node lan", "nödé.lan", "http://wled.local", "wled.local:80",
    ".".join(["abcdefgh"] * 30), 5,
])
def test_a_malformed_one_is_one_line(text):
    with pytest.raises(ConfigError) as err:
        host(text, file="rig.toml", field="output.ddp.destinations[1]")
    msg = str(err.value)
    assert "\n" not in msg and "output.ddp.destinations[1]" in msg and "host name" in msg


class Names:
    """A resolver function the test controls: name -> address, or missing (fails)."""

    def __init__(self, table: dict[str, str] | None = None) -> None:
        self.table = dict(table or {})
        self.asked: list[str] = []

    def __call__(self, name: str) -> str:
        self.asked.append(name)
        if name not in self.table:
            raise OSError(-2, "Name or service not known")
        return self.table[name]


def test_a_name_that_moves_is_followed_and_a_failure_is_one_line(caplog):
    names = Names()
    r = Resolver(["strip.lan"], "ddp", lookup=names)
    with caplog.at_level(logging.INFO, "latentdmx.net"):
        for _ in range(100):                  # a day of refreshes without an answer
            r.resolve_all()
        assert r.address("strip.lan") is None and "strip.lan" in r.failing
        names.table["strip.lan"] = "10.0.0.5"
        r.resolve_all()
        assert r.address("strip.lan") == "10.0.0.5" and not r.failing
        names.table["strip.lan"] = "10.0.0.9"       # DHCP gave it another address
        r.resolve_all()
        assert r.address("strip.lan") == "10.0.0.9"
        del names.table["strip.lan"]                 # gone from the network: keep the last
        for _ in range(50):
            r.resolve_all()
        assert r.address("strip.lan") == "10.0.0.9"
    msgs = [rec.getMessage() for rec in caplog.records]
    assert sum("does not resolve" in m for m in msgs) == 2, msgs      # once per spell
    assert sum("is 10.0.0.5" in m for m in msgs) == 1
    assert sum("moved from 10.0.0.5 to 10.0.0.9" in m for m in msgs) == 1
    assert len(msgs) == 4


def test_the_thread_refreshes_and_a_send_error_asks_again_soon():
    names = Names({"strip.lan": "10.0.0.5"})
    r = Resolver(["strip.lan"], "ddp", lookup=names, refresh_s=3600, retry_min_s=0.05)
    r.start()
    try:
        deadline = time.monotonic() + 5
        while r.address("strip.lan") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert r.address("strip.lan") == "10.0.0.5"
        n = len(names.asked)
        names.table["strip.lan"] = "10.0.0.6"
        r.again()                                   # a send failed: ask now, not in an hour
        while r.address("strip.lan") != "10.0.0.6" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert r.address("strip.lan") == "10.0.0.6" and len(names.asked) == n + 1
        for _ in range(50):                         # a burst of errors: not a burst of asks
            r.again()
        time.sleep(0.3)
        assert len(names.asked) <= n + 1 + 0.35 / 0.05 + 1
    finally:
        r.close()
    assert not any(t.name.startswith("latentdmx-resolve") for t in threading.enumerate())


@pytest.mark.slow
def test_frames_wait_for_a_name_and_flow_when_it_resolves_then_follow_it():
    """The output sends nothing to a name without an address (counted, never blocking the
    caller), sends as soon as it resolves, and follows it to a new address."""
    a, b = UdpCapture(0, bind="127.0.0.1"), UdpCapture(0, bind="127.0.0.2")
    names = Names()
    out = DdpOutput([1], config=DdpConfig(destinations=(f"strip.lan:{a.port}",)))
    out.lookup = names
    try:
        out.open()
        t0 = time.perf_counter()
        for _ in range(40):
            out.send(FRAME)
        assert time.perf_counter() - t0 < 0.5                    # never waits on a lookup
        h = out.health()
        assert h["unresolved"] == 40 and h["unresolved_names"] == ["strip.lan"]
        assert not h["ok"]
        names.table["strip.lan"] = "127.0.0.1"
        out.sender.resolver.again()                              # (or the 5 s retry)
        deadline = time.monotonic() + 5
        while not a.packets and time.monotonic() < deadline:
            out.send(FRAME)
            time.sleep(0.02)
        assert a.packets and out.health()["ok"]
        assert out.health()["resolved"] == {"strip.lan": "127.0.0.1"}
        b_port = b.port
        out.dests = ((out.dests[0][0], b_port),)                 # (b listens on .2)
        names.table["strip.lan"] = "127.0.0.2"
        out.sender.resolver.again()
        while not b.packets and time.monotonic() < deadline:
            out.send(FRAME)
            time.sleep(0.02)
        assert b.packets, "the output did not follow the name to its new address"
    finally:
        out.close()
        a.close()
        b.close()


def test_localhost_goes_through_the_system_resolver():
    """No injected resolver: getaddrinfo (/etc/hosts) gives localhost's address, and DDP,
    Art-Net and sACN unicast reach a receiver there by name."""
    assert system_lookup("localhost") == "127.0.0.1"
    with pytest.raises(OSError):
        system_lookup("no-such-node.invalid")          # RFC 6761: never resolves
    for make in (lambda p: DdpOutput([1], config=DdpConfig(destinations=(f"localhost:{p}",))),
                 lambda p: ArtNetOutput([1], config=ArtNetConfig(nodes=("localhost",),
                                                                 port=p)),
                 lambda p: SacnOutput([1], config=SacnConfig(unicast=("localhost",), port=p,
                                                             discovery=False))):
        cap = UdpCapture(0, bind="127.0.0.1")
        out = make(cap.port)
        try:
            out.open()
            deadline = time.monotonic() + 5
            while not cap.packets and time.monotonic() < deadline:
                out.send(FRAME)
                time.sleep(0.02)
            assert cap.packets, out.name
            assert out.targets()[0].startswith(f"{out.name}:localhost:{cap.port}/")
        finally:
            out.close()
            cap.close()


@pytest.mark.slow
def test_doctor_says_what_a_name_resolves_to_or_that_it_does_not():
    from pi_app.netcheck import check_unicast

    cap = UdpCapture(0, bind="127.0.0.1")
    try:
        found = check_unicast(["localhost", "no-such-node.invalid"], cap.port, b"x", "DDP",
                              "enable it")
    finally:
        cap.close()
    said = [(f.ok, f.what) for f in found]
    assert (True, "localhost is 127.0.0.1") in said
    bad = [f for f in found if "no-such-node.invalid" in f.what]
    assert len(bad) == 1 and not bad[0].ok and "does not resolve" in bad[0].what
    assert "libnss-mdns" in bad[0].fix


@pytest.mark.parametrize("days", [1 / 24, 1, 30, 365])
def test_an_hour_to_a_year_of_refreshes_keeps_nothing_growing(days, caplog):
    """A node on a flaky network, asked every 30 s for an hour .. a year of show time (the
    refresh steps run directly: virtual time): the log has two lines per outage and the
    resolver keeps one entry per name, whatever the age."""
    steps = int(days * 86400 / 30)
    outage_every, outage_len = 997, 3                 # an outage of 3 asks every ~8 hours
    state = {"k": 0}

    def flaky(name: str) -> str:
        k = state["k"]
        if k % outage_every < outage_len:
            raise OSError(-3, "Temporary failure in name resolution")
        return f"10.0.0.{1 + (k // outage_every) % 2}"   # moves after each outage
    r = Resolver(["strip.lan"], "ddp", lookup=flaky)
    with caplog.at_level(logging.INFO, "latentdmx.net"):
        for k in range(steps):
            state["k"] = k
            r.resolve_all()
    outages = -(-steps // outage_every)
    msgs = [rec.getMessage() for rec in caplog.records]
    assert sum("does not resolve" in m for m in msgs) == outages
    assert len(msgs) <= 2 * outages + 1
    assert len(r.addresses) == 1 and len(r.failing) <= 1 and r.lookups == steps
    assert r.version <= outages + 1


def test_a_send_error_to_a_name_looks_it_up_again_before_the_refresh(caplog):
    """The name first gives an address the socket refuses (broadcast, without SO_BROADCAST:
    EACCES, as a stale lease might); the error asks the resolver again at once, so the frames
    reach the node's new address in about a second, not at the next 30 s refresh."""
    cap = UdpCapture(0, bind="127.0.0.1")
    names = Names({"strip.lan": "255.255.255.255"})
    out = SacnOutput([1], config=SacnConfig(unicast=("strip.lan",), port=cap.port,
                                            discovery=False, sync=False))
    out.lookup = names
    try:
        out.open()
        deadline = time.monotonic() + 5
        while out.health()["errors"] == 0 and time.monotonic() < deadline:
            out.send(FRAME)
            time.sleep(0.02)
        assert out.health()["errors"] > 0
        names.table["strip.lan"] = "127.0.0.1"
        t0 = time.monotonic()
        while not cap.packets and time.monotonic() < deadline + 5:
            out.send(FRAME)
            time.sleep(0.02)
        assert cap.packets and time.monotonic() - t0 < 5      # not the 30 s refresh
        assert out.sender.resolver.refresh_s == 30.0
    finally:
        out.close()
        cap.close()
