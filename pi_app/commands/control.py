"""Commands that talk to the running daemon over its control socket.

Each command sends one request (`pi_app.control.ControlClient`) and prints the answer. The
daemon is found at ``--socket`` or ``$LATENTDMX_SOCKET``, else where `latentdmx run` or the
systemd service puts it (see `pi_app.control.client_socket_path`).
"""

from __future__ import annotations

from typing import Any

import click

from ..control import ControlClient
from ..errors import ConfigError

_socket_option = click.option(
    "--socket", "socket_path", type=click.Path(dir_okay=False), envvar="LATENTDMX_SOCKET",
    default=None, help="The daemon's control socket (default: found automatically).")


def _send(socket_path: str | None, cmd: str, **args: Any) -> dict[str, Any]:
    return ControlClient(socket_path).request(cmd, **args)


# -- printing ---------------------------------------------------------------------------
_STATUS_ROWS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("output", "output"),
    ("output_health", "output health"),
    ("fps", "fps target"),
    ("fps_target", "fps target"),
    ("fps_achieved", "fps achieved"),
    ("late_frames", "late frames"),
    ("frames", "frames"),
    ("uptime_s", "uptime"),
    ("master", "master"),
    ("paused", "paused"),
    ("blackout", "blackout"),
    ("seed", "seed"),
    ("tempo", "tempo"),
)


def _fmt(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key.endswith("_s") and isinstance(value, int | float):
        return _duration(float(value))
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(k, v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(key, v) for v in value)
    return str(value)


def _duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {s}s"
    if minutes:
        return f"{minutes}m {s}s"
    return f"{seconds:.1f}s"


def _print_table(result: dict[str, Any], rows: tuple[tuple[str, str], ...] = ()) -> None:
    known = [(key, label) for key, label in rows if key in result]
    rest = [(key, key.replace("_", " ")) for key in result if key not in dict(rows)]
    pairs = known + rest
    if not pairs:
        click.echo("ok")
        return
    width = max(len(label) for _, label in pairs)
    for key, label in pairs:
        click.echo(f"{label:<{width}}  {_fmt(key, result[key])}")


def _print_short(result: dict[str, Any]) -> None:
    """One line for the commands that change something: ``master 0.20, paused no``."""
    click.echo(_fmt("", result) if result else "ok")


def _number(text: str, name: str, lo: float, hi: float | None, example: str, *,
            whole: bool = False, lo_open: bool = False) -> float:
    """A command-line number as one clear line when it is wrong (a negative one included:
    click would take ``-1`` for an option)."""
    span = f"in {lo:g}..{hi:g}" if hi is not None and hi < 1e9 else (
        f"above {lo:g}" if lo_open else f"of {lo:g} or more")
    want = f"a whole number {span}" if whole else f"a number {span}"
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = None
    if value is None or value != value or (hi is not None and value > hi) or value < lo \
            or (lo_open and value == lo):
        raise ConfigError(f"{text!r} is not {want}", file="command line", field=name,
                          fix=f"e.g. `{example}`")
    return value


_numeric = {"ignore_unknown_options": True}     # `dim -1` is a value, not an option


# -- the commands -----------------------------------------------------------------------
@click.command()
@_socket_option
def status(socket_path: str | None) -> None:
    """Show what the running daemon is doing: model, fps, late frames, output, master."""
    _print_table(_send(socket_path, "status"), _STATUS_ROWS)


@click.command(context_settings=_numeric)
@click.argument("level")
@_socket_option
def dim(level: str, socket_path: str | None) -> None:
    """Set the master dimmer to LEVEL (0 = dark, 1 = full).

    The change goes through the flash limiter, so a big step fades over up to ~2 s.
    """
    value = _number(level, "LEVEL", 0.0, 1.0, "latentdmx dim 0.5")
    _print_short(_send(socket_path, "dim", level=value))


@click.command()
@_socket_option
def pause(socket_path: str | None) -> None:
    """Hold the current look (the walk stops; the lights stay as they are)."""
    _print_short(_send(socket_path, "pause"))


@click.command()
@_socket_option
def resume(socket_path: str | None) -> None:
    """Carry on walking after `pause` (or after `blackout`)."""
    _print_short(_send(socket_path, "resume"))


@click.command()
@_socket_option
def blackout(socket_path: str | None) -> None:
    """Take the lights dark (intensity and colour to 0, pan/tilt hold); `resume` ends it.

    The lights go dark through the flash limiter (within ~2 s from full), so toggling
    blackout can never make a strobe.
    """
    _print_short(_send(socket_path, "blackout"))


@click.command(context_settings=_numeric)
@click.argument("n")
@_socket_option
def seed(n: str, socket_path: str | None) -> None:
    """Jump to a new walk, seeded with N (the same N gives the same show)."""
    value = int(_number(n, "N", 0, 2**63 - 1, "latentdmx seed 7", whole=True))
    _print_short(_send(socket_path, "seed", seed=value))


@click.command()
@click.argument("name")
@_socket_option
def model(name: str, socket_path: str | None) -> None:
    """Swap to model NAME (bundled name, user model or path) with a cross-fade."""
    _print_short(_send(socket_path, "model", name=name))


@click.command(context_settings=_numeric)
@click.argument("x")
@_socket_option
def tempo(x: str, socket_path: str | None) -> None:
    """Walk X times as fast as configured (0.5 = half speed, 2 = double), 0.01..100."""
    value = _number(x, "X", 0.01, 100.0, "latentdmx tempo 2")
    _print_short(_send(socket_path, "tempo", tempo=value))
