"""A LAN for a lockstep group, made of network namespaces, so the group's multicast never
leaves the machine (see tests/netns.py for the namespaces themselves).

``GroupLan(n)``: a switch namespace ``sw`` with a bridge (multicast snooping off, as a plain
switch) at 10.78.0.254/24 — the place for a common receiver — and n member namespaces, each
with an interface called ``eth0`` (10.78.0.<i + 1>/24) plugged into the bridge. Every member
can use the same config (``[sync] interface = "eth0"``). ``unplug(i)`` / ``plug(i)`` pull and
put back a member's cable.

``LoOnly()``: one namespace with nothing but its loopback, for a single daemon in a group
(its socket joins the group on 127.0.0.1).

Needs root and iproute2 (`lan_missing_reason`).
"""

from __future__ import annotations

import itertools
import os
import subprocess

from netns import NetNs, lan_missing_reason

__all__ = ["RECEIVER_IP", "GroupLan", "LoOnly", "lan_missing_reason", "member_ip"]

RECEIVER_IP = "10.78.0.254"
_count = itertools.count()


def member_ip(i: int) -> str:
    return f"10.78.0.{i + 1}"


def _run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True)


class GroupLan:
    def __init__(self, n: int) -> None:
        tag = f"lg{os.getpid()}x{next(_count)}"
        self.sw = NetNs(f"{tag}sw")
        self.members = [NetNs(f"{tag}m{i}") for i in range(n)]
        self._made: list[NetNs] = []
        try:
            for ns in (self.sw, *self.members):
                _run("ip", "netns", "add", ns.name)
                self._made.append(ns)
                ns.ip("link", "set", "lo", "up")
            self.sw.ip("link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
            self.sw.ip("addr", "add", f"{RECEIVER_IP}/24", "dev", "br0")
            self.sw.ip("link", "set", "br0", "up")
            for i, ns in enumerate(self.members):
                _run("ip", "link", "add", "eth0", "netns", ns.name, "type", "veth", "peer",
                     "name", f"p{i}", "netns", self.sw.name)
                ns.ip("addr", "add", f"{member_ip(i)}/24", "dev", "eth0")
                ns.ip("link", "set", "eth0", "up")
                self.sw.ip("link", "set", f"p{i}", "master", "br0")
                self.sw.ip("link", "set", f"p{i}", "up")
        except BaseException:
            self.close()
            raise

    def unplug(self, i: int) -> None:
        self.sw.ip("link", "set", f"p{i}", "down")

    def plug(self, i: int) -> None:
        self.sw.ip("link", "set", f"p{i}", "up")

    def close(self) -> None:
        for ns in self._made:
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)
        self._made.clear()

    def __enter__(self) -> GroupLan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LoOnly(NetNs):
    def __init__(self) -> None:
        super().__init__(f"lo{os.getpid()}x{next(_count)}")
        _run("ip", "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def __enter__(self) -> LoOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
