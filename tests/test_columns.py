"""The column-by-column kernels (issue 12: 64 universes of pixels) compute exactly what the
broadcast NumPy operations they replace computed, bit for bit: element by element, and for
the whole safety stage and both mappers, on random and hostile input (NaN, infinities,
signed zeros, strobes, fade-out, keep-out boxes). `scripts/same_show.py` checks whole shows.

Each stage is checked against a twin whose kernels are swapped back to the plain broadcast
expressions the stages used before (58fc28d .. da8c9cc): any difference in a single bit of
any frame fails.
"""

from __future__ import annotations

import hypothesis_profiles  # noqa: F401  (registers and loads the profile)
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_frame_cost import awkward

from pi_app import columns
from pi_app import mapper as mapper_mod
from pi_app import safety as safety_mod
from pi_app.config import load_config, parse_config
from pi_app.mapper import ImageMapper, PointsMapper
from pi_app.patch import Patch
from pi_app.safety import Safety, sum_last
from pi_app.scene import DIMMER, N_ATTRS, PAN, RED, TILT, WHITE


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.tobytes() == b.tobytes()


# -- the kernels, element by element ----------------------------------------------------------
@pytest.fixture(autouse=True, params=["as shipped", "columns always"])
def small(request, monkeypatch):
    """Each test twice: with the small-rig broadcast path (`columns.SMALL`), and with the
    column-by-column path for every size."""
    if request.param == "columns always":
        monkeypatch.setattr(columns, "SMALL", 0)
    return request.param


@pytest.mark.parametrize("ufunc", [np.add, np.subtract, np.multiply, np.divide, np.minimum,
                                   np.maximum, np.fmax])
@pytest.mark.parametrize("n,k", [(1, 2), (7, 4), (1024, 5), (10880, 4)])
def test_colwise_is_the_broadcast_ufunc(ufunc, n, k):
    for seed in range(3):
        wide = awkward((n, k + 3), seed)
        a = wide[:, 1:k + 1]                                 # strided views, as the stages'
        b = awkward((n, k), seed + 10)
        col = awkward((n, 1), seed + 20)                     # a broadcast column
        row = awkward((k,), seed + 30)                       # a broadcast row
        for x, y in ((a, b), (a, col), (col, a), (a, row), (a, np.float32(0.25)), (a, 1.0)):
            with np.errstate(all="ignore"):
                want = ufunc(x, y, out=np.empty((n, k), np.float32))
                got = columns.colwise(ufunc, x, y, out=np.empty((n, k), np.float32))
            if ufunc is np.fmax:
                # IEEE 754 lets fmax(+0, -0) be either zero, and NumPy's kernels differ
                # (NumPy 2.4's contiguous SIMD loop and its strided loop pick differently):
                # the same value, and the same bits once -0 is made +0 (x + 0.0)
                got, want = got + np.float32(0.0), want + np.float32(0.0)
            assert same_bits(got, want)


@pytest.mark.parametrize("n,k", [(1, 2), (33, 5), (10880, 5)])
def test_copyto_is_numpy_copyto(n, k):
    for seed in range(3):
        src = awkward((n, k + 2), seed)[:, 2:]
        mask = np.random.default_rng(seed).random((n, 1)) < 0.5
        want, got = awkward((n, k), seed + 5), awkward((n, k), seed + 5)
        np.copyto(want, src, where=mask)
        columns.copyto(got, src, where=mask)
        assert same_bits(got, want)
        columns.copyto(got, src)
        assert same_bits(got, src.copy())


@pytest.mark.parametrize("n", [1, 9, 10880])
def test_max_rows_is_maximum_reduce(n):
    for seed in range(4):
        a = np.abs(awkward((n, 2), seed))                     # as the safety stage's |dY|, |dg|
        want = np.maximum.reduce(a, axis=0, out=np.empty(2, np.float32))
        got = columns.max_rows(a, np.empty(2, np.float32))
        assert np.array_equal(got, want, equal_nan=True)


