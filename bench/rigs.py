"""The rigs the CPU benchmarks play (`bench/paced.py`, `bench/peers.py`), as TOML text.

    demo       the bundled demo rig: 3 Lumeri heads and 4 RGBW pars on one universe
    pars512    512 RGBW pars (4 channels) on 4 universes, 128 a universe
    heads288   288 Lumeri 14-channel heads on 8 universes, 36 a universe
    pars1024   1,024 RGBW pars on 8 universes
    pixels64   10,880 RGB pixels (`generic-rgb`, 3 channels) on 64 universes, 170 a universe

Each is the bundled config (safety, walk, ...) with its own fixtures, so every rig plays with
the defaults a user gets.
"""

from __future__ import annotations

import re

from pi_app.config import default_config_path

RIGS = ("demo", "pars512", "heads288", "pars1024", "pixels64")
LABELS = {"demo": "demo rig (3 heads + 4 pars, 1 universe)",
          "pars512": "512 pars / 4 universes", "heads288": "288 heads / 8 universes",
          "pars1024": "1,024 pars / 8 universes", "pixels64": "10,880 RGB pixels / 64 universes"}


def _grid(i: int, n: int, cols: int) -> tuple[float, float]:
    rows = max(1, (n + cols - 1) // cols)
    return (i % cols) / max(1, cols - 1), (i // cols) / max(1, rows - 1)


def _fixtures(n: int, profile: str, mode: str, channels: int, per_universe: int,
              cols: int) -> str:
    out = []
    for i in range(n):
        u, k = divmod(i, per_universe)
        x, y = _grid(i, n, cols)
        out.append(f'[[fixtures]]\nname = "f{i + 1}"\nprofile = "{profile}"\nmode = "{mode}"\n'
                   f"universe = {u + 1}\naddress = {k * channels + 1}\n"
                   f"position = [{x:.4f}, {y:.4f}]\n")
    return "".join(out)


def rig_toml(name: str, *, model: str | None = None, fps: float | None = None,
             output: str | None = None, ola_port: int | None = None) -> str:
    """The TOML text of rig `name`, with the model, fps, output kind and olad's RPC port
    replaced when given."""
    text = default_config_path().read_text()
    if name != "demo":
        text = text[:re.search(r"(?m)^\[\[fixtures\]\]", text).start()]
        text += {"pars512": lambda: _fixtures(512, "generic-rgbw-par", "4ch", 4, 128, 32),
                 "heads288": lambda: _fixtures(288, "lumeri-wash-7-10", "14ch", 14, 36, 24),
                 "pars1024": lambda: _fixtures(1024, "generic-rgbw-par", "4ch", 4, 128, 32),
                 "pixels64": lambda: _fixtures(10880, "generic-rgb", "3ch", 3, 170, 100),
                 }[name]()
    if model is not None:
        text = re.sub(r'(?m)^model = "[^"]*"', f'model = "{model}"', text, count=1)
    if fps is not None:
        text = re.sub(r"(?m)^fps = \S+", f"fps = {fps:g}", text, count=1)
    if output is not None:
        text = re.sub(r'(?m)^kind = "sim"', f'kind = "{output}"', text, count=1)
    if ola_port is not None:
        text = re.sub(r"(?m)^port = 9010\b", f"port = {ola_port}", text, count=1)
    return text
