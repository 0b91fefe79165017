"""GDTF fixture files: real manufacturers' files (tests/data/gdtf/, see its README)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pi_app.cli import main
from pi_app.errors import FixtureError
from pi_app.fixtures.capability import cap_at, drive_allowed, hold_allowed
from pi_app.fixtures.importing import import_file, read_source

GDTF = Path(__file__).parent / "data" / "gdtf"
VIVA = GDTF / "Robe_Lighting@Robin_Viva_CMY@13042021.gdtf"
ACME = GDTF / "ACME@ACME_AE-610_BEAM@ACME_AE-610_BEAM.gdtf"
PAR = GDTF / "BlenderDMX@LED_PAR_64_RGBW.gdtf"
MMX = GDTF / "Robe@Robin MMX Spot@r3046.gdtf"
BESKYD = GDTF / "BlenderDMX@BeskydBeam@version10.gdtf"


@pytest.fixture(autouse=True)
def user_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "latentdmx" / "fixtures"


def layout(mode) -> list[str]:
    return [c.attr if c.attr != "hold" else f"hold={c.value}" for c in mode.channels]


def test_viva_cmy_every_mode_pan_tilt_degrees_16_bit_and_cmy():
    prof, _ = import_file(VIVA)
    assert prof.mode_names == ("Mode 1 - Standard 16 bit", "Mode 2 - Reduced 8 bit")
    assert (prof.pan_deg, prof.tilt_deg) == (540.0, 270.0)      # -270..270, 135..-135
    m = prof.mode("Mode 2 - Reduced 8 bit")
    assert m is not None and m.footprint == 26
    got = layout(m)
    assert got[:4] == ["pan", "pan_fine", "tilt", "tilt_fine"]
    assert got[7:10] == ["cyan", "magenta", "yellow"]
    assert got[-2:] == ["strobe", "dimmer"]
    assert m.channels[-2].min == m.channels[-2].max == 32     # shutter open, never swept
    # Nothing else is driven: every other channel is held.
    driven = {"pan", "pan_fine", "tilt", "tilt_fine", "cyan", "magenta", "yellow", "strobe",
              "dimmer", "zoom"}                  # zoom: the scene's held attribute
    assert "zoom" in got
    assert all(c.attr == "hold" for c in m.channels if c.attr not in driven)
    m1 = prof.mode("Mode 1 - Standard 16 bit")
    assert m1 is not None and m1.footprint == 32
    assert m1.driven == ("pan", "tilt", "dimmer", "red", "green", "blue",    # red by cyan ...
                         "zoom")


@pytest.mark.slow
def test_every_held_and_driven_value_is_allowed_by_the_file():
    """The importer's promise, judged on the file's own capabilities (every mode, every file
    that imports): driven channels only inside position/intensity ranges, held ones at a
    value the file calls off, open, no function or a static setting."""
    for f in (VIVA, ACME, PAR, BESKYD, GDTF / "SGM_Light@G-7_Spot@Rev_A.gdtf"):
        prof, _ = import_file(f)
        src = read_source(f)
        for mode in prof.modes:
            chans = src.mode(prof.source_mode(mode.name))
            assert chans is not None and len(chans) == mode.footprint
            for ch, sc in zip(mode.channels, chans, strict=True):
                if sc is None or sc.role == "fine" or not sc.caps:
                    continue
                if ch.attr == "hold":
                    assert hold_allowed(sc.caps, ch.value), (f.name, sc.name, ch.value)
                elif ch.attr == "wheel":          # a colour wheel: held at each static slot
                    for v in (ch.value, *(s for s, _ in ch.slots)):
                        assert hold_allowed(sc.caps, v), (f.name, sc.name, v)
                elif ch.attr in ("pan", "tilt", "zoom"):     # zoom: in its continuous range
                    assert all(drive_allowed(ch.attr, sc.caps, v)
                               for v in range(ch.min, ch.max + 1)), (f.name, sc.name)
                elif ch.attr not in ("pan_fine", "tilt_fine"):
                    assert all(drive_allowed("light", sc.caps, v)
                               for v in range(ch.min, ch.max + 1)), (f.name, sc.name)


def test_discharge_lamp_held_on_never_off_or_reset():
    prof, _ = import_file(ACME)
    m = prof.modes[0]
    lamp = next(c for c in m.channels if c.label.startswith("LampControl"))
    assert lamp.attr == "hold"
    src = read_source(ACME).modes[0][1]
    caps = next(c for c in src if c is not None and c.name == "LampControl").caps
    said = cap_at(caps, lamp.value)
    assert said is not None and "lamp on" in said.text.lower()
    assert "off" not in said.text.lower() and "reset" not in said.text.lower()


def test_placeholder_gdtf_refused_in_one_line():
    with pytest.raises(FixtureError) as e:
        import_file(MMX)
    msg = str(e.value)
    assert "placeholder" in msg and "Dimmer1" in msg and "--gdtf-dir" in msg
    assert "\n" not in msg
    res = CliRunner().invoke(main, ["fixtures", "import", str(MMX)])
    assert res.exit_code == 2 and "placeholder" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


def test_fixtures_import_gdtf_keeps_the_file_and_safety_check_reads_it(user_dir):
    res = CliRunner().invoke(main, ["fixtures", "import", str(VIVA)])
    assert res.exit_code == 0, res.output
    assert (user_dir / "robe-lighting-robin-viva-cmy.json").is_file()
    kept = user_dir / "sources" / "robe-lighting-robin-viva-cmy.gdtf"
    assert kept.read_bytes() == VIVA.read_bytes()
    assert read_source(kept).name == "Robin Viva CMY"


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    return buf.getvalue()


@pytest.mark.parametrize("raw", [
    VIVA.read_bytes()[:2000],                                    # truncated
    _zip({"other.txt": b"x"}),                                   # no description.xml
    _zip({"description.xml": b"<GDTF><FixtureType"}),            # broken XML
    _zip({"description.xml": b"<GDTF/>"}),                       # no FixtureType
    _zip({"description.xml": b'<GDTF><FixtureType Name="x" Manufacturer="y"><DMXModes/>'
                             b"</FixtureType></GDTF>"}),         # no modes
])
def test_broken_gdtf_is_one_line(tmp_path, raw):
    f = tmp_path / "broken.gdtf"
    f.write_bytes(raw)
    res = CliRunner().invoke(main, ["fixtures", "import", str(f)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert "broken.gdtf" in res.output


@pytest.mark.slow
def test_mutated_gdtf_never_crashes(tmp_path):
    """Random damage to a real file's description.xml: a profile or one FixtureError."""
    xml = zipfile.ZipFile(VIVA).read("description.xml")
    rng = np.random.default_rng(3)
    f = tmp_path / "m.gdtf"
    for _ in range(60):
        b = bytearray(xml)
        for _ in range(int(rng.integers(1, 6))):
            b[int(rng.integers(0, len(b)))] = int(rng.choice(list(b'0123456789"<>/ =a')))
        f.write_bytes(_zip({"description.xml": bytes(b)}))
        try:
            import_file(f)
        except FixtureError as exc:
            assert "\n" not in str(exc)


