#!/usr/bin/env bash
# An emulated Raspberry Pi: Debian bookworm arm64 and armhf roots under qemu-user.
#
#   sudo scripts/pi-emulate.sh [--arch arm64|armhf|both] [--seconds 5] [--cache DIR]
#                              [--out FILE] [--no-tests] [--reinstall] [--cross-seconds 60]
#
# For each architecture it
#  1. builds a bookworm root with debootstrap (qemu-user-static through binfmt runs its
#     binaries), once: roots are kept in --cache (default /var/cache/latentdmx-pi-emu,
#     outside git; LATENTDMX_PI_ROOTS too), so a second run starts in seconds;
#  2. installs LatentDMX as docs/raspberry-pi.md says: Debian's ola and ola-python, a venv in
#     /opt/latentdmx/venv with --system-site-packages, `pip install SRC[ola]`; on armhf (32-bit
#     Pi OS, no NumPy/Pillow wheels on PyPI) Debian's python3-numpy, python3-pil and friends
#     first, which the venv then uses. The first install is timed (that time is kept and
#     printed on later runs); later runs only reinstall this checkout's package;
#  3. plays every bundled model (models/*) on the simulator for --seconds on the real frame
#     clock (bench/paced.py: frames, late frames), renders a show (`latentdmx render`);
#  4. runs a test subset inside: test_patch, test_mapper, test_config, test_safety, and
#     test_output_ola (a real olad in the root, started as user olad);
#  5. on arm64: the cross-CPU lockstep test (tests/test_cross_cpu.py): the same fixed-seed
#     show recorded on this machine and in the emulated root, compared frame by frame.
# Figures go to stdout and --out (default bench/results/pi_emulate.txt).
#
# It needs root (debootstrap, chroot, mounts). Everything it mounts is in a private mount
# namespace (unshare -m): nothing is left mounted when it ends, however it ends. Not in CI:
# the first run downloads ~400 MB and takes about 50 minutes on a shared 2-core machine.
# Missing host tools (debootstrap, qemu-user-static, binfmt-support) are installed with
# apt-get first, and it says so. From a git worktree (no .venv of its own) give this
# machine's Python with pytest: LATENTDMX_HOST_PYTHON=/path/to/.venv/bin/python.
#
# What emulation cannot show: qemu-user runs the Pi's instructions on this machine's kernel,
# so there is no PL011 UART (the 250 kbaud ioctl, BREAK), no GPIO, no Pi kernel or firmware,
# and timing is this machine's, slowed by translation (late frames here say nothing about a
# Pi's). See docs/raspberry-pi.md, "An emulated Pi".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${LATENTDMX_PI_ROOTS:-/var/cache/latentdmx-pi-emu}
ARCHES=(arm64 armhf)
PLAY_S=5
OUT=$HERE/bench/results/pi_emulate.txt
RUN_TESTS=1
REINSTALL=0
CROSS_S=60
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# this machine's Python with the project's dev tools (pytest): the checkout's .venv, or
# LATENTDMX_HOST_PYTHON (a git worktree has no .venv of its own)
HOST_PY=${LATENTDMX_HOST_PYTHON:-$HERE/.venv/bin/python}
TESTS=(tests/test_patch.py tests/test_mapper.py tests/test_config.py tests/test_safety.py
       tests/test_output_ola.py)
# Debian packages in every root; armhf adds the compiled libraries PyPI has no armv7l wheel of
PKGS=(python3-venv python3-pip ola ola-python procps)
PKGS_ARMHF=(python3-numpy python3-pil python3-zstandard python3-cffi)
TEST_PIP=(pytest pytest-xdist hypothesis tomli-w)

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "pi-emulate: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case $1 in
        --arch) case ${2:?} in both) ARCHES=(arm64 armhf) ;; arm64|armhf) ARCHES=("$2") ;;
                    *) die "--arch: arm64, armhf or both, not '$2'" ;; esac; shift ;;
        --seconds) PLAY_S=${2:?}; shift ;;
        --cache) CACHE=${2:?}; shift ;;
        --out) OUT=${2:?}; shift ;;
        --no-tests) RUN_TESTS=0 ;;
        --reinstall) REINSTALL=1 ;;
        --cross-seconds) CROSS_S=${2:?}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mounts): sudo $0"

