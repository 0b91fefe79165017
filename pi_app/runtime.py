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
import math
import os
import stat
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


def find_model(name: str | os.PathLike, *, named_only: bool = False) -> Path:
    """The folder of model NAME: the first of `model_folders` that has it, else NAME as a
    path (not with `named_only`: a request from the network). Not found: the error says
    every place it looked."""
    text = str(name)
    if not text or "\0" in text or len(text) > MAX_NAME_CHARS:
        raise ModelError("not a model name or folder" if text else "no model named",
                         file=_clip(text), field="model",
                         fix="use a bundled or user model name (`latentdmx models`) or a "
                             "model folder path")
    folders = [root for _, root in model_folders()]
    bare = bool(text) and "/" not in text and os.sep not in text and text not in (".", "..")
    if bare:
        for root in folders:
            if _is_file(root / text / "model.json"):
                return root / text
    if named_only:
        known = ", ".join(dict.fromkeys(n for n, _ in list_models())) or "none"
        raise ModelError("not a model of the model folders" if bare else
                         "a model path is taken only from this machine (the CLI)",
                         file=_clip(text), field="model",
                         fix=f"name one of: {known} (`latentdmx models`), or run `latentdmx "
                             "model PATH` on the machine itself")
    path = Path(text).expanduser()
    if path.name == "model.json":
        path = path.parent
    if not _is_file(path / "model.json"):
        known = ", ".join(dict.fromkeys(n for n, _ in list_models())) or "none"
        looked = paths.where_looked([*folders, path] if bare else [path])
        system = paths.system_dir() / "models"
        raise ModelError("no such model (no model.json there)", file=path, field="model",
                         fix=f"{looked}; known: {known}. Put the model folder in {system} for "
                             "the service (`latentdmx train ... --system`), or give a model "
                             "folder's path")
    return path


# ---------------------------------------------------------------- loading
# Everything the runtime and the mapper rely on is checked here, at load, so a model that
# loads can be played: a broken one is one `ModelError` naming the file, the field and the
# fix, never a traceback in the middle of a show.

MAX_NAME_CHARS = 4096
MAX_JSON_BYTES = 1 << 20                 # model.json is a few KB
MAX_WEIGHTS_BYTES = 512 << 20            # the bundled models are well under 1 MB
MAX_LATENT = 4096
MAX_ACTIVATION = 1 << 22                 # values per sample in any layer's output
MAX_IMAGE_SIDE = 1024
WEIGHT_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64}
POINTS_NEED: tuple[str, ...] = ("x", "y", "r", "g", "b")     # w is optional


def _clip(text: str, n: int = 60) -> str:
    text = text.replace("\0", "\\0")
    return text if len(text) <= n else text[:n] + "…"


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):            # a name too long for the file system, ...
        return False


