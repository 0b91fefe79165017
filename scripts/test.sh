#!/usr/bin/env bash
# Install everything the test suite needs, lint and type-check, then run the whole suite on
# every core (pytest-xdist, $LATENTDMX_TEST_WORKERS workers, 4 by default; most tests wait on
# real time, so more workers than cores pay): `bash scripts/test.sh [pytest args]`. The
# inner loop, after every change, is `bash scripts/fast.sh` (the fast tier with coverage).
#  - Debian packages: ola + ola-python (a real olad for the output tests), chromium (the web
#    view's browser test), systemd (systemd-analyze for the unit's security score),
#    qlcplus-data (real QLC+ fixture files), shellcheck (lints scripts/setup-pi.sh),
#    iproute2 (network namespaces: the sACN/Art-Net tests' own test LAN), mosquitto (a real
#    MQTT broker for the Home Assistant tests, with mosquitto_passwd), libportaudio2 +
#    pulseaudio + pulseaudio-utils + libasound2-plugins (PortAudio capturing a private
#    PulseAudio null sink: live capture with no sound card). Installed with apt-get when
#    missing (root or sudo).
#  - Python: a venv in .venv with torch==2.13.0 (CPU; training tests) and `.[train,test,music]`.
#  - After the suite, the fast tier again on the oldest NumPy (scripts/oldest-numpy.sh).
#  - Checks before the tests: ruff, mypy, import-linter (the layers of docs/architecture.md),
#    the manual's build.
set -euo pipefail
cd "$(dirname "$0")/.."
# pytest keeps its rewritten test modules as bytecode: without it, every run compiles them
# all again (~4 s)
unset PYTHONDONTWRITEBYTECODE

# apt_install [apt-get options] -- PACKAGE...: install the ones that are missing
apt_install() {
    local opts=() missing=() p
    while [ "$1" != "--" ]; do opts+=("$1"); shift; done
    shift
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        local SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        echo "installing Debian packages: ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${opts[@]}" \
            "${missing[@]}" >/dev/null
    fi
}
apt_install -- ola ola-python chromium systemd qlcplus-data shellcheck iproute2 mosquitto
# The music tests: PortAudio, and a private PulseAudio to capture from (no desktop extras).
apt_install --no-install-recommends -- libportaudio2 pulseaudio pulseaudio-utils \
    libasound2-plugins

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
# pip runs when the venv is new or pyproject.toml changed since it last ran (it takes ~20 s
# even when everything is there)
stamp=.venv/.latentdmx-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $(python -c 'import sys; print(sys.version)')"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    python -m pip install -q --upgrade pip >/dev/null
    python -m pip install -q torch==2.13.0          # the CPU wheel; satisfies the train extra
    python -m pip install -q -e '.[train,test,music]'
    echo "$want" > "$stamp"
fi
ruff check --quiet .                                 # lint (rules in pyproject.toml)
echo "ruff: clean"
lint="$(lint-imports 2>&1)" || { echo "$lint"; exit 1; }   # the layers ([tool.importlinter])
echo "import-linter: layers kept, no import cycle"
# mypy and the manual's build run beside the tests; their verdicts come after the tests'
checks=$(mktemp -d)
trap 'rm -rf "$checks"' EXIT
( mypy --no-error-summary > "$checks/mypy" 2>&1; echo $? > "$checks/mypy.rc" ) &
( NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$checks/site" \
      > "$checks/mkdocs" 2>&1; echo $? > "$checks/mkdocs.rc" ) &
status=0
python -m pytest -n "${LATENTDMX_TEST_WORKERS:-4}" --dist load "$@" || status=$?
wait
# the fast tier again on the oldest NumPy supported (Debian bookworm's 1.24.2, what a 32-bit
# Pi OS has): a second venv layered on .venv, ~35 s more
if [ $# = 0 ]; then bash scripts/oldest-numpy.sh || status=$?; fi
cat "$checks/mypy"                                   # types of pi_app ([tool.mypy])
if [ "$(cat "$checks/mypy.rc")" = 0 ]; then echo "mypy: clean"; else status=1; fi
cat "$checks/mkdocs"                                 # the manual: every link and anchor
if [ "$(cat "$checks/mkdocs.rc")" = 0 ]; then
    echo "mkdocs: the manual builds, every link and anchor found"
else
    status=1
fi
exit "$status"
