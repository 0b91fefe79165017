"""`latentdmx fixtures list|show|import`: the fixture profiles LatentDMX knows, and adding more.

Profiles are JSON files (docs/fixtures.md): built-ins ship inside the package, user profiles
live in ``$XDG_CONFIG_HOME/latentdmx/fixtures/`` (default ``~/.config/latentdmx/fixtures/``)
and win over built-ins of the same key. `import` converts an Open Fixture Library JSON or a
QLC+ .qxf file into such a profile.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click

from ..errors import FixtureError


def _where(path: str) -> str:
    from ..fixtures import builtin_profiles_dir

    p = Path(path)
    return "built-in" if p.parent == builtin_profiles_dir() else str(p)


def _deg(v: float) -> str:
    return f"{v:g}°" if v else "-"


@click.group()
def fixtures() -> None:
    """Fixture profiles: list them, show their channels, import OFL or QLC+ files.

    A profile says what each DMX channel of a fixture mode does. Built-in profiles ship with
    LatentDMX; imported ones go to $XDG_CONFIG_HOME/latentdmx/fixtures/ (default
    ~/.config/latentdmx/fixtures/) and override built-ins of the same key. See
    docs/fixtures.md for the file format and how to write one by hand.
    """


@fixtures.command("list")
def list_cmd() -> None:
    """List every known profile: key, name, modes (channel counts), pan/tilt range, origin."""
    from ..fixtures import list_profiles

    profiles = list_profiles()
    rows = [("KEY", "NAME", "MODES", "PAN", "TILT", "FROM")]
    for key in sorted(profiles):
        p = profiles[key]
        modes = ", ".join(f"{m.name} ({m.footprint})" for m in p.modes)
        name = f"{p.manufacturer} {p.name}".strip()
        rows.append((key, name, modes, _deg(p.pan_deg), _deg(p.tilt_deg), _where(p.path)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])


@fixtures.command("show")
@click.argument("key")
def show_cmd(key: str) -> None:
    """Show profile KEY: every mode's channels in DMX order, with ranges and held values."""
    import difflib

    from ..fixtures import list_profiles

    profiles = list_profiles()
    p = profiles.get(key)
    if p is None:
        close = difflib.get_close_matches(key, list(profiles), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise FixtureError(f"no profile {key!r}", field="fixtures show",
                           fix=f"{hint}see `latentdmx fixtures list`")
    click.echo(f"{p.key}: {p.manufacturer} {p.name}".rstrip())
    where = _where(p.path)
    click.echo(f"  pan {_deg(p.pan_deg)}, tilt {_deg(p.tilt_deg)}; file: {p.path}"
               + (" (built-in)" if where == "built-in" else ""))
    if p.source:
        click.echo(f"  source: {p.source}")
    for m in p.modes:
        click.echo(f"\nmode {m.name!r} ({m.footprint} channels)")
        for i, c in enumerate(m.channels, 1):
            if c.attr == "hold":
                what = f"hold {c.value}"
            elif (c.min, c.max) != (0, 255):
                what = f"{c.attr} {c.min}..{c.max}"
            else:
                what = c.attr
            click.echo(f"  {i:>3}  {what:<18} {c.label}")


def write_profile_atomic(data: dict, dest: Path) -> None:
    """Write JSON to `dest` via a temporary file in the same folder and `os.replace`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@fixtures.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--key", help="Profile key to save under (default: manufacturer-model, "
                            "e.g. 'stage-right-stage-wash-7x10w-led-moving-head').")
@click.option("--force", is_flag=True, help="Overwrite a user profile with the same key.")
def import_cmd(file: str, key: str | None, force: bool) -> None:
    """Import FILE (Open Fixture Library .json or QLC+ .qxf) as a user profile.

    Pan, tilt (with fine channels), dimmer and red/green/blue/white are driven by the show;
    everything else is held at a safe value: shutters open (never strobing), pan/tilt speed
    fastest, macros/programs/reset at their "no function" value, amber/UV/etc. at 0. A
    dimmer/strobe channel is written only in its dimmer range. Check the result with
    `latentdmx fixtures show KEY` against the fixture's manual before a show.
    """
    from ..fixtures import builtin_profiles_dir, load_profile_file, user_profiles_dir
    from ..fixtures.importing import import_file, slugify
    from ..fixtures.profile import profile_from_json

    if key is not None and slugify(key) != key:
        raise FixtureError(f"key {key!r} is not a slug", field="--key",
                           fix=f"use lower-case letters, digits and '-', e.g. {slugify(key)!r}")
    prof, notes = import_file(file, key=key)
    dest = user_profiles_dir() / f"{prof.key}.json"
    if dest.exists() and not force:
        raise FixtureError(f"a user profile {prof.key!r} already exists", file=dest,
                           field="--force", fix="add --force to overwrite it, or --key NEW_KEY")
    data = prof.to_json()
    profile_from_json(data, dest)           # what we write must load back
    write_profile_atomic(data, dest)
    shadowed = any(load_profile_file(p).key == prof.key
                   for p in builtin_profiles_dir().glob("*.json"))
    click.echo(f"imported {prof.manufacturer} {prof.name} as {prof.key!r} -> {dest}")
    for m in prof.modes:
        chans = " ".join(c.attr if c.attr != "hold" else f"hold={c.value}" for c in m.channels)
        click.echo(f"  mode {m.name!r} ({m.footprint} ch): {chans}")
    for n in notes:
        click.echo(f"  note: {n}")
    if shadowed:
        click.echo(f"  note: this overrides the built-in profile {prof.key!r}")
    click.echo("\nUse it in your config:\n")
    click.echo("  [[fixtures]]\n"
               f'  name = "{prof.key}-1"\n'
               f'  profile = "{prof.key}"\n'
               f'  mode = "{prof.modes[0].name}"\n'
               "  universe = 1\n"
               "  address = 1\n"
               "  position = [0.5, 0.5]\n")
    click.echo(f"Check every channel against the manual: latentdmx fixtures show {prof.key}")
