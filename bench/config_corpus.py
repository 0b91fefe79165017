"""A corpus of mutated configs, each tried as `latentdmx check`, `latentdmx run --duration`
(virtual time: LATENTDMX_FAKE_CLOCK) and a reload (SIGHUP's path) of a running show.

Every mutation says what must happen before it is tried (`expect`): ``refuse`` (one clean
error: `check` refuses it, `run` refuses it, a reload rejects it), ``warn`` (it plays, and
`check` prints a warning line) or ``accept`` (it plays, no warning). The outcome is judged
against that, never the other way round:

* a traceback anywhere (check, run, reload, or the frames after a reload) is a ``crash``;
* ``accepted but wrong``: expected refused, and `check` passed it;
* ``check/run disagree``: `check` passed it and `run` refused it (or the other way round);
* ``missed warning`` / ``spurious warning``: warn expected and none printed, or the reverse;
* anything else that does not match is ``misjudged``.

Run ``python bench/config_corpus.py`` for the table (mutation kind x outcome counts);
``--sample N`` tries every Nth mutation only. `tests/test_config_corpus.py` runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import io
import json
import logging
import math
import os
import sys
import tempfile
import tomllib
import uuid
import wave
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_TOML = ROOT / "pi_app" / "data" / "default.toml"
README = ROOT / "docs" / "installation.md"       # the manual page with the example
TODAY = dt.date.today()
# UDP ports for the outputs that send (to 127.0.0.1, where nobody listens): one range per
# process, so two sweeps at once do not claim the same lights (`pi_app.claims`)
PORT = 20000 + (os.getpid() % 4000) * 10
NEXT_YEAR = TODAY.year + 1
LAST_YEAR = TODAY.year - 1


@dataclass
class Mutation:
    kind: str                   # the table's row: what sort of mistake
    name: str
    base: str                   # "default" | "installation" | "network"
    edit: Callable[[dict, Path], None]      # changes the document (files go in the folder)
    expect: str                 # "refuse" | "warn" | "accept"
    play: bool = True           # also `run` it (False: lockstep groups, which need a LAN)


# -- bases ------------------------------------------------------------------------------------
def _installation_toml() -> str:
    """The manual's installation example (on the default rig), OSC kept off in the corpus
    (it would bind the LAN)."""
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- installation-example", 1)[1].split("```toml", 1)[1]
    return block.split("```", 1)[0]


def bases() -> dict[str, dict]:
    default = tomllib.loads(DEFAULT_TOML.read_text(encoding="utf-8"))
    inst = copy.deepcopy(default)
    inst.update(tomllib.loads(_installation_toml()))
    inst["osc"]["enabled"] = False
    net = copy.deepcopy(default)
    net["fixtures"][-1]["universe"] = 2              # two rig universes, for the maps
    return {"default": default, "installation": inst, "network": net}


# -- a TOML writer (tomllib only reads) --------------------------------------------------------
def _key(k: str) -> str:
    return k if k and k.isascii() and all(c.isalnum() or c in "-_" for c in k) else \
        json.dumps(k)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))   # (labels of the mutations)


def dump(doc: dict) -> str:
    """`doc` as TOML (tomli-w: nan and inf written as TOML has them)."""
    import tomli_w

    return tomli_w.dumps(doc)


# -- edits ------------------------------------------------------------------------------------
def put(path: tuple, value) -> Callable[[dict, Path], None]:
    def edit(doc: dict, folder: Path) -> None:
        node = doc
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return edit


def chain(*edits: Callable[[dict, Path], None]) -> Callable[[dict, Path], None]:
    def edit(doc: dict, folder: Path) -> None:
        for e in edits:
            e(doc, folder)
    return edit


def schedule(**entry) -> Callable[[dict, Path], None]:
    def edit(doc: dict, folder: Path) -> None:
        e = {"on": "sunset+20m", "off": "23:30", "playlist": "evening"}
        e.update({k: v for k, v in entry.items() if v is not None})
        for k in [k for k, v in entry.items() if v is None]:
            e.pop(k, None)
        doc["schedule"] = [e]
    return edit


def with_file(key: tuple, make: Callable[[Path], Path]) -> Callable[[dict, Path], None]:
    def edit(doc: dict, folder: Path) -> None:
        put(key, str(make(folder)))(doc, folder)
    return edit


def _wav(folder: Path) -> Path:
    p = folder / "song.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(b"\x00\x10" * 22050)
    return p


def _text(folder: Path) -> Path:
    p = folder / "notes.wav"
    p.write_text("not a sound\n")
    return p


def _empty_wav(folder: Path) -> Path:
    p = folder / "empty.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
    return p


def _scaled_model(factor: float, model: str = "nat-aurora",
                  only: str | None = None) -> Callable[[Path], Path]:
    """A copy of a bundled model with its weights (or only tensor `only`) times `factor`
    (nat-aurora's net.0.weight x 1e38: NaN for about 15 % of the latents)."""
    def make(folder: Path) -> Path:
        import numpy as np
        from safetensors.numpy import load_file, save_file

        src = ROOT / "models" / model
        dst = folder / f"scaled-{factor:g}"
        dst.mkdir()
        (dst / "model.json").write_bytes((src / "model.json").read_bytes())
        w = load_file(str(src / "model.safetensors"))
        with np.errstate(over="ignore"):
            save_file({k: (v * np.float32(factor)).astype(np.float32)
                       if (k == only if only else k.endswith("weight")) else v
                       for k, v in w.items()}, str(dst / "model.safetensors"))
        return dst
    return make


# -- the mutations --------------------------------------------------------------------------------
def _leaves(doc, path: tuple = ()) -> list[tuple[tuple, object]]:
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _leaves(v, (*path, k))
    elif isinstance(doc, list) and doc and all(isinstance(x, dict) for x in doc):
        for i, v in enumerate(doc):
            out += _leaves(v, (*path, i))
    else:
        out.append((path, doc))
    return out


SKIP_TYPES = {("output", "kind"), ("preview", "web"), ("osc", "enabled"), ("control", "enabled"),
              ("control", "socket")}


INSTALL_SECTIONS = ("location", "schedule", "playlists", "presets", "palettes", "osc")


def type_mutations(base: str, doc: dict) -> list[Mutation]:
    """Leaves of a base (the installation base: its own sections) with a value of the wrong
    type, taken in turn for each leaf, and every number as nan and inf: all refused."""
    out = []
    k = 0
    for path, v in _leaves(doc):
        if path in SKIP_TYPES or path[0] == "sync" or path[-1] == "universe_map" or \
                (base == "installation") != (path[0] in INSTALL_SECTIONS):
            continue
        name = ".".join(str(p) for p in path)
        if isinstance(v, bool):
            wrong: list = [["yes", 1][k % 2]]
        elif isinstance(v, int | float):
            wrong = [["x", [], "1"][k % 3]]
            if isinstance(v, float) or k % 2:
                wrong.append([math.nan, math.inf, -math.inf][k % 3])
        elif isinstance(v, str):
            wrong = [[5, True, ["a"]][k % 3]]
        elif isinstance(v, list) and path[-1] not in ("items",):
            wrong = [["x", 3][k % 2]]
        else:
            continue
        k += 1
        for w in wrong:
            kind = ("nan/inf" if isinstance(w, float) and not math.isfinite(w) else
                    "wrong type")
            out.append(Mutation(kind, f"{base}:{name}={_value(w)}", base, put(path, w),
                                "refuse"))
    return out


def unknown_key_mutations(base: str, doc: dict) -> list[Mutation]:
    out = []
    tables = [()] + [p for p, _ in _tables(doc)]
    for t in tables:
        def edit(d: dict, folder: Path, t=t) -> None:
            node = d
            for p in t:
                node = node[p]
            node["colour_tmep"] = 1
        out.append(Mutation("unknown key", f"{base}:{'.'.join(map(str, t)) or '(top)'}"
                            ".colour_tmep", base, edit, "refuse"))
    return out


def _tables(doc, path: tuple = ()):
    for k, v in doc.items():
        if isinstance(v, dict) and k not in ("universe_map", "universe_priority", "music") \
                and not (path and path[-1] == "presets"):
            yield (*path, k), v
            yield from _tables(v, (*path, k))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                yield (*path, k, i), x


def range_mutations() -> list[Mutation]:
    r = []
    for path, bad, good in [
            (("fps",), [0, 45, -1, 1e308], [1, 44, 25.5]),
            (("seed",), [-1, 2**63], [7, 2**62]),
            (("walk", "tempo"), [0, 101, -1], [0.01, 100]),
            (("walk", "seconds_per_waypoint"), [0, 3601], [0.1, 3600]),
            (("walk", "loop_waypoints"), [1, -2], [0, 2, 1000]),
            (("walk", "spread"), [-0.1, 11], [0, 10]),
            (("safety", "master"), [-0.1, 1.5], [0, 0.5]),
            (("safety", "fade_out_s"), [-1, 31], [0, 30]),
            (("safety", "max_flashes_per_s"), [0, 3.5], [1, 3]),
            (("safety", "flash_delta"), [0.2, 0.01], [0.05, 0.1]),
            (("preview", "port"), [0, 65536], [1, 65535]),
            (("music", "bpm"), [10, 500], [0, 120]),
            (("music", "silence_s"), [0, 61], [0.1, 60]),
            (("music", "energy_range"), [[0.8, 0.2], [-1, 1]], [[0, 1], [0.2, 0.2]]),
            (("music", "align"), ["bars", ""], ["beat"]),
            (("audio", "samplerate"), [100, 10**6], [44100]),
            (("fixtures", 0, "address"), [0, 513, 512], [101]),
            (("fixtures", 0, "universe"), [-1, 65536], [3]),
            (("fixtures", 0, "position"), [[1.5, 0.5], [0.5]], [[0, 1]]),
            (("fixtures", 0, "park"), [[2, 0], [0.5, -1]], [[0, 0]]),
            (("fixtures", 0, "profile"), ["no-such-profile", ""], []),
            (("fixtures", 0, "name"), ["", "par-1"], ["head 1"]),
            (("model",), ["no-such-model", "", "./missing-folder"], ["nat-neon", "iae-glyphs"]),
            (("schema",), [0, 2], [1]),
            (("output", "kind"), ["dmx", ""], []),
            (("preview", "host"), ["", "local host", " 127.0.0.1", "[pi.local]"],
             ["localhost", "0.0.0.0", "::", "::1", "[::]"]),
            (("osc", "allow"), [["not-an-address"]], [["192.168.1.0/24"]]),
            (("location", "latitude"), [91, -91], [0, -89.9]),
            (("location", "timezone"), ["Mars/Olympus", "CEST"], ["UTC", "America/New_York"]),
    ]:
        name = ".".join(map(str, path))
        for v in bad:
            r.append(Mutation("out of range / unknown value", f"{name}={_value(v)}",
                              "installation" if path[0] in INSTALL_SECTIONS else "default",
                              put(path, v), "refuse"))
        for v in good:
            r.append(Mutation("in range (control)", f"{name}={_value(v)}",
                              "installation" if path[0] in INSTALL_SECTIONS else "default",
                              put(path, v), "accept"))
    return r


def collision_mutations() -> list[Mutation]:
    r = [
        Mutation("collision", "two fixtures on one slot", "default",
                 put(("fixtures", 1, "address"), 1), "refuse"),
        Mutation("collision", "two fixtures with one name", "default",
                 lambda d, f: d["fixtures"][1].update(name=d["fixtures"][0]["name"]), "refuse"),
    ]
    for section, a in (("sacn", 2), ("artnet", 2), ("ola", 2)):
        # rig universes 1 and 2: mapping 1 onto 2's number collides with 2 (unmapped)
        r.append(Mutation("collision", f"{section} universe_map 1->{a} beside universe 2",
                          "network", put(("output", section, "universe_map"), {"1": a}),
                          "refuse"))
        r.append(Mutation("collision", f"{section} universe_map 1 and 2 on one",
                          "network", put(("output", section, "universe_map"),
                                         {"1": 7, "2": 7} if section != "artnet" else
                                         {"1": "0:0:7", "2": 7}), "refuse"))
        r.append(Mutation("in range (control)", f"{section} universe_map 1->{a + 10}",
                          "network", put(("output", section, "universe_map"),
                                         {"1": a + 10}), "accept"))
    for kind, uni, exp in (("artnet", 40000, "refuse"), ("sacn", 0, "refuse"),
                           ("sacn", 64000, "refuse"), ("sim", 65535, "accept"),
                           ("artnet", 32767, "accept")):
        r.append(Mutation("collision" if exp == "refuse" else "in range (control)",
                          f"{kind} output, rig universe {uni} unmapped", "default",
                          chain(put(("output", "kind"), kind),
                                put(("output", kind, "unicast" if kind == "sacn" else "nodes"),
                                    ["127.0.0.1"]) if kind != "sim" else put(("seed",), 0),
                                put(("output", kind, "port"), PORT + 1) if kind != "sim"
                                else put(("seed",), 0),
                                put(("fixtures", 0, "universe"), uni)), exp))
    r.append(Mutation("collision", "uart output, fixtures on two universes", "network",
                      put(("output", "kind"), "uart"), "refuse"))
    r.append(Mutation("collision", "sacn collision, output kind sacn", "network",
                      chain(put(("output", "kind"), "sacn"),
                            put(("output", "sacn", "unicast"), ["127.0.0.1"]),
                            put(("output", "sacn", "port"), PORT + 9),
                            put(("output", "sacn", "universe_map"), {"1": 2})), "refuse"))
    r.append(Mutation("collision", "artnet collision, output kind artnet", "network",
                      chain(put(("output", "kind"), "artnet"),
                            put(("output", "artnet", "nodes"), ["127.0.0.1"]),
                            put(("output", "artnet", "port"), PORT + 8),
                            put(("output", "artnet", "universe_map"), {"2": 1})), "refuse"))
    return r


def network_mutations() -> list[Mutation]:
    s = ("output", "sacn")
    a = ("output", "artnet")
    r = []
    for host, exp in (("0.0.0.0", "refuse"), ("255.255.255.255", "refuse"),
                      ("0.1.2.3", "refuse"), ("239.255.0.1", "refuse"), ("127.0.0.1", "accept"),
                      ("192.168.1.50", "accept"), ("10.0.0.300", "refuse")):
        r.append(Mutation("network address", f"sacn unicast {host}", "network",
                          put((*s, "unicast"), [host]), exp))
        r.append(Mutation("network address", f"artnet node {host}", "network",
                          put((*a, "nodes"), [host]), exp))
    for cid, exp in (("00000000-0000-0000-0000-000000000000", "refuse"),
                     ("{00000000-0000-0000-0000-000000000000}", "refuse"),
                     ("not-a-uuid", "refuse"), (str(uuid.UUID(int=7 << 64 | 1)), "accept"),
                     ("3f2504e0-4f89-11d3-9a0c-0305e82c3301", "accept")):
        r.append(Mutation("network address", f"sacn cid {cid}", "network",
                          put((*s, "cid"), cid), exp))
    for kind in ("sacn", "artnet"):
        for iface, exp in (("nosuch0", "refuse"), ("192.0.2.77", "refuse"), ("lo", "accept"),
                           ("127.0.0.1", "accept")):
            r.append(Mutation("network interface", f"{kind} interface {iface} (kind {kind})",
                              "network", chain(put(("output", "kind"), kind),
                                               put(("output", kind, "interface"), iface),
                                               put(("output", kind, "port"), PORT + 0),
                                               put(("output", kind, "unicast" if kind == "sacn"
                                                    else "nodes"), ["127.0.0.1"])), exp))
    r.append(Mutation("network address", "artnet broadcast 0.0.0.0", "network",
                      put((*a, "broadcast"), "0.0.0.0"), "refuse"))
    r.append(Mutation("network address", "artnet broadcast 192.168.1.255", "network",
                      put((*a, "broadcast"), "192.168.1.255"), "accept"))
    return r


def outputs_mutations() -> list[Mutation]:
    """``[[outputs]]`` on the two-universe rig: each universe to one output, no more, no less."""
    def outputs(*tables: dict) -> Callable[[dict, Path], None]:
        def edit(doc: dict, folder: Path) -> None:
            doc.pop("output", None)
            doc["outputs"] = [dict(t) for t in tables]
        return edit

    sim1, sim2 = {"kind": "sim", "universes": [1]}, {"kind": "sim", "universes": [2]}
    ddp2 = {"kind": "ddp", "universes": [2], "destinations": [f"127.0.0.1:{PORT + 2}"]}
    r = []
    for name, tables, exp in [
            ("sim + sim", (sim1, sim2), "accept"),
            ("sim + ddp", (sim1, ddp2), "accept"),
            ("sim + artnet to a host name", (sim1, {"kind": "artnet", "universes": [2],
                                                   "nodes": ["localhost"], "port": PORT + 3}),
             "accept"),
            ("sim + sacn to a host name", (sim1, {"kind": "sacn", "universes": [2],
                                                 "unicast": ["localhost"], "port": PORT + 4,
                                                 "discovery": False}), "accept"),
            ("one output for both universes", ({"kind": "sim", "universes": [1, 2]},),
             "accept"),
            ("universe 2 twice", (sim1, sim2, {"kind": "sim", "universes": [2]}), "refuse"),
            ("universe 2 listed twice in one", ({"kind": "sim", "universes": [1, 2, 2]},),
             "refuse"),
            ("universe 2 to no output", (sim1,), "refuse"),
            ("a universe nothing is patched in", (sim1, {"kind": "sim", "universes": [2, 9]}),
             "refuse"),
            ("unknown kind", (sim1, {"kind": "dmx", "universes": [2]}), "refuse"),
            ("no kind", (sim1, {"universes": [2]}), "refuse"),
            ("no universes", (sim1, {"kind": "sim"}), "refuse"),
            ("empty universes", (sim1, {"kind": "sim", "universes": []}), "refuse"),
            ("universes not numbers", (sim1, {"kind": "sim", "universes": ["2"]}), "refuse"),
            ("a key sim does not have", (sim1, {**sim2, "device": "/dev/x"}), "refuse"),
            ("a key ddp does not have", (sim1, {**ddp2, "nodes": ["10.0.0.1"]}), "refuse"),
            ("uart with two universes", ({"kind": "uart", "universes": [1, 2]},), "refuse"),
            ("malformed host name", (sim1, {**ddp2, "destinations": ["wled_strip.local"]}),
             "refuse"),
            ("address out of range", (sim1, {**ddp2, "destinations": ["10.0.0.300"]}),
             "refuse"),
            ("two outputs on the same lights",
             ({"kind": "sacn", "universes": [1], "unicast": ["127.0.0.1"], "port": PORT + 5},
              {"kind": "sacn", "universes": [2], "unicast": ["127.0.0.1"], "port": PORT + 5,
               "universe_map": {"2": 1}}), "refuse"),
            ("bad setting in one", (sim1, {**ddp2, "port": 0}), "refuse"),
            ("two multicast sACN outputs on one sync universe",
             ({"kind": "sacn", "universes": [1], "port": PORT + 6, "discovery": False},
              {"kind": "sacn", "universes": [2], "port": PORT + 6, "discovery": False}),
             "refuse"),
            ("two multicast sACN outputs, each its own sync universe",
             ({"kind": "sacn", "universes": [1], "port": PORT + 7, "discovery": False},
              {"kind": "sacn", "universes": [2], "port": PORT + 7, "discovery": False,
               "sync_universe": 63998}), "accept")]:
        r.append(Mutation("several outputs", name, "network", outputs(*tables), exp))
    r.append(Mutation("several outputs", "[output.ddp] beside [[outputs]]", "network",
                      chain(outputs(sim1, sim2), lambda d, f: d.update(
                          output={"ddp": {"destinations": ["10.0.0.9"]}})), "refuse"))
    r.append(Mutation("several outputs", "[output] kind beside [[outputs]]", "network",
                      chain(outputs(sim1, sim2),
                            lambda d, f: d.update(output={"kind": "ola"})), "refuse"))
    return r


def sync_mutations() -> list[Mutation]:
    key = "k3Yq9-2vX_8mWc4ZrT1pLs6NdHf0BgJe"
    base = {"group": "foyer", "key": key, "epoch": "2026-01-01T00:00:00Z"}

    def group(**change) -> Callable[[dict, Path], None]:
        def edit(d: dict, folder: Path) -> None:
            d["sync"].update(base)
            d["sync"].update(change)
        return edit

    r = [Mutation("lockstep group", "group (control)", "default", group(), "accept", False)]
    for name, change, exp in [
            ("group 'foyer\\n'", {"group": "foyer\n"}, "refuse"),
            ("group ' foyer'", {"group": " foyer"}, "refuse"),
            ("group 'foyer hall'", {"group": "foyer hall"}, "refuse"),
            ("address mDNS 224.0.0.251", {"address": "224.0.0.251"}, "refuse"),
            ("address all-hosts 224.0.0.1", {"address": "224.0.0.1"}, "refuse"),
            ("address NTP 224.0.1.1", {"address": "224.0.1.1"}, "refuse"),
            ("address sACN universe 1", {"address": "239.255.0.1"}, "refuse"),
            ("address sACN discovery", {"address": "239.255.250.214"}, "refuse"),
            ("address SSDP", {"address": "239.255.255.250"}, "refuse"),
            ("address unicast", {"address": "192.168.1.9"}, "refuse"),
            ("address org-local", {"address": "239.193.0.9"}, "accept"),
            ("address global scope", {"address": "225.1.2.3"}, "warn"),
            ("epoch next year", {"epoch": f"{NEXT_YEAR}-06-01T00:00:00Z"}, "warn"),
            ("epoch 2027-02-29", {"epoch": "2027-02-29T00:00:00Z"}, "refuse"),
            ("epoch without zone", {"epoch": "2026-01-01T00:00:00"}, "refuse"),
            ("epoch year 1999", {"epoch": "1999-01-01T00:00:00Z"}, "refuse"),
            ("epoch last year", {"epoch": f"{LAST_YEAR}-03-01T00:00:00+01:00"}, "accept")]:
        r.append(Mutation("lockstep group", name, "default", group(**change), exp, False))
    return r


def schedule_mutations() -> list[Mutation]:
    r = []
    add = r.append
    for on, off, exp in [
            ("9:00", "09:00", "refuse"), ("21:30", "21:30 ", "refuse"),
            ("sunset", "sunset+0m", "refuse"), ("sunset+1000h", "23:30", "refuse"),
            ("sunset+13h", "23:30", "refuse"), ("sunrise-12h30m", "23:30", "refuse"),
            ("sunrise-12h", "sunset+12h", "refuse"), ("24:00", "23:30", "refuse"),
            ("25:00", "23:30", "refuse"), ("noon", "23:30", "refuse"), ("", "23:30", "refuse"),
            ("21:61", "23:30", "refuse"), ("sunset+20", "23:30", "refuse"),
            ("9:00", "17:00", "accept"), ("22:00", "02:00", "accept"),
            ("sunset", "sunrise", "accept"), ("dusk-1h", "dawn+30m", "accept"),
            ("sunset+11h", "sunrise+5h", "accept"), ("sunset + 20m", "23:30", "accept"),
            ("00:00", "23:59", "accept")]:
        add(Mutation("bad time" if exp == "refuse" else "time (control)",
                     f"on {on!r} off {off!r}", "installation", schedule(on=on, off=off), exp))
    for days, exp in [
            (["monster"], "refuse"), (["mo"], "refuse"), (["sundae"], "refuse"),
            (["weekday"], "refuse"), ([""], "refuse"), (["tuesdays"], "refuse"),
            (["satur day"], "refuse"), (["mon", "frieday"], "refuse"),
            (["monday"], "accept"), (["Tues"], "accept"), (["thurs"], "accept"),
            (["weekends"], "accept"), (["SUN", "sat"], "accept"), (["daily"], "accept")]:
        add(Mutation("bad day" if exp == "refuse" else "day (control)", f"days {days!r}",
                     "installation", schedule(days=days), exp))
    ny, ly = NEXT_YEAR, LAST_YEAR
    leap = next(y for y in range(ny, ny + 8) if y % 4 == 0 and (y % 100 or y % 400 == 0))
    nonleap = next(y for y in range(ny, ny + 8) if y % 4)
    for dates, days, exp in [
            ([f"{nonleap}-02-29", f"{nonleap}-03-03"], None, "refuse"),
            ([f"{leap}-02-29", f"{leap}-03-03"], None, "accept"),
            (["02-29", "03-01"], None, "accept"), (["02-30", "03-01"], None, "refuse"),
            (["04-31", "05-02"], None, "refuse"), (["13-01", "12-31"], None, "refuse"),
            (["00-10", "01-10"], None, "refuse"), (["12-00", "12-24"], None, "refuse"),
            (["12-20", "01-06"], None, "accept"), (["12-24"], None, "refuse"),
            (["12-24", "12-25", "12-26"], None, "refuse"), (["24.12", "26.12"], None, "refuse"),
            ([f"{ny}-12-26", f"{ny}-12-20"], None, "refuse"),
            ([f"{ny}-12-20", "12-26"], None, "refuse"),
            ([f"{ly}-12-20", f"{ly}-12-26"], None, "warn"),
            ([f"{ny}-12-20", f"{ny}-12-26"], None, "accept"),
            ([f"{ny}-12-20", f"{ny}-12-20"], ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
             "accept"),
            ([f"{ny}-06-01", f"{ny}-06-01"],
             [d for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
              if d != ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[
                  dt.date(ny, 6, 1).weekday()]], "refuse"),
            (["0000-01-01", "0000-01-02"], None, "refuse"),
            ([f"{ny}-1-5", f"{ny}-1-9"], None, "accept")]:
        is_bad = exp != "accept"
        add(Mutation("bad date" if is_bad else "date (control)",
                     f"dates {dates!r}" + (f" days {days!r}" if days else ""), "installation",
                     schedule(dates=dates, days=days), exp))
    add(Mutation("schedule reference", "playlist that does not exist", "installation",
                 schedule(playlist="nightly"), "refuse"))
    add(Mutation("schedule reference", "preset and playlist", "installation",
                 schedule(preset="dusk"), "refuse"))
    add(Mutation("schedule reference", "saved preset only (not in the config)", "installation",
                 schedule(preset="saved-one", playlist=None), "warn"))
    add(Mutation("schedule reference", "preset 'dusk\\n'", "installation",
                 schedule(preset="dusk\n", playlist=None), "refuse"))
    add(Mutation("schedule reference", "sun times without a location", "installation",
                 lambda d, f: d.pop("location"), "refuse"))
    return r


def playlist_preset_mutations() -> list[Mutation]:
    r = []
    ev = ("playlists", "evening")
    for item, exp in [
            ({"model": "nat-neon", "tempo": math.nan}, "refuse"),
            ({"model": "nat-neon", "tempo": math.inf}, "refuse"),
            ({"model": "nat-neon", "tempo": 0}, "refuse"),
            ({"model": "nat-neon", "tempo": -1}, "refuse"),
            ({"model": "nat-neon", "tempo": 1e9}, "refuse"),
            ({"model": "nat-neon", "tempo": "fast"}, "refuse"),
            ({"model": "nat-neon", "tempo": True}, "refuse"),
            ({"model": "nat-neon", "seed": -3}, "refuse"),
            ({"model": "nat-neon", "seed": 1.5}, "refuse"),
            ({"model": "nat-neon", "seed": 2**63}, "refuse"),
            ({"model": "no-such-model"}, "refuse"),
            ({"model": ""}, "refuse"),
            ({"model": 3}, "refuse"),
            ({"model": "nat-neon", "palette": "nope"}, "refuse"),
            ({"model": "nat-neon", "palette": 5}, "refuse"),
            ({"model": "nat-neon", "speed": 2}, "refuse"),
            ({}, "refuse"),
            (7, "refuse"), ("dusk\n", "refuse"), ("", "refuse"),
            ("not-defined", "warn"),
            ({"model": "nat-neon", "tempo": 2.5}, "accept"),
            ({"model": "iae-glyphs", "seed": 4, "palette": "sea"}, "accept"),
            ({"seed": 9}, "accept"), ({"model": "nat-neon", "palette": ""}, "accept")]:
        r.append(Mutation("playlist item" if exp != "accept" else "playlist item (control)",
                          f"item {_value(item)}", "installation",
                          put((*ev, "items"), ["dusk", item]), exp))
    for every, exp in (("0s", "refuse"), ("5s", "refuse"), ("15 minutes", "refuse"),
                       ("1h30m", "accept"), ("", "refuse")):
        r.append(Mutation("playlist item" if exp != "accept" else "playlist item (control)",
                          f"every {every!r}", "installation", put((*ev, "every"), every), exp))
    r.append(Mutation("playlist item", "empty playlist", "installation",
                      put((*ev, "items"), []), "refuse"))
    p = ("presets", "dusk")
    for key, v, exp in [
            ("phase", -1.0, "refuse"), ("phase", math.nan, "refuse"), ("phase", math.inf, "refuse"),
            ("phase", 12.5, "accept"), ("phase", 0, "accept"),
            ("tempo", math.nan, "refuse"), ("tempo", 0.001, "refuse"), ("tempo", 200, "refuse"),
            ("tempo", 3, "accept"),
            ("master", 1.5, "refuse"), ("master", -0.5, "refuse"), ("master", 0.4, "accept"),
            ("seed", -2, "refuse"), ("seed", 2**63 - 1, "accept"),
            ("model", "no-such-model", "refuse"), ("model", "iae-blobs", "accept"),
            ("palette", "nope", "refuse"), ("heads_still", "yes", "refuse"),
            ("music", 3, "refuse")]:
        r.append(Mutation("preset field" if exp != "accept" else "preset field (control)",
                          f"preset {key}={_value(v)}", "installation", put((*p, key), v), exp))
    r.append(Mutation("preset field", "preset name 'dusk\\n'", "installation",
                      lambda d, f: d["presets"].update({"dusk\n": d["presets"].pop("sea")}),
                      "refuse"))
    return r


def file_mutations() -> list[Mutation]:
    au = ("audio", "file")
    return [
        Mutation("missing / wrong file", "audio.file missing", "default",
                 put(au, "/nonexistent/song.wav"), "refuse"),
        Mutation("missing / wrong file", "audio.file is text", "default",
                 with_file(au, _text), "refuse"),
        Mutation("missing / wrong file", "audio.file holds no sound", "default",
                 with_file(au, _empty_wav), "refuse"),
        Mutation("missing / wrong file", "audio.file is a folder", "default",
                 with_file(au, lambda f: f), "refuse"),
        Mutation("missing / wrong file", "audio.file and device", "default",
                 chain(with_file(au, _wav), put(("audio", "device"), "default")), "refuse"),
        Mutation("file (control)", "audio.file a WAV", "default", with_file(au, _wav), "accept"),
        Mutation("missing / wrong file", "model folder missing", "default",
                 put(("model",), "/nonexistent/model"), "refuse"),
        Mutation("model weights", "weights x1e38", "default",
                 with_file(("model",), _scaled_model(1e38)), "refuse"),
        Mutation("model weights", "weights x1e30", "default",
                 with_file(("model",), _scaled_model(1e30)), "refuse"),
        Mutation("model weights", "nat-aurora net.0.weight x1e38 (NaN for 15 % of latents)",
                 "default", with_file(("model",), _scaled_model(1e38, only="net.0.weight")),
                 "refuse"),
        Mutation("model weights", "nat-neon net.0.weight x3e37 (NaN for 3.5 % of latents)",
                 "default", with_file(("model",), _scaled_model(3e37, "nat-neon",
                                                                "net.0.weight")), "refuse"),
        Mutation("model weights", "nat-aurora net.2.weight x1e38 (NaN for 13 % of latents)",
                 "default", with_file(("model",), _scaled_model(1e38, only="net.2.weight")),
                 "refuse"),
        Mutation("model weights (control)", "weights x2", "default",
                 with_file(("model",), _scaled_model(2.0)), "accept"),
        Mutation("model weights (control)", "weights x0.5", "default",
                 with_file(("model",), _scaled_model(0.5)), "accept"),
    ]


def all_mutations() -> list[Mutation]:
    b = bases()
    out = []
    for name in ("default", "installation"):
        out += type_mutations(name, b[name])
        out += unknown_key_mutations(name, b[name])
    out += range_mutations() + collision_mutations() + network_mutations()
    out += sync_mutations() + schedule_mutations() + playlist_preset_mutations()
    out += file_mutations() + outputs_mutations()
    return out


# -- trying one -----------------------------------------------------------------------------
class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Result:
    mutation: Mutation
    check: str = ""             # refused | warned | accepted | crash
    run: str = ""               # refused | played | crash | skipped
    reload: str = ""            # rejected | applied | restart | crash
    verdict: str = ""
    detail: list[str] = field(default_factory=list)


def _check(path: Path) -> tuple[str, str]:
    from click.testing import CliRunner

    from pi_app.commands.run import check
    from pi_app.errors import LatentDMXError

    res = CliRunner().invoke(check, [str(path)], catch_exceptions=True)
    exc = res.exception
    if exc is None:
        return ("warned" if "warning: " in res.output else "accepted"), \
            next((ln for ln in res.output.splitlines() if ln.startswith("warning")), "")
    if isinstance(exc, LatentDMXError):
        return "refused", str(exc)
    return "crash", f"{exc.__class__.__name__}: {exc}"


def _run(path: Path, records: _Records) -> tuple[str, str]:
    from click.testing import CliRunner

    from pi_app.commands.run import run
    from pi_app.errors import LatentDMXError

    start = len(records.records)
    res = CliRunner().invoke(run, ["--config", str(path), "--duration", "1.5"],
                             catch_exceptions=True)
    exc = res.exception
    tb = [r for r in records.records[start:] if r.exc_info]
    if tb:
        return "crash", tb[0].getMessage()
    if isinstance(exc, SystemExit):
        return ("played", "") if exc.code == 0 else ("crash", f"exit {exc.code}")
    if isinstance(exc, LatentDMXError):
        return "refused", str(exc)
    if exc is None:
        return "played", ""
    return "crash", f"{exc.__class__.__name__}: {exc}"


def _reload(base_path: Path, path: Path, records: _Records) -> tuple[str, str]:
    """A show of the unmutated base, on virtual time, told to reload the mutated file at
    frame 20, and played 2 s past it."""
    from pi_app.clock import FastClock
    from pi_app.commands.run import load_show_model
    from pi_app.config import load_run_config
    from pi_app.outputs import output_for
    from pi_app.patch import Patch
    from pi_app.show import Show

    cfg = load_run_config(base_path)
    mdl = load_show_model(cfg, from_flag=False)
    patch = Patch(cfg)
    show = Show(cfg, output_for(cfg, patch), model=mdl, duration_s=3.0, config_path=path,
                clock=FastClock, control=False)

    def at(s) -> None:
        if s.frames_out == 20:
            s.request_reload()
    show.listeners.append(at)
    start = len(records.records)
    try:
        code = show.run()
    except Exception as exc:            # noqa: BLE001 - any escape is what we count
        return "crash", f"{exc.__class__.__name__}: {exc}"
    recs = records.records[start:]
    tb = [r for r in recs if r.exc_info or "live change failed" in r.getMessage()]
    if tb or code != 0:
        return "crash", tb[0].getMessage() if tb else f"exit {code}"
    msgs = [r.getMessage() for r in recs]
    if any("need a restart" in m for m in msgs):
        return "restart", ""
    if any("reload rejected" in m for m in msgs):
        return "rejected", next(m for m in msgs if "reload rejected" in m)
    if any(m.startswith("reloaded") for m in msgs):
        return "applied", ""
    return "crash", "no reload logged"


def judge(m: Mutation, folder: Path, base_paths: dict[str, Path], records: _Records,
          do_run: bool = True) -> Result:
    doc = copy.deepcopy(bases_cache()[m.base])
    m.edit(doc, folder)
    path = folder / "rig.toml"
    path.write_text(dump(doc), encoding="utf-8")
    r = Result(m)
    r.check, d = _check(path)
    r.detail.append(f"check: {d}")
    if m.play and do_run:
        r.run, d = _run(path, records)
        r.detail.append(f"run: {d}")
    else:
        r.run = "skipped"
    r.reload, d = _reload(base_paths[m.base], path, records)
    r.detail.append(f"reload: {d}")
    r.verdict = _verdict(m, r)
    return r


def _verdict(m: Mutation, r: Result) -> str:
    if "crash" in (r.check, r.run, r.reload):
        return "crash"
    plays = r.run in ("played", "skipped")
    if m.expect == "refuse":
        if r.check != "refused":
            return "accepted but wrong"
        if r.run not in ("refused", "skipped") or r.reload != "rejected":
            return "check/run disagree"
        return "ok"
    if r.check == "refused":
        return "refused but fine" if plays else "misjudged"
    if not plays:
        return "check/run disagree"
    if r.reload not in ("applied", "restart"):
        return "misjudged"
    if m.expect == "warn" and r.check != "warned":
        return "missed warning"
    if m.expect == "accept" and r.check == "warned":
        return "spurious warning"
    return "ok"


_BASES: dict[str, dict] = {}


def bases_cache() -> dict[str, dict]:
    if not _BASES:
        _BASES.update(bases())
    return _BASES


@contextlib.contextmanager
def isolated():
    """A runtime, state and data folder of its own (never the default control socket)."""
    with tempfile.TemporaryDirectory(prefix="ldmx-corpus-") as tmp:
        t = Path(tmp)
        env = {"XDG_RUNTIME_DIR": t / "run", "STATE_DIRECTORY": t / "state",
               "XDG_DATA_HOME": t / "data", "XDG_CONFIG_HOME": t / "config",
               "LATENTDMX_FAKE_CLOCK": "1"}
        saved = {k: os.environ.get(k) for k in env}
        for k, v in env.items():
            if isinstance(v, Path):
                v.mkdir(mode=0o700)
            os.environ[k] = str(v)
        try:
            yield t
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def sweep(mutations: list[Mutation], progress: bool = False) -> list[Result]:
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)            # before `run`'s basicConfig: it then adds nothing
    root.setLevel(logging.INFO)
    quiet = logging.StreamHandler(io.StringIO())
    root.addHandler(quiet)
    out = []
    try:
        with isolated() as t:
            base_paths = {}
            for name, doc in bases_cache().items():
                base_paths[name] = t / f"base-{name}.toml"
                base_paths[name].write_text(dump(doc), encoding="utf-8")
            for i, m in enumerate(mutations):
                folder = t / f"m{i}"
                folder.mkdir()
                out.append(judge(m, folder, base_paths, records))
                records.records.clear()
                if progress and i % 25 == 0:
                    print(f"  {i}/{len(mutations)}", file=sys.stderr)
    finally:
        root.removeHandler(records)
        root.removeHandler(quiet)
    return out


