"""What a config must mean, beyond its types and ranges: the checks `check`, `run` and a reload
share (`config.validate` calls `check_rules` last), and the warnings they all print.

A config that `check` passes must play: everything `run` would refuse later (a universe map
that sends two rig universes to one protocol universe, a sound file that is not there or not
sound, a web host the page cannot serve on) is refused here, in one line naming the file, the
field and the fix. So is what would play but not as written (a schedule entry that can never
open, a 24-hour window from two spellings of one time, a sun offset of days, a sync group on
sACN's or mDNS's multicast addresses, an sACN nil CID, a unicast destination of 0.0.0.0, a
playlist item with a tempo that is not a number). What a user may well mean (a one-off date
range that is over, a group epoch still to come, a preset the config does not define but a
saved one may) is a warning: `config_warnings`, one line each, printed by `check` and logged by
`run` and a reload.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .install_config import expand_days, parse_date, parse_time, ref_minutes
from .outputs.resolve import is_name
from .outputs.several import blamed, check_entries, sub_configs

MAX_SUN_OFFSET_S = 12 * 3600.0      # "sunset+13h" is the next morning: write that time instead
DAY_MINUTES = 24 * 60
# multicast blocks a sync group must not use: the link-local control block (mDNS 224.0.0.251,
# all-hosts, IGMP, ...), the internetwork control block (NTP, ...), and sACN's data and
# discovery groups (239.255.0.0/16, which also holds SSDP's 239.255.255.250)
RESERVED_MULTICAST = (
    (ipaddress.IPv4Network("224.0.0.0/24"), "the local network control block (mDNS, IGMP)"),
    (ipaddress.IPv4Network("224.0.1.0/24"), "the internetwork control block (NTP, ...)"),
    (ipaddress.IPv4Network("239.255.0.0/16"), "sACN's universe range (and SSDP's)"),
)
PLAYLIST_ITEM_KEYS = ("model", "seed", "tempo", "palette")


def check_rules(cfg: Any) -> None:
    """Refuse what is certainly wrong (one `ConfigError`); see the module doc."""
    _schedule(cfg)
    _presets(cfg)
    _playlists(cfg)
    _sync(cfg)
    _outputs(cfg)
    _preview(cfg)
    _audio(cfg)


# -- schedule ---------------------------------------------------------------------------------
def _schedule(cfg: Any) -> None:
    f = cfg.path
    for i, e in enumerate(cfg.schedule, 1):
        fld = f"schedule[{i}]"
        on, off = parse_time(e.on), parse_time(e.off)
        assert on is not None and off is not None           # validate_install checked them
        for key, spec in (("on", on), ("off", off)):
            if abs(spec.offset_s) > MAX_SUN_OFFSET_S:
                raise ConfigError(f"{spec.text!r} is {abs(spec.offset_s) / 3600:g} h from "
                                  f"{spec.event}", file=f, field=f"{fld}.{key}",
                                  fix=f"keep an offset within 12 h of {spec.event} (e.g. "
                                      f'"{spec.event}+20m"), or write a clock time "HH:MM"')
        a, b = ref_minutes(on), ref_minutes(off)
        span = b - a if b > a else b + DAY_MINUTES - a
        if span >= DAY_MINUTES:
            raise ConfigError(f"the window from {e.on!r} to {e.off!r} lasts "
                              f"{span / 60:.0f} h or more", file=f, field=f"{fld}.off",
                              fix="a window is shorter than a day: check the times (no "
                                  "[[schedule]] at all plays around the clock)")
        if len(e.dates) == 2:
            _dates(cfg, e, fld)


def _dates(cfg: Any, e: Any, fld: str) -> None:
    f = cfg.path
    a, b = parse_date(e.dates[0]), parse_date(e.dates[1])
    assert a is not None and b is not None
    if (a[0] is None) != (b[0] is None):
        raise ConfigError(f"date range {list(e.dates)!r} has a year on one end only", file=f,
                          field=f"{fld}.dates",
                          fix='give both ends a year ("2026-12-20", "2027-01-06": once) or '
                              'neither ("12-20", "01-06": every year)')
    if a[0] is None or b[0] is None:
        return                                  # every year (a reversed range: over New Year)
    first, last = dt.date(a[0], a[1], a[2]), dt.date(b[0], b[1], b[2])
    if last < first:
        raise ConfigError(f"the date range {e.dates[0]} .. {e.dates[1]} ends before it starts",
                          file=f, field=f"{fld}.dates",
                          fix="write the earlier date first (both ends count)")
    days = expand_days(e.days)
    n = min((last - first).days + 1, 7)
    if not any((first + dt.timedelta(days=k)).weekday() in days for k in range(n)):
        raise ConfigError(f"none of the days {list(e.dates)!r} is one of {list(e.days)!r}, so "
                          "the entry never plays", file=f, field=f"{fld}.days",
                          fix="widen the dates or change the days")


# -- presets and playlists -------------------------------------------------------------------
def _presets(cfg: Any) -> None:
    f = cfg.path
    for name, p in cfg.presets.items():
        fld = f"presets.{name}"
        if not 0 <= p.phase:                     # finite: the parser refuses nan and inf
            raise ConfigError(f"phase {p.phase:g} is below 0", file=f, field=f"{fld}.phase",
                              fix="use a walk phase from 0 (in waypoints), e.g. phase = 12.5")
        if p.seed >= 2**63:
            raise ConfigError(f"seed {p.seed} is out of range", file=f, field=f"{fld}.seed",
                              fix="use a whole number from 0, e.g. seed = 7")
        if p.model:
            _model_exists(p.model, f, f"{fld}.model")


def _playlists(cfg: Any) -> None:
    f = cfg.path
    for name, pl in cfg.playlists.items():
        for j, item in enumerate(pl.items):
            fld = f"playlists.{name}.items[{j}]"
            if not isinstance(item, dict):
                continue                        # a preset name: validate_install checked it
            tempo = item.get("tempo")
            if tempo is not None and (isinstance(tempo, bool) or not isinstance(tempo, int | float)
                                      or not 0.01 <= tempo <= 100):   # nan fails this too
                raise ConfigError(f"tempo {tempo!r} is not a number in 0.01..100", file=f,
                                  field=f"{fld}.tempo", fix="use 0.01..100, e.g. tempo = 1.5")
            seed = item.get("seed", 0)
            if isinstance(seed, int) and seed >= 2**63:
                raise ConfigError(f"seed {seed} is out of range", file=f, field=f"{fld}.seed",
                                  fix="use a whole number from 0, e.g. seed = 3")
            palette = item.get("palette")
            if palette is not None and (not isinstance(palette, str) or
                                        (palette and palette not in cfg.palettes)):
                known = ", ".join(sorted(cfg.palettes)) or "none: define [palettes.NAME]"
                raise ConfigError(f"no palette {palette!r}", file=f, field=f"{fld}.palette",
                                  fix=f'use "" (none) or a palette of the config ({known})')
            model = item.get("model")
            if model is not None and not model:
                raise ConfigError("the model is empty", file=f, field=f"{fld}.model",
                                  fix='name a model (`latentdmx models`), or leave model out '
                                      "for the config's")
            if model:
                _model_exists(model, f, f"{fld}.model")


def _model_exists(name: str, file: str, fld: str) -> None:
    from .errors import ModelError
    from .runtime import find_model

    try:
        find_model(name)
    except (ModelError, OSError, ValueError) as exc:
        raise ConfigError(f"no such model {name!r}", file=file, field=fld,
                          fix=getattr(exc, "fix", None) or "`latentdmx models` lists them"
                          ) from None


# -- lockstep --------------------------------------------------------------------------------
def _sync(cfg: Any) -> None:
    s = cfg.sync
    if not s.group:
        return
    addr = ipaddress.IPv4Address(s.address)     # SyncConfig.validate: a multicast address
    for net, what in RESERVED_MULTICAST:
        if addr in net:
            raise ConfigError(f"{s.address} is in {net}, {what}", file=cfg.path,
                              field="sync.address",
                              fix='use one in 239.192.0.0/14 (organisation-local), e.g. '
                                  '"239.192.77.13"')


# -- outputs ---------------------------------------------------------------------------------
def _outputs(cfg: Any) -> None:
    if cfg.outputs:                     # [[outputs]]: the universes' split, then each part
        check_entries(cfg)              # as if it were the one [output]
        for i, sub in enumerate(sub_configs(cfg)):
            with blamed(cfg, i):
                _outputs(sub)
        return
    f = cfg.path
    universes = sorted({fx.universe for fx in cfg.fixtures})
    o = cfg.output
    sacn = getattr(o, "sacn", None)
    if sacn is not None:
        for i, host in enumerate(sacn.unicast):
            _unicast(host, f, f"output.sacn.unicast[{i}]")
        if sacn.cid and uuid.UUID(sacn.cid).int == 0:
            raise ConfigError("the nil UUID is not a source CID", file=f, field="output.sacn.cid",
                              fix="leave it empty (one is made and kept), or write a random "
                                  "UUID: `python3 -c 'import uuid; print(uuid.uuid4())'`")
        _one_each(universes, sacn.universe_map, _sacn_universe, "sACN universe (1..63999)", f,
                  "output.sacn", o.kind == "sacn")
    art = getattr(o, "artnet", None)
    if art is not None:
        for i, host in enumerate(art.nodes):
            _unicast(host, f, f"output.artnet.nodes[{i}]")
        if ipaddress.IPv4Address(art.broadcast.strip()).is_unspecified:
            raise ConfigError("0.0.0.0 is not a broadcast address", file=f,
                              field="output.artnet.broadcast",
                              fix='use the LAN\'s broadcast address, e.g. "192.168.1.255", or '
                                  '"255.255.255.255"')
        from .outputs.artnet import port_address

        _one_each(universes, art.universe_map, port_address, "Art-Net Port-Address (0..32767)", f,
                  "output.artnet", o.kind == "artnet")
    ola = getattr(o, "ola", None)
    if ola is not None:
        _one_each(universes, ola.universe_map, int, "OLA universe", f, "output.ola",
                  o.kind == "ola")


def check_here(cfg: Any) -> None:
    """What `run` needs of this machine, for `check` (which runs where the show will): the
    interface the output and the group send on. Not part of `check_rules`: a config is also
    read where its show does not run (`latentdmx doctor` reports a missing interface)."""
    for i, sub in enumerate(sub_configs(cfg) if cfg.outputs else ()):
        with blamed(cfg, i):
            check_here(sub)
    o = cfg.output
    for fld, name, used in (("output.sacn.interface", o.sacn.interface, o.kind == "sacn"),
                            ("output.artnet.interface", o.artnet.interface,
                             o.kind == "artnet"),
                            ("sync.interface", cfg.sync.interface, bool(cfg.sync.group))):
        if used and name:
            _interface_here(name, cfg.path, fld)


def _interface_here(name: str, file: str, fld: str) -> None:
    """The interface the output or the group sends on is on this machine (as `run` needs it:
    a name that exists, or an address of this machine). One that exists but has no address
    yet is fine: the show waits for it."""
    import socket

    from .errors import OutputError
    from .outputs.net import NoAddressYet, interface_address

    try:
        if name[0].isdigit():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((name, 0))
        else:
            interface_address(name)
    except NoAddressYet:
        return
    except (OutputError, OSError) as exc:
        raise ConfigError(f"no network interface {name!r} on this machine "
                          f"({getattr(exc, 'what', None) or exc.strerror or exc})", file=file,
                          field=fld, fix="see `ip -br addr` for the interfaces there are, or "
                                         "leave it empty for the routing table's") from None


def _unicast(host: str, file: str, fld: str) -> None:
    if is_name(host.strip()):                      # the section's validate: a host name
        return
    ip = ipaddress.IPv4Address(host.strip())        # or an IPv4 address
    if ip.is_unspecified or ip in ipaddress.IPv4Network("0.0.0.0/8") or \
            ip == ipaddress.IPv4Address("255.255.255.255"):
        raise ConfigError(f"{host} is not a receiver's address", file=file, field=fld,
                          fix='write the node\'s own address, e.g. "192.168.1.50"')


def _sacn_universe(value: object) -> int:
    from .outputs import e131

    if isinstance(value, int) and not isinstance(value, bool) and \
            1 <= value <= e131.MAX_UNIVERSE:
        return value
    raise ValueError(value)


def _one_each(universes: list[int], mapping: dict, parse: Any, what: str, file: str,
              section: str, active: bool) -> None:
    """Every patched rig universe goes to its own protocol universe (as the output maps them
    when it is built: an unmapped rig universe keeps its number), which the protocol has
    (checked for the output in use: another section's defaults do not matter)."""
    seen: dict[Any, int] = {}
    for u in universes:
        try:
            v = parse(mapping.get(str(u), u))
        except ValueError:
            if not active:
                continue
            raise ConfigError(f"rig universe {u} has no {what}", file=file,
                              field=f"{section}.universe_map",
                              fix=f'map it to one, e.g. universe_map = {{ "{u}" = 1 }}'
                              ) from None
        if v in seen:
            raise ConfigError(f"rig universes {seen[v]} and {u} both go to {what} {v}",
                              file=file, field=f"{section}.universe_map",
                              fix="map every patched rig universe to its own universe")
        seen[v] = u


# -- the web page and the sound file ----------------------------------------------------------
def _preview(cfg: Any) -> None:
    pv = cfg.preview
    host = pv.host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is None and (host != pv.host or not host or any(c.isspace() for c in host)):
        raise ConfigError(f"{pv.host!r} is not a host name or address", file=cfg.path,
                          field="preview.host", fix='use e.g. "127.0.0.1" or "0.0.0.0"')


def _audio(cfg: Any) -> None:
    """`[audio] file`: there, a regular file, and sound (when the sound library is here to
    tell; without it the show plays without music, and `run` says so)."""
    a = cfg.audio
    if not a.file:
        return
    p = Path(a.file).expanduser()
    fix = "give the path of a WAV, FLAC, OGG or MP3 file (relative paths start where " \
          "`latentdmx run` starts)"
    try:
        ok = p.is_file()
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise ConfigError("no such sound file" if not p.exists() else "is not a file",
                          file=cfg.path, field="audio.file", fix=fix)
    try:
        import soundfile
    except (ImportError, OSError):
        return
    try:
        info = soundfile.info(str(p))
    except (RuntimeError, OSError, ValueError, TypeError, soundfile.LibsndfileError) as exc:
        raise ConfigError(f"{a.file} cannot be read as sound ({str(exc)[:60]})",
                          file=cfg.path, field="audio.file", fix=fix) from None
    if info.frames <= 0:
        raise ConfigError(f"{a.file} holds no sound", file=cfg.path, field="audio.file",
                          fix=fix)


# -- warnings ---------------------------------------------------------------------------------
def config_warnings(cfg: Any, now: dt.datetime | None = None) -> list[str]:
    """What may be meant but may well be a slip: one line each, naming the file and field."""
    now = now or dt.datetime.now(dt.UTC)
    out: list[str] = []
    f = cfg.path

    def warn(fld: str, text: str) -> None:
        out.append(f"{f}: {fld}: {text}")

    today = _local_today(cfg, now)
    for i, e in enumerate(cfg.schedule, 1):
        if len(e.dates) == 2:
            b = parse_date(e.dates[1])
            if b is not None and b[0] is not None and dt.date(b[0], b[1], b[2]) < today:
                warn(f"schedule[{i}].dates", f"the range ended on {e.dates[1]}: this entry "
                     "never plays again (delete it, or give the dates without a year for "
                     "every year)")
    if cfg.schedule and all(_past(e, today) for e in cfg.schedule):
        warn("schedule", "every entry's dates are over: the rig stays dark")
    saved_only = set()
    for i, e in enumerate(cfg.schedule, 1):
        if e.preset and e.preset not in cfg.presets:
            saved_only.add((f"schedule[{i}].preset", e.preset))
    for name, pl in cfg.playlists.items():
        for j, item in enumerate(pl.items):
            if isinstance(item, str) and item not in cfg.presets:
                saved_only.add((f"playlists.{name}.items[{j}]", item))
    for fld, name in sorted(saved_only):
        warn(fld, f"no [presets.{name}] in the config: it plays only if a preset {name!r} is "
                  f"saved (`latentdmx preset save {name}`) where the show runs")
    s = cfg.sync
    if s.group:
        from .sync_config import parse_epoch

        start = parse_epoch(s.epoch)
        if start > now:
            warn("sync.epoch", f"{s.epoch} is still to come: the group plays nothing until "
                 f"then ({(start - now).total_seconds() / 86400:.1f} days)")
        addr = ipaddress.IPv4Address(s.address)
        if addr not in ipaddress.IPv4Network("239.0.0.0/8"):
            warn("sync.address", f"{s.address} is not an administratively scoped address "
                 "(239.0.0.0/8): routers may carry it beyond the LAN")
    return out


def _past(e: Any, today: dt.date) -> bool:
    if len(e.dates) != 2:
        return False
    b = parse_date(e.dates[1])
    return b is not None and b[0] is not None and dt.date(b[0], b[1], b[2]) < today


def _local_today(cfg: Any, now: dt.datetime) -> dt.date:
    from zoneinfo import ZoneInfo

    from .install_config import system_timezone

    try:
        return now.astimezone(ZoneInfo(cfg.location.timezone or system_timezone())).date()
    except (ValueError, KeyError, OSError):
        return now.date()