# -- the safety stage, frame by frame -----------------------------------------------------------
def _broadcast_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Swap the column kernels back to the broadcast expressions they replace."""
    def colwise(ufunc, *args, out, where=True):
        return ufunc(*args, out=out, where=where)

    def max_rows(a, out):
        return np.maximum.reduce(a, axis=0, out=out)

    def signals(self, e, out):
        prod = np.empty((len(e), 2, e.shape[1]), np.float32)
        np.multiply(e[:, None, :], self._w2, out=prod)
        return sum_last(prod, out)

    def mix(self, c_p, c_d, ratio):
        c_p[:] = c_d + ratio[:, None] * (c_p - c_d)

    monkeypatch.setattr(safety_mod.col, "colwise", colwise)
    monkeypatch.setattr(safety_mod.col, "copyto", np.copyto)
    monkeypatch.setattr(safety_mod.col, "max_rows", max_rows)
    monkeypatch.setattr(Safety, "_signals", signals)
    monkeypatch.setattr(Safety, "_mix", mix)


HEADS = "".join(f'[[fixtures]]\nname = "h{i}"\nprofile = "lumeri-wash-7-10"\nmode = "14ch"\n'
                f"address = {i * 14 + 1}\n"
                + ("keep_out = [[0.2, 0.6, 0.0, 0.5]]\n" if i % 3 == 0 else "")
                for i in range(12))
PIXELS = "".join(f'[[fixtures]]\nname = "p{i}"\nprofile = "generic-rgb"\nmode = "3ch"\n'
                 f"universe = {1 + i // 170}\naddress = {(i % 170) * 3 + 1}\n"
                 f"position = [{(i % 50) / 49:.3f}, {(i // 50) / 40:.3f}]\n"
                 for i in range(2000))


def _scenes(kind: int, n: int, frames: int, rng: np.random.Generator):
    base = rng.random((n, N_ATTRS)).astype(np.float32)
    for k in range(frames):
        if kind == 0:                                      # noise
            s = rng.random((n, N_ATTRS)).astype(np.float32)
        elif kind == 1:                                    # red strobe with junk
            s = base.copy()
            s[:, 2], s[:, 3], s[:, 4:] = (k // 3) % 2, 1.0, 0.05 * (k % 4 == 0)
        elif kind == 2:                                    # slow drift: the quick gate
            s = (base + 0.002 * k) % 1.0
        else:                                              # hostile values
            s = awkward((n, N_ATTRS), k) * np.float32(1e-30)
            s[rng.random(n) < 0.5] = rng.random(N_ATTRS).astype(np.float32)
        yield s.astype(np.float32)


@pytest.mark.slow
@settings(max_examples=10, deadline=None)
@given(st.integers(0, 3), st.sampled_from(["demo", "heads", "pixels"]),
       st.integers(0, 2**32 - 1))
def test_safety_is_the_broadcast_stage(kind, rig, seed):
    cfg = {"demo": lambda: load_config(None),
           "heads": lambda: parse_config(HEADS, "<heads>"),
           "pixels": lambda: parse_config(PIXELS, "<pixels>")}[rig]()
    frames = 120
    rng = np.random.default_rng(seed)
    scenes = list(_scenes(kind, len(cfg.fixtures), frames, rng))

    def play() -> list[bytes]:
        stage, outs = Safety(cfg, Patch(cfg), cfg.fps), []
        for k, scene in enumerate(scenes):
            if k == 50:
                stage.master = 0.7
            if k == 90:
                stage.start_fade_out(k / cfg.fps)
            outs.append(stage(scene, k / cfg.fps).tobytes())
        return outs

    got = play()
    with pytest.MonkeyPatch.context() as mp:
        _broadcast_kernels(mp)
        want = play()
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"frame {k}"


# -- the mappers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(16, 16), (32, 32), (16, 24)])
def test_image_mapper_is_the_broadcast_mapper(shape):
    """Aim, dimmer and colour bit for bit as the broadcast expressions gave them (before:
    `np.stack` of the offsets / mass, `0.5 + half * tanh(off / reach)`, broadcast colour)."""
    rng = np.random.default_rng(sum(shape))
    h, w = shape
    pos = rng.random((3001, 2)).astype(np.float32)
    pos[:5] = [[0, 0], [1, 1], [0, 1], [0.5, 0.5], [1, 0]]
    m = ImageMapper((h, w, 3), pos)
    n = len(pos)
    for _ in range(5):
        img = rng.random((h, w, 3)).astype(np.float32) ** rng.uniform(0.5, 4)
        img[rng.random((h, w)) < 0.3] = 0.0
        s = m(img[None]).copy()
        flat = img.reshape(-1, 3)
        rgb = np.zeros((n, 3), np.float32)
        for k, (idx, wt) in enumerate(zip(m._corners, m._wts, strict=True)):
            term = np.take(flat.reshape(-1), idx).reshape(n, 3) * wt[:, :1]
            rgb = term if k == 0 else rgb + term
        t = img.mean(axis=2) @ m._rows
        t0 = t[:, :n]
        mass = np.einsum("yi,yi->i", m._cols, t0) + m._eps
        off = np.stack([np.einsum("yi,yi->i", m._cols, t[:, n:]),
                        np.einsum("yi,yi->i", m._cols_dy, t0)], axis=1) / mass[:, None]
        aim = 0.5 + m._half * np.tanh(off * m._inv_reach)
        white = np.minimum(np.minimum(rgb[:, 0], rgb[:, 1]), rgb[:, 2])
        rgbw = np.concatenate([rgb - white[:, None], white[:, None]], axis=1)
        peak = np.maximum.reduce(rgbw, axis=1)
        colour = rgbw / np.maximum(peak, mapper_mod._EPS)[:, None]
        assert same_bits(s[:, PAN:TILT + 1], aim)
        assert same_bits(s[:, DIMMER], peak)
        assert same_bits(s[:, RED:WHITE + 1], colour)


@pytest.mark.parametrize("fields", [("x", "y", "r", "g", "b", "w"), ("r", "g", "b", "y", "x"),
                                    ("x", "y", "r", "g", "b")])
def test_points_mapper_is_the_broadcast_mapper(fields):
    n = 2048
    m = PointsMapper(fields, n)
    idx = {f: i for i, f in enumerate(fields)}
    for seed in range(4):
        out = awkward((n, len(fields)), seed)
        with np.errstate(all="ignore"):
            s = m(out).copy()
        rgbw = np.stack([out[:, idx[c]] if c in idx else np.zeros(n, np.float32)
                         for c in "rgbw"], axis=1)
        peak = np.maximum.reduce(rgbw, axis=1)
        with np.errstate(all="ignore"):
            colour = rgbw / np.maximum(peak, mapper_mod._EPS)[:, None]
        assert same_bits(s[:, PAN], out[:, idx["x"]].copy())
        assert same_bits(s[:, TILT], out[:, idx["y"]].copy())
        assert same_bits(s[:, DIMMER], peak)
        assert same_bits(s[:, RED:WHITE + 1], colour)


# -- the patch ----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("rig", ["demo", "pixels"])
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NaN -> int
def test_patch_is_the_broadcast_patch(rig, monkeypatch):
    """Colour x dimmer baked for fixtures without a dimmer (the pixel rig's RGB pixels),
    column by column: the same DMX bytes as the broadcast product."""
    from pi_app import patch as patch_mod

    cfg = load_config(None) if rig == "demo" else parse_config(PIXELS, "<pixels>")
    rng = np.random.default_rng(7)
    scenes = [rng.random((len(cfg.fixtures), N_ATTRS)).astype(np.float32) for _ in range(20)]
    scenes.append(awkward((len(cfg.fixtures), N_ATTRS), 3))

    def play() -> list[bytes]:
        p = Patch(cfg)
        return [b"".join(f.tobytes() for _, f in sorted(p.frames(s).items())) for s in scenes]

    got = play()
    monkeypatch.setattr(patch_mod, "colwise",
                        lambda ufunc, *a, out, where=True: ufunc(*a, out=out, where=where))
    assert play() == got
