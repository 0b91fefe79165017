"""The cheaper per-frame kernels (issue 18) compute exactly what NumPy's reductions did, bit for
bit, so the show is the same frame for frame (`scripts/same_show.py` checks whole shows)."""

from __future__ import annotations

import numpy as np
import pytest

from pi_app.mapper import max_columns
from pi_app.safety import sum_last


def awkward(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """float32 over many magnitudes, with signed zeros, infinities and NaNs sprinkled in."""
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-30, 30, shape)).astype(np.float32)
    pick = rng.random(shape)
    a[pick < 0.05] = -0.0
    a[(pick >= 0.05) & (pick < 0.08)] = 0.0
    a[(pick >= 0.08) & (pick < 0.085)] = np.inf
    a[(pick >= 0.085) & (pick < 0.09)] = -np.inf
    a[(pick >= 0.09) & (pick < 0.093)] = np.nan
    return a


@pytest.mark.parametrize("n,k", [(1, 4), (7, 4), (1024, 4), (10880, 4), (33, 2), (5, 7)])
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf
def test_sum_last_is_add_reduce_bit_for_bit(n, k):
    for seed in range(5):
        a = awkward((n, 2, k), seed)
        want = np.add.reduce(a, axis=2, out=np.empty((n, 2), np.float32))
        got = sum_last(a, np.empty((n, 2), np.float32))
        assert np.array_equal(got.view(np.int32), want.view(np.int32))


@pytest.mark.parametrize("n,k", [(1, 4), (7, 4), (1024, 4), (10880, 4), (9, 3)])
def test_max_columns_is_maximum_reduce_bit_for_bit(n, k):
    for seed in range(5):
        a = awkward((n, k + 2), seed)[:, 1:k + 1]          # a strided view, as the mapper's
        want = np.maximum.reduce(a, axis=1, out=np.empty(n, np.float32))
        got = max_columns(a, np.empty(n, np.float32))
        assert np.array_equal(got.view(np.int32), want.view(np.int32))
