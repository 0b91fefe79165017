"""`check` is the truth: what `run` or a reload would refuse, or play other than written, is
refused by `latentdmx check` in one line (or warned about, where a user may mean it); models
are probed on 256 latents and timed against the frame period; `safety-check` reads lines of
bounded length."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from test_views import TEST_TOKEN

from pi_app.config import parse_config
from pi_app.errors import ConfigError, ControlError, ModelError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = (ROOT / "pi_app" / "data" / "default.toml").read_text(encoding="utf-8")
PLACE = '[location]\nlatitude = 52.52\nlongitude = 13.40\ntimezone = "Europe/Berlin"\n'
NEXT = dt.date.today().year + 1
KEY = "k3Yq9-2vX_8mWc4ZrT1pLs6NdHf0BgJe"


def cfg(extra: str, path: str = "rig.toml"):
    return parse_config(DEFAULT + "\n" + extra, path)


def refused(extra: str, field: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cfg(extra)
    assert (info.value.field or "").startswith(field), str(info.value)
    assert "\n" not in str(info.value)
    return info.value


def entry(**kw) -> str:
    e = {"on": "sunset+20m", "off": "23:30"} | kw
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in e.items())
    return PLACE + "[[schedule]]\n" + body + "\n"


# -- dates, times, days -----------------------------------------------------------------------
@pytest.mark.parametrize("dates", [["2027-02-29", "2027-03-03"], ["2026-04-31", "2026-05-02"],
                                   ["0000-01-01", "0000-01-02"], ["02-30", "03-01"]])
def test_a_date_that_does_not_exist_is_refused(dates):
    refused(entry(dates=dates), "schedule[1].dates")


def test_a_leap_day_is_a_date():
    cfg(entry(dates=["2028-02-29", "2028-03-03"]))
    cfg(entry(dates=["02-29", "03-01"]))


def test_a_refused_date_never_reaches_the_schedule():
    """On 52dfd6e the schedule raised ValueError at start and on every reload."""
    from pi_app.schedule import Schedule

    with pytest.raises(ConfigError):
        cfg(entry(dates=["2027-02-29", "2027-03-03"]))
    c = cfg(entry(dates=["2028-02-29", "2028-03-03"]))
    Schedule(c.schedule, c.location).state(dt.datetime(2028, 3, 1, 20, tzinfo=dt.UTC))


@pytest.mark.parametrize("on,off", [("9:00", "09:00"), ("sunset", "sunset+0m"),
                                    ("21:30", " 21:30")])
def test_two_spellings_of_one_time_are_not_a_24_hour_window(on, off):
    refused(entry(on=on, off=off), "schedule[1].off")


@pytest.mark.parametrize("on", ["sunset+1000h", "sunset+13h", "sunrise-12h30m"])
def test_a_sun_offset_beyond_12_hours_is_refused(on):
    refused(entry(on=on), "schedule[1].on")


def test_a_window_of_a_day_or_more_is_refused():
    refused(entry(on="sunrise-12h", off="sunset+12h"), "schedule[1].off")
    cfg(entry(on="00:00", off="23:59"))


@pytest.mark.parametrize("days", [["monster"], ["sundae"], ["tuesdays"], ["mo"]])
def test_unknown_day_names_are_refused(days):
    refused(entry(days=days), "schedule[1].days")


@pytest.mark.parametrize("days", [["monday"], ["Tues"], ["thurs"], ["weekends"]])
def test_day_names_and_their_starts_are_days(days):
    cfg(entry(days=days))


def test_one_off_dates_reversed_mixed_or_never_on_their_days_are_refused():
    refused(entry(dates=[f"{NEXT}-12-26", f"{NEXT}-12-20"]), "schedule[1].dates")
    refused(entry(dates=[f"{NEXT}-12-20", "12-26"]), "schedule[1].dates")
    day = dt.date(NEXT, 6, 1)
    other = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][(day.weekday() + 1) % 7]
    refused(entry(dates=[day.isoformat()] * 2, days=[other]), "schedule[1].days")
    cfg(entry(dates=["12-20", "01-06"]))                # every year, over New Year


def test_past_dates_and_a_future_epoch_are_warned_about():
    from pi_app.config_rules import config_warnings

    now = dt.datetime.now(dt.UTC)
    past = cfg(entry(dates=[f"{now.year - 1}-12-20", f"{now.year - 1}-12-26"]))
    lines = config_warnings(past, now)
    assert any("schedule[1].dates" in ln and "never plays again" in ln for ln in lines)
    assert all("\n" not in ln for ln in lines)
    text = DEFAULT.replace('group = ""', 'group = "foyer"').replace(
        'key = ""', f'key = "{KEY}"').replace('epoch = "2026-01-01T00:00:00Z"',
                                              f'epoch = "{NEXT}-06-01T00:00:00Z"')
    lines = config_warnings(parse_config(text, "rig.toml"), now)
    assert any(ln.startswith("rig.toml: sync.epoch:") for ln in lines)
    assert config_warnings(cfg(""), now) == []


# -- names, addresses ------------------------------------------------------------------------
def _sync(**kw) -> str:
    text = DEFAULT.replace('group = ""', f"group = {json.dumps(kw.pop('group', 'foyer'))}")
    text = text.replace('key = ""', f'key = "{KEY}"')
    for k, v in kw.items():
        text = text.replace(f'{k} = "239.192.77.13"', f"{k} = {json.dumps(v)}")
    return text


@pytest.mark.parametrize("group", ["foyer\n", "foyer\r\n"])
def test_a_group_name_with_a_newline_is_refused(group):
    with pytest.raises(ConfigError) as info:
        parse_config(_sync(group=group), "rig.toml")
    assert info.value.field == "sync.group"


@pytest.mark.parametrize("address", ["239.255.0.1", "239.255.250.214", "224.0.0.251",
                                     "224.0.1.1", "239.255.255.250"])
def test_a_sync_address_in_sacn_or_mdns_range_is_refused(address):
    with pytest.raises(ConfigError) as info:
        parse_config(_sync(address=address), "rig.toml")
    assert info.value.field == "sync.address"
    parse_config(_sync(address="239.193.0.9"), "rig.toml")


def test_preset_and_playlist_names_with_a_newline_are_refused():
    refused('[presets."dusk\\n"]\nseed = 3\n', "presets.")
    refused('[playlists.p]\nitems = ["dusk\\n"]\n', "playlists.p.items")


@pytest.mark.parametrize("line", ['cid = "00000000-0000-0000-0000-000000000000"',
                                  'unicast = ["0.0.0.0"]', 'unicast = ["255.255.255.255"]'])
def test_sacn_nil_cid_and_unspecified_unicast_are_refused(line):
    key = line.split(" ")[0]
    text = DEFAULT.replace(f'\n{key} = {"[]" if key == "unicast" else chr(34) * 2}',
                           f"\n{line}", 1)
    assert line in text
    with pytest.raises(ConfigError) as info:
        parse_config(text, "rig.toml")
    assert info.value.field.startswith(f"output.sacn.{key}")


# -- what `run` refuses, `check` refuses -------------------------------------------------------
def _two_universes(text: str) -> str:
    doc = tomllib.loads(text)
    last = len(doc["fixtures"])
    parts = text.split("[[fixtures]]")
    parts[last] = parts[last].replace("universe = 1", "universe = 2") \
        if "universe = 1" in parts[last] else parts[last].rstrip("\n") + "\nuniverse = 2\n"
    return "[[fixtures]]".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("kind,mapping", [("sacn", '{ "1" = 2 }'), ("artnet", '{ "2" = 1 }'),
                                          ("ola", '{ "1" = 2 }')])
def test_universe_map_collisions_are_refused_by_check(kind, mapping, tmp_path):
    text = _two_universes(DEFAULT)
    head, sep, tail = text.partition(f"[output.{kind}]")
    tail = tail.replace("universe_map = {}", f"universe_map = {mapping}", 1)
    path = tmp_path / "rig.toml"
    path.write_text(head + sep + tail)
    res = _cli("check", str(path))
    assert res.returncode == 2 and f"output.{kind}.universe_map" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("kind,universe", [("artnet", 40000), ("sacn", 64000), ("sacn", 0)])
def test_a_rig_universe_the_protocol_has_not_is_refused_not_a_traceback(tmp_path, kind,
                                                                       universe):
    """On 52dfd6e `check` passed it and `run` died with a ValueError traceback (Art-Net)."""
    text = DEFAULT.replace('kind = "sim"', f'kind = "{kind}"', 1)
    i = text.rindex("[[fixtures]]")
    path = tmp_path / "rig.toml"
    path.write_text(text[:i] + text[i:].replace("universe = 1", f"universe = {universe}", 1))
    for cmd in (["check", str(path)], ["run", "--config", str(path), "--duration", "1"]):
        res = _cli(*cmd)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert f"output.{kind}.universe_map: rig universe {universe} has no" in res.stderr
    text = DEFAULT
    path.write_text(text[:i] + text[i:].replace("universe = 1", "universe = 65535", 1))
    assert _cli("check", str(path)).returncode == 0      # sim: the other sections' defaults


@pytest.mark.slow
def test_a_uart_rig_on_two_universes_is_refused_by_check(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text(_two_universes(DEFAULT).replace('kind = "sim"', 'kind = "uart"', 1))
    res = _cli("check", str(path))
    assert res.returncode == 2 and "output.kind" in res.stderr and str(path) in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_audio_file_missing_or_not_sound_is_refused_by_check(tmp_path):
    text_file = tmp_path / "notes.wav"
    text_file.write_text("not a sound\n")
    for f in (tmp_path / "missing.wav", text_file, tmp_path):
        with pytest.raises(ConfigError) as info:
            parse_config(DEFAULT.replace('\nfile = ""', f'\nfile = "{f}"', 1), "rig.toml")
        assert info.value.field == "audio.file"


@pytest.mark.parametrize("host", ["local host", " 127.0.0.1", "[pi.local]"])
def test_a_web_host_the_page_cannot_serve_on_is_refused(host):
    with pytest.raises(ConfigError) as info:
        head, sep, tail = DEFAULT.partition("[preview]")
        tail = tail.replace('host = "127.0.0.1"', f"host = {json.dumps(host)}", 1)
        parse_config(head + sep + tail, "rig.toml")
    assert info.value.field == "preview.host"


# -- playlist items and presets at load ---------------------------------------------------------
@pytest.mark.parametrize("item", ['{ model = "nat-neon", tempo = nan }',
                                  '{ model = "nat-neon", tempo = 0 }',
                                  '{ model = "nat-neon", tempo = "fast" }',
                                  '{ model = "no-such-model" }',
                                  '{ model = "nat-neon", palette = "nope" }'])
def test_a_playlist_item_is_validated_at_load(item):
    refused(f"[playlists.p]\nitems = [{item}]\n", "playlists.p.items[0]")


def test_config_preset_fields_are_validated_at_load():
    refused("[presets.a]\nphase = -1.0\n", "presets.a.phase")
    refused('[presets.a]\nmodel = "no-such-model"\n', "presets.a.model")
    cfg("[presets.a]\nphase = 12.5\n")


@pytest.mark.parametrize("field,value", [("tempo", "NaN"), ("tempo", "0"), ("master", "2"),
                                         ("phase", "-1"), ("phase", "Infinity")])
def test_a_saved_preset_with_bad_numbers_is_unreadable_not_fatal(tmp_path, field, value):
    from pi_app.presets import PresetStore

    doc = {"schema": 1, "name": "p", "model": "nat-aurora", "seed": 1, "phase": 0.0,
           "tempo": 1.0, "master": 1.0}
    text = json.dumps(doc).replace(f'"{field}": {json.dumps(doc[field])}',
                                   f'"{field}": {value}')
    (tmp_path / "p.json").write_text(text)
    with pytest.raises(ControlError, match="unreadable"):
        PresetStore(tmp_path).get("p")


@pytest.mark.slow
def test_playlist_start_with_a_bad_tempo_cannot_reach_the_daemon(tmp_path):
    """On 52dfd6e `tempo = nan` in a playlist item passed check and killed the daemon on
    `playlist start`; now the config never loads, so a reload keeps the old one."""
    path = tmp_path / "rig.toml"
    path.write_text(DEFAULT + '\n[playlists.p]\nitems = [{ model = "nat-neon", tempo = nan }]'
                              '\nevery = "10s"\n')
    res = _cli("check", str(path))
    assert res.returncode == 2 and "playlists.p.items[0].tempo" in res.stderr


# -- models ------------------------------------------------------------------------------------
def _scaled(tmp_path: Path, name: str, key: str, factor: float) -> Path:
    from safetensors.numpy import load_file, save_file

    dst = tmp_path / f"{name}-x{factor:g}"
    shutil.copytree(ROOT / "models" / name, dst)
    w = load_file(str(dst / "model.safetensors"))
    with np.errstate(over="ignore"):
        w[key] = (w[key] * np.float32(factor)).astype(np.float32)
    save_file(w, str(dst / "model.safetensors"))
    return dst


@pytest.mark.parametrize("name,key,factor", [("nat-aurora", "net.0.weight", 1e38),
                                             ("nat-aurora", "net.2.weight", 1e38),
                                             ("nat-neon", "net.0.weight", 3e37)])
def test_a_model_that_overflows_for_some_latents_is_refused(tmp_path, name, key, factor):
    from pi_app.runtime import load_model

    folder = _scaled(tmp_path, name, key, factor)
    with pytest.raises(ModelError, match="overflows"):
        load_model(folder)


def test_the_probe_tries_256_latents():
    from pi_app.runtime import PROBE_LATENTS, probe_latents

    assert PROBE_LATENTS >= 256 and probe_latents(16).shape == (PROBE_LATENTS, 16)
    assert np.isfinite(probe_latents(16)).all()


def _heavy_model(folder: Path) -> Path:
    """An image model whose one frame costs tens of ms here (400 convolutions of 64
    channels: about 950 M multiply-adds; 100 of them took 9 ms on a newer NumPy, under the
    11.4 ms budget), well over half the period at 44 fps."""
    sys.path.insert(0, str(ROOT))
    from safetensors.numpy import load_file, save_file

    from bench.fuzz_inputs import _tiny_net

    convs = [layer for _ in range(400) for layer in (("conv", 64, 64), ("relu",))]
    _tiny_net(folder, "iae", [("linear", 4, 64 * 16), ("relu",), ("reshape", [64, 4, 4]),
                              ("upsample", 2), *convs, ("conv", 64, 3), ("sigmoid",)],
              [8, 8, 3])
    w = load_file(str(folder / "model.safetensors"))      # a scale that stays finite
    save_file({k: (v * np.float32(0.2 / np.sqrt(v[0].size)) if v.ndim == 4 else v)
               for k, v in w.items()}, str(folder / "model.safetensors"))
    return folder


@pytest.mark.slow
def test_a_model_slower_than_half_the_period_is_refused_with_the_figure(tmp_path):
    """On 52dfd6e such a model loaded and played with most frames late, no warning."""
    folder = _heavy_model(tmp_path / "heavy")
    path = tmp_path / "rig.toml"
    path.write_text(DEFAULT.replace('model = "nat-aurora"', f'model = "{folder}"', 1)
                    .replace("fps = 40", "fps = 44", 1))
    for cmd in (["check", str(path)], ["run", "--config", str(path), "--duration", "1"]):
        res = _cli(*cmd)
        assert res.returncode == 2, res.stderr
        err = res.stderr.strip().splitlines()
        assert len(err) == 1 and "ms a frame" in err[0] and "11.4 ms" in err[0], err


# -- safety-check ------------------------------------------------------------------------------
@pytest.mark.slow
def test_safety_check_reads_a_huge_single_line_in_bounded_memory(tmp_path):
    rec = tmp_path / "show.txt"
    with open(rec, "wb") as fh:
        fh.write(b"OLA Show\n1 ")
        chunk = b"9" * (1 << 20)
        for _ in range(200):                        # a 200 MB line with no end
            fh.write(chunk)
    code = ("import resource, subprocess, sys\n"
            f"r = subprocess.run([sys.executable, '-m', 'pi_app.cli', 'safety-check', "
            f"{str(rec)!r}], capture_output=True, text=True)\n"
            "print(r.returncode); print(r.stderr.strip())\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120).stdout.splitlines()
    rss_mb = int(out[-1]) / 1024
    err = out[1:-1]
    assert out[0] != "0" and len(err) == 1, out
    assert str(rec) in err[0] and "line 2" in err[0] and "Traceback" not in err[0]
    assert rss_mb < 250, f"{rss_mb:.0f} MB for a 200 MB line"


def _cli(*args: str) -> subprocess.CompletedProcess:
    import os
    import tempfile

    env = dict(os.environ, LATENTDMX_FAKE_CLOCK="1")
    tmp = tempfile.mkdtemp(prefix="ldmx-truth-")
    env.update(XDG_RUNTIME_DIR=tmp, STATE_DIRECTORY=tmp + "/state")
    return subprocess.run([sys.executable, "-m", "pi_app.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


# -- a running daemon ------------------------------------------------------------------------
@pytest.mark.slow
def test_a_daemon_rejects_a_reload_to_a_date_that_does_not_exist(tmp_path):
    """On 52dfd6e the reload logged a ValueError traceback (and the same config made `run`
    crash at start, so the service crash-looped); now one line, and the show goes on."""
    import signal
    import time

    from test_daemon import start, status

    config = tmp_path / "rig.toml"
    config.write_text(DEFAULT)
    proc = start(tmp_path, config)
    try:
        assert status(tmp_path)["frames"] >= 0
        config.write_text(DEFAULT + "\n" + entry(on="00:00", off="23:59",
                                                  dates=["2027-02-29", "2027-03-03"]))
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        before = status(tmp_path)
        time.sleep(0.5)
        assert status(tmp_path)["frames"] > before["frames"] and proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    rejected = [ln for ln in out.splitlines() if "reload rejected" in ln]
    assert len(rejected) == 1 and "schedule[1].dates" in rejected[0], out
    assert "Traceback" not in out
    res = _cli("run", "--config", str(config), "--duration", "1")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "schedule[1].dates" in res.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_check_prints_each_warning_on_one_line_and_passes(tmp_path):
    last = dt.date.today().year - 1
    path = tmp_path / "rig.toml"
    path.write_text(DEFAULT + "\n" + entry(dates=[f"{last}-12-20", f"{last}-12-26"]))
    res = _cli("check", str(path))
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("warning: ")]
    assert any(ln.startswith(f"warning: {path}: schedule[1].dates: ") and
               ln.endswith("for every year)") for ln in lines), res.stdout


@pytest.mark.slow
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_the_web_page_serves_on_an_ipv6_address(host):
    """On 52dfd6e `check` passed `host = "::"`/`"::1"` and `run --web` refused it."""
    import socket
    import tempfile
    import threading
    import time
    import urllib.request

    from pi_app.config import PreviewConfig, load_config
    from pi_app.outputs.sim import SimOutput
    from pi_app.patch import Patch
    from pi_app.show import Show

    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    cfg = load_config(None)
    cfg = cfg.replace(preview=PreviewConfig(web=True, host=host, port=port, token=TEST_TOKEN))
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes, blackout=patch.blackout_frames),
                duration_s=30, control=False, presets_dir=tempfile.mkdtemp())
    th = threading.Thread(target=show.run, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                req = urllib.request.Request(f"http://[::1]:{port}/state",
                                             headers={"Host": f"[::1]:{port}",
                                                      "X-LatentDMX-Token": TEST_TOKEN})
                with urllib.request.urlopen(req, timeout=3) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        show.stop()
        th.join(10)


@pytest.mark.slow
def test_a_playlist_or_preset_model_too_slow_is_refused_naming_its_field(tmp_path):
    folder = _heavy_model(tmp_path / "heavy")
    path = tmp_path / "rig.toml"
    path.write_text(DEFAULT.replace("fps = 40", "fps = 44", 1) +
                    f'\n[playlists.p]\nitems = [{{ model = "{folder}" }}]\n')
    res = _cli("check", str(path))
    assert res.returncode == 2, res.stdout
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "playlists.p.items[0].model" in err[0] and "ms a frame" in err[0]


def test_a_reload_that_changes_the_group_needs_a_restart(tmp_path, caplog):
    """On 52dfd6e a reload into another [sync] section was "applied": the config changed,
    the group the member plays in did not."""
    import logging

    from pi_app.clock import FastClock
    from pi_app.config import load_config
    from pi_app.outputs.sim import SimOutput
    from pi_app.patch import Patch
    from pi_app.show import Show

    path = tmp_path / "rig.toml"
    path.write_text(_sync(group="foyer").replace('interface = ""', 'interface = "lo"'))
    cfg = load_config(path)
    path.write_text(_sync(group="hall").replace('interface = ""', 'interface = "lo"'))
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes, blackout=patch.blackout_frames),
                duration_s=1.0, control=False, config_path=path, clock=FastClock,
                presets_dir=tmp_path / "presets")
    show.lockstep = None                  # alone (no LAN here): only the reload is tried
    show.pipeline.lockstep = show.director.nominal = False
    show.listeners.append(lambda s: s.request_reload() if s.frames_out == 5 else None)
    with caplog.at_level(logging.INFO, logger="latentdmx"):
        assert show.run() == 0
    assert any("changes to sync need a restart" in r.getMessage() for r in caplog.records)
    assert show.config.sync.group == "foyer"
