#!/usr/bin/env bash
# Prepare Raspberry Pi OS (bookworm, or the older layout) to run LatentDMX as a service.
#
#   sudo scripts/setup-pi.sh [--with-ola] [--wheel latentdmx-X.whl]   set up / upgrade
#   sudo scripts/setup-pi.sh --dry-run ...                            only say what would change
#   sudo scripts/setup-pi.sh --uninstall [--purge]                    undo (--purge: also config)
#   scripts/setup-pi.sh --root DIR ...                                work on a copy of a Pi's
#       file system (tests, SD-card images): files under DIR change; steps that need the
#       network or the live system (apt, pip, systemctl, useradd, usermod, chown) are printed.
#
# What it does, each step only when needed (a second run says "nothing to change"):
#  1. UART for DMX: config.txt gets a managed block (enable_uart=1; disable-bt where the PL011
#     serves Bluetooth; the Pi 5's GPIO14/15 UART switched on), the serial console leaves
#     cmdline.txt, serial-getty@ttyAMA0 is masked and hciuart disabled.
#  2. The `latentdmx` system user, in the dialout (serial port) and gpio groups.
#  3. The package in a venv under /opt/latentdmx (from --wheel, else from this checkout).
#  4. /etc/latentdmx/config.toml from the bundled default, only if absent (never overwritten).
#  5. With --with-ola: Debian's ola, its UART plugin on /dev/ttyAMA0, universe patched.
#  6. systemd/latentdmx.service installed and enabled.
# It ends by saying whether a reboot is needed. Backups of every file it edits (other than
# config.txt, where it only adds and removes its own block) live in /var/lib/latentdmx/setup.
set -euo pipefail

