"""How many real fixture files `latentdmx fixtures import` takes, and why it refuses the rest.

    python bench/import_rate.py [FOLDER_OR_FILE ...] [--quiet]

Default corpora: every QLC+ definition Debian's qlcplus-data installs
(/usr/share/qlcplus/fixtures) and the OFL test corpus of this repository
(tests/data/fixtures/ofl-corpus and tests/data/fixtures/ofl). Any folder works (e.g. a whole
checkout of open-fixture-library's fixtures/).

For each corpus: files, lasers (refused on purpose), imported, refused, and the rate
imported / (files - lasers). Then every refusal: the file, the importer's one line, and the
verdict of an independent judge (tests/fixture_judge.py: its own parser and word lists, no
importer code) on the channel the refusal names: the channel's capabilities as the file
writes them, each marked `ok` (a value the judge accepts to hold: off, stop, open, no
function, an index, lamp on, fan auto...) or `NO`. The judge *agrees* with a refusal when it
finds no `ok` value on that channel; it *disagrees* when it finds one (a safe value the
importer missed); a refusal that names no channel (a dimmer from bright to dark, matrix
channels the reader cannot expand...) is listed with its reason.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from fixture_judge import (
    FORBID,
    NEVER,
    OFFISH,
    OPENISH,
    STARTS_AT_REST,
    RawCap,
    RawChannel,
    read_raw,
)

from pi_app.errors import FixtureError
from pi_app.fixtures.importing import import_file

QLC = Path("/usr/share/qlcplus/fixtures")
OFL = [ROOT / "tests/data/fixtures/ofl-corpus", ROOT / "tests/data/fixtures/ofl"]


def files_of(p: Path) -> list[Path]:
    if p.is_file():
        return [p]
    return sorted(f for f in p.rglob("*") if f.suffix.lower() in (".qxf", ".json")
                  and f.name != "manufacturers.json" and not f.name.startswith("."))


def named_channel(msg: str) -> str | None:
    m = re.search(r"channel '((?:[^'\\]|\\.)*)'|channel \"([^\"]*)\"", msg)
    return None if m is None else (m.group(1) if m.group(1) is not None else m.group(2))


def holdable(rc: RawChannel, c: RawCap, lamp_ok: bool = True) -> bool:
    """May the judge hold channel `rc` at the start of range `c`? A range whose text names no
    function ("Forwards fast to slow") is read with the channel's name ("Gobo rotation")."""
    if not (FORBID.search(c.text) or OFFISH.search(c.text) or OPENISH.search(c.text)):
        c = RawCap(c.lo, c.hi, f"{rc.name}: {c.text}", c.preset)
    if NEVER.search(c.text) and not (STARTS_AT_REST.search(c.text)):
        return False                     # a reset or a lamp off is never sent
    if c.hold_ok(c.lo):
        return lamp_ok or not re.search(r"lamp", c.text, re.IGNORECASE)
    return not c.forbidden()


def judge_channel(f: Path, name: str, lamp_ok: bool) -> tuple[RawChannel | None, bool]:
    """The channel of that name in the file, and whether the judge finds a value to hold."""
    try:
        modes = read_raw(f)
    except Exception:                                       # noqa: BLE001 - a verdict only
        return None, False
    for chans in modes.values():
        for rc in chans:
            if rc is not None and rc.name == name:
                return rc, (not rc.caps) or any(holdable(rc, c, lamp_ok) for c in rc.caps)
    return None, False


def run(label: str, files: list[Path], quiet: bool) -> tuple[int, int, list[str]]:
    imported = lasers = 0
    refusals: list[str] = []
    disagree = 0
    for f in files:
        try:
            import_file(f)
            imported += 1
        except FixtureError as exc:
            msg = str(exc)
            if "is a laser" in msg:
                lasers += 1
                continue
            name = named_channel(msg) if "no safe value" in msg or "lamp on" in msg else None
            lamp_ok = "nothing else in this mode can darken" not in msg
            lines = [f"  {f}", f"    importer: {exc.what}"]
            if name is None:
                lines.append("    judge: not a question of a value to hold (see the reason)")
            else:
                rc, has_safe = judge_channel(f, name, lamp_ok)
                if rc is None:
                    lines.append(f"    judge: no channel {name!r} found in the file")
                else:
                    verdict = "DISAGREES: a value to hold exists" if has_safe else "agrees"
                    disagree += has_safe
                    lines.append(f"    judge {verdict}; channel {name!r}:")
                    for c in rc.caps:
                        ok = "ok" if holdable(rc, c, lamp_ok) else "NO"
                        lines.append(f"      {c.lo:3d}-{c.hi:3d} {ok:2s} "
                                     f"{c.preset + ': ' if c.preset else ''}{c.text}")
            refusals.append("\n".join(lines))
    n = len(files) - lasers
    rate = 100.0 * imported / n if n else 0.0
    print(f"{label}: {len(files)} files, {lasers} lasers, {imported} of {n} non-laser files "
          f"import ({rate:.1f} %), {len(refusals)} refused, judge disagrees with {disagree}")
    if not quiet:
        for r in refusals:
            print(r)
    return imported, n, refusals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--quiet", action="store_true", help="only the rates")
    args = ap.parse_args()
    corpora = ([(str(p), files_of(p)) for p in args.paths] if args.paths else
               ([(f"QLC+ ({QLC})", files_of(QLC))] if QLC.is_dir() else [])
               + [("OFL test corpus", [f for p in OFL for f in files_of(p)])])
    tot_i = tot_n = 0
    for label, files in corpora:
        i, n, _ = run(label, files, args.quiet)
        tot_i, tot_n = tot_i + i, tot_n + n
    if len(corpora) > 1 and tot_n:
        print(f"all: {tot_i} of {tot_n} non-laser files import ({100.0 * tot_i / tot_n:.1f} %)")


if __name__ == "__main__":
    main()
