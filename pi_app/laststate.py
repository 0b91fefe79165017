"""The last frames a show sent, kept in RAM for `latentdmx darken`.

`darken` (systemd's ``ExecStopPost=``) sends a blackout straight to the output after the
daemon has ended, however it ended. A blackout keeps pan/tilt and held channels where they
are, so it needs the last frame: olad keeps it (and `darken` asks olad first), a UART does
not. So the show keeps its last frames in one small file per set of targets, in its runtime
directory (``$RUNTIME_DIRECTORY``, ``/run/latentdmx`` under systemd; else
``$XDG_RUNTIME_DIR/latentdmx``), updated in place through ``mmap`` on every frame: a 512-byte
copy per universe and no system call. The file is written only where the directory is a
RAM file system (tmpfs): never on the SD card.

Format: one JSON line (``pid``, ``targets``, ``universes``, and the show's own light slots
per universe, so the blackout darkens what the show drove even if the config has changed
since, and ``dark``: the light slots whose dark value is not 0 — a shutter whose 0 switches the
lamp off — as ``[slot, value]`` pairs per universe), padded to
`HEADER_BYTES`, then ``512`` bytes per universe in the order listed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .scene import dark_frames

log = logging.getLogger(__name__)

SLOTS = 512
HEADER_BYTES = 16384
_RAM_FS = {"tmpfs", "ramfs"}


def state_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """Where the show keeps its last frames (the control socket's directory), or None."""
    env = os.environ if env is None else env
    if env.get("RUNTIME_DIRECTORY"):
        return Path(env["RUNTIME_DIRECTORY"].split(":")[0])
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "latentdmx"
    return None


def state_path(targets: Iterable[str], env: Mapping[str, str] | None = None) -> Path | None:
    d = state_dir(env)
    if d is None:
        return None
    key = hashlib.sha256("\n".join(sorted(targets)).encode()).hexdigest()[:16]
    return d / f"last-frames-{key}.bin"


def fs_type(path: Path) -> str:
    """The file system type of the mount holding `path` (from /proc/self/mountinfo)."""
    real = os.path.realpath(path)
    best, kind = "", ""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount = fields[4].replace("\\040", " ")
        inside = real == mount or real.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, right.split()[0]
    return kind


@dataclass(frozen=True)
class LastFrames:
    """What a show last sent: {universe: uint8[512]} and its light slots per universe."""

    pid: int
    targets: tuple[str, ...]
    frames: dict[int, np.ndarray]
    light: dict[int, np.ndarray]        # 0-based slot indices per universe
    dark_v: dict[int, np.ndarray] = field(default_factory=dict)   # per light slot (else 0)

    def dark(self) -> dict[int, np.ndarray]:
        """The blackout of these frames: light slots at their dark values, everything else as
        it was (`pi_app.scene.dark_frames`)."""
        return dark_frames(self.frames, self.light, self.dark_v)


def read(path: Path) -> LastFrames | None:
    """The frames a show left at `path`, or None (no file, or not one of ours)."""
    try:
        data = path.read_bytes()
        head = json.loads(data[:HEADER_BYTES].split(b"\n", 1)[0])
        universes = [int(u) for u in head["universes"]]
        frames = {}
        for k, u in enumerate(universes):
            chunk = data[HEADER_BYTES + k * SLOTS:HEADER_BYTES + (k + 1) * SLOTS]
            if len(chunk) != SLOTS:
                return None
            frames[u] = np.frombuffer(chunk, np.uint8).copy()
        light = {int(u): np.asarray(v, np.intp) for u, v in head["light"].items()}
        dark_v = {}
        for u, slots in light.items():
            vals = np.zeros(len(slots), np.uint8)
            pairs = dict((int(s), int(v)) for s, v in head.get("dark", {}).get(str(u), []))
            for i, s in enumerate(slots.tolist()):
                vals[i] = pairs.get(s, 0)
            dark_v[u] = vals
        return LastFrames(int(head["pid"]), tuple(head["targets"]), frames, light, dark_v)
    except (OSError, ValueError, KeyError, TypeError):
        return None


class LastFramesWriter:
    """Keeps a show's last frames at `path` (`write` per frame: copies into an mmap)."""

    def __init__(self, path: Path, targets: Iterable[str], universes: Iterable[int],
                 light: Mapping[int, Iterable[int]],
                 dark: Mapping[int, Iterable[int]] | None = None) -> None:
        self.path = path
        self.universes = tuple(universes)
        dark = dark or {}
        pairs = {str(u): [[int(s), int(v)] for s, v in zip(light.get(u, ()), dark.get(u, ()),
                                                         strict=False) if v]
                 for u in self.universes}
        head = json.dumps({"v": 1, "pid": os.getpid(), "targets": sorted(targets),
                           "universes": list(self.universes),
                           "light": {str(u): [int(s) for s in light.get(u, ())]
                                     for u in self.universes},
                           "dark": {u: p for u, p in pairs.items() if p}}).encode() + b"\n"
        if len(head) > HEADER_BYTES:
            raise ValueError("too many light slots for the header")
        size = HEADER_BYTES + SLOTS * len(self.universes)
        tmp = path.with_name(path.name + ".part")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            os.ftruncate(fd, size)
            os.posix_fallocate(fd, 0, size)   # the pages now: a full tmpfs is ENOSPC here,
            os.pwrite(fd, head, 0)            # not a SIGBUS at some frame's write
            self._mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        buf = np.frombuffer(self._mm, np.uint8)
        self._views = {u: buf[HEADER_BYTES + k * SLOTS:HEADER_BYTES + (k + 1) * SLOTS]
                       for k, u in enumerate(self.universes)}

    @classmethod
    def open(cls, targets: tuple[str, ...], patch) -> LastFramesWriter | None:
        """For a show on `targets` with `patch`; None where it must not write (no runtime
        directory, or one on a disk, not in RAM)."""
        path = state_path(targets)
        if path is None:
            return None
        try:
            path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            kind = fs_type(path.parent)
            if kind not in _RAM_FS:
                log.info("last frames not kept: %s is on %s, not in RAM (`latentdmx darken` "
                         "will park the heads instead)", path.parent, kind or "an unknown fs")
                return None
            return cls(path, targets, patch.universes, *patch.dark_slots())
        except (OSError, ValueError) as exc:
            log.warning("last frames not kept at %s: %s", path, exc)
            return None

    def write(self, frames: Mapping[int, np.ndarray]) -> None:
        views = self._views
        for u, f in frames.items():
            np.copyto(views[u], f)

    def close(self) -> None:
        self._views = {}
        try:
            self._mm.close()
        except (BufferError, ValueError):
            pass
