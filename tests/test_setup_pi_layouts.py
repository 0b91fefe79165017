"""scripts/setup-pi.sh on a corpus of odd boot layouts: not a byte of user content lost.

Each layout is a real Raspberry Pi OS root (tests/test_setup_pi.py's fake roots, `--root`)
bent the way real users bend them: CRLF line endings, no final newline, damaged, doubled or
re-cased markers, include files, conditional sections, read-only files and file systems,
symlinks (to /boot/firmware and beside it), missing files, several consoles, a second line in
cmdline.txt, a second run after a hand edit. For every layout that the script can handle:

* after the set-up, each boot file is its original bytes plus exactly the script's own change
  (one managed block; the DMX consoles gone from cmdline.txt's first line);
* a symlink is still the same symlink, a file keeps its mode;
* a backup of every edited file, byte for byte as it was, is kept;
* a second run changes nothing;
* `--uninstall` says what it restored and puts every boot file back byte for byte, and
  `--uninstall --purge` leaves the whole tree as it was before the set-up.

Layouts the script cannot handle safely (where a block ends is unknown, a read-only boot
partition, blocks in two files) are refused: exit 2, one line naming the file and the fix, and
nothing changed. These tests run the script only (no Python helper imported), so they can run
against any version of it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_setup_pi import BOOKWORM_CMDLINE, BOOKWORM_CONFIG, SCRIPT, make_pi_root, run, tree

BEGIN = (b"# >>> latentdmx: DMX512 on the PL011 UART (managed by setup-pi.sh, remove with "
         b"--uninstall) >>>")
END = b"# <<< latentdmx <<<"
FW = "boot/firmware"
STATE = "var/lib/latentdmx/setup"


@pytest.fixture
def default_toml(tmp_path) -> Path:
    path = tmp_path / "default.toml"
    path.write_text('schema = 1\nfps = 40\n\n[output]\nkind = "sim"\n')
    return path


def split_block(data: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(before, block lines with their endings, after) around the one exact managed block."""
    lines = data.splitlines(keepends=True)
    starts = [i for i, x in enumerate(lines) if x.rstrip(b"\r\n") == BEGIN]
    ends = [i for i, x in enumerate(lines) if x.rstrip(b"\r\n") == END]
    assert len(starts) == 1 and len(ends) == 1, f"want one block, got {data!r}"
    a, b = starts[0], ends[0] + 1
    return b"".join(lines[:a]), lines[a:b], b"".join(lines[b:])


def boot_tree(root: Path) -> dict[str, str]:
    return {k: v for k, v in tree(root).items() if k.startswith("boot")}


def pi_root(tmp_path: Path, config: bytes | None = BOOKWORM_CONFIG.encode(),
            cmdline: bytes | None = BOOKWORM_CMDLINE.encode()) -> Path:
    root = make_pi_root(tmp_path, "bookworm-pi4")
    for name, data in (("config.txt", config), ("cmdline.txt", cmdline)):
        path = root / FW / name
        if data is None:
            path.unlink()
        else:
            path.write_bytes(data)
    return root


# -- the corpus: layouts the script handles ----------------------------------------------------
@dataclass
class Layout:
    name: str
    prepare: Callable[[Path], None]       # bends a fresh bookworm Pi 4 root
    block_in: str = f"{FW}/config.txt"    # the file (as named) that must get the block
    user_config: Callable[[bytes], bytes] = lambda b: b   # its user part after the set-up
    eol: bytes = b"\n"                    # the block's line ending
    cmdline: bytes | None = b"console=tty1 " + BOOKWORM_CMDLINE.encode().split(b" ", 2)[2]
    cmdline_in: str = f"{FW}/cmdline.txt"
    named: str = "/boot/firmware"         # the boot folder as the script names it


def _write(rel: str, data: bytes) -> Callable[[Path], None]:
    def prepare(root: Path) -> None:
        (root / rel).write_bytes(data)
    return prepare


def _both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def prepare(root: Path) -> None:
        for step in steps:
            step(root)
    return prepare


