"""Which DMX channels differ between two recordings of one show, and by how much.

    python bench/show_diff.py A.txt B.txt [C.txt ...]     # each against A

Reads `latentdmx run --record` files (OLA's show format: a header line, then for each frame a
"UNIVERSE v1,v2,..." line and a delay line) with its own few lines of parsing, not the
product's reader, and prints per file: frames, frames that differ, and for each differing
channel (universe/slot) in how many frames and by how much at most. Names the slot
(fixture and attribute) from the demo rig's patch, the rig `run --record` plays by default.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def frames(path: Path) -> list[dict[int, list[int]]]:
    """One {universe: [values]} per frame (a frame ends at a delay line)."""
    out: list[dict[int, list[int]]] = []
    cur: dict[int, list[int]] = {}
    for line in path.read_text().splitlines()[1:]:
        head, _, rest = line.partition(" ")
        if rest:
            cur[int(head)] = [int(v) for v in rest.split(",") if v]
        elif head.strip():
            out.append(cur)
            cur = {}
    if cur:
        out.append(cur)
    return out


def names() -> dict[tuple[int, int], str]:
    try:
        from pi_app.config import load_config
        from pi_app.patch import Patch

        return {k: f"{f}.{a}" for k, (f, a) in Patch(load_config(None)).slot_map().items()}
    except Exception:  # noqa: BLE001 - names are a courtesy
        return {}


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ref = frames(Path(sys.argv[1]))
    label = names()
    for other_path in sys.argv[2:]:
        other = frames(Path(other_path))
        n = min(len(ref), len(other))
        per: dict[tuple[int, int], list[int]] = defaultdict(list)
        differ = 0
        for a, b in zip(ref[:n], other[:n], strict=True):
            seen = False
            for u in sorted(set(a) | set(b)):
                va, vb = a.get(u, []), b.get(u, [])
                for s, (x, y) in enumerate(zip(va, vb, strict=False), start=1):
                    if x != y:
                        per[(u, s)].append(abs(x - y))
                        seen = True
            differ += seen
        print(f"{Path(other_path).name} vs {Path(sys.argv[1]).name}: {len(ref)} / {len(other)} "
              f"frames, {differ} differ")
        for (u, s), d in sorted(per.items()):
            counts = ", ".join(f"{v}: {d.count(v)}" for v in sorted(set(d)))
            print(f"  universe {u} slot {s} ({label.get((u, s), '?')}): {len(d)} frames, "
                  f"by at most {max(d)} ({counts})")


if __name__ == "__main__":
    main()
