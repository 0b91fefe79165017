"""Which local accounts LatentDMX believes: one rule for the control socket, claims and OSC.

The operator's programs run as one user: the daemon's own (a hand-started daemon), or the
systemd service's user ``latentdmx``, with root above both. `trusted_uids` is that set: who
may own the daemon's socket folder, answer as the daemon, or describe a claim it holds. Who
may *command* the daemon is wider by one group (`admitted`): the daemon's group, which the
0660 control socket lets in (``sudo usermod -aG latentdmx $USER``).
"""

from __future__ import annotations

import grp
import os
import pwd

SERVICE_USER = "latentdmx"     # the systemd unit's User=


def trusted_uids() -> set[int]:
    """This user, root and the service user."""
    uids = {os.geteuid(), 0}
    try:
        uids.add(pwd.getpwnam(SERVICE_USER).pw_uid)
    except KeyError:
        pass
    return uids


def admitted(uid: int) -> bool:
    """The daemon's own user, root, or a member of its group (who the control socket admits)."""
    if uid in (0, os.geteuid()):
        return True
    gid = os.getegid()
    try:
        pw = pwd.getpwuid(uid)
        return pw.pw_gid == gid or pw.pw_name in grp.getgrgid(gid).gr_mem
    except KeyError:
        return False


def user_label(uid: int) -> str:
    """``uid 65534 (nobody)``."""
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def _hex_addr(ip: str) -> tuple[str, ...]:
    """How /proc/net/{tcp,udp}{,6} write `ip` (and, for IPv4, its IPv6-mapped form)."""
    import socket
    import struct

    if ":" in ip:
        raw = socket.inet_pton(socket.AF_INET6, ip)
        return ("".join(f"{w:08X}" for w in struct.unpack("=4I", raw)),)
    raw4 = socket.inet_aton(ip)
    mapped = socket.inet_pton(socket.AF_INET6, "::ffff:" + ip)
    return (f"{struct.unpack('=I', raw4)[0]:08X}",
            "".join(f"{w:08X}" for w in struct.unpack("=4I", mapped)))


def socket_owner(proto: str, local: tuple[str, int],
                 remote: tuple[str, int] | None = None) -> int | None:
    """The uid owning this machine's `proto` ("tcp" or "udp") socket bound to `local` (the
    exact address, or a wildcard one on that port) and, if given, connected to `remote`:
    the kernel's socket table. None if there is none (the address is not this machine's)."""
    try:
        mine = {f"{h}:{local[1]:04X}" for h in _hex_addr(local[0])}
        theirs = {f"{h}:{remote[1]:04X}" for h in _hex_addr(remote[0])} if remote else None
    except (OSError, ValueError):
        return None
    wild = {f"{'0' * 8}:{local[1]:04X}", f"{'0' * 32}:{local[1]:04X}"}
    exact, loose = None, None
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        try:
            with open(table, encoding="ascii") as fh:
                next(fh, None)
                for line in fh:
                    f = line.split()
                    if len(f) <= 7 or (theirs is not None and f[2] not in theirs):
                        continue
                    if f[1] in mine:
                        exact = int(f[7])
                    elif f[1] in wild and theirs is None:
                        loose = int(f[7])
        except (OSError, ValueError):
            continue
        if exact is not None:
            return exact
    return loose