# -- host tools: debootstrap, qemu-user-static, binfmt -----------------------------------
host_tools() {
    local need=()
    command -v debootstrap >/dev/null || need+=(debootstrap)
    command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
    command -v update-binfmts >/dev/null || need+=(binfmt-support)
    if [ ${#need[@]} -gt 0 ]; then
        echo "installing ${need[*]} (Debian)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    update-binfmts --enable qemu-aarch64 2>/dev/null || true
    update-binfmts --enable qemu-arm 2>/dev/null || true
}

# -- the root --------------------------------------------------------------------------
build_root() {   # ARCH ROOT
    local arch=$1 r=$2 t0
    if [ ! -f "$r/.debootstrap-done" ]; then
        echo "[$arch] debootstrap bookworm into $r (once; minutes)"
        rm -rf "$r"; mkdir -p "$r"
        t0=$(date +%s)
        debootstrap --arch="$arch" --variant=minbase \
            --include=ca-certificates,python3,python3-venv,python3-pip \
            bookworm "$r" "$MIRROR" > "$CACHE/debootstrap-$arch.log" 2>&1 \
            || die "debootstrap $arch failed: see $CACHE/debootstrap-$arch.log"
        echo "$(( $(date +%s) - t0 ))" > "$r/.debootstrap-done"
    fi
    local want="${PKGS[*]}"
    [ "$arch" = armhf ] && want="$want ${PKGS_ARMHF[*]}"
    # pip in the root trusts what this machine trusts (a proxy's CA, say): its CA bundle
    cp "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" "$r/etc/ssl/host-ca.crt"
    if [ "$(cat "$r/.packages" 2>/dev/null)" != "$want" ]; then
        echo "[$arch] apt-get install $want"
        cp /etc/resolv.conf "$r/etc/resolv.conf"
        # no daemons start inside a chroot (olad's postinst would try)
        printf '#!/bin/sh\nexit 101\n' > "$r/usr/sbin/policy-rc.d"; chmod +x "$r/usr/sbin/policy-rc.d"
        in_root "$r" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends $want" > "$CACHE/apt-$arch.log" 2>&1 \
            || die "apt-get in the $arch root failed: see $CACHE/apt-$arch.log"
        echo "$want" > "$r/.packages"
    fi
}

# Run a command in the root, in a private mount namespace with /proc, /dev, /tmp, /run and
# this checkout at /mnt/src (read-only). Nothing stays mounted afterwards.
in_root() {   # ROOT CMD...
    local r=$1; shift
    mkdir -p "$r/mnt/src"
    unshare --mount --propagation private -- /bin/sh -c '
        r=$1; src=$2; shift 2
        mount -t proc proc "$r/proc"
        mount --rbind /dev "$r/dev"
        mount -t tmpfs tmpfs "$r/tmp"
        mount -t tmpfs tmpfs "$r/run"
        mount -t tmpfs tmpfs "$r/dev/shm"
        mount --bind "$src" "$r/mnt/src" && mount -o remount,bind,ro "$r/mnt/src"
        exec chroot "$r" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
            HOME=/root LANG=C.UTF-8 OPENBLAS_NUM_THREADS=1 PIP_CERT=/etc/ssl/host-ca.crt "$@"' \
        sh "$r" "$HERE" "$@"
}

# The project into the root as docs/raspberry-pi.md says: a venv seeing the system packages
# (ola-python; on armhf Debian's NumPy and Pillow), `pip install SRC[ola]`.
install_project() {   # ARCH ROOT
    local arch=$1 r=$2 t0 secs PIWHEELS=""
    # a copy of this checkout (tracked and new files, as `git ls-files` sees them)
    rm -rf "$r/opt/src"; mkdir -p "$r/opt/src"
    (cd "$HERE" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 -I{} sh -c '[ -e "$1" ] && printf "%s\0" "$1"' sh {} \
        | tar --null -T - -cf -) | tar -xf - -C "$r/opt/src"
    if [ $REINSTALL = 1 ] || [ ! -f "$r/.installed" ]; then
        rm -rf "$r/opt/latentdmx" "$r/root/.cache/pip"
        # Raspberry Pi OS's own /etc/pip.conf names piwheels (armv7l wheels): so does the armhf
        # root, when piwheels can be reached from here
        PIWHEELS=" not reachable from here"
        if [ "$arch" = armhf ] && curl -fsS --max-time 15 -o /dev/null https://www.piwheels.org/simple/; then
            printf '[global]\nextra-index-url=https://www.piwheels.org/simple\n' > "$r/etc/pip.conf"
            PIWHEELS=" named in the root's /etc/pip.conf as on Raspberry Pi OS"
        fi
        echo "[$arch] installing LatentDMX (first time: timed, no pip cache)"
        t0=$(date +%s)
        rm -f "$r/.install-note"
        if ! in_root "$r" sh -c "python3 -m venv --system-site-packages /opt/latentdmx/venv && \
                /opt/latentdmx/venv/bin/pip install -q --no-cache-dir '/opt/src[ola]'" \
                > "$CACHE/install-$arch.log" 2>&1; then
            # As the docs say failed (on armhf: a pin above Debian's version of a library
            # PyPI has no armv7l wheel of, so pip tries to compile it). Say why, then install
            # the package beside Debian's versions, to see whether it plays with them.
            echo "the documented install failed ($(grep -m1 -oE 'Failed to build [^ ]+|No matching distribution found for [^ ]+|Building wheel for [^ ]+' \
                "$CACHE/install-$arch.log" || grep -m1 -iE 'error: ' "$CACHE/install-$arch.log" | cut -c1-120):" \
                "PyPI has no armv7l wheel; Raspberry Pi OS gets it from piwheels,$PIWHEELS); played with Debian's" \
                "$(echo "${PKGS_ARMHF[*]}" | sed 's/python3-//g') instead (pip install --no-deps)" \
                > "$r/.install-note"
            # the package's dependencies and the ola extra's, less those Debian's provide
            cat > "$r/opt/deps.py" <<'PY'
import re, sys, tomllib
p = tomllib.load(open("/opt/src/pyproject.toml", "rb"))["project"]
skip = {w.replace("python3-", "").replace("pil", "pillow") for w in sys.argv[1:]}
for d in p["dependencies"] + p["optional-dependencies"]["ola"]:
    if re.split("[<>=!; ]", d)[0].lower() not in skip:
        print(d)
PY
            in_root "$r" sh -c "/opt/latentdmx/venv/bin/pip install -q --no-deps /opt/src && \
                /opt/latentdmx/venv/bin/python /opt/deps.py ${PKGS_ARMHF[*]} > /opt/deps.txt && \
                /opt/latentdmx/venv/bin/pip install -q --no-cache-dir -r /opt/deps.txt" \
                >> "$CACHE/install-$arch.log" 2>&1 \
                || { tail -n 30 "$CACHE/install-$arch.log"; die "install failed in the $arch root"; }
        fi
        secs=$(( $(date +%s) - t0 ))
        in_root "$r" /opt/latentdmx/venv/bin/pip install -q "${TEST_PIP[@]}" \
            >> "$CACHE/install-$arch.log" 2>&1 || die "pip install of the test tools failed"
        echo "$secs" > "$r/.installed"
    else
        in_root "$r" /opt/latentdmx/venv/bin/pip install -q --no-deps --force-reinstall \
            /opt/src > "$CACHE/install-$arch.log" 2>&1 \
            || { tail -n 30 "$CACHE/install-$arch.log"; die "reinstall failed in the $arch root"; }
    fi
}

say() { echo "$*" | tee -a "$REPORT"; cp "$REPORT" "$OUT"; }   # figures kept as they come

run_arch() {   # ARCH
    local arch=$1 r=$CACHE/bookworm-$1 m line log t0 qemu
    build_root "$arch" "$r"
    install_project "$arch" "$r"
    say ""
    qemu=qemu-aarch64-static; [ "$arch" = armhf ] && qemu=qemu-arm-static
    say "== $arch: Debian bookworm root under $($qemu --version | head -n1 | \
        sed 's/ version/-user/') ($(in_root "$r" uname -m))"
    say "root built in $(cat "$r/.debootstrap-done") s (debootstrap, once); first install of" \
        "LatentDMX into the venv: $(cat "$r/.installed") s"
    [ -f "$r/.install-note" ] && say "$(cat "$r/.install-note")"
    say "$(in_root "$r" /opt/latentdmx/venv/bin/python -c '
import sys, numpy, PIL
cfg = numpy.show_config(mode="dicts") if numpy.__version__ >= "1.25" else None
blas = cfg["Build Dependencies"]["blas"]["name"] if cfg else "Debian (see numpy.show_config)"
loc = "Debian" if numpy.__file__.startswith("/usr/lib/") else "PyPI wheel"
print(f"Python {sys.version.split()[0]}, NumPy {numpy.__version__} ({loc}, BLAS: {blas}), "
      f"Pillow {PIL.__version__}")' 2>&1 | tail -n1)"
    if [ "$arch" = arm64 ] && [ $RUN_TESTS = 1 ]; then
        log=$CACHE/cross-cpu.log
        LATENTDMX_PI_ROOTS=$CACHE LATENTDMX_CROSS_CPU_SECONDS=$CROSS_S PYTHONPATH=$HERE \
            "$HOST_PY" -m pytest -n 0 -q -p no:cacheprovider --basetemp="$CACHE/cross-cpu" \
            -rA "$HERE/tests/test_cross_cpu.py" > "$log" 2>&1 || true
        say "cross-CPU lockstep (tests/test_cross_cpu.py, x86 vs this root, ${CROSS_S} s shows):"
        grep -E '^[a-z-]+ x86 vs arm64' "$log" | sort -u | sed 's/^/  /' | tee -a "$REPORT" || true
        say "  $(grep -E '(passed|failed|skipped|error)' "$log" | tail -n1 | tr -d '=' | sed 's/^ *//')"
        say "  the channels that differ (bench/show_diff.py, its own decoding of the recordings):"
        for d in "$CACHE"/cross-cpu/test_x86_*[0-9]; do
            if [ -d "$d" ]; then
                PYTHONPATH=$HERE "$HOST_PY" "$HERE/bench/show_diff.py" "$d"/x86-*.txt \
                    "$d"/arm64-*.txt 2>&1 | sed 's/^/    /' | tee -a "$REPORT" || true
            fi
        done
        # the Pi CPUs' kernels against each other (one show, each kernel's recording)
        set -- "$CACHE"/cross-cpu/test_x86_*[0-9]/arm64-*-nat-aurora.txt
        if [ -f "$1" ]; then
            PYTHONPATH=$HERE "$HOST_PY" "$HERE/bench/show_diff.py" "$@" 2>&1 \
                | sed 's/^/    /' | tee -a "$REPORT" || true
        fi
    fi
    say "play (bench/paced.py, demo rig, simulator, real frame clock, ${PLAY_S} s each):"
    for m in "$HERE"/models/*/; do
        m=$(basename "$m")
        log=$CACHE/play-$arch-$m.log
        if in_root "$r" sh -c "cd /opt/src && /opt/latentdmx/venv/bin/python bench/paced.py \
                --rigs demo --seconds $PLAY_S --model $m" > "$log" 2>&1; then
            line=$(grep -m1 -E 'fps, [0-9]+ frames, ' "$log" | sed 's/.*fps, //')
            # the daemon's own word when it lowered the model rate (pi_app: key frames)
            grep -q 'the model now runs at' "$log" && line="$line (model lowered to $(grep -m1 \
                -o 'the model now runs at [0-9.]* fps' "$log" | grep -o '[0-9.]* fps'): key frames)"
            say "  $m: $line; $(grep -m1 'whole process' "$log" | sed 's/^ *//')"
        else
            say "  $m: FAILED: $(grep -v '^ ' "$log" | tail -n1)"
        fi
    done
    log=$CACHE/render-$arch.log
    t0=$(date +%s)      # (a minbase root has no /usr/bin/time)
    if in_root "$r" sh -c "cd /tmp && /opt/latentdmx/venv/bin/latentdmx \
            render --duration 10 --out /tmp/show.png && ls -l /tmp/show.png" > "$log" 2>&1; then
        say "render: \`latentdmx render --duration 10 --out show.png\`: ok, $(( $(date +%s) - t0 )) s" \
            "wall, $(awk '/^-.*show.png$/ {print $5}' "$log") bytes"
    else
        say "render: FAILED: $(tail -n1 "$log")"
    fi
    if [ $RUN_TESTS = 1 ]; then
        log=$CACHE/tests-$arch.log
        in_root "$r" sh -c "cd /opt/src && /opt/latentdmx/venv/bin/python -m pytest -n 0 -q \
            -p no:cacheprovider -o cache_dir=/tmp/pc ${TESTS[*]}" > "$log" 2>&1 || true
        say "tests (${TESTS[*]##*/}; olad runs inside as user olad):"
        say "  $(grep -E '(passed|failed|error)' "$log" | tail -n1 | tr -d '=' | sed 's/^ *//')"
        grep -E '^(FAILED|ERROR) ' "$log" | head -n 20 | sed 's/^/  /' | tee -a "$REPORT" || true
    fi
}

mkdir -p "$CACHE" "$(dirname "$OUT")"
host_tools
REPORT=$(mktemp)
trap 'rm -f "$REPORT"' EXIT
say "pi-emulate: $(date -u +%Y-%m-%dT%H:%MZ), $(cd "$HERE" && git rev-parse --short HEAD)," \
    "host $(uname -m) ($(nproc) cores, shared), roots in $CACHE"
for a in "${ARCHES[@]}"; do
    run_arch "$a"
done
cp "$REPORT" "$OUT"
echo "figures written to $OUT"
