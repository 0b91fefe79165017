"""`setup-pi.sh --read-only` on fake Raspberry Pi roots: the files it writes (cmdline.txt's
overlayroot, the state image and its fstab line, the unit's drop-in), its undo, and a set-up
killed (SIGKILL, as a power cut) at random moments then run again: the same Pi as one clean
run, and --uninstall still puts every file back byte for byte."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import numpy as np
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


def _run_killed(root, default_toml, after_s: float) -> None:
    proc = subprocess.Popen(["bash", str(SCRIPT), "--root", str(root), "--read-only",
                             "--default-config", str(default_toml)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    time.sleep(after_s)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)             # the script and whatever it runs
    proc.wait(10)


@pytest.mark.slow
def test_a_set_up_killed_at_any_moment_finishes_on_a_second_run(tmp_path, default_toml):
    clean = pi(tmp_path, "clean")
    original = tree(clean)
    t0 = time.monotonic()
    run(clean, "--read-only", "--default-config", str(default_toml))
    took = time.monotonic() - t0
    want = without(tree(clean), IMAGE)        # mke2fs stamps each image with its own UUID
    rng = np.random.default_rng(6)
    for k, frac in enumerate(sorted(rng.uniform(0.05, 0.95, 3))):
        root = pi(tmp_path, f"killed-{k}")
        _run_killed(root, default_toml, frac * took)
        out = run(root, "--read-only", "--default-config", str(default_toml)).stdout
        got = tree(root)
        assert without(got, IMAGE) == want, (frac, out)
        assert not [p for p in got if "latentdmx-tmp" in p]
        assert got[IMAGE].startswith("file")
        run(root, "--read-only", "--uninstall")
        run(root, "--uninstall")
        assert without(tree(root), "run", IMAGE, "var", "etc/latentdmx") == \
            without(original, "run", "var")
