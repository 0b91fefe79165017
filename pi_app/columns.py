"""Element-wise NumPy operations on tall arrays of a few columns, done column by column.

The scene and the safety stage's state are ``(n, k)`` arrays with k of 2 to 7. NumPy runs an
element-wise operation whose operands are strided column slices, or broadcast ``(n, 1)``
columns, as n inner loops of k elements: at 10,880 fixtures ~140 µs, where the same work as
k loops of n elements takes 10–40 µs. The functions here do the latter. Element-wise, the
numbers are the very same bit for bit (`tests/test_columns.py`); only the iteration order
differs.

Below `SMALL` rows (a rig of a few dozen fixtures) the broadcast form is kept: there the k
extra NumPy calls cost more than NumPy's short loops, and the numbers are the same either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SMALL = 128          # fewer rows: one broadcast call (the same numbers; fewer NumPy calls)


def column(a: Any, j: int) -> Any:
    """Column j of an operand as NumPy would broadcast it against (n, k): a 2-D array's
    column (its only one if it has one), a 1-D row's element j, a scalar as it is."""
    if isinstance(a, np.ndarray):
        if a.ndim == 2:
            return a[:, j] if a.shape[1] > 1 else a[:, 0]
        if a.ndim == 1:
            return a[j]
    return a


def colwise(ufunc: np.ufunc, *args: Any, out: np.ndarray, where: Any = True) -> np.ndarray:
    """``ufunc(*args, out=out, where=where)`` for a 2-D ``out`` (n, k), column by column."""
    if out.shape[0] < SMALL:
        return ufunc(*args, out=out) if where is True else ufunc(*args, out=out, where=where)
    if where is True:
        for j in range(out.shape[1]):
            ufunc(*(column(a, j) for a in args), out=out[:, j])
    else:
        for j in range(out.shape[1]):
            ufunc(*(column(a, j) for a in args), out=out[:, j], where=column(where, j))
    return out


def copyto(dst: np.ndarray, src: np.ndarray, where: Any = True) -> None:
    """``np.copyto(dst, src, where=where)`` for a 2-D ``dst`` (n, k), column by column."""
    if dst.shape[0] < SMALL:
        np.copyto(dst, src, where=where)
        return
    for j in range(dst.shape[1]):
        np.copyto(dst[:, j], column(src, j), where=column(where, j))


def max_rows(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.maximum.reduce(a, axis=0, out=out)`` for (n, k) with few columns: each column's
    maximum on its own (a maximum is exact; for inputs without NaNs and signed zeros of
    both signs, as the safety stage's absolute values, the same value whatever the order)."""
    if a.shape[0] < SMALL:
        return np.maximum.reduce(a, axis=0, out=out)
    for j in range(a.shape[1]):
        out[j] = np.maximum.reduce(a[:, j])
    return out
