"""What the service can find: models in the system folder (/var/lib/latentdmx/models, here
``$LATENTDMX_SYSTEM_DIR``), looked up without a home, and errors that say where they looked.

Runs the real CLI in a subprocess with the service's environment: ``HOME=/nonexistent`` (the
``latentdmx`` user's home, which does not exist) and no XDG variables.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT = (REPO / "pi_app" / "data" / "default.toml").read_text()


def service_env(system_dir: Path, home: str = "/nonexistent") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "LATENTDMX_", "STATE_DIRECTORY"))}
    env.update(HOME=home, LATENTDMX_SYSTEM_DIR=str(system_dir), COLUMNS="200")
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pi_app.cli", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120, check=False)


def rig(tmp_path: Path, model: str) -> Path:
    path = tmp_path / "rig.toml"
    path.write_text(DEFAULT.replace('model = "nat-aurora"', f'model = "{model}"', 1))
    assert f'model = "{model}"' in path.read_text()
    return path


def install_model(folder: Path, name: str, source: str = "iae-glyphs") -> Path:
    dst = folder / name
    shutil.copytree(REPO / "models" / source, dst,
                    ignore=shutil.ignore_patterns("checkpoint.pt", "*.png", "README.md"))
    return dst


def test_service_finds_a_system_model_without_a_home(tmp_path):
    system = tmp_path / "var-lib-latentdmx"
    dst = install_model(system / "models", "stage-glyphs")
    proc = cli(service_env(system), "check", str(rig(tmp_path, "stage-glyphs")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())                  # rich may wrap the long line
    assert f"ok: model 'stage-glyphs' (iae, image, from {dst})" in out
    assert "note:" not in out                             # nothing in a home to warn about


def test_missing_model_says_where_it_looked(tmp_path):
    system = tmp_path / "var-lib-latentdmx"
    config = rig(tmp_path, "ghost")
    proc = cli(service_env(system), "check", str(config))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {config}: model: no such model 'ghost' — looked in "), err
    assert f"{REPO / 'models'}, {system / 'models'}, ghost;" in err
    assert "/nonexistent" not in err                     # no home: no user folder to blame
    assert "known: iae-blobs, iae-glyphs, nat-aurora, nat-neon, nat-retina" in err
    assert f"Put the model folder in {system / 'models'} for the service" in err


def test_user_folder_comes_first_and_check_warns_it_is_not_the_services(tmp_path):
    system = tmp_path / "var-lib-latentdmx"
    home = tmp_path / "home"
    home.mkdir()
    mine = install_model(home / ".local/share/latentdmx/models", "stage-glyphs", "nat-aurora")
    install_model(system / "models", "stage-glyphs")
    env = service_env(system, home=str(home))
    proc = cli(env, "check", str(rig(tmp_path, "stage-glyphs")))
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert f"from {mine})" in out
    assert (f"note: {home}/.local/share/latentdmx/models is in your home, which the service "
            f"(user latentdmx) cannot read; for the service copy the model to "
            f"{system}/models/stage-glyphs") in out

    listing = cli(env, "models")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    rows = [x.split()[:3] for x in lines if x.startswith("stage-glyphs")]
    assert rows == [["stage-glyphs", "user", "nat"], ["stage-glyphs", "system", "iae"]]
    assert f"user     {home}/.local/share/latentdmx/models" in lines
    assert f"system   {system}/models" in lines
    assert "in more than one folder: stage-glyphs (the first one listed plays)" in lines


def test_models_without_a_home_lists_bundled_and_system_only(tmp_path):
    system = tmp_path / "var-lib-latentdmx"
    install_model(system / "models", "stage-glyphs")
    proc = cli(service_env(system), "models")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [x.split()[:2] for x in lines if x.startswith("stage-glyphs")] == [
        ["stage-glyphs", "system"]]
    assert not [x for x in lines if x.startswith("user ")]
    assert f"bundled  {REPO / 'models'}" in lines


@pytest.mark.slow
def test_train_system_writes_where_the_service_looks(tmp_path):
    pytest.importorskip("torch")
    system = tmp_path / "var-lib-latentdmx"
    env = service_env(system)
    proc = cli(env, "train", "iae", "--out", "tiny", "--system", "--steps", "2", "--size", "8",
               "--channels", "4", "--no-quality")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (system / "models" / "tiny" / "model.safetensors").is_file()
    assert f"-> {system}/models/tiny/model.safetensors" in proc.stdout
    check = cli(env, "check", str(rig(tmp_path, "tiny")))
    assert check.returncode == 0, check.stderr
    assert f"from {system}/models/tiny)" in " ".join(check.stdout.split())


def test_train_system_refuses_a_path_and_an_unwritable_folder(tmp_path):
    system = tmp_path / "var-lib-latentdmx"
    proc = cli(service_env(system), "train", "iae", "--out", "models/tiny", "--system")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: --out: with --system, --out is a model name, not a path (models/tiny) — "
        f"e.g. --out my-nat --system (written to {system}/models/my-nat)")
    if os.geteuid() == 0 and shutil.which("setpriv"):
        # as an ordinary user (nobody), not in the folder's group: refused before training
        system = Path(tempfile.mkdtemp(prefix="latentdmx-sys-"))      # nobody can reach it
        try:
            system.chmod(0o755)
            (system / "models").mkdir()
            proc = subprocess.run(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 sys.executable, "-m", "pi_app.cli", "train", "iae", "--out", "tiny",
                 "--system"],
                capture_output=True, text=True, env=service_env(system), cwd=REPO,
                timeout=120, check=False)
        finally:
            shutil.rmtree(system)
        if ("Permission denied" in proc.stderr and "pi_app" in proc.stderr) or \
                "No module named 'pi_app'" in proc.stderr:     # a checkout in a private folder
            pytest.skip("the checkout is not readable by nobody")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"no permission to write {system}/models" in proc.stderr
        assert "sudo usermod -aG latentdmx" in proc.stderr
