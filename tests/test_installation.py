"""The README's installation, played: on 20 minutes after sunset, three presets rotating
every 15 minutes, off at 23:30 — on virtual time with an injected wall clock, read from the
DMX frames. (Its OSC part is driven by a real client in tests/test_osc.py.)"""

from __future__ import annotations

import colorsys
import dataclasses
import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from pi_app.clock import FastClock
from pi_app.config import default_config_path, parse_config
from pi_app.looks import kelvin_rgb
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.schedule import Schedule
from pi_app.show import Show
from pi_app.vocabulary import COMMANDS

README = (Path(__file__).resolve().parents[1] / "docs" / "installation.md").read_text(
    encoding="utf-8")                                    # the manual's page
FPS = 2


def readme_block(marker: str) -> str:
    after = README.split(f"<!-- {marker}", 1)[1]
    return after.split("```toml\n", 1)[1].split("```", 1)[0]


def test_readme_osc_table_lists_every_command():
    table = README.split("<!-- osc-table", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"^\| `/latentdmx/([a-z/]+)` \|", table, re.MULTILINE)
    assert sorted(listed) == sorted(c.name for c in COMMANDS.values() if c.cli)


@pytest.mark.slow
def test_the_readme_installation_plays_as_documented(tmp_path):
    text = default_config_path().read_text() + readme_block("installation-example")
    cfg = parse_config(text, "rig.toml")                      # valid, LAN OSC and all
    assert cfg.osc.enabled and cfg.osc.allow == ("192.168.1.0/24",)
    # played with nat-aurora for every item: iae-glyphs' convolutions cost ~4 ms a frame here,
    # and what is checked (schedule, rotation, palettes, heads still) is the same
    cfg = parse_config(text.replace('model = "iae-glyphs"', 'model = "nat-aurora"'), "rig.toml")
    cfg = cfg.replace(fps=float(FPS), osc=dataclasses.replace(cfg.osc, enabled=False))
    tz = ZoneInfo("Europe/Berlin")
    day = dt.date(2026, 6, 12)
    (window,), _ = Schedule(cfg.schedule, cfg.location).day_plan(day)
    on = window.on.astimezone(tz)
    assert on.hour == 21 and 40 <= on.minute <= 59            # sunset 21:2x + 20 min
    start = on - dt.timedelta(minutes=5)
    off = dt.datetime(2026, 6, 12, 23, 30, tzinfo=tz)
    seconds = (off - start).total_seconds() + 10 * 60
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    show = Show(cfg, out, clock=FastClock, control=False, duration_s=seconds,
                wall_clock=lambda t: start.timestamp() + t, presets_dir=tmp_path / "presets")
    show.run()
    f = np.stack([h[1] for h in out.history]).astype(int)
    slot = {(patch.fixtures[i].name, attr): s - 1
            for (_, s), (i, attr) in patch.slot_map().items()}
    pars = [f"par-{k}" for k in range(1, 5)]
    rgbw = np.stack([f[:, [slot[(p, c)] for c in ("red", "green", "blue", "white")]]
                     for p in pars], axis=1)                  # (frames, pars, 4)
    t_on = (window.on - start).total_seconds()
    t_off = (off - start).total_seconds()

    def at(t_s: float) -> int:
        return round(t_s * FPS)

    lit = rgbw.max(axis=(1, 2)) > 0
    assert not lit[: at(t_on)].any()                          # dark before sunset+20m
    assert lit[at(t_on + 10): at(t_off)].mean() > 0.95
    assert not lit[at(t_off + 10):].any()                     # dark after 23:30 (+ fade)

    def hues(seg: np.ndarray) -> np.ndarray:
        """Hue in degrees of the clearly coloured samples (value > 0.25, saturation > 0.3)."""
        rgb = seg.reshape(-1, 4)[:, :3] / 255.0
        v, m = rgb.max(axis=1), rgb.min(axis=1)
        keep = (v > 0.25) & ((v - m) > 0.3 * v)
        sample = rgb[keep][:: max(1, keep.sum() // 400)]       # a few hundred per item
        return np.array([colorsys.rgb_to_hsv(*c)[0] * 360 for c in sample])

    warm = kelvin_rgb(2700)
    heads = [(f"head-{n}", a) for n in ("left", "right", "centre") for a in ("pan", "tilt")]
    n_items = int((t_off - t_on) // 900) + 1
    assert n_items >= 6
    for k in range(n_items):
        a = t_on + 900 * k + 30                               # past the 4-s cross-fade
        b = min(t_on + 900 * (k + 1), t_off) - 5
        if b - a < 60:
            continue
        seg = rgbw[at(a): at(b)]
        item = ("dusk", "sea", "embers")[k % 3]
        if item == "dusk":                                    # warm white, no white emitter
            on_ = seg[..., 0] > 60
            assert on_.sum() > 20 and (seg[..., 3] == 0).all()
            np.testing.assert_allclose(seg[on_][:, 1] / seg[on_][:, 0], warm[1], atol=0.03)
        elif item == "sea":
            h = hues(seg)
            assert len(h) > 20 and ((h >= 161) & (h <= 239)).all(), (k, h.min(), h.max())
        else:                                                 # embers: 0..30 deg, no white
            h = hues(seg)
            assert len(h) > 20 and (seg[..., 3] == 0).all()
            assert (((h >= 0) & (h <= 34)) | (h >= 356)).all(), (k, h.min(), h.max())
            aim = f[at(a): at(b)][:, [slot[x] for x in heads]]
            assert (aim == aim[0]).all()                      # heads still
    # the status said so while it ran: the playlist with its item
    assert show.director.playlist is None                     # stopped at the window's end
