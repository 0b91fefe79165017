#!/usr/bin/env python3
"""Byte-exact edits of the Raspberry Pi boot files, for scripts/setup-pi.sh.

The set-up script owns exactly two things in the boot files, and this helper touches nothing
else, byte for byte:

* **the managed block in config.txt** — the lines from ``# >>> latentdmx ...`` to
  ``# <<< latentdmx <<<``. Every other line keeps its bytes, its line ending (CRLF stays CRLF,
  and the block is written in the file's own line ending) and its place.
* **DMX consoles on cmdline.txt's first line** (``console=ttyAMA0,...``, and ``serial0`` except
  on a Pi 5). Only those tokens go, with one run of the whitespace beside them; every other
  byte — the other parameters, their spacing, a second line, a missing final newline — stays.

Odd layouts are handled, never guessed at: markers are found in any letter case, with
trailing blanks or CR; two blocks become one; a begin marker without its end marker (or an end
marker without its begin) is accepted only when the lines beside it are exactly a block this
script writes (so its extent is known), and otherwise the edit is refused with one line
naming the file, the line and the fix, and the file is left alone.

Runs on the Pi's own ``python3`` (3.7 or later, standard library only), before LatentDMX is
installed. Sub-commands (each writes its result to OUT, never to FILE; exit 2 = refused, with
one line on stderr)::

    bootfiles.py block-set FILE BODY OUT [--known BODY2 ...]
    bootfiles.py block-strip FILE OUT [--drop-added-eol] [--known BODY ...]
    bootfiles.py block-count FILE...
    bootfiles.py includes ROOT BOOTDIR FILE
    bootfiles.py cmdline-remove FILE OUT [--pi5]
    bootfiles.py cmdline-restore FILE OUT TOKEN...
"""

from __future__ import annotations

import argparse
import os
import re
import sys

MARK_BEGIN = (b"# >>> latentdmx: DMX512 on the PL011 UART (managed by setup-pi.sh, remove with "
              b"--uninstall) >>>")
MARK_END = b"# <<< latentdmx <<<"
_BEGIN_RE = re.compile(rb"^[ \t]*#[ \t]*>>>[ \t]*latentdmx\b", re.IGNORECASE)
_END_RE = re.compile(rb"^[ \t]*#[ \t]*<<<[ \t]*latentdmx[ \t]*<<<", re.IGNORECASE)
_SECTION_RE = re.compile(rb"^[ \t]*\[([^\]]*)\]")
_INCLUDE_RE = re.compile(rb"^[ \t]*include[ \t]+(\S+)")


class Refused(Exception):
    """An edit this helper will not guess at: one line naming the file, the line and the fix."""


# -- lines -------------------------------------------------------------------------------
def split_lines(data: bytes) -> list[bytes]:
    """The file's lines with their endings (the last one may have none)."""
    return data.splitlines(keepends=True)


def _text(line: bytes) -> bytes:
    """A line without its ending and trailing blanks."""
    return line.rstrip(b"\r\n").rstrip(b" \t")


def _norm(line: bytes) -> bytes:
    """A line as compared with a block this script wrote: no ending, no trailing blanks."""
    return _text(line)


def eol_of(lines: list[bytes]) -> bytes:
    """The file's line ending: CRLF when its lines end so, else LF."""
    crlf = sum(1 for line in lines if line.endswith(b"\r\n"))
    lf = sum(1 for line in lines if line.endswith(b"\n") and not line.endswith(b"\r\n"))
    return b"\r\n" if crlf > lf else b"\n"


def is_begin(line: bytes) -> bool:
    return bool(_BEGIN_RE.match(line))


def is_end(line: bytes) -> bool:
    return bool(_END_RE.match(line))


def block_lines(body: bytes, eol: bytes) -> list[bytes]:
    """The managed block (markers included) for BODY, in the line ending EOL."""
    inner = [_text(line) for line in split_lines(body)]
    return [line + eol for line in [MARK_BEGIN, *inner, MARK_END]]


