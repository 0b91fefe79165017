"""The layers of pi_app (docs/architecture.md "Layers"): the import-linter contract in
pyproject.toml is kept, no module reaches itself again through its imports (a package's
``__init__`` included), and the architecture page states the layers exactly as they are
checked."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def _contract() -> list[str]:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers, = (c["layers"] for c in tool["contracts"] if c["type"] == "layers")
    return layers


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.find_modules_directly_imported_by(v)):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_the_layers_contract_is_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")      # this Python's, as installed
    cmd = [str(lint)] if lint.exists() else [     # a venv layered on another (scripts/test.sh)
        sys.executable, "-c",
        "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"]
    r = subprocess.run([*cmd, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout


def test_no_module_imports_itself_back() -> None:
    graph = grimp.build_graph("pi_app", cache_dir=None)
    assert _cycles(graph) == []


def test_the_architecture_page_states_the_contract() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    section = page.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```\n(.*?)\n```", section, re.DOTALL)
    assert block is not None, "docs/architecture.md's Layers section has no layer block"
    stated = [line.strip() for line in block.group(1).splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    assert stated == _contract()
