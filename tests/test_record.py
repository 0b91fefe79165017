"""The ola_recorder show format: writing, reading, exact running delays, atomic files."""

from __future__ import annotations

import numpy as np
import pytest

from pi_app.errors import LatentDMXError
from pi_app.sim.record import ShowRecorder, read_show


def test_round_trip_and_delays(tmp_path):
    path = tmp_path / "show.txt"
    rec = ShowRecorder(path, 44)
    frames = []
    for k in range(10):
        f = {1: np.full(512, k, np.uint8), 3: np.arange(512, dtype=np.uint32).astype(np.uint8)}
        frames.append(f)
        rec.write(f, k / 44)
        assert not path.exists()            # only the .part file while recording
    rec.close()
    lines = path.read_text().splitlines()
    assert lines[0] == "OLA Show"
    assert lines[1].startswith("1 0,0,0") and len(lines[1].split(" ")[1].split(",")) == 512
    delays = [int(x) for x in lines[2::2]]
    assert delays[0::2] == [0] * 10                      # between universes of a frame
    frame_delays = delays[1::2]
    assert set(frame_delays) <= {22, 23}
    assert sum(frame_delays[:-1]) == round(9 * 1000 / 44)   # the running total stays exact
    data, universes, times = read_show(path)
    assert universes == (1, 3) and data.shape == (10, 2, 512)
    assert all(np.array_equal(data[k, 0], frames[k][1]) for k in range(10))
    assert np.allclose(times, np.round(np.arange(10) * 1000 / 44) / 1000)


def test_bad_show_file(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("hello\n")
    with pytest.raises(LatentDMXError, match="not an OLA show file"):
        read_show(p)
    p.write_text("OLA Show\n1 1,2,999\n0\n")
    with pytest.raises(LatentDMXError, match="line 2"):
        read_show(p)
