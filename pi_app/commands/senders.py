"""`latentdmx doctor`: who else sends to LatentDMX's OLA universes, and how olad merges them.

olad merges every source of a universe — its RPC clients (``ola_set_dmx``, a console,
another LatentDMX) and its input ports (Art-Net or sACN from a desk) — by the universe's
merge mode: LTP (latest takes precedence: each new frame from any source replaces the
universe, so two senders at 40 fps take turns and every fixture flickers) or HTP (highest
takes precedence, per channel). What olad 0.10 tells, and where:

- the merge mode and input ports: its RPC (``FetchUniverses``, `OlaQuery`);
- how many RPC clients are sending to each universe: only its web server's ``/debug`` page
  (``universe-source-clients: map:universe 1:2``); the web server may be off;
- which programs those are: nothing. Their TCP connections to olad's RPC port are visible in
  ``/proc/net/tcp`` (mapped to processes through ``/proc/PID/fd``, where we may look), which
  names every program connected (senders and receivers alike).
"""

from __future__ import annotations

import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

_HTTP_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Program:
    pid: int
    comm: str
    argv: tuple[str, ...]

    def label(self) -> str:
        from ..claims import command_line

        return f"{command_line(self.argv) or self.comm} (pid {self.pid})"


def source_clients(host: str, http_port: int) -> dict[int, int] | None:
    """{OLA universe: RPC clients sending to it}, from olad's /debug page; None if it has no
    web server there (or does not say)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{http_port}/debug",
                                    timeout=_HTTP_TIMEOUT_S) as r:
            text = r.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return None
    for line in text.splitlines():
        if line.startswith("universe-source-clients:"):
            return {int(u): int(n) for u, n in re.findall(r"(\d+):(\d+)", line.split("map:", 1)
                                                              [-1].replace("universe", ""))}
    return None


def _tcp_client_inodes(port: int) -> set[int]:
    """Socket inodes of established TCP connections *to* `port` on this host."""
    inodes: set[int] = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 10 or f[3] != "01":                      # 01: ESTABLISHED
                continue
            remote_port = int(f[2].rsplit(":", 1)[1], 16)
            if remote_port == port:
                inodes.add(int(f[9]))
    return inodes


def connected_programs(port: int) -> list[Program]:
    """Processes (that we may see) with a TCP connection to olad's RPC `port`, not us."""
    inodes = _tcp_client_inodes(port)
    found: dict[int, Program] = {}
    if not inodes:
        return []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            fds = os.listdir(d / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(d / "fd" / fd)
            except OSError:
                continue
            m = re.fullmatch(r"socket:\[(\d+)\]", link)
            if m and int(m.group(1)) in inodes:
                try:
                    comm = (d / "comm").read_text().strip()
                    raw = (d / "cmdline").read_bytes()
                except OSError:
                    break
                argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
                found[int(d.name)] = Program(int(d.name), comm, argv)
                break
    return sorted(found.values(), key=lambda p: p.pid)


def merge_mode_name(mode) -> str:
    return {1: "HTP", 2: "LTP"}.get(int(mode), str(mode))


MERGE_NOTE = {
    "LTP": "the latest frame from any sender replaces the whole universe, so two senders take "
           "turns many times a second and the lights flicker",
    "HTP": "each channel takes the highest value of all senders, so another sender can hold "
           "lights up (and pan/tilt at the larger value) while LatentDMX dims or stops",
}
