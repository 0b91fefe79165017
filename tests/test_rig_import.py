"""`latentdmx rig import`: MVR rigs (real GDTF files) and QLC+ workspaces into configs that
check, play and stay safe."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pi_app.cli import main
from pi_app.config import load_config
from pi_app.decode import Rig as ViewRig
from pi_app.patch import Patch
from pi_app.scene import ATTRS
from pi_app.sim.record import read_show

sys.path.insert(0, str(Path(__file__).parent))
from flash_counter import count, read_show_file, rig_from_config

DATA = Path(__file__).parent / "data"
RIG_MVR = DATA / "mvr" / "rig.mvr"
GDTF = DATA / "gdtf"
QXF = DATA / "fixtures" / "qlcplus"
SAMPLE_QXW = Path("/usr/share/qlcplus/Sample.qxw")

_spec = importlib.util.spec_from_file_location("make_rig", DATA / "mvr" / "make_rig.py")
assert _spec is not None and _spec.loader is not None
make_rig = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_rig)


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    """Own profile, runtime and state folders for every test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    return tmp_path


def rig_import(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["rig", "import", *args])
    return res.exit_code, res.output


def tables(cfg_path: Path) -> dict[str, object]:
    return {f.name: f for f in load_config(cfg_path).fixtures}


# --- MVR --------------------------------------------------------------------------------

