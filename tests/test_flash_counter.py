"""The independent flash counter (tests/flash_counter.py) counts what it should: it must be
able to fail, or the safety tests that rely on it prove nothing."""

from __future__ import annotations

import pytest
from flash_counter import Channel, Fixture, FlashCounter, count, read_show_file, rig_from_config

PAR = Fixture("par", (Channel(1, 0, "red"), Channel(1, 1, "green"), Channel(1, 2, "blue"),
                      Channel(1, 3, "white")))
DIM = Fixture("dim", (Channel(1, 10, "dimmer", 0, 134), Channel(1, 11, "red"),
                      Channel(1, 12, "green"), Channel(1, 13, "blue")))


def frames(values: dict[int, int]) -> dict[int, bytes]:
    data = bytearray(512)
    for slot, v in values.items():
        data[slot] = v
    return {1: bytes(data)}


def square(hz: float, fps: float, seconds: float, on: dict[int, int]):
    for k in range(int(fps * seconds)):
        lit = int(k / fps * hz * 2) % 2 == 0
        yield k / fps, frames(on if lit else {})


@pytest.mark.parametrize("hz", [1.0, 2.0, 5.0, 10.0, 20.0])
def test_square_wave_counts_its_frequency(hz):
    c = count([PAR], square(hz, 40.0, 4.0, {3: 255}))
    assert c.max_per_s()["par"] == pytest.approx(min(hz, 20.0), abs=0.5)
    assert c.max_per_s()["rig"] == pytest.approx(min(hz, 20.0), abs=0.5)


def test_slow_fade_is_one_transition_and_small_steps_none():
    fade = [(k / 40, frames({3: round(255 * k / 80)})) for k in range(81)]
    assert count([PAR], fade).max_per_s()["par"] == 0.5          # half a flash
    assert count([PAR], fade).transitions("par") == [pytest.approx(0.4)]   # Y = W / 2 >= 0.1
    wobble = square(10.0, 40.0, 3.0, {1: 30})       # green 30/255 of 0.7152/2: Y < 0.05
    assert count([PAR], wobble).max_per_s()["par"] == 0.0


def test_bright_flicker_above_080_is_exempt_but_red_is_not():
    # white full <-> white at 85 %: the darker state is above 0.80, so no general flash
    hi = {0: 255, 1: 255, 2: 255, 3: 255}
    lo = {0: 217, 1: 217, 2: 217, 3: 217}
    seq = [(k / 40, frames(hi if k % 4 < 2 else lo)) for k in range(160)]
    assert count([PAR], seq).max_per_s()["par"] == 0.0
    red = square(8.0, 40.0, 3.0, {0: 255})           # saturated red flashing at 8 Hz
    per = count([PAR], red).max_per_s()
    assert per["red:par"] == pytest.approx(8.0, abs=0.5)


def test_dimmer_range_and_rig_mean():
    # the dimmer's light range is 0..134: 134 is full
    seq = square(4.0, 40.0, 3.0, {10: 134, 11: 255, 12: 255, 13: 255})
    c = count([DIM, PAR], seq)
    assert c.max_per_s()["dim"] == pytest.approx(4.0, abs=0.5)
    assert c.max_per_s()["par"] == 0.0
    # the rig is the mean of two fixtures: a full flash of one is a 0.5 swing of the rig
    assert c.max_per_s()["rig"] == pytest.approx(4.0, abs=0.5)


def test_irregular_timing_counts_in_real_seconds():
    # two senders taking turns at uneven gaps: counted by arrival time, not frame number
    seq, t = [], 0.0
    for k in range(300):
        t += 0.007 if k % 2 else 0.018
        seq.append((t, frames({3: 255} if k % 2 else {})))
    per_s = count([PAR], seq).max_per_s()["par"]
    assert per_s == pytest.approx(1.0 / (0.025), rel=0.1)      # one flash per 25 ms pair


def test_reads_latentdmx_recordings(tmp_path, sim):
    """A recording of the default show: the counter reads it and finds it safe."""
    out = sim(4.0, record_path=tmp_path / "show.txt")
    assert out.frames_sent > 100
    rec = read_show_file(tmp_path / "show.txt")
    assert len(rec) == out.frames_sent - 1       # all but the output's own close() blackout
    assert rec[1][0] == pytest.approx(0.025)
    c = FlashCounter(rig_from_config(None))
    for t, f in rec:
        c.add(t, f)
    assert 0 <= c.worst()[1] <= 3.0
    assert any(f[1][40 + 3] for _, f in rec)          # par-1's white was on at some point