CRLF_CONFIG = BOOKWORM_CONFIG.replace("\n", "\r\n").encode()
OUR_BODY = [  # the block the script writes on a current Pi 4 image, between its markers
    b"# DMX leaves on GPIO14 (TX, pin 8) as /dev/ttyAMA0, the PL011 UART at 250 kbaud.",
    b"[all]", b"enable_uart=1",
    b"# Zero W, Zero 2 W, 3 and 4: the PL011 serves Bluetooth; give it to GPIO14/15.",
    b"[pi0w]", b"dtoverlay=disable-bt", b"[pi02]", b"dtoverlay=disable-bt",
    b"[pi3]", b"dtoverlay=disable-bt", b"[pi4]", b"dtoverlay=disable-bt",
    b"# Pi 5: GPIO14/15 is RP1's UART0 (/dev/ttyAMA0), off by default. Bluetooth has its own",
    b"# UART and serial0 is the debug connector (ttyAMA10), so nothing else moves.",
    b"[pi5]", b"dtparam=uart0=on", b"[all]",
]


def _block(begin: bytes = BEGIN, end: bytes = END, eol: bytes = b"\n") -> bytes:
    return b"".join(x + eol for x in [begin, *OUR_BODY, end])


def _symlinked_config(root: Path) -> None:            # the case: config.txt -> a file
    fw = root / FW
    (fw / "config-stage.txt").write_text(BOOKWORM_CONFIG)
    (fw / "config.txt").unlink()
    (fw / "config.txt").symlink_to("config-stage.txt")


def _boot_links_to_firmware(root: Path) -> None:      # the stub replaced by links into firmware/
    for name in ("config.txt", "cmdline.txt"):
        (root / "boot" / name).unlink(missing_ok=True)
        (root / "boot" / name).symlink_to(f"/boot/firmware/{name}")   # absolute, as users do


def _firmware_dir_is_a_link(root: Path) -> None:      # bullseye with a /boot/firmware -> /boot
    fw = root / FW
    for name in ("config.txt", "cmdline.txt"):
        shutil.move(fw / name, root / "boot" / name)
    shutil.move(fw / "overlays", root / "boot" / "overlays")
    fw.rmdir()
    fw.symlink_to("/boot")


def _read_only_file(root: Path) -> None:
    for name in ("config.txt", "cmdline.txt"):
        (root / FW / name).chmod(0o444)


def _include_with_block(root: Path) -> None:          # the block moved into an included file
    (root / FW / "config.txt").write_text(BOOKWORM_CONFIG + "include dmx.txt\n")
    (root / FW / "dmx.txt").write_bytes(b"# my DMX bits\n" + _block() + b"# after\n")


def _include_without_block(root: Path) -> None:
    (root / FW / "config.txt").write_text("include extra.txt\ndtparam=audio=on\n")
    (root / FW / "extra.txt").write_text("[pi4]\ngpu_mem=256\n")


LAYOUTS = [
    Layout("crlf", _both(_write(f"{FW}/config.txt", CRLF_CONFIG),
                         _write(f"{FW}/cmdline.txt", BOOKWORM_CMDLINE.replace("\n", "\r\n")
                                .encode())),
           eol=b"\r\n",
           cmdline=b"console=tty1 " + BOOKWORM_CMDLINE.replace("\n", "\r\n").encode()
           .split(b" ", 2)[2]),
    Layout("no-final-newline",
           _both(_write(f"{FW}/config.txt", BOOKWORM_CONFIG.rstrip("\n").encode()),
                 _write(f"{FW}/cmdline.txt", BOOKWORM_CMDLINE.rstrip("\n").encode())),
           user_config=lambda b: b + b"\n",
           cmdline=b"console=tty1 " + BOOKWORM_CMDLINE.rstrip("\n").encode().split(b" ", 2)[2]),
    Layout("empty-config", _write(f"{FW}/config.txt", b"")),
    Layout("symlinked-config", _symlinked_config),
    Layout("boot-files-symlinked-to-firmware", _boot_links_to_firmware),
    Layout("firmware-dir-symlinked-to-boot", _firmware_dir_is_a_link,
           block_in="boot/config.txt", cmdline_in="boot/cmdline.txt"),
    Layout("read-only-mode-files", _read_only_file),
    Layout("include-without-block", _include_without_block),
    Layout("sections-end-in-pi4",
           _write(f"{FW}/config.txt", b"dtparam=audio=on\n[pi4]\narm_boost=1\n")),
    Layout("cmdline-several-consoles",
           _write(f"{FW}/cmdline.txt", b"console=serial0,115200  console=tty1\t"
                  b"console=ttyAMA0,115200 kgdboc=ttyAMA0,115200   root=PARTUUID=4e639091-02"
                  b"  quiet\n"),
           cmdline=b"console=tty1   root=PARTUUID=4e639091-02  quiet\n"),
    Layout("cmdline-two-lines",                 # the case: the second line was lost
           _write(f"{FW}/cmdline.txt", BOOKWORM_CMDLINE.encode() + b"# notes: rootwait is\n"),
           cmdline=b"console=tty1 " + BOOKWORM_CMDLINE.encode().split(b" ", 2)[2]
           + b"# notes: rootwait is\n"),
    Layout("cmdline-only-the-console", _write(f"{FW}/cmdline.txt", b"console=serial0,115200\n"),
           cmdline=b"\n"),
]


