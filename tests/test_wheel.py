"""The default model and config load from an installed wheel, not only from a checkout.

The wheel goes into a venv that sees nothing of this machine's Python (no
``--system-site-packages``): its dependencies come from its own metadata, through pip, as on
a user's fresh machine. A dependency missing from ``pyproject.toml`` fails here, whatever
was installed by hand elsewhere (that once hid a missing ``safetensors``).
"""

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
    # an isolated venv: pi_app and every dependency come from the wheel's own metadata
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=False,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([str(py), "-c", "import sys; print(sys.flags.no_site, sys.path)"],
                       capture_output=True, text=True, check=True, timeout=60)
    assert "dist-packages" not in r.stdout           # nothing of the system Python is seen
    code = ("import pi_app, pi_app.runtime as r; from pathlib import Path; "
            "m = r.load_model('nat-aurora'); "
            "assert 'site-packages' in str(m.info.path), m.info.path; "
            "assert Path(pi_app.__file__).parent / '_models' in m.info.path.parents; "
            "print(sorted(n for n, _ in r.list_models()))")
    r = subprocess.run([str(py), "-c", code], check=False, capture_output=True, text=True,
                       cwd=tmp_path, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "iae-glyphs" in r.stdout and "nat-aurora" in r.stdout
    show = tmp_path / "show.txt"
    r = subprocess.run([str(venv / "bin" / "latentdmx"), "run", "--duration", "1", "--record",
                        str(show)], check=False, capture_output=True, text=True, cwd=tmp_path,
                       timeout=120,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                            "XDG_RUNTIME_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert show.read_text().startswith("OLA Show\n")
