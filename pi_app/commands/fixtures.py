"""`latentdmx fixtures list|show|import`: the fixture profiles LatentDMX knows, and adding more.

Profiles are JSON files (docs/fixtures.md). Built-ins ship inside the package; imported ones
live in the user folder (``$XDG_CONFIG_HOME/latentdmx/fixtures/``, default
``~/.config/latentdmx/fixtures/``) or, with ``import --system``, in the system folder the
service reads (``/var/lib/latentdmx/fixtures/``, `pi_app.paths`). Of the same key, the user's
wins over the system's, which wins over a built-in. `import` converts an Open Fixture Library
JSON or a QLC+ .qxf file into such a profile and keeps a copy of the file beside it
(``sources/``), so `latentdmx safety-check` can judge a recording against the file itself.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click

from ..errors import FixtureError

FILE_MODE = 0o644          # readable by the service user (profiles are not secrets)
DIR_MODE = 0o755


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
    ~/.config/latentdmx/fixtures/), or with `import --system` to /var/lib/latentdmx/fixtures/
    where the service finds them. See docs/fixtures.md for the file format and how to write
    one by hand.
    """


@fixtures.command("list")
def list_cmd() -> None:
    """List every known profile: key, name, modes (channel counts), pan/tilt range, origin."""
    from ..fixtures.profile import builtin_profiles_dir, load_profile_file, scan_profiles

    profiles, broken = scan_profiles()
    builtin_keys = {load_profile_file(f).key for f in builtin_profiles_dir().glob("*.json")}
    rows = [("KEY", "NAME", "MODES", "PAN", "TILT", "FROM")]
    for key in sorted(profiles):
        p = profiles[key]
        modes = ", ".join(f"{m.name} ({m.footprint})" for m in p.modes)
        name = f"{p.manufacturer} {p.name}".strip()
        where = _where(p.path)
        if where != "built-in" and key in builtin_keys:
            where += " (replaces the built-in)"
        rows.append((key, name, modes, _deg(p.pan_deg), _deg(p.tilt_deg), where))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    for exc in broken:
        click.echo(f"broken: {exc}")


@fixtures.command("show")
@click.argument("key")
def show_cmd(key: str) -> None:
    """Show profile KEY: every mode's channels in DMX order, with ranges and held values."""
    from ..fixtures.profile import missing_profile_error, scan_profiles

    profiles, broken = scan_profiles()
    p = profiles.get(key)
    if p is None:
        exc = missing_profile_error(key, profiles, broken, field="fixtures show")
        raise exc
    click.echo(f"{p.key}: {p.manufacturer} {p.name}".rstrip())
    where = _where(p.path)
    click.echo(f"  pan {_deg(p.pan_deg)}, tilt {_deg(p.tilt_deg)}; file: {p.path}"
               + (" (built-in)" if where == "built-in" else ""))
    if p.source:
        click.echo(f"  source: {p.source}")
    if p.source_path is not None:
        click.echo(f"  fixture file kept at: {p.source_path}")
    if p.laser:
        click.echo("  laser: imported with --allow-laser")
    best = p.best_mode().name if p.modes else ""
    for m in p.modes:
        tag = "  (drives the most)" if m.name == best and len(p.modes) > 1 else ""
        click.echo(f"\nmode {m.name!r} ({m.footprint} channels){tag}")
        for i, c in enumerate(m.channels, 1):
            if c.attr == "hold":
                what = f"hold {c.value}"
            elif c.attr == "wheel":
                what = f"wheel {c.value} +{len(c.slots)}"
            elif (c.min, c.max) != (0, 255):
                what = f"{c.attr} {c.min}..{c.max}"
            else:
                what = c.attr
            click.echo(f"  {i:>3}  {what:<18} {c.label}" + ("  [check: see below]" if c.warn
                                                              else ""))
        for i, c in enumerate(m.channels, 1):
            if c.warn:
                click.echo(f"  check channel {i}: {c.warn}")