def _body_norm(body: bytes) -> list[bytes]:
    return [_norm(line) for line in split_lines(body)]


# -- finding the block -------------------------------------------------------------------
def find_blocks(lines: list[bytes], known: list[bytes], name: str) -> list[tuple[int, int]]:
    """``[(start, stop)]`` line ranges of the managed block(s), markers included.

    A begin marker without an end (or an end without a begin) is accepted only when the
    lines after (before) it are exactly the body of a KNOWN block; else `Refused`."""
    bodies = [b for b in (_body_norm(k) for k in known) if b]
    blocks: list[tuple[int, int]] = []
    open_at: int | None = None

    def dangling_begin(at: int, limit: int) -> tuple[int, int]:
        for body in sorted(bodies, key=len, reverse=True):
            stop = at + 1 + len(body)
            if stop <= limit and [_norm(x) for x in lines[at + 1:stop]] == body:
                return at, stop
        raise Refused(f"{name}: line {at + 1}: the latentdmx begin marker has no end marker, "
                      "and the lines after it are not the block setup-pi.sh writes, so where "
                      f"the block ends is unknown — add the line '{MARK_END.decode()}' after "
                      "the block's last line (or delete the block), then run again")

    def dangling_end(at: int, floor: int) -> tuple[int, int]:
        for body in sorted(bodies, key=len, reverse=True):
            start = at - len(body)
            if start >= floor and [_norm(x) for x in lines[start:at]] == body:
                return start, at + 1
        raise Refused(f"{name}: line {at + 1}: the latentdmx end marker has no begin marker, "
                      "and the lines before it are not the block setup-pi.sh writes, so where "
                      "the block starts is unknown — add the line "
                      f"'{MARK_BEGIN.decode()}' before the block's first line (or delete the "
                      "block), then run again")

    for i, line in enumerate(lines):
        if is_begin(line):
            if open_at is not None:                 # a second begin: the first one dangles
                blocks.append(dangling_begin(open_at, i))
            open_at = i
        elif is_end(line):
            if open_at is not None:
                blocks.append((open_at, i + 1))
                open_at = None
            else:
                floor = blocks[-1][1] if blocks else 0
                blocks.append(dangling_end(i, floor))
    if open_at is not None:
        blocks.append(dangling_begin(open_at, len(lines)))
    blocks.sort()
    for k in range(1, len(blocks)):
        if blocks[k][0] < blocks[k - 1][1]:
            raise Refused(f"{name}: line {blocks[k][0] + 1}: latentdmx markers overlap — keep "
                          "one block from its begin to its end marker, then run again")
    return blocks


def _inner(lines: list[bytes], block: tuple[int, int]) -> list[bytes]:
    """A block's body lines, normalised (markers left out where present)."""
    start, stop = block
    inner = lines[start:stop]
    if inner and is_begin(inner[0]):
        inner = inner[1:]
    if inner and is_end(inner[-1]):
        inner = inner[:-1]
    return [_norm(x) for x in inner]


# -- config.txt --------------------------------------------------------------------------
def block_set(data: bytes, body: bytes, known: list[bytes], name: str) -> tuple[bytes, list[str]]:
    """DATA with the managed block set to BODY: the first block replaced in place (others
    removed), or appended. Notes: 'added-eol' (the last line got its missing ending),
    'edited-block' (a block held lines this script never wrote: the caller keeps a copy),
    'repaired' (a marker was missing or doubled)."""
    lines = split_lines(data)
    blocks = find_blocks(lines, [body, *known], name)
    notes: list[str] = []
    outside = [x for i, x in enumerate(lines) if not any(a <= i < b for a, b in blocks)]
    eol = eol_of(outside or lines)
    new_block = block_lines(body, eol)
    if not blocks:
        out = list(lines)
        if out and not out[-1].endswith((b"\n", b"\r")):
            out[-1] += eol
            notes.append("added-eol")
        return b"".join(out + new_block), notes
    bodies = [_body_norm(b) for b in (body, *known)]
    for start, stop in blocks:
        if _inner(lines, (start, stop)) not in bodies:
            notes.append("edited-block")
        if not (is_begin(lines[start]) and is_end(lines[stop - 1])):
            notes.append("repaired")
    if len(blocks) > 1:
        notes.append("repaired")
    out = lines[:blocks[0][0]] + new_block
    for k, (_, stop) in enumerate(blocks):          # what lies between and after the blocks
        out += lines[stop:blocks[k + 1][0] if k + 1 < len(blocks) else len(lines)]
    return b"".join(out), sorted(set(notes))