def _gdtf(channels: str, name: str = "Test Head") -> bytes:
    """A minimal GDTF by hand (DIN SPEC 15800): one mode with the given DMX channels."""
    xml = ('<?xml version="1.0" encoding="UTF-8"?><GDTF DataVersion="1.2">'
           f'<FixtureType Name="{name}" ShortName="t" LongName="{name}" Manufacturer="Maker" '
           'FixtureTypeID="00000000-0000-4000-8000-000000000001" RefFT="" Description="">'
           '<AttributeDefinitions/><Wheels/><PhysicalDescriptions/><Models/>'
           '<Geometries><Geometry Name="Base"/></Geometries>'
           '<DMXModes><DMXMode Name="Mode A" Geometry="Base"><DMXChannels>'
           f"{channels}</DMXChannels><Relations/><FTMacros/></DMXMode></DMXModes>"
           "<Revisions/><FTPresets/><Protocols/></FixtureType></GDTF>")
    return _zip({"description.xml": xml.encode()})


def _ch(offset: str, attr: str, functions: str = "", phys: str = "") -> str:
    cf = functions or (f'<ChannelFunction Name="{attr}" Attribute="{attr}" DMXFrom="0/1" '
                       f'{phys}/>')
    return (f'<DMXChannel DMXBreak="1" Offset="{offset}" Geometry="Base">'
            f'<LogicalChannel Attribute="{attr}">{cf}</LogicalChannel></DMXChannel>')


