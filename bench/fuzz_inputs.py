"""The input sweep: mutated rig configs and broken models, each tried as `latentdmx check` /
`run --model` would, and judged.

    python bench/fuzz_inputs.py [--seed 0] [--timeout 20] [--save-failures]

For every case the verdict is one of:

* **refused cleanly** — one `LatentDMXError`, one line naming the file, the field and a fix
  (what the CLI prints as ``error: FILE: FIELD: what — fix``, exit 2), and the field is the
  one the case broke;
* **ok** — accepted, and it should be: the show's first frames come out (finite, in range);
* **traceback** — any other exception, at load or in the first frames;
* **hang** — no answer within `--timeout` seconds (each case runs in its own forked
  process, killed when late);
* **accepted but wrong** — accepted although the case is a mistake (each mutation says
  what it expects), or refused although it is fine.

Printed: tried, refused cleanly, ok, tracebacks, hangs, accepted-but-wrong, and each case
that was not judged right. ``--save-failures`` copies those into ``tests/corpus/`` so the
corpus test (tests/test_corpus.py) keeps them fixed. The corpus itself is tried first.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import tomllib
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

CORPUS = ROOT / "tests" / "corpus"
DEFAULT_TOML = ROOT / "pi_app" / "data" / "default.toml"
BUNDLED = ROOT / "models"


# ------------------------------------------------------------------------- tiny models
def tiny_model(folder: Path, *, kind: str = "points", fields: str = "xyrgbw",
               channels: int = 3, latent: int = 4, size: tuple[int, int] = (4, 4),
               name: str = "tiny") -> Path:
    """A small, well-formed model (one linear layer and a sigmoid), e.g. a 1-channel image
    model or a points model without an `x` field: broken for the mapper, not for the file."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    if kind == "points":
        out_n = len(fields)
        output: dict = {"kind": "points", "fields": [{"name": f, "min": 0, "max": 1}
                                                     for f in fields]}
        layers: list = [{"type": "linear", "name": "l0"}, {"type": "sigmoid"}]
    else:
        h, w = size
        out_n = channels * h * w
        output = {"kind": "image", "shape": [h, w, channels], "min": 0, "max": 1}
        layers = [{"type": "linear", "name": "l0"}, {"type": "reshape",
                                                      "shape": [channels, h, w]},
                  {"type": "sigmoid"}]
    save_file({"l0.weight": rng.standard_normal((out_n, latent)).astype(np.float32),
               "l0.bias": np.zeros(out_n, np.float32)}, str(folder / "model.safetensors"))
    doc = {"schema": 1, "name": name, "family": "nat" if kind == "points" else "iae",
           "latent_dim": latent, "weights": "model.safetensors", "output": output,
           "layers": layers}
    (folder / "model.json").write_text(json.dumps(doc, indent=1))
    return folder


def tiny_nat(folder: Path) -> Path:
    """A small model shaped like the bundled NAT ones: Linear net.0 / ReLU / net.2 / ReLU /
    net.4 -> x, y, r, g, b, w (a few hundred bytes, so broken copies fit in the corpus)."""
    return _tiny_net(folder, "nat", [("linear", 4, 8), ("relu",), ("linear", 8, 8),
                                     ("relu",), ("linear", 8, 6)], None)


def tiny_iae(folder: Path) -> Path:
    """A small model shaped like the bundled inverted autoencoder: Linear, ReLU, reshape
    [8, 2, 2], upsample 2, conv net.4, ReLU, upsample 2, conv net.7, ReLU, conv net.9,
    sigmoid -> an 8 x 8 RGB picture."""
    return _tiny_net(folder, "iae", [("linear", 4, 32), ("relu",), ("reshape", [8, 2, 2]),
                                     ("upsample", 2), ("conv", 8, 8), ("relu",),
                                     ("upsample", 2), ("conv", 8, 4), ("relu",),
                                     ("conv", 4, 3), ("sigmoid",)], [8, 8, 3])


def _tiny_net(folder: Path, family: str, spec: list, image: list | None) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    weights: dict[str, np.ndarray] = {}
    layers: list[dict] = []
    for i, layer in enumerate(spec):
        kind = layer[0]
        if kind == "linear":
            _, n_in, n_out = layer
            weights[f"net.{i}.weight"] = (rng.standard_normal((n_out, n_in)) * 0.5).astype(
                np.float32)
            weights[f"net.{i}.bias"] = np.zeros(n_out, np.float32)
            layers.append({"type": "linear", "name": f"net.{i}", "in": n_in, "out": n_out})
        elif kind == "conv":
            _, n_in, n_out = layer
            weights[f"net.{i}.weight"] = (rng.standard_normal((n_out, n_in, 3, 3)) * 0.2
                                          ).astype(np.float32)
            weights[f"net.{i}.bias"] = np.zeros(n_out, np.float32)
            layers.append({"type": "conv2d", "name": f"net.{i}", "in": n_in, "out": n_out,
                           "kernel": 3, "padding": 1})
        elif kind == "reshape":
            layers.append({"type": "reshape", "shape": layer[1]})
        elif kind == "upsample":
            layers.append({"type": "upsample", "scale": layer[1]})
        else:
            layers.append({"type": kind})
    save_file(weights, str(folder / "model.safetensors"))
    output = ({"kind": "image", "shape": image, "min": 0, "max": 1} if image else
              {"kind": "points", "fields": [{"name": f, "min": 0, "max": 1} for f in "xyrgbw"]})
    doc = {"schema": 1, "name": f"tiny-{family}", "family": family, "latent_dim": 4,
           "weights": "model.safetensors", "output": output, "layers": layers}
    (folder / "model.json").write_text(json.dumps(doc, indent=1))
    return folder


