"""Commands that talk to the running daemon over its control socket, built from the one
control vocabulary (`pi_app.vocabulary.COMMANDS`): one click command per entry, its arguments
the entry's, in order; ``preset/save`` becomes ``latentdmx preset save``.

Arguments are checked here first (the same validators the daemon uses), so a mistake is one
line before anything is sent (``dim -1``: "level: -1.0 is not a number in 0..1"); the daemon
checks them again. The daemon is found at ``--socket`` or ``$LATENTDMX_SOCKET``, else where
`latentdmx run` or the systemd service puts it (see `pi_app.control.client_socket_path`).
"""

from __future__ import annotations

from typing import Any

import click

from ..control import ControlClient
from ..errors import ControlError
from ..vocabulary import COMMANDS, STATES, Command, Status

_socket_option = click.option(
    "--socket", "socket_path", type=click.Path(dir_okay=False), envvar="LATENTDMX_SOCKET",
    default=None, help="The daemon's control socket (default: found automatically).")


def _send(socket_path: str | None, cmd: str, **args: Any) -> dict[str, Any]:
    return ControlClient(socket_path).request(cmd, **args)


# -- printing ---------------------------------------------------------------------------
_STATUS_ROWS: tuple[tuple[str, str], ...] = Status.labels()


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
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
        value = result[key]
        if isinstance(value, list) and any(isinstance(v, str) and ", " in v for v in value):
            lines = [str(v) for v in value]     # one per line (e.g. a group's members)
            click.echo(f"{label:<{width}}  {lines[0]}")
            for line in lines[1:]:
                click.echo(f"{'':<{width}}  {line}")
            continue
        click.echo(f"{label:<{width}}  {_status_text(key, value, result)}")


def _status_text(key: str, value: Any, result: dict[str, Any]) -> str:
    """A status row as the operator reads it: what the show is doing in words, and no fps
    while it computes no frames (paused, blacked out or dark: the same frame re-sent)."""
    if key == "state" and isinstance(value, str):
        return STATES.get(value, value)
    if key == "fps_achieved" and value is None:
        return f"- ({result.get('state', 'holding still')}: the same frame is re-sent, " \
               "none computed)"
    return _fmt(key, value)


def _print_short(result: dict[str, Any]) -> None:
    """One line for the commands that change something: ``master 0.20, paused no``."""
    click.echo(_fmt("", result) if result else "ok")


def _print_presets(result: dict[str, Any]) -> None:
    presets = result.get("presets") or []
    if not presets:
        click.echo(f"no presets yet (save one with `latentdmx preset save NAME`; folder "
                   f"{result.get('folder', '?')})")
        return
    click.echo(f"{'NAME':<20}{'FROM':<8}{'MODEL':<16}{'SEED':>6}{'TEMPO':>7}{'LEVEL':>8}"
               f"  PALETTE")
    for p in presets:
        click.echo(f"{p['name']:<20}{p.get('source', ''):<8}{p['model']:<16}{p['seed']:>6}"
                   f"{p['tempo']:>7g}{p['master']:>8g}  {p.get('palette') or '-'}"
                   + ("  heads still" if p.get("heads_still") else ""))


_PRINT = {"short": _print_short, "presets": _print_presets,
          "table": lambda r: _print_table(r, _STATUS_ROWS)}


# -- the commands, from the vocabulary ----------------------------------------------------
def _help(cmd: Command) -> str:
    text = cmd.help.strip()
    rows = []
    for a in cmd.args:
        note = a.kind.label if a.required else f"{a.kind.label}, optional"
        if isinstance(a.default, bool):
            note += f", default {'on' if a.default else 'off'}"
        elif a.default is not None:
            note += f", default {_fmt(a.name, a.default)}"
        rows.append(f"  {a.name.upper():<8} {a.help} ({note})")
    if rows:
        text += "\n\n\b\nArguments:\n" + "\n".join(rows)
    return text


def _make(cmd: Command, name: str) -> click.Command:
    def callback(values: tuple[str, ...], socket_path: str | None) -> None:
        try:
            args = cmd.parse_text(list(values))
        except ControlError as exc:          # the command line is wrong, not the daemon
            raise ControlError(exc.what, file="command line", field=exc.field,
                               fix=exc.fix) from None
        _PRINT[cmd.show_as](_send(socket_path, cmd.name, **args))

    return click.Command(
        name, callback=callback, short_help=cmd.summary, help=_help(cmd),
        params=[click.Argument(["values"], nargs=-1, metavar=cmd.usage() or None),
                click.Option(["--socket", "socket_path"], type=click.Path(dir_okay=False),
                             envvar="LATENTDMX_SOCKET", default=None,
                             help="The daemon's control socket (default: found "
                                  "automatically).")],
        context_settings={"ignore_unknown_options": True})


def _build() -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}
    groups: dict[str, click.Group] = {}
    for cmd in COMMANDS.values():
        if not cmd.cli:
            continue
        if "/" in cmd.name:
            group_name, sub = cmd.name.split("/", 1)
            group = groups.get(group_name)
            if group is None:
                group = groups[group_name] = click.Group(
                    group_name, help=f"{group_name.capitalize()}s: "
                    + ", ".join(c.name.split("/", 1)[1] for c in COMMANDS.values()
                                if c.name.startswith(group_name + "/")) + ".")
                out[group_name] = group
            group.add_command(_make(cmd, sub))
        else:
            out[cmd.name] = _make(cmd, cmd.name)
    return out


CLI_COMMANDS = _build()
