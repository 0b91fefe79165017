"""RDM check of the patch (``latentdmx doctor --rdm``): which fixtures answer on the line, and
are they where the config says? Read-only: only RDM GETs are ever sent.

Two parts:

* `RdmReader` asks olad (OLA's Python client, `pi_app.outputs.ola.import_ola`) to run full RDM
  discovery on a universe and reads, from each responder (and each of its sub-devices),
  DEVICE_INFO (model, DMX footprint, personality, start address, sensor count), its labels
  (device label, model description, manufacturer), the descriptions of its personalities
  (DMX_PERSONALITY_DESCRIPTION: each mode's footprint and name) and what it measures
  (SENSOR_DEFINITION / SENSOR_VALUE, LAMP_HOURS, DEVICE_HOURS). A responder that NACKs a PID
  simply does not offer it. The client's loop is OLA's own `ClientWrapper`, driven in this
  thread only, each request bounded by a timeout (a silent olad ends the wait, never hangs it).
* `compare` (pure: plain data in, `Finding`s out) puts the config's fixtures next to the
  responders of the same universe: a fixture missing, at another address, in another mode
  (footprint / personality), footprints overlapping on the line, a device the config does not
  know — one line each, with the fix.

There is deliberately no SET here: changing a fixture's address or mode is done on its display
(or with a tool the user runs on purpose).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from ..errors import OutputError
from .doctor import Finding
from .ola import import_ola

# RDM parameter ids (ANSI E1.20).
DEVICE_INFO = 0x0060
DEVICE_MODEL_DESCRIPTION = 0x0080
MANUFACTURER_LABEL = 0x0081
DEVICE_LABEL = 0x0082
DMX_PERSONALITY_DESCRIPTION = 0x00E1
SENSOR_DEFINITION = 0x0200
SENSOR_VALUE = 0x0201
DEVICE_HOURS = 0x0400
LAMP_HOURS = 0x0401
NO_ADDRESS = 0xFFFF
NO_INFO = "(no DEVICE_INFO answer)"

# E1.20 table A-13 (units) and A-14 (prefixes), the ones a fixture reports.
_UNITS = {0: "", 1: " °C", 2: " V DC", 3: " V AC peak", 4: " V AC", 5: " A DC",
          6: " A AC peak", 7: " A AC", 8: " Hz", 9: " Ω", 10: " W", 11: " kg", 12: " m",
          21: " s", 22: "°", 24: " cd", 25: " lm", 26: " lx", 28: " bytes"}
_PREFIX_EXP = {0: 0, 1: -1, 2: -2, 3: -3, 4: -6, 5: -9, 6: -12, 7: -15, 8: -18, 9: -21,
               10: -24, 0x11: 1, 0x12: 2, 0x13: 3, 0x14: 6, 0x15: 9, 0x16: 12, 0x17: 15}


@dataclass(frozen=True)
class Responder:
    """One RDM responder (or one of its sub-devices) as it describes itself."""

    uid: str
    sub_device: int = 0
    manufacturer: str = ""
    model: str = ""                     # DEVICE_MODEL_DESCRIPTION, else "model 0x0005"
    label: str = ""                     # DEVICE_LABEL (what the user named it)
    footprint: int = 0
    personality: int = 0                # current, 1-based (0: none)
    personality_count: int = 0
    personalities: tuple[tuple[int, int, str], ...] = ()   # (number, footprint, description)
    address: int = 0                    # DMX start address, 0: none
    readings: tuple[str, ...] = ()      # "Fake Temperature 62 °C", "lamp hours 1200"

    @property
    def who(self) -> str:
        what = self.model or "an RDM device"
        name = f" {self.label!r}" if self.label and self.label != self.model else ""
        sub = f" sub-device {self.sub_device}" if self.sub_device else ""
        return f"{what}{name} (UID {self.uid}{sub})"

    def personality_text(self, number: int | None = None) -> str:
        number = self.personality if number is None else number
        desc = next((d for n, _, d in self.personalities if n == number), "")
        return f"personality {number}" + (f" {desc!r}" if desc else "")


@dataclass(frozen=True)
class Placed:
    """A fixture as the config patches it (on an OLA universe)."""

    name: str
    universe: int
    address: int
    footprint: int
    mode: str
    profile: str = ""


# -- reading the line -----------------------------------------------------------------------
class RdmReader:
    """Discovery and GETs through olad (see the module doc). Use as a context manager."""

    def __init__(self, host: str, port: int, *, timeout_s: float = 3.0,
                 discovery_timeout_s: float = 30.0) -> None:
        ola_client = import_ola()
        import ola.ClientWrapper as client_wrapper  # loaded by import_ola beside OlaClient

        self.ok_code = ola_client.OlaClient.RDM_COMPLETED_OK
        self.ack = ola_client.OlaClient.RDM_ACK
        self.timeout_s = timeout_s
        self.discovery_timeout_s = discovery_timeout_s
        self.server = f"{host}:{port}"
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            raise OutputError(f"cannot reach olad at {self.server} ({exc.strerror or exc})",
                              field="output.ola",
                              fix="start olad (sudo systemctl start olad) or check "
                                  "[output.ola] host and port") from None
        self._sock.settimeout(None)
        self._wrapper = client_wrapper.ClientWrapper(self._sock)
        self._client = self._wrapper.Client()

    def __enter__(self) -> RdmReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass

    def _wait(self, start, timeout_s: float):
        """Start a request (`start(callback)`), run the client's loop until its answer or the
        timeout; the answer's arguments, or None."""
        box: dict = {}

        def done(*args: object) -> None:
            if "answer" not in box:
                box["answer"] = args
                self._wrapper.Stop()

        def too_late() -> None:
            if "answer" not in box:
                box["answer"] = None
                self._wrapper.Stop()

        try:
            if start(done) is False:
                return None
            self._wrapper.AddEvent(int(timeout_s * 1000), too_late)
            self._wrapper.Run()
        except Exception:                       # noqa: BLE001 - OLA's client raises freely
            return None
        return box.get("answer")

    def discover(self, universe: int) -> list:
        """Full RDM discovery on an OLA universe: its responders' UIDs (OLA UID objects)."""
        ans = self._wait(lambda cb: self._client.RunRDMDiscovery(universe, True, cb),
                         self.discovery_timeout_s)
        if ans is None:
            raise OutputError(f"olad at {self.server} did not finish RDM discovery on "
                              f"universe {universe} in {self.discovery_timeout_s:g} s",
                              field="output.ola", fix="check olad is running (latentdmx "
                                                      "doctor --output ola)")
        status, uids = ans
        if not status.Succeeded() or uids is None:
            raise OutputError(f"RDM discovery on OLA universe {universe} failed "
                              f"({status.message or 'no RDM-capable port'})",
                              field="output.ola",
                              fix="patch the universe to an output port that speaks RDM (an "
                                  "RDM-capable USB interface or OLA's UART plugin)")
        return list(uids)

    def get(self, universe: int, uid, pid: int, data: bytes = b"",
            sub_device: int = 0) -> bytes | None:
        """One RDM GET: the parameter data of an ACK, else None (NACK, timeout, no answer)."""
        ans = self._wait(lambda cb: self._client.RDMGet(universe, uid, sub_device, pid, cb,
                                                        data), self.timeout_s)
        if not ans:
            return None
        r = ans[0]
        if not r.status.Succeeded() or r.response_code != self.ok_code \
                or r.response_type != self.ack:
            return None
        return bytes(r.data)

    def responders(self, universe: int) -> list[Responder]:
        """Every responder on the universe and each of its sub-devices, as it describes
        itself (see the module doc)."""
        out: list[Responder] = []
        for uid in self.discover(universe):
            root = self._describe(universe, uid, 0)
            if root is None:
                out.append(Responder(uid=str(uid), model=NO_INFO))
                continue
            out.append(root[0])
            for sub in range(1, min(root[1], 512) + 1):
                found = self._describe(universe, uid, sub)
                if found is not None:
                    out.append(found[0])
        return out

    def _text(self, universe: int, uid, pid: int, sub: int) -> str:
        raw = self.get(universe, uid, pid, sub_device=sub)
        return "" if raw is None else raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()

    def _describe(self, universe: int, uid, sub: int) -> tuple[Responder, int] | None:
        raw = self.get(universe, uid, DEVICE_INFO, sub_device=sub)
        if raw is None or len(raw) < 19:
            return None
        (_proto, model_id, _cat, _sw, footprint, pers, pers_n, address, subs,
         sensors) = struct.unpack(">HHHIHBBHHB", raw[:19])
        personalities = []
        for n in range(1, pers_n + 1):
            d = self.get(universe, uid, DMX_PERSONALITY_DESCRIPTION, bytes([n]), sub)
            if d is not None and len(d) >= 3:
                personalities.append((d[0], struct.unpack(">H", d[1:3])[0],
                                      d[3:].split(b"\0", 1)[0].decode("ascii", "replace")))
        readings = [self._sensor(universe, uid, n, sub) for n in range(sensors)]
        for pid, what in ((LAMP_HOURS, "lamp hours"), (DEVICE_HOURS, "device hours")):
            h = self.get(universe, uid, pid, sub_device=sub)
            if h is not None and len(h) >= 4:
                readings.append(f"{what} {struct.unpack('>I', h[:4])[0]}")
        resp = Responder(
            uid=str(uid), sub_device=sub,
            manufacturer=self._text(universe, uid, MANUFACTURER_LABEL, sub),
            model=self._text(universe, uid, DEVICE_MODEL_DESCRIPTION, sub)
            or f"model 0x{model_id:04x}",
            label=self._text(universe, uid, DEVICE_LABEL, sub), footprint=footprint,
            personality=pers, personality_count=pers_n, personalities=tuple(personalities),
            address=0 if address in (0, NO_ADDRESS) or footprint == 0 else address,
            readings=tuple(r for r in readings if r))
        return resp, (subs if sub == 0 else 0)

    def _sensor(self, universe: int, uid, n: int, sub: int) -> str:
        d = self.get(universe, uid, SENSOR_DEFINITION, bytes([n]), sub)
        v = self.get(universe, uid, SENSOR_VALUE, bytes([n]), sub)
        if d is None or v is None or len(d) < 13 or len(v) < 3:
            return ""
        unit, prefix = d[2], d[3]
        name = d[13:].split(b"\0", 1)[0].decode("ascii", "replace") or f"sensor {n}"
        value = struct.unpack(">h", v[1:3])[0] * 10.0 ** _PREFIX_EXP.get(prefix, 0)
        return f"{name} {value:g}{_UNITS.get(unit, '')}"