def test_mvr_every_fixture_at_its_mvr_address_and_place(env):
    out = env / "rig.toml"
    code, text = rig_import(str(RIG_MVR), "--out", str(out))
    assert code == 0, text
    cfg = tables(out)
    expected = {}
    for name, key, mode, fid, addr, *_ in make_rig.RIG + make_rig.PARS:
        if key in ("mmx", "jb"):
            continue
        slug = name.lower().replace(" ", "-") + f"-{fid}"
        expected[slug] = ((addr - 1) // 512 + 1, (addr - 1) % 512 + 1, mode)
    assert {n: (f.universe, f.address, f.mode) for n, f in cfg.items()} == expected
    # Left out, one line each, saying why.
    assert "left out: MMX Spot (fixture ID 301)" in text and "placeholder" in text
    assert "left out: P12 (fixture ID 401)" in text and "no safe value" in text
    # Hung spots invert tilt, standing beams do not; washes have no tilt at all.
    assert cfg["viva-sl-101"].invert_tilt and cfg["viva-sr-102"].invert_tilt
    assert not cfg["beam-l-201"].invert_tilt and not cfg["beam-r-202"].invert_tilt
    # Front view: stage left to right, height top to bottom.
    assert cfg["viva-sl-101"].position[0] < cfg["beam-l-201"].position[0] \
        < cfg["beam-r-202"].position[0] < cfg["viva-sr-102"].position[0]
    assert cfg["viva-sl-101"].position[1] < cfg["par-1-10"].position[1] \
        < cfg["beam-l-201"].position[1]
    xs = [cfg[f"par-{i}-{9 + i}"].position[0] for i in range(1, 5)]
    assert xs == sorted(xs) and len(set(xs)) == 4            # the truss's own placement
    written = out.read_text()
    assert "# Positions: front view" in written and "# left out: MMX Spot" in written
    assert "[safety]" in written            # the commented default sections come along


@pytest.mark.slow
def test_second_import_same_config_and_no_overwrite_without_force(env):
    out = env / "rig.toml"
    assert rig_import(str(RIG_MVR), "--out", str(out))[0] == 0
    first = out.read_bytes()
    code, text = rig_import(str(RIG_MVR), "--out", str(out))
    assert code == 2 and "--force" in text and out.read_bytes() == first
    assert rig_import(str(RIG_MVR), "--out", str(out), "--force")[0] == 0
    assert out.read_bytes() == first
    # Printed without --out: the same text.
    code, printed = rig_import(str(RIG_MVR))
    assert code == 0 and first.decode() in printed


def test_gdtf_dir_replaces_an_embedded_placeholder(env):
    """A visualiser's placeholder of a real fixture in the MVR; the maker's file in a folder."""
    placeholder = zipfile.ZipFile(GDTF / "Robe@Robin MMX Spot@r3046.gdtf").read(
        "description.xml").replace(b'Name="Robin MMX Spot"', b'Name="Robin Viva CMY"') \
        .replace(b'Manufacturer="Robe"', b'Manufacturer="Robe Lighting"')
    spec = "Robe Lighting@Robin Viva CMY@placeholder.gdtf"
    scene = ('<?xml version="1.0" encoding="UTF-8"?><GeneralSceneDescription verMajor="1" '
             'verMinor="5"><Scene><Layers><Layer uuid="00000000-0000-4000-8000-000000000001" '
             'name="L"><ChildList><Fixture uuid="00000000-0000-4000-8000-000000000009" '
             f'name="Spot"><GDTFSpec>{spec}</GDTFSpec><GDTFMode>Mode 2 - Reduced 8 bit'
             '</GDTFMode><FixtureID>7</FixtureID><Addresses><Address break="0">1025</Address>'
             '</Addresses></Fixture></ChildList></Layer></Layers></Scene>'
             '</GeneralSceneDescription>')
    mvr = env / "placeholder.mvr"
    with zipfile.ZipFile(mvr, "w") as z:
        z.writestr("GeneralSceneDescription.xml", scene)
        z.writestr(spec, placeholder)
    code, text = rig_import(str(mvr), "--out", str(env / "a.toml"))
    assert code == 2 and "placeholder" in text and "--gdtf-dir" in text
    assert not (env / "a.toml").exists()
    gdtf_dir = env / "makers"
    gdtf_dir.mkdir()
    shutil.copy(GDTF / "Robe_Lighting@Robin_Viva_CMY@13042021.gdtf", gdtf_dir)
    code, text = rig_import(str(mvr), "--out", str(env / "b.toml"), "--gdtf-dir", str(gdtf_dir))
    assert code == 0, text
    (fx,) = tables(env / "b.toml").values()
    assert (fx.profile, fx.universe, fx.address) == ("robe-lighting-robin-viva-cmy", 3, 1)


@pytest.mark.parametrize("content,what", [
    (b"not a zip", "not an MVR file"),
    (None, "file not found"),
])
def test_bad_mvr_one_line(env, content, what):
    f = env / "bad.mvr"
    if content is not None:
        f.write_bytes(content)
    code, text = rig_import(str(f), "--out", str(env / "c.toml"))
    assert code == 2 and what in text and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1 and not (env / "c.toml").exists()


def test_not_a_rig_file(env):
    f = env / "rig.txt"
    f.write_text("x")
    code, text = rig_import(str(f))
    assert code == 2 and ".mvr" in text and ".qxw" in text


# --- CMY through the patch ---------------------------------------------------------------

@pytest.mark.slow
def test_cmy_driven_from_the_models_colour(env):
    out = env / "rig.toml"
    assert rig_import(str(RIG_MVR), "--out", str(out))[0] == 0
    patch = Patch(load_config(out))
    f = next(f for f in patch.fixtures if f.name == "viva-sl-101")
    cols = [j for j, c in enumerate(f.mode.channels) if c.attr in ("cyan", "magenta", "yellow")]
    dim = next(j for j, c in enumerate(f.mode.channels) if c.attr == "dimmer")
    rng = np.random.default_rng(0)
    for _ in range(200):
        scene = np.zeros((len(patch.fixtures), len(ATTRS)), np.float32)
        rgb = rng.random(3).astype(np.float32)
        scene[:, ATTRS.index("dimmer")] = 1.0
        scene[:, ATTRS.index("red"):ATTRS.index("blue") + 1] = rgb
        frame = patch.frames(scene)[f.universe]
        cmy = frame[f.address - 1 + np.array(cols)]
        assert np.abs(cmy.astype(float) - (1.0 - rgb) * 255).max() <= 0.5 + 1e-3
        assert frame[f.address - 1 + dim] == 255
    # Pure red: no cyan, full magenta and yellow; white: no filter at all.
    scene[:, ATTRS.index("red"):ATTRS.index("blue") + 1] = (1.0, 0.0, 0.0)
    assert list(patch.frames(scene)[1][f.address - 1 + np.array(cols)]) == [0, 255, 255]
    scene[:, ATTRS.index("red"):ATTRS.index("blue") + 1] = 1.0
    assert list(patch.frames(scene)[1][f.address - 1 + np.array(cols)]) == [0, 0, 0]


# --- it plays, safely ---------------------------------------------------------------------

@pytest.mark.slow
def test_imported_mvr_rig_plays_safely(env):
    out = env / "rig.toml"
    assert rig_import(str(RIG_MVR), "--out", str(out))[0] == 0
    show = env / "show.txt"
    penv = dict(os.environ, LATENTDMX_FAKE_CLOCK="1")
    r = subprocess.run([sys.executable, "-m", "pi_app.cli", "check", str(out)],
                       capture_output=True, text=True, timeout=120, env=penv, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "pi_app.cli", "run", "--config", str(out),
                        "--output", "sim", "--duration", "120", "--record", str(show)],
                       capture_output=True, text=True, timeout=300, env=penv, check=False)
    assert r.returncode == 0, r.stderr
    frames, _, _ = read_show(show)
    cfg = tables(out)
    patch = Patch(load_config(out))
    for f in patch.fixtures:
        u = patch.universes.index(f.universe)
        for j, ch in enumerate(f.mode.channels):
            v = frames[:, u, f.address - 1 + j]
            if ch.attr == "hold":        # from the first frame to the last: lamp on, etc.
                assert (v == ch.value).all(), (f.name, ch.label)
    # Lamps held on from the first frame.
    beam = patch.fixtures[[f.name for f in patch.fixtures].index("beam-l-201")]
    lamp = next(j for j, c in enumerate(beam.mode.channels) if c.label.startswith("LampControl"))
    u = patch.universes.index(beam.universe)
    assert (frames[:, u, beam.address - 1 + lamp] == 130).all()
    # CMY moves with the show (not left white).
    viva = cfg["viva-sl-101"]
    vf = next(f for f in patch.fixtures if f.name == "viva-sl-101")
    cmy = [j for j, c in enumerate(vf.mode.channels) if c.attr in ("cyan", "magenta", "yellow")]
    vals = frames[:, patch.universes.index(viva.universe), viva.address - 1 + np.array(cmy)]
    assert len(np.unique(vals)) > 20 and vals.max() > 100
    # ... and the viewers (render, watch, the page) show the colour the flags make.
    look = ViewRig.from_patch(patch).decode(frames)
    lit = look.level[:, vf.index] > 0.5
    want = (1.0 - vals[lit] / 255.0) * look.level[lit, vf.index][:, None]
    assert lit.sum() > 100 and np.abs(look.colour[lit, vf.index] - want).max() < 0.01
    # The project's checker and the independent counter agree: no flashes over the limit,
    # no aim limit left, nothing held written otherwise.
    r = subprocess.run([sys.executable, "-m", "pi_app.cli", "safety-check", str(show),
                        "--config", str(out)], capture_output=True, text=True, timeout=300,
                       env=penv, check=False)
    assert r.returncode == 0 and "no violations" in r.stdout, r.stdout + r.stderr
    assert r.stdout.count("judged against its fixture file") == len(patch.fixtures)
    worst = count(rig_from_config(out), read_show_file(show)).worst()
    assert worst[1] <= 3.0, worst


