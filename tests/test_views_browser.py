"""The web page end to end in a real headless Chromium, driven over the DevTools protocol.

Load the page of a running show, see frames update, click Blackout, read the effect in the
simulator's frames, take a screenshot. The DevTools client is a few lines of stdlib
(a websocket is a socket, an HTTP upgrade and a frame header), so no new test dependency.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request

import numpy as np
import pytest
from test_views import TEST_TOKEN, light_slots, make_points_model, start_web_show

from pi_app.config import load_config

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or \
    shutil.which("google-chrome")


class DevTools:
    """A minimal Chrome DevTools Protocol client over a stdlib websocket."""

    def __init__(self, ws_url: str) -> None:
        rest = ws_url.split("://", 1)[1]
        hostport, path = rest.split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self._id = 0
        self.events: list[dict] = []

    def _send(self, text: str) -> None:
        data = text.encode()
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                bytes([0x80 | 127]) + struct.pack(">Q", n))
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + body)

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("devtools closed")
            buf += chunk
        return buf

    def _recv(self) -> str:
        parts = []
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            payload = self._exact(n)
            if b0 & 0x0F in (0x1, 0x0):
                parts.append(payload)
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self._send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def js(self, expr: str):
        res = self.call("Runtime.evaluate", expression=expr, returnByValue=True,
                        awaitPromise=True)
        return res.get("result", {}).get("value")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def cfg(tmp_path):
    model = make_points_model(tmp_path / "test-points")
    return load_config(None).replace(model=str(model), fps=10.0, seed=5)


@pytest.fixture
def chromium(tmp_path):
    if CHROMIUM is None:
        pytest.skip("needs headless chromium (Debian: apt install chromium)")
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--no-default-browser-check", "--mute-audio",
         "--remote-debugging-port=0", f"--user-data-dir={profile}",
         "--window-size=1100,700", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"chromium did not start (exit {proc.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
            page = next(t for t in json.loads(r.read()) if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        yield tools
        tools.close()
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for(fn, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_web_page_in_chromium(cfg, chromium, tmp_path):
    show, out, url = start_web_show(cfg)
    try:
        chromium.call("Page.enable")
        chromium.call("Page.navigate", url=url + "#token=" + TEST_TOKEN)
        wait_for(lambda: int(chromium.js("+document.getElementById('updates').textContent")
                             or 0) >= 2)
        # the token came in the URL's fragment once: kept in the browser, gone from the URL
        assert chromium.js("location.hash") == "" and \
            chromium.js("localStorage.getItem('latentdmx-token')") == TEST_TOKEN
        # frames update: the page's frame counter moves between two reads
        a = int(chromium.js("document.getElementById('frames').textContent"))
        wait_for(lambda: int(chromium.js("document.getElementById('frames').textContent")) > a)
        assert chromium.js("document.getElementById('model').textContent") == "test-points"
        assert chromium.js("document.querySelectorAll('#fixtures tr').length") == 7
        slots = light_slots(cfg)
        assert out.last_frames[1][slots].any()            # the lights are on

        # press Blackout with a real mouse click at the button
        box = chromium.js("(() => { const r = document.getElementById('blackout')"
                          ".getBoundingClientRect(); return [r.x + r.width / 2,"
                          " r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            chromium.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1],
                          button="left", clickCount=1)
        wait_for(lambda: show.pipeline.blacked_out)
        # the simulator's frames: every light slot 0, pan/tilt held
        wait_for(lambda: not out.last_frames[1][slots].any())
        wait_for(lambda: chromium.js("document.getElementById('blackout').textContent")
                 == "Lights on")
        assert chromium.js("document.getElementById('flags').textContent").strip() == \
            "BLACKOUT"

        # lights on again, then a screenshot of the live page
        chromium.js("document.getElementById('blackout').click()")
        wait_for(lambda: out.last_frames[1][slots].any())

        # controls built from the control vocabulary: seed, tempo, model, presets
        cmds = chromium.js("[...document.querySelectorAll('#controls form')]"
                           ".map((f) => f.dataset.cmd)")
        for name in ("seed", "tempo", "model", "preset/save", "preset/recall",
                     "preset/delete", "palette", "still"):
            assert name in cmds, cmds
        wait_for(lambda: chromium.js("document.getElementById('arg-seed-seed').value") ==
                 str(show.pipeline.seed))                 # shows the current value
        chromium.js("(() => { const el = document.getElementById('arg-seed-seed');"
                    " el.value = '23'; el.dispatchEvent(new Event('input', {bubbles: true}));"
                    " el.form.requestSubmit(); })()")
        wait_for(lambda: show.pipeline.seed == 23)
        chromium.js("(() => { const el = document.getElementById('arg-preset-save-name');"
                    " el.value = 'from web'; el.form.requestSubmit(); })()")
        wait_for(lambda: "from web" in show.presets.names())
        wait_for(lambda: "from web" in chromium.js(
            "[...document.querySelectorAll('#list-presets option')].map((o) => o.value)"))
        time.sleep(0.8)                                    # fade back into view
        shot = base64.b64decode(chromium.call("Page.captureScreenshot", format="png")["data"])
        path = tmp_path / "web.png"
        path.write_bytes(shot)
        from PIL import Image

        img = Image.open(path)
        assert img.size[0] >= 800
        assert np.asarray(img.convert("RGB")).std() > 5    # not a blank page
    finally:
        show.stop()
        show._test_thread.join(5)


@pytest.mark.slow
def test_web_page_asks_for_the_token_once(cfg, chromium):
    """Opened without a token, the page asks once (a prompt); the answer is kept in the
    browser, so a reload asks nothing and works."""
    show, _out, url = start_web_show(cfg)
    try:
        chromium.call("Page.enable")
        chromium.call("Page.navigate", url=url)

        def dialog() -> dict | None:
            try:
                chromium.call("Page.getNavigationHistory")    # collects events meanwhile
            except RuntimeError:                              # mid-navigation
                pass
            return next((e for e in chromium.events
                         if e.get("method") == "Page.javascriptDialogOpening"), None)

        opened = wait_for(dialog)
        assert opened["params"]["type"] == "prompt" and "web-token" in \
            opened["params"]["message"]
        chromium.call("Page.handleJavaScriptDialog", accept=True, promptText=TEST_TOKEN)
        wait_for(lambda: int(chromium.js("+document.getElementById('updates').textContent")
                             or 0) >= 2)
        assert chromium.js("localStorage.getItem('latentdmx-token')") == TEST_TOKEN
        chromium.events.clear()
        chromium.call("Page.reload")
        wait_for(lambda: int(chromium.js("+document.getElementById('updates').textContent")
                             or 0) >= 2)
        assert dialog() is None                                # not asked again
    finally:
        show.stop()
        show._test_thread.join(5)