# ------------------------------------------------------------------------- cases
@dataclass
class Case:
    name: str
    kind: str                               # "config" | "model"
    build: Callable[[Path], Path]           # writes the input under a folder; its path
    expect: str                             # "refused" | "ok"
    field: str | None = None                # refused: the field the error must name (prefix)


VERDICTS = ("refused cleanly", "ok", "traceback", "hang", "accepted but wrong", "misjudged")


# -- a TOML writer (tomllib only reads) --------------------------------------------------------
def dump_toml(doc: dict) -> str:
    """`doc` as TOML (tomli-w: nan and inf written as TOML has them)."""
    import tomli_w

    return tomli_w.dumps(doc)


def base_config() -> dict:
    return tomllib.loads(DEFAULT_TOML.read_text())


def _write(text: str | bytes, name: str = "rig.toml") -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return path
    return build


def _set(doc: dict, path: tuple, value) -> dict:
    d = json.loads(json.dumps(doc))          # a deep copy (the base has no special values)
    node = d
    for p in path[:-1]:
        node = node[p]
    if value is _DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return d


_DELETE = object()


# -- what each config field accepts (the oracle) -----------------------------------------
def _num(lo: float, hi: float, *, whole: bool = False, lo_open: bool = False):
    def ok(v) -> bool:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
        if whole and not isinstance(v, int):
            return False
        if isinstance(v, float) and not math.isfinite(v):
            return False
        return (lo < v if lo_open else lo <= v) and v <= hi
    return ok


def _nonempty_str(v) -> bool:
    return isinstance(v, str) and 0 < len(v) <= 4096 and "\0" not in v


def _str(v) -> bool:
    return isinstance(v, str) and len(v) <= 4096 and "\0" not in v


def _bool(v) -> bool:
    return isinstance(v, bool)


def _pair01(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_num(0, 1)(x) for x in v)


def _par1_address(v) -> bool:      # par-1 (4 channels) fits beside the others
    return _num(38, 41, whole=True)(v) or _num(57, 509, whole=True)(v)


def _limits(full: float):
    def ok(v) -> bool:
        if not (isinstance(v, list) and len(v) == 2 and all(_num(-1e308, 1e308)(x) for x in v)):
            return False
        lo, hi = v
        return (lo, hi) == (0, 0) or 0 <= lo < hi <= full
    return ok


def _universe_map(v) -> bool:
    if not isinstance(v, dict):
        return False
    seen = set()
    for k, x in v.items():
        if not (k.isascii() and k.isdecimal() and int(k) <= 65535):
            return False
        if not _num(0, 2**31 - 1, whole=True)(x) or x in seen:
            return False
        seen.add(x)
    return True


FIELDS: dict[tuple, Callable] = {
    ("schema",): lambda v: v == 1 and not isinstance(v, bool) and isinstance(v, int),
    ("fps",): _num(1, 44),
    ("seed",): _num(0, 2**63 - 1, whole=True),
    ("model",): lambda v: v in ("nat-aurora", "iae-glyphs"),
    ("walk", "seconds_per_waypoint"): _num(0.1, 3600),
    ("walk", "tempo"): _num(0.01, 100),
    ("walk", "loop_waypoints"): lambda v: _num(0, 2**63 - 1, whole=True)(v) and v != 1,
    ("walk", "spread"): _num(0, 10),
    ("output", "kind"): lambda v: v in ("sim", "ola", "uart"),
    ("output", "ola", "host"): _nonempty_str,
    ("output", "ola", "port"): _num(1, 65535, whole=True),
    ("output", "ola", "universe_map"): _universe_map,
    ("output", "ola", "retry_max_s"): _num(0.1, 600),
    ("output", "uart", "device"): _nonempty_str,
    ("output", "uart", "break_us"): _num(92, 1_000_000, whole=True),
    ("output", "uart", "mab_us"): _num(12, 1_000_000, whole=True),
    ("output", "uart", "driver_enable_gpio"): _num(-1, 27, whole=True),
    ("output", "uart", "full_universe"): _bool,
    ("safety", "master"): _num(0, 1),
    ("safety", "fade_in_s"): _num(0, 3600),
    ("safety", "fade_out_s"): _num(0, 30),
    ("safety", "max_flashes_per_s"): _num(0, 3, lo_open=True),
    ("safety", "flash_delta"): _num(0.05, 0.1),
    ("safety", "pan_slew_deg_per_s"): _num(0, 180),     # the Lumeri's 540 deg in 3 s
    ("safety", "tilt_slew_deg_per_s"): _num(0, 90),
    ("safety", "colour_slew_per_s"): _num(0, 3600),
    ("control", "enabled"): _bool,
    ("control", "socket"): lambda v: _str(v) and len(v.encode()) <= 107,
    ("preview", "web"): _bool,
    ("preview", "host"): lambda v: _nonempty_str(v) and v in ("127.0.0.1", "localhost", "::1"),
    ("preview", "port"): _num(1, 65535, whole=True),
    ("preview", "token"): _str,
    ("fixtures", 3, "name"): lambda v: _nonempty_str(v) and v not in (
        "head-left", "head-right", "head-centre", "par-2", "par-3", "par-4"),
    ("fixtures", 3, "profile"): lambda v: v == "generic-rgbw-par",
    ("fixtures", 3, "mode"): lambda v: v == "4ch",
    ("fixtures", 3, "universe"): _num(0, 65535, whole=True),
    ("fixtures", 3, "address"): _par1_address,
    ("fixtures", 3, "position"): _pair01,
    ("fixtures", 3, "park"): _pair01,
    ("fixtures", 0, "pan_limits_deg"): _limits(540),
    ("fixtures", 0, "tilt_limits_deg"): _limits(270),
    ("fixtures", 0, "invert_pan"): _bool,
}

