"""`latentdmx rig import FILE`: a config from the rig another tool already knows.

``.mvr`` (My Virtual Rig: Vectorworks, Capture, grandMA3, Blender DMX...) with its GDTF
profiles, or ``.qxw`` (a QLC+ workspace) with its .qxf definitions. Every fixture that can be
driven safely gets its profile imported (into the same folders as `fixtures import`) and a
``[[fixtures]]`` table with its mode, universe, address and place; the others are left out
with one line each saying why. The config is checked before it is written, written
atomically, and never over an existing file without ``--force``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click

from ..errors import FixtureError

_SUFFIXES = (".mvr", ".qxw")


@click.group()
def rig() -> None:
    """A config from your rig as drawn or patched elsewhere (MVR, QLC+ workspace)."""


@rig.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", "out", type=click.Path(dir_okay=False), metavar="CONFIG.toml",
              help="Write the config here (default: print it).")
@click.option("--force", is_flag=True, help="Overwrite an existing --out file and imported "
                                            "profiles of the same key.")
@click.option("--gdtf-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="MVR: a folder of the manufacturers' .gdtf files, matched by manufacturer "
                   "and fixture name; they win over the files in the MVR (placeholders).")
@click.option("--qxf-dir", type=click.Path(file_okay=False), metavar="DIR", multiple=True,
              help="QLC+: another folder of .qxf fixture definitions (besides the workspace's "
                   "own folder, ~/.qlcplus/Fixtures and /usr/share/qlcplus/fixtures).")
@click.option("--system", is_flag=True,
              help="Import the profiles for the service (/var/lib/latentdmx/fixtures, root).")
@click.option("--allow-laser", is_flag=True,
              help="Import lasers too (only for a laser run to your local laser-safety rules).")
def import_cmd(file: str, out: str | None, force: bool, gdtf_dir: str | None,
               qxf_dir: tuple[str, ...], system: bool, allow_laser: bool) -> None:
    """Import the rig in FILE (.mvr or .qxw): profiles, patch and positions -> a config.

    MVR: every fixture with its GDTF profile and mode, its universe and address (MVR's
    absolute addresses), name and fixture ID, and a position from its 3-D place in the front
    view (x across the stage as the audience sees it, y by height, top to bottom); a hung
    fixture gets invert_tilt = true, a standing one false. QLC+: fixtures, their .qxf
    definitions, modes, universes (QLC+ counts from 0: universe 0 becomes 1), addresses, and
    positions from the 2-D monitor when the workspace has one. Fixtures that cannot be driven
    safely (placeholder GDTFs, lasers, unknown definitions, overlapping addresses) are left
    out, one line each. Check the result with `latentdmx check CONFIG.toml`.
    """
    from ..config import MAX_UNIVERSE, parse_config
    from ..fixtures.mvr import read_mvr
    from ..fixtures.profile import (
        builtin_profiles_dir,
        load_profile_file,
        profile_from_json,
        system_profiles_dir,
        user_profiles_dir,
    )
    from ..fixtures.qxw import read_qxw
    from ..fixtures.rig import config_text
    from .fixtures import _make_dirs, write_atomic, write_profile_atomic

    path = Path(file)
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise FixtureError(f"not a rig file ({path.suffix or 'no suffix'})", file=path,
                           field="(file)", fix="give an .mvr file or a QLC+ .qxw workspace")
    dest = Path(out) if out else None
    if dest is not None and dest.exists() and not force:
        raise FixtureError("the file exists", file=dest, field="--out",
                           fix="add --force to overwrite it, or choose another --out")
    if suffix == ".mvr":
        found = read_mvr(path, Path(gdtf_dir) if gdtf_dir else None, allow_laser=allow_laser)
    else:
        found = read_qxw(path, [Path(d) for d in qxf_dir], allow_laser=allow_laser)
    far = [f for f in found.fixtures if not 0 <= f.universe <= MAX_UNIVERSE]
    for f in far:
        found.left_out.append(f"{f.name}: universe {f.universe} is above {MAX_UNIVERSE}, the "
                              "highest LatentDMX drives")
    found.fixtures = [f for f in found.fixtures if f not in far]
    if not found.fixtures:
        why = f" ({found.left_out[0]})" if len(found.left_out) == 1 else \
            f" (all {len(found.left_out)} left out, see above)" if found.left_out else ""
        for line in found.left_out:
            click.echo(f"left out: {line}", err=True)
        raise FixtureError(f"no fixture in the file can be driven safely{why}", file=path,
                           field="fixtures", fix="supply the fixtures' definitions "
                           "(--gdtf-dir, --qxf-dir) or write the config by hand")
    folder = system_profiles_dir() if system else user_profiles_dir()
    if folder is None:
        raise FixtureError("there is no home folder to import the profiles into",
                           field="$HOME", fix="use --system (as root), or set XDG_CONFIG_HOME")
    builtin = {load_profile_file(p).key for p in builtin_profiles_dir().glob("*.json")}
    found.fixtures = _distinct_keys(found.fixtures)
    profiles = {f.profile.key: f for f in found.fixtures}
    planned = []
    for key, fx in sorted(profiles.items()):
        if not fx.source and key in builtin:
            continue                     # a built-in profile (QLC+'s generic dimmers)
        if key in builtin:
            raise FixtureError(f"{key!r} is the key of a built-in profile", file=path,
                               field="fixtures", fix="import that fixture by hand with "
                               "`latentdmx fixtures import FILE --key NEW_KEY`")
        pdest = folder / f"{key}.json"
        kept = Path("sources") / f"{key}{fx.source_suffix}"
        data = fx.profile.to_json()
        data["source_file"] = str(kept)
        if pdest.exists() and not force:
            try:
                same = json.loads(pdest.read_text(encoding="utf-8")) == \
                    json.loads(json.dumps(data))
            except (OSError, ValueError):
                same = False
            if not same:
                raise FixtureError(f"another profile {key!r} already exists", file=pdest,
                                   field="--force", fix="add --force to replace it with the "
                                                        "one from this rig")
        profile_from_json(data, pdest)
        planned.append((pdest, kept, data, fx.source))
    _make_dirs(folder, system)
    try:
        for pdest, kept, data, raw in planned:
            write_atomic(raw, folder / kept)
            write_profile_atomic(data, pdest)
    except OSError as exc:
        raise FixtureError(f"cannot write a profile ({exc.strerror})", file=folder,
                           field="--system" if system else "(folder)",
                           fix="run it with sudo" if system else
                               "check the folder's permissions") from None
    text = config_text(found)
    parse_config(text, str(dest or path.with_suffix(".toml")))     # what we write must load
    for line in found.left_out:
        click.echo(f"left out: {line}", err=True)
    for n in found.notes:
        click.echo(f"note: {n}", err=True)
    click.echo(f"{len(found.fixtures)} fixture(s), {len(profiles)} profile(s) in {folder}",
               err=True)
    if dest is None:
        click.echo(text, nl=False)
        return
    try:
        write_atomic(text.encode("utf-8"), dest)
    except OSError as exc:
        raise FixtureError(f"cannot write the config ({exc.strerror})", file=dest,
                           field="--out", fix="check the folder and its permissions") from None
    click.echo(f"wrote {dest}; check it with `latentdmx check {dest}`, play it with "
               f"`latentdmx run --config {dest}`", err=True)


def _distinct_keys(fixtures: list) -> list:
    """Two different files of one fixture type (two revisions) get two keys: the second and
    later ones get the first 8 hex digits of their file's SHA-256 added."""
    first: dict[str, str] = {}
    out = []
    for f in fixtures:
        key, sha = f.profile.key, f.profile.source_sha256
        if first.setdefault(key, sha) != sha:
            f = replace(f, profile=replace(f.profile, key=f"{key}-{sha[:8]}"))
        out.append(f)
    return out
