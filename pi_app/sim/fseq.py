"""FSEQ v2 sequence files (Falcon Player's and xLights' format), written from a show's frames:
``latentdmx render --fseq OUT.fseq``.

Layout (FPP's ``docs/FSEQ_Sequence_File_Format.txt``; every number little-endian):

* 32 bytes: ``PSEQ``, the offset of the channel data (16 bits), minor and major version
  (2.0, or 2.1 when there are more than 255 compression blocks), the length of this fixed
  part plus the two tables (16 bits), channels per frame (32), frames (32), step time in ms
  (8), flags 0, compression (low 4 bits: 1 = zstd; high 4 bits: the block count's top 4
  bits), the block count's low 8 bits, the number of sparse ranges, flags 0, a 64-bit id;
* the compression block index: per block, its first frame and its compressed length (32 bits
  each). Room is kept for the most blocks the show can need; unused entries stay zero (length
  0), as FPP's own writer does;
* the sparse ranges: per range, the first channel (0-based) and the channel count (24 bits
  each) — present when the rig's channels do not start at channel 1 or have gaps;
* variable headers: 16-bit length (these 4 bytes included), a 2-letter code and a NUL-ended
  string: ``sp`` (the producer) and, with ``--audio``, ``mf`` (the media file FPP plays);
* the channel data from a multiple of 4: each block is the zstd-compressed frames of its
  frames, one after another; a frame is every range's channels in range order.

Channels: rig universe u, DMX address a is channel (u - 1) * 512 + a (1-based, as DDP and
FPP's universe outputs count), whole universes at a time, so a frame of the file is exactly
the rig's universes of the recording. The step time is a whole number of milliseconds, so
the config's fps must divide 1000 (40, 25, 20 ...).

The file is written to a hidden temporary name beside the target and renamed into place when
complete: an error or Ctrl-C leaves no half-written sequence. zstandard is imported here only
(the daemon never loads this module).
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import zstandard

from ..errors import ConfigError, LatentDMXError

MAGIC = b"PSEQ"
FIXED_LEN = 32
BLOCK_ENTRY = 8
RANGE_ENTRY = 6
MAX_BLOCKS = 4095                   # 12 bits (FSEQ 2.1)
MAX_HEADER = 0xFFFF                 # the data offset is 16 bits
COMPRESSION_ZSTD = 1
BLOCK_BYTES = 1 << 17               # about 128 KiB of frames per block (FPP's writer's size)
ZSTD_LEVEL = 3
SLOTS = 512
MAX_CHANNEL = 1 << 24               # sparse ranges count channels in 24 bits


def step_ms(fps: float, *, file: str = "command line", field: str = "--fps") -> int:
    """The whole-millisecond step of `fps`, or a one-line `ConfigError`."""
    ms = 1000.0 / fps
    if abs(ms - round(ms)) > 1e-9 or not 1 <= round(ms) <= 255:
        raise ConfigError(f"{fps:g} fps is not a whole number of milliseconds a frame "
                          f"({ms:.2f} ms)", file=file, field=field,
                          fix="FSEQ steps in whole ms: use 40, 25 or 20 fps for the export")
    return round(ms)


def universe_ranges(universes: Sequence[int], *, file: str = "",
                    field: str = "fixtures") -> list[tuple[int, int]]:
    """(first channel 0-based, channel count) of every run of adjacent rig universes."""
    if not universes:
        raise ConfigError("no universe to export", file=file, field=field,
                          fix="patch at least one fixture")
    if min(universes) < 1:
        raise ConfigError("universe 0 has no FSEQ channels (universe u starts at channel "
                          "(u - 1) * 512 + 1)", file=file, field=field,
                          fix="patch the rig from universe 1 for the export")
    if max(universes) * SLOTS > MAX_CHANNEL:
        raise ConfigError(f"universe {max(universes)} is past FSEQ's {MAX_CHANNEL:,} channels",
                          file=file, field=field,
                          fix=f"patch the rig on universes 1..{MAX_CHANNEL // SLOTS} for the "
                              "export")
    out: list[tuple[int, int]] = []
    last = None
    for u in sorted(universes):
        if last is not None and u == last + 1:
            out[-1] = (out[-1][0], out[-1][1] + SLOTS)
        else:
            out.append(((u - 1) * SLOTS, SLOTS))
        last = u
    return out


def _var_header(code: bytes, text: str) -> bytes:
    data = text.encode("utf-8") + b"\x00"
    return struct.pack("<H", 4 + len(data)) + code + data


class FseqWriter:
    """Frames in, an FSEQ v2 file out (see the module doc). Use as a context manager: the
    file appears under its name only when the block ends without an exception."""

    def __init__(self, path: str | Path, *, universes: Sequence[int], fps: float,
                 max_frames: int, media: str = "", producer: str = "LatentDMX") -> None:
        self.path = Path(path)
        self.universes = tuple(universes)
        if list(self.universes) != sorted(set(self.universes)):
            raise ValueError("universes must be given in ascending order")
        self.step_ms = step_ms(fps)
        self.ranges = universe_ranges(self.universes)
        self.channels = sum(n for _, n in self.ranges)
        self.sparse = not (len(self.ranges) == 1 and self.ranges[0][0] == 0)
        per_block = max(1, BLOCK_BYTES // self.channels)
        self.frames_per_block = max(per_block, math.ceil(max(max_frames, 1) / MAX_BLOCKS))
        self.max_blocks = max(1, math.ceil(max(max_frames, 1) / self.frames_per_block))
        self.var_headers = _var_header(b"sp", producer)
        if media:
            self.var_headers += _var_header(b"mf", media)
        self.table_end = (FIXED_LEN + self.max_blocks * BLOCK_ENTRY +
                          (len(self.ranges) if self.sparse else 0) * RANGE_ENTRY)
        self.data_offset = -(-(self.table_end + len(self.var_headers)) // 4) * 4
        if self.data_offset > MAX_HEADER:
            raise ConfigError("the FSEQ header would be longer than 64 KiB", file="command line",
                              field="--fseq", fix="export fewer universes or a shorter show")
        self.frames = 0
        self.blocks: list[tuple[int, int]] = []       # (first frame, compressed length)
        self._pending: list[bytes] = []
        self._zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        self._file: BinaryIO | None = None
        self._tmp: Path | None = None

    def __enter__(self) -> FseqWriter:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part",
                                   dir=self.path.parent)
        try:                         # an interrupt here (Ctrl-C) leaves no part file either
            self._tmp = Path(tmp)
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(fd, 0o666 & ~mask)                # as an ordinary new file
            self._file = os.fdopen(fd, "wb")
            self._file.write(bytes(self.data_offset))    # the header, written at the end
        except BaseException:
            if self._file is None:
                os.close(fd)
            else:
                self._file.close()
            os.unlink(tmp)
            raise
        return self

    def write(self, frame: np.ndarray) -> None:
        """One frame: uint8 [n_universes, 512] in the order of `universes` (sorted)."""
        self._pending.append(np.ascontiguousarray(frame, np.uint8).tobytes())
        self.frames += 1
        if len(self._pending) == self.frames_per_block:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        if len(self.blocks) == self.max_blocks:
            raise LatentDMXError("more frames than the FSEQ header has room for",
                                 field="--duration", fix="report this: the frame count was "
                                                         "estimated too low")
        data = self._zstd.compress(b"".join(self._pending))
        assert self._file is not None
        self._file.write(data)
        self.blocks.append((self.frames - len(self._pending), len(data)))
        self._pending = []

    def header(self) -> bytes:
        n_blocks = self.max_blocks
        minor = 1 if n_blocks > 255 else 0
        out = bytearray(MAGIC)
        out += struct.pack("<HBBHIIBB", self.data_offset, minor, 2, self.table_end,
                           self.channels, self.frames, self.step_ms, 0)
        out += bytes([(n_blocks >> 4) & 0xF0 | COMPRESSION_ZSTD, n_blocks & 0xFF,
                      len(self.ranges) if self.sparse else 0, 0])
        out += struct.pack("<Q", time.time_ns() // 1000)
        for i in range(n_blocks):
            first, length = self.blocks[i] if i < len(self.blocks) else (0, 0)
            out += struct.pack("<II", first, length)
        if self.sparse:
            for start, count in self.ranges:
                out += start.to_bytes(3, "little") + count.to_bytes(3, "little")
        out += self.var_headers
        out += bytes(self.data_offset - len(out))
        return bytes(out)

    def __exit__(self, exc_type, exc, tb) -> None:
        f, tmp = self._file, self._tmp
        assert f is not None and tmp is not None
        try:
            if exc_type is None:
                self._flush()
                f.seek(0)
                f.write(self.header())
                f.flush()
                os.fsync(f.fileno())
            f.close()
            if exc_type is None:
                os.replace(tmp, self.path)
        finally:
            if not f.closed:
                f.close()
            if tmp.exists():
                tmp.unlink()
