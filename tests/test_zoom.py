"""Zoom, the scene's held attribute (`scene.LAYOUT`): imported from QLC+, OFL and GDTF fixture
files, held at a configured value or driven by the mapper within limits, and the safety stage
still holds (flashes, blackout) with it in the scene."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pi_app.errors import ConfigError
from pi_app.fixtures.importing import import_file

DATA = Path(__file__).parent / "data" / "fixtures"
PHYSICAL = """  <Physical>
   <Bulb Type="LED" Lumens="0" ColourTemperature="0"/>
   <Dimensions Weight="3" Width="250" Height="250" Depth="250"/>
   <Lens Name="Other" DegreesMin="8" DegreesMax="40"/>
   <Focus Type="Head" PanMax="540" TiltMax="270"/>
   <Technical PowerConsumption="30" DmxConnector="3-pin"/>
  </Physical>"""
# A moving head as QLC+ writes one: zoom by its preset (QLC+ 4.12) and, in the second mode,
# as a "Beam" group channel named "Zoom" with one continuous range (older files).
QXF = f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE FixtureDefinition>
<FixtureDefinition xmlns="http://www.qlcplus.org/FixtureDefinition">
 <Manufacturer>Test</Manufacturer>
 <Model>Zoom Head</Model>
 <Type>Moving Head</Type>
 <Channel Name="Pan" Preset="PositionPan"/>
 <Channel Name="Tilt" Preset="PositionTilt"/>
 <Channel Name="Dimmer" Preset="IntensityMasterDimmer"/>
 <Channel Name="Red" Preset="IntensityRed"/>
 <Channel Name="Green" Preset="IntensityGreen"/>
 <Channel Name="Blue" Preset="IntensityBlue"/>
 <Channel Name="Zoom" Preset="BeamZoomSmallBig"/>
 <Channel Name="Zoom wide">
  <Group Byte="0">Beam</Group>
  <Capability Min="0" Max="9">No function</Capability>
  <Capability Min="10" Max="250">Zoom narrow to wide</Capability>
  <Capability Min="251" Max="255">Zoom auto</Capability>
 </Channel>
 <Mode Name="7ch">
{PHYSICAL}
  <Channel Number="0">Pan</Channel>
  <Channel Number="1">Tilt</Channel>
  <Channel Number="2">Dimmer</Channel>
  <Channel Number="3">Red</Channel>
  <Channel Number="4">Green</Channel>
  <Channel Number="5">Blue</Channel>
  <Channel Number="6">Zoom</Channel>
 </Mode>
 <Mode Name="beam">
{PHYSICAL}
  <Channel Number="0">Dimmer</Channel>
  <Channel Number="1">Red</Channel>
  <Channel Number="2">Green</Channel>
  <Channel Number="3">Blue</Channel>
  <Channel Number="4">Zoom wide</Channel>
 </Mode>
</FixtureDefinition>
"""
# An OFL wash light whose zoom channel is a "Zoom" capability from 8 to 40 degrees.
OFL = {
    "$schema": "https://raw.githubusercontent.com/OpenLightingProject/open-fixture-library/"
               "master/schemas/fixture.json",
    "name": "Zoom Wash", "categories": ["Color Changer"],
    "meta": {"authors": ["test"], "createDate": "2026-01-01", "lastModifyDate": "2026-01-01"},
    "availableChannels": {
        "Dimmer": {"capability": {"type": "Intensity"}},
        "Red": {"capability": {"type": "ColorIntensity", "color": "Red"}},
        "Green": {"capability": {"type": "ColorIntensity", "color": "Green"}},
        "Blue": {"capability": {"type": "ColorIntensity", "color": "Blue"}},
        "Zoom": {"capabilities": [
            {"dmxRange": [0, 4], "type": "NoFunction"},
            {"dmxRange": [5, 255], "type": "Zoom", "angleStart": "8deg", "angleEnd": "40deg"}]},
    },
    "modes": [{"name": "5ch", "channels": ["Dimmer", "Red", "Green", "Blue", "Zoom"]}],
}


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "latentdmx" / "fixtures"


def _files(tmp_path: Path) -> tuple[Path, Path]:
    qxf = tmp_path / "Test-Zoom-Head.qxf"
    qxf.write_text(QXF, encoding="utf-8")
    ofl = tmp_path / "test" / "zoom-wash.json"
    ofl.parent.mkdir()
    ofl.write_text(json.dumps(OFL), encoding="utf-8")
    return qxf, ofl


def _attrs(mode) -> list[tuple[str, int, int]]:
    return [(c.attr, c.min, c.max) for c in mode.channels if c.attr != "hold"]


def test_qxf_and_ofl_zoom_import_as_the_scenes_zoom(tmp_path):
    qxf, ofl = _files(tmp_path)
    prof, _ = import_file(qxf)
    assert ("zoom", 0, 255) in _attrs(prof.mode("7ch"))           # preset BeamZoomSmallBig
    assert ("zoom", 10, 250) in _attrs(prof.mode("beam"))         # Beam group: its plain range
    prof, _ = import_file(ofl)
    assert ("zoom", 5, 255) in _attrs(prof.mode("5ch"))           # OFL "Zoom" capability
    # real files: an OFL wash and (when QLC+ is installed) a QLC+ bar
    prof, _ = import_file(DATA / "ofl-corpus" / "lightmaxx" / "vega-zoom-wash.json")
    assert any(c.attr == "zoom" for c in prof.modes[0].channels)


