"""NumPy inference of exported models: the daemon's side of `pi_app.training`.

A model is a folder with ``model.json`` (what it is and how to rebuild it) and
``model.safetensors`` (its weights, no pickle). This module imports NumPy, safetensors.numpy and
json only — never torch — so it runs on a Pi Zero.

    m = load_model("nat-aurora")          # bundled, user, system folder, then a path
    pts = m.generate(z)                   # z: float32 (B, latent_dim) -> (B, len(fields))

``model.json`` (schema 1)::

    {"schema": 1, "name": ..., "family": "nat" | "iae", "latent_dim": 16,
     "weights": "model.safetensors",
     "output": {"kind": "points", "fields": [{"name": "x", "min": 0, "max": 1}, ...]}
            or {"kind": "image", "shape": [H, W, 3], "channels": ["r", "g", "b"],
                "min": 0, "max": 1},
     "layers": [{"type": "linear", "name": "net.0", "in": 16, "out": 128},
                {"type": "relu"}, ...],
     "recipe": {...}, "quality": {...}}

Layer types: ``linear`` (weights ``NAME.weight`` (out, in), ``NAME.bias``), ``relu``,
``leaky_relu`` (``slope``), ``tanh``, ``sigmoid``, ``silu``, ``reshape`` (a flat vector to
``shape`` = [C, H, W], as torch's ``nn.Unflatten``), ``upsample`` (nearest, integer ``scale``),
``conv2d`` (``NAME.weight`` (out, in, k, k), ``NAME.bias``, ``padding``, stride 1). Parameter
names are the torch module's ``state_dict`` keys. Image layers run channels-last (B, H, W, C)
internally, so the output needs no final transpose.

Speed: weights are pre-transposed to contiguous float32 at load and the per-batch-size work
buffers are kept, so ``generate`` is a handful of NumPy calls. A `Model` is therefore not
thread-safe: use one per thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import paths
from .errors import ModelError

SCHEMA = 1
POINT_FIELDS: tuple[str, ...] = ("x", "y", "r", "g", "b", "w")
_FIX_RETRAIN = "re-export it with `latentdmx train` or pick another with --model"


@dataclass(frozen=True)
class ModelInfo:
    """What a model makes, read from its ``model.json``."""

    name: str
    family: str                                  # 'nat' | 'iae'
    kind: str                                    # 'points' | 'image'
    latent_dim: int
    fields: tuple[str, ...]                      # points: ('x','y','r','g','b','w'); image: ()
    image_shape: tuple[int, int, int] | None     # (H, W, C), C = 3 (RGB); points: None
    path: Path                                   # the model folder
    card: dict = field(default_factory=dict, compare=False, hash=False)  # recipe, quality


# ---------------------------------------------------------------- where models live

def bundled_dir() -> Path:
    """``pi_app/_models`` in an installed wheel, else the checkout's ``models/``."""
    here = Path(__file__).resolve().parent
    wheel = here / "_models"
    return wheel if wheel.is_dir() else here.parent / "models"


def user_dir() -> Path | None:
    """``$XDG_DATA_HOME/latentdmx/models`` (``~/.local/share/latentdmx/models``); None without
    a home (the service's)."""
    base = paths.user_data_dir()
    return None if base is None else base / "models"


def model_folders() -> list[tuple[str, Path]]:
    """``(where, folder)`` in lookup order: 'bundled', then 'user' (only with a home), then
    'system' (``/var/lib/latentdmx/models``, the one the service sees) — `paths.models_dirs`."""
    system = paths.system_dir() / "models"
    return [("bundled", bundled_dir())] + [("system" if d == system else "user", d)
                                           for d in paths.models_dirs()]


def list_models() -> list[tuple[str, str]]:
    """``(name, where)`` for every model in `model_folders`, in lookup order; where is
    'bundled', 'user' or 'system'. A name found twice plays the first one."""
    found: list[tuple[str, str]] = []
    for where, root in model_folders():
        if root.is_dir():
            found += [(p.parent.name, where) for p in sorted(root.glob("*/model.json"))]
    return found


