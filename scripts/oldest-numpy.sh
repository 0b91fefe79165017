#!/usr/bin/env bash
# The fast test tier on the oldest NumPy, Pillow and zstandard LatentDMX supports: Debian
# bookworm's (NumPy 1.24.2, Pillow 9.4, zstandard 0.20), the ones a 32-bit Raspberry Pi OS
# gets (PyPI has no armv7l wheel of them). scripts/test.sh runs it
# after the suite: `bash scripts/oldest-numpy.sh [pytest args]`.
#
# A second venv, .venv-oldest-numpy, holds only those (and SciPy) at Debian bookworm's versions
# and this checkout (no dependencies); everything else comes from .venv (made by
# scripts/test.sh) through a .pth file that sits after its own site-packages, so the old
# NumPy wins and setting it up costs seconds, not a second full install.
set -euo pipefail
cd "$(dirname "$0")/.."
unset PYTHONDONTWRITEBYTECODE
# Debian bookworm: python3-numpy, python3-scipy, python3-pil, python3-zstandard
OLDEST=(numpy==1.24.2 scipy==1.10.1 pillow==9.4.0 zstandard==0.20.0)
VENV=.venv-oldest-numpy
[ -x .venv/bin/python ] || { echo "$0: no .venv: run scripts/test.sh first" >&2; exit 2; }
main_site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
[ -x "$VENV/bin/python" ] || .venv/bin/python -m venv --without-pip "$VENV"
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
stamp="$VENV/.installed"
want="${OLDEST[*]} $(sha256sum pyproject.toml | cut -d' ' -f1) $main_site"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    # .venv's packages (pip among them) through the .pth; the old NumPy and SciPy into this
    # venv's own site-packages, before it on sys.path (--ignore-installed: .venv's newer ones
    # do not count); the checkout editable, without dependencies, so `latentdmx` here is a
    # script on this venv's Python, on the old NumPy too
    echo "$main_site" > "$site/zz-latentdmx-main-venv.pth"
    "$VENV/bin/python" -m pip install -q --no-warn-script-location --ignore-installed \
        "${OLDEST[@]}"
    "$VENV/bin/python" -m pip install -q --no-warn-script-location --no-deps -e .
    echo "$want" > "$stamp"
fi
"$VENV/bin/python" - "${OLDEST[@]}" <<'PY'
import sys
import numpy, PIL, scipy, zstandard
have = {"numpy": numpy.__version__, "scipy": scipy.__version__, "pillow": PIL.__version__,
        "zstandard": zstandard.__version__}
want = dict(a.split("==") for a in sys.argv[1:])
assert have == want, f"{have} != {want}: the old versions did not win"
print("oldest supported: " + ", ".join(f"{k} {v}" for k, v in have.items()))
PY
exec "$VENV/bin/python" -m pytest -m "not slow" -n "${LATENTDMX_TEST_WORKERS:-4}" -q \
    -p no:cacheprovider "$@"
