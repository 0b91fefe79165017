"""Health you can watch: the `health` vocabulary entry, ``GET /metrics`` (read by Prometheus'
own parser, behind the page's token rules), the flash limiter's intervention count, and the
figures at an hour, a day, a month and a year of show time."""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_views import TEST_TOKEN, start_web_show

from pi_app import scene as sc
from pi_app.clock import FastClock
from pi_app.config import default_config_path, load_config
from pi_app.health import health_of, prometheus_text, quantile
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.safety import Safety
from pi_app.show import WORK_SAMPLES, Show

FIGURES = {"state", "frames_sent", "frames_late", "fps", "fps_achieved", "frame_work_p50_ms",
           "frame_work_p99_ms", "output_errors", "limiter_interventions", "group_members",
           "group_offset_ms", "audio_locked", "music", "bpm", "rss_bytes", "uptime_s",
           "cpu_temp_c", "config_hash"}


def metrics(families) -> dict[str, float]:
    out = {}
    for fam in families:
        for s in fam.samples:
            label = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[s.name + (f"{{{label}}}" if label else "")] = s.value
    return out


def scrape(url: str, headers: dict[str, str]) -> tuple[int, str, str]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, "", exc.read().decode()


@pytest.mark.slow
def test_metrics_on_the_page_server_behind_its_token(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text(default_config_path().read_text(), encoding="utf-8")
    show, _, url = start_web_show(load_config(path))
    try:
        while show.frames_out < 20:
            time.sleep(0.05)
        assert scrape(url + "metrics", {})[0] == 401                   # no token
        assert scrape(url + "metrics", {"Authorization": "Bearer wrong-token-123456"})[0] \
            == 401
        time.sleep(0.3)                                                  # its back-off
        seen = []
        for headers, query in (({"X-LatentDMX-Token": TEST_TOKEN}, ""),
                               ({"Authorization": f"Bearer {TEST_TOKEN}"}, ""),
                               ({}, f"?token={TEST_TOKEN}")):
            status, ctype, text = scrape(url + "metrics" + query, headers)
            assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
            seen.append(metrics(text_string_to_metric_families(text)))
        m = seen[-1]
        assert m["latentdmx_frames_sent_total"] >= seen[0]["latentdmx_frames_sent_total"] > 0
        assert m["latentdmx_frames_late_total"] >= 0
        assert m["latentdmx_fps_target"] == 40.0
        p50 = m["latentdmx_frame_work_seconds{quantile=0.5}"]
        p99 = m["latentdmx_frame_work_seconds{quantile=0.99}"]
        assert 0 < p50 <= p99 and p50 < 0.025          # (p99: a loaded test machine)
        assert m["latentdmx_output_errors_total"] == 0 and m["latentdmx_output_ok"] == 1
        assert m["latentdmx_limiter_interventions_total"] >= 0
        assert m["latentdmx_group_members"] == 0
        assert m["process_resident_memory_bytes"] > 10e6
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        info = [k for k in m if k.startswith("latentdmx_info{")]
        assert len(info) == 1 and f"config_hash={digest}" in info[0] and "state=playing" in \
            info[0]
        # the same figures from the vocabulary (the CLI's `latentdmx health`)
        h = show.handle_control("health", {})
        assert FIGURES <= set(h) and h["config_hash"] == digest
        assert h["frames_sent"] >= m["latentdmx_frames_sent_total"]
    finally:
        show.stop()
        show._test_thread.join(10)


@pytest.mark.slow
def test_the_frame_loop_keeps_a_bounded_window_of_frame_work():
    cfg = load_config(None)
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes, blackout=patch.blackout_frames),
                duration_s=WORK_SAMPLES / cfg.fps + 10, control=False, clock=FastClock)
    show.run()
    assert len(show.work_s) == WORK_SAMPLES                    # never more, however long
    h = health_of(show)
    assert h["frames_sent"] == show.frames_out > WORK_SAMPLES
    assert 0 < h["frame_work_p50_ms"] <= h["frame_work_p99_ms"]


