"""Recordings in the text format of OLA's ``ola_recorder`` (``--playback FILE`` replays them).

::

    OLA Show
    1 0,0,255,...          <- universe, then its 512 slot values
    0                      <- delay in ms: 0 between the universes of one frame
    2 0,12,...
    25                     <- after a frame's last universe: the nominal period in whole ms,
                              rounded so that the running total stays exact (25, 25, 25 ...
                              at 40 fps; 23, 22, 23, ... at 44 fps)

The recorder writes to ``PATH.part`` and renames it on close, so a crash never leaves a
half-written file under the real name.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import LatentDMXError

HEADER = "OLA Show"
log = logging.getLogger("latentdmx")


class ShowRecorder:
    """Appends frames with their nominal times; `close()` finishes the file atomically.

    A recording that cannot be written (a full disk, a file-size limit, an I/O error) stops
    with one log line while the show goes on: the file is cut back to the last whole frame
    and given its real name, so what was recorded stays readable (`read_show`,
    ``ola_recorder --playback``). Each frame is one ``os.write`` of whole lines."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self._tmp = self.path.with_name(self.path.name + ".part")
        try:
            self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                               0o644)
        except OSError as exc:
            raise LatentDMXError(f"cannot write the recording ({exc.strerror})", file=path,
                                 field="--record", fix="choose a writable path") from None
        self._good = 0                  # bytes of whole frames on disk
        self._pending: list[tuple[int, str]] | None = None
        self._pending_ms = 0
        self.frames = 0                 # frames handed to `write`
        self.written = 0                # frames whole on disk
        self.failed: str | None = None  # why the recording stopped early
        self._closed = False
        self._put((HEADER + "\n").encode("ascii"))

    def write(self, frames, t_s: float) -> None:
        """Record one frame (``{universe: uint8[512]}``) due at nominal time `t_s`."""
        if self.failed is not None:
            return
        now_ms = round(t_s * 1000.0)
        self._flush_pending(now_ms)
        self._pending = [(u, ",".join(map(str, f.tolist()))) for u, f in sorted(frames.items())]
        self._pending_ms = now_ms
        self.frames += 1

    def _flush_pending(self, next_ms: int) -> None:
        if self._pending is None:
            return
        last = len(self._pending) - 1
        lines = []
        for i, (u, text) in enumerate(self._pending):
            lines.append(f"{u} {text}\n{max(0, next_ms - self._pending_ms) if i == last else 0}\n")
        self._pending = None
        if self._put("".join(lines).encode("ascii")):
            self.written += 1

    def _put(self, data: bytes) -> bool:
        """Write `data` whole, or stop the recording at the last whole frame."""
        if self.failed is not None:
            return False
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self._stop(exc)
            return False
        self._good += len(data)
        return True

    def _stop(self, exc: OSError) -> None:
        self.failed = exc.strerror or str(exc)
        try:
            os.ftruncate(self._fd, self._good)        # needs no space: drop a half frame
        except OSError:
            pass
        try:
            self._finish(sync=False)
        except OSError:                               # not even the rename: keep the .part
            pass
        log.error("recording stopped after %d frames (%.1f s): %s; %s keeps them, readable; "
                  "the show goes on", self.written, self.written / self.fps, self.failed,
                  self.path)

    def _finish(self, sync: bool) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if sync:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            os.replace(self._tmp, self.path)

    def close(self) -> Path:
        if self._closed:
            return self.path
        self._flush_pending(self._pending_ms + round(1000.0 / self.fps))
        if self._closed:                              # the last frame did not fit
            return self.path
        try:
            self._finish(sync=True)
        except OSError as exc:                        # fsync: the disk gave up at the end
            log.error("recording %s may be incomplete: %s", self.path, exc.strerror or exc)
        return self.path


def read_show(path: str | Path) -> tuple[np.ndarray, tuple[int, ...], np.ndarray]:
    """Read a show file -> (frames uint8[n_frames, n_universes, 512], universes, times_s).

    A frame is a run of universe lines separated by 0 ms delays; a missing universe in a
    frame keeps its previous values (as ``ola_recorder`` playback does)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="ascii").splitlines()
    except FileNotFoundError:
        raise LatentDMXError("file not found", file=p, field="(file)",
                             fix="give the path of a recording (latentdmx run --record FILE)"
                             ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LatentDMXError(f"cannot read ({exc.__class__.__name__})", file=p, field="(file)",
                             fix="give an ola_recorder show file") from None
    if not lines or lines[0].strip() != HEADER:
        raise LatentDMXError("not an OLA show file", file=p, field="line 1",
                             fix=f"the first line must be '{HEADER}'")
    entries: list[tuple[int, np.ndarray, int]] = []
    i = 1
    while i < len(lines):
        line = lines[i].strip()
        if not line:
            i += 1
            continue
        try:
            uni_s, _, data = line.partition(" ")
            universe = int(uni_s)
            values = np.zeros(512, np.uint8)
            vals = [int(v) for v in data.split(",")] if data.strip() else []
            if len(vals) > 512 or any(not 0 <= v <= 255 for v in vals):
                raise ValueError
            values[:len(vals)] = vals
            delay = int(lines[i + 1].strip()) if i + 1 < len(lines) else 0
        except (ValueError, IndexError):
            raise LatentDMXError("bad frame line", file=p, field=f"line {i + 1}",
                                 fix="each frame line is 'UNIVERSE v1,...,v512' then a delay "
                                     "line in ms") from None
        entries.append((universe, values, delay))
        i += 2
    universes = tuple(sorted({u for u, _, _ in entries}))
    if not universes:
        raise LatentDMXError("no frames", file=p, field="(file)", fix="record a show first")
    col = {u: k for k, u in enumerate(universes)}
    current = np.zeros((len(universes), 512), np.uint8)
    frames, times = [], []
    t_ms = 0
    seen: set[int] = set()
    for universe, values, delay in entries:
        if universe in seen:          # a universe again with no delay: a new frame starts
            frames.append(current.copy())
            times.append(t_ms / 1000.0)
            seen = set()
        current[col[universe]] = values
        seen.add(universe)
        if delay > 0:
            frames.append(current.copy())
            times.append(t_ms / 1000.0)
            seen = set()
            t_ms += delay
    if seen:
        frames.append(current.copy())
        times.append(t_ms / 1000.0)
    return np.stack(frames), universes, np.asarray(times, dtype=np.float64)