# -- comparing with the config --------------------------------------------------------------
def _span(address: int, footprint: int) -> str:
    return f"{address}-{address + footprint - 1}" if footprint > 1 else f"{address}"


def _mode_fix(f: Placed, r: Responder) -> str:
    want = next((p for p in r.personalities if p[1] == f.footprint), None)
    on_fixture = (f"set it to {r.personality_text(want[0])} ({f.footprint} channels) on its "
                  "display" if want else f"set it to the mode with {f.footprint} channels on "
                                         "its display")
    return (f"{on_fixture}, or use the profile's mode with {r.footprint} channels for "
            f"{f.name} in the config")


def compare(universe: int, placed: list[Placed], found: list[Responder]) -> list[Finding]:
    """The config's fixtures on OLA `universe` against the RDM responders found there."""
    if not found and placed:
        return [Finding(False, f"universe {universe}: no RDM device answered discovery, so "
                               f"none of its {len(placed)} fixture"
                               f"{'s' * (len(placed) != 1)} can be checked",
                        "check the universe's interface speaks RDM (an RDM-capable USB "
                        "interface, or OLA's UART plugin on a Pi) and the fixtures do (RDM in "
                        "their menu), are powered and cabled")]
    out: list[Finding] = []
    lines = _on_the_line(found)
    left = list(lines)
    unplaced: list[Placed] = []
    for f in sorted(placed, key=lambda f: f.address):
        here = [r for r in left if r.address == f.address]
        rack = _rack_run(f, here[0], left) if len(here) == 1 and here[0].sub_device else []
        if rack:                       # a dimmer rack's sub-devices, one channel each
            for r in rack:
                left.remove(r)
            continue
        if not here:
            unplaced.append(f)
            continue
        r = min(here, key=lambda r: (r.footprint != f.footprint, r.label != f.name))
        left.remove(r)
        if r.footprint != f.footprint:
            out.append(Finding(False, f"{f.name}: {r.who} at address {f.address} on universe "
                                      f"{universe} uses {r.footprint} channels "
                                      f"({r.personality_text()}); the config's mode "
                                      f"{f.mode!r} uses {f.footprint}", _mode_fix(f, r)))
    for f in unplaced:
        partner, sure = _partner(f, left)
        if partner is None:
            out.append(Finding(False, f"{f.name}: no RDM device answers at address {f.address} "
                                      f"on universe {universe}",
                               f"check {f.name} is powered, cabled and set to address "
                               f"{f.address} (if it does not speak RDM, this check cannot see "
                               "it)"))
            continue
        r = partner
        left.remove(r)
        mode = "" if r.footprint == f.footprint else (
            f"; it also uses {r.footprint} channels ({r.personality_text()}), the config's "
            f"mode {f.mode!r} {f.footprint}")
        fix = (f"set {f.name} to address {f.address} on its display, or change its address in "
               f"the config to {r.address}" + ("" if not mode else f"; and {_mode_fix(f, r)}"))
        if sure:
            out.append(Finding(False, f"{f.name}: {r.who} answers at address {r.address} on "
                                      f"universe {universe}, the config says {f.address}{mode}",
                               fix))
        else:
            out.append(Finding(False, f"{f.name}: no RDM device answers at address {f.address} "
                                      f"on universe {universe}; {r.who} with the same footprint "
                                      f"answers at {_span(r.address, r.footprint)}, which the "
                                      "config does not know",
                               f"if that is {f.name}: {fix}; else check {f.name} is powered, "
                               "cabled and addressed, and add the other device to the config"))
    for r in left:
        out.append(Finding(False, f"universe {universe}: {r.who} at address "
                                  f"{_span(r.address, r.footprint)} is not in the config",
                           "add it to the config as a fixture (or unplug it, or give it an "
                           "address no fixture of the config uses)"))
    out += _overlaps(universe, lines)
    for r in found:
        if r.model == NO_INFO:
            out.append(Finding(False, f"universe {universe}: {r.who} answers discovery but not "
                                      "DEVICE_INFO",
                               "check the cable and the line's terminator (RDM needs a "
                               "terminated line), then run the check again"))
        elif r.footprint == 0 and not r.sub_device:
            subs = any(s.uid == r.uid and s.sub_device for s in found)
            if not subs:
                out.append(Finding(True, f"universe {universe}: {r.who} takes no DMX channels"))
    if not any(not x.ok for x in out):
        out.insert(0, Finding(True, f"universe {universe}: {len(lines)} RDM device"
                                    f"{'s' * (len(lines) != 1)} with DMX channels, each where "
                                    "the config puts it"))
    return out


