"""The service's network allow-list: the unit allows localhost only, and the drop-in made
from the config (`latentdmx service-network`) allows exactly what the output talks to."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from pi_app import allow
from pi_app.cli import main
from pi_app.config import parse_config

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "latentdmx.service"
RIG = """
[[fixtures]]
name = "a"
profile = "generic-rgbw-par"
mode = "4ch"
[[fixtures]]
name = "b"
profile = "generic-rgbw-par"
mode = "4ch"
universe = 2
[[fixtures]]
name = "c"
profile = "generic-rgbw-par"
mode = "4ch"
universe = 3
"""


def cfg(head: str):
    return parse_config(head + RIG, "rig.toml")


def test_unit_allows_localhost_only():
    lines = [ln for ln in UNIT.read_text().splitlines() if ln.startswith("IPAddress")]
    assert lines == ["IPAddressDeny=any", "IPAddressAllow=localhost"]


@pytest.mark.parametrize("head, want", [
    ('[output]\nkind = "sacn"\n',                                 # 3 groups, sync, discovery
     ["239.255.0.1", "239.255.0.2/31", "239.255.249.255", "239.255.250.214"]),
    ('[output]\nkind = "sacn"\n[output.sacn]\nsync = false\ndiscovery = false\n'
     'universe_map = { "3" = 300 }\n', ["239.255.0.1", "239.255.0.2", "239.255.1.44"]),
    ('[output]\nkind = "sacn"\n[output.sacn]\nunicast = ["192.168.1.50", "192.168.1.51"]\n',
     ["192.168.1.50/31"]),
    ('[output]\nkind = "artnet"\n[output.artnet]\nnodes = ["10.0.0.7"]\n', ["10.0.0.7"]),
    ('[output]\nkind = "artnet"\n[output.artnet]\nnodes = ["10.0.0.7"]\nsync = true\n'
     'broadcast = "10.0.0.255"\n', ["10.0.0.7", "10.0.0.255"]),
    ('[output]\nkind = "artnet"\n', ["255.255.255.255"]),
    ('[output]\nkind = "ddp"\n[output.ddp]\ndestinations = ["10.0.0.7", "10.0.0.8:4049"]\n',
     ["10.0.0.7", "10.0.0.8"]),
    ('[output]\nkind = "ddp"\n[output.ddp]\nbroadcast = "10.0.0.255"\n', ["10.0.0.255"]),
    ('[output]\nkind = "sim"\n[fpp]\nremote = true\nallow = ["192.168.1.10"]\n'
     '[fpp.map]\na = "b"\n', ["239.70.80.80", "192.168.1.10"]),
    ('[output]\nkind = "sim"\n[fpp]\nremote = true\nmulticast = false\n[fpp.map]\na = "b"\n',
     list(allow.LAN)),
    ('[output]\nkind = "ola"\n', []),                            # olad on localhost
    ('[output]\nkind = "ola"\n[output.ola]\nhost = "192.168.1.9"\n', ["192.168.1.9"]),
    ('[output]\nkind = "sim"\n[preview]\nweb = true\nhost = "0.0.0.0"\n'
     'token = "x-token-0123456789"\n', list(allow.LAN)),
    ('[output]\nkind = "sim"\n[osc]\nenabled = true\nhost = "0.0.0.0"\n'
     'allow = ["192.168.1.20", "10.0.0.0/24"]\n', ["192.168.1.20", "10.0.0.0/24"]),
])
def test_allowed_is_exactly_what_the_output_talks_to(head, want):
    assert allow.allowed(cfg(head)) == want


@pytest.mark.parametrize("host", ["127.0.0.2", "[::1]", "::1", "localhost", "LOCALHOST",
                                  "127.255.255.254"])
def test_a_page_or_osc_on_any_loopback_address_opens_nothing(host):
    """`check` reads these hosts as loopback (no token asked for), so the firewall must too:
    one loopback test everywhere (pi_app.hosts), not a list of spellings."""
    from pi_app.config import validate
    from pi_app.hosts import is_loopback

    assert is_loopback(host)
    page = cfg(f'[output]\nkind = "sim"\n[preview]\nweb = true\nhost = "{host}"\n')
    validate(page)                                         # no token needed: loopback
    assert allow.allowed(page) == []
    osc = cfg(f'[output]\nkind = "sim"\n[osc]\nenabled = true\nhost = "{host}"\n')
    assert allow.allowed(osc) == []


def test_uart_talks_to_nobody():
    one = RIG.split("[[fixtures]]")[1]
    assert allow.allowed(parse_config('[output]\nkind = "uart"\n[[fixtures]]' + one,
                                      "rig.toml")) == []


def test_64_sacn_universes_collapse_to_a_few_prefixes():
    fixtures = "".join(f'[[fixtures]]\nname = "p{u}"\nprofile = "generic-dimmer"\nmode = "1ch"\n'
                       f"universe = {u}\n" for u in range(1, 65))
    entries = allow.allowed(parse_config('[output]\nkind = "sacn"\n' + fixtures, "rig.toml"))
    import ipaddress
    covered = {a for e in entries for a in ipaddress.ip_network(e)}
    want = {ipaddress.ip_address(f"239.255.0.{u}") for u in range(1, 65)} | {
        ipaddress.ip_address("239.255.249.255"), ipaddress.ip_address("239.255.250.214")}
    assert covered == want and len(entries) <= 9


def test_install_and_check(tmp_path):
    rig = tmp_path / "rig.toml"
    rig.write_text('[output]\nkind = "sacn"\n' + RIG)
    dropin = tmp_path / "latentdmx.service.d" / "network.conf"
    run = CliRunner().invoke
    r = run(main, ["service-network", "--config", str(rig), "--check", "--path", str(dropin)])
    assert r.exit_code == 1 and "not installed" in r.output
    r = run(main, ["service-network", "--config", str(rig), "--install", "--path", str(dropin)])
    assert r.exit_code == 0 and "daemon-reload" in r.output
    assert "IPAddressAllow=239.255.0.1 239.255.0.2/31 " in dropin.read_text()
    r = run(main, ["service-network", "--config", str(rig), "--check", "--path", str(dropin)])
    assert r.exit_code == 0 and "up to date" in r.output
    rig.write_text('[output]\nkind = "sacn"\n[output.sacn]\nunicast = ["10.1.1.1"]\n' + RIG)
    r = run(main, ["service-network", "--config", str(rig), "--check", "--path", str(dropin)])
    assert r.exit_code == 1 and "the config needs 10.1.1.1" in r.output
    r = run(main, ["service-network", "--config", str(rig)])      # print only
    assert r.output.splitlines()[-1] == "IPAddressAllow=10.1.1.1"


def test_systemd_reads_the_drop_in_and_the_exposure_stays_ok(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    unit_dir = tmp_path / "etc" / "systemd" / "system"
    (unit_dir / "latentdmx.service.d").mkdir(parents=True)
    shutil.copy(UNIT, unit_dir / "latentdmx.service")

    def score() -> tuple[str, str]:
        proc = subprocess.run(["systemd-analyze", "security", "--offline=true",
                               f"--root={tmp_path}", "latentdmx.service"],
                              capture_output=True, text=True, timeout=60, check=False)
        level = re.search(r"Overall exposure level for latentdmx\.service: ([\d.]+) (\w+)",
                          proc.stdout)
        ip = re.search(r"IP address allow list with ([\w-]+) ", proc.stdout)
        assert level and ip, proc.stdout + proc.stderr
        assert level.group(2) in ("SAFE", "OK") and float(level.group(1)) <= 3.0
        return ip.group(1), level.group(0)

    assert score()[0] == "only"                         # localhost only
    (unit_dir / "latentdmx.service.d" / "network.conf").write_text(
        allow.dropin_text(cfg('[output]\nkind = "sacn"\n')))
    assert score()[0] == "non-localhost"                # the drop-in is in effect