def test_quantile_is_nearest_rank():
    assert quantile([], 0.5) == 0.0
    xs = [float(i) for i in range(1, 101)]
    assert quantile(xs, 0.5) == 50.0 and quantile(xs, 0.99) == 99.0
    assert quantile(xs[::-1], 0.99) == 99.0 and quantile([3.0], 0.99) == 3.0


def test_limiter_counts_each_time_it_starts_holding_light_back():
    cfg = load_config(None)
    patch = Patch(cfg)
    safety = Safety(cfg, patch, cfg.fps)
    n = len(patch.fixtures)
    dark, full = sc.empty_scene(n), sc.empty_scene(n)
    full[:, sc.LIGHT] = 1.0
    t = 0.0
    for _ in range(int(cfg.fps * 5)):                   # steady dark: nothing to hold back
        safety(dark, t)
        t += 1 / cfg.fps
    assert safety.interventions == 0
    for k in range(int(cfg.fps * 4)):                   # a 10 Hz strobe asked for
        safety(full if (k // 2) % 2 else dark, t)
        t += 1 / cfg.fps
    first = safety.interventions
    assert first >= 1
    for _ in range(int(cfg.fps * 10)):                  # steady: it lets go, counts nothing
        safety(dark, t)
        t += 1 / cfg.fps
    assert safety.interventions == first


@pytest.mark.parametrize("seconds", [3600, 86400, 30 * 86400, 365 * 86400])
def test_figures_stay_exact_over_long_shows(seconds):
    """Counters and uptime of an hour, a day, a month and a year at 44 fps come out exact
    (integers in floats up to 2**53: a year of frames is ~1.4e9)."""
    frames = 44 * seconds
    h = {"state": "playing", "frames_sent": frames, "frames_late": frames // 1000,
         "fps_achieved": 44.0, "fps": 44.0, "frame_work_p50_ms": 0.4, "frame_work_p99_ms": 2.5,
         "output": "sim", "output_ok": True, "output_errors": frames // 7,
         "limiter_interventions": frames // 13, "group_members": 3, "group_offset_ms": -0.25,
         "audio_locked": True, "bpm": 128.0, "rss_bytes": 123_456_789,
         "uptime_s": float(seconds) + 0.1, "cpu_temp_c": None, "config_hash": "0" * 16,
         "version": "1"}
    m = metrics(text_string_to_metric_families(prometheus_text(h)))
    assert m["latentdmx_frames_sent_total"] == frames
    assert m["latentdmx_output_errors_total"] == frames // 7
    assert m["latentdmx_limiter_interventions_total"] == frames // 13
    assert m["latentdmx_uptime_seconds"] == float(seconds) + 0.1
    assert m["latentdmx_group_offset_seconds"] == -0.00025
    assert "latentdmx_cpu_temperature_celsius" not in m                  # not readable: left out
    assert np.isclose(m["latentdmx_frame_work_seconds{quantile=0.99}"], 0.0025)


def test_the_config_hash_is_of_the_file_as_loaded_and_follows_a_reload(tmp_path):
    path = tmp_path / "rig.toml"
    first = default_config_path().read_text()
    path.write_text(first)
    cfg = load_config(path)
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes), control=False, config_path=path,
                presets_dir=tmp_path / "presets")
    second = first + "\n# edited\n[palettes.warm]\nkelvin = 2700\n"
    path.write_text(second)                          # edited, not yet reloaded
    assert health_of_hash(show) == hashlib.sha256(first.encode()).hexdigest()[:16]
    show._reload(0.0)
    assert health_of_hash(show) == hashlib.sha256(second.encode()).hexdigest()[:16]


def health_of_hash(show) -> str:
    from pi_app.health import config_hash

    return config_hash(show.config)