def _files_behind(root: Path, rel: str) -> bytes:
    return (root / rel).read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.name)
def test_layout_round_trip(tmp_path, layout: Layout, default_toml):
    root = pi_root(tmp_path)
    layout.prepare(root)
    before = tree(root)
    before_boot = boot_tree(root)
    original = {"config": (root / layout.block_in).read_bytes(),
                "cmdline": (root / layout.cmdline_in).read_bytes()}

    out = run(root, "--default-config", str(default_toml)).stdout
    # the block file: its original bytes plus one block, in its own line ending
    head, block, tail = split_block((root / layout.block_in).read_bytes())
    assert head + tail == layout.user_config(original["config"])
    assert all(line.endswith(layout.eol) for line in block), block
    assert [x.rstrip(b"\r\n") for x in block[1:-1]] == OUR_BODY
    assert (root / layout.cmdline_in).read_bytes() == layout.cmdline
    # symlinks are still the same symlinks, every boot file keeps its mode
    after = tree(root)
    for rel, desc in before_boot.items():
        if desc.startswith("link"):
            assert after[rel] == desc, rel
        elif desc.startswith("file") and rel in after:
            assert after[rel].split()[1] == desc.split()[1], rel
    # a backup of each edited boot file, byte for byte as it was
    for key in ("config", "cmdline"):
        backup = root / STATE / "backup" / f"{layout.named}/{key}.txt".lstrip("/")
        assert backup.read_bytes() == original[key], f"no backup of {key}.txt: {out}"

    again = run(root, "--default-config", str(default_toml))
    assert "nothing to change" in again.stdout, again.stdout
    assert tree(root) == after

    out = run(root, "--uninstall").stdout
    config_named = f"{layout.named}/{Path(layout.block_in).name}"
    assert f"restored  {config_named}" in out, out
    assert f"restored  {layout.named}/cmdline.txt" in out, out
    assert boot_tree(root) == before_boot
    run(root, "--uninstall", "--purge")
    assert tree(root, skip=("run",)) == before


@pytest.mark.slow
def test_missing_config_txt_is_made_and_removed_again(tmp_path, default_toml):
    root = pi_root(tmp_path, config=None)
    before = tree(root)
    out = run(root, "--default-config", str(default_toml)).stdout
    head, _, tail = split_block((root / FW / "config.txt").read_bytes())
    assert head == tail == b""
    assert (root / STATE / "backup" / FW / "config.txt.absent").exists(), out
    out = run(root, "--uninstall", "--purge").stdout
    assert "there was no /boot/firmware/config.txt before the set-up" in out
    assert tree(root, skip=("run",)) == before


@pytest.mark.slow
def test_missing_cmdline_txt_is_a_warning(tmp_path, default_toml):
    root = pi_root(tmp_path, cmdline=None)
    before = tree(root)
    out = run(root, "--default-config", str(default_toml)).stdout
    assert "warning   no /boot/firmware/cmdline.txt; skipping the serial console" in out
    assert not (root / FW / "cmdline.txt").exists()
    run(root, "--uninstall", "--purge")
    assert tree(root, skip=("run",)) == before


