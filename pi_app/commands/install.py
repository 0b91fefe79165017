"""`latentdmx schedule`: when the installation plays, day by day, from the config."""

from __future__ import annotations

import datetime as dt

import click

from ..errors import ConfigError


def _config_path(config_path: str | None, socket_path: str | None) -> str | None:
    """--config, else the running daemon's config (if one answers), else the default rig."""
    if config_path:
        return config_path
    from ..control import ControlClient
    from ..errors import ControlError

    try:
        path = ControlClient(socket_path, timeout=1.0).request("status").get("config")
    except ControlError:
        return None
    return path if path and not str(path).startswith("<") else None


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Rig config (TOML). Default: the running daemon's config, else the "
                   "bundled demo rig.")
@click.option("--days", type=click.IntRange(1, 366), default=7, show_default=True,
              help="How many days to show.")
@click.option("--from", "start", metavar="YYYY-MM-DD",
              help="First day (default: today, in the location's time zone).")
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False),
              envvar="LATENTDMX_SOCKET", default=None,
              help="The running daemon's control socket (to find its config).")
def schedule(config_path, days, start, socket_path):
    """Print when the show plays over the coming week: each day's sunrise and sunset, its
    on/off windows with what they play, and the days a window is skipped (and why).

    \b
    Examples:
      latentdmx schedule --config /etc/latentdmx/config.toml
      latentdmx schedule --from 2026-06-18 --days 10      # far north: midnight sun
    """
    from ..config import load_config
    from ..schedule import Schedule

    path = _config_path(config_path, socket_path)
    cfg = load_config(path)
    sch = Schedule(cfg.schedule, cfg.location)
    now = dt.datetime.now(sch.tz)
    if start:
        try:
            first = dt.date.fromisoformat(start)
        except ValueError:
            raise ConfigError(f"{start!r} is not a date", file="command line", field="--from",
                              fix="write YYYY-MM-DD, e.g. --from 2026-06-21") from None
    else:
        first = now.date()
    loc = cfg.location
    where = (f"{abs(loc.latitude):.2f}°{'N' if loc.latitude >= 0 else 'S'} "
             f"{abs(loc.longitude):.2f}°{'E' if loc.longitude >= 0 else 'W'}, "
             if loc.latitude == loc.latitude and loc.longitude == loc.longitude else "")
    click.echo(f"schedule of {cfg.path} — {where}{sch.tz.key}")
    if sch.always_on:
        click.echo("no [[schedule]] entries: the show plays all the time")
        return
    has_sun = loc.latitude == loc.latitude and loc.longitude == loc.longitude
    for k in range(days):
        day = first + dt.timedelta(days=k)
        sun = ""
        if has_sun:
            rise, set_ = sch.sun_event("sunrise", day), sch.sun_event("sunset", day)
            sun = "  ".join(f"{name} {sch.local(t):%H:%M}" if isinstance(t, dt.datetime) else
                            f"no {name}" for name, t in (("sunrise", rise), ("sunset", set_)))
            if isinstance(rise, str) and isinstance(set_, str):
                sun = set_.split(":")[0]                 # midnight sun / polar night
        click.echo(f"{day:%a %d %b %Y}  {sun}".rstrip())
        wins, skipped = sch.day_plan(day)
        for w in wins:
            on, off = sch.local(w.on), sch.local(w.off)
            span = f"{on:%H:%M %Z} – {off:%H:%M %Z}"
            if off.date() != on.date():
                span += f" ({off:%a})"
            click.echo(f"  on  {span:<28} {w.entry.on} – {w.entry.off}: {w.what}")
        for s in skipped:
            click.echo(f"  --  skipped [[schedule]] {s.index + 1} ({s.entry.on} – "
                       f"{s.entry.off}): {s.reason}")
        if not wins and not skipped:
            click.echo("  dark all day")
    if not start:
        state = sch.state(now)
        verb = f"on ({state.window.what})" if state.window else "dark"
        nxt = ""
        if state.next_change:
            from ..schedule import format_local

            what = state.next_window.what if state.next_window else "dark"
            nxt = f"; next: {format_local(sch.local(state.next_change), now)} -> {what}"
        click.echo(f"now: {verb}{nxt}")
