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
#  6. /var/lib/latentdmx/{fixtures,models}: what the service plays (group latentdmx writes).
#  7. systemd/latentdmx.service installed and enabled.
# It ends by saying whether a reboot is needed.
#
# User content is never lost. Before its first edit of any file the script keeps a copy in
# /var/lib/latentdmx/setup/backup (a symlink stays a symlink: edits go to the file it points
# to). In the boot files it changes only its own config.txt block and the DMX consoles on
# cmdline.txt's first line, byte for byte (scripts/bootfiles.py): CRLF, a missing final
# newline, other lines, a second cmdline.txt line all stay. A damaged block whose extent is
# unknown, or a read-only boot partition, stops it before any change, with the fix.
# --uninstall puts back every file nobody edited since, byte for byte, and says so; in a file
# edited since, it removes only its own changes and keeps the backup.
set -euo pipefail

PROG=${0##*/}
CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# -- options ------------------------------------------------------------------------------
ROOT=""
DRY_RUN=0
UNINSTALL=0
PURGE=0
WITH_OLA=0
READ_ONLY=0
WHEEL=""
SOURCE_DIR="$CHECKOUT"
DEFAULT_CONFIG=""
BOOTFILES="$CHECKOUT/scripts/bootfiles.py"
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
  --read-only          put the root file system on a read-only overlay (Raspberry Pi OS's
                       overlayroot, as raspi-config's Overlay File System); the service's
                       state on its own small ext4 image on the boot partition; reboot after
  --read-only --uninstall
                       the root writable again (after a reboot); the state stays on its image
  --uninstall          undo the set-up: every file it changed put back (and named); keeps
                       /etc/latentdmx and the fixtures and models in /var/lib/latentdmx
  --purge              with --uninstall: also remove those and the latentdmx user
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
        --read-only) READ_ONLY=1 ;;
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
[ $PURGE = 1 ] && [ $READ_ONLY = 1 ] && die "--purge does not go with --read-only"
if [ -n "$ROOT" ]; then
    [ -d "$ROOT" ] || die "--root $ROOT: no such directory"
    ROOT=$(cd "$ROOT" && pwd)
    [ "$ROOT" = / ] && ROOT=""
elif [ "$(id -u)" != 0 ] && [ $DRY_RUN = 0 ]; then
    die "run it as root (sudo $PROG ...), or try --dry-run"
fi
command -v python3 >/dev/null || die "python3 is needed (sudo apt-get install python3)"
[ -f "$BOOTFILES" ] || die "$BOOTFILES is missing: run the script from a LatentDMX checkout"
if [ -n "$WHEEL" ]; then
    [ -f "$WHEEL" ] || die "--wheel $WHEEL: no such file"
    WHEEL=$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")
fi

# -- paths --------------------------------------------------------------------------------
R=$ROOT                                   # prefix for every file path
PREFIX=/opt/latentdmx
VENV=$PREFIX/venv
ETC=/etc/latentdmx
NETWORK_DROPIN=/etc/systemd/system/latentdmx.service.d/network.conf
SYSDIR=/var/lib/latentdmx                 # the service's fixtures/, models/, state/
STATE=$SYSDIR/setup                       # backups and records of this script (root only)
UNIT=/etc/systemd/system/latentdmx.service
READ_ONLY_DROPIN=/etc/systemd/system/latentdmx.service.d/read-only.conf
OVERLAY_TOKEN=overlayroot=tmpfs:recurse=0 # / on tmpfs over the card; other mounts stay as they are
STATE_IMAGE_NAME=latentdmx-state.img      # on the boot partition: the state under --read-only
STATE_IMAGE_SIZE=64M
# OLA plugins that would only get in the way: the dummy device and the network protocols.
OLA_OFF_PLUGINS="dummy artnet e131 espnet kinet nanoleaf openpixelcontrol osc pathport sandnet shownet"
OLA_UARTDMX_PLUGIN_ID=20                  # OLA_PLUGIN_UARTDMX in ola/plugin_id.h

# PATH (a path on the Pi) with every symlink followed, inside the root: an absolute link
# target means the Pi's /, not this machine's, under --root.
real_path() {
    local todo=$1 done="" name target hops=0
    while [ -n "$todo" ]; do
        while [[ $todo == /* ]]; do todo=${todo#/}; done
        name=${todo%%/*}
        if [[ $todo == */* ]]; then todo=${todo#*/}; else todo=""; fi
        case $name in
            ''|.) continue ;;
            ..) done=${done%/*}; continue ;;
        esac
        if [ -L "$R$done/$name" ]; then
            hops=$((hops + 1))
            [ $hops -le 40 ] || die "$1: too many levels of symbolic links"
            target=$(readlink "$R$done/$name")
            case $target in /*) done="" ;; esac
            todo="$target${todo:+/$todo}"
        else
            done="$done/$name"
        fi
    done
    printf '%s\n' "${done:-/}"
}
on_pi_file() { [ -f "$R$(real_path "$1")" ]; }
# "FILE" or "FILE -> REAL" when it is a symlink
shown_path() { local real; real=$(real_path "$1"); [ "$real" = "$1" ] && echo "$1" || echo "$1 -> $real"; }
bootfiles() { python3 "$BOOTFILES" "$@"; }

if on_pi_file /boot/firmware/config.txt; then
    BOOT=/boot/firmware                   # Raspberry Pi OS bookworm and later
elif on_pi_file /boot/config.txt && ! grep -q "^DO NOT EDIT" "$R$(real_path /boot/config.txt)"; then
    BOOT=/boot                            # bullseye and older
elif on_pi_file /boot/firmware/cmdline.txt; then
    BOOT=/boot/firmware                   # no config.txt (the firmware's defaults): one is made
elif on_pi_file /boot/cmdline.txt; then
    BOOT=/boot
else
    die "no config.txt or cmdline.txt in $R/boot/firmware or $R/boot: is this Raspberry Pi OS?"
fi
BOOT_REAL=$(real_path "$BOOT")

MODEL=""
[ -r "$R/proc/device-tree/model" ] && MODEL=$(tr -d '\0' < "$R/proc/device-tree/model")
PI5=0
case "$MODEL" in *"Raspberry Pi 5"*|*"Compute Module 5"*) PI5=1 ;; esac   # and Pi 500

# Old firmware (before 2020's disable-bt.dtbo, the pi3-disable-bt days and earlier) may run
# the PL011 from a 3 MHz clock: 3 MHz / 16 = 187500 baud max, below DMX's 250000. There
# init_uart_clock=16000000 gives 16 MHz / 16 / 250000 = divisor 4, exactly 250 kbaud. Newer
# firmware and kernels clock the PL011 at 48 MHz themselves (divisor 12), so no line is added.
OLD_FIRMWARE=0
if [ -d "$R$BOOT_REAL/overlays" ] && [ ! -e "$R$BOOT_REAL/overlays/disable-bt.dtbo" ] \
        && [ -e "$R$BOOT_REAL/overlays/pi3-disable-bt.dtbo" ]; then
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

state_dir() { mkdir -p "$R$STATE" && chmod 0700 "$R$STATE"; }

# A power cut (or a kill) at any moment leaves every file this script writes as it was or as
# it is meant to be, never half written: the new content goes to a temp file in the same
# folder, is flushed to the card (sync FILE: fsync), renamed over the old one, and the folder
# flushed too. A re-run then finds each step done or not done, and finishes the job.
# atomic_put SRC DEST [MODE]: DEST (a real path here) gets SRC's bytes; MODE for a new file
# (an existing one keeps its mode and owner).
atomic_put() {
    local src=$1 dest=$2 mode=${3:-} tmp="$2.latentdmx-tmp"
    rm -f -- "$tmp"
    if [ -f "$dest" ] && [ ! -L "$dest" ]; then cp -p -- "$dest" "$tmp"; fi
    cat -- "$src" > "$tmp"
    if [ -n "$mode" ] && { [ ! -f "$dest" ] || [ -L "$dest" ]; }; then chmod "$mode" "$tmp"; fi
    sync -- "$tmp"
    mv -f -- "$tmp" "$dest"
    sync -- "$(dirname "$dest")"
}
# atomic_text DEST: DEST (a real path here) gets stdin
atomic_text() { cat > "$TMP/atomic-text"; atomic_put "$TMP/atomic-text" "$1" "${2:-}"; }

# Keep a copy of FILE as it was before this script first touched it (for --uninstall): its
# content (a symlink's: the file it points to), a symlink's target in FILE.link, or
# FILE.absent when there was none.
backup_once() {
    local file=$1 dest="$R$STATE/backup$1" real
    [ $DRY_RUN = 1 ] && return 0
    if [ -e "$dest" ] || [ -e "$dest.absent" ]; then return 0; fi
    if [ -e "$dest.link" ] && { [ ! -L "$R$file" ] || [ ! -f "$R$(real_path "$file")" ]; }; then
        return 0                          # a symlink to nothing: its target is the backup
    fi
    state_dir
    mkdir -p "$(dirname "$dest")"
    # the backup's own parts first, its main file (or .absent) last: a run killed before
    # that takes the backup again
    real=$(real_path "$file")
    if [ -L "$R$file" ]; then
        readlink "$R$file" | atomic_text "$dest.link"
        [ -f "$R$real" ] || return 0
    fi
    if [ -f "$R$real" ]; then
        atomic_put "$R$real" "$dest" "$(stat -c %a "$R$real")"
        touch -r "$R$real" "$dest"
    else
        : | atomic_text "$dest.absent"
    fi
}

# The set-up can replace FILE (a path on the Pi): stop before any change when it cannot.
need_writable() {
    local file=$1 real dir mnt
    real=$(real_path "$file")
    dir=$(dirname "$R$real")
    if { [ -e "$R$real" ] && [ ! -w "$R$real" ]; } || [ ! -w "$dir" ]; then
        mnt=$(findmnt -n -o TARGET --target "$dir" 2>/dev/null || echo "${dir#"$R"}")
        if [ $DRY_RUN = 1 ]; then
            say "  warning   $(shown_path "$file") is read-only: a real run would stop here"
            return 0
        fi
        die "$(shown_path "$file") is read-only (a read-only file system or file mode) - make it writable (sudo mount -o remount,rw $mnt, or chmod u+w) and run again; nothing was changed"
    fi
}

# Make FILE (a path on the Pi) hold the content of NEWFILE; MODE for a new file. A symlink
# stays a symlink and the file it points to is edited ("replace" as the 5th argument: the
# symlink itself is replaced, for files this script owns). $PUT_LABEL names the action.
put_file() {
    local file=$1 new=$2 mode=${3:-0644} what=${4:-} how=${5:-through} real label
    label=${PUT_LABEL:-}
    real=$(real_path "$file")
    if [ "$how" = replace ] && [ -L "$R$file" ]; then
        real=$file
    elif [ -f "$R$real" ] && cmp -s "$new" "$R$real"; then
        return 0
    fi
    CHANGES=$((CHANGES + 1))
    if [ $DRY_RUN = 1 ]; then
        [ "$label" = restored ] && label=restore
        if [ -f "$R$real" ] && [ ! -L "$R$real" ]; then
            note "would-${label:-edit}" "$(shown_path "$file")${what:+ ($what)}"
            diff -u --label "$file" --label "$file (new)" "$R$real" "$new" | sed 's/^/      /' || true
        else
            note "would-${label:-add}" "$file${what:+ ($what)}"
        fi
        return 0
    fi
    if [ -L "$R$real" ]; then
        note "${label:-add}" "$file${what:+ ($what)}"
        rm -f -- "$R$real"
        atomic_put "$new" "$R$real" "$mode"
    elif [ -f "$R$real" ]; then
        note "${label:-edit}" "$(shown_path "$file")${what:+ ($what)}"
        # same directory + fsync + rename: never a half-written file, even on the FAT boot
        # partition; the copy keeps the file's mode and owner
        atomic_put "$new" "$R$real"
    else
        note "${label:-add}" "$(shown_path "$file")${what:+ ($what)}"
        mkdir -p "$(dirname "$R$real")"
        atomic_put "$new" "$R$real" "$mode"
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

make_dir() {   # DIR with MODE; "fix" as the 3rd argument: also the mode of an existing one
    local dir=$1 mode=$2 fix=${3:-}
    if [ -d "$R$dir" ]; then
        [ "$fix" = fix ] || return 0
        [ "$(stat -c %a "$R$dir")" = "${mode#0}" ] && return 0
        CHANGES=$((CHANGES + 1))
        if [ $DRY_RUN = 1 ]; then note "would-chmod" "$mode $dir/"; return 0; fi
        note "chmod" "$mode $dir/"
        chmod "$mode" "$R$dir"
        return 0
    fi
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

# apt-get install, after one `apt-get update` per run: a fresh image's package lists are
# empty or stale, and an install from them fails (404s) or gets old versions.
APT_UPDATED=0
apt_install() {
    if [ $APT_UPDATED = 0 ]; then
        live apt-get update
        APT_UPDATED=1
    fi
    live apt-get install -y --no-install-recommends "$@"
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
# The block's lines between its markers (scripts/bootfiles.py adds the markers).
uart_block() {
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
}

# config.txt and the files it includes (`include NAME`), as paths on the Pi.
CONFIG_FILES=()
config_files() {
    if [ ${#CONFIG_FILES[@]} = 0 ]; then
        CONFIG_FILES=("$BOOT/config.txt")
        mapfile -t -O 1 CONFIG_FILES < <(bootfiles includes "$R" "$BOOT" "$BOOT/config.txt")
    fi
}

# The file that holds the block: the one (config.txt or an included file) that has its
# markers, else config.txt. Two files with markers: stop, the user must keep one.
block_file() {
    local file i reals=() counts=() found=()
    config_files
    for file in "${CONFIG_FILES[@]}"; do reals+=("$R$(real_path "$file")"); done
    mapfile -t counts < <(bootfiles block-count "${reals[@]}")
    for i in "${!CONFIG_FILES[@]}"; do
        [ "${counts[$i]:-0}" = 0 ] || found+=("${CONFIG_FILES[$i]}")
    done
    if [ ${#found[@]} -gt 1 ]; then
        die "${found[0]} and ${found[1]} both have a latentdmx block - delete one of them (from its '# >>> latentdmx' line to its '# <<< latentdmx <<<' line) and run again; nothing was changed"
    fi
    echo "${found[0]:-$BOOT/config.txt}"
}

# The blocks this script wrote before (to tell them from a block edited by hand).
known_blocks() {
    [ -f "$R$STATE/config.block" ] && printf '%s\n' --known "$R$STATE/config.block"
    return 0
}

CONFIG_FILE=""
plan_config_txt() {   # the new config.txt (or included file) in $TMP/config.txt
    local real notes known=()
    block_file > "$TMP/block-file"          # not $(...): config_files caches in this shell
    CONFIG_FILE=$(cat "$TMP/block-file")
    real=$(real_path "$CONFIG_FILE")
    uart_block > "$TMP/block"
    mapfile -t known < <(known_blocks)
    if ! notes=$(bootfiles block-set "$R$real" "$TMP/block" "$TMP/config.txt" \
            --name "$CONFIG_FILE" "${known[@]}" 2>"$TMP/err"); then
        die "$(cat "$TMP/err"); nothing was changed"
    fi
    CONFIG_NOTES=$notes
    if [ -f "$R$real" ] && cmp -s "$TMP/config.txt" "$R$real"; then
        CONFIG_NOTES=unchanged
    else
        need_writable "$CONFIG_FILE"
    fi
}

setup_config_txt() {
    local file=$CONFIG_FILE real saved
    real=$(real_path "$file")
    if [ "$CONFIG_NOTES" != unchanged ]; then
        backup_once "$file"
        if [[ $CONFIG_NOTES == *edited-block* ]] && [ $DRY_RUN = 0 ]; then
            saved="$STATE/saved$file.$(date +%Y%m%d-%H%M%S)"
            mkdir -p "$(dirname "$R$saved")"
            cp -p "$R$real" "$R$saved"
            say "  saved     $file as it was: its latentdmx block had lines this script did not write (now $saved)"
        fi
        [[ $CONFIG_NOTES == *repaired* ]] \
            && say "  note      $file: the latentdmx block's markers were damaged or doubled; made whole again"
        if [[ $CONFIG_NOTES == *added-eol* ]] && [ $DRY_RUN = 0 ]; then
            state_dir
            : | atomic_text "$R$STATE/config.no-eol"   # uninstall takes the newline away again
        fi
        put_file "$file" "$TMP/config.txt" 0755 "UART for DMX"
        reboot_needed
    fi
    # What the block is and where, for --uninstall: also when config.txt was already done
    # (a run killed between writing config.txt and these two finishes them here)
    if [ $DRY_RUN = 0 ]; then
        if ! cmp -s "$TMP/block" "$R$STATE/config.block" 2>/dev/null; then
            state_dir
            atomic_put "$TMP/block" "$R$STATE/config.block"
        fi
        if [ "$(cat "$R$STATE/config.file" 2>/dev/null)" != "$file" ]; then
            echo "$file" | atomic_text "$R$STATE/config.file"
        fi
    fi
    local f
    config_files
    for f in "${CONFIG_FILES[@]}"; do
        if grep -Eq '^[[:space:]]*dtoverlay=(pi3-)?miniuart-bt' "$R$(real_path "$f")" 2>/dev/null; then
            say "  warning   $f has dtoverlay=miniuart-bt: it fights disable-bt; remove that line"
        fi
    done
}

# -- cmdline.txt --------------------------------------------------------------------------
# A console on the DMX UART would print boot messages to the lights and a getty would read
# from it. On a Pi 5 serial0 is the separate debug connector (ttyAMA10), so it may stay.
# Only those tokens leave the first line (the one the firmware passes to the kernel); every
# other byte stays (scripts/bootfiles.py).
CMDLINE_REMOVED=()
CMDLINE_MORE_LINES=0
plan_cmdline() {   # the new cmdline.txt in $TMP/cmdline.txt; the consoles it drops
    local file=$BOOT/cmdline.txt real out kind token flags=()
    real=$(real_path "$file")
    [ -f "$R$real" ] || return 0
    [ $PI5 = 1 ] && flags=(--pi5)
    out=$(bootfiles cmdline-remove "$R$real" "$TMP/cmdline.txt" "${flags[@]}" 2>"$TMP/err") \
        || die "$(cat "$TMP/err")"
    while read -r kind token; do
        case $kind in
            removed) CMDLINE_REMOVED+=("$token") ;;
            more-lines) CMDLINE_MORE_LINES=1 ;;
        esac
    done <<< "$out"
    [ ${#CMDLINE_REMOVED[@]} = 0 ] || need_writable "$file"
}

setup_cmdline() {
    local file=$BOOT/cmdline.txt token
    [ -f "$R$(real_path "$file")" ] || { say "  warning   no $file; skipping the serial console"; return 0; }
    [ ${#CMDLINE_REMOVED[@]} = 0 ] && return 0
    backup_once "$file"
    # what is removed is recorded first (for --uninstall): a run killed after the edit would
    # find nothing left to remove, and so nothing to record
    if [ $DRY_RUN = 0 ]; then
        state_dir
        { cat "$R$STATE/cmdline.removed" 2>/dev/null || true
          printf '%s\n' "${CMDLINE_REMOVED[@]}"; } | awk '!seen[$0]++' \
            | atomic_text "$R$STATE/cmdline.removed"  # every console ever removed, once each
    fi
    put_file "$file" "$TMP/cmdline.txt" 0755 "serial console ${CMDLINE_REMOVED[*]} removed"
    [ $CMDLINE_MORE_LINES = 1 ] \
        && say "  note      $file has more than one line: the firmware reads the first; the others are kept as they are"
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
        apt_install python3-venv python3-pip
    fi
    # rpi-lgpio drives the RS-485 HAT's driver-enable pin on every Pi, the Pi 5 included (it
    # provides the RPi.GPIO module; the old RPi.GPIO package does not work on a Pi 5). The
    # venv sees it (and ola-python) through the system packages.
    if ! pkg_installed python3-rpi-lgpio; then
        apt_install python3-rpi-lgpio
    fi
    # 32-bit Raspberry Pi OS (armhf): PyPI has no NumPy, Pillow or zstandard wheel for it;
    # Debian's (NumPy 1.24.2, Pillow 9.4, zstandard 0.20: the oldest LatentDMX supports, its
    # fast test tier runs on them) reach the venv through the system packages, so pip needs
    # no compiler and no piwheels.org (which Pi OS's /etc/pip.conf names as well)
    if [ -z "$ROOT" ] && [ "$(dpkg --print-architecture 2>/dev/null)" = armhf ]; then
        local p missing=()
        for p in python3-numpy python3-pil python3-zstandard; do
            pkg_installed "$p" || missing+=("$p")
        done
        [ ${#missing[@]} = 0 ] || apt_install "${missing[@]}"
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
    backup_once "$link"                   # someone else's latentdmx there comes back on uninstall
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

# -- where the service finds fixtures and models ------------------------------------------
# /var/lib/latentdmx/fixtures and models: the service (user latentdmx, no home) reads them;
# root and the latentdmx group (operators, --operator) write them - setgid, so what they put
# there stays in the group. The service itself writes only state/ (StateDirectory= in the
# unit, made by systemd) and cannot change fixtures or models (ProtectSystem=strict).
setup_system_dirs() {
    local dir new
    make_dir "$SYSDIR" 0755 fix
    for dir in fixtures models; do
        new=0
        [ -d "$R$SYSDIR/$dir" ] || new=1
        make_dir "$SYSDIR/$dir" 2775 fix
        if ! user_will_exist latentdmx; then continue; fi
        if [ $new = 1 ] || { [ -z "$ROOT" ] && [ "$(stat -c %G "$SYSDIR/$dir")" != latentdmx ]; }; then
            live chgrp latentdmx "$SYSDIR/$dir"
        fi
    done
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
        apt_install ola ola-python
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
    if [ -L "$R$UNIT" ] || ! cmp -s "$src" "$R$UNIT"; then
        backup_once "$UNIT"
        put_file "$UNIT" "$src" 0644 "the service" replace
        unit_changed=1
        [ -z "$ROOT" ] && live systemctl daemon-reload
    fi
    # The unit allows only localhost; the config's network outputs (sACN/Art-Net groups and
    # nodes), a LAN web page and OSC senders go into a drop-in made from the config.
    if [ -n "$ROOT" ] || [ $DRY_RUN = 1 ] || ! "$VENV/bin/latentdmx" service-network --check \
            --config "$ETC/config.toml" >/dev/null 2>&1; then
        live "$VENV/bin/latentdmx" service-network --install --config "$ETC/config.toml"
        if [ -z "$ROOT" ] && [ $DRY_RUN = 0 ]; then
            CHANGES=$((CHANGES + 1))
            unit_changed=1
            live systemctl daemon-reload
        fi
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

# -- read-only root -----------------------------------------------------------------------
# Raspberry Pi OS's Overlay File System (raspi-config) is Debian's overlayroot: with
# `overlayroot=tmpfs` on cmdline.txt the initramfs mounts the card's root read-only under a
# tmpfs, so nothing is written to it and a power cut cannot damage it; every change is lost
# at the next boot. `:recurse=0` keeps the other mounts (the boot partition) as they are.
# The service's state (presets, the sACN CID, the web token) must survive a reboot: it lives
# in a small ext4 image on the boot partition ($STATE_IMAGE_NAME), loop-mounted on
# /var/lib/latentdmx/state by /etc/fstab (ext4's journal: a cut mid-write costs at most that
# write). The image is made once, from what the state folder holds then.
fstab_line() {
    printf '%s %s ext4 loop,noatime,nofail,x-systemd.requires-mounts-for=%s 0 0\n' \
        "$BOOT_REAL/$STATE_IMAGE_NAME" "$SYSDIR/state" "$BOOT_REAL"
}

cmdline_has_overlay() { head -n 1 "$R$(real_path "$BOOT/cmdline.txt")" | tr ' ' '\n' | grep -q '^overlayroot='; }

# The root is an overlay now (the live system): only --read-only --uninstall may run.
overlay_active() { [ -z "$ROOT" ] && [ "$(findmnt -n -o FSTYPE / 2>/dev/null)" = overlay ]; }

setup_read_only() {
    local img="$BOOT_REAL/$STATE_IMAGE_NAME" cmd real
    pkg_installed overlayroot || apt_install overlayroot
    if [ ! -e "$R$img" ]; then
        [ -z "$ROOT" ] && live systemctl stop latentdmx.service
        CHANGES=$((CHANGES + 1))
        if [ $DRY_RUN = 1 ]; then
            note "would-add" "$img (ext4, $STATE_IMAGE_SIZE: the service's state)"
        elif ! command -v mke2fs >/dev/null; then
            note "on-pi" "mke2fs -t ext4 -d $SYSDIR/state $img $STATE_IMAGE_SIZE"
            PRINTED=$((PRINTED + 1))
        else
            note "add" "$img (ext4, $STATE_IMAGE_SIZE: the service's state, from $SYSDIR/state)"
            rm -f -- "$R$img.latentdmx-tmp"
            cmd=(mke2fs -q -F -t ext4 -L latentdmx-state -E root_owner=0:0)
            [ -d "$R$SYSDIR/state" ] && cmd+=(-d "$R$SYSDIR/state")
            "${cmd[@]}" "$R$img.latentdmx-tmp" "$STATE_IMAGE_SIZE" >/dev/null
            sync -- "$R$img.latentdmx-tmp"
            mv -f -- "$R$img.latentdmx-tmp" "$R$img"
            sync -- "$R$BOOT_REAL"
        fi
    fi
    make_dir "$SYSDIR/state" 0750
    real=$(real_path /etc/fstab)
    if [ -f "$R$real" ]; then cp "$R$real" "$TMP/fstab"; else : > "$TMP/fstab"; fi
    if ! grep -qF "$(fstab_line)" "$TMP/fstab"; then
        grep -vF " $SYSDIR/state " "$TMP/fstab" > "$TMP/fstab.new" || true
        fstab_line >> "$TMP/fstab.new"
        backup_once /etc/fstab
        put_file /etc/fstab "$TMP/fstab.new" 0644 "the state image on $SYSDIR/state"
    fi
    printf '[Unit]\n# the state folder is the image on the boot partition (setup-pi.sh --read-only)\nRequiresMountsFor=%s\n' \
        "$SYSDIR/state" > "$TMP/read-only.conf"
    put_file "$READ_ONLY_DROPIN" "$TMP/read-only.conf" 0644 "the service waits for its state"
    if ! cmdline_has_overlay; then
        need_writable "$BOOT/cmdline.txt"
        backup_once "$BOOT/cmdline.txt"
        real=$(real_path "$BOOT/cmdline.txt")
        { printf '%s ' "$OVERLAY_TOKEN"; cat "$R$real"; } > "$TMP/cmdline.ro"
        put_file "$BOOT/cmdline.txt" "$TMP/cmdline.ro" 0755 "root on a read-only overlay"
        reboot_needed
    fi
    [ -z "$ROOT" ] && live systemctl daemon-reload
    say "  note      read-only root after the reboot: changes outside $SYSDIR/state are lost at"
    say "            every boot (logs too); to update or change the set-up, run --read-only"
    say "            --uninstall, reboot, run the set-up, then --read-only again"
}

uninstall_read_only() {
    local real
    real=$(real_path "$BOOT/cmdline.txt")
    if [ -f "$R$real" ] && cmdline_has_overlay; then
        need_writable "$BOOT/cmdline.txt"
        { head -n 1 "$R$real" | tr ' ' '\n' | grep -v '^overlayroot=' | paste -sd ' ' -
          tail -n +2 "$R$real"; } > "$TMP/cmdline.rw"
        put_file "$BOOT/cmdline.txt" "$TMP/cmdline.rw" 0755 "root writable again"
        reboot_needed
    fi
    say "  note      the state stays on $BOOT_REAL/$STATE_IMAGE_NAME (mounted on $SYSDIR/state);"
    say "            --uninstall takes that away too, once the root is writable (after the reboot)"
}

# The full uninstall: the state image's mount and the drop-in (the image is kept: it holds
# the state; --purge removes it).
uninstall_state_image() {
    local real
    remove_path "$READ_ONLY_DROPIN"
    real=$(real_path /etc/fstab)
    if [ -f "$R$real" ] && grep -qF " $SYSDIR/state " "$R$real"; then
        grep -vF " $SYSDIR/state " "$R$real" > "$TMP/fstab.rw" || true
        if { [ -f "$R$STATE/backup/etc/fstab" ] && cmp -s "$TMP/fstab.rw" "$R$STATE/backup/etc/fstab"; } \
                || { [ -e "$R$STATE/backup/etc/fstab.absent" ] && [ ! -s "$TMP/fstab.rw" ]; }; then
            restore_backup /etc/fstab
        else
            put_file /etc/fstab "$TMP/fstab.rw" 0644 "the state image's line removed"
        fi
    fi
    if [ -e "$R$BOOT_REAL/$STATE_IMAGE_NAME" ]; then
        if [ $PURGE = 1 ]; then
            remove_path "$BOOT_REAL/$STATE_IMAGE_NAME"
        else
            say "  kept      $BOOT_REAL/$STATE_IMAGE_NAME (the state under --read-only; --purge removes it)"
        fi
    fi
}

# -- uninstall ----------------------------------------------------------------------------
UNRESTORED=()        # files edited since the set-up: only the set-up's own changes came out

has_backup() { [ -e "$R$STATE/backup$1" ] || [ -e "$R$STATE/backup$1.absent" ] || [ -e "$R$STATE/backup$1.link" ]; }

# Put FILE back as it was before the set-up, byte for byte, and say so: its content (through
# a symlink, or replacing what is there with "replace"), a symlink it was, or no file at all.
# Returns 1 when there is no backup of it.
restore_backup() {
    local file=$1 how=${2:-through} saved="$R$STATE/backup$1" target
    local what="as it was before the set-up"
    if [ -e "$saved.link" ]; then
        target=$(cat "$saved.link")
        if [ ! -L "$R$file" ] || [ "$(readlink "$R$file")" != "$target" ]; then
            CHANGES=$((CHANGES + 1))
            if [ $DRY_RUN = 1 ]; then
                note "would-restore" "$file -> $target (the symlink it was)"
            else
                note "restored" "$file -> $target (the symlink it was)"
                rm -f -- "$R$file"
                ln -s "$target" "$R$file"
            fi
        fi
        [ ! -e "$saved" ] || [ $DRY_RUN = 1 ] \
            || PUT_LABEL=restored put_file "$file" "$saved" "$(stat -c %a "$saved")" "the content it had"
    elif [ -e "$saved.absent" ]; then
        if [ -e "$R$file" ] || [ -L "$R$file" ]; then
            remove_path "$file"
            say "            (there was no $file before the set-up)"
        fi
    elif [ -e "$saved" ]; then
        PUT_LABEL=restored put_file "$file" "$saved" "$(stat -c %a "$saved")" "$what" "$how"
    else
        return 1
    fi
}

# A boot file is restored from its backup, byte for byte, when taking the set-up's own
# change out of it gives exactly the backup (so nobody else changed it since); otherwise only
# the set-up's change is taken out and the backup is kept.
CONFIG_ACTION=none
uninstall_plan_config() {   # before any change: restore, take the block out, or refuse
    local real notes known=() flags=() saved
    CONFIG_FILE=$(cat "$R$STATE/config.file" 2>/dev/null || true)
    if [ -z "$CONFIG_FILE" ]; then
        block_file > "$TMP/block-file"
        CONFIG_FILE=$(cat "$TMP/block-file")
    fi
    real=$(real_path "$CONFIG_FILE")
    saved="$R$STATE/backup$CONFIG_FILE"
    [ -f "$R$real" ] && [ "$(bootfiles block-count "$R$real")" != 0 ] || return 0
    uart_block > "$TMP/block"
    mapfile -t known < <(known_blocks)
    [ -e "$R$STATE/config.no-eol" ] && flags=(--drop-added-eol)
    if ! notes=$(bootfiles block-strip "$R$real" "$TMP/config.txt" --name "$CONFIG_FILE" \
            --known "$TMP/block" "${known[@]}" "${flags[@]}" 2>"$TMP/err"); then
        die "$(cat "$TMP/err"); nothing was changed"
    fi
    CONFIG_NOTES=$notes
    if { [ -f "$saved" ] && cmp -s "$saved" "$TMP/config.txt"; } \
            || { [ -e "$saved.absent" ] && [ ! -s "$TMP/config.txt" ]; }; then
        CONFIG_ACTION=restore
    else
        CONFIG_ACTION=remove-block
    fi
    need_writable "$CONFIG_FILE"
}

CMDLINE_ACTION=none
uninstall_plan_cmdline() {
    local file=$BOOT/cmdline.txt real tokens=() flags=()
    real=$(real_path "$file")
    [ -f "$R$real" ] || return 0
    [ $PI5 = 1 ] && flags=(--pi5)
    if [ -f "$R$STATE/backup$file" ] && ! cmp -s "$R$STATE/backup$file" "$R$real" \
            && bootfiles cmdline-remove "$R$real" "$TMP/cmdline.now" "${flags[@]}" >/dev/null \
            && bootfiles cmdline-remove "$R$STATE/backup$file" "$TMP/cmdline.was" "${flags[@]}" \
                >/dev/null \
            && cmp -s "$TMP/cmdline.now" "$TMP/cmdline.was"; then
        CMDLINE_ACTION=restore               # they differ in DMX consoles only
    elif [ -f "$R$STATE/cmdline.removed" ]; then
        mapfile -t tokens < "$R$STATE/cmdline.removed"
        bootfiles cmdline-restore "$R$real" "$TMP/cmdline.txt" "${tokens[@]}"
        cmp -s "$TMP/cmdline.txt" "$R$real" || CMDLINE_ACTION=merge
    fi
    [ $CMDLINE_ACTION = none ] || need_writable "$file"
}

uninstall_boot_files() {
    case $CONFIG_ACTION in
        restore) restore_backup "$CONFIG_FILE"; reboot_needed ;;
        remove-block)
            put_file "$CONFIG_FILE" "$TMP/config.txt" 0755 \
                "UART block removed; it was edited since the set-up, so the rest stays as it is now"
            [[ $CONFIG_NOTES == *kept-all* ]] \
                && say "  note      an [all] line stays where the block was, so the lines after it still apply to every Pi"
            has_backup "$CONFIG_FILE" && UNRESTORED+=("$CONFIG_FILE")
            reboot_needed ;;
    esac
    case $CMDLINE_ACTION in
        restore) restore_backup "$BOOT/cmdline.txt"; reboot_needed ;;
        merge)
            put_file "$BOOT/cmdline.txt" "$TMP/cmdline.txt" 0755 \
                "serial console put back; it was edited since the set-up, so the rest stays as it is now"
            has_backup "$BOOT/cmdline.txt" && UNRESTORED+=("$BOOT/cmdline.txt")
            reboot_needed ;;
    esac
    if [ -f "$R$STATE/cmdline.removed" ]; then
        live systemctl unmask serial-getty@ttyAMA0.service
        if [ $PI5 = 0 ]; then live systemctl enable hciuart.service; fi
    fi
}

# /var/lib/latentdmx: fixtures, models and the service's state are kept (they are the
# user's) unless --purge; the set-up's own records go, unless they hold originals of files
# edited since.
uninstall_system_dirs() {
    local dir n
    for dir in fixtures models state; do
        [ -d "$R$SYSDIR/$dir" ] || continue
        n=$(find "$R$SYSDIR/$dir" -mindepth 1 -maxdepth 1 | wc -l)
        if [ $PURGE = 1 ] || [ "$n" -eq 0 ]; then
            remove_path "$SYSDIR/$dir"
        else
            say "  kept      $SYSDIR/$dir/ ($n item(s); --uninstall --purge removes it)"
        fi
    done
    if [ ${#UNRESTORED[@]} -gt 0 ]; then
        say "  kept      $STATE/backup: the originals of ${UNRESTORED[*]} (edited since the set-up, so only the set-up's own changes were taken out; compare, then remove it)"
    else
        remove_path "$STATE"
    fi
    if [ $DRY_RUN = 0 ] && [ -d "$R$SYSDIR" ] && [ -z "$(ls -A "$R$SYSDIR")" ]; then
        remove_path "$SYSDIR"
    fi
}

uninstall() {
    local file
    if cmdline_has_overlay || overlay_active; then
        die "the root is (or after a reboot will be) a read-only overlay: run --read-only --uninstall, reboot, then --uninstall again; nothing was changed"
    fi
    uninstall_plan_config                   # refusals come before any change
    uninstall_plan_cmdline
    if [ -z "$ROOT" ] && [ "$(unit_state latentdmx.service)" != missing ]; then
        case "$(unit_state latentdmx.service)" in
            enabled|disabled|static|linked) live systemctl disable --now latentdmx.service ;;
        esac
    elif [ -n "$ROOT" ]; then
        live systemctl disable --now latentdmx.service
    fi
    remove_path "$NETWORK_DROPIN"          # written by `latentdmx service-network`
    uninstall_state_image
    if [ -d "$R${NETWORK_DROPIN%/*}" ] && [ -z "$(ls -A "$R${NETWORK_DROPIN%/*}")" ]; then
        remove_path "${NETWORK_DROPIN%/*}"
    fi
    if [ -e "$R$UNIT" ] || [ -L "$R$UNIT" ]; then
        restore_backup "$UNIT" replace || remove_path "$UNIT"
        live systemctl daemon-reload
    fi
    remove_path "$PREFIX"
    if [ "$(readlink "$R/usr/local/bin/latentdmx" 2>/dev/null)" = "$VENV/bin/latentdmx" ]; then
        restore_backup /usr/local/bin/latentdmx replace || remove_path /usr/local/bin/latentdmx
    fi

    uninstall_boot_files
    # OLA's files as they were (OLA itself stays installed: apt-get purge ola removes it)
    if [ -d "$R$STATE/backup/etc/ola" ]; then
        while IFS= read -r file; do
            restore_backup "$file"
        done < <(find "$R$STATE/backup/etc/ola" -type f | sed -e "s|^$R$STATE/backup||" \
                     -e 's/\.absent$//' -e 's/\.link$//' | sort -u)
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
    uninstall_system_dirs
}

# -- main ---------------------------------------------------------------------------------
say "LatentDMX set-up$([ $UNINSTALL = 1 ] && echo ": uninstall")$([ $DRY_RUN = 1 ] && echo " (dry run: nothing is changed)")"
say "  root      ${ROOT:-/}   boot files in $BOOT$([ "$BOOT_REAL" != "$BOOT" ] && echo " -> $BOOT_REAL")   ${MODEL:+model: $MODEL}"

if [ $READ_ONLY = 1 ] && [ $UNINSTALL = 1 ]; then
    uninstall_read_only
elif [ $UNINSTALL = 1 ]; then
    uninstall
else
    if overlay_active; then
        die "the root is a read-only overlay (--read-only): changes would be lost at the next boot - run --read-only --uninstall, reboot, run the set-up again (then --read-only again); nothing was changed"
    fi
    plan_config_txt                       # a damaged block or a read-only boot partition
    plan_cmdline                          # stops the set-up here, before any change
    setup_config_txt
    setup_cmdline
    setup_services_for_uart
    setup_user
    setup_system_dirs
    setup_venv
    setup_command_link
    setup_config
    if [ $WITH_OLA = 1 ]; then setup_ola; fi
    setup_unit
    if [ $READ_ONLY = 1 ]; then setup_read_only; fi
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
