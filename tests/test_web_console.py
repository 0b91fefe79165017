"""The web page is the curator's remote, checked in a real headless Chromium at a phone's
size (390 x 844) and a desk's (1440 x 900): nothing runs off the side of a phone, the rig map
keeps its 16:10 whatever the status line says, presets are buttons (a tap recalls one: the
daemon's status changes), and the page says when the show is paused rather than an fps.

Screenshots land in /tmp (latentdmx-web-phone.png, latentdmx-web-desktop.png) for a look."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from test_views import TEST_TOKEN, start_web_show
from test_views_browser import cfg, chromium, wait_for  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
DESK = {"width": 1440, "height": 900, "deviceScaleFactor": 1, "mobile": False}
SHOTS = Path("/tmp")
LONG = "GardenWindowAfterMidnight_SlowBlues.WarmWhite_2026-12-07_final2"[:64]   # no spaces
PRESETS = ("dusk", "sea", "late night", "the garden window after midnight - slow blues", LONG)

MEASURE = """(() => {
  const de = document.documentElement, r = document.getElementById('rig').getBoundingClientRect();
  const out = [...document.body.querySelectorAll('*')].filter((el) => el.getClientRects().length)
    .map((el) => [el.id || el.tagName.toLowerCase() + (el.textContent || '').trim().slice(0, 20),
                  el.getBoundingClientRect()])
    .filter(([, b]) => b.width > 0 && (b.right > de.clientWidth + 0.5 || b.left < -0.5))
    .map(([name, b]) => `${name} ${Math.round(b.left)}..${Math.round(b.right)}`);
  return {scroll: de.scrollWidth, client: de.clientWidth, inner: innerWidth,
          ratio: r.width / r.height, map: [r.width, r.height], outside: out};
})()"""


def _open(tools, url: str, size: dict, presets: bool = True) -> None:
    tools.call("Emulation.setDeviceMetricsOverride", **size)
    tools.call("Page.enable")
    tools.call("Page.navigate", url=url)
    wait_for(lambda: int(tools.js("+document.getElementById('updates').textContent") or 0) >= 3)
    if presets:
        wait_for(lambda: tools.js("document.querySelectorAll('#presets button').length") > 0)
    else:
        time.sleep(0.5)                     # the controls built from the vocabulary


def _click(tools, selector: str) -> None:
    """A real tap: the mouse pressed and released at the element's centre."""
    tools.js(f"document.querySelector({selector!r}).scrollIntoView({{block: 'center'}})")
    x, y = tools.js(f"(() => {{ const r = document.querySelector({selector!r})"
                    ".getBoundingClientRect(); return [r.x + r.width / 2,"
                    " r.y + r.height / 2]; })()")
    for kind in ("mousePressed", "mouseReleased"):
        tools.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


def _shot(tools, name: str, full: bool) -> Path:
    data = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=full)["data"]
    path = SHOTS / name
    path.write_bytes(base64.b64decode(data))
    return path


def _save_presets(show) -> None:
    for name in PRESETS:
        show.handle_control("preset/save", {"name": name})