# --- QLC+ workspaces ----------------------------------------------------------------------

QXW = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE Workspace>
<Workspace xmlns="http://www.qlcplus.org/Workspace" CurrentWindow="FixtureManager">
 <Creator><Name>Q Light Controller Plus</Name><Version>4.12.6</Version><Author>t</Author></Creator>
 <Engine>
  <InputOutputMap><Universe Name="Universe 1" ID="0"/><Universe Name="Universe 2" ID="1"/>
  </InputOutputMap>
  <Fixture><Manufacturer>Stairville</Manufacturer><Model>MH-X60th LED Spot</Model>
   <Mode>{spot_mode}</Mode><ID>0</ID><Name>Spot left</Name><Universe>0</Universe>
   <Address>0</Address><Channels>11</Channels></Fixture>
  <Fixture><Manufacturer>Varytec</Manufacturer><Model>LED PAR56</Model>
   <Mode>{par_mode}</Mode><ID>1</ID><Name>Par</Name><Universe>1</Universe>
   <Address>99</Address><Channels>5</Channels></Fixture>
  <Fixture><Manufacturer>Nobody</Manufacturer><Model>Nothing</Model>
   <Mode>x</Mode><ID>2</ID><Name>Ghost</Name><Universe>0</Universe>
   <Address>200</Address><Channels>5</Channels></Fixture>
 </Engine>
 <Monitor DisplayMode="1" ShowLabels="0">
  <Font>Arial,12,-1,5,50,0,0,0,0,0</Font><ChannelStyle>0</ChannelStyle><ValueStyle>0</ValueStyle>
  <Grid Width="4" Height="2" Depth="2" Units="0"/>
  <FxItem ID="0" XPos="1000" YPos="500"/>
  <FxItem ID="1" XPos="3000" YPos="1500"/>
 </Monitor>
