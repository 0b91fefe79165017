"""Looks and trims (before the safety stage), checked on the recorded DMX bytes: per-fixture
max intensity, colour balance and dimmer curve; a warm-white and a hue palette; heads still."""

from __future__ import annotations

import colorsys
import re

import numpy as np
import pytest

from pi_app.clock import FastClock
from pi_app.config import default_config_path, parse_config
from pi_app.errors import ConfigError
from pi_app.looks import kelvin_rgb
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import Show
from pi_app.sim.record import read_show

SECONDS = 20


def config(extra_top: str = "", fixture_trims: dict[str, str] | None = None):
    """The default rig with `extra_top` tables appended and trims on named fixtures."""
    text = default_config_path().read_text()
    for name, trim in (fixture_trims or {}).items():
        text = re.sub(rf'(name = "{name}"\n)', rf"\1trim = {{ {trim} }}\n", text)
    return parse_config(text + extra_top, "rig.toml")


def record(cfg, tmp_path, seconds=SECONDS, during=None) -> np.ndarray:
    """Play on virtual time with --record; return the recorded bytes (n, 512) of universe 1."""
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames)
    path = tmp_path / f"show-{len(list(tmp_path.glob('show-*')))}.txt"
    show = Show(cfg, out, clock=FastClock, control=False, duration_s=seconds,
                record_path=path, presets_dir=tmp_path / "presets")
    if during:
        show.listeners.append(during)
    show.run()
    frames, universes, _ = read_show(path)
    return frames[:, universes.index(1)].astype(int)


def slots(cfg, fixture: str) -> dict[str, int]:
    """attr -> 0-based slot index of a fixture's channels (universe 1)."""
    patch = Patch(cfg)
    idx = next(f.index for f in patch.fixtures if f.name == fixture)
    return {attr: slot - 1 for (u, slot), (i, attr) in patch.slot_map().items() if i == idx}


@pytest.mark.slow
def test_trims_on_the_recorded_bytes(tmp_path):
    plain_cfg = config()
    trimmed_cfg = config(fixture_trims={
        "par-1": "max_intensity = 0.4",
        "par-2": "colour_balance = [1.0, 1.0, 0.0, 0.5]",
        "head-centre": "dimmer_gamma = 2.0"})
    plain, trimmed = record(plain_cfg, tmp_path), record(trimmed_cfg, tmp_path)
    body = slice(2 * 40, -2 * 40)                                 # past the fades
    p1 = list(slots(plain_cfg, "par-1").values())
    assert plain[body][:, p1].max() > 100
    assert trimmed[:, p1].max() <= round(0.4 * 255)               # never above 40 %
    assert trimmed[:, p1].max() <= 0.4 * plain[:, p1].max() + 2   # the range, scaled
    p2 = slots(plain_cfg, "par-2")
    assert plain[body][:, p2["blue"]].max() > 50 and trimmed[:, p2["blue"]].max() == 0
    w_plain, w_trim = plain[body][:, p2["white"]], trimmed[body][:, p2["white"]]
    assert w_plain.max() > 20 and w_trim.max() <= w_plain.max() * 0.5 + 2
    # the dimmer curve: Lumeri dimmer range 0..134 ; trimmed = plain ** 2 where unlimited
    d = slots(plain_cfg, "head-centre")["dimmer"]
    a, b = plain[body][:, d] / 134.0, trimmed[body][:, d] / 134.0
    close = np.abs(b - a ** 2.0) < 0.03
    assert close.mean() > 0.8 and (b <= a + 0.01).all()
    # untouched fixtures are byte-identical
    p4 = list(slots(plain_cfg, "par-4").values())
    np.testing.assert_array_equal(plain[:, p4], trimmed[:, p4])


@pytest.mark.slow
def test_warm_white_palette_on_the_recorded_bytes(tmp_path):
    cfg = config('[looks]\npalette = "warm"\n[palettes.warm]\nkelvin = 2700\n')
    frames = record(cfg, tmp_path)
    warm = kelvin_rgb(2700)
    for par in ("par-1", "par-2", "par-3", "par-4"):
        s = slots(cfg, par)
        rgbw = frames[:, [s["red"], s["green"], s["blue"], s["white"]]]
        assert (rgbw[:, 3] == 0).all()                            # no cool white emitter
        lit = rgbw[:, 0] > 60
        assert lit.sum() > 100
        ratio = rgbw[lit, :3] / rgbw[lit, :1]
        np.testing.assert_allclose(ratio, np.broadcast_to(warm, ratio.shape), atol=0.03)
    plain = record(config(), tmp_path)
    s = slots(cfg, "par-1")
    assert np.abs(plain[:, s["blue"]] / np.maximum(plain[:, s["red"]], 1)).max() > 1