def find_model(name: str | os.PathLike) -> Path:
    """The folder of model NAME: the first of `model_folders` that has it, else NAME as a
    path. Not found: the error says every place it looked."""
    text = str(name)
    folders = [root for _, root in model_folders()]
    bare = bool(text) and "/" not in text and os.sep not in text and text not in (".", "..")
    if bare:
        for root in folders:
            if (root / text / "model.json").is_file():
                return root / text
    path = Path(text).expanduser()
    if path.name == "model.json":
        path = path.parent
    if not (path / "model.json").is_file():
        known = ", ".join(dict.fromkeys(n for n, _ in list_models())) or "none"
        looked = paths.where_looked([*folders, path] if bare else [path])
        system = paths.system_dir() / "models"
        raise ModelError("no such model (no model.json there)", file=path, field="model",
                         fix=f"{looked}; known: {known}. Put the model folder in {system} for "
                             "the service (`latentdmx train ... --system`), or give a model "
                             "folder's path")
    return path


# ---------------------------------------------------------------- loading

def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read JSON ({exc.__class__.__name__}: {exc})", file=path,
                         fix=_FIX_RETRAIN) from None
    if not isinstance(doc, dict):
        raise ModelError("not a JSON object", file=path, fix=_FIX_RETRAIN)
    return doc


def _get(doc: dict, key: str, kind: type | tuple, path: Path, where: str = ""):
    value = doc.get(key) if isinstance(doc, dict) else None
    if value is None or not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ModelError(f"missing or wrong type (want {getattr(kind, '__name__', kind)})",
                         file=path, field=where + key, fix=_FIX_RETRAIN)
    return value