def test_24_bit_pan_rgba_and_rotation_held_at_stop(tmp_path):
    rot = ('<ChannelFunction Name="Stop" Attribute="PanRotate" DMXFrom="0/1">'
           '<ChannelSet Name="Stop" DMXFrom="0/1"/></ChannelFunction>'
           '<ChannelFunction Name="Rotate" Attribute="PanRotate" DMXFrom="10/1"/>')
    chans = (_ch("1,2,3", "Pan", phys='PhysicalFrom="-180" PhysicalTo="180"')
             + _ch("4", "PanRotate", rot) + _ch("5", "Dimmer") + _ch("6", "ColorAdd_R")
             + _ch("7", "ColorAdd_G") + _ch("8", "ColorAdd_B") + _ch("9", "ColorAdd_A")
             + _ch("10", "ColorAdd_UV") + _ch("11", "CTO"))
    f = tmp_path / "t.gdtf"
    f.write_bytes(_gdtf(chans))
    prof, _ = import_file(f)
    assert prof.pan_deg == 360.0
    assert layout(prof.modes[0]) == ["pan", "pan_fine", "hold=0", "hold=0", "dimmer", "red",
                                     "green", "blue", "hold=0", "hold=0", "hold=0"]


def test_a_real_dimmer_is_not_a_placeholder_but_numbered_dimmers_are(tmp_path):
    f = tmp_path / "d.gdtf"
    f.write_bytes(_gdtf(_ch("1", "Dimmer")))
    assert layout(import_file(f)[0].modes[0]) == ["intensity"]
    f.write_bytes(_gdtf("".join(_ch(str(i), f"Dimmer{i}") for i in range(1, 9))))
    with pytest.raises(FixtureError, match="placeholder"):
        import_file(f)


def test_continuous_rotation_held_where_it_does_not_rotate():
    """Beskyd Beam: PanRotate is "PanMode" at 0 (its initial function), then a signed speed
    -500..500 deg/s over 1..255. Held at 0; 128 (0 deg/s) would be the next best."""
    prof, _ = import_file(BESKYD)
    m = prof.modes[0]
    rot = [c for c in m.channels if c.label.startswith(("PanRotate", "TiltRotate"))]
    assert [(c.attr, c.value) for c in rot] == [("hold", 0), ("hold", 0)]
    assert m.driven[:2] == ("pan", "tilt")
    src = read_source(BESKYD).modes[0][1]
    caps = next(c for c in src if c is not None and c.name == "PanRotate").caps
    stop = cap_at(caps, 128)
    assert stop is not None and stop.kind == "none" and "stop" in stop.text
    assert all(c.kind == "danger" for c in caps if c.lo > 0 and c.lo != 128)


def test_cmy_without_dimmer_or_shutter_is_not_driven(tmp_path):
    """CMY flags only filter: with no dimmer and no shutter the head could never be dark."""
    f = tmp_path / "c.gdtf"
    f.write_bytes(_gdtf(_ch("1", "ColorSub_C") + _ch("2", "ColorSub_M") + _ch("3", "ColorSub_Y")))
    with pytest.raises(FixtureError, match="cannot darken"):
        import_file(f)
    f.write_bytes(_gdtf(_ch("1", "ColorSub_C") + _ch("2", "ColorSub_M") + _ch("3", "ColorSub_Y")
                        + _ch("4", "Dimmer")))
    assert layout(import_file(f)[0].modes[0]) == ["cyan", "magenta", "yellow", "dimmer"]


def test_dmx_values_of_any_byte_count_land_on_the_coarse_channel(tmp_path):
    """GDTF writes "v/n": n bytes whatever the channel's size; 32768/2 on an 8-bit channel is
    128 and 128/1 on a 16-bit one is 32768 (coarse 128)."""
    shutter = ('<ChannelFunction Name="Closed" Attribute="Shutter1" DMXFrom="0/1"/>'
               '<ChannelFunction Name="Open" Attribute="Shutter1" DMXFrom="32768/2"/>'
               '<ChannelFunction Name="Strobe" Attribute="Shutter1Strobe" DMXFrom="49152/2"/>')
    f = tmp_path / "s.gdtf"
    f.write_bytes(_gdtf(_ch("1", "Shutter1", shutter) + _ch("2", "Dimmer")))
    caps = read_source(f).modes[0][1][0].caps
    assert [(c.lo, c.hi, c.kind) for c in caps] == [(0, 127, "closed"), (128, 191, "open"),
                                                     (192, 255, "strobe")]
    m = import_file(f)[0].modes[0]
    assert (m.channels[0].attr, m.channels[0].min, m.channels[0].max) == ("strobe", 128, 128)
