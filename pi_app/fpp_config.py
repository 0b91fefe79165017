"""``[fpp]``: follow a Falcon Player (FPP) MultiSync master as one of its remotes.

::

    [fpp]
    remote = true                        # answer FPP's discovery, follow its sync packets
    allow = ["192.168.1.10"]             # the masters; empty: any address on the LAN

    [fpp.map]                            # the master's sequence -> what LatentDMX plays
    "christmas.fseq" = "dusk"            # a preset (of the config or saved)
    intro = { model = "iae-glyphs", seed = 3 }   # or a playlist item table

A sequence is found by its name as the master sends it (``christmas.fseq``) or without the
extension (``christmas``). Only the dataclass and its checks live here; `pi_app.fpp` is the
remote itself.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field

from .errors import ConfigError
from .hosts import check_allow_list
from .install_config import check_playlist_item

PORT = 32320                              # FPP's control port (UDP)
MULTICAST = "239.70.80.80"                # 239.F.P.P
MAX_NAME = 255


@dataclass(frozen=True)
class FppConfig:
    remote: bool = False
    map: dict = field(default_factory=dict)   # sequence name -> preset name or item table
    allow: tuple[str, ...] = ()           # master addresses or networks; empty: the LAN
    host: str = "0.0.0.0"                 # where to listen
    port: int = PORT
    multicast: bool = True                # join 239.70.80.80 (FPP's MultiSync group)

    def validate(self, file: str) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range", file=file, field="fpp.port",
                              fix=f"leave it out: FPP uses {PORT}")
        try:
            ipaddress.IPv4Address(self.host)
        except ValueError:
            raise ConfigError(f"{self.host!r} is not an IPv4 address", file=file,
                              field="fpp.host",
                              fix='write "0.0.0.0" (every interface) or this Pi\'s address'
                              ) from None
        check_allow_list(self.allow, file, "fpp.allow", "start sequences", "192.168.1.10")
        for name, item in self.map.items():
            fld = f'fpp.map."{name}"'
            if not name.strip() or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
                raise ConfigError(f"{name!r} is not a sequence name", file=file, field=fld,
                                  fix='write the name as FPP shows it, e.g. "show.fseq"')
            check_playlist_item(item, file, fld)
        if self.remote and not self.map:
            raise ConfigError("nothing to follow", file=file, field="fpp.map",
                              fix='map the master\'s sequences, e.g. [fpp.map] "show.fseq" = '
                                  '"dusk"')

    def replace_map(self, mapping: dict | None = None) -> FppConfig:
        """This section with another map (a reload changes the map live, the rest needs a
        restart: the listening socket)."""
        return dataclasses.replace(self, map=dict(mapping or {}))

    def lookup(self, sequence: str) -> tuple[str, object] | None:
        """(the key, the item) a master's sequence name maps to, or None."""
        for key in (sequence, sequence.rsplit(".", 1)[0]):
            if key in self.map:
                return key, self.map[key]
        return None