def _read_weights(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ModelError("weights file missing", file=path, field="(weights)",
                         fix=_FIX_RETRAIN)
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:   # truncated, garbage, unreadable
        raise ModelError(f"cannot read safetensors ({str(exc).splitlines()[0][:80]})",
                         file=path, field="(weights)", fix=_FIX_RETRAIN) from None
    for name, w in weights.items():       # a diverged training run exports NaN or inf
        if w.dtype.kind == "f" and not np.isfinite(w).all():
            raise ModelError("weights are not finite (NaN or inf)", file=path, field=name,
                             fix=_FIX_RETRAIN)
    return weights


def _info(doc: dict, folder: Path, jpath: Path) -> ModelInfo:
    schema = _get(doc, "schema", int, jpath)
    if schema != SCHEMA:
        raise ModelError(f"schema {schema} not supported (this runtime reads {SCHEMA})",
                         file=jpath, field="schema", fix="update latentdmx or re-export")
    family = _get(doc, "family", str, jpath)
    if family not in ("nat", "iae"):
        raise ModelError(f"unknown family {family!r}", file=jpath, field="family",
                         fix="use 'nat' or 'iae'")
    latent = _get(doc, "latent_dim", int, jpath)
    out = _get(doc, "output", dict, jpath)
    kind = _get(out, "kind", str, jpath, "output.")
    if kind == "points":
        names = tuple(str(_get(f, "name", str, jpath, "output.fields[].")) for f in
                      _get(out, "fields", list, jpath, "output."))
        shape = None
    elif kind == "image":
        shape_list = _get(out, "shape", list, jpath, "output.")
        if len(shape_list) != 3 or not all(isinstance(s, int) and s > 0 for s in shape_list):
            raise ModelError("want [H, W, C] positive integers", file=jpath,
                             field="output.shape", fix=_FIX_RETRAIN)
        names, shape = (), (shape_list[0], shape_list[1], shape_list[2])
    else:
        raise ModelError(f"unknown output kind {kind!r}", file=jpath, field="output.kind",
                         fix="use 'points' or 'image'")
    card = {k: doc.get(k) for k in ("recipe", "quality") if k in doc}
    return ModelInfo(name=str(doc.get("name") or folder.name), family=family, kind=kind,
                     latent_dim=latent, fields=names, image_shape=shape, path=folder, card=card)


def load_model(name: str | os.PathLike) -> Model:
    """Load model NAME (bundled, user folder, or path); raise `ModelError` if it is broken."""
    folder = find_model(name)
    jpath = folder / "model.json"
    doc = _read_json(jpath)
    info = _info(doc, folder, jpath)
    wpath = folder / str(doc.get("weights", "model.safetensors"))
    weights = _read_weights(wpath)
    layers = _get(doc, "layers", list, jpath)
    return Model(info, _build(layers, weights, info, jpath, wpath))


# ---------------------------------------------------------------- layers -> NumPy ops
# Each op maps x -> y and may keep work buffers keyed by the input shape.

Op = Callable[[np.ndarray], np.ndarray]


class _Linear:
    def __init__(self, w: np.ndarray, b: np.ndarray) -> None:
        self.wt = np.ascontiguousarray(w.T, dtype=np.float32)       # (in, out)
        self.b = np.ascontiguousarray(b, dtype=np.float32)          # (out,)
        self.buf: dict[int, np.ndarray] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:                # (B, in) -> (B, out)
        out = self.buf.get(x.shape[0])
        if out is None:
            out = self.buf[x.shape[0]] = np.empty((x.shape[0], self.wt.shape[1]), np.float32)
        np.matmul(x, self.wt, out=out)
        out += self.b
        return out

    def fresh(self, x: np.ndarray) -> np.ndarray:                   # no kept buffer
        out = np.matmul(x, self.wt)
        out += self.b
        return out


class _Conv2d:
    """k x k convolution, stride 1, zero padding, channels-last, as one im2col matmul.

    The k*k shifted views of the padded input are concatenated along the channels (a few
    contiguous copies, much faster than reshaping a 6-D sliding-window view), then one matmul.
    """

    def __init__(self, w: np.ndarray, b: np.ndarray, padding: int) -> None:
        o, c, k, _ = w.shape
        # (O, C, kh, kw) -> (kh, kw, C, O) -> (kh*kw*C, O): the order of the concatenation
        self.wm = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(k * k * c, o),
                                       dtype=np.float32)
        self.b = np.ascontiguousarray(b, dtype=np.float32)
        self.k, self.p, self.c, self.o = k, padding, c, o
        self.pad: dict[tuple, np.ndarray] = {}

    def __call__(self, x: np.ndarray, keep: bool = True) -> np.ndarray:
        # (B, H, W, C) -> (B, H', W', O); `keep`: keep the padded buffer for this shape
        bsz, h, w, _ = x.shape
        p, k = self.p, self.k
        xp = self.pad.get(x.shape)
        if xp is None:                                              # zero border, kept
            xp = np.zeros((bsz, h + 2 * p, w + 2 * p, self.c), np.float32)
            if keep:
                self.pad[x.shape] = xp
        xp[:, p:p + h, p:p + w, :] = x
        ho, wo = h + 2 * p - k + 1, w + 2 * p - k + 1
        cols = np.concatenate([xp[:, i:i + ho, j:j + wo, :] for i in range(k)
                               for j in range(k)], axis=-1)         # (B, H', W', k*k*C)
        out = cols.reshape(bsz * ho * wo, k * k * self.c) @ self.wm
        out += self.b
        return out.reshape(bsz, ho, wo, self.o)


