"""scripts/bootfiles.py, the byte-exact boot-file editor behind setup-pi.sh: properties over
random files (any bytes, CRLF or LF, with or without a final newline, stray marker lines)
and the cases the set-up corpus (tests/test_setup_pi_layouts.py) runs end to end."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bootfiles", REPO / "scripts" / "bootfiles.py")
assert _spec and _spec.loader
bf = importlib.util.module_from_spec(_spec)
sys.modules["bootfiles"] = bf
_spec.loader.exec_module(bf)

BODY = b"[all]\nenable_uart=1\n[pi4]\ndtoverlay=disable-bt\n[all]\n"

# a config.txt line: settings, comments, sections, blanks (no line breaks inside)
line_text = st.one_of(
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")),
    st.sampled_from([b"[all]", b"[pi4]", b"[none]", b"# comment", b"", b"  ", b"gpu_mem=128",
                     b"include extra.txt", b"dtoverlay=vc4-kms-v3d"]),
)


@st.composite
def user_file(draw, markers: bool = False) -> bytes:
    """Bytes of a user's config.txt: random lines, one line ending style or mixed, maybe no
    final newline; with MARKERS, stray begin/end marker lines in any case."""
    pool = line_text
    if markers:
        pool = st.one_of(line_text, st.sampled_from([
            bf.MARK_BEGIN, bf.MARK_END, bf.MARK_BEGIN.upper(), b"#<<< LatentDMX <<<"]))
    lines = draw(st.lists(pool, max_size=12))
    eol = draw(st.sampled_from([b"\n", b"\r\n", None]))
    out = b""
    for text in lines:
        out += text + (eol if eol else draw(st.sampled_from([b"\n", b"\r\n"])))
    if out and draw(st.booleans()):
        out = out[:-2] if out.endswith(b"\r\n") else out[:-1]
    return out


def _no_markers(data: bytes) -> bool:
    return bf.count_blocks_loose(data) == 0


@given(user_file())
def test_set_then_strip_gives_back_every_byte(data):
    assume(_no_markers(data))
    new, notes = bf.block_set(data, BODY, [], "config.txt")
    assert new.startswith(data)                               # appended, nothing touched
    back, _ = bf.block_strip(new, [BODY], "config.txt", drop_added_eol="added-eol" in notes)
    assert back == data


@given(user_file())
def test_set_is_idempotent_and_in_the_files_line_ending(data):
    assume(_no_markers(data))
    once, _ = bf.block_set(data, BODY, [], "config.txt")
    twice, notes = bf.block_set(once, BODY, [], "config.txt")
    assert twice == once and notes == []
    block = once[len(data):]
    outside = bf.split_lines(data)
    if bf.eol_of(outside or [b"\n"]) == b"\r\n":
        assert block.count(b"\r\n") == block.count(b"\n")
    else:
        assert b"\r" not in block.replace(b"\r\n", b"") and b"\r\n" not in block


@given(user_file(markers=True))
def test_stray_markers_are_refused_or_every_other_line_kept(data):
    """Whatever markers a file has: either the edit is refused, or each line outside the
    block(s) found is in the result, in order, and the result has exactly one whole block."""
    lines = bf.split_lines(data)
    try:
        blocks = bf.find_blocks(lines, [BODY], "config.txt")
        new, _ = bf.block_set(data, BODY, [], "config.txt")
    except bf.Refused as exc:
        assert re.match(r"config\.txt: line \d+: ", str(exc)), exc
        return
    kept = [x.rstrip(b"\r\n") for i, x in enumerate(lines)
            if not any(a <= i < b for a, b in blocks)]
    new_lines = [x.rstrip(b"\r\n") for x in bf.split_lines(new)]
    begins = [i for i, x in enumerate(new_lines) if bf.is_begin(x)]
    ends = [i for i, x in enumerate(new_lines) if bf.is_end(x)]
    assert len(begins) == len(ends) == 1 and begins[0] < ends[0]
    assert new_lines[:begins[0]] + new_lines[ends[0] + 1:] == kept


def test_the_issue_case_begin_without_end_is_refused_not_truncated():
    data = b"dtparam=audio=on\n" + bf.MARK_BEGIN + b"\nenable_uart=1\nmy_precious=1\n"
    with pytest.raises(bf.Refused, match=r"^x: line 2: the latentdmx begin marker has no end"):
        bf.block_set(data, BODY, [], "x")
    with pytest.raises(bf.Refused):
        bf.block_strip(data, [BODY], "x")


def test_missing_end_marker_of_a_known_block_is_repaired():
    whole, _ = bf.block_set(b"a=1\n", BODY, [], "x")
    broken = whole.replace(bf.MARK_END + b"\n", b"") + b"b=2\n"
    new, notes = bf.block_set(broken, BODY, [], "x")
    assert new == whole + b"b=2\n" and "repaired" in notes
    back, _ = bf.block_strip(broken, [BODY], "x")
    assert back == b"a=1\nb=2\n"


def test_edited_block_is_reported():
    whole, _ = bf.block_set(b"", BODY, [], "x")
    edited = whole.replace(b"enable_uart=1", b"enable_uart=0")
    new, notes = bf.block_set(edited, BODY, [], "x")
    assert new == whole and notes == ["edited-block"]
    # ... unless it is a block this script wrote before (passed as known)
    old_body = BODY.replace(b"enable_uart=1", b"enable_uart=0")
    assert bf.block_set(edited, BODY, [old_body], "x")[1] == []


def test_strip_keeps_an_all_line_when_settings_follow_a_conditional_section():
    data = b"[pi4]\narm_boost=1\n"
    new, _ = bf.block_set(data, BODY, [], "x")
    back, notes = bf.block_strip(new + b"gpu_mem=256\n", [BODY], "x")
    assert back == data + b"[all]\ngpu_mem=256\n" and notes == ["kept-all"]
    back, notes = bf.block_strip(new + b"# only a comment\n", [BODY], "x")
    assert back == data + b"# only a comment\n" and notes == []


def test_includes_are_followed_relative_to_the_boot_folder(tmp_path):
    fw = tmp_path / "boot/firmware"
    fw.mkdir(parents=True)
    (fw / "config.txt").write_text("include a.txt\n  include  sub/b.txt\ninclude a.txt\n")
    (fw / "a.txt").write_text("include config.txt\n")         # a loop is followed once
    (fw / "sub").mkdir()
    (fw / "sub/b.txt").write_text("x=1\n")
    assert bf.includes(str(tmp_path), "/boot/firmware", "/boot/firmware/config.txt") == [
        "/boot/firmware/a.txt", "/boot/firmware/sub/b.txt"]


# -- cmdline.txt --------------------------------------------------------------------------------
token = st.one_of(
    st.sampled_from([b"console=serial0,115200", b"console=ttyAMA0,115200", b"console=tty1",
                     b"kgdboc=ttyAMA0,115200", b"console=ttyAMA10,115200", b"root=/dev/sda2",
                     b"quiet", b"console=serial0", b"console="]),
    st.binary(min_size=1, max_size=8).filter(lambda b: not re.search(rb"[\s]", b)),
)
blanks = st.sampled_from([b" ", b"  ", b"\t", b" \t "])


@st.composite
def cmdline_file(draw) -> bytes:
    tokens = draw(st.lists(token, max_size=8))
    line = draw(st.sampled_from([b"", b" "]))
    for i, t in enumerate(tokens):
        line += (draw(blanks) if i else b"") + t
    line += draw(st.sampled_from([b"", b" "]))
    tail = draw(st.sampled_from([b"\n", b"\r\n", b"", b"\nsecond line\n", b"\n\n", b"\nx"]))
    return line + tail


@given(cmdline_file(), st.booleans())
def test_cmdline_only_dmx_consoles_leave_the_first_line(data, pi5):
    new, removed, _ = bf.cmdline_remove(data, pi5)
    first, sep, rest = data.partition(b"\n")
    new_first, new_sep, new_rest = new.partition(b"\n")
    assert (new_sep, new_rest) == (sep, rest)                 # every other line, byte for byte
    want = [t for t in first.split() if not bf.is_dmx_console(t, pi5)]
    assert new_first.split() == want
    assert removed == [t for t in first.split() if bf.is_dmx_console(t, pi5)]
    assert first.endswith(b"\r") == new_first.endswith(b"\r")
    if not removed:
        assert new == data
    # put back: the same parameters again (the removed ones in front)
    back = bf.cmdline_restore(new, removed)
    assert sorted(back.partition(b"\n")[0].split()) == sorted(first.split()) or \
        len(set(removed)) < len(removed)
    assert back.partition(b"\n")[1:] == (sep, rest)


def test_cmdline_pi5_keeps_the_debug_console():
    data = b"console=serial0,115200 console=ttyAMA0,115200 console=tty1 root=x\n"
    assert bf.cmdline_remove(data, pi5=True)[0] == b"console=serial0,115200 console=tty1 root=x\n"
    assert bf.cmdline_remove(data, pi5=False)[0] == b"console=tty1 root=x\n"


def test_command_line_refusal_is_one_line_and_exit_2(tmp_path, capsys):
    f = tmp_path / "config.txt"
    f.write_bytes(bf.MARK_BEGIN + b"\nmine=1\n")
    body = tmp_path / "body"
    body.write_bytes(BODY)
    out = tmp_path / "out"
    assert bf.main(["block-set", str(f), str(body), str(out), "--name", "/boot/config.txt"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("/boot/config.txt: line 1: ")
    assert not out.exists()
