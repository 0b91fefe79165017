"""An independent judge of converted fixture profiles, for the sweep tests (and for measuring).

It reads the fixture file itself — QLC+ XML or OFL JSON, with its own small parser, not the
importer's — and checks every DMX value the patch can write for each channel of a profile:

- a driven pan/tilt channel: every value of ``min..max`` (16-bit pairs: the coarse range);
- a driven light channel (dimmer, intensity, red...): ``min..max`` and its dark value (what a
  blackout writes: ``dark``, 0 unless the profile names another);
- a ``strobe`` channel: its open value (``min``) and its dark value;
- a ``hold`` channel: its value.

A value is **bad** when the file's capability at that value says it strobes or starts
something (macro, auto, sound/music/audio, program, rotation, shake, chase, reset, lamp on/off,
effect, trigger), by its QLC+ preset or OFL type, or by its free text — unless the text says it
is off/stopped/open ("No rotation", "Strobe off", "Shutter open"). A driven pan/tilt value must
also not be a speed or be left undefined; a driven light value must not be a lit value of some
other function. A reset or a lamp off is bad on every channel, whatever else its text says
("Shutter closed, lamp off after 1 min", "No strobe, lamp off"): a discharge lamp stays on
through blackouts and stops. Only the text and structure of the file decide: the judge does
not use the importer's classification. It works on the profiles of any LatentDMX version
(mode names map through ``source_modes`` when the profile has them).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

FORBID = re.compile(
    r"macro|\bauto|music|sound|audio|program|rotat|\broll|spin|shak|strob|random|chase|\breset"
    r"|lamp\W*on|puls|jump|effect|trig|continu\w*\s+(rot|pan|tilt|spin|roll|mov)|circle|flash"
    r"|blink|lightning|demo|sequence|\bshows?\b|scrolling|\bla[sz]er|\bpattern|\bfans?\b"
    r"|swing|sway|oscillat|dither", re.IGNORECASE)
# Never sent, whatever else the text says: a reset, switching the lamp off.
NEVER = re.compile(r"\breset|\blamp\W*off|turn\W*the\W+lamp\W+off|to\W+turn\W+off", re.IGNORECASE)
OFFISH = re.compile(r"\bno\b|\boff\b|\bstop|without|no[ -]?func|static|disabled?\b|nothing"
                    r"|^\s*none\s*$|index|\bangle|\bidle\b|^\s*normal( operation)?\s*$|\bfix"
                    r"|\bmanual\b|\d\s*°|\b0\W+(to\W+)?360\b",
                    re.IGNORECASE)
# A range that begins at rest and grows into something ("Normal to Reset", "Open -> full
# wash effect"): its first value is at rest.
STARTS_AT_REST = re.compile(r"^\W*(open|off|stop\w*|normal|no\s+\w+)\s*(->|→|>|\bto\b)",
                            re.IGNORECASE)
OPENISH = re.compile(r"\bopen\b", re.IGNORECASE)
ALLOW = re.compile(OFFISH.pattern + r"|\bopen\b", re.IGNORECASE)
FORBID_PRESETS = ("Strobe", "Pulse", "Ramp", "Reset", "LampOn", "GoboShakeMacro",
                  "RotationClockwise", "RotationCounterClockwise")
FINE = re.compile(r"\bfine\b|\blsb\b|16.?bit", re.IGNORECASE)
NOT_A_POSITION = re.compile(r"speed|slow|fast", re.IGNORECASE)
# Holding a parameter (a program's speed, a microphone's sensitivity) starts nothing; unless
# the same words also switch something on.
PARAMETER = re.compile(r"speed|sensitiv|duration|\bfade|frequency|\brate\b|volume|adjust"
                       r"|\btime\b|\blevel\b|select", re.IGNORECASE)
SWITCHES_ON = re.compile(r"\bon\b|activ|\bstart|\btrig|\brun\b|control|\bmode\b"
                         r"|\b(auto|program|macro|chase|sound|show)\s*\d", re.IGNORECASE)
# Maintenance values that keep a fixture working: a held channel may sit there (never a
# driven one): the lamp on, the fans on automatic / normal / full. Never a reset or lamp off.
KEEPS_WORKING = re.compile(
    r"^\W*(maintenance\W+)?(lamp\W+(power\W+)?on(\W+fan\W+speed[^,;]*)?"
    r"|fans?\W+(control\W+|mode\W*:?\W*)?(auto\w*|normal"
    r"|regulated|full(\W+speed)?|high|max\w*|temperature\W+controlled)|auto\w*\W+fans?"
    r"(\W+mode)?|fans?\W+at\W+auto\W*speed|maximum\W+fan\W+speed)\b[^,;]*$", re.IGNORECASE)
NEVER_KEEP = re.compile(r"reset|\boff\b|strike|reduc|silent|\d+\s*%", re.IGNORECASE)
OFL_FORBID_TYPES = {"StrobeSpeed", "StrobeDuration", "PanContinuous", "TiltContinuous",
                    "WheelShake", "WheelRotation", "WheelSlotRotation", "PrismRotation",
                    "Effect", "IrisEffect", "FrostEffect", "BladeSystemRotation", "Rotation",
                    "BladeRotation"}


@dataclass(frozen=True)
class RawCap:
    lo: int
    hi: int
    text: str
    preset: str = ""          # QLC+ capability preset, or the OFL capability type

    def hold_ok(self, value: int | None = None) -> bool:
        """A value a held channel may sit at although the range is not off: a maintenance
        value that keeps the fixture working (lamp on, fan auto), a QLC+ indexed (fixed)
        rotation, or the first value of a range that begins at rest ("Normal to reset")."""
        if self.preset == "RotationIndexed" and not re.search(r"sound|music|audio|strob",
                                                              self.text, re.IGNORECASE):
            return True
        if value == self.lo and STARTS_AT_REST.search(self.text):
            return True
        return bool(KEEPS_WORKING.search(self.text)) and not NEVER_KEEP.search(self.text)

    def forbidden(self) -> bool:
        if OFFISH.search(self.text) or (OPENISH.search(self.text) and not re.search(
                r"sound|music|audio|\bauto|chang", self.text, re.IGNORECASE)):
            return False         # the text says off / stop / open / no function / an angle
        if self.preset in OFL_FORBID_TYPES:
            return True
        if self.preset == "ShutterStrobe" and not re.search(r"\b(Open|Closed)\b", self.text):
            return True
        if self.preset.startswith(FORBID_PRESETS):
            return True
        return bool(FORBID.search(self.text))


@dataclass(frozen=True)
class RawChannel:
    name: str
    caps: tuple[RawCap, ...]

    def at(self, value: int) -> RawCap | None:
        return next((c for c in self.caps if c.lo <= value <= c.hi), None)


def _tag(el: ET.Element) -> str:
    return el.tag.rsplit("}", 1)[-1]


def read_qxf_raw(path: Path) -> dict[str, list[RawChannel | None]]:
    """Mode name -> its channels in DMX order, straight from the XML."""
    root = ET.parse(path).getroot()
    chans: dict[str, RawChannel] = {}
    for el in root:
        if _tag(el) != "Channel":
            continue
        caps = []
        for c in el:
            if _tag(c) == "Capability":
                lo, hi = int(c.get("Min", "0")), int(c.get("Max", "0"))
                caps.append(RawCap(min(lo, hi), max(lo, hi), "".join(c.itertext()).strip(),
                                   c.get("Preset", "")))
        chans[el.get("Name", "")] = RawChannel(el.get("Name", ""), tuple(caps))
    modes: dict[str, list[RawChannel | None]] = {}
    for m in root:
        if _tag(m) != "Mode":
            continue
        numbered = sorted((int(c.get("Number", "0")), (c.text or "").strip())
                          for c in m if _tag(c) == "Channel")
        modes[m.get("Name", "")] = [chans.get(n) for _, n in numbered]
    return modes


def read_ofl_raw(path: Path) -> dict[str, list[RawChannel | None]]:
    """Mode (short) name -> its channels, from the JSON (fine aliases have no capabilities;
    a switching channel is its first target; template channels are not expanded: None)."""
    data = json.loads(path.read_text("utf-8"))
    for _ in range(5):                  # a redirect entry: its target in the same library
        if "redirectTo" not in data:
            break
        path = path.parent.parent / f"{data['redirectTo']}.json"
        data = json.loads(path.read_text("utf-8"))
    chans: dict[str, RawChannel] = {}
    for name, ch in (data.get("availableChannels") or {}).items():
        fines = ch.get("fineChannelAliases") or []
        res = ch.get("dmxValueResolution", f"{8 * (1 + len(fines))}bit")
        shift = 8 * (int(res[:-3]) // 8 - 1) if res[:-3].isdigit() else 0
        raw = ([dict(ch["capability"], dmxRange=[0, (256 << shift) - 1])] if "capability" in ch
               else ch.get("capabilities") or [])
        caps = []
        for c in raw:
            lo, hi = (int(v) >> shift for v in c.get("dmxRange", [0, (256 << shift) - 1]))
            text = " ".join(str(c.get(k, "")) for k in ("comment", "effectName", "shutterEffect",
                                                       "speed", "speedStart") if c.get(k))
            if "angle" in c or "angleStart" in c:
                text += " angle"
            if c.get("soundControlled"):
                text += " sound"
            start = c.get("dmxRange", [0])[0]
            if lo < hi and int(start) % (1 << shift) == 0 and any(
                    str(c.get(k, "")).lower() in ("off", "stop", "0", "0%")
                    for k in ("parameterStart", "speedStart")):
                caps.append(RawCap(lo, lo, text + " (its start: off)", c.get("type", "")))
                lo += 1                 # the range's first value is off / stopped
            caps.append(RawCap(lo, hi, text, c.get("type", "")))
        chans[name] = RawChannel(name, tuple(caps))
        for alias in fines:
            chans[alias] = RawChannel(alias, ())
    switch: dict[str, str] = {}
    for ch in (data.get("availableChannels") or {}).values():
        for c in ch.get("capabilities") or []:
            for alias, target in (c.get("switchChannels") or {}).items():
                switch.setdefault(alias, target)
    templates = data.get("templateChannels") or {}
    modes: dict[str, list[RawChannel | None]] = {}
    for i, m in enumerate(data.get("modes") or []):
        name = str(m.get("shortName") or m.get("name") or f"mode{i + 1}")
        out: list[RawChannel | None] = []
        for c in m.get("channels", []):
            if isinstance(c, dict):            # a matrix insert block: template channels
                n = _pixel_keys(data.get("matrix") or {}, c.get("repeatFor"))
                temps = [str(t) for t in c.get("templateChannels") or []]
                for t in temps * n if c.get("channelOrder") != "perChannel" else \
                        [t for t in temps for _ in range(n)]:
                    tch = templates.get(t, {})
                    out.append(_ofl_channel(t, tch) if tch else None)
            else:
                out.append(chans.get(switch.get(c, c)) if isinstance(c, str) else None)
        modes[name] = out
    return modes


def _pixel_keys(matrix: dict, repeat: object) -> int:
    """How many pixels (or groups) an OFL insert block repeats over."""
    if isinstance(repeat, list):
        return len(repeat)
    if repeat == "eachPixelGroup":
        return len(matrix.get("pixelGroups") or {})
    if "pixelKeys" in matrix:
        return sum(k is not None for plane in matrix["pixelKeys"] for row in plane for k in row)
    n = 1
    for c in matrix.get("pixelCount") or [1]:
        n *= int(c)
    return n


def _ofl_channel(name: str, ch: dict) -> RawChannel:
    raw = ([dict(ch["capability"], dmxRange=[0, 255])] if "capability" in ch
           else ch.get("capabilities") or [])
    caps = [RawCap(int(c.get("dmxRange", [0, 255])[0]), int(c.get("dmxRange", [0, 255])[1]),
                   " ".join(str(c.get(k, "")) for k in ("comment", "effectName", "shutterEffect")
                            if c.get(k)), c.get("type", "")) for c in raw]
    return RawChannel(name, tuple(caps))


def read_raw(path: Path) -> dict[str, list[RawChannel | None]]:
    return read_qxf_raw(path) if path.suffix.lower() == ".qxf" else read_ofl_raw(path)


def written_values(ch) -> list[int]:
    """Every value the patch can write to a profile channel (see the module docstring)."""
    if ch.attr == "hold":
        return [ch.value]
    dark = getattr(ch, "dark", 0)
    if ch.attr == "wheel":
        return sorted({ch.value, *(v for v, _ in ch.slots)})
    if ch.attr == "strobe":
        return sorted({ch.min, dark})
    if ch.attr in ("pan_fine", "tilt_fine"):
        return []
    vals = set(range(ch.min, ch.max + 1))
    if ch.attr in ("pan", "tilt"):
        return sorted(vals)
    return sorted(vals | {dark})


def judge(profile, source: Path) -> list[str]:
    """Every bad value of every mode of `profile` against the fixture file `source`. A held
    value the profile marks with a warning (the import said the file gives no off value)
    ends in " [warned]"."""
    raw = read_raw(source)
    smodes = dict(getattr(profile, "source_modes", ()) or ())
    bad: list[str] = []
    for mode in profile.modes:
        sname = smodes.get(mode.name, mode.name)
        src = raw.get(sname)
        if src is None and re.search(r" \(\d+\)$", sname):
            src = raw.get(re.sub(r" \(\d+\)$", "", sname))
        if src is None or len(src) != len(mode.channels):
            bad.append(f"{mode.name}: no mode of that size in the file")
            continue
        for j, (ch, rc) in enumerate(zip(mode.channels, src, strict=True)):
            if rc is None or (ch.attr == "hold" and ch.value == 0 and FINE.search(rc.name)):
                continue                   # a fine channel at 0 does nothing on its own
            # a colour wheel sits at static slots: judged as a held channel at each of them
            attr = "hold" if ch.attr == "wheel" else ch.attr
            why = _bad_values(attr, rc, written_values(ch))
            if why:
                warned = " [warned]" if getattr(ch, "warn", "") else ""
                bad.append(f"{mode.name} ch{j + 1} {rc.name!r} {ch.attr} {why}{warned}")
    return bad


_NOT_PLAIN_NAME = re.compile(r"macro|auto|continu|rotat|speed|effect|program", re.IGNORECASE)


def _bad_values(attr: str, rc: RawChannel, values: list[int]) -> str:
    """'V: why' for the first bad value of `values` on channel `rc`, else ''. Each capability
    the values touch is judged once."""
    if not values:
        return ""
    if not rc.caps:
        if attr != "hold" and _NOT_PLAIN_NAME.search(rc.name):
            return f"{values[0]}: the channel's name says it is not a plain position/intensity"
        return ""
    first: dict[RawCap | None, int] = {}
    for v in values:
        first.setdefault(rc.at(v), v)
    for c, v in first.items():
        if c is None:
            if attr != "hold" and v != 0:
                return f"{v}: undefined in the file"
            continue
        why = _bad_cap(attr, c, v)
        if why:
            return f"{v}: {why}"
    return ""


def _bad_cap(attr: str, c: RawCap, value: int | None = None) -> str:
    if NEVER.search(c.text) and not (value == c.lo and STARTS_AT_REST.search(c.text)):
        return repr(c.text)          # no channel ever sends a reset or a lamp off
    if attr == "hold" and c.hold_ok(value):
        return ""
    if c.forbidden():
        if attr == "hold" and PARAMETER.search(c.text) and not SWITCHES_ON.search(c.text) \
                and not c.preset.startswith(FORBID_PRESETS):
            return ""
        return repr(c.text or c.preset)
    if attr in ("pan", "tilt") and NOT_A_POSITION.search(c.text) and not ALLOW.search(c.text):
        return f"{c.text!r} is not a position"
    return ""