class _MLP:
    """A chain of linear layers with ReLU between them (the NAT family), fused for speed.

    Activations run feature-major, (features + 1, B), with a last row of ones, so each bias
    is one more weight column and every layer is one matmul into a contiguous row slice plus
    one in-place ReLU. Same numbers as `_Linear` + `_relu`, a third fewer NumPy calls.
    """

    def __init__(self, linears: list[_Linear]) -> None:
        # (out, in + 1): weight with the bias as its last column
        self.w = [np.ascontiguousarray(np.concatenate([ln.wt.T, ln.b[:, None]], 1))
                  for ln in linears[:-1]]
        last = linears[-1]
        self.last = np.ascontiguousarray(np.concatenate([last.wt, last.b[None, :]], 0))
        self.dims = [linears[0].wt.shape[0]] + [ln.wt.shape[1] for ln in linears[:-1]]
        self.buf: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:                # (B, in) -> (B, out)
        bufs = self.buf.get(x.shape[0])
        if bufs is None:          # activations (with their row of ones), and ReLU's zeros
            bufs = self.buf[x.shape[0]] = self._buffers(x.shape[0])
        return self._run(x, bufs)

    def fresh(self, x: np.ndarray) -> np.ndarray:                   # no kept buffers
        return self._run(x, self._buffers(x.shape[0]))

    def _buffers(self, batch: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return ([np.ones((d + 1, batch), np.float32) for d in self.dims],
                [np.zeros((d, batch), np.float32) for d in self.dims[1:]])

    def _run(self, x: np.ndarray, bufs: tuple[list[np.ndarray], list[np.ndarray]]
             ) -> np.ndarray:
        acts, zeros = bufs
        acts[0][:-1] = x.T                                          # (in, B)
        # np.dot: the same BLAS call as np.matmul (same numbers, checked bit for bit), with
        # ~1.5 µs less overhead per call. ReLU against an array of zeros: twice as fast as
        # against the scalar 0.0, and the same numbers (BLAS never returns -0.0, the one
        # input where they differ)
        for w, src, dst, zero in zip(self.w, acts, acts[1:], zeros, strict=False):
            h = dst[:-1]                                            # (width, B)
            np.dot(w, src, out=h)
            np.maximum(h, zero, out=h)
        return np.dot(acts[-1].T, self.last)                        # (B, out), a new array


def _fuse(ops: list[Op]) -> list[Op]:
    """Linear (ReLU Linear)* with nothing else: one `_MLP` op."""
    linears = ops[0::2]
    if (len(ops) % 2 == 1 and all(isinstance(op, _Linear) for op in linears)
            and all(op is _relu for op in ops[1::2])):
        return [_MLP([op for op in linears if isinstance(op, _Linear)])]
    return ops


def _reshape(chw: tuple[int, int, int]) -> Op:
    def op(x: np.ndarray) -> np.ndarray:                            # (B, C*H*W) -> (B, H, W, C)
        return x.reshape(x.shape[0], *chw).transpose(0, 2, 3, 1)
    return op


def _upsample(s: int) -> Op:
    def op(x: np.ndarray) -> np.ndarray:                            # (B, H, W, C) -> (B, sH, sW, C)
        b, h, w, c = x.shape
        big = np.broadcast_to(x[:, :, None, :, None, :], (b, h, s, w, s, c))
        return big.reshape(b, h * s, w * s, c)
    return op


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x if x.flags.writeable else None)


def _leaky(slope: float) -> Op:
    def op(x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, x, x * np.float32(slope))
    return op


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # 1 / (1 + exp(-x)), written as 0.5 * (1 + tanh(x / 2)): no overflow warnings
    y = np.tanh(x * np.float32(0.5))
    y += 1.0
    y *= 0.5
    return y


def _silu(x: np.ndarray) -> np.ndarray:
    return x * _sigmoid(x)


