"""The `latentdmx` command line.

Each command lives in a module of `pi_app.commands`; this file only wires them together and
turns a `LatentDMXError` into one line (``error: FILE: FIELD: what — fix``, exit 2). Set
``LATENTDMX_DEBUG=1`` to see the traceback instead. Command modules import heavy libraries
(torch, ola, serial) inside their functions, never at import time.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from . import __version__
from .errors import LatentDMXError

# (module in pi_app.commands, attribute names of click commands to register)
COMMAND_MODULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("run", ("run", "check")),
    ("fixtures", ("fixtures",)),
    ("rig", ("rig",)),
    ("models", ("models",)),
    ("train", ("train",)),
    ("hardware", ("identify", "doctor", "darken")),
    ("safety", ("safety_check",)),
    ("control", ("*",)),          # every command of the control vocabulary (vocabulary.py)
    ("views", ("render", "watch", "web_token")),
    ("install", ("schedule",)),
    ("network", ("service_network",)),
    # after "control": this `tap` (Enter on every beat) replaces the vocabulary's one-shot tap
    ("music", ("audio", "tap")),
)


class _Group(click.Group):
    """A group that prints project errors as one line and exits 2, and imports a command's
    module only when that command runs: `latentdmx run` loads none of the other commands'
    modules (~1 MB less resident for the daemon). Listing the commands (``--help``) or a
    command outside `ENTRY` (the control vocabulary's) loads them all."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            module = ENTRY.get(cmd_name)
            if module is not None:
                _register(only=module)
            if cmd_name not in self.commands:
                _register()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        _register()
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LatentDMXError as exc:
            if os.environ.get("LATENTDMX_DEBUG"):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except click.UsageError as exc:            # a wrong option or argument: one line too
            if os.environ.get("LATENTDMX_DEBUG"):
                raise
            click.echo(f"error: command line: {_usage_line(exc)}", err=True)
            sys.exit(2)


def _usage_line(exc: click.UsageError) -> str:
    """click's several-line usage error as ``FIELD: what — fix``."""
    what = " ".join(exc.format_message().split())
    field = "(usage)"
    param = getattr(exc, "param", None)
    if param is not None:
        field = (param.opts[0] if isinstance(param, click.Option) and param.opts
                 else param.human_readable_name)
        what = what.split(": ", 1)[1] if what.startswith("Invalid value for") and ": " in what \
            else what
    elif getattr(exc, "option_name", None):
        field = exc.option_name  # type: ignore[attr-defined]
    ctx = exc.ctx
    where = f"latentdmx {ctx.command_path.split(' ', 1)[1]} --help" if ctx and \
        " " in ctx.command_path else "latentdmx --help"
    return f"{field}: {what} — see `{where}`"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="latentdmx")
def main() -> None:
    """LatentDMX — drive DMX512 lights from small generative neural models.

    Start with `latentdmx run` (plays the bundled default show on the virtual universe),
    `latentdmx check CONFIG` to validate a rig, and `latentdmx COMMAND --help` for details.
    Set LATENTDMX_DEBUG=1 to see tracebacks.
    """


# commands whose module is known without importing it (the control vocabulary's are not)
ENTRY = {name.replace("_", "-"): module for module, names in COMMAND_MODULES
         if names != ("*",) and module not in ("control", "music") for name in names}
_loaded: set[str] = set()


def _register(only: str | None = None) -> None:
    """Add the commands of every module in `COMMAND_MODULES` (in order: a later one
    replaces an earlier one of the same name), or of `only`."""
    for module_name, names in COMMAND_MODULES:
        if module_name in _loaded or (only is not None and module_name != only):
            continue
        _loaded.add(module_name)
        try:
            module = importlib.import_module(f".commands.{module_name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(f"{__package__}.commands."):
                continue   # a command module not built yet
            raise
        if names == ("*",):
            names = tuple(module.CLI_COMMANDS)
        for name in names:
            cmd = module.CLI_COMMANDS.get(name) if hasattr(module, "CLI_COMMANDS") else \
                getattr(module, name, None)
            if isinstance(cmd, click.Command):
                main.add_command(cmd)


if __name__ == "__main__":
    main()