def write_atomic(data: bytes, dest: Path) -> None:
    """Write `dest` via a temporary file in the same folder and `os.replace`, mode 0644."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_profile_atomic(data: dict, dest: Path) -> None:
    """Write a profile's JSON to `dest` atomically (see `write_atomic`)."""
    write_atomic((json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"), dest)


def _make_dirs(folder: Path, system: bool) -> None:
    """Create the profile folder (and ``sources/``); system folders world-readable."""
    for d in (folder, folder / "sources"):
        try:
            d.mkdir(parents=True, exist_ok=True)
            if system:
                os.chmod(d, DIR_MODE)
        except OSError as exc:
            raise FixtureError(f"cannot create the folder ({exc.strerror})", file=d,
                               field="--system" if system else "(folder)",
                               fix="run it with sudo" if system else
                                   "check the folder's permissions") from None


@fixtures.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--key", help="Profile key to save under (default: manufacturer-model, "
                            "e.g. 'stage-right-stage-wash-7x10w-led-moving-head').")
@click.option("--force", is_flag=True, help="Overwrite an imported profile with the same key.")
@click.option("--system", is_flag=True,
              help="Install for the service: into /var/lib/latentdmx/fixtures "
                   "($LATENTDMX_SYSTEM_DIR), readable by every user (needs root).")
@click.option("--allow-laser", is_flag=True,
              help="Import a laser anyway. Only for a laser installed and run to your local "
                   "laser-safety rules, never into the audience.")
@click.option("--replace-builtin", is_flag=True,
              help="Allow a key that a built-in profile uses (every config using that key "
                   "then gets this profile).")
def import_cmd(file: str, key: str | None, force: bool, system: bool, allow_laser: bool,
               replace_builtin: bool) -> None:
    """Import FILE (Open Fixture Library .json, QLC+ .qxf or GDTF .gdtf) as a profile.

    A channel is driven only inside the ranges the file calls a plain position (pan, tilt,
    16-bit too) or intensity (dimmer, red, green, blue, white); a dimmer/strobe channel is
    written only in its dimmer range. Everything else is held at a value the file calls off,
    open or no function: shutters open (never strobing), pan/tilt speed fastest,
    macros/programs/reset off, amber/UV/etc. at 0. Where the file gives no such value the
    import says so. Lasers are refused unless --allow-laser. The mode that drives the most is
    suggested. Check the result with `latentdmx fixtures show KEY` against the fixture's
    manual before a show.
    """
    from .. import paths
    from ..fixtures.importing import import_file, slugify
    from ..fixtures.profile import (
        builtin_profiles_dir,
        load_profile_file,
        profile_from_json,
        system_profiles_dir,
        user_profiles_dir,
    )

    if key is not None and slugify(key) != key:
        raise FixtureError(f"key {key!r} is not a slug", field="--key",
                           fix=f"use lower-case letters, digits and '-', e.g. {slugify(key)!r}")
    prof, notes = import_file(file, key=key, allow_laser=allow_laser)
    builtin = {load_profile_file(p).key: p for p in builtin_profiles_dir().glob("*.json")}
    if prof.key in builtin and not replace_builtin:
        raise FixtureError(f"{prof.key!r} is the key of a built-in profile", field="--key",
                           fix=f"choose another key (--key {prof.key}-imported), or add "
                               "--replace-builtin to replace the built-in in every config")
    folder = system_profiles_dir() if system else user_profiles_dir()
    if folder is None:
        raise FixtureError("there is no home folder to import into",
                           field="$HOME", fix="use --system (as root), or set XDG_CONFIG_HOME")
    dest = folder / f"{prof.key}.json"
    if dest.exists() and not force:
        raise FixtureError(f"a profile {prof.key!r} already exists", file=dest,
                           field="--force", fix="add --force to overwrite it, or --key NEW_KEY")
    src_path = Path(prof.source_file or file)       # an OFL redirect: its target's file
    suffix = ".qxf" if src_path.suffix.lower() == ".qxf" or not src_path.suffix else \
        src_path.suffix.lower()
    kept = Path("sources") / f"{prof.key}{suffix}"
    data = prof.to_json()
    data["source_file"] = str(kept)
    profile_from_json(data, dest)           # what we write must load back
    _make_dirs(folder, system)
    try:
        write_atomic(src_path.read_bytes(), folder / kept)
        write_profile_atomic(data, dest)
    except OSError as exc:
        raise FixtureError(f"cannot write the profile ({exc.strerror})", file=dest,
                           field="--system" if system else "(folder)",
                           fix="run it with sudo" if system else
                               "check the folder's permissions") from None
    click.echo(f"imported {prof.manufacturer} {prof.name} as {prof.key!r} -> {dest}")
    best = prof.best_mode()
    ranked = sorted(prof.modes, key=lambda m: m.rank_key())
    for m in ranked:
        chans = " ".join(c.attr if c.attr != "hold" else f"hold={c.value}" for c in m.channels)
        drives = ", ".join(m.driven) or "nothing"
        tag = "  <- suggested: drives the most" if m is best and len(ranked) > 1 else ""
        click.echo(f"  mode {m.name!r} ({m.footprint} ch, drives {drives}): {chans}{tag}")
    for n in notes:
        click.echo(f"  note: {n}")
    if prof.key in builtin:
        click.echo(f"  note: this replaces the built-in profile {prof.key!r} (--replace-builtin)")
    others = [d for d in paths.fixtures_dirs() if d != folder and (d / dest.name).exists()]
    for d in others:
        click.echo(f"  note: {d / dest.name} has the same key; "
                   + ("it wins over this one" if paths.fixtures_dirs().index(d)
                      < paths.fixtures_dirs().index(folder) else "this one wins over it"))
    if system:
        click.echo("  the service (user latentdmx) reads it from here; run "
                   "`sudo systemctl reload latentdmx` after changing the config")
    click.echo("\nUse it in your config:\n")
    click.echo("  [[fixtures]]\n"
               f'  name = "{prof.key}-1"\n'
               f'  profile = "{prof.key}"\n'
               f'  mode = "{best.name}"\n'
               "  universe = 1\n"
               "  address = 1\n"
               "  position = [0.5, 0.5]\n")
    click.echo(f"Check every channel against the manual: latentdmx fixtures show {prof.key}")
