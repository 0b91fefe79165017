"""``[sync]``: the lockstep group a daemon plays in (README "Lockstep: several Pis, one show").

::

    [sync]
    group = "foyer"                       # the group's name; empty = no group (the default)
    epoch = "2026-01-01T00:00:00Z"        # show time 0 of every member (UTC or with an offset)
    key = "a long random string"          # shared by the members; signs every message

Every member of a group has the same three (and the same show settings: fps, seed, model,
walk, schedule, playlists). The rest has defaults that suit a wired LAN.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass

from .errors import ConfigError

GROUP_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")     # \Z: no "foyer\n"
KEY_FIX = ('set key = "..." to the same long random string on every member, e.g. the output '
           "of `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`")


@dataclass(frozen=True)
class SyncConfig:
    group: str = ""                     # the group's name; empty: play alone
    epoch: str = "2026-01-01T00:00:00Z"  # show time 0 (ISO 8601 with a time zone)
    key: str = ""                       # shared secret: HMAC-SHA256 on every message
    key_file: str = ""                  # or a file holding it (pi_app/secrecy.py)
    address: str = "239.192.77.13"      # the group's multicast address (organisation-local)
    port: int = 5570                    # and UDP port
    interface: str = ""                 # e.g. "eth0" (or its address); empty: routing table
    ttl: int = 1                        # multicast hops: 1 = this LAN only
    lead_s: float = 0.3                 # a live change takes effect this far ahead
    announce_s: float = 1.0             # each member's state announcement period
    slew_limit_s: float = 0.25          # clock corrections up to this are slewed, larger jump
    max_age_s: float = 5.0              # messages older (by the sender's clock) are refused

    @property
    def enabled(self) -> bool:
        return bool(self.group)

    @property
    def epoch_s(self) -> float:
        """The epoch as Unix seconds."""
        return parse_epoch(self.epoch).timestamp()

    def validate(self, file: str) -> None:
        if not self.group:
            return
        if not GROUP_RE.match(self.group):
            raise ConfigError(f"group name {self.group!r} is not a plain name", file=file,
                              field="sync.group",
                              fix='use letters, digits, ".", "_" or "-" (up to 64), e.g. '
                                  'group = "foyer"')
        try:
            when = parse_epoch(self.epoch)
        except ValueError as exc:
            raise ConfigError(str(exc), file=file, field="sync.epoch",
                              fix='write an ISO 8601 time with a zone, e.g. epoch = '
                                  '"2026-01-01T00:00:00Z" (the same on every member)') from None
        if not 2000 <= when.year <= 2100:
            raise ConfigError(f"epoch {self.epoch!r} is not in this century", file=file,
                              field="sync.epoch", fix='e.g. epoch = "2026-01-01T00:00:00Z"')
        if not self.key:
            raise ConfigError("a group needs a key", file=file, field="sync.key", fix=KEY_FIX)
        from .secrecy import check_key

        check_key(self.key, file=file, field="sync.key_file" if self.key_file else "sync.key")
        try:
            addr = ipaddress.IPv4Address(self.address)
        except ValueError:
            addr = None
        if addr is None or not addr.is_multicast:
            raise ConfigError(f"{self.address!r} is not an IPv4 multicast address", file=file,
                              field="sync.address",
                              fix='use one in 239.192.0.0/14 (organisation-local), e.g. '
                                  '"239.192.77.13"')
        from .outputs.net import check_interface, check_port

        check_port(self.port, file=file, field="sync.port")
        check_interface(self.interface, file=file, field="sync.interface")
        for name, lo, hi, fix in (
                ("ttl", 1, 32, "use 1 (this LAN) up to 32"),
                ("lead_s", 0.05, 5.0, "use 0.05..5 seconds (0.3 suits a wired LAN)"),
                ("announce_s", 0.1, 10.0, "use 0.1..10 seconds"),
                ("slew_limit_s", 0.0, 10.0, "use 0..10 seconds (0: always jump)"),
                ("max_age_s", 1.0, 600.0, "use 1..600 seconds")):
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise ConfigError(f"{value:g} is outside {lo:g}..{hi:g}", file=file,
                                  field=f"sync.{name}", fix=fix)
        if self.max_age_s <= self.lead_s:
            raise ConfigError("max_age_s must be longer than lead_s", file=file,
                              field="sync.max_age_s", fix="leave it at 5")


def parse_epoch(text: str) -> dt.datetime:
    """An ISO 8601 time with a zone ("Z" or "+01:00") -> an aware datetime."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return when
