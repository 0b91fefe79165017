"""`latentdmx doctor`'s checks for a lockstep group and for the clock.

* the clock is synchronised (adjtimex, chrony, timedatectl: `pi_app.sync.timestate`), and its
  estimated error is well under a frame — a FAIL when the config needs the real time (a
  ``[sync]`` group, or a ``[[schedule]]``), a note otherwise;
* the group's multicast address can be joined on the configured interface (the socket the
  daemon opens, opened and closed again);
* a running daemon's view (members heard, refused messages) is in `latentdmx status`.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from ..errors import LatentDMXError
from ..outputs.doctor import Finding
from .timestate import read_clock_state

GOOD_ERROR_S = 0.005        # a clock within 5 ms keeps members well inside one frame (23 ms)
CHRONY_FIX = ("install chrony (`sudo apt install chrony`; it replaces systemd-timesyncd) and "
              "point every member at the same server, one on the LAN if you can (README "
              "'Lockstep: several Pis, one show')")


def check_clock(cfg: Any) -> list[Finding]:
    needs = bool(cfg.sync.group) or bool(cfg.schedule)
    why = "the group" if cfg.sync.group else "the schedule"
    st = read_clock_state()
    if st.synchronised is None:
        return [Finding(not needs, f"clock: cannot tell whether it is synchronised "
                                   f"({st.detail})", CHRONY_FIX)]
    if not st.synchronised:
        if not needs:
            return [Finding(True, f"clock: {st.text()} (nothing in this config needs the real "
                                  "time: no [sync] group, no [[schedule]])")]
        return [Finding(False, f"clock: {st.text()} — {why} plays by the wall clock",
                        CHRONY_FIX)]
    found = [Finding(True, f"clock: {st.text()}")]
    if cfg.sync.group and st.error_s is not None and st.error_s > GOOD_ERROR_S:
        found.append(Finding(False, f"clock: estimated error {st.error_s * 1000:.1f} ms, more "
                                    f"than {GOOD_ERROR_S * 1000:.0f} ms: members may play a "
                                    "frame apart", "serve time from the LAN (chrony on one "
                                                   "member or the router, `server ... iburst "
                                                   "minpoll 4 maxpoll 6` on the others)"))
    return found


def check_group(cfg: Any) -> list[Finding]:
    from ..outputs.net import interface_address

    s = cfg.sync
    where = f"{s.address}:{s.port} on {s.interface or 'the default route'}"
    try:
        source = interface_address(s.interface)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((s.address, s.port))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack(
                "4s4s", socket.inet_aton(s.address), socket.inet_aton(source or "0.0.0.0")))
        finally:
            sock.close()
    except LatentDMXError as exc:
        return [Finding(False, f"group {s.group}: {exc.what}", exc.fix or "")]
    except OSError as exc:
        return [Finding(False, f"group {s.group}: cannot join {where} ({exc.strerror or exc})",
                        "is the network up and does it have a route for multicast? set "
                        '[sync] interface = "eth0" (or "wlan0") to name it')]
    return [Finding(True, f"group {s.group}: can join {where} (members and refused messages: "
                          "`latentdmx status`)")]


def sync_findings(cfg: Any) -> list[Finding]:
    found = check_clock(cfg)
    if cfg.sync.group:
        found += check_group(cfg)
    return found