@pytest.mark.slow
def test_block_in_an_included_file_is_managed_there(tmp_path, default_toml):
    root = pi_root(tmp_path)
    _include_with_block(root)
    config = (root / FW / "config.txt").read_bytes()
    included = (root / FW / "dmx.txt").read_bytes()
    run(root, "--default-config", str(default_toml))
    assert (root / FW / "config.txt").read_bytes() == config           # no second block
    assert (root / FW / "dmx.txt").read_bytes() == included            # already as wanted
    out = run(root, "--uninstall").stdout
    head, _, tail = split_block(included)
    assert (root / FW / "dmx.txt").read_bytes() == head + tail, out   # only the block left
    assert (root / FW / "config.txt").read_bytes() == config


@pytest.mark.slow
def test_miniuart_bt_in_an_included_file_is_warned_about(tmp_path, default_toml):
    root = pi_root(tmp_path)
    _include_without_block(root)
    (root / FW / "extra.txt").write_text("dtoverlay=miniuart-bt\n")
    out = run(root, "--default-config", str(default_toml)).stdout
    assert "/boot/firmware/extra.txt has dtoverlay=miniuart-bt" in out


# -- damaged, doubled and re-cased markers -----------------------------------------------------
USER_AFTER = b"# my own settings, after the block\ndtparam=i2c_arm=on\nhdmi_force_hotplug=1\n"


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["no-end", "no-begin", "two-blocks", "other-case",
                                    "trailing-blanks"])
def test_damaged_markers_around_our_block_are_repaired(tmp_path, damage, default_toml):
    """Markers a user (or an editor) broke around an intact block: the block's extent is
    known from its lines, so it is made whole again and every user line stays."""
    block = _block()
    if damage == "no-end":
        block = block.replace(END + b"\n", b"")
    elif damage == "no-begin":
        block = block.replace(BEGIN + b"\n", b"")
    elif damage == "two-blocks":
        block = block + b"# between the blocks\n" + _block()
    elif damage == "other-case":
        block = _block(begin=BEGIN.upper(), end=b"#<<< LatentDMX <<<")
    elif damage == "trailing-blanks":
        block = _block(begin=BEGIN + b"  ", end=END + b" \t")
    user_before = BOOKWORM_CONFIG.encode()
    root = pi_root(tmp_path, config=user_before + block + USER_AFTER)
    out = run(root, "--default-config", str(default_toml)).stdout
    head, new_block, tail = split_block((root / FW / "config.txt").read_bytes())
    assert [x.rstrip(b"\n") for x in new_block[1:-1]] == OUR_BODY
    kept_between = b"# between the blocks\n" if damage == "two-blocks" else b""
    assert head == user_before and tail == kept_between + USER_AFTER, out
    if damage in ("no-end", "no-begin", "two-blocks"):
        assert "made whole again" in out
    # a second run finds one whole block and leaves it
    assert "nothing to change" in run(root, "--default-config", str(default_toml)).stdout


@pytest.mark.parametrize("damage, line", [("begin-only", 2), ("end-only", 4),
                                          ("nested", 2), ("block-edited-end-lost", 2)])
def test_markers_with_unknown_extent_are_refused_and_nothing_changes(tmp_path, damage, line,
                                                                      default_toml):
    """The issue's case: a begin marker without its end marker deleted everything after it.
    Where the block's extent is unknown the script stops before any change, naming the line
    and the fix."""
    text = {
        "begin-only": BEGIN + b"\nenable_uart=1\nmy_precious=1\ngpu_mem=128\n",
        "end-only": b"gpu_mem=128\nmy_precious=1\n" + END + b"\nhdmi_force_hotplug=1\n",
        "nested": BEGIN + b"\nenable_uart=1\n" + _block() + b"my_precious=1\n",
        "block-edited-end-lost": _block().replace(b"enable_uart=1", b"enable_uart=0")
                                         .replace(END + b"\n", b"") + b"my_precious=1\n",
    }[damage]
    root = pi_root(tmp_path, config=b"dtparam=audio=on\n" + text)
    before = tree(root)
    proc = run(root, "--default-config", str(default_toml), check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"setup-pi.sh: error: /boot/firmware/config.txt: line {line}: "), err
    assert "then run again; nothing was changed" in err
    assert tree(root) == before


