"""`setup-pi.sh --read-only` on fake Raspberry Pi roots: the files it writes (cmdline.txt's
overlayroot, the state image and its fstab line, the unit's drop-in), its undo, and a set-up
killed (SIGKILL, as a power cut) at random moments then run again: the same Pi as one clean
run, and --uninstall still puts every file back byte for byte."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from test_setup_pi import SCRIPT, make_pi_root, run, tree

FSTAB = "proc /proc proc defaults 0 0\nPARTUUID=4e639091-01 /boot/firmware vfat defaults 0 2\n"
IMAGE = "boot/firmware/latentdmx-state.img"
LINE = ("/boot/firmware/latentdmx-state.img /var/lib/latentdmx/state ext4 "
        "loop,noatime,nofail,x-systemd.requires-mounts-for=/boot/firmware 0 0\n")


@pytest.fixture
def default_toml(tmp_path):
    path = tmp_path / "default.toml"
    path.write_text('schema = 1\nfps = 40\n\n[output]\nkind = "sim"\n')
    return path


def pi(tmp_path, name="pi"):
    root = make_pi_root(tmp_path / name, "bookworm-pi4")
    (root / "etc" / "fstab").write_text(FSTAB)
    presets = root / "var/lib/latentdmx/state/presets"
    presets.mkdir(parents=True)
    (presets / "dusk.json").write_text('{"schema": 1, "name": "dusk"}\n')
    return root


def without(t: dict, *skip: str) -> dict:
    return {k: v for k, v in t.items() if not any(k == s or k.startswith(s + "/") for s in skip)}


@pytest.mark.slow
def test_read_only_writes_the_overlay_the_image_and_undoes_them(tmp_path, default_toml):
    root = pi(tmp_path)
    before = tree(root)
    out = run(root, "--read-only", "--default-config", str(default_toml)).stdout
    assert "apt-get install -y --no-install-recommends overlayroot" in out
    cmdline = (root / "boot/firmware/cmdline.txt").read_text()
    assert cmdline.startswith("overlayroot=tmpfs:recurse=0 console=tty1 root=")
    assert cmdline.count("\n") == 1
    assert (root / "etc/fstab").read_text() == FSTAB + LINE
    dropin = (root / "etc/systemd/system/latentdmx.service.d/read-only.conf").read_text()
    assert "RequiresMountsFor=/var/lib/latentdmx/state" in dropin
    assert (root / IMAGE).stat().st_size == 64 << 20
    if shutil.which("debugfs"):                 # the state went into the image
        ls = subprocess.run(["debugfs", "-R", "cat /presets/dusk.json", str(root / IMAGE)],
                            capture_output=True, text=True, check=True).stdout
        assert ls == '{"schema": 1, "name": "dusk"}\n'
    assert "reboot needed" in out and "lost at" in out
    assert "nothing to change" in run(root, "--read-only", "--default-config",
                                      str(default_toml)).stdout

    refused = run(root, "--uninstall", check=False)       # the overlay first
    assert refused.returncode == 2 and "--read-only --uninstall" in refused.stderr
    run(root, "--read-only", "--uninstall")
    assert not (root / "boot/firmware/cmdline.txt").read_text().startswith("overlayroot")
    assert (root / "etc/fstab").read_text() == FSTAB + LINE    # the state stays on its image
    run(root, "--uninstall")
    after = tree(root)
    assert without(after, "run", IMAGE, "var", "etc/latentdmx") == without(before, "run", "var")
    assert (root / "var/lib/latentdmx/state/presets/dusk.json").exists()    # the user's
    assert IMAGE in after and "etc/latentdmx/config.toml" in after   # kept: --purge


# Kills the set-up at its Nth write (the shell's DEBUG trap, inherited by functions: set -T):
# the moment a new file's bytes are flushed but not yet renamed over the old one, or the
# moment just after. KILL_AT=0 only counts them.
# The count is the log's length, not a shell variable: a write in a pipeline's subshell counts.
_TRAP = r"""set -T
trap 'case $BASH_COMMAND in "mv -f"*|"sync --"*)
  echo w >> "$KILL_LOG"
  if [ "$(wc -l < "$KILL_LOG")" = "$KILL_AT" ]; then kill -9 -- -$$ 2>/dev/null; kill -9 $$; fi;;
  esac' DEBUG
"""


def _run_killed(root, default_toml, tmp_path, at: int) -> int:
    """Run the set-up, killed (SIGKILL to it and whatever it runs) at its write `at`
    (0: not killed); returns how many writes it reached."""
    trap, log = tmp_path / "kill-trap.sh", tmp_path / "kill-log"
    trap.write_text(_TRAP)
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    env.update(BASH_ENV=str(trap), KILL_LOG=str(log), KILL_AT=str(at))
    proc = subprocess.Popen(["bash", str(SCRIPT), "--root", str(root), "--read-only",
                             "--default-config", str(default_toml)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    proc.wait(60)
    return len(log.read_text().split()) if log.exists() else 0


@pytest.mark.slow
def test_a_set_up_killed_at_any_write_finishes_on_a_second_run(tmp_path, default_toml):
    """Killed as a power cut would, at every third write it makes (mostly a file's new bytes
    written but not yet renamed over the old one), then run again: the same Pi as one
    clean run, no temp file left, and --uninstall still puts every file back."""
    clean = pi(tmp_path, "clean")
    original = tree(clean)
    writes = _run_killed(clean, default_toml, tmp_path, 0)
    assert writes >= 20, writes                       # the trap sees the writes
    want = without(tree(clean), IMAGE)        # mke2fs stamps each image with its own UUID
    for at in range(1, writes + 1, 3):
        root = pi(tmp_path, f"killed-{at}")
        assert _run_killed(root, default_toml, tmp_path, at) == at
        out = run(root, "--read-only", "--default-config", str(default_toml)).stdout
        got = tree(root)
        assert without(got, IMAGE) == want, (at, out)
        assert not [p for p in got if "latentdmx-tmp" in p], at
        assert got[IMAGE].startswith("file")
        if at % 4 == 1:                       # the undo, from a few of them
            run(root, "--read-only", "--uninstall")
            run(root, "--uninstall")
            assert without(tree(root), "run", IMAGE, "var", "etc/latentdmx") == \
                without(original, "run", "var")
