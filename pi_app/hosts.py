"""Host names and addresses: the one test of "this machine only" (loopback).

Every place that decides whether a listener is reachable from elsewhere — the web page's token
rule, the OSC allow-list, the service's network allow-list — asks `is_loopback`, so a host
the config check reads as loopback is one the firewall treats as loopback too.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback address (127.0.0.0/8, ``::1``, ``[::1]``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False