def _read_bytes(path: Path, limit: int, what: str) -> bytes:
    """A regular file's bytes, opened without blocking, at most `limit` of them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ModelError(f"cannot open {what} ({exc.strerror or exc})", file=path,
                         field="(file)", fix=_FIX_RETRAIN) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ModelError(f"{what} is not a regular file", file=path, field="(file)",
                             fix=_FIX_RETRAIN)
        if st.st_size > limit:
            raise ModelError(f"{what} is {st.st_size} bytes, more than {limit}", file=path,
                             field="(file)", fix=_FIX_RETRAIN)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit + 1)
    except OSError as exc:
        raise ModelError(f"cannot read {what} ({exc.strerror or exc})", file=path,
                         field="(file)", fix=_FIX_RETRAIN) from None
    finally:
        os.close(fd)


def _read_json(path: Path) -> dict:
    data = _read_bytes(path, MAX_JSON_BYTES, "model.json")
    try:
        doc = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ModelError("JSON nested too deeply", file=path, field="(syntax)",
                         fix=_FIX_RETRAIN) from None
    except (UnicodeDecodeError, ValueError) as exc:   # ValueError: JSONDecodeError, huge ints
        raise ModelError(f"cannot read JSON ({exc.__class__.__name__}: "
                         f"{_clip(str(exc), 80)})", file=path, field="(syntax)",
                         fix=_FIX_RETRAIN) from None
    if not isinstance(doc, dict):
        raise ModelError("not a JSON object", file=path, field="(top level)", fix=_FIX_RETRAIN)
    return doc


def _get(doc: dict, key: str, kind: type | tuple, path: Path, where: str = ""):
    value = doc.get(key) if isinstance(doc, dict) else None
    if value is None or not isinstance(value, kind) or (isinstance(value, bool) and
                                                         kind in (int, float, (int, float))):
        raise ModelError(f"missing or wrong type (want {getattr(kind, '__name__', kind)})",
                         file=path, field=where + key, fix=_FIX_RETRAIN)
    return value


def _get_int(doc: dict, key: str, lo: int, hi: int, path: Path, where: str = "",
             default: int | None = None) -> int:
    """A whole number lo..hi (a float like 2.0 is not one)."""
    if default is not None and isinstance(doc, dict) and key not in doc:
        return default
    value = _get(doc, key, int, path, where)
    if not lo <= value <= hi:
        raise ModelError(f"{_clip(str(value), 20)} is outside {lo}..{hi}", file=path,
                         field=where + key, fix=_FIX_RETRAIN)
    return value


def _check_header(path: Path, data: bytes) -> None:
    """The safetensors header: every tensor a float type this runtime reads (NumPy has no
    BF16 or F8), so the library is only asked to load what it can."""
    if len(data) < 8:
        raise ModelError("not a safetensors file (too short)", file=path, field="(weights)",
                         fix=_FIX_RETRAIN)
    size = int.from_bytes(data[:8], "little")
    if size > min(len(data) - 8, 100 << 20):
        raise ModelError("not a safetensors file (bad header length)", file=path,
                         field="(weights)", fix=_FIX_RETRAIN)
    try:
        header = json.loads(data[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelError("not a safetensors file (bad header)", file=path, field="(weights)",
                         fix=_FIX_RETRAIN) from None
    if not isinstance(header, dict):
        raise ModelError("not a safetensors file (bad header)", file=path, field="(weights)",
                         fix=_FIX_RETRAIN)
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        if dtype not in WEIGHT_DTYPES:
            raise ModelError(f"tensor dtype {_clip(str(dtype), 20)} cannot be read here "
                             f"(F16, F32 or F64)", file=path, field=_clip(name),
                             fix="re-export the model with float32 weights (`latentdmx "
                                 "train` does)")


def _read_weights(path: Path) -> dict[str, np.ndarray]:
    if not _is_file(path):
        raise ModelError("weights file missing", file=path, field="(weights)",
                         fix=_FIX_RETRAIN)
    data = _read_bytes(path, MAX_WEIGHTS_BYTES, "the weights file")
    _check_header(path, data)
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        weights = load(data)
    except (SafetensorError, OSError, ValueError, TypeError, AttributeError,
            KeyError) as exc:                 # truncated, garbage: whatever the library says
        raise ModelError(f"cannot read safetensors ({_clip(str(exc).splitlines()[0], 80)})",
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
    latent = _get_int(doc, "latent_dim", 1, MAX_LATENT, jpath)
    out = _get(doc, "output", dict, jpath)
    kind = _get(out, "kind", str, jpath, "output.")
    if kind == "points":
        fields = _get(out, "fields", list, jpath, "output.")
        names = tuple(_get(f, "name", str, jpath, f"output.fields[{i}].")
                      for i, f in enumerate(fields))
        missing = [f for f in POINTS_NEED if f not in names]
        if missing:
            raise ModelError(f"points lack the field(s) {', '.join(missing)} the mapper needs",
                             file=jpath, field="output.fields",
                             fix="a points model makes x, y, r, g, b (and optionally w); "
                                 + _FIX_RETRAIN)
        if len(set(names)) != len(names):
            raise ModelError("a field name appears twice", file=jpath, field="output.fields",
                             fix=_FIX_RETRAIN)
        shape = None
    elif kind == "image":
        shape_list = _get(out, "shape", list, jpath, "output.")
        if len(shape_list) != 3 or not all(isinstance(s, int) and not isinstance(s, bool)
                                           and 0 < s <= MAX_IMAGE_SIDE for s in shape_list):
            raise ModelError(f"want [H, W, C], each 1..{MAX_IMAGE_SIDE}", file=jpath,
                             field="output.shape", fix=_FIX_RETRAIN)
        if shape_list[2] != 3:
            raise ModelError(f"a {shape_list[2]}-channel image; the mapper reads RGB "
                             "(3 channels)", file=jpath, field="output.shape",
                             fix="export an RGB (3-channel) image model")
        names, shape = (), (shape_list[0], shape_list[1], shape_list[2])
    else:
        raise ModelError(f"unknown output kind {_clip(kind, 30)!r}", file=jpath,
                         field="output.kind", fix="use 'points' or 'image'")
    card = {k: doc.get(k) for k in ("recipe", "quality") if k in doc}
    name = doc.get("name")
    name = _clip(name, 64) if isinstance(name, str) and name.strip() else folder.name
    return ModelInfo(name=name, family=family, kind=kind, latent_dim=latent, fields=names,
                     image_shape=shape, path=folder, card=card)


def load_model(name: str | os.PathLike, frame_budget_s: float | None = None) -> Model:
    """Load model NAME (bundled, user folder, or path); raise `ModelError` if it is broken,
    or if one latent takes longer than `frame_budget_s` (then before the probe, which tries
    `PROBE_LATENTS` of them)."""
    folder = find_model(name)
    jpath = folder / "model.json"
    doc = _read_json(jpath)
    info = _info(doc, folder, jpath)
    wname = doc.get("weights", "model.safetensors")
    if not isinstance(wname, str) or not wname or "/" in wname or "\0" in wname \
            or wname in (".", "..") or len(wname) > 255:
        raise ModelError("want a file name in the model folder", file=jpath, field="weights",
                         fix='use "model.safetensors"')
    wpath = folder / wname
    weights = _read_weights(wpath)
    layers = _get(doc, "layers", list, jpath)
    model = Model(info, _build(layers, weights, info, jpath, wpath))
    if frame_budget_s is not None:
        cost = latent_cost_s(model)
        if cost > frame_budget_s:
            raise ModelError(f"takes {cost * 1e3:.1f} ms a frame on this machine, more than "
                             f"the {frame_budget_s * 1e3:.1f} ms a frame may take (half the "
                             "period)", file=jpath, field="layers",
                             fix="pick a smaller model, or lower fps")
    key = _probe_key(jpath, wpath)
    if key is None or key not in _PROBED:
        _probe(model, jpath)
        if key is not None:
            _PROBED.add(key)
    return model


_PROBED: set[tuple] = set()     # model files whose probe passed, as they were then


def _probe_key(*files: Path) -> tuple | None:
    """Which files, as they are now (a model loaded again — a playlist's next item, a
    second show in one process — is not probed again unless a file changed)."""
    try:
        return tuple((str(f.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
                     for f in files for st in (f.stat(),))
    except (OSError, ValueError):
        return None


def latent_cost_s(model: Model, runs: int = 3) -> float:
    """One latent through the model, in seconds of this thread's CPU: the fastest of `runs`
    after a first. CPU time, not wall time: on a busy machine the thread may wait for a core
    for longer than the model takes (a 0.2 ms model read 14 ms by the wall clock while other
    programs ran), and a model must not be refused for the machine's other work."""
    import time

    z = probe_latents(model.info.latent_dim, 1)
    best = math.inf
    with np.errstate(all="ignore"):
        for k in range(runs + 1):
            t0 = time.thread_time()
            try:
                model.generate_scratch(z)
            except (ValueError, TypeError, IndexError, FloatingPointError):
                return 0.0                      # broken: the probe says how
            if k:
                best = min(best, time.thread_time() - t0)
    return best


