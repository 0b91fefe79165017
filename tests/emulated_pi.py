"""The emulated Pi of `scripts/pi-emulate.sh` for tests: a Debian bookworm root of another CPU
type, run under qemu-user through binfmt.

`missing_reason(arch)` says why a test cannot use it (None when it can); `run_in_root(arch,
argv, ...)` runs a command in it with this checkout at ``/mnt/src`` (read-only, first on
PYTHONPATH, so the root's venv runs *this* code) and a host folder at ``/mnt/out``, inside a
private mount namespace (``unshare -m``): nothing stays mounted when it ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = Path(os.environ.get("LATENTDMX_PI_ROOTS", "/var/cache/latentdmx-pi-emu"))
VENV_PY = "/opt/latentdmx/venv/bin/python"
BINFMT = {"arm64": "qemu-aarch64", "armhf": "qemu-arm"}


def root_of(arch: str) -> Path:
    return ROOTS / f"bookworm-{arch}"


def missing_reason(arch: str) -> str | None:
    if "LATENTDMX_PI_ROOTS" not in os.environ:     # slow, and a root here may be half built
        return ("the emulated Pi runs from scripts/pi-emulate.sh (or set LATENTDMX_PI_ROOTS="
                f"{ROOTS} to compare with the roots it built)")
    r = root_of(arch)
    if not (r / VENV_PY.lstrip("/")).exists():
        return (f"no emulated {arch} Pi at {r} (build it once: sudo scripts/pi-emulate.sh "
                f"--arch {arch}; about 20 minutes)")
    if os.geteuid() != 0:
        return "the emulated Pi needs root (chroot, mounts): run as root"
    if not shutil.which("unshare") or not shutil.which("chroot"):
        return "unshare and chroot (util-linux, coreutils) are needed"
    flag = Path("/proc/sys/fs/binfmt_misc") / BINFMT[arch]
    if not flag.exists() or "enabled" not in flag.read_text():
        return f"binfmt for {BINFMT[arch]} is off (sudo update-binfmts --enable {BINFMT[arch]})"
    return None


_MOUNT = """
r=$1; src=$2; out=$3; shift 3
mkdir -p "$r/mnt/src" "$r/mnt/out"
mount -t proc proc "$r/proc"
mount -t tmpfs tmpfs "$r/tmp"
mount --bind "$src" "$r/mnt/src" && mount -o remount,bind,ro "$r/mnt/src"
mount --bind "$out" "$r/mnt/out"
exec chroot "$r" "$@"
"""


def run_in_root(arch: str, argv: list[str], out_dir: Path, env: dict[str, str] | None = None,
                timeout_s: float = 1800.0) -> subprocess.CompletedProcess:
    """Run `argv` in the root (cwd /mnt/src), `out_dir` mounted at /mnt/out."""
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
            "PYTHONPATH": "/mnt/src", "PYTHONDONTWRITEBYTECODE": "1",
            "OPENBLAS_NUM_THREADS": "1", "XDG_RUNTIME_DIR": "/tmp"}
    base.update(env or {})
    cmd = ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in base.items()),
           "/bin/sh", "-c", 'cd /mnt/src && exec "$@"', "sh", *argv]
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                           _MOUNT, "sh", str(root_of(arch)), str(REPO), str(out_dir), *cmd],
                          capture_output=True, text=True, timeout=timeout_s)
