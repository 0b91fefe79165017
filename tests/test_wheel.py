"""The default model and config load from an installed wheel, not only from a checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_installed_wheel_plays_the_default_show(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                    str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("latentdmx-*.whl"))
    venv = tmp_path / "venv"
    # system site packages give numpy, click, ... without a download; the wheel itself is
    # installed into the venv, so pi_app comes from site-packages, not from the checkout
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    code = ("import pi_app, pi_app.runtime as r; from pathlib import Path; "
            "m = r.load_model('nat-aurora'); "
            "assert 'site-packages' in str(m.info.path), m.info.path; "
            "assert Path(pi_app.__file__).parent / '_models' in m.info.path.parents; "
            "print(sorted(n for n, _ in r.list_models()))")
    r = subprocess.run([str(py), "-c", code], check=False, capture_output=True, text=True, cwd=tmp_path,
                       timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "iae-glyphs" in r.stdout and "nat-aurora" in r.stdout
    show = tmp_path / "show.txt"
    r = subprocess.run([str(venv / "bin" / "latentdmx"), "run", "--duration", "1", "--record",
                        str(show)], check=False, capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                            "XDG_RUNTIME_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert show.read_text().startswith("OLA Show\n")