def _on_the_line(found: list[Responder]) -> list[Responder]:
    """The responders that take DMX channels: roots with a footprint, and the sub-devices of
    roots that have none (a dimmer rack whose channels are its sub-devices)."""
    roots = {r.uid: r for r in found if not r.sub_device}
    return [r for r in found if r.footprint > 0 and r.address > 0 and not (
        r.sub_device and r.uid in roots and roots[r.uid].footprint > 0)]


def _rack_run(f: Placed, first: Responder, left: list[Responder]) -> list[Responder]:
    """Sub-devices of one responder that together make fixture `f`: contiguous from its
    address, their footprints adding up to its footprint. [] when they do not."""
    run, addr = [], f.address
    subs = {r.address: r for r in left if r.uid == first.uid and r.sub_device}
    while addr < f.address + f.footprint and addr in subs:
        run.append(subs[addr])
        addr += subs[addr].footprint
    return run if addr == f.address + f.footprint and len(run) > 1 else []


def _partner(f: Placed, left: list[Responder]) -> tuple[Responder | None, bool]:
    """The unclaimed responder that is fixture `f` set to another address: the one labelled
    with its name (sure), else the only one with its footprint (a guess, said as one)."""
    named = [r for r in left if r.label and r.label == f.name]
    if named:
        return named[0], True
    same = [r for r in left if r.footprint == f.footprint and not r.label]
    return (same[0], False) if len(same) == 1 else (None, False)


def _overlaps(universe: int, lines: list[Responder]) -> list[Finding]:
    """One line per run of devices whose footprints overlap on the line."""
    out: list[Finding] = []
    group: list[Responder] = []
    end = 0
    for r in [*sorted(lines, key=lambda r: (r.address, r.footprint)), None]:
        if r is not None and group and r.address <= end:
            group.append(r)
            end = max(end, r.address + r.footprint - 1)
            continue
        if len(group) > 1:
            out.append(Finding(False, f"universe {universe}: footprints overlap: " + ", ".join(
                f"{g.who} at {_span(g.address, g.footprint)}" for g in group),
                               "give each its own addresses on its display (and in the "
                               "config)"))
        if r is not None:
            group, end = [r], r.address + r.footprint - 1
    return out


def readings(universe: int, found: list[Responder]) -> list[Finding]:
    """What the responders measure (temperatures, lamp hours...), one line each device."""
    return [Finding(True, f"universe {universe}: {r.label or r.model} reports "
                          + ", ".join(r.readings)) for r in found if r.readings]
