"""The wall-clock stamps of a recording made in a lockstep group: ``PATH.stamps`` beside
``PATH`` (``latentdmx run --record PATH`` with ``[sync]``).

::

    # latentdmx frame stamps: frame index since the group's epoch, wall clock (Unix s) when
    # the frame had been handed to the output
    1152000123 1795000000.075213
    1152000124 1795000000.100187

Every member's frame k is the same show time, so two members' stamps for the same k say how
far apart they played it (`bench/lockstep.py`, `tests/test_lockstep_e2e.py`). Written to
``PATH.stamps.part`` and renamed on close, like the recording.
"""

from __future__ import annotations

import os
from pathlib import Path

HEADER = ("# latentdmx frame stamps: frame index since the group's epoch, wall clock (Unix s)"
          " when the frame had been handed to the output\n")


def stamps_path(record_path: str | Path) -> Path:
    p = Path(record_path)
    return p.with_name(p.name + ".stamps")


class FrameStamps:
    def __init__(self, record_path: str | Path) -> None:
        self.path = stamps_path(record_path)
        self._tmp = self.path.with_name(self.path.name + ".part")
        self._fh = open(self._tmp, "w", encoding="ascii", newline="\n")
        self._fh.write(HEADER)

    def write(self, k: int, wall_s: float) -> None:
        self._fh.write(f"{k} {wall_s:.6f}\n")

    def close(self) -> None:
        if self._fh.closed:
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.path)


def read_stamps(path: str | Path) -> dict[int, float]:
    """frame index -> wall time sent."""
    out: dict[int, float] = {}
    for line in Path(path).read_text(encoding="ascii").splitlines():
        if line and not line.startswith("#"):
            k, w = line.split()
            out[int(k)] = float(w)
    return out
