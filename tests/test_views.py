"""Views: decode, `render` (PNG/GIF, offline and from a recording), `watch`, the web page's HTTP.

A tiny seeded points model (written per test session) stands in for the bundled models, so
these tests do not wait for training. Fast: 10 fps, a few seconds of show.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from procs import wait_for

from pi_app.cli import main
from pi_app.config import PreviewConfig, load_config
from pi_app.decode import Rig
from pi_app.errors import ConfigError
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.runtime import load_model
from pi_app.scene import N_ATTRS
from pi_app.show import Show
from pi_app.sim.record import read_show
from pi_app.views import render as rd

FPS = 10
SEED = 5


def make_points_model(folder: Path, latent: int = 4, hidden: int = 16, seed: int = 1) -> Path:
    """A small random NAT-like points model (x, y, r, g, b, w) in `folder`."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file({"net.0.weight": rng.normal(0, 1.0, (hidden, latent)).astype(np.float32),
               "net.0.bias": np.zeros(hidden, np.float32),
               "net.2.weight": rng.normal(0, 0.8, (6, hidden)).astype(np.float32),
               "net.2.bias": np.zeros(6, np.float32)}, str(folder / "model.safetensors"))
    fields = [{"name": n, "min": 0, "max": 1} for n in ["x", "y", "r", "g", "b", "w"]]
    (folder / "model.json").write_text(json.dumps({
        "schema": 1, "name": "test-points", "family": "nat", "latent_dim": latent,
        "weights": "model.safetensors", "output": {"kind": "points", "fields": fields},
        "layers": [{"type": "linear", "name": "net.0", "in": latent, "out": hidden},
                   {"type": "relu"},
                   {"type": "linear", "name": "net.2", "in": hidden, "out": 6},
                   {"type": "sigmoid"}]}))
    return folder


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return make_points_model(tmp_path_factory.mktemp("model") / "test-points")


@pytest.fixture
def cfg(model_dir):
    return load_config(None).replace(model=str(model_dir), fps=float(FPS), seed=SEED)


def expected_colour(frame: np.ndarray) -> np.ndarray:
    """The default rig's emitted light from raw slots, worked out by hand (n=7, rgb).

    Heads (Lumeri): dimmer is the 0..134 part of its channel; 14ch: dimmer at +5, RGBW at
    +6..+9; 9ch: dimmer at +2, RGBW at +3..+6. Pars (4ch RGBW, no dimmer)."""
    f = frame.astype(np.float64) / 255.0
    out = []
    for _base, dim, rgbw in ((1, 6, 7), (15, 20, 21), (29, 31, 32)):
        d = min(frame[dim - 1] / 134.0, 1.0)
        r, g, b, w = f[rgbw - 1:rgbw + 3]
        out.append(np.clip(np.array([r + w, g + w, b + w]) * d, 0, 1))
    for base in (41, 45, 49, 53):
        r, g, b, w = f[base - 1:base + 3]
        out.append(np.clip(np.array([r + w, g + w, b + w]), 0, 1))
    return np.array(out)


def record_show(cfg, path: Path, duration_s: float) -> Path:
    """What `latentdmx run --duration D --record PATH` does, in-process on the simulator
    (on virtual time: the same frames, no waiting)."""
    from pi_app.clock import FastClock

    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames)
    Show(cfg, out, duration_s=duration_s, record_path=path, control=False,
         clock=FastClock).run()
    return path


# -------------------------------------------------------------------------- decode

def test_decode_inverts_the_patch(cfg):
    patch = Patch(cfg)
    rig = Rig.from_patch(patch)
    rng = np.random.default_rng(0)
    scene = rng.uniform(0, 1, (len(patch), N_ATTRS)).astype(np.float32)
    look = rig.decode(rig.frames_array(patch.frames(scene)))
    for f in patch.fixtures:          # pan/tilt: the physical fraction of the full range
        if not f.moves:
            continue
        for k, (full, lim) in enumerate(((f.profile.pan_deg, f.config.pan_limits_deg),
                                         (f.profile.tilt_deg, f.config.tilt_limits_deg))):
            lo, hi = lim if lim != (0.0, 0.0) else (0.0, full)
            want = (lo + scene[f.index, k] * (hi - lo)) / full
            got = (look.pan, look.tilt)[k][f.index]
            assert abs(got - want) <= 1 / 255 + 1e-6
    want = np.clip((scene[:, 3:6] + scene[:, 6:7]) * scene[:, 2:3], 0, 1)
    assert np.allclose(look.colour, want, atol=3 / 134)
    frame = rig.frames_array(patch.frames(scene))[0]
    assert np.allclose(look.colour, expected_colour(frame), atol=1e-5)