@pytest.mark.slow
def test_hue_palette_on_the_recorded_bytes(tmp_path):
    cfg = config('[looks]\npalette = "sea"\n[palettes.sea]\nhues = [200]\nwidth_deg = 40\n'
                 'white = false\n')
    frames = record(cfg, tmp_path)
    hues = []
    for par in ("par-1", "par-2", "par-3", "par-4"):
        s = slots(cfg, par)
        rgb = frames[:, [s["red"], s["green"], s["blue"]]] / 255.0
        assert (frames[:, s["white"]] == 0).all()
        for r, g, b in rgb:
            h, sat, v = colorsys.rgb_to_hsv(r, g, b)
            if v > 0.25 and sat > 0.3:                           # colours DMX can tell apart
                hues.append(h * 360)
    hues = np.array(hues)
    assert len(hues) > 200
    assert ((hues >= 180 - 4) & (hues <= 220 + 4)).all(), (hues.min(), hues.max())


@pytest.mark.slow
def test_heads_still_freezes_aim_and_keeps_colour(tmp_path):
    cfg = config('[looks]\nheads_still = true\n')
    fps = int(cfg.fps)

    def toggle(show):                      # live: let them move for 5 s, then freeze again
        if show.frames_out == 8 * fps:
            show.handle_control("still", {"on": False})
        elif show.frames_out == 13 * fps:
            show.handle_control("still", {"on": True})
    frames = record(cfg, tmp_path, seconds=20, during=toggle)
    for head in ("head-left", "head-right", "head-centre"):
        s = slots(cfg, head)
        aim = frames[:, [s["pan"], s["tilt"]]]
        still = aim[: 8 * fps]
        assert (still == still[0]).all()                          # frozen at park
        assert (aim[8 * fps + 2: 13 * fps] != still[0]).any()     # moving when released
        frozen = aim[13 * fps + 2: 18 * fps]                      # (then the stop parks)
        assert (frozen == frozen[0]).all()                        # frozen where it was
        light = [s[a] for a in ("dimmer", "red", "green", "blue", "white")]
        assert frames[: 8 * fps, light].std(axis=0).max() > 1     # colour keeps playing


@pytest.mark.parametrize("trim, field", [
    ("max_intensity = 1.5", "fixtures[1] ('head-left').trim.max_intensity"),
    ("colour_balance = [1, 1, 2, 1]", "fixtures[1] ('head-left').trim.colour_balance"),
    ("dimmer_gamma = 0", "fixtures[1] ('head-left').trim.dimmer_gamma"),
    ("max_intensty = 0.5", "fixtures[1] ('head-left').trim.max_intensty"),
])
def test_trim_mistakes_are_one_line(trim, field):
    with pytest.raises(ConfigError) as exc:
        config(fixture_trims={"head-left": trim})
    assert exc.value.field == field and exc.value.fix


def test_palette_command(tmp_path):
    cfg = config('[palettes.warm]\nkelvin = 2700\n')
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes), control=False, presets_dir=tmp_path)
    from pi_app.errors import ControlError

    with pytest.raises(ControlError, match="known palettes: warm"):
        show.handle_control("palette", {"name": "cold"})
    assert show.handle_control("palette", {"name": "warm"}) == {"palette": "warm"}
    show._commands.get_nowait()(0.0)
    assert show.pipeline.looks.palette_name == "warm"
    show.handle_control("palette", {"name": "none"})
    show._commands.get_nowait()(0.0)
    assert show.pipeline.looks.palette_name == ""


def test_sighup_applies_trims_live(tmp_path):
    path = tmp_path / "rig.toml"
    text = default_config_path().read_text()
    path.write_text(text)
    cfg = parse_config(text, str(path))
    fps = int(cfg.fps)

    def retrim(show):
        if show.frames_out == 4 * fps:
            path.write_text(re.sub(r'(name = "par-1"\n)', r"\1trim = { max_intensity = 0.2 }\n",
                                   text))
            show.request_reload()
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    show = Show(cfg, out, clock=FastClock, control=False, duration_s=10, config_path=path,
                presets_dir=tmp_path / "presets")
    show.listeners.append(retrim)
    show.run()
    f = np.stack([h[1] for h in out.history]).astype(int)
    p1 = list(slots(cfg, "par-1").values())
    assert f[fps: 4 * fps, p1].max() > 60
    assert f[4 * fps + 3 * fps: 9 * fps, p1].max() <= round(0.2 * 255)    # limiter, then cap