PROG=${0##*/}
CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# -- options ------------------------------------------------------------------------------
ROOT=""
DRY_RUN=0
UNINSTALL=0
PURGE=0
WITH_OLA=0
WHEEL=""
SOURCE_DIR="$CHECKOUT"
DEFAULT_CONFIG=""
OUTPUT_KIND=""
OPERATOR="${SUDO_USER:-}"
OLA_BREAK_US=100
OLA_MALF_US=100
OLA_UNIVERSE=1
UART_CLOCK=auto
DMX_DEVICE=/dev/ttyAMA0

usage() {
    cat <<EOF
usage: $PROG [options]

  --root DIR           apply file changes under DIR (a copy of a Pi's /); print live steps
  --dry-run            print every change, make none
  --wheel PATH         install this wheel (default: the checkout at $CHECKOUT)
  --with-ola           install and configure OLA (Debian's ola) on $DMX_DEVICE
  --ola-break-us N     DMX break for OLA's UART plugin, µs (default $OLA_BREAK_US)
  --ola-malf-us N      mark after last frame for OLA's UART plugin, µs (default $OLA_MALF_US);
                       OLA's mark-after-break is fixed at 16 µs, so fussy fixtures that want a
                       long MAB get a long malf instead - it costs frame rate, see below
  --ola-universe N     OLA universe patched to the UART (default $OLA_UNIVERSE)
  --output KIND        output kind written into a NEW config: ola | uart | sim
                       (default: ola with --with-ola, else uart); an existing config is kept
  --default-config F   the config to copy when none exists (default: the bundled one)
  --operator USER      add USER to the latentdmx group, to use \`latentdmx status\` etc.
                       (default: \$SUDO_USER)
  --uart-clock MODE    init_uart_clock=16000000: auto (only for old firmware) | yes | no
  --uninstall          undo the set-up (keeps /etc/latentdmx unless --purge)
  --purge              with --uninstall: also remove /etc/latentdmx and the latentdmx user
  -h, --help           this text

OLA frame rate: one DMX frame takes break + 16 µs MAB + 513 slots × 44 µs + malf.
With the defaults (100/100) that is 22788 µs, 43.9 frames/s; with --ola-malf-us 24000 it
is 46688 µs, 21.4 frames/s - the show's fps above that is wasted.
EOF
}

die() { echo "$PROG: error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=${2:?--root needs a directory}; shift ;;
        --root=*) ROOT=${1#*=} ;;
        --dry-run) DRY_RUN=1 ;;
        --uninstall) UNINSTALL=1 ;;
        --purge) PURGE=1 ;;
        --with-ola) WITH_OLA=1 ;;
        --wheel) WHEEL=${2:?--wheel needs a path}; shift ;;
        --wheel=*) WHEEL=${1#*=} ;;
        --source) SOURCE_DIR=${2:?}; shift ;;
        --default-config) DEFAULT_CONFIG=${2:?}; shift ;;
        --output) OUTPUT_KIND=${2:?}; shift ;;
        --operator) OPERATOR=${2?}; shift ;;
        --ola-break-us) OLA_BREAK_US=${2:?}; shift ;;
        --ola-malf-us) OLA_MALF_US=${2:?}; shift ;;
        --ola-universe) OLA_UNIVERSE=${2:?}; shift ;;
        --uart-clock) UART_CLOCK=${2:?}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option $1" ;;
    esac
    shift
done

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_uint "$OLA_BREAK_US" && [ "$OLA_BREAK_US" -ge 88 ] \
    || die "--ola-break-us: DMX needs a break of at least 88 µs, got '$OLA_BREAK_US'"
is_uint "$OLA_MALF_US" && [ "$OLA_MALF_US" -le 1000000 ] \
    || die "--ola-malf-us: a whole number of µs up to 1000000, got '$OLA_MALF_US'"
is_uint "$OLA_UNIVERSE" && [ "$OLA_UNIVERSE" -ge 1 ] \
    || die "--ola-universe: a universe number >= 1, got '$OLA_UNIVERSE'"
case "$UART_CLOCK" in auto|yes|no) ;; *) die "--uart-clock: auto, yes or no" ;; esac
[ -z "$OUTPUT_KIND" ] && { [ $WITH_OLA = 1 ] && OUTPUT_KIND=ola || OUTPUT_KIND=uart; }
case "$OUTPUT_KIND" in ola|uart|sim) ;; *) die "--output: ola, uart or sim" ;; esac
[ $PURGE = 1 ] && [ $UNINSTALL = 0 ] && die "--purge only goes with --uninstall"
if [ -n "$ROOT" ]; then
    [ -d "$ROOT" ] || die "--root $ROOT: no such directory"
    ROOT=$(cd "$ROOT" && pwd)
    [ "$ROOT" = / ] && ROOT=""
elif [ "$(id -u)" != 0 ] && [ $DRY_RUN = 0 ]; then
    die "run it as root (sudo $PROG ...), or try --dry-run"
fi
if [ -n "$WHEEL" ]; then
    [ -f "$WHEEL" ] || die "--wheel $WHEEL: no such file"
    WHEEL=$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")
fi

# -- paths --------------------------------------------------------------------------------
R=$ROOT                                   # prefix for every file path
PREFIX=/opt/latentdmx
VENV=$PREFIX/venv
ETC=/etc/latentdmx
STATE=/var/lib/latentdmx/setup
UNIT=/etc/systemd/system/latentdmx.service
MARK_BEGIN="# >>> latentdmx: DMX512 on the PL011 UART (managed by setup-pi.sh, remove with --uninstall) >>>"
MARK_END="# <<< latentdmx <<<"
# OLA plugins that would only get in the way: the dummy device and the network protocols.
OLA_OFF_PLUGINS="dummy artnet e131 espnet kinet nanoleaf openpixelcontrol osc pathport sandnet shownet"
OLA_UARTDMX_PLUGIN_ID=20                  # OLA_PLUGIN_UARTDMX in ola/plugin_id.h

if [ -f "$R/boot/firmware/config.txt" ]; then
    BOOT=/boot/firmware                   # Raspberry Pi OS bookworm and later
elif [ -f "$R/boot/config.txt" ] && ! grep -q "^DO NOT EDIT" "$R/boot/config.txt"; then
    BOOT=/boot                            # bullseye and older
else
    die "no config.txt in $R/boot/firmware or $R/boot: is this Raspberry Pi OS?"
fi

MODEL=""
[ -r "$R/proc/device-tree/model" ] && MODEL=$(tr -d '\0' < "$R/proc/device-tree/model")
PI5=0
case "$MODEL" in *"Raspberry Pi 5"*|*"Compute Module 5"*) PI5=1 ;; esac   # and Pi 500

# Old firmware (before 2020's disable-bt.dtbo, the pi3-disable-bt days and earlier) may run
# the PL011 from a 3 MHz clock: 3 MHz / 16 = 187500 baud max, below DMX's 250000. There
# init_uart_clock=16000000 gives 16 MHz / 16 / 250000 = divisor 4, exactly 250 kbaud. Newer
# firmware and kernels clock the PL011 at 48 MHz themselves (divisor 12), so no line is added.
OLD_FIRMWARE=0
if [ -d "$R$BOOT/overlays" ] && [ ! -e "$R$BOOT/overlays/disable-bt.dtbo" ] \
        && [ -e "$R$BOOT/overlays/pi3-disable-bt.dtbo" ]; then
    OLD_FIRMWARE=1
fi
case "$UART_CLOCK" in
    yes) NEED_UART_CLOCK=1 ;;
    no) NEED_UART_CLOCK=0 ;;
    *) NEED_UART_CLOCK=$OLD_FIRMWARE ;;
esac
if [ $OLD_FIRMWARE = 1 ]; then BT_OVERLAY=pi3-disable-bt; else BT_OVERLAY=disable-bt; fi

# -- bookkeeping and output ---------------------------------------------------------------
CHANGES=0                                 # files changed or commands run (or that would be)
PRINTED=0                                 # live steps printed, not run (--root)
REBOOT=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

say() { printf '%s\n' "$*"; }
note() { printf '  %-9s %s\n' "$1" "$2"; }

# A command that changes the live system: run it, or print it (--dry-run, --root).
live() {
    local shown
    shown=$(printf '%q ' "$@")
    shown=${shown% }
    if [ -n "$ROOT" ]; then
        note "on-pi" "$shown"
        PRINTED=$((PRINTED + 1))
    elif [ $DRY_RUN = 1 ]; then
        note "would-run" "$shown"
        CHANGES=$((CHANGES + 1))
    else
        note "run" "$shown"
        "$@"
        CHANGES=$((CHANGES + 1))
    fi
}

# Keep a copy of FILE as it was before this script first touched it (for --uninstall).
backup_once() {
    local file=$1 dest="$R$STATE/backup$1"
    [ $DRY_RUN = 1 ] && return 0
    [ -e "$dest" ] || [ -e "$dest.absent" ] && return 0
    mkdir -p "$(dirname "$dest")"
    if [ -e "$R$file" ]; then cp -p "$R$file" "$dest"; else : > "$dest.absent"; fi
}

# Make FILE (a path on the Pi) hold the content of NEWFILE; MODE for a new file.
put_file() {
    local file=$1 new=$2 mode=${3:-0644} what=${4:-}
    if [ -f "$R$file" ] && cmp -s "$new" "$R$file"; then
        return 0
    fi
    CHANGES=$((CHANGES + 1))
    if [ $DRY_RUN = 1 ]; then
        if [ -f "$R$file" ]; then
            note "would-edit" "$file${what:+ ($what)}"
            diff -u --label "$file" --label "$file (new)" "$R$file" "$new" | sed 's/^/      /' || true
        else
            note "would-add" "$file${what:+ ($what)}"
        fi
        return 0
    fi
    if [ -f "$R$file" ]; then
        note "edit" "$file${what:+ ($what)}"
        # same directory + rename: never a half-written file, even on the FAT boot partition
        cp -p "$R$file" "$R$file.latentdmx-tmp"
        cat "$new" > "$R$file.latentdmx-tmp"
        mv -f "$R$file.latentdmx-tmp" "$R$file"
    else
        note "add" "$file${what:+ ($what)}"
        mkdir -p "$(dirname "$R$file")"
        install -m "$mode" "$new" "$R$file"
    fi
}

remove_path() {
    local path=$1
    [ -e "$R$path" ] || [ -L "$R$path" ] || return 0
    CHANGES=$((CHANGES + 1))
    if [ $DRY_RUN = 1 ]; then note "would-rm" "$path"; return 0; fi
    note "remove" "$path"
    case "$path" in /?*) ;; *) die "refusing to remove '$path'" ;; esac
    rm -rf -- "$R$path"
}

make_dir() {
    local dir=$1 mode=$2
    [ -d "$R$dir" ] && return 0
    CHANGES=$((CHANGES + 1))
    if [ $DRY_RUN = 1 ]; then note "would-add" "$dir/"; return 0; fi
    note "add" "$dir/"
    mkdir -p "$R$dir"
    chmod "$mode" "$R$dir"
}

# Does the live (or --root) system have a user / group, and is USER in GROUP?
has_user() { if [ -n "$ROOT" ]; then grep -q "^$1:" "$R/etc/passwd" 2>/dev/null; else getent passwd "$1" >/dev/null; fi; }
has_group() { if [ -n "$ROOT" ]; then grep -q "^$1:" "$R/etc/group" 2>/dev/null; else getent group "$1" >/dev/null; fi; }
in_group() {
    local user=$1 group=$2 line
    if [ -n "$ROOT" ]; then line=$(grep "^$group:" "$R/etc/group" 2>/dev/null || true)
    else line=$(getent group "$group" || true); fi
    [[ ",${line##*:}," == *",$user,"* ]]
}
# The user would exist after this run (created now, or printed for the Pi under --root).
user_will_exist() { has_user "$1" || [ -n "$ROOT" ] || [ $DRY_RUN = 1 ]; }

unit_state() {   # enabled | disabled | masked | static | missing (live system only)
    [ -n "$ROOT" ] && { echo unknown; return; }
    command -v systemctl >/dev/null || { echo missing; return; }
    systemctl is-enabled "$1" 2>/dev/null || true
}

pkg_installed() {
    [ -n "$ROOT" ] && return 1
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

reboot_needed() {
    REBOOT=1
    [ $DRY_RUN = 1 ] && return 0
    mkdir -p "$R/run"
    : > "$R/run/reboot-required"
    grep -qx latentdmx "$R/run/reboot-required.pkgs" 2>/dev/null \
        || echo latentdmx >> "$R/run/reboot-required.pkgs"
}

# -- config.txt ---------------------------------------------------------------------------
uart_block() {
    say "$MARK_BEGIN"
    say "# DMX leaves on GPIO14 (TX, pin 8) as /dev/ttyAMA0, the PL011 UART at 250 kbaud."
    say "[all]"
    say "enable_uart=1"
    if [ "$NEED_UART_CLOCK" = 1 ]; then
        say "# Old firmware clocks the PL011 at 3 MHz (187.5 kbaud max); 16 MHz gives exactly"
        say "# 250 kbaud (divisor 4). Current firmware runs it at 48 MHz and needs no line here."
        say "init_uart_clock=16000000"
    fi
    say "# Zero W, Zero 2 W, 3 and 4: the PL011 serves Bluetooth; give it to GPIO14/15."
    for model in pi0w pi02 pi3 pi4; do
        say "[$model]"
        say "dtoverlay=$BT_OVERLAY"
    done
    say "# Pi 5: GPIO14/15 is RP1's UART0 (/dev/ttyAMA0), off by default. Bluetooth has its own"
    say "# UART and serial0 is the debug connector (ttyAMA10), so nothing else moves."
    say "[pi5]"
    say "dtparam=uart0=on"
    say "[all]"
    say "$MARK_END"
}

# FILE without our block (markers included).
strip_block() {
    awk -v b="$MARK_BEGIN" -v e="$MARK_END" '
        $0 == b { inside = 1; next }
        inside && $0 == e { inside = 0; next }
        !inside { print }' "$1"
}

# FILE with our block replaced in place by BLOCKFILE, or appended.
with_block() {
    local file=$1 block=$2
    if grep -qxF "$MARK_BEGIN" "$file"; then
        awk -v b="$MARK_BEGIN" -v e="$MARK_END" -v blockfile="$block" '
            $0 == b { inside = 1; while ((getline line < blockfile) > 0) print line; next }
            inside && $0 == e { inside = 0; next }
            !inside { print }' "$file"
    else
        cat "$file"
        [ -s "$file" ] && [ -n "$(tail -c1 "$file")" ] && echo    # end the last line
        cat "$block"
    fi
}

setup_config_txt() {
    local file=$BOOT/config.txt
    uart_block > "$TMP/block"
    with_block "$R$file" "$TMP/block" > "$TMP/config.txt"
    if ! cmp -s "$TMP/config.txt" "$R$file"; then
        if [ $DRY_RUN = 0 ] && [ -s "$R$file" ] && [ -n "$(tail -c1 "$R$file")" ]; then
            : > "$R$STATE/config.no-eol"     # uninstall takes the added newline away again
        fi
        put_file "$file" "$TMP/config.txt" 0755 "UART for DMX"
        reboot_needed
    fi
    if strip_block "$R$file" | grep -Eq '^[[:space:]]*dtoverlay=(pi3-)?miniuart-bt'; then
        say "  warning   $file has dtoverlay=miniuart-bt: it fights disable-bt; remove that line"
    fi
}

# -- cmdline.txt --------------------------------------------------------------------------
# A console on the DMX UART would print boot messages to the lights and a getty would read
# from it. On a Pi 5 serial0 is the separate debug connector (ttyAMA10), so it may stay.
is_dmx_console() {
    case "$1" in
        console=ttyAMA0|console=ttyAMA0,*|kgdboc=ttyAMA0|kgdboc=ttyAMA0,*) return 0 ;;
        console=serial0|console=serial0,*|kgdboc=serial0|kgdboc=serial0,*) [ $PI5 = 0 ] ;;
        *) return 1 ;;
    esac
}

setup_cmdline() {
    local file=$BOOT/cmdline.txt line token kept=() removed=()
    [ -f "$R$file" ] || { say "  warning   no $file; skipping the serial console"; return 0; }
    IFS= read -r line < "$R$file" || true
    for token in $line; do
        if is_dmx_console "$token"; then removed+=("$token"); else kept+=("$token"); fi
    done
    [ ${#removed[@]} = 0 ] && return 0
    # the kernel reads one line: keep it one line, every other parameter as it was
    printf '%s\n' "${kept[*]}" > "$TMP/cmdline.txt"
    backup_once "$file"
    put_file "$file" "$TMP/cmdline.txt" 0755 "serial console ${removed[*]} removed"
    if [ $DRY_RUN = 0 ]; then
        printf '%s\n' "${removed[@]}" > "$R$STATE/cmdline.removed"
        cp "$TMP/cmdline.txt" "$R$STATE/cmdline.written"
    fi
    reboot_needed
}

setup_services_for_uart() {
    if [ "$(unit_state serial-getty@ttyAMA0.service)" != masked ]; then
        live systemctl mask --now serial-getty@ttyAMA0.service
    fi
    if [ $PI5 = 0 ]; then
        case "$(unit_state hciuart.service)" in
            enabled|unknown) live systemctl disable --now hciuart.service ;;
        esac
    fi
}

# -- user, venv, config -------------------------------------------------------------------
setup_user() {
    if ! has_user latentdmx; then
        live useradd --system --user-group --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin --comment "LatentDMX daemon" latentdmx
    fi
    local group
    for group in dialout gpio; do
        if ! has_group "$group"; then
            if [ "$group" = gpio ]; then live groupadd --system gpio; else continue; fi
        fi
        if ! in_group latentdmx "$group"; then live usermod -aG "$group" latentdmx; fi
    done
    if [ -n "$OPERATOR" ] && [ "$OPERATOR" != root ] && ! in_group "$OPERATOR" latentdmx; then
        live usermod -aG latentdmx "$OPERATOR"
    fi
}

# A fingerprint of what would be installed: the wheel, or the checkout's package files.
source_fingerprint() {
    if [ -n "$WHEEL" ]; then
        sha256sum "$WHEEL" | cut -d' ' -f1
    else
        (cd "$SOURCE_DIR" && find pi_app models pyproject.toml -type f \
            ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 2>/dev/null \
            | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
    fi
}

setup_venv() {
    local src=${WHEEL:-$SOURCE_DIR} stamp="$R$PREFIX/installed-from" want
    [ -n "$WHEEL" ] || [ -f "$SOURCE_DIR/pyproject.toml" ] \
        || die "nothing to install: pass --wheel, or run the script from a checkout"
    want="$(source_fingerprint)  $src"
    if ! pkg_installed python3-venv; then
        live apt-get install -y --no-install-recommends python3-venv python3-pip
    fi
    # RPi.GPIO drives the RS-485 HAT's driver-enable pin; rpi-lgpio's drop-in works on every
    # Pi, the Pi 5 included. The venv sees it (and ola-python) through the system packages.
    if ! pkg_installed python3-rpi-lgpio && ! pkg_installed python3-rpi.gpio; then
        live apt-get install -y --no-install-recommends python3-rpi-lgpio
    fi
    if [ ! -x "$R$VENV/bin/python" ]; then
        live python3 -m venv --system-site-packages "$VENV"
    fi
    # with OLA: the `ola` extra pins protobuf < 6, which Debian's ola-python needs
    [ $WITH_OLA = 1 ] && src="${src}[ola]"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    # --upgrade brings new dependencies; the second pass replaces the package even when a
    # rebuilt wheel kept its version number. The config in /etc/latentdmx is not touched.
    live "$VENV/bin/pip" install --no-cache-dir --upgrade "$src"
    live "$VENV/bin/pip" install --no-cache-dir --force-reinstall --no-deps "$src"
    if [ -z "$ROOT" ] && [ $DRY_RUN = 0 ]; then
        echo "$want" > "$stamp"
    fi
    PACKAGE_CHANGED=1
}
PACKAGE_CHANGED=0

# `latentdmx` on the PATH of every user (status, dim, check ...): a link into the venv.
setup_command_link() {
    local link=/usr/local/bin/latentdmx target=$VENV/bin/latentdmx
    [ -L "$R$link" ] && [ "$(readlink "$R$link")" = "$target" ] && return 0
    CHANGES=$((CHANGES + 1))
    if [ $DRY_RUN = 1 ]; then note "would-add" "$link -> $target"; return 0; fi
    note "add" "$link -> $target"
    mkdir -p "$R/usr/local/bin"
    ln -sfn "$target" "$R$link"
}

# The bundled default config: --default-config, the checkout's, or the installed package's.
default_config() {
    if [ -n "$DEFAULT_CONFIG" ]; then
        [ -f "$DEFAULT_CONFIG" ] || die "--default-config $DEFAULT_CONFIG: no such file"
        cat "$DEFAULT_CONFIG"
    elif [ -f "$SOURCE_DIR/pi_app/data/default.toml" ] && [ -z "$WHEEL" ]; then
        cat "$SOURCE_DIR/pi_app/data/default.toml"
    elif [ -x "$R$VENV/bin/python" ] && [ -z "$ROOT" ]; then
        "$VENV/bin/python" -c 'import importlib.resources as r, sys
sys.stdout.write(r.files("pi_app").joinpath("data/default.toml").read_text())'
    elif [ -n "$WHEEL" ] && command -v unzip >/dev/null; then
        unzip -p "$WHEEL" pi_app/data/default.toml
    elif [ -f "$SOURCE_DIR/pi_app/data/default.toml" ]; then
        cat "$SOURCE_DIR/pi_app/data/default.toml"
    else
        return 1
    fi
}

# FILE (TOML) with KEY = VALUE in [TABLE]: the key's line replaced, else added to the table,
# else the table appended. Used on a fresh copy of the default config only.
toml_set() {
    awk -v table="$2" -v key="$3" -v value="$4" '
        function emit(comment) { print key " = " value (comment == "" ? "" : "   " comment); done = 1 }
        /^[[:space:]]*\[/ {
            if (in_table && !done) emit("")
            header = $0; sub(/[[:space:]]*(#.*)?$/, "", header); gsub(/^[[:space:]]+/, "", header)
            in_table = (header == "[" table "]")
        }
        in_table && !done && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" {
            emit(match($0, /#.*/) ? substr($0, RSTART) : ""); next     # keep its comment
        }
        { print }
        END {
            if (in_table && !done) emit("")
            else if (!done) { print ""; print "[" table "]"; emit("") }
        }' "$1"
}

setup_config() {
    make_dir "$ETC" 0750
    if [ -e "$R$ETC/config.toml" ]; then
        return 0                          # the user's config: never overwritten
    fi
    if ! default_config > "$TMP/default.toml" 2>/dev/null || [ ! -s "$TMP/default.toml" ]; then
        say "  warning   no bundled default config found; write $ETC/config.toml yourself"
        return 0
    fi
    # the output this set-up prepared; the UART as /dev/ttyAMA0, the GPIO14/15 PL011 on every
    # model once set up (on a Pi 5, /dev/serial0 is the separate debug connector)
    toml_set "$TMP/default.toml" output kind "\"$OUTPUT_KIND\"" > "$TMP/step.toml"
    toml_set "$TMP/step.toml" output.uart device "\"$DMX_DEVICE\"" > "$TMP/config.toml"
    put_file "$ETC/config.toml" "$TMP/config.toml" 0640 "from the bundled default, output $OUTPUT_KIND"
    if user_will_exist latentdmx; then
        live chgrp latentdmx "$ETC" "$ETC/config.toml"
    fi
}

# -- OLA ----------------------------------------------------------------------------------
# FILE (an OLA preferences file, `key = value` lines) with KEY set to VALUE: the first line
# for KEY replaced, later ones dropped (OLA allows repeated keys, e.g. several `device`).
conf_set() {
    local file=$1 key=$2 value=$3
    awk -v key="$key" -v value="$value" '
        { split($0, kv, "="); k = kv[1]; gsub(/^[ \t]+|[ \t]+$/, "", k) }
        k == key && index($0, "=") { if (!done) print key " = " value; done = 1; next }
        { print }
        END { if (!done) print key " = " value }' "$file"
}

# Edit the OLA preferences file FILE: set each KEY=VALUE given.
ola_conf() {
    local file=$1 kv; shift
    local cur="$TMP/ola.cur" next="$TMP/ola.next"
    if [ -f "$R$file" ]; then cp "$R$file" "$cur"; else : > "$cur"; fi
    for kv in "$@"; do
        conf_set "$cur" "${kv%%=*}" "${kv#*=}" > "$next"
        mv "$next" "$cur"
    done
    if ! cmp -s "$cur" "$R$file" 2>/dev/null; then
        OLA_PENDING+=("$file")
        cp "$cur" "$TMP/pending-$(echo "$file" | tr / _)"
    fi
}

ola_frame_note() {
    local period=$((OLA_BREAK_US + 16 + 513 * 44 + OLA_MALF_US))
    say "  note      OLA UART timing: break $OLA_BREAK_US µs + MAB 16 µs (fixed by OLA) + 513 slots × 44 µs + malf $OLA_MALF_US µs"
    say "            = $period µs a frame, at most $(awk -v p="$period" 'BEGIN { printf "%.1f", 1e6 / p }') frames/s"
}

setup_ola() {
    local plugin file
    OLA_PENDING=()
    if ! pkg_installed ola; then
        live apt-get install -y --no-install-recommends ola ola-python
    fi
    ola_conf /etc/ola/ola-uartdmx.conf "enabled=true" "device=$DMX_DEVICE" \
        "$DMX_DEVICE-break=$OLA_BREAK_US" "$DMX_DEVICE-malf=$OLA_MALF_US"
    for plugin in $OLA_OFF_PLUGINS; do
        ola_conf "/etc/ola/ola-$plugin.conf" "enabled=false"
    done
    # port id: plugin id - device id (the device path) - O(utput) - port 0
    ola_conf /etc/ola/ola-port.conf \
        "$OLA_UARTDMX_PLUGIN_ID-$DMX_DEVICE-O-0=$OLA_UNIVERSE"
    if [ ${#OLA_PENDING[@]} -gt 0 ]; then
        # olad writes its preferences back when it stops: stop it before editing them
        if [ -z "$ROOT" ] && [ "$(unit_state olad.service)" != missing ]; then
            live systemctl stop olad.service
        fi
        for file in "${OLA_PENDING[@]}"; do
            backup_once "$file"
            put_file "$file" "$TMP/pending-$(echo "$file" | tr / _)" 0644 "OLA"
        done
        if has_user olad || [ -n "$ROOT" ]; then live chown olad:olad "${OLA_PENDING[@]}"; fi
    fi
    if (has_user olad || [ -n "$ROOT" ]) && ! in_group olad dialout; then
        live usermod -aG dialout olad
    fi
    if [ ${#OLA_PENDING[@]} -gt 0 ] || [ -n "$ROOT" ]; then
        live systemctl enable olad.service
        live systemctl restart olad.service
    fi
    ola_frame_note
}

# -- the unit -----------------------------------------------------------------------------
setup_unit() {
    local src="$SOURCE_DIR/systemd/latentdmx.service" unit_changed=0
    [ -f "$src" ] || die "$src is missing: run the script from a LatentDMX checkout"
    if ! cmp -s "$src" "$R$UNIT"; then
        put_file "$UNIT" "$src" 0644 "the service"
        unit_changed=1
        [ -z "$ROOT" ] && live systemctl daemon-reload
    fi
    if [ "$(unit_state latentdmx.service)" != enabled ]; then
        live systemctl enable latentdmx.service
    fi
    if [ $REBOOT = 1 ]; then
        return 0                          # the UART appears after the reboot; start then
    fi
    if [ $unit_changed = 1 ] || [ $PACKAGE_CHANGED = 1 ]; then
        live systemctl restart latentdmx.service
    elif [ -z "$ROOT" ] && ! systemctl is-active -q latentdmx.service 2>/dev/null; then
        live systemctl start latentdmx.service
    fi
}

# -- uninstall ----------------------------------------------------------------------------
restore_backup() {   # put FILE back as it was before the set-up
    local file=$1 saved="$R$STATE/backup$1"
    if [ -e "$saved.absent" ]; then
        remove_path "$file"
    elif [ -e "$saved" ]; then
        put_file "$file" "$saved" 0644 "restored"
    fi
}

uninstall() {
    local file
    if [ -z "$ROOT" ] && [ "$(unit_state latentdmx.service)" != missing ]; then
        case "$(unit_state latentdmx.service)" in
            enabled|disabled|static|linked) live systemctl disable --now latentdmx.service ;;
        esac
    elif [ -n "$ROOT" ]; then
        live systemctl disable --now latentdmx.service
    fi
    if [ -e "$R$UNIT" ]; then
        remove_path "$UNIT"
        live systemctl daemon-reload
    fi
    remove_path "$PREFIX"
    [ "$(readlink "$R/usr/local/bin/latentdmx" 2>/dev/null)" = "$VENV/bin/latentdmx" ] \
        && remove_path /usr/local/bin/latentdmx

    # config.txt: our block goes, everything else stays as it is now
    if grep -qxF "$MARK_BEGIN" "$R$BOOT/config.txt"; then
        strip_block "$R$BOOT/config.txt" > "$TMP/config.txt"
        if [ -e "$R$STATE/config.no-eol" ] && [ -z "$(tail -c1 "$TMP/config.txt")" ]; then
            head -c -1 "$TMP/config.txt" > "$TMP/config.eol" && mv "$TMP/config.eol" "$TMP/config.txt"
        fi
        put_file "$BOOT/config.txt" "$TMP/config.txt" 0755 "UART block removed"
        reboot_needed
    fi
    # cmdline.txt: the original if nobody edited it since, else the console put back in front
    if [ -f "$R$STATE/cmdline.removed" ]; then
        local cmdline=$BOOT/cmdline.txt line
        if cmp -s "$R$cmdline" "$R$STATE/cmdline.written" && [ -f "$R$STATE/backup$cmdline" ]; then
            cp "$R$STATE/backup$cmdline" "$TMP/cmdline.txt"
        else
            IFS= read -r line < "$R$cmdline" || true
            printf '%s %s\n' "$(tr '\n' ' ' < "$R$STATE/cmdline.removed" | sed 's/ $//')" \
                "$line" > "$TMP/cmdline.txt"
        fi
        if ! cmp -s "$TMP/cmdline.txt" "$R$cmdline"; then
            put_file "$cmdline" "$TMP/cmdline.txt" 0755 "serial console restored"
            reboot_needed
        fi
        live systemctl unmask serial-getty@ttyAMA0.service
        if [ $PI5 = 0 ]; then live systemctl enable hciuart.service; fi
    fi
    # OLA's files as they were (OLA itself stays installed: apt-get purge ola removes it)
    if [ -d "$R$STATE/backup/etc/ola" ]; then
        while IFS= read -r file; do
            file=${file#"$R$STATE/backup"}
            restore_backup "${file%.absent}"
        done < <(find "$R$STATE/backup/etc/ola" -type f | sort)
        # /etc/ola made by this script for the files above (not by the ola package): remove
        if [ $DRY_RUN = 0 ] && [ -d "$R/etc/ola" ] && [ -z "$(ls -A "$R/etc/ola")" ]; then
            rmdir "$R/etc/ola"
        fi
        live systemctl restart olad.service
    fi

    if [ $PURGE = 1 ]; then
        remove_path "$ETC"
        if has_user latentdmx || [ -n "$ROOT" ]; then live userdel latentdmx; fi
    elif [ -e "$R$ETC/config.toml" ]; then
        say "  kept      $ETC/config.toml (remove it with --uninstall --purge)"
    fi
    remove_path /var/lib/latentdmx
}

# -- main ---------------------------------------------------------------------------------
say "LatentDMX set-up$([ $UNINSTALL = 1 ] && echo ": uninstall")$([ $DRY_RUN = 1 ] && echo " (dry run: nothing is changed)")"
say "  root      ${ROOT:-/}   boot files in $BOOT   ${MODEL:+model: $MODEL}"
if [ $DRY_RUN = 0 ] && [ $UNINSTALL = 0 ]; then mkdir -p "$R$STATE"; fi

if [ $UNINSTALL = 1 ]; then
    uninstall
else
    setup_config_txt
    setup_cmdline
    setup_services_for_uart
    setup_user
    setup_venv
    setup_command_link
    setup_config
    if [ $WITH_OLA = 1 ]; then setup_ola; fi
    setup_unit
fi

say ""
if [ $CHANGES = 0 ]; then
    say "nothing to change"
elif [ $DRY_RUN = 1 ]; then
    say "$CHANGES change(s) would be made (dry run)"
else
    say "$CHANGES change(s) made"
fi
if [ $PRINTED -gt 0 ]; then
    say "$PRINTED step(s) marked on-pi need the live system: run them on the Pi (or run this script there)"
fi
if [ $REBOOT = 1 ]; then
    say "reboot needed$([ $DRY_RUN = 1 ] && echo " (after a real run)"): the boot files changed (sudo reboot)"
elif [ -e "$R/run/reboot-required" ] && grep -qx latentdmx "$R/run/reboot-required.pkgs" 2>/dev/null; then
    say "reboot needed: an earlier run changed the boot files (sudo reboot)"
else
    say "no reboot needed"
fi
