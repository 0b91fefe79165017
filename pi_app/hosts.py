"""Host names and addresses: the one test of "this machine only" (loopback).

Every place that decides whether a listener is reachable from elsewhere — the web page's token
rule, the OSC allow-list, the service's network allow-list — asks `is_loopback`, so a host
the config check reads as loopback is one the firewall treats as loopback too.
"""

from __future__ import annotations

import ipaddress

from .errors import ConfigError


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback address (127.0.0.0/8, ``::1``, ``[::1]``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_allow_list(entries: tuple[str, ...] | list[str], file: str | None, field: str,
                     would: str, example: str) -> None:
    """An allow-list of sources (`[osc] allow`, `[fpp] allow`): each an address or network,
    none wider than a /8 (a /16 for IPv6): 0.0.0.0/0 and its kin would let most of the
    internet in. One line each, counted from 1: `field`[i]."""
    for j, a in enumerate(entries, 1):
        try:
            net = ipaddress.ip_network(a.strip(), strict=False)
        except ValueError:
            raise ConfigError(f"{a!r} is not an address or network", file=file,
                              field=f"{field}[{j}]",
                              fix=f'write e.g. "{example}" or "192.168.1.0/24"') from None
        if net.prefixlen < (8 if net.version == 4 else 16):      # 0.0.0.0/0, ::/0 and kin
            raise ConfigError(f"{a!r} lets most of the internet {would}", file=file,
                              field=f"{field}[{j}]", fix=f"list the {_who(field)} or the LAN, "
                                                         'e.g. "192.168.1.0/24"')


def _who(field: str) -> str:
    return {"osc.allow": "tablets", "fpp.allow": "masters"}.get(field, "senders")