def block_strip(data: bytes, known: list[bytes], name: str,
                drop_added_eol: bool = False) -> tuple[bytes, list[str]]:
    """DATA without the managed block(s). Where removing the block would move the lines after
    it into the section before it (a ``[pi4]`` ... the block's closing ``[all]`` ... user
    lines), an ``[all]`` line stays in its place so those lines keep applying to every Pi.
    DROP_ADDED_EOL: the block was appended to a file without a final newline (the set-up added
    one); take it away again if the block is still the file's end."""
    lines = split_lines(data)
    blocks = find_blocks(lines, known, name)
    notes: list[str] = []
    if not blocks:
        return data, ["no-block"]
    out: list[bytes] = []
    pos = 0
    for start, stop in blocks:
        out += lines[pos:start]
        section = _section_before(out)
        if section not in (None, b"all") and _settings_follow(lines, stop):
            out.append(b"[all]" + eol_of(lines))
            notes.append("kept-all")
        pos = stop
    out += lines[pos:]
    if drop_added_eol and blocks[-1][1] == len(lines) and out and notes.count("kept-all") == 0:
        last = out[-1]
        out[-1] = last[:-2] if last.endswith(b"\r\n") else last.rstrip(b"\n")
    return b"".join(out), notes


def _section_before(lines: list[bytes]) -> bytes | None:
    """The last conditional section header in LINES (lower case), or None."""
    for line in reversed(lines):
        m = _SECTION_RE.match(line)
        if m:
            return m.group(1).strip().lower()
    return None


def _settings_follow(lines: list[bytes], at: int) -> bool:
    """A setting (not a comment, blank or section header) follows AT before the next header."""
    for line in lines[at:]:
        text = _text(line).strip()
        if not text or text.startswith(b"#"):
            continue
        return not _SECTION_RE.match(line)
    return False


def count_blocks_loose(data: bytes) -> int:
    """How many marker lines DATA has (begin or end, any case): 0 = no block there."""
    return sum(1 for line in split_lines(data) if is_begin(line) or is_end(line))


def includes(root: str, bootdir: str, name: str, seen: set[str] | None = None) -> list[str]:
    """Files (paths on the Pi) that config.txt file NAME includes, recursively, in order."""
    seen = seen if seen is not None else {name}
    try:
        with open(root + name, "rb") as f:
            data = f.read()
    except OSError:
        return []
    found: list[str] = []
    for line in split_lines(data):
        m = _INCLUDE_RE.match(line)
        if not m:
            continue
        inc = m.group(1).decode(errors="replace")
        path = inc if inc.startswith("/") else os.path.join(bootdir, inc)
        if path in seen:
            continue
        seen.add(path)
        found.append(path)
        found += includes(root, bootdir, path, seen)
    return found


# -- cmdline.txt -------------------------------------------------------------------------
def is_dmx_console(token: bytes, pi5: bool) -> bool:
    """A console (or kgdb) on the DMX UART: ttyAMA0 always, serial0 except on a Pi 5 (where
    serial0 is the separate debug connector)."""
    key, _, value = token.partition(b"=")
    if key not in (b"console", b"kgdboc") or not value:
        return False
    dev = value.split(b",")[0]
    return dev == b"ttyAMA0" or (dev == b"serial0" and not pi5)


