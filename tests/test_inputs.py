"""Inputs at start: special files, a model path beside the config, fixtures named in errors,
a broken user model in `latentdmx models`, a UTF-8 BOM."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.fuzz_inputs import tiny_model
from pi_app.cli import main
from pi_app.config import default_config_path, load_config

ROOT = Path(__file__).resolve().parents[1]
TEXT = default_config_path().read_text()


def check(path: Path | str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pi_app.cli", "check", str(path)],
                          capture_output=True, text=True, timeout=30, check=False,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.parametrize("make", ["fifo", "dev-zero", "folder", "loop", "huge"])
def test_special_files_are_refused_at_once(tmp_path, make):
    path = tmp_path / "rig.toml"
    if make == "fifo":
        os.mkfifo(path)
    elif make == "dev-zero":
        path = Path("/dev/zero")
    elif make == "folder":
        path.mkdir()
    elif make == "loop":
        path.symlink_to(path)
    else:
        path.write_text(TEXT + "#" * (2 << 20))
    t0 = time.monotonic()
    r = check(path)
    assert time.monotonic() - t0 < 20
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: (file): ")


def test_a_model_path_is_taken_from_the_config_folder(tmp_path, monkeypatch):
    rigs = tmp_path / "rigs"
    tiny_model(rigs / "models" / "mine")
    tiny_model(rigs / "beside")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)                     # not where the config is
    for model, want in (("models/mine", rigs / "models" / "mine"),
                        ("./models/mine", rigs / "models" / "mine"),
                        ("beside", rigs / "beside"),
                        ("nat-aurora", "nat-aurora")):   # a bundled name stays a name
        rig = rigs / "rig.toml"
        rig.write_text(TEXT.replace('model = "nat-aurora"', f'model = "{model}"'))
        assert load_config(rig).model == str(want)
        res = CliRunner().invoke(main, ["check", str(rig)])
        assert res.exit_code == 0, res.output
    # the command line's --model is still taken from where the command runs
    tiny_model(elsewhere / "here")
    res = CliRunner().invoke(main, ["render", "--model", "./here", "--duration", "0.5",
                                    "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 0, res.output


def test_fixture_errors_name_the_fixture_counted_from_1(tmp_path):
    rig = tmp_path / "rig.toml"
    rig.write_text(TEXT.replace("address = 45", "address = 43"))      # par-2 onto par-1
    res = CliRunner().invoke(main, ["check", str(rig)])
    assert res.exit_code == 2
    assert res.output.startswith(f"error: {rig}: fixtures[5] ('par-2').address: slot 43 of "
                                 "universe 1 is also used by 'par-1' — ")
    rig.write_text(TEXT.replace("position = [0.1, 0.8]", "position = [0.1, 1.8]"))
    res = CliRunner().invoke(main, ["check", str(rig)])
    assert f"{rig}: fixtures[4] ('par-1').position[2]: 1.8 is outside" in res.output


def test_models_lists_the_others_and_marks_a_broken_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    users = tmp_path / "latentdmx" / "models"
    tiny_model(users / "good")
    tiny_model(users / "no-x", fields="yrgbw")
    tiny_model(users / "grey", kind="image", channels=1)
    res = CliRunner().invoke(main, ["models"])
    assert res.exit_code == 0, res.output
    rows = {ln.split()[0]: ln for ln in res.output.splitlines() if ln and ln[0] != " "}
    assert "points x,y,r,g,b,w" in rows["nat-aurora"] and "image" in rows["iae-glyphs"]
    assert "points x,y,r,g,b,w" in rows["good"]
    assert "BROKEN" in rows["no-x"] and "output.fields" in rows["no-x"] and "x" in rows["no-x"]
    assert "BROKEN" in rows["grey"] and "1-channel" in rows["grey"]
    assert "2 model(s) cannot be played" in res.output


def test_a_byte_order_mark_is_fine(tmp_path):
    rig = tmp_path / "rig.toml"
    rig.write_bytes(b"\xef\xbb\xbf" + TEXT.encode())
    assert load_config(rig).fps == 40
