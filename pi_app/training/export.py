"""Export a generator (an `nn.Sequential` called ``net``) for the NumPy runtime.

The layer list in ``model.json`` names each parameterised layer by its ``state_dict`` prefix
(``net.0``), so ``model.safetensors`` holds exactly the module's own tensors. No BatchNorm is
used in the generators, so there is nothing to fold; the runtime refuses unknown layer types.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..runtime import SCHEMA


def describe(net: nn.Sequential, prefix: str = "net") -> list[dict]:
    """One dict per layer of `net`, in the runtime's vocabulary."""
    layers: list[dict] = []
    for idx, mod in enumerate(net):
        name = f"{prefix}.{idx}"
        if isinstance(mod, nn.Linear):
            layers.append({"type": "linear", "name": name, "in": mod.in_features,
                           "out": mod.out_features})
        elif isinstance(mod, nn.Conv2d):
            k = mod.kernel_size
            ok = (k[0] == k[1] and mod.stride == (1, 1) and mod.dilation == (1, 1)
                  and mod.groups == 1 and mod.padding_mode == "zeros"
                  and isinstance(mod.padding, tuple) and mod.padding[0] == mod.padding[1]
                  and mod.bias is not None)
            if not ok:
                raise ValueError(f"{name}: only square, stride-1, biased, zero-padded convs")
            layers.append({"type": "conv2d", "name": name, "in": mod.in_channels,
                           "out": mod.out_channels, "kernel": k[0], "padding": mod.padding[0]})
        elif isinstance(mod, nn.Unflatten):
            layers.append({"type": "reshape", "shape": list(mod.unflattened_size)})
        elif isinstance(mod, nn.Upsample):
            sf = mod.scale_factor
            if mod.mode != "nearest" or not isinstance(sf, int | float) or sf != int(sf):
                raise ValueError(f"{name}: only nearest upsampling by an integer")
            layers.append({"type": "upsample", "scale": int(sf)})
        elif isinstance(mod, nn.LeakyReLU):
            layers.append({"type": "leaky_relu", "slope": mod.negative_slope})
        elif isinstance(mod, nn.ReLU | nn.Tanh | nn.Sigmoid | nn.SiLU):
            layers.append({"type": type(mod).__name__.lower()})
        else:
            raise TypeError(f"{name}: layer {type(mod).__name__} has no NumPy counterpart")
    return layers


def write_model(out: Path, net: nn.Sequential, doc: dict, prefix: str = "net") -> Path:
    """Write ``out/model.safetensors`` (the tensors of `net`) and ``out/model.json``.

    `doc` supplies name, family, latent_dim, output, recipe and quality; layers and schema
    are added here. A ``design`` entry set by hand in an earlier ``model.json`` (such as
    ``{"monochrome": "why"}``, printed on the card) is kept.
    """
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    tensors = {f"{prefix}.{k}": v.detach().to("cpu", torch.float32).contiguous()
               for k, v in net.state_dict().items()}
    save_file(tensors, str(out / "model.safetensors"))
    (out / "model.safetensors").chmod(0o644)            # safetensors writes 0600
    path = out / "model.json"
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    kept = {"design": old["design"]} if isinstance(old.get("design"), dict) else {}
    full = {"schema": SCHEMA, **doc, **kept, "weights": "model.safetensors",
            "layers": describe(net, prefix)}
    path.write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return path


def update_json(out: Path, **fields) -> dict:
    """Merge `fields` into ``out/model.json`` (used by the quality step)."""
    path = out / "model.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc.update(fields)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return doc


def set_command(out: Path, command: str) -> None:
    """Record the command that made the model in its recipe."""
    path = out / "model.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc.setdefault("recipe", {})["command"] = command
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