</Workspace>
"""


def _modes(name: str) -> list[str]:
    from pi_app.fixtures.importing import read_source
    src = read_source(QXF / name)
    return [m for m, _ in src.modes]


def test_qxw_fixtures_modes_universes_addresses_and_monitor(env):
    spot_mode = _modes("Stairville-MH-X60th-LED-Spot.qxf")[0]
    par_mode = _modes("Varytec-LED-PAR56.qxf")[0]
    ws = env / "show.qxw"
    ws.write_text(QXW.format(spot_mode=spot_mode, par_mode=par_mode))
    out = env / "qlc.toml"
    code, text = rig_import(str(ws), "--out", str(out), "--qxf-dir", str(QXF))
    assert code == 0, text
    cfg = tables(out)
    assert set(cfg) == {"spot-left", "par"}
    spot, par = cfg["spot-left"], cfg["par"]
    assert (spot.universe, spot.address, par.universe, par.address) == (1, 1, 2, 100)
    assert spot.position == (0.25, 0.25) and par.position == (0.75, 0.75)
    assert "left out: Ghost (QLC+ ID 2): no .qxf definition of Nobody Nothing" in text
    assert "QLC+ 2-D monitor" in out.read_text()
    again = env / "again.toml"
    assert rig_import(str(ws), "--out", str(again), "--qxf-dir", str(QXF))[0] == 0
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.skipif(not SAMPLE_QXW.is_file(), reason="Debian's qlcplus-data is not installed")
def test_qlcplus_sample_workspace_from_the_system_fixture_folders(env):
    out = env / "sample.toml"
    code, text = rig_import(str(SAMPLE_QXW), "--out", str(out))
    assert code == 0, text
    cfg = load_config(out)
    # 10 fixtures with .qxf files, and QLC+'s generic dimmers (6 + 6 + 4 channels) as one
    # built-in dimmer a channel, at consecutive addresses.
    assert len(cfg.fixtures) == 10 + 16 and "left out:" not in text
    assert {f.address for f in cfg.fixtures} >= {1, 6, 11, 17, 23}
    dimmers = [f for f in cfg.fixtures if f.profile == "generic-dimmer"]
    assert [f.address for f in dimmers[:6]] == list(range(59, 65))


@pytest.mark.slow
def test_a_capture_export_of_placeholders_is_refused_fixture_by_fixture(env):
    """A real MVR export (Capture 2023): 76 fixtures, every GDTF a placeholder."""
    out = env / "capture.toml"
    code, text = rig_import(str(DATA / "mvr" / "capture_demo_show.mvr"), "--out", str(out))
    assert code == 2 and not out.exists()
    left = [ln for ln in text.splitlines() if ln.startswith("left out: ")]
    assert len(left) == 76 and all("placeholder" in ln for ln in left)
    assert "Robin MMX Spot" in text and "fixture ID" in text
    err = [ln for ln in text.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and "no fixture in the file can be driven safely" in err[0]
    assert "--gdtf-dir" in err[0] and "Traceback" not in text


@pytest.mark.slow
def test_darken_and_blackout_keep_the_lamp_on_and_darken_by_dimmer_and_shutter(env):
    from pi_app.darken import _park_frames
    out = env / "rig.toml"
    assert rig_import(str(RIG_MVR), "--out", str(out))[0] == 0
    cfg = load_config(out)
    patch = Patch(cfg)
    scene = np.full((len(patch.fixtures), len(ATTRS)), 1.0, np.float32)
    dark = ("dimmer", "intensity", "red", "green", "blue")
    for frames, shut in ((patch.blackout_frames(patch.frames(scene)), True),
                         (_park_frames(cfg, patch), False)):
        for f in patch.fixtures:
            for j, ch in enumerate(f.mode.channels):
                v = int(frames[f.universe][f.address - 1 + j])
                if ch.label.startswith("LampControl"):
                    assert v == 130, f.name                     # lamp on, always
                elif ch.attr in dark or (shut and ch.attr == "strobe"):
                    assert v == 0, (f.name, ch.label)           # dark by dimmer (and shutter)


@pytest.mark.slow
def test_mangled_mvr_scenes_are_one_line_or_a_config(env):
    """Random damage to the scene XML of a real rig: a config or one line, never a
    traceback, never a half-written file."""
    with zipfile.ZipFile(RIG_MVR) as z:
        files = {n: z.read(n) for n in z.namelist()}
    xml = files["GeneralSceneDescription.xml"]
    rng = np.random.default_rng(5)
    for k in range(40):
        b = bytearray(xml)
        for _ in range(int(rng.integers(1, 5))):
            b[int(rng.integers(0, len(b)))] = int(rng.choice(list(b'0123456789{},"<>/ =-.e')))
        mvr = env / f"m{k}.mvr"
        with zipfile.ZipFile(mvr, "w") as z:
            for n, data in files.items():
                z.writestr(n, bytes(b) if n == "GeneralSceneDescription.xml" else data)
        out = env / f"m{k}.toml"
        code, text = rig_import(str(mvr), "--out", str(out), "--force")
        assert "Traceback" not in text
        if code == 0:
            load_config(out)
        else:
            assert code == 2 and not out.exists()
            assert len([ln for ln in text.splitlines() if ln.startswith("error: ")]) == 1


@pytest.mark.slow
def test_two_revisions_of_one_fixture_type_get_two_profiles(env):
    viva = (GDTF / "Robe_Lighting@Robin_Viva_CMY@13042021.gdtf").read_bytes()
    xml = zipfile.ZipFile(GDTF / "Robe_Lighting@Robin_Viva_CMY@13042021.gdtf").read(
        "description.xml")
    rev2 = xml.replace(b'Name="Mode 2 - Reduced 8 bit"', b'Name="Mode 2 - Reduced"')
    assert rev2 != xml
    fixtures = "".join(
        f'<Fixture uuid="00000000-0000-4000-8000-00000000001{i}" name="S{i}"><GDTFSpec>{spec}'
        f'</GDTFSpec><GDTFMode>{mode}</GDTFMode><FixtureID>{i}</FixtureID><Addresses>'
        f'<Address break="0">{1 + 40 * i}</Address></Addresses></Fixture>'
        for i, (spec, mode) in enumerate([("a.gdtf", "Mode 2 - Reduced 8 bit"),
                                          ("b.gdtf", "Mode 2 - Reduced")]))
    mvr = env / "revs.mvr"
    with zipfile.ZipFile(mvr, "w") as z:
        z.writestr("GeneralSceneDescription.xml",
                   '<GeneralSceneDescription verMajor="1" verMinor="5"><Scene><Layers><Layer '
                   'uuid="00000000-0000-4000-8000-000000000001" name="L"><ChildList>'
                   f"{fixtures}</ChildList></Layer></Layers></Scene></GeneralSceneDescription>")
        z.writestr("a.gdtf", viva)
        buf = env / "b.gdtf"
        with zipfile.ZipFile(buf, "w") as b:
            b.writestr("description.xml", rev2)
        z.writestr("b.gdtf", buf.read_bytes())
    code, text = rig_import(str(mvr), "--out", str(env / "r.toml"))
    assert code == 0, text
    cfg = tables(env / "r.toml")
    keys = [cfg["s0-0"].profile, cfg["s1-1"].profile]
    assert keys[0] == "robe-lighting-robin-viva-cmy" and keys[1].startswith(keys[0] + "-")
    assert cfg["s1-1"].mode == "Mode 2 - Reduced"


@pytest.mark.slow
def test_system_import_for_the_service(env, monkeypatch):
    system = env / "system"
    monkeypatch.setenv("LATENTDMX_SYSTEM_DIR", str(system))
    code, text = rig_import(str(RIG_MVR), "--out", str(env / "s.toml"), "--system")
    assert code == 0, text
    prof = system / "fixtures" / "robe-lighting-robin-viva-cmy.json"
    kept = system / "fixtures" / "sources" / "robe-lighting-robin-viva-cmy.gdtf"
    assert prof.is_file() and kept.is_file()
    assert (prof.stat().st_mode & 0o777) == 0o644 and (kept.stat().st_mode & 0o777) == 0o644
    assert not (env / "xdg" / "latentdmx" / "fixtures").exists()