def test_gdtf_zoom_attribute_is_the_scenes_zoom():
    from pi_app.fixtures import gdtf

    assert gdtf._role("Zoom") == ("zoom", "")
    assert gdtf._role("ZoomModeSpot") == ("other", "")       # a mode switch: held
    assert gdtf._base_kind("Zoom") == "position"


def _rig(user_dir: Path, tmp_path: Path, held: str) -> str:
    from pi_app.cli import main

    qxf, ofl = _files(tmp_path)
    for f in (qxf, ofl):
        res = CliRunner().invoke(main, ["fixtures", "import", str(f)])
        assert res.exit_code == 0, res.output
    keys = sorted(p.stem for p in user_dir.glob("*.json"))
    head = next(k for k in keys if "head" in k)
    wash = next(k for k in keys if "wash" in k)
    return f"""fps = 40
[safety]
fade_in_s = 0
[[fixtures]]
name = "head"
profile = "{head}"
mode = "7ch"
address = 1
position = [0.3, 0.5]
{held}
[[fixtures]]
name = "wash"
profile = "{wash}"
mode = "5ch"
address = 20
position = [0.7, 0.5]
held = {{ zoom = [0.2, 0.6] }}
[[fixtures]]
name = "par"
profile = "lumeri-wash-7-10"
mode = "9ch"
address = 40
"""


def _play(text: str, seconds: float) -> tuple[np.ndarray, np.ndarray, object]:
    from pi_app.config import parse_config
    from pi_app.pipeline import Pipeline
    from pi_app.runtime import load_model

    cfg = parse_config(text, "rig.toml")
    pipe = Pipeline(cfg, load_model(cfg.model), seed=3)
    n = int(seconds * cfg.fps)
    t = np.arange(n) / cfg.fps
    frames = np.stack([pipe.frames(float(ti))[1].copy() for ti in t])   # (its own buffer)
    return frames, t, (cfg, pipe)


def test_zoom_held_and_driven_within_limits_and_safety_still_holds(user_dir, tmp_path):
    from pi_app.safety_check import check_frames

    frames, t, (cfg, pipe) = _play(_rig(user_dir, tmp_path, "held = { zoom = 0.25 }"), 30.0)
    head_zoom, wash_zoom = frames[:, 6], frames[:, 23]
    assert np.all(head_zoom == round(0.25 * 255))                 # held where configured
    lo, hi = 5 + 0.2 * 250, 5 + 0.6 * 250                         # the channel's 5..255
    assert wash_zoom.min() >= np.floor(lo) and wash_zoom.max() <= np.ceil(hi)
    assert len(np.unique(wash_zoom)) > 10                          # driven, not held
    light = frames[:, 19:23].astype(int)               # the wash: dimmer, red, green, blue
    assert np.corrcoef(wash_zoom, light[:, 0])[0, 1] > 0.5        # wider as it brightens
    # the safety stage still holds: no flash beyond WCAG 2.3.1 over the whole rig
    rep = check_frames(frames[:, None, :], (1,), t, cfg)
    assert rep.ok, rep.violations
    # a blackout: light to 0, zoom where it was
    dark = pipe.blackout_frames()[1]
    assert not dark[19:23].any() and not dark[2:6].any()
    assert dark[6] == head_zoom[-1] and dark[23] == wash_zoom[-1]


def test_zoom_unset_rests_at_the_middle(user_dir, tmp_path):
    frames, _, _ = _play(_rig(user_dir, tmp_path, ""), 2.0)
    assert np.all(frames[:, 6] == 128)                             # Attr("zoom").rest = 0.5


@pytest.mark.parametrize("held, says", [
    ("held = { focus = 0.5 }", "held.focus"),
    ("held = { zoom = 1.5 }", "held.zoom"),
    ("held = { zoom = [0.8, 0.2] }", "held.zoom"),
    ("held = { zoom = [0.2] }", "held.zoom"),
    ('held = { zoom = "wide" }', "held.zoom"),
])
def test_bad_zoom_settings_are_one_line(user_dir, tmp_path, held, says):
    from pi_app.config import parse_config

    with pytest.raises(ConfigError) as e:
        parse_config(_rig(user_dir, tmp_path, held), "rig.toml")
    assert says in str(e.value) and "\n" not in str(e.value)


def test_zoom_on_a_fixture_without_it_is_refused(user_dir, tmp_path):
    from pi_app.config import parse_config

    text = _rig(user_dir, tmp_path, "").replace('mode = "9ch"\n',
                                                'mode = "9ch"\nheld = { zoom = 0.5 }\n')
    with pytest.raises(ConfigError, match=r"fixtures\[3\] \('par'\)\.held\.zoom: .*no zoom"):
        parse_config(text, "rig.toml")