def cmdline_remove(data: bytes, pi5: bool) -> tuple[bytes, list[bytes], list[str]]:
    """DATA without DMX consoles on its first line (the one the firmware passes to the
    kernel): (new data, removed tokens, notes)."""
    first, sep, rest = data.partition(b"\n")
    cr = first.endswith(b"\r")
    line = first[:-1] if cr else first
    removed: list[bytes] = []
    out = b""
    pos = 0
    kept_before = False
    tokens = list(re.finditer(rb"\S+", line))
    for i, m in enumerate(tokens):
        if not is_dmx_console(m.group(), pi5):
            kept_before = True
            continue
        removed.append(m.group())
        if kept_before:              # the blanks before it go with it
            out += line[pos:tokens[i - 1].end()]
            pos = m.end()
        else:                        # nothing kept before it: the blanks after it go
            out += line[pos:m.start()]
            pos = tokens[i + 1].start() if i + 1 < len(tokens) else m.end()
    out += line[pos:]
    notes: list[str] = []
    if rest.strip():
        notes.append("more-lines")
    return out + (b"\r" if cr else b"") + sep + rest, removed, notes


def cmdline_restore(data: bytes, tokens: list[bytes]) -> bytes:
    """DATA with TOKENS put back at the front of its first line (those not there already)."""
    first, sep, rest = data.partition(b"\n")
    add = [t for t in tokens if t not in set(first.split())]
    if not add:
        return data
    cr = first.endswith(b"\r")
    line = first[:-1] if cr else first
    body = line.lstrip(b" \t")
    new = line[:len(line) - len(body)] + b" ".join(add) + (b" " + body if body else b"")
    return new + (b"\r" if cr else b"") + sep + rest


# -- command line ------------------------------------------------------------------------
def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bootfiles.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("block-set")
    p.add_argument("file")
    p.add_argument("body")
    p.add_argument("out")
    p.add_argument("--known", action="append", default=[])
    p.add_argument("--name")
    p = sub.add_parser("block-strip")
    p.add_argument("file")
    p.add_argument("out")
    p.add_argument("--known", action="append", default=[])
    p.add_argument("--drop-added-eol", action="store_true")
    p.add_argument("--name")
    p = sub.add_parser("block-count")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("includes")
    p.add_argument("root")
    p.add_argument("bootdir")
    p.add_argument("file")
    p = sub.add_parser("cmdline-remove")
    p.add_argument("file")
    p.add_argument("out")
    p.add_argument("--pi5", action="store_true")
    p = sub.add_parser("cmdline-restore")
    p.add_argument("file")
    p.add_argument("out")
    p.add_argument("tokens", nargs="*")
    a = ap.parse_args(argv)
    stdout = sys.stdout
    try:
        if a.cmd == "block-set":
            known = [_read(k) for k in a.known if os.path.isfile(k)]
            data = _read(a.file) if os.path.exists(a.file) else b""
            new, notes = block_set(data, _read(a.body), known, a.name or a.file)
            _write(a.out, new)
            stdout.write("".join(n + "\n" for n in notes))
        elif a.cmd == "block-strip":
            known = [_read(k) for k in a.known if os.path.isfile(k)]
            new, notes = block_strip(_read(a.file), known, a.name or a.file, a.drop_added_eol)
            _write(a.out, new)
            stdout.write("".join(n + "\n" for n in notes))
        elif a.cmd == "block-count":
            for f in a.files:
                stdout.write(f"{count_blocks_loose(_read(f)) if os.path.isfile(f) else 0}\n")
        elif a.cmd == "includes":
            stdout.write("".join(p + "\n" for p in includes(a.root, a.bootdir, a.file)))
        elif a.cmd == "cmdline-remove":
            new, removed, notes = cmdline_remove(_read(a.file), a.pi5)
            _write(a.out, new)
            stdout.write("".join("removed " + t.decode(errors="replace") + "\n" for t in removed))
            stdout.write("".join(n + "\n" for n in notes))
        elif a.cmd == "cmdline-restore":
            _write(a.out, cmdline_restore(_read(a.file), [t.encode() for t in a.tokens]))
    except Refused as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"{exc.filename or getattr(a, 'file', '')}: {exc.strerror}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
