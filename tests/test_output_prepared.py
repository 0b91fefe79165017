"""Frames prepared ahead (`Output.prepare`, used for the frames the show loop works out
ahead): checked and copied when prepared, sent as they were, and only by the output that
prepared them."""

from __future__ import annotations

import numpy as np
import pytest

from pi_app.errors import OutputError
from pi_app.outputs.base import Prepared
from pi_app.outputs.sim import SimOutput


def lit(value: int) -> np.ndarray:
    return np.full(512, value, dtype=np.uint8)


def test_a_prepared_frame_is_the_frame_as_it_was_when_prepared():
    with SimOutput([1, 2], keep_history=True) as out:
        a, b = lit(10), lit(20)
        ready = out.prepare({1: a, 2: b})
        assert isinstance(ready, Prepared) and ready.by is out
        a[:] = 99                                   # the caller's buffer is reused ...
        out.send(ready)                             # ... the prepared copy is what goes out
        assert out.history[-1][1][0] == 10 and out.history[-1][2][0] == 20
        assert out.last_frames[1][0] == 10 and out.frames_sent == 1
        out.send({1: a, 2: b})                      # a plain dict: copied at send, as ever
        a[:] = 1
        assert out.last_frames[1][0] == 99


@pytest.mark.parametrize("frames, words", [
    ({3: lit(1)}, "universe 3 is not patched"),
    ({1: np.zeros(512, np.int16)}, "uint8[512]"),
    ({1: np.zeros(511, np.uint8)}, "uint8[512]"),
])
def test_a_bad_frame_is_refused_when_prepared(frames, words):
    with SimOutput([1]) as out:
        with pytest.raises(OutputError, match=words.replace("[", r"\[").replace("]", r"\]")):
            out.prepare(frames)
        assert out.frames_sent == 0


def test_another_outputs_prepared_frames_are_checked_again():
    """A `Prepared` is trusted only by the output that made it."""
    with SimOutput([1, 2]) as other, SimOutput([1]) as out:
        ready = other.prepare({1: lit(5), 2: lit(6)})
        with pytest.raises(OutputError, match="universe 2 is not patched"):
            out.send(ready)
        assert out.frames_sent == 0
        out.send(other.prepare({1: lit(5)}))
        assert out.last_frames[1][0] == 5 and out.last_frames[1] is not other.last_frames[1]


def test_a_closed_output_refuses_prepared_frames():
    out = SimOutput([1]).open()
    ready = out.prepare({1: lit(3)})
    out.close()
    with pytest.raises(OutputError, match="not open"):
        out.send(ready)