# -------------------------------------------------------------------------- render

def test_render_matches_the_recorded_show(cfg, model_dir, tmp_path):
    """Render a seed offline; its timeline pixels are the recorded frames of that seed."""
    duration = 2.0
    rec = record_show(cfg, tmp_path / "show.txt", duration)
    frames, _, times = read_show(rec)
    n = len(frames)
    assert n >= duration * FPS                   # frames incl. fade-out, then the blackout

    out = tmp_path / "show.png"
    width = 4 * n                                # 4 pixel columns a frame
    res = CliRunner().invoke(main, ["render", "--model", str(model_dir), "--seed", str(SEED),
                                    "--fps", str(FPS), "--duration", str(duration),
                                    "--width", str(width), "--snapshots", "0",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    img = np.asarray(Image.open(out).convert("RGB"))

    # the offline frames are the recorded frames, byte for byte
    sim, sim_times = rd.simulate(cfg, load_model(cfg.model), duration_s=duration)
    assert np.array_equal(sim, frames) and np.allclose(sim_times, times)

    rig = Rig.from_patch(Patch(cfg))
    _, layout = rd.timeline_with_layout(rig, frames, times, title="t", width=width,
                                         snapshots=0)
    assert img.shape[1] == layout.x0 + width + 12
    h_min = layout.strip_y0 + len(rig) * rd.ROW_H + 20 + 3 * (rd.TRACE_H + rd.TRACE_GAP)
    assert img.shape[0] >= h_min
    lit = 0
    for k in range(n):
        want = np.rint(expected_colour(frames[k, 0]) * 255)
        for i in range(len(rig)):
            top, bottom = layout.row_box(i)
            for col in (4 * k + 1, 4 * k + 2):
                px = img[(top + bottom) // 2, layout.x0 + col]
                assert np.abs(px.astype(int) - want[i]).max() <= 1, (k, i, px, want[i])
            lit += int(want[i].max() > 20)
    assert lit > n                               # the show is not dark
    assert img[layout.row_box(0)[0], layout.x0 + 4 * (n - 1) + 2].max() == 0   # blackout


def test_render_recording_and_raw(cfg, tmp_path):
    rec = record_show(cfg, tmp_path / "show.txt", 1.5)
    frames, _, times = read_show(rec)
    a, b = tmp_path / "rec.png", tmp_path / "raw.png"
    runner = CliRunner()
    res = runner.invoke(main, ["render", "--recording", str(rec), "--out", str(a),
                               "--width", "300", "--snapshots", "3"])
    assert res.exit_code == 0, res.output
    img = np.asarray(Image.open(a).convert("RGB"))
    rig = Rig.from_patch(Patch(cfg))
    _, layout = rd.timeline_with_layout(rig, frames, times, title="t", width=300,
                                         snapshots=3)
    assert img.shape[1] == layout.x0 + 300 + 12
    top, _ = layout.row_box(3)                # par-1 at 1/3 of the way: frame 5 of 16
    col = int(300 * (5 + 0.5) / len(frames))
    want = np.rint(expected_colour(frames[5, 0])[3] * 255)
    assert np.abs(img[top + 3, layout.x0 + col].astype(int) - want).max() <= 1

    res = runner.invoke(main, ["render", "--recording", str(rec), "--raw", "--out", str(b)])
    assert res.exit_code == 0, res.output
    raw = Image.open(b)
    used = int((frames.max(axis=0) > 0).sum())
    assert raw.width == 90 + 720 + 12 and raw.height >= used * 2


def test_render_gif(model_dir, tmp_path):
    out = tmp_path / "show.gif"
    res = CliRunner().invoke(main, ["render", "--model", str(model_dir), "--fps", "10",
                                    "--duration", "1.5", "--width", "200", "--gif-fps", "4",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    gif = Image.open(out)
    # 1.5 s of show, then heads may park in the dark (up to ~2.5 s more) before the blackout
    assert gif.format == "GIF" and 3 <= gif.n_frames <= int(4.0 * 4) and gif.width == 200
    assert not list(tmp_path.glob(".*tmp"))      # written atomically, no leftovers


def test_render_refuses_bad_output(model_dir, tmp_path):
    res = CliRunner().invoke(main, ["render", "--model", str(model_dir), "--duration", "1",
                                    "--out", str(tmp_path / "x.jpg")])
    assert res.exit_code == 2 and "--out" in res.output and ".png or .gif" in res.output


# -------------------------------------------------------------------------- watch

@pytest.mark.slow
def test_watch_view_and_local_show(cfg, model_dir):
    from rich.console import Console

    from pi_app.views.watch import view, watch_local

    console = Console(record=True, width=110, force_terminal=True, color_system="truecolor")
    watch_local(None, model=str(model_dir), seed=SEED, rate=10, duration_s=0.6,
                console=console)
    text = console.export_text()
    assert "test-points" in text and "head-left" in text and "fps" in text
    state = {"status": {"model": "m", "fps": 40, "fps_achieved": 39.9, "late_frames": 2,
                        "master": 0.5, "seed": 1, "tempo": 1, "phase": 0.5, "blackout": True},
             "fixtures": [{"name": "a", "x": 0, "y": 0, "moves": True, "pan_deg": 540,
                           "tilt_deg": 270}],
             "look": {"colour": [[1, 0, 0]], "level": [1.0], "pan": [0.5], "tilt": [0.5]}}
    c2 = Console(record=True, width=100, force_terminal=True, color_system="truecolor")
    c2.print(view(state))
    out = c2.export_text()
    assert "BLACKOUT" in out and "270°" in out and "135°" in out and "late 2" in out


def test_watch_attaches_to_the_daemon(cfg, tmp_path):
    """`scene` over the control socket: the watcher's view of a running show."""
    import dataclasses

    from pi_app.control import ControlClient
    from pi_app.errors import ControlError

    def answers() -> bool:
        try:
            return bool(ControlClient(sock).request("status"))
        except ControlError:
            return False

    sock = tmp_path / "c.sock"
    cfg = cfg.replace(control=dataclasses.replace(cfg.control, socket=str(sock)))
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes, blackout=patch.blackout_frames),
                duration_s=30, control=True)
    th = threading.Thread(target=show.run, daemon=True)
    th.start()
    try:
        # The socket file exists from bind(), before listen(): wait for an answer.
        wait_for(lambda: show.status_snapshot and answers(), 20, "the show to answer")
        res = CliRunner().invoke(main, ["watch", "--socket", str(sock), "--duration", "0.3"])
        assert res.exit_code == 0, res.output
        assert "test-points" in res.output and "par-4" in res.output
        state = ControlClient(sock).request("scene")
        assert [f["name"] for f in state["fixtures"]][:2] == ["head-left", "head-right"]
        assert len(state["look"]["colour"]) == 7
    finally:
        show.stop()
        th.join(5)


# -------------------------------------------------------------------------- web (HTTP)

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TEST_TOKEN = "test-token-Qw3rT9zX"     # the page asks for a token on loopback too


def start_web_show(cfg, *, token: str = TEST_TOKEN, port: int | None = None):
    """A show with the web page on, in a thread: (show, output, base URL)."""
    port = port or _free_port()
    cfg = cfg.replace(preview=PreviewConfig(web=True, port=port, token=token))
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames)
    show = Show(cfg, out, duration_s=60, control=False, presets_dir=tempfile.mkdtemp())
    th = threading.Thread(target=show.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 5
    while not show.status_snapshot and time.monotonic() < deadline:
        time.sleep(0.02)
    show._test_thread = th
    return show, out, f"http://127.0.0.1:{port}/"


def _get(url, headers=None, token=TEST_TOKEN):
    auth = {"X-LatentDMX-Token": token} if token else {}
    req = urllib.request.Request(url, headers={**auth, **(headers or {})})
    with urllib.request.urlopen(req, timeout=3) as r:
        return r.status, r.read()


def _post(url, body, ctype="application/json", headers=None, token=TEST_TOKEN):
    auth = {"X-LatentDMX-Token": token} if token else {}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": ctype, **auth, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def light_slots(cfg) -> np.ndarray:
    lights = {"dimmer", "intensity", "red", "green", "blue", "white", "strobe"}
    return np.array([slot - 1 for (u, slot), (_, attr) in Patch(cfg).slot_map().items()
                     if attr in lights])


@pytest.mark.slow
def test_web_endpoints_and_control(cfg):
    show, out, url = start_web_show(cfg)
    try:
        code, page = _get(url)
        assert code == 200 and b"<canvas" in page and b"blackout" in page
        _, a = _get(url + "state")
        time.sleep(0.3)
        _, b = _get(url + "state")
        a, b = json.loads(a), json.loads(b)
        assert b["status"]["frames"] > a["status"]["frames"]
        assert len(b["look"]["colour"]) == 7 and b["fixtures"][3]["name"] == "par-1"
        assert _post(url + "control", {"cmd": "dim", "args": {"level": 0.25}}) == \
            (200, {"ok": True, "result": {"master": 0.25}})
        code, err = _post(url + "control", {"cmd": "dim", "args": {"level": 3}})
        assert code == 400 and "0..1" in err["error"]
        assert _post(url + "control", {"cmd": "model", "args": {"name": "x"}})[0] == 400
        assert _post(url + "control", {"cmd": "pause"}, ctype="text/plain")[0] == 400
        assert _post(url + "control", {"cmd": "blackout", "args": {"on": True}})[0] == 200
        wait_for(lambda: not out.last_frames[1][light_slots(cfg)].any(), 10,
                 "the blackout's fade reaching dark")
        assert show.pipeline.safety.master == 0.25
        # the whole control vocabulary: the page builds its controls from /vocabulary
        _, v = _get(url + "vocabulary")
        v = json.loads(v)
        names = [c["name"] for c in v["commands"]]
        assert {"seed", "tempo", "model", "preset/recall", "preset/save"} <= set(names)
        assert "nat-aurora" in v["suggest"]["models"]
        assert _post(url + "control", {"cmd": "preset/save", "args": {"name": "w"}})[0] == 200
        assert _post(url + "control", {"cmd": "preset/recall", "args": {"name": "w"}}) == \
            (200, {"ok": True, "result": {"preset": "w", "model": "test-points",
                                          "fade_s": 2.0}})
        code, err = _post(url + "control", {"cmd": "blackout", "args": {"on": "false"}})
        assert code == 400 and "true or false" in err["error"]
        with pytest.raises(urllib.error.HTTPError) as exc:       # DNS rebinding guard
            _get(url + "state", {"Host": "evil.example:8044"})
        assert exc.value.code == 403
    finally:
        show.stop()
        show._test_thread.join(5)


@pytest.mark.slow
def test_web_token_and_lan_refusal(cfg):
    from pi_app.web import check_preview

    with pytest.raises(ConfigError, match="too weak"):
        check_preview(PreviewConfig(web=True, host="0.0.0.0", token="s3cret"))
    check_preview(PreviewConfig(web=True, host="0.0.0.0", token="s3cret-s3cret-s3cret"))
    check_preview(PreviewConfig(web=True, host="::1"))
    show, _, url = start_web_show(cfg, token="s3cret-s3cret-s3cret")
    try:
        with pytest.raises(urllib.error.HTTPError) as exc:
            _get(url + "state", token=None)
        assert exc.value.code == 401
        assert _get(url + "state?token=s3cret-s3cret-s3cret", token=None)[0] == 200
        assert _get(url + "state", token="s3cret-s3cret-s3cret")[0] == 200
        assert _post(url + "control", {"cmd": "status"}, token=None)[0] == 401
    finally:
        show.stop()
        show._test_thread.join(5)


def test_run_refuses_a_weak_web_token(model_dir, tmp_path):
    rig = tmp_path / "lan.toml"
    rig.write_text('[preview]\nhost = "0.0.0.0"\ntoken = "aaaaaaaaaaaaaaaa"\n[[fixtures]]\n'
                   'name = "p"\nprofile = "generic-rgbw-par"\nmode = "4ch"\n')
    res = CliRunner().invoke(main, ["run", "--config", str(rig), "--model", str(model_dir),
                                    "--duration", "0.2", "--web"])
    assert res.exit_code == 2
    assert "preview.token" in res.output and "too weak" in res.output