def test_blocks_in_two_files_are_refused(tmp_path, default_toml):
    root = pi_root(tmp_path)
    _include_with_block(root)
    (root / FW / "config.txt").write_bytes((root / FW / "config.txt").read_bytes() + _block())
    before = tree(root)
    proc = run(root, "--default-config", str(default_toml), check=False)
    assert proc.returncode == 2 and "both have a latentdmx block" in proc.stderr
    assert tree(root) == before


def test_read_only_boot_partition_is_refused_before_any_change(tmp_path, default_toml):
    """A read-only mounted boot partition (a real read-only bind mount in a private mount
    namespace): one line with the remount fix, and nothing changed anywhere."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a read-only bind mount")
    root = pi_root(tmp_path)
    before = tree(root)
    boot = root / FW
    script = (f"mount --bind {boot} {boot} && mount -o remount,bind,ro {boot} && "
              f"exec bash {SCRIPT} --root {root} --default-config {default_toml}")
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", script],
                          capture_output=True, text=True, timeout=60, check=False)
    if "mount:" in proc.stderr:
        pytest.skip(f"cannot bind-mount here: {proc.stderr.strip()}")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "/boot/firmware/config.txt is read-only" in proc.stderr
    assert f"sudo mount -o remount,rw {boot}" in proc.stderr
    assert tree(root) == before


# -- a second run, or an uninstall, after hand edits --------------------------------------------
@pytest.mark.slow
def test_hand_edits_inside_the_block_are_saved_before_it_is_rewritten(tmp_path, default_toml):
    root = pi_root(tmp_path)
    run(root, "--default-config", str(default_toml))
    config = root / FW / "config.txt"
    edited = config.read_bytes().replace(b"enable_uart=1\n", b"enable_uart=0\nmy_line=1\n")
    config.write_bytes(edited)
    out = run(root, "--default-config", str(default_toml)).stdout
    assert "saved     /boot/firmware/config.txt as it was" in out, out
    saved = list((root / STATE / "saved" / FW).glob("config.txt.*"))
    assert len(saved) == 1 and saved[0].read_bytes() == edited
    _, block, _ = split_block(config.read_bytes())
    assert b"enable_uart=1\n" in block and b"my_line=1\n" not in block


@pytest.mark.slow
def test_end_marker_deleted_after_setup_then_lines_added(tmp_path, default_toml):
    """The user deletes the end marker and adds lines: the next run keeps them, and so does
    --uninstall (which then keeps the original in the backup and says so)."""
    root = pi_root(tmp_path)
    run(root, "--default-config", str(default_toml))
    config = root / FW / "config.txt"
    config.write_bytes(config.read_bytes().replace(END + b"\n", b"") + USER_AFTER)
    run(root, "--default-config", str(default_toml))
    head, _, tail = split_block(config.read_bytes())
    assert head == BOOKWORM_CONFIG.encode() and tail == USER_AFTER
    config.write_bytes(config.read_bytes().replace(END + b"\n", b""))   # and once more
    out = run(root, "--uninstall").stdout
    assert config.read_bytes() == BOOKWORM_CONFIG.encode() + USER_AFTER, out
    assert "kept      /var/lib/latentdmx/setup/backup: the originals of /boot/firmware/config.txt" \
        in out
    assert (root / STATE / "backup" / FW / "config.txt").read_bytes() == BOOKWORM_CONFIG.encode()


@pytest.mark.slow
def test_edit_between_two_runs_that_changed_the_block_survives_uninstall(tmp_path,
                                                                         default_toml):
    """Set-up, a hand edit, a second set-up that rewrites the block (here: the UART clock
    line added), then --uninstall: the hand edit stays; only the block goes."""
    root = pi_root(tmp_path)
    run(root, "--default-config", str(default_toml))
    config = root / FW / "config.txt"
    config.write_bytes(b"# mine, added after the set-up\n" + config.read_bytes())
    out = run(root, "--uart-clock", "yes", "--default-config", str(default_toml)).stdout
    assert b"init_uart_clock=16000000" in config.read_bytes(), out
    out = run(root, "--uninstall").stdout
    assert config.read_bytes() == b"# mine, added after the set-up\n" + BOOKWORM_CONFIG.encode()
    assert "the originals of /boot/firmware/config.txt" in out
    assert "restored  /boot/firmware/cmdline.txt" in out     # that one nobody touched


@pytest.mark.slow
def test_uninstall_keeps_lines_after_the_block_in_the_section_they_were_in(tmp_path,
                                                                            default_toml):
    """config.txt ended inside a [pi4] section; the user added a line after the block (whose
    last line is [all], so it applied to every Pi). Removing the block must not move that line
    into [pi4]: an [all] stays in its place."""
    original = b"dtparam=audio=on\n[pi4]\narm_boost=1\n"
    root = pi_root(tmp_path, config=original)
    run(root, "--default-config", str(default_toml))
    config = root / FW / "config.txt"
    config.write_bytes(config.read_bytes() + b"gpu_mem=256\n")
    out = run(root, "--uninstall").stdout
    assert config.read_bytes() == original + b"[all]\ngpu_mem=256\n", out
    assert "an [all] line stays where the block was" in out


@pytest.mark.slow
def test_console_added_back_by_hand_is_removed_again_and_uninstall_is_exact(tmp_path,
                                                                             default_toml):
    root = pi_root(tmp_path)
    run(root, "--default-config", str(default_toml))
    cmdline = root / FW / "cmdline.txt"
    cmdline.write_bytes(b"console=ttyAMA0,115200 " + cmdline.read_bytes())
    out = run(root, "--default-config", str(default_toml)).stdout
    assert "serial console console=ttyAMA0,115200 removed" in out
    assert not cmdline.read_bytes().startswith(b"console=ttyAMA0")
    run(root, "--uninstall")
    assert cmdline.read_bytes() == BOOKWORM_CMDLINE.encode()


@pytest.mark.slow
def test_cmdline_edited_after_setup_keeps_the_edit_and_gets_its_console_back(tmp_path,
                                                                              default_toml):
    original = BOOKWORM_CMDLINE.encode() + b"second line\n"
    root = pi_root(tmp_path, cmdline=original)
    run(root, "--default-config", str(default_toml))
    cmdline = root / FW / "cmdline.txt"
    cmdline.write_bytes(cmdline.read_bytes().replace(b" quiet", b" quiet  usbcore.autosuspend=-1"))
    out = run(root, "--uninstall").stdout
    assert cmdline.read_bytes() == original.replace(b" quiet",
                                                    b" quiet  usbcore.autosuspend=-1"), out
    assert "the originals of /boot/firmware/cmdline.txt" in out


# -- files the set-up replaces that are not its own ---------------------------------------------
@pytest.mark.slow
def test_someone_elses_latentdmx_command_comes_back(tmp_path, default_toml):
    root = pi_root(tmp_path)
    mine = root / "usr/local/bin/latentdmx"
    mine.write_text("#!/bin/sh\necho my wrapper\n")
    mine.chmod(0o755)
    before = tree(root)
    run(root, "--default-config", str(default_toml))
    assert mine.is_symlink()
    out = run(root, "--uninstall", "--purge").stdout
    assert "restored  /usr/local/bin/latentdmx" in out
    assert not mine.is_symlink() and mine.read_text() == "#!/bin/sh\necho my wrapper\n"
    assert stat.S_IMODE(mine.stat().st_mode) == 0o755
    assert tree(root, skip=("run",)) == before


@pytest.mark.slow
def test_a_linked_unit_comes_back_as_the_link(tmp_path, default_toml):
    root = pi_root(tmp_path)
    unit = root / "etc/systemd/system/latentdmx.service"
    unit.symlink_to("/home/pi/latentdmx/systemd/latentdmx.service")   # `systemctl link`
    before = tree(root)
    run(root, "--default-config", str(default_toml))
    assert not unit.is_symlink() and "Type=notify" in unit.read_text()
    run(root, "--uninstall", "--purge")
    assert tree(root, skip=("run",)) == before