PALETTE: list = [
    -5, 0, 1, 2, 0.05, 0.5, 1e-300, 1e300, 70000, 2**40, 2**63 - 1, -(2**63),
    math.nan, math.inf, -math.inf, "1", "", "x" * 5000, "nat-aurora", "a\u0000b", "ħ",
    True, False, [], [0.5, 0.5], [0.5, 0.5, 0.5], [2, 2], [0, 0], [10, 20], [math.nan, 0.5],
    {}, {"1": 3}, {"1": 2**40}, {"x": 1}, {"1": 2, "2": 2}, {"99999": 1}, {"1": -1},
    "../models/x", 44, 45, 0.99, 92, 91, 12, 65535, 65536, 510, 38, -1, 27, 28, 0.1, 600,
    600.5, 3, 3.01, 100, 0.009,
]


def field_name(path: tuple) -> str:
    if path[0] == "fixtures":
        return f"fixtures[{path[1] + 1}].{path[2]}"
    return ".".join(str(p) for p in path)


def config_field_cases(rng: random.Random, n: int) -> list[Case]:
    base = base_config()
    cases = []
    for path, ok in FIELDS.items():
        for value in PALETTE:
            if value == _get(base, path):
                continue
            doc = _set(base, path, value)
            expect = "ok" if ok(value) else "refused"
            if path == ("preview", "host") and expect == "refused" and _nonempty_str(value):
                continue             # fine unless the page is on (then it needs a token)
            shown = repr(value)
            shown = shown if len(shown) < 30 else shown[:27] + "..."
            cases.append(Case(f"config: {field_name(path)} = {shown}", "config",
                              _write(dump_toml(doc)), expect, _expected_field(path)))
    rng.shuffle(cases)
    generic = _generic_cases(base, rng)
    n_generic = min(len(generic), n * 3 // 10)
    return cases[:n - n_generic] + generic[:n_generic]


ROUGH: list = [math.nan, math.inf, -1e300, 2**63 - 1, -(2**63), "x" * 5000, "a\u0000b", [],
               {}, True, -5, 0, [[1, 2], [3]], {"a": {"b": 1}}]


def _leaves(doc, path: tuple = ()) -> list[tuple]:
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(doc, list) and doc and all(isinstance(x, dict) for x in doc):
        return [p for i, v in enumerate(doc) for p in _leaves(v, (*path, i))]
    return [path]


def _generic_cases(base: dict, rng: random.Random) -> list[Case]:
    """Every other field of the bundled config (sections other helpers added too) with rough
    values: whether each is right is not judged here, only that it is one clean line or a
    working show — never a traceback or a hang."""
    cases = []
    for path in _leaves(base):
        if path in FIELDS or not path:
            continue
        for value in ROUGH:
            shown = repr(value)
            shown = shown if len(shown) < 30 else shown[:27] + "..."
            cases.append(Case(f"config: {'.'.join(map(str, path))} = {shown}", "config",
                              _write(dump_toml(_set(base, path, value))), "either"))
    rng.shuffle(cases)
    return cases


def _get(doc, path):
    for p in path:
        try:
            doc = doc[p]
        except (KeyError, IndexError):
            return _DELETE
    return doc


def _expected_field(path: tuple) -> str:
    if path[0] == "fixtures":
        return f"fixtures[{path[1] + 1}]"
    return ".".join(str(p) for p in path)


def _fifo(folder: Path) -> Path:
    path = folder / "rig.toml"
    os.mkfifo(path)
    return path


def _dir(folder: Path) -> Path:
    path = folder / "rig.toml"
    path.mkdir()
    return path


def _loop(folder: Path) -> Path:
    path = folder / "rig.toml"
    path.symlink_to(path)
    return path


def _model_beside(folder: Path) -> Path:
    tiny_model(folder / "models" / "mine")
    path = folder / "rig.toml"
    path.write_text(DEFAULT_TOML.read_text().replace('model = "nat-aurora"',
                                                     'model = "models/mine"'))
    return path


def config_structure_cases(rng: random.Random) -> list[Case]:
    text = DEFAULT_TOML.read_text()
    fixture = ('\n[[fixtures]]\nname = "par-9"\nprofile = "generic-rgbw-par"\nmode = "4ch"\n'
               'address = 41\n')
    cases = [
        Case("config: 5000-digit integer", "config",
             _write(text.replace("seed = 0 ", "seed = " + "9" * 5000 + " ")), "refused",
             "(syntax)"),
        Case("config: 3000-deep array", "config",
             _write(text.replace("tempo = 1.0 ", "tempo = " + "[" * 3000 + "]" * 3000 + " ")),
             "refused", "(syntax)"),
        Case("config: 3000-deep inline table", "config",
             _write(text.replace("tempo = 1.0 ", "tempo = " + "{a = " * 3000 + "1" +
                                 "}" * 3000 + " ")), "refused", "(syntax)"),
        Case("config: a FIFO", "config", _fifo, "refused", "(file)"),
        Case("config: a folder", "config", _dir, "refused", "(file)"),
        Case("config: a symlink loop", "config", _loop, "refused", "(file)"),
        Case("config: /dev/zero", "config", lambda _: Path("/dev/zero"), "refused", "(file)"),
        Case("config: /dev/null", "config", lambda _: Path("/dev/null"), "refused", "(file)"),
        Case("config: empty", "config", _write(""), "refused", "fixtures"),
        Case("config: 2 MB", "config", _write(text + "#" * (2 << 20)), "refused", "(file)"),
        Case("config: not UTF-8", "config", _write(text.encode() + b"\n# \xff\xfe\n"),
             "refused", "(file)"),
        Case("config: a UTF-8 BOM", "config", _write(b"\xef\xbb\xbf" + text.encode()), "ok"),
        Case("config: a BOM and CRLF", "config",
             _write(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()), "ok"),
        Case("config: CRLF line ends", "config", _write(text.replace("\n", "\r\n")), "ok"),
        Case("config: binary garbage", "config", _write(bytes(range(256)) * 4), "refused",
             "(file)"),
        Case("config: a duplicate key", "config", _write("fps = 30\n" + text), "refused",
             "(syntax)"),
        Case("config: fixtures = 5", "config", _write("fixtures = 5\n"), "refused",
             "fixtures"),
        Case("config: [fixtures] as a table", "config",
             _write("[fixtures]\nname = 'a'\n"), "refused", "fixtures"),
        Case("config: an unknown section", "config", _write("[lights]\nx = 1\n" + text),
             "refused", "lights"),
        Case("config: a fixture is a string", "config",
             _write("fixtures = ['par']\n" + text.split("[[fixtures]]")[0]), "refused",
             "fixtures[1]"),
        Case("config: 300 pars overlapping", "config",
             _write(text + "".join(fixture.replace("par-9", f"x{i}") for i in range(300))),
             "refused", "fixtures[8] ('x0').address"),
        Case("config: model path beside the config", "config", _model_beside, "ok"),
        Case("config: model = '../../etc'", "config",
             _write(text.replace('model = "nat-aurora"', 'model = "../../etc"')), "refused",
             "model"),
        Case("config: model with a NUL", "config",
             _write(text.replace('model = "nat-aurora"', 'model = "a\\u0000b"')), "refused",
             "model"),
        Case("config: web on the LAN with a weak token", "config",
             _write(text.replace("web = false", "web = true").replace(
                 'host = "127.0.0.1"         # localhost', 'host = "0.0.0.0" # lan').replace(
                 'token = ""', 'token = "x"')),
             "refused", "preview.token"),
    ]
    for _ in range(12):                          # cut short anywhere
        cut = rng.randrange(1, len(text))
        cases.append(Case(f"config: cut at byte {cut}", "config", _write(text[:cut]),
                          "either"))
    for i in range(14):                          # a few bytes flipped
        data = bytearray(text.encode())
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cases.append(Case(f"config: bytes flipped #{i}", "config", _write(bytes(data)),
                          "either"))
    return cases


# -- models ----------------------------------------------------------------------------
def _copy_bundled(name: str, folder: Path) -> Path:
    """A fresh copy of a base model to break: the tiny stand-ins of the bundled shapes."""
    dst = folder / "model"
    return tiny_nat(dst) if name == "nat" else tiny_iae(dst)


def _json_edit(name: str, edit: Callable[[dict], object]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        dst = _copy_bundled(name, folder)
        doc = json.loads((dst / "model.json").read_text())
        edit(doc)
        (dst / "model.json").write_text(json.dumps(doc))
        return dst
    return build


def _json_text(name: str, text: str | bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        dst = _copy_bundled(name, folder)
        (dst / "model.json").write_bytes(text.encode() if isinstance(text, str) else text)
        return dst
    return build


def _weights_edit(name: str, edit: Callable[[dict], object]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        from safetensors.numpy import load_file, save_file

        dst = _copy_bundled(name, folder)
        w = load_file(str(dst / "model.safetensors"))
        edit(w)
        save_file(w, str(dst / "model.safetensors"))
        return dst
    return build


def _weights_bytes(name: str, edit: Callable[[bytes], bytes]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        dst = _copy_bundled(name, folder)
        p = dst / "model.safetensors"
        p.write_bytes(edit(p.read_bytes()))
        return dst
    return build


def _redtype(dtype: str, nbytes_per: float) -> Callable[[bytes], bytes]:
    """Rewrite a safetensors header so every tensor claims `dtype` (data resized to fit)."""
    def edit(data: bytes) -> bytes:
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + n])
        out_header, blobs, offset = {}, [], 0
        for key, entry in header.items():
            if key == "__metadata__":
                out_header[key] = entry
                continue
            count = math.prod(entry["shape"])
            size = math.ceil(count * nbytes_per)
            out_header[key] = {"dtype": dtype, "shape": entry["shape"],
                               "data_offsets": [offset, offset + size]}
            blobs.append(b"\x01" * size)
            offset += size
        h = json.dumps(out_header).encode()
        h += b" " * (-len(h) % 8)
        return len(h).to_bytes(8, "little") + h + b"".join(blobs)
    return edit


def _tiny(**kw) -> Callable[[Path], Path]:
    return lambda folder: tiny_model(folder / "model", **kw)


def _model_fifo(folder: Path) -> Path:
    dst = _copy_bundled("nat", folder)
    (dst / "model.json").unlink()
    os.mkfifo(dst / "model.json")
    return dst


def _weights_fifo(folder: Path) -> Path:
    dst = _copy_bundled("nat", folder)
    (dst / "model.safetensors").unlink()
    os.mkfifo(dst / "model.safetensors")
    return dst


def _layer(i: int, **change) -> Callable[[dict], object]:
    return lambda d: d["layers"][i].update(change)


def _pop(*path) -> Callable[[dict], object]:
    def edit(d: dict) -> None:
        node = d
        for p in path[:-1]:
            node = node[p]
        node.pop(path[-1])
    return edit


def _set_in(value, *path) -> Callable[[dict], object]:
    def edit(d: dict) -> None:
        node = d
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return edit


def model_cases() -> list[Case]:
    N, IM = "nat", "iae"
    R = "refused"
    c: list[tuple[str, Callable[[Path], Path], str, str | None]] = []
    # model.json, top level
    for key in ("schema", "family", "latent_dim", "output", "layers"):
        c.append((f"no {key}", _json_edit(N, _pop(key)), R, key))
    for key, values in {"schema": [2, 0, "1", 1.0, True, None],
                        "family": ["gan", 5, "", None],
                        "latent_dim": [0, -1, "16", 16.5, True, 10**6, 8, 2**70],
                        "output": [5, [], "points"], "layers": [5, {}, "linear"],
                        "weights": [5, "", "../nat-aurora/model.safetensors", "nope.st",
                                    "x" * 5000]}.items():
        for v in values:
            field = "(weights)" if key == "weights" and v == "nope.st" else key
            if key == "latent_dim" and v == 8:
                field = "layers[0]"
            c.append((f"{key} = {str(v)[:20]!r}", _json_edit(N, _set_in(v, key)), R, field))
    c += [("name 5000 characters", _json_edit(N, _set_in("n" * 5000, "name")), "ok", None),
          ("unknown extra keys", _json_edit(N, _set_in({"a": [1]}, "extra")), "ok", None),
          ("100000-deep JSON", _json_text(N, "[" * 100000 + "]" * 100000), R, None),
          ("100000-deep JSON in a field", _json_text(N, '{"schema": 1, "x": ' + "[" * 100000
                                                     + "]" * 100000 + "}"), R, None),
          ("5000-digit number", _json_text(N, '{"schema": ' + "9" * 5000 + "}"), R, None),
          ("model.json empty", _json_text(N, ""), R, None),
          ("model.json not UTF-8", _json_text(N, b"\xff\xfe{}"), R, None),
          ("model.json a list", _json_text(N, "[1, 2]"), R, None),
          ("model.json 3 MB", _json_text(N, " " * (3 << 20) + "{}"), R, None),
          ("model.json NaN", _json_edit(N, _set_in(math.nan, "latent_dim")), R, "latent_dim"),
          ("model.json a FIFO", _model_fifo, R, None),
          ("weights a FIFO", _weights_fifo, R, None)]
    # points output
    for missing in "xyrgb":
        c.append((f"points without {missing}", _tiny(fields="xyrgbw".replace(missing, "")), R,
                  "output.fields"))
    c += [("points without w", _tiny(fields="xyrgb"), "ok", None),
          ("points in another order", _tiny(fields="wbgryx"), "ok", None),
          ("points with extra fields", _tiny(fields="xyrgbwuv"), "ok", None),
          ("points with x twice", _tiny(fields="xyrgbx"), R, "output.fields"),
          ("fields = 5", _json_edit(N, _set_in(5, "output", "fields")), R, "output.fields"),
          ("fields of numbers", _json_edit(N, _set_in([1, 2, 3], "output", "fields")), R,
           "output.fields[0]"),
          ("field name 5", _json_edit(N, lambda d: d["output"]["fields"][0].update(name=5)), R,
           "output.fields[0]"),
          ("output kind sound", _json_edit(N, _set_in("sound", "output", "kind")), R,
           "output.kind"),
          ("output kind 5", _json_edit(N, _set_in(5, "output", "kind")), R, "output.kind")]
    # image output
    for ch in (1, 2, 4):
        c.append((f"{ch}-channel image", _tiny(kind="image", channels=ch), R, "output.shape"))
    c += [("3-channel image", _tiny(kind="image", channels=3), "ok", None),
          ("1x1 image", _tiny(kind="image", size=(1, 1)), "ok", None)]
    for shape in ([16, 16], [16, 16, 3, 1], [0, 16, 3], [-16, 16, 3], [16.0, 16, 3],
                  ["16", 16, 3], [True, 16, 3], [100000, 100000, 3], [16, 16, 0]):
        c.append((f"image shape {shape}", _json_edit(IM, _set_in(shape, "output", "shape")), R,
                  "output.shape" if len(shape) != 3 or shape[2] != 3 or not all(
                      isinstance(s, int) and not isinstance(s, bool) and 0 < s <= 1024
                      for s in shape) else "layers"))
    c.append(("image shape [16, 16, 3] (the layers make 8 x 8)",
              _json_edit(IM, _set_in([16, 16, 3], "output", "shape")), R, "layers"))
    # layers
    c += [("layer type missing", _json_edit(N, _layer(0, type=None)), R, "layers[0].type"),
          ("layer type dropout", _json_edit(N, _layer(1, type="dropout")), R, "layers[1].type"),
          ("layer a number", _json_edit(N, _set_in(5, "layers", 0)), R, "layers[0]"),
          ("linear name missing", _json_edit(N, _layer(0, name=None)), R, "layers[0].name"),
          ("linear name unknown", _json_edit(N, _layer(0, name="nope")), R, "layers[0].name"),
          ("linear name 5", _json_edit(N, _layer(0, name=5)), R, "layers[0].name"),
          ("layers empty", _json_edit(N, _set_in([], "layers")), R, "layers"),
          ("layers reversed", _json_edit(N, lambda d: d["layers"].reverse()), R, "layers"),
          ("leaky slope 'abc'", _json_edit(N, _layer(1, type="leaky_relu", slope="abc")), R,
           "layers[1].slope"),
          ("leaky slope null", _json_edit(N, _layer(1, type="leaky_relu", slope=None)), R,
           "layers[1].slope"),
          ("leaky slope NaN", _json_edit(N, _layer(1, type="leaky_relu", slope=math.nan)), R,
           "layers[1].slope"),
          ("leaky slope 0.2", _json_edit(N, _layer(1, type="leaky_relu", slope=0.2)), "ok",
           None),
          ("leaky slope [1]", _json_edit(N, _layer(1, type="leaky_relu", slope=[1])), R,
           "layers[1].slope")]
    for pad in (-1, 5, 100, "a", 1.5, None, True):
        c.append((f"conv padding {pad!r}", _json_edit(IM, _layer(4, padding=pad)), R,
                  "layers[4].padding"))
    c.append(("conv padding 0", _json_edit(IM, _layer(4, padding=0)), R, "layers"))
    for shape in ([8, 2], [8, 2, 2, 1], ["8", 2, 2], [8.0, 2, 2], [0, 2, 2], [-8, -2, 2],
                  [2, 4, 4], [16, 2, 2], [True, 2, 2], 5):
        c.append((f"reshape {shape}", _json_edit(IM, _layer(2, shape=shape)), R,
                  "layers[4]" if shape == [2, 4, 4] else "layers[2].shape"))
    for scale in (0, -1, 1000, "2", 2.5, None, True, 3):
        c.append((f"upsample scale {scale!r}", _json_edit(IM, _layer(3, scale=scale)), R,
                  "layers[3].scale" if scale != 3 else "layers"))
    c.append(("upsample first", _json_edit(IM, lambda d: d["layers"].insert(
        0, {"type": "upsample", "scale": 2})), R, "layers[0]"))
    # weights
    for dtype, per in (("BF16", 2), ("F8_E4M3", 1), ("F8_E5M2", 1), ("I64", 8), ("BOOL", 1),
                       ("C64", 8), ("U8", 1), ("I32", 4)):
        c.append((f"weights {dtype}", _weights_bytes(N, _redtype(dtype, per)), R, "net."))
    c.append(("the bundled nat-aurora", lambda f: BUNDLED / "nat-aurora", "ok", None))
    c.append(("the bundled iae-glyphs", lambda f: BUNDLED / "iae-glyphs", "ok", None))
    c += [("weights F16", _weights_bytes(N, _redtype("F16", 2)), "ok", None),
          ("weights F64", _weights_edit(N, lambda w: w.update(
              {k: v.astype(np.float64) for k, v in w.items()})), "ok", None),
          ("weights 1e300 as F64", _weights_edit(N, lambda w: w.update(
              {k: np.full(v.shape, 1e300) for k, v in w.items()})), R, "layers["),
          ("weights NaN", _weights_edit(N, lambda w: next(iter(w.values())).fill(np.nan)), R,
           "net."),
          ("weights huge but finite", _weights_edit(N, lambda w: w.update(
              {k: np.full(v.shape, 3e38, np.float32) for k, v in w.items()})), R, "layers"),
          ("a tensor missing", _weights_edit(N, lambda w: w.pop(sorted(w)[0])), R, "layers["),
          ("a weight flattened", _weights_edit(N, lambda w: w.update(
              {"net.0.weight": w["net.0.weight"].reshape(-1)})), R, "layers["),
          ("a weight transposed", _weights_edit(N, lambda w: w.update(
              {"net.0.weight": w["net.0.weight"].T.copy()})), R, "layers["),
          ("weights truncated", _weights_bytes(N, lambda b: b[:len(b) // 2]), R, "(weights)"),
          ("weights empty", _weights_bytes(N, lambda b: b""), R, "(weights)"),
          ("weights 4 bytes", _weights_bytes(N, lambda b: b"\0\0\0\0"), R, "(weights)"),
          ("weights header length huge", _weights_bytes(N, lambda b: b"\xff" * 8 + b[8:]), R,
           "(weights)"),
          ("weights header not JSON", _weights_bytes(N, lambda b: b[:8] + b"\xff" * 8 + b[16:]),
           R, "(weights)"),
          ("weights header a list", _weights_bytes(
              N, lambda b: (2).to_bytes(8, "little") + b"[]"), R, "(weights)"),
          ("weights random bytes", _weights_bytes(N, lambda b: os.urandom(len(b))), R,
           "(weights)"),
          ("weights of another model", lambda f: _swap_weights(f), R, "layers[")]
    return [Case(f"model: {name}", "model", build, expect, field)
            for name, build, expect, field in c]


def _swap_weights(folder: Path) -> Path:
    dst = _copy_bundled("nat", folder)
    other = tiny_iae(folder / "other")
    shutil.copy(other / "model.safetensors", dst / "model.safetensors")
    return dst


# ------------------------------------------------------------------------- trying a case
def try_input(kind: str, path: Path) -> None:
    """What `latentdmx check CONFIG` / `run --model DIR` do with the input, then a second of
    show offline (fade-out and blackout included): raises what they would raise."""
    from pi_app.commands.run import load_show_model
    from pi_app.config import load_config
    from pi_app.patch import Patch
    from pi_app.runtime import load_model
    from pi_app.views.render import simulate

    if kind == "config":
        cfg = load_config(path)
        Patch(cfg)
        model = load_show_model(cfg, from_flag=False)
    else:
        cfg = load_config(None)
        model = load_model(path)
    frames, times = simulate(cfg, model, duration_s=1.0)
    if frames.dtype != np.uint8 or not len(frames) or not np.isfinite(times).all():
        raise AssertionError("the show's frames are wrong")


def _child(case: Case, path: Path, wfd: int) -> None:
    from pi_app.errors import LatentDMXError

    try:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    except (ValueError, OSError):
        pass
    result: dict
    try:
        try_input(case.kind, path)
        result = {"outcome": "ok"}
    except LatentDMXError as exc:
        result = {"outcome": "refused", "line": f"error: {exc}", "file": exc.file,
                  "field": exc.field, "fix": exc.fix}
    except BaseException as exc:                    # noqa: BLE001 - that is the finding
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
        result = {"outcome": "traceback", "line": f"{type(exc).__name__}: "
                  f"{str(exc)[:120]} ({where})"}
    os.write(wfd, json.dumps(result).encode())
    os.close(wfd)


def judge(case: Case, folder: Path, timeout_s: float) -> tuple[str, str]:
    """Run one case in a forked process; its verdict and a one-line detail."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        path = case.build(folder)
    except Exception as exc:                        # noqa: BLE001 - a bug in the case itself
        return "traceback", f"(building the case failed: {exc!r})"
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # the child
        os.close(rfd)
        code = 0
        try:
            _child(case, path, wfd)
        except BaseException:                       # noqa: BLE001
            code = 1
        os._exit(code)
    os.close(wfd)
    data, deadline = b"", time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(rfd)
            return "hang", f"no answer within {timeout_s:g} s"
        ready, _, _ = select.select([rfd], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            data += chunk
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    if not data:
        return "traceback", f"the process died (status {status})"
    r = json.loads(data)
    if r["outcome"] == "traceback":
        return "traceback", r["line"]
    if r["outcome"] == "ok":
        return ("ok", "") if case.expect in ("ok", "either") else \
            ("accepted but wrong", "accepted; it should be refused")
    line = r["line"]
    clean = "\n" not in line and r["file"] and r["field"] and r["fix"]
    if not clean:
        return "misjudged", f"not one line with file, field and fix: {line[:150]}"
    if case.expect == "ok":
        return "misjudged", f"refused a good input: {line[:150]}"
    if case.field and not (r["field"] or "").startswith(case.field):
        return "misjudged", f"names {r['field']!r}, not {case.field!r}: {line[:150]}"
    return "refused cleanly", line[:150]


# ------------------------------------------------------------------------- the corpus
def corpus_cases() -> list[Case]:
    """Inputs kept in tests/corpus/ (every bug found stays found): a config file whose first
    line is ``# expect: refused FIELD`` / ``# expect: ok``; a model folder with an
    ``expect.txt`` holding the same."""
    cases = []
    for path in sorted((CORPUS / "configs").glob("*.toml")):
        expect, field = _expectation(path.read_bytes().split(b"\n", 1)[0].decode("utf-8",
                                                                                 "replace"))
        cases.append(Case(f"corpus config {path.name}", "config", _copy_file(path), expect,
                          field))
    for folder in sorted(p for p in (CORPUS / "models").glob("*") if p.is_dir()):
        expect, field = _expectation((folder / "expect.txt").read_text())
        cases.append(Case(f"corpus model {folder.name}", "model", _copy_dir(folder), expect,
                          field))
    return cases


def _expectation(line: str) -> tuple[str, str | None]:
    words = line.replace("#", " ").split()
    if "expect:" not in words:
        return "either", None
    rest = words[words.index("expect:") + 1:]
    return (rest[0] if rest else "either"), (" ".join(rest[1:]) or None)


def _copy_file(src: Path) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        dst = folder / src.name
        shutil.copy(src, dst)
        return dst
    return build


def _copy_dir(src: Path) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        dst = folder / src.name
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("expect.txt"))
        return dst
    return build


def save_to_corpus(case: Case, folder: Path) -> Path | None:
    """Keep a failing case in tests/corpus/ (only what a file can hold: no FIFOs)."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in case.name.split(":", 1)[-1]).strip("-")
    slug = "-".join(filter(None, slug.split("-")))[:60] or "case"
    head = f"# expect: {case.expect}" + (f" {case.field}" if case.field else "")
    folder.mkdir(parents=True, exist_ok=True)
    path = case.build(Path(tempfile.mkdtemp(dir=folder)))
    if case.kind == "config" and path.is_file() and not path.is_symlink() \
            and path.stat().st_size < 1 << 20:
        dst = CORPUS / "configs" / f"{slug}.toml"
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(head.encode() + b"\n" + path.read_bytes())
        return dst
    if case.kind == "model" and path.is_dir() and all(p.is_file() for p in path.iterdir()):
        dst = CORPUS / "models" / slug
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(path, dst)
        (dst / "expect.txt").write_text(head.lstrip("# ") + "\n")
        return dst
    return None


# ------------------------------------------------------------------------- main
def sweep(cases: list[Case], timeout_s: float, workers: int = 2,
          progress: bool = False) -> list[tuple[Case, str, str]]:
    """Judge every case, `workers` at a time; [(case, verdict, detail)] in case order."""
    from concurrent.futures import ThreadPoolExecutor

    tmp = Path(tempfile.mkdtemp(prefix="latentdmx-fuzz-"))
    try:
        with ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(judge, c, tmp / str(i), timeout_s)
                       for i, c in enumerate(cases)]
            out = []
            for i, (c, f) in enumerate(zip(cases, futures, strict=True)):
                out.append((c, *f.result()))
                if progress and sys.stderr.isatty():
                    print(f"\r{i + 1}/{len(cases)}", end="", file=sys.stderr, flush=True)
        if progress and sys.stderr.isatty():
            print(file=sys.stderr)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def all_cases(seed: int = 0, n_configs: int = 270) -> dict[str, list[Case]]:
    rng = random.Random(seed)
    structure = config_structure_cases(rng)
    fields = config_field_cases(rng, max(0, n_configs - len(structure)))
    return {"configs": structure + fields, "models": model_cases(), "corpus": corpus_cases()}


def report(name: str, results: list[tuple[Case, str, str]]) -> Counter:
    counts = Counter(v for _, v, _ in results)
    print(f"{name:<8} tried {len(results):>4}   refused cleanly {counts['refused cleanly']:>4}   "
          f"ok {counts['ok']:>3}   tracebacks {counts['traceback']:>2}   hangs "
          f"{counts['hang']:>2}   accepted but wrong {counts['accepted but wrong']:>2}   "
          f"misjudged {counts['misjudged']:>2}")
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--configs", type=int, default=270, help="mutated configs to try")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds before a hang")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--save-failures", action="store_true",
                    help="copy every case judged wrong into tests/corpus/")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every verdict")
    a = ap.parse_args()

    import pi_app.commands.run
    import pi_app.views.render  # imported once here, shared by every fork

    del pi_app

    groups = all_cases(a.seed, a.configs)
    t0 = time.monotonic()
    print(f"LatentDMX input sweep (seed {a.seed}, timeout {a.timeout:g} s)")
    bad = []
    tmp = Path(tempfile.mkdtemp(prefix="latentdmx-fuzz-save-"))
    for name, cases in groups.items():
        results = sweep(cases, a.timeout, a.workers, progress=True)
        report(name, results)
        for case, verdict, detail in results:
            if a.verbose or verdict not in ("refused cleanly", "ok"):
                print(f"    {verdict:<18} {case.name}: {detail}")
            if verdict not in ("refused cleanly", "ok"):
                bad.append(case)
    print(f"({time.monotonic() - t0:.0f} s)")
    if a.save_failures:
        for case in bad:
            saved = save_to_corpus(case, tmp)
            print(f"saved {saved}" if saved else f"not saved (no file can hold it): {case.name}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