def table(results: list[Result]) -> str:
    verdicts = ["ok", "crash", "accepted but wrong", "check/run disagree", "missed warning",
                "spurious warning", "refused but fine", "misjudged"]
    rows: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        rows[r.mutation.kind][r.verdict] += 1
        rows[r.mutation.kind]["expect " + r.mutation.expect] += 1
    cols = ["expect refuse", "expect warn", "expect accept", *verdicts]
    head = f"{'mutation kind':34s}" + "".join(f"{c[:12]:>13s}" for c in cols)
    lines = [head, "-" * len(head)]
    total: Counter = Counter()
    for kind in sorted(rows):
        total.update(rows[kind])
        lines.append(f"{kind:34s}" + "".join(f"{rows[kind][c]:13d}" for c in cols))
    lines.append("-" * len(head))
    lines.append(f"{'all (' + str(len(results)) + ')':34s}" +
                 "".join(f"{total[c]:13d}" for c in cols))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", type=int, default=1, help="try every Nth mutation")
    ap.add_argument("--show-wrong", action="store_true", help="print each case not ok")
    a = ap.parse_args()
    muts = all_mutations()[::a.sample]
    results = sweep(muts, progress=True)
    print(table(results))
    if a.show_wrong:
        for r in results:
            if r.verdict != "ok":
                print(f"{r.verdict}: {r.mutation.name} (expect {r.mutation.expect}): "
                      f"check {r.check}, run {r.run}, reload {r.reload}; "
                      + " | ".join(r.detail))


if __name__ == "__main__":
    main()
