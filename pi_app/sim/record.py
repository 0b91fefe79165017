"""Recordings in the text format of OLA's ``ola_recorder`` (``--playback FILE`` replays them).

::

    OLA Show
    1 0,0,255,...          <- universe, then its slot values (up to 512)
    0                      <- delay in ms: 0 between the universes of one frame
    2 0,12,...
    25                     <- after a frame's last universe: the nominal period in whole ms,
                              rounded so that the running total stays exact (25, 25, 25 ...
                              at 40 fps; 23, 22, 23, ... at 44 fps)

``ola_recorder`` writes the same ("OLA Show": each delay is the time to the next entry,
truncated to whole ms; the last entry has none) or, in newer versions, ``OLA Show V2``, where
each line after an entry is the next entry's time since the first one, ``SECONDS MS``.

The recorder writes to ``PATH.part`` and renames it on close, so a crash never leaves a
half-written file under the real name; a recording that runs out of room stops at its last
whole frame, under its real name, and the show goes on (`ShowRecorder`).

The reader (`ShowFile`) streams: it scans the file once for its universes and shape, then
yields frames in chunks, parsing each chunk's values in one NumPy call, so a 100 MB recording
is read in seconds in a few MB of memory. A file damaged part-way (cut off mid-line, a bad
value) is read up to the damage, and `ShowFile.damage` says where it stopped.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import LatentDMXError

HEADER = "OLA Show"
HEADER_V2 = "OLA Show V2"
SLOTS = 512
MAX_LINE_BYTES = 1 << 16    # a frame line is at most ~2 KB ("65535 255,255,...")
READ_BYTES = 8 << 20        # read in blocks of this many bytes
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


@dataclass(frozen=True)
class Damage:
    """Where a damaged recording stopped being readable."""

    line: int                 # 1-based line number of the first bad line
    byte: int                 # its byte offset in the file
    what: str
    frames: int = 0           # frames read before it
    seconds: float = 0.0      # their span

    def __str__(self) -> str:
        return (f"damaged at line {self.line} (byte {self.byte}): {self.what}; read the "
                f"{self.frames} frames ({self.seconds:g} s) before it")


def _too_long(line: int, byte: int) -> _Stop:
    return _Stop(line, byte, f"a line longer than {MAX_LINE_BYTES} bytes (a frame line is "
                             "about 2 KB): not a show file from here on")


class _Stop(Exception):
    """A damaged line: reading stops before it."""

    def __init__(self, line: int, byte: int, what: str) -> None:
        super().__init__(what)
        self.line, self.byte, self.what = line, byte, what


@dataclass
class _Entry:
    universe: int
    values: bytes
    line: int
    byte: int
    next_ms: int | None       # V1: delay to the next entry; V2: its absolute time; None: last


class ShowFile:
    """A recording, read in chunks of frames (see the module docstring).

    ``universes``: sorted universe numbers seen (before any damage); ``frames_hint``: the
    number of entries the scan found (an upper bound on frames, for a progress bar);
    ``damage``: where reading stopped, once iteration reached it (or the scan found it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():      # a FIFO or device would block
            raise LatentDMXError("not a regular file", file=self.path, field="(file)",
                                 fix="give an ola_recorder show file")
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            raise LatentDMXError("file not found", file=self.path, field="(file)",
                                 fix="give the path of a recording (latentdmx run --record FILE)"
                                 ) from None
        except OSError as exc:
            raise LatentDMXError(f"cannot read ({exc.strerror})", file=self.path,
                                 field="(file)", fix="give an ola_recorder show file") from None
        with fh:
            head = fh.readline(64).rstrip(b"\r\n")
        if head == HEADER_V2.encode():
            self.v2 = True
        elif head == HEADER.encode():
            self.v2 = False
        else:
            raise LatentDMXError("not an OLA show file", file=self.path, field="line 1",
                                 fix=f"the first line must be '{HEADER}'")
        self.damage: Damage | None = None
        self._scan_stop: _Stop | None = None
        self.universes, self.frames_hint = self._scan()

    # -- the scan: universes, the number of entries, structural damage --------------------
    def _lines(self) -> Iterator[tuple[int, int, bytes, bool]]:
        """(line number, byte offset, line without its end, had a newline) after the header,
        read in blocks of 8 MB."""
        with open(self.path, "rb") as fh:
            first = fh.readline(MAX_LINE_BYTES)
            offset, n = len(first), 1
            rest = b""
            while True:
                block = fh.read(READ_BYTES)
                if not block:
                    if rest:                     # the last line has no line end
                        yield n + 1, offset, rest.rstrip(b"\r"), False
                    return
                lines = (rest + block).split(b"\n")
                rest = lines.pop()
                for raw in lines:
                    n += 1
                    if len(raw) > MAX_LINE_BYTES:
                        raise _too_long(n, offset)
                    yield n, offset, raw.rstrip(b"\r"), True
                    offset += len(raw) + 1
                if len(rest) > MAX_LINE_BYTES:   # memory stays bounded whatever the file
                    raise _too_long(n + 1, offset)

    def _entries(self) -> Iterator[_Entry]:
        """The file's entries in order; raises `_Stop` at the first damaged line."""
        pending: tuple[int, int, int, bytes] | None = None     # universe, line, byte, values
        v2 = self.v2
        for n, off, line, ended in self._lines():
            if pending is None:
                if not line or line.isspace():
                    continue
                uni, _, values = line.partition(b" ")
                if not uni.isdigit() or len(uni) > 10:
                    raise _Stop(n, off, "not a frame line 'UNIVERSE v1,v2,...'")
                if not ended and values.count(b",") != SLOTS - 1:
                    raise _Stop(n, off, "the last line is cut off (no line end)")
                pending = (int(uni), n, off, values)
                continue
            if not line or line.isspace():
                continue
            if v2:
                sec, _, ms = line.partition(b" ")
                if not (sec.isdigit() and ms.isdigit()) or len(sec) > 10 or len(ms) > 10:
                    raise _Stop(n, off, "not a time line 'SECONDS MS'")
                next_ms = int(sec) * 1000 + int(ms)
            else:
                if not line.isdigit() or len(line) > 10:
                    raise _Stop(n, off, "not a delay line (whole ms)")
                next_ms = int(line)
            yield _Entry(pending[0], pending[3], pending[1], pending[2], next_ms)
            pending = None
        if pending is not None:
            yield _Entry(pending[0], pending[3], pending[1], pending[2], None)

    def _scan(self) -> tuple[tuple[int, ...], int]:
        universes: set[int] = set()
        count = 0
        try:
            for e in self._entries():
                universes.add(e.universe)
                count += 1
        except _Stop as stop:
            self._scan_stop = stop
        if not universes:
            if self._scan_stop is not None:
                s = self._scan_stop
                raise LatentDMXError(f"bad frame line: {s.what}", file=self.path,
                                     field=f"line {s.line}",
                                     fix="each frame line is 'UNIVERSE v1,...,v512' then a delay "
                                         "line in ms")
            raise LatentDMXError("no frames", file=self.path, field="(file)",
                                 fix="record a show first")
        return tuple(sorted(universes)), count

    # -- chunks of frames -----------------------------------------------------------------
    def chunks(self, max_frames: int = 2048) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (frames uint8[t, U, 512], times_ms float64[t]) in order, up to any damage.

        A frame is a run of universe entries separated by 0 ms delays; a universe missing
        from a frame keeps its previous values (as ``ola_recorder`` playback does). Chunks
        hold at most about 8 MB of frames, whatever the number of universes."""
        max_frames = max(1, min(max_frames, (8 << 20) // (len(self.universes) * SLOTS)))
        col = {u: k for k, u in enumerate(self.universes)}
        current = np.zeros((len(self.universes), SLOTS), np.uint8)
        t_ms = 0.0
        seen: set[int] = set()
        frames_done = 0
        last_t = 0.0
        batch: list[_Entry] = []
        out_frames: list[np.ndarray] = []
        out_times: list[float] = []
        stop: _Stop | None = None
        it = self._entries()
        while True:
            try:
                e = next(it, None)
            except _Stop as s:
                stop, e = s, None
            if e is not None:
                batch.append(e)
                if len(batch) < 1024:
                    continue
            values, bad = _parse_values(batch)
            for i, entry in enumerate(batch):
                if bad is not None and i == bad[0]:
                    stop = _Stop(entry.line, entry.byte, bad[1])
                    break
                if entry.universe in seen:         # a universe again with no delay: new frame
                    out_frames.append(current.copy())
                    out_times.append(t_ms)
                    seen = set()
                row = values[i]
                current[col[entry.universe], :] = 0
                current[col[entry.universe], :len(row)] = row
                seen.add(entry.universe)
                nxt = entry.next_ms
                if nxt is not None and (nxt > t_ms if self.v2 else nxt > 0):
                    out_frames.append(current.copy())
                    out_times.append(t_ms)
                    seen = set()
                    t_ms = float(nxt) if self.v2 else t_ms + nxt
                if len(out_frames) >= max_frames:
                    frames_done += len(out_frames)
                    last_t = out_times[-1]
                    yield np.stack(out_frames), np.asarray(out_times)
                    out_frames, out_times = [], []
            batch = []
            if e is None or stop is not None:
                break
        if seen:
            out_frames.append(current.copy())
            out_times.append(t_ms)
        if out_frames:
            frames_done += len(out_frames)
            last_t = out_times[-1]
            yield np.stack(out_frames), np.asarray(out_times)
        if stop is not None:
            self.damage = Damage(stop.line, stop.byte, stop.what, frames_done,
                                 round(last_t / 1000.0, 3))
            if frames_done == 0:
                raise LatentDMXError(f"bad frame line: {stop.what}", file=self.path,
                                     field=f"line {stop.line}",
                                     fix="each frame line is 'UNIVERSE v1,...,v512' then a delay "
                                         "line in ms")


def _parse_values(batch: list[_Entry]) -> tuple[list[np.ndarray], tuple[int, str] | None]:
    """Parse the value lists of a batch of entries in one NumPy call. Returns one uint8 array
    per entry and, if an entry is bad, (its index, what is wrong); entries after it are not
    used."""
    parts = [e.values for e in batch]
    counts = [p.count(b",") + 1 if p else 0 for p in parts]
    joined = b",".join(p for p in parts if p)
    flat = _fromstring(joined)
    if flat is None or len(flat) != sum(counts) or (len(flat) and (
            flat.min() < 0 or flat.max() > 255)) or max(counts, default=0) > SLOTS:
        return _parse_slowly(batch)
    out, k = [], 0
    for c in counts:
        out.append(flat[k:k + c].astype(np.uint8))
        k += c
    return out, None


def _fromstring(data: bytes) -> np.ndarray | None:
    if not data:
        return np.zeros(0, np.int64)
    if data.translate(None, b"0123456789,"):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return np.fromstring(data, dtype=np.int64, sep=",")
        except (ValueError, DeprecationWarning):
            return None


def _parse_slowly(batch: list[_Entry]) -> tuple[list[np.ndarray], tuple[int, str] | None]:
    """Entry by entry, to find the first bad one."""
    out: list[np.ndarray] = []
    for i, e in enumerate(batch):
        fields = e.values.split(b",") if e.values else []
        if len(fields) > SLOTS:
            return out, (i, f"{len(fields)} values (at most {SLOTS})")
        try:
            vals = [int(f) for f in fields]
        except ValueError:
            return out, (i, "a value is not a whole number (the line may be cut off)")
        if any(not 0 <= v <= 255 for v in vals):
            return out, (i, "a value is outside 0..255")
        out.append(np.asarray(vals, np.uint8))
    return out, None


def read_show(path: str | Path) -> tuple[np.ndarray, tuple[int, ...], np.ndarray]:
    """Read a whole show file -> (frames uint8[n_frames, n_universes, 512], universes,
    times_s), up to any damage (`ShowFile` says where; `open_show` to know)."""
    show = ShowFile(path)
    frames, times = [], []
    for f, t in show.chunks(4096):
        frames.append(f)
        times.append(t)
    return np.concatenate(frames), show.universes, np.concatenate(times) / 1000.0


def open_show(path: str | Path) -> ShowFile:
    """A `ShowFile` (streaming reader) for `path`."""
    return ShowFile(path)
