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
