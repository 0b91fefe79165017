"""Power cuts and SD cards: what the daemon keeps in its state folder survives a cut at any
moment (each file is the old one or the new one, whole), and a playing show writes nothing
there unless asked. The preset store's own kill tests are in tests/test_presets.py."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from procs import env_for, latentdmx, public_dir, rig_text, run_cli, stop, wait_for

from pi_app.outputs.e131 import installation_cid
from pi_app.secrecy import TOKEN_FILE, web_token

REPO = Path(__file__).resolve().parents[1]


def test_an_empty_web_token_left_by_a_power_cut_is_replaced(tmp_path):
    """A cut after the token file got its name but before its bytes reached the card leaves
    it empty: the next start makes a new token (and keeps it), it does not fail."""
    (tmp_path / TOKEN_FILE).write_text("")
    token = web_token(tmp_path)
    assert len(token) >= 40
    assert web_token(tmp_path) == token
    assert (tmp_path / TOKEN_FILE).read_text().strip() == token


def test_an_empty_cid_left_by_a_power_cut_gives_a_new_kept_one(tmp_path):
    (tmp_path / "sacn-cid").write_text("")
    cid = installation_cid("", tmp_path)
    assert installation_cid("", tmp_path) == cid
    assert uuid.UUID((tmp_path / "sacn-cid").read_text().strip()) == cid


@pytest.mark.slow
def test_killed_while_making_its_files_the_state_folder_still_loads(tmp_path):
    """SIGKILL a process making the web token and the sACN CID (and saving presets) at random
    moments, again and again in the same folder: after every kill the folder loads - the
    token and CID read back whole, every preset loads - and no temp file is taken for one."""
    child = textwrap.dedent(f"""
        import sys, os
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from pi_app.outputs.e131 import installation_cid
        from pi_app.presets import Preset, PresetStore
        from pi_app.secrecy import web_token
        d = Path(sys.argv[1])
        store = PresetStore(d / "presets")
        print("go", flush=True)
        for n in range(10**6):
            for name in ("web-token", "sacn-cid"):
                (d / name).unlink(missing_ok=True)
            web_token(d)
            installation_cid("", d)
            store.save(Preset(f"p{{n % 3}}", "nat-aurora", n, 0.0, 1.0, 1.0))
    """)
    from pi_app.presets import PresetStore
    rng = np.random.default_rng(29)
    kills = 0
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", child, str(tmp_path)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "go"
        time.sleep(float(rng.uniform(0.0, 0.3)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        kills += 1
        token = web_token(tmp_path)                   # whole, or a new one: never an error
        assert len(token) >= 40
        cid = installation_cid("", tmp_path)
        assert installation_cid("", tmp_path) == cid
        store = PresetStore(tmp_path / "presets")
        for name in store.names():
            assert store.get(name).model == "nat-aurora"
        assert set(store.names()) <= {"p0", "p1", "p2"}
    assert kills == 8


def _snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(folder))] = (
                st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


@pytest.mark.slow
def test_a_playing_show_writes_nothing_to_its_state_folder(tmp_path):
    """The SD card's wear: a playing daemon (the service's state folder, presets) writes
    nothing there, frame after frame, until asked (a preset save writes that one preset). Its
    runtime folder (tmpfs on a Pi) keeps the same files: the socket and the last frames."""
    xdg, state = public_dir(), public_dir()
    xdg.chmod(0o700)
    cfg = tmp_path / "rig.toml"
    cfg.write_text(rig_text() + '\n[presets.dusk]\nmodel = "nat-aurora"\nseed = 3\n')
    env = env_for(xdg=xdg, STATE_DIRECTORY=str(state))
    proc = latentdmx("run", "--config", str(cfg), "--output", "sim", "--duration", "120",
                     env=env)
    try:
        wait_for((xdg / "latentdmx" / "control.sock").exists, 60, "the daemon's socket")

        def frames() -> int:
            res = run_cli("status", env=env)
            rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1)
                        for line in res.stdout.splitlines() if re.search(r"\S\s{2,}\S", line))
            value = rows.get("frames", "0").split()[0] if res.returncode == 0 else "0"
            return int(value) if value.isdigit() else 0
        wait_for(lambda: frames() > 40, 60, "the first frames")
        first = _snapshot(state)
        runtime_names = sorted(p.name for p in (xdg / "latentdmx").iterdir())
        start = frames()
        wait_for(lambda: frames() > start + 160, 60, "4 s more of the show")   # 40 fps
        assert _snapshot(state) == first, "the state folder changed while the show played"
        assert sorted(p.name for p in (xdg / "latentdmx").iterdir()) == runtime_names
        res = run_cli("preset", "save", "kept", env=env)      # asked: exactly that one file
        assert res.returncode == 0, res.stdout + res.stderr
        after = _snapshot(state)
        changed = {k for k in after if first.get(k) != after[k]}
        assert changed and all(Path(k).name.startswith("kept") for k in changed), changed
    finally:
        out = stop(proc)
    assert "Traceback" not in out, out
