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

import os
from pathlib import Path

import numpy as np

from ..errors import LatentDMXError

HEADER = "OLA Show"


class ShowRecorder:
    """Appends frames with their nominal times; `close()` finishes the file atomically."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self._tmp = self.path.with_name(self.path.name + ".part")
        try:
            self._fh = open(self._tmp, "w", encoding="ascii", newline="\n")
        except OSError as exc:
            raise LatentDMXError(f"cannot write the recording ({exc.strerror})", file=path,
                                 field="--record", fix="choose a writable path") from None
        self._fh.write(HEADER + "\n")
        self._pending: list[tuple[int, str]] | None = None
        self._pending_ms = 0
        self.frames = 0

    def write(self, frames, t_s: float) -> None:
        """Record one frame (``{universe: uint8[512]}``) due at nominal time `t_s`."""
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
        self._fh.write("".join(lines))
        self._pending = None

    def close(self) -> Path:
        if self._fh.closed:
            return self.path
        self._flush_pending(self._pending_ms + round(1000.0 / self.fps))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.path)
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