@pytest.mark.slow
def test_page_fits_a_phone_and_the_map_keeps_its_proportions(cfg, chromium):  # noqa: F811
    show, _, url = start_web_show(cfg)
    try:
        _save_presets(show)
        for size, label in ((PHONE, "phone"), (DESK, "desktop")):
            _open(chromium, url + "#token=" + TEST_TOKEN, size, presets=False)
            chromium.js("document.querySelectorAll('details').forEach((d) => d.open = true)")
            time.sleep(0.3)
            short = chromium.js(MEASURE)
            # no horizontal scrolling, nothing (a button, a field, a preset) cut off
            assert short["inner"] == size["width"], short
            assert short["scroll"] <= size["width"], short
            assert short["outside"] == [], short
            # the status line as long as it gets: a 64-character preset, paused, still
            show.handle_control("preset/recall", {"name": LONG, "fade_s": 0})
            show.handle_control("still", {"on": True})
            wait_for(lambda: LONG in chromium.js("document.querySelector('header').textContent"))
            time.sleep(0.3)
            long = chromium.js(MEASURE)
            assert long["scroll"] <= size["width"] and long["outside"] == [], long
            for m in (short, long):                       # 16:10, within a pixel
                assert abs(m["ratio"] - 1.6) < 0.01, (label, short, long)
            assert abs(short["map"][0] - long["map"][0]) < 1, (short, long)
            if label == "desktop":                        # the map, large, on a desk
                assert long["map"][0] > 800, long
            show.handle_control("still", {"on": False})
            show.handle_control("preset/recall", {"name": "dusk", "fade_s": 0})
            wait_for(lambda: LONG not in chromium.js(
                "document.querySelector('header').textContent"))
            chromium.js("window.scrollTo(0, 0)")
            time.sleep(0.8)
            path = _shot(chromium, f"latentdmx-web-{label}.png", full=label == "phone")
            from PIL import Image

            img = Image.open(path)
            assert img.size[0] == size["width"] * size["deviceScaleFactor"], img.size
    finally:
        show.stop()
        show._test_thread.join(5)


@pytest.mark.slow
def test_presets_are_buttons_and_a_tap_recalls_one(cfg, chromium):  # noqa: F811
    show, _, url = start_web_show(cfg)
    try:
        _save_presets(show)
        _open(chromium, url + "#token=" + TEST_TOKEN, PHONE)
        names = chromium.js("[...document.querySelectorAll('#presets button')]"
                            ".map((b) => b.textContent)")
        assert names == show.presets.names(), names          # one button per preset
        assert show.director.preset == ""
        _click(chromium, '#presets button[data-name="sea"]')
        wait_for(lambda: show.status_snapshot["preset"] == "sea")      # the daemon's status
        wait_for(lambda: chromium.js(
            "document.querySelector('#presets button.on').dataset.name") == "sea")
        assert chromium.js("document.getElementById('preset').textContent") == "sea"
        _click(chromium, '#presets button[data-name="late night"]')
        wait_for(lambda: show.status_snapshot["preset"] == "late night")
        # a preset saved elsewhere (the CLI, OSC) becomes a button without a reload
        show.handle_control("preset/save", {"name": "from the cli"})
        wait_for(lambda: "from the cli" in chromium.js(
            "[...document.querySelectorAll('#presets button')].map((b) => b.dataset.name)"),
            timeout=15)
        _click(chromium, '#presets button[data-name="from the cli"]')
        wait_for(lambda: show.status_snapshot["preset"] == "from the cli")
    finally:
        show.stop()
        show._test_thread.join(5)


@pytest.mark.slow
def test_the_page_says_paused_rather_than_an_fps(cfg, chromium):  # noqa: F811
    """Pause from the phone: the badge says PAUSED, and once the show holds still (the
    frame re-sent, none computed) the fps gives way to what the show is doing."""
    show, _, url = start_web_show(cfg)
    try:
        _save_presets(show)
        _open(chromium, url + "#token=" + TEST_TOKEN, PHONE)
        header = "document.querySelector('header').textContent"
        assert "fps" in chromium.js(header)
        assert chromium.js("document.getElementById('flags').textContent") == "PLAYING"
        _click(chromium, "#pause")
        wait_for(lambda: show.pipeline.paused)
        wait_for(lambda: chromium.js("document.getElementById('flags').textContent") ==
                 "PAUSED")
        wait_for(lambda: show.status_snapshot["fps_achieved"] is None, timeout=15)
        wait_for(lambda: "fps" not in chromium.js(header))
        assert "paused" in chromium.js("document.getElementById('fps').textContent")
        _click(chromium, "#pause")                       # now "Resume"
        wait_for(lambda: "fps" in chromium.js(header))
        assert chromium.js("document.getElementById('flags').textContent") == "PLAYING"
        show.stop()                                       # the daemon gone: not "PLAYING"
        show._test_thread.join(15)
        wait_for(lambda: chromium.js("document.getElementById('flags').textContent") ==
                 "OFFLINE")
    finally:
        show.stop()
        show._test_thread.join(5)
