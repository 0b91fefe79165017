"""Commands that talk to the running daemon over its control socket.

Each command sends one request (`pi_app.control.ControlClient`) and prints the answer. The
daemon is found at ``--socket`` or ``$LATENTDMX_SOCKET``, else where `latentdmx run` or the
systemd service puts it (see `pi_app.control.client_socket_path`).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..control import ControlClient

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
    ("music", "music"),
    ("music_source", "tempo from"),
    ("bpm", "bpm"),
    ("beat_phase", "beat phase"),
    ("bar_beat", "beat of bar"),
    ("energy", "energy"),
    ("level_db", "level dBFS"),
    ("audio", "audio"),
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


# -- the commands -----------------------------------------------------------------------
@click.command()
@_socket_option
def status(socket_path: str | None) -> None:
    """Show what the running daemon is doing: model, fps, late frames, output, master."""
    _print_table(_send(socket_path, "status"), _STATUS_ROWS)


@click.command()
@click.argument("level", type=click.FloatRange(0.0, 1.0))
@_socket_option
def dim(level: float, socket_path: str | None) -> None:
    """Set the master dimmer to LEVEL (0 = dark, 1 = full).

    The change goes through the flash limiter, so a big step fades over up to ~2 s.
    """
    _print_short(_send(socket_path, "dim", level=level))


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


@click.command()
@click.argument("n", type=click.IntRange(min=0))
@_socket_option
def seed(n: int, socket_path: str | None) -> None:
    """Jump to a new walk, seeded with N (the same N gives the same show)."""
    _print_short(_send(socket_path, "seed", seed=n))


@click.command()
@click.argument("name")
@_socket_option
def model(name: str, socket_path: str | None) -> None:
    """Swap to model NAME (bundled name, user model or path) with a cross-fade."""
    _print_short(_send(socket_path, "model", name=name))


@click.command()
@click.argument("x", type=click.FloatRange(min=0.0, min_open=True))
@_socket_option
def tempo(x: float, socket_path: str | None) -> None:
    """Walk X times as fast as configured (0.5 = half speed, 2 = double)."""
    _print_short(_send(socket_path, "tempo", tempo=x))


@click.command()
@click.option("--once", is_flag=True, help="Send one tap and exit (e.g. from a foot switch).")
@_socket_option
def tap(once: bool, socket_path: str | None) -> None:
    """Tap the tempo: press Enter on every beat (q or Ctrl-D to finish).

    Two taps or more set the tempo (the median of the last 8 intervals); the last tap is
    beat 1 of a bar. A single tap later re-aligns beat 1 at the same tempo. A pause of more
    than 2 s starts counting afresh. `latentdmx bpm 0` goes back to following the audio.
    """
    client = ControlClient(socket_path)
    if once:
        _print_short(client.request("tap"))
        return
    click.echo("tap Enter on each beat; q + Enter (or Ctrl-D) to finish")
    while True:
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            break
        if not line or line.strip().lower() == "q":
            break
        r = client.request("tap")
        click.echo(f"  {r['bpm']:g} BPM ({r['taps']} taps)" if r.get("bpm") else
                   f"  ({r['taps']} tap)")


@click.command()
@click.argument("bpm", type=click.FloatRange(0.0, 400.0))
@_socket_option
def bpm(bpm: float, socket_path: str | None) -> None:
    """Fix the tempo at BPM from now (beat 1 now); `bpm 0` follows the music again."""
    _print_short(_send(socket_path, "bpm", bpm=bpm))