MAX_MODEL_SHARE = 0.5       # of the frame period, at most, for the model (and its mapper)
PROBE_LATENTS = 256          # latents a model is tried on before it plays
PROBE_BATCH = 32            # ... this many at a time (an image model's work stays small)


def probe_latents(latent_dim: int, n: int = PROBE_LATENTS) -> np.ndarray:
    """The latents a model is tried on: `n` of the walk's N(0, I), a quarter of them at up
    to 3x its radius (a walk's `spread` reaches there), seeded: the same every time."""
    z = np.random.default_rng(0).standard_normal((n, latent_dim)).astype(np.float32)
    z[: n // 4] *= np.linspace(1.0, 3.0, n // 4, dtype=np.float32)[:, None]
    return z


def _probe(model: Model, jpath: Path) -> None:
    """Run the model as the show will, on `PROBE_LATENTS` latents (a model whose weights
    overflow for a fraction of the latents must not load because two happened to pass): the
    right shape, every layer's numbers finite. Work buffers are not kept (`fresh`)."""
    z_all = probe_latents(model.info.latent_dim)
    for start in range(0, len(z_all), PROBE_BATCH):
        z = z_all[start:start + PROBE_BATCH]
        try:
            with np.errstate(all="ignore"):
                x = z.copy()                    # in-place activations: not into z
                for op in model._ops:           # every layer stays finite, not just the end
                    fresh = getattr(op, "fresh", None)
                    x = op(x, keep=False) if isinstance(op, _Conv2d) else \
                        fresh(x) if fresh is not None else op(x)
                    if not np.isfinite(x).all():
                        bad = int((~np.isfinite(x.reshape(len(x), -1))).any(axis=1).sum())
                        raise ModelError(f"overflows (inf or NaN) for ordinary latents "
                                         f"({bad} of {len(x)} tried)", file=jpath,
                                         field="layers", fix=_FIX_RETRAIN)
                out = np.minimum(np.maximum(x, 0.0), 1.0)      # as `generate` clips
        except (ValueError, TypeError, IndexError, MemoryError, FloatingPointError) as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"does not run ({exc.__class__.__name__}: {_clip(str(exc), 80)})",
                             file=jpath, field="layers", fix=_FIX_RETRAIN) from None
        want = (len(z), len(model.info.fields)) if model.info.kind == "points" else \
            (len(z), *(model.info.image_shape or ()))
        if out.shape != want:
            raise ModelError(f"makes {out.shape[1:]}, output wants {want[1:]}", file=jpath,
                             field="layers", fix=_FIX_RETRAIN)
        if not np.isfinite(out).all():
            raise ModelError("makes NaN for an ordinary latent", file=jpath, field="layers",
                             fix=_FIX_RETRAIN)


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
        self.sbuf: dict[tuple[int, int], tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:                # (B, in) -> (B, out)
        bufs = self.buf.get(x.shape[0])
        if bufs is None:          # activations (with their row of ones), and ReLU's zeros
            bufs = self.buf[x.shape[0]] = self._buffers(x.shape[0])
        return self._run(x, bufs)

    def fresh(self, x: np.ndarray, work: dict | None = None) -> np.ndarray:
        """No kept buffers; or those of `work` (the caller's, for a series of calls)."""
        if work is None:
            return self._run(x, self._buffers(x.shape[0]))
        bufs = work.get((id(self), x.shape[0]))
        if bufs is None:
            bufs = work[(id(self), x.shape[0])] = self._buffers(x.shape[0])
        return self._run(x, bufs)

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

    def stacked(self, x: np.ndarray) -> np.ndarray:                 # (n, B, in) -> (n, B, out)
        """n batches in one call: the same BLAS calls as n calls of `__call__` (np.matmul
        over a stack calls gemm once per batch, shapes as one batch's), so the same
        numbers bit for bit (a single (n * B)-row batch would not be: BLAS picks other
        kernels for other sizes). Work buffers kept per (n, B)."""
        n, batch = x.shape[:2]
        bufs = self.sbuf.get((n, batch))
        if bufs is None:
            bufs = self.sbuf[(n, batch)] = (
                [np.ones((n, d + 1, batch), np.float32) for d in self.dims],
                [np.zeros((n, d, batch), np.float32) for d in self.dims[1:]])
        acts, zeros = bufs
        acts[0][:, :-1] = x.transpose(0, 2, 1)                      # (n, in, B)
        for w, src, dst, zero in zip(self.w, acts, acts[1:], zeros, strict=False):
            h = dst[:, :-1]                                         # (n, width, B)
            np.matmul(w, src, out=h)
            np.maximum(h, zero, out=h)
        return np.matmul(acts[-1].transpose(0, 2, 1), self.last)    # (n, B, out), new


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


_ACTIVATIONS: dict[str, Op] = {"relu": _relu, "tanh": np.tanh, "sigmoid": _sigmoid,
                               "silu": _silu}
Width = int | tuple       # a flat width, or (H, W, C) once an image


class _Builder:
    """model.json's layers -> ops, one method a layer type (`_LAYERS`), each checking its
    spec against the width coming in and returning (op, the width going out)."""

    def __init__(self, weights: dict[str, np.ndarray], jpath: Path, wpath: Path) -> None:
        self.weights, self.jpath, self.wpath = weights, jpath, wpath

    def tensor(self, name: str, shape: tuple[int, ...] | None, where: str) -> np.ndarray:
        t = self.weights.get(name)
        if t is None:
            raise ModelError(f"tensor {_clip(name)!r} missing", file=self.wpath, field=where,
                             fix=_FIX_RETRAIN)
        if shape is not None and tuple(t.shape) != shape:
            raise ModelError(f"tensor {_clip(name)!r} has shape {tuple(t.shape)}, want "
                             f"{shape}", file=self.wpath, field=where, fix=_FIX_RETRAIN)
        with np.errstate(over="ignore"):
            t32 = t.astype(np.float32)
        if not np.isfinite(t32).all():
            raise ModelError(f"tensor {_clip(name)!r} does not fit float32", file=self.wpath,
                             field=where, fix=_FIX_RETRAIN)
        return t32

    def too_big(self, size: int, where: str) -> None:
        if size > MAX_ACTIVATION:
            raise ModelError(f"a layer output of {size} values per sample is too big (at most "
                             f"{MAX_ACTIVATION})", file=self.jpath, field=where,
                             fix=_FIX_RETRAIN)

    def linear(self, spec: dict, where: str, width: Width) -> tuple[Op, Width]:
        name = _get(spec, "name", str, self.jpath, where)
        w = self.tensor(f"{name}.weight", None, where + "name")
        if w.ndim != 2 or w.shape[1] != width:
            raise ModelError(f"{_clip(name)}.weight has shape {w.shape}, input width is "
                             f"{width}", file=self.wpath, field=where + "name",
                             fix=_FIX_RETRAIN)
        return _Linear(w, self.tensor(f"{name}.bias", (w.shape[0],), where + "name")), \
            w.shape[0]

    def conv2d(self, spec: dict, where: str, width: Width) -> tuple[Op, Width]:
        name = _get(spec, "name", str, self.jpath, where)
        w = self.tensor(f"{name}.weight", None, where + "name")
        if not isinstance(width, tuple) or w.ndim != 4 or w.shape[1] != width[2] \
                or w.shape[2] != w.shape[3] or w.shape[2] < 1:
            raise ModelError(f"{_clip(name)}.weight has shape {w.shape}, input is {width}",
                             file=self.wpath, field=where + "name", fix=_FIX_RETRAIN)
        k = w.shape[2]
        pad = _get_int(spec, "padding", 0, k - 1, self.jpath, where, default=0)
        size = (width[0] + 2 * pad - k + 1, width[1] + 2 * pad - k + 1, w.shape[0])
        if min(size[:2]) < 1:
            raise ModelError(f"a {k}x{k} kernel does not fit a {width[0]}x{width[1]} input",
                             file=self.jpath, field=where + "padding", fix=_FIX_RETRAIN)
        self.too_big(math.prod(size) * k * k * width[2], where + "name")
        return _Conv2d(w, self.tensor(f"{name}.bias", (w.shape[0],), where + "name"),
                       pad), size

    def reshape(self, spec: dict, where: str, width: Width) -> tuple[Op, Width]:
        shape = _get(spec, "shape", list, self.jpath, where)
        if len(shape) != 3 or not all(isinstance(v, int) and not isinstance(v, bool)
                                      and v > 0 for v in shape):
            raise ModelError("want [C, H, W], three positive whole numbers", file=self.jpath,
                             field=where + "shape", fix=_FIX_RETRAIN)
        c, h, w_ = shape
        if width != c * h * w_:
            raise ModelError(f"cannot reshape width {width} to {[c, h, w_]}", file=self.jpath,
                             field=where + "shape", fix=_FIX_RETRAIN)
        return _reshape((c, h, w_)), (h, w_, c)

    def upsample(self, spec: dict, where: str, width: Width) -> tuple[Op, Width]:
        s = _get_int(spec, "scale", 1, 64, self.jpath, where)
        if not isinstance(width, tuple):
            raise ModelError("upsample needs an image input", file=self.jpath, field=where,
                             fix=_FIX_RETRAIN)
        width = (width[0] * s, width[1] * s, width[2])
        self.too_big(math.prod(width), where + "scale")
        return _upsample(s), width

    def leaky_relu(self, spec: dict, where: str, width: Width) -> tuple[Op, Width]:
        slope = spec.get("slope", 0.01)
        if isinstance(slope, bool) or not isinstance(slope, int | float) or \
                not math.isfinite(slope) or abs(slope) > 1e3:
            raise ModelError(f"slope {_clip(str(slope), 20)} is not a number", file=self.jpath,
                             field=where + "slope", fix=_FIX_RETRAIN)
        return _leaky(float(slope)), width


_LAYERS = {"linear": _Builder.linear, "conv2d": _Builder.conv2d, "reshape": _Builder.reshape,
           "upsample": _Builder.upsample, "leaky_relu": _Builder.leaky_relu}


def _build(layers: list, weights: dict[str, np.ndarray], info: ModelInfo, jpath: Path,
           wpath: Path) -> list[Op]:
    build = _Builder(weights, jpath, wpath)
    ops: list[Op] = []
    width: Width = info.latent_dim
    for i, spec in enumerate(layers):
        where = f"layers[{i}]."
        kind = _get(spec, "type", str, jpath, where)
        if kind in _ACTIVATIONS:
            ops.append(_ACTIVATIONS[kind])
        elif kind in _LAYERS:
            op, width = _LAYERS[kind](build, spec, where, width)
            ops.append(op)
        else:
            raise ModelError(f"unknown layer type {_clip(kind, 30)!r}", file=jpath,
                             field=where + "type", fix="update latentdmx or re-export the model")
        if isinstance(width, int):
            build.too_big(width, where)
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

    @property
    def stacks(self) -> bool:
        """Whether `generate_stacked` can run (a fused MLP: the NAT family)."""
        return len(self._ops) == 1 and isinstance(self._ops[0], _MLP)

    def generate_stacked(self, z: np.ndarray) -> np.ndarray:
        """z float32 (n, B, latent_dim) -> (n, B, n_fields): n calls of `generate` in one,
        the same numbers bit for bit (the show's next frames at once; only if `stacks`)."""
        op = self._ops[0]
        assert isinstance(op, _MLP)
        x = op.stacked(z)
        np.maximum(x, 0.0, out=x)
        return np.minimum(x, 1.0, out=x)

    def generate_scratch(self, z: np.ndarray, work: dict | None = None) -> np.ndarray:
        """`generate` with work buffers made for this call and dropped after it (the same
        numbers): for one-off batches such as the guarded walk's look ahead, so no buffer
        per batch size is kept, and safe beside `generate` on another thread. With `work`
        (a dict the caller keeps for a series of calls on one thread, then drops), the
        buffers are made once for the series (the walk's look at a segment: a few MB
        made and paged in once, not once a call)."""
        return self._generate(z, True, work)

    def _generate(self, z: np.ndarray, scratch: bool, work: dict | None = None) -> np.ndarray:
        if z.ndim != 2 or z.shape[1] != self.info.latent_dim:
            raise ValueError(f"z has shape {z.shape}, want (B, {self.info.latent_dim})")
        x = z if z.dtype == np.float32 and not self._copy_z else z.astype(np.float32)
        for op in self._ops:
            fresh = getattr(op, "fresh", None) if scratch else None
            if fresh is None:
                x = op(x)
            elif work is not None and isinstance(op, _MLP):
                x = op.fresh(x, work)
            else:
                x = fresh(x)
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
