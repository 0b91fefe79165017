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
    ("models", ("models",)),
    ("train", ("train",)),
    ("hardware", ("identify", "doctor", "darken")),
    ("safety", ("safety_check",)),
    ("control", ("*",)),          # every command of the control vocabulary (vocabulary.py)
    ("views", ("render", "watch")),
    ("install", ("schedule",)),
    ("network", ("service_network",)),
    # after "control": this `tap` (Enter on every beat) replaces the vocabulary's one-shot tap
    ("music", ("audio", "tap")),
)


class _Group(click.Group):
    """A group that prints project errors as one line and exits 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LatentDMXError as exc:
            if os.environ.get("LATENTDMX_DEBUG"):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="latentdmx")
def main() -> None:
    """LatentDMX — drive DMX512 lights from small generative neural models.

    Start with `latentdmx run` (plays the bundled default show on the virtual universe),
    `latentdmx check CONFIG` to validate a rig, and `latentdmx COMMAND --help` for details.
    Set LATENTDMX_DEBUG=1 to see tracebacks.
    """


def _register() -> None:
    for module_name, names in COMMAND_MODULES:
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


_register()

if __name__ == "__main__":
    main()