def _build(layers: list, weights: dict[str, np.ndarray], info: ModelInfo, jpath: Path,
           wpath: Path) -> list[Op]:
    def tensor(name: str, shape: tuple[int, ...] | None, where: str) -> np.ndarray:
        t = weights.get(name)
        if t is None:
            raise ModelError(f"tensor {name!r} missing", file=wpath, field=where,
                             fix=_FIX_RETRAIN)
        if shape is not None and tuple(t.shape) != shape:
            raise ModelError(f"tensor {name!r} has shape {tuple(t.shape)}, want {shape}",
                             file=wpath, field=where, fix=_FIX_RETRAIN)
        return t.astype(np.float32)

    ops: list[Op] = []
    width: int | tuple = info.latent_dim          # flat width, or (H, W, C) once an image
    for i, spec in enumerate(layers):
        where = f"layers[{i}]."
        kind = _get(spec, "type", str, jpath, where)
        if kind == "linear":
            name = _get(spec, "name", str, jpath, where)
            w = tensor(f"{name}.weight", None, where + "name")
            if w.ndim != 2 or w.shape[1] != width:
                raise ModelError(f"{name}.weight has shape {w.shape}, input width is {width}",
                                 file=wpath, field=where + "name", fix=_FIX_RETRAIN)
            ops.append(_Linear(w, tensor(f"{name}.bias", (w.shape[0],), where + "name")))
            width = w.shape[0]
        elif kind == "conv2d":
            name = _get(spec, "name", str, jpath, where)
            w = tensor(f"{name}.weight", None, where + "name")
            if not isinstance(width, tuple) or w.ndim != 4 or w.shape[1] != width[2] \
                    or w.shape[2] != w.shape[3]:
                raise ModelError(f"{name}.weight has shape {w.shape}, input is {width}",
                                 file=wpath, field=where + "name", fix=_FIX_RETRAIN)
            pad = int(spec.get("padding", 0))
            ops.append(_Conv2d(w, tensor(f"{name}.bias", (w.shape[0],), where + "name"), pad))
            k = w.shape[2]
            width = (width[0] + 2 * pad - k + 1, width[1] + 2 * pad - k + 1, w.shape[0])
        elif kind == "reshape":
            c, h, w_ = (int(s) for s in _get(spec, "shape", list, jpath, where))
            if width != c * h * w_:
                raise ModelError(f"cannot reshape width {width} to {[c, h, w_]}", file=jpath,
                                 field=where + "shape", fix=_FIX_RETRAIN)
            ops.append(_reshape((c, h, w_)))
            width = (h, w_, c)
        elif kind == "upsample":
            s = int(_get(spec, "scale", int, jpath, where))
            if not isinstance(width, tuple):
                raise ModelError("upsample needs an image input", file=jpath, field=where,
                                 fix=_FIX_RETRAIN)
            ops.append(_upsample(s))
            width = (width[0] * s, width[1] * s, width[2])
        elif kind in ("relu", "tanh", "sigmoid", "silu"):
            acts: dict[str, Op] = {"relu": _relu, "tanh": np.tanh, "sigmoid": _sigmoid,
                                   "silu": _silu}
            ops.append(acts[kind])
        elif kind == "leaky_relu":
            ops.append(_leaky(float(spec.get("slope", 0.01))))
        else:
            raise ModelError(f"unknown layer type {kind!r}", file=jpath, field=where + "type",
                             fix="update latentdmx or re-export the model")
    want = len(info.fields) if info.kind == "points" else info.image_shape
    if width != want:
        raise ModelError(f"layers end with {width}, output wants {want}", file=jpath,
                         field="layers", fix=_FIX_RETRAIN)
    return _fuse(ops)


# ---------------------------------------------------------------- the model

class Model:
    """A loaded model: ``info`` and ``generate(z)``."""

    def __init__(self, info: ModelInfo, ops: list[Op]) -> None:
        self.info = info
        self._ops = ops
        # in-place activations must never write into the caller's z
        self._copy_z = bool(ops) and not isinstance(ops[0], (_Linear, _Conv2d, _MLP))
        self._fresh = bool(ops) and isinstance(ops[-1], _MLP)

    def generate(self, z: np.ndarray) -> np.ndarray:
        """z float32 (B, latent_dim) -> points (B, n_fields) or images (B, H, W, C), in [0, 1].

        The result is a fresh array the caller may keep. Work buffers are kept per batch
        size (the show's frames: one size), so use `generate_scratch` for one-off batches.
        """
        return self._generate(z, False)

    def generate_scratch(self, z: np.ndarray) -> np.ndarray:
        """`generate` with work buffers made for this call and dropped after it (the same
        numbers): for one-off batches such as the guarded walk's look ahead, so no buffer
        per batch size is kept, and safe beside `generate` on another thread."""
        return self._generate(z, True)

    def _generate(self, z: np.ndarray, scratch: bool) -> np.ndarray:
        if z.ndim != 2 or z.shape[1] != self.info.latent_dim:
            raise ValueError(f"z has shape {z.shape}, want (B, {self.info.latent_dim})")
        x = z if z.dtype == np.float32 and not self._copy_z else z.astype(np.float32)
        for op in self._ops:
            fresh = getattr(op, "fresh", None) if scratch else None
            x = fresh(x) if fresh is not None else op(x)
        # clip to [0, 1] with two ufuncs (np.clip's Python wrapper costs more than both; the
        # only difference: -0.0 comes out as +0.0, which no later stage can tell apart)
        if not self._fresh:                 # a new array: work buffers stay private
            x = np.maximum(x, 0.0)
        else:                               # the last op made a new array: clip in place
            np.maximum(x, 0.0, out=x)
        return np.minimum(x, 1.0, out=x)

    def __repr__(self) -> str:
        i = self.info
        out = i.fields if i.kind == "points" else i.image_shape
        return f"<Model {i.name} {i.family} latent={i.latent_dim} -> {i.kind} {out}>"
