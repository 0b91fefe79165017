#!/usr/bin/env bash
# Install everything the test suite needs, lint and type-check, then run the tests:
# `bash scripts/test.sh [pytest args]`.
#  - Debian packages: ola + ola-python (a real olad for the output tests), chromium (the web
#    view's browser test), systemd (systemd-analyze for the unit's security score),
#    qlcplus-data (real QLC+ fixture files), shellcheck (lints scripts/setup-pi.sh),
#    iproute2 (network namespaces: the sACN/Art-Net tests' own test LAN), mosquitto (a real
#    MQTT broker for the Home Assistant tests, with mosquitto_passwd), libportaudio2 +
#    pulseaudio + pulseaudio-utils + libasound2-plugins (PortAudio capturing a private
#    PulseAudio null sink: live capture with no sound card). Installed with apt-get when
#    missing (root or sudo).
#  - Python: a venv in .venv with torch==2.13.0 (CPU; training tests) and `.[train,test,music]`.
#  - Checks before the tests: ruff, mypy, import-linter (the layers of docs/architecture.md),
#    the manual's build.
set -euo pipefail
cd "$(dirname "$0")/.."

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
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q torch==2.13.0          # the CPU wheel; satisfies the train extra
python -m pip install -q -e '.[train,test,music]'
ruff check --quiet .                                 # lint (rules in pyproject.toml)
echo "ruff: clean"
mypy --no-error-summary                              # types of pi_app ([tool.mypy])
echo "mypy: clean"
lint="$(lint-imports 2>&1)" || { echo "$lint"; exit 1; }   # the layers ([tool.importlinter])
echo "import-linter: layers kept, no import cycle"
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$(mktemp -d)"   # the manual
echo "mkdocs: the manual builds, every link and anchor found"
exec python -m pytest "$@"
