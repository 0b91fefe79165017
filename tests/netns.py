"""A small test LAN of network namespaces, so network outputs are tested against real
receivers without a packet ever leaving the machine.

``Lan()`` makes two namespaces, ``pi`` (the sender, 10.77.0.2/24) and ``lights`` (the
receivers, 10.77.0.1/24), joined by a veth pair, each with its loopback up — nothing else: no
default route, no way out. Inside, multicast, broadcast and unicast behave as on a real LAN.
Names are unique per test process, so tests (and other helpers' tests) can run side by side.

* ``lan.pi.call(fn)`` / ``lan.lights.call(fn)`` run `fn` on a thread that has entered the
  namespace (``setns``): sockets it creates live there for good, whichever thread uses them
  later. So ``lan.pi.call(output.open)`` puts an output's socket on the Pi's side.
* ``ns.popen(args)`` / ``ns.run(args)`` run a program inside (``ip netns exec``).

Needs root and iproute2; `lan_missing_reason()` says why not otherwise.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
PI_IP, LIGHTS_IP, PREFIX = "10.77.0.2", "10.77.0.1", 24
BROADCAST = "10.77.0.255"
_count = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)


def lan_missing_reason() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "iproute2 (ip) is not installed"
    return None


class NetNs:
    def __init__(self, name: str) -> None:
        self.name = name
        self.path = f"/run/netns/{name}"

    def call(self, fn: Callable[[], T]) -> T:
        """fn() on a thread inside the namespace; its result (or its exception)."""
        box: dict[str, Any] = {}

        def run() -> None:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {self.name}: {os.strerror(err)}")
            finally:
                os.close(fd)
            try:
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box["error"] = exc

        t = threading.Thread(target=run, name=f"netns-{self.name}")
        t.start()
        t.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_DGRAM
               ) -> socket.socket:
        return self.call(lambda: socket.socket(family, kind))

    def connect(self, addr: tuple[str, int], timeout_s: float = 2.0) -> socket.socket:
        return self.call(lambda: socket.create_connection(addr, timeout=timeout_s))

    def exec_args(self, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def popen(self, args: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(self.exec_args(args), **kw)

    def run(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.exec_args(args), **kw)

    def ip(self, *args: str) -> None:
        subprocess.run(["ip", "-n", self.name, *args], check=True, capture_output=True)


class Lan:
    """Two namespaces on one veth link (see the module doc)."""

    def __init__(self) -> None:
        tag = f"ldmx{os.getpid()}x{next(_count)}"
        self.pi = NetNs(f"{tag}pi")
        self.lights = NetNs(f"{tag}li")
        self._made: list[NetNs] = []
        try:
            for ns in (self.pi, self.lights):
                subprocess.run(["ip", "netns", "add", ns.name], check=True,
                               capture_output=True)
                self._made.append(ns)
                ns.ip("link", "set", "lo", "up")
            subprocess.run(["ip", "link", "add", "vpi", "netns", self.pi.name, "type", "veth",
                            "peer", "name", "vlights", "netns", self.lights.name],
                           check=True, capture_output=True)
            self.pi.ip("addr", "add", f"{PI_IP}/{PREFIX}", "brd", "+", "dev", "vpi")
            self.lights.ip("addr", "add", f"{LIGHTS_IP}/{PREFIX}", "brd", "+", "dev", "vlights")
            self.pi.ip("link", "set", "vpi", "up")
            self.lights.ip("link", "set", "vlights", "up")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for ns in self._made:
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)
        self._made.clear()

    def __enter__(self) -> Lan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
