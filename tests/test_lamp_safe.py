"""A discharge lamp stays on through every blackout: the rig's dark frame.

Real fixture files whose light channel's 0 switches the lamp off — the GLP Junior Scan 1's
shutter ("Shutter closed, Lamp off after 1min", qlcplus-data), the Stairville B5R's strobe
channel ("No strobe effect, lamp off", qlcplus-data) — beside a fixture whose lamp channel's 0
is lamp on (Griven Kolorado 4000, OFL) and a GDTF spot with a LampControl channel (tests/data).
Imported with `latentdmx fixtures import`, played by real `latentdmx` processes on every output
kind; the end of the show (duration, SIGTERM), `latentdmx darken` from another process
(systemd's ExecStopPost=) and a SIGKILL then darken must leave every dimmer dark and every lamp
on: no light slot is ever written at a value its fixture file calls lamp off or reset.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from olad_fixture import free_port
from procs import REPO, env_for, public_dir, run_cli, stop, wait_for
from udp_capture import UdpCapture

from pi_app.sim.record import read_show

QLC = Path("/usr/share/qlcplus/fixtures")
GLP = QLC / "GLP/GLP-Junior-Scan-1.qxf"
B5R = QLC / "Stairville/Stairville-Beam-Moving-Head-B5R.qxf"
KOLORADO = REPO / "tests/data/fixtures/ofl-corpus/griven/kolorado-4000.json"
ACME = REPO / "tests/data/gdtf/ACME@ACME_AE-610_BEAM@ACME_AE-610_BEAM.gdtf"

pytestmark = pytest.mark.skipif(not (GLP.is_file() and B5R.is_file()),
                                reason="Debian's qlcplus-data is not installed")
pytest_plugins = ["tests.olad_fixture"]

RIG = """
fps = 40
[control]
enabled = false
[[fixtures]]
name = "junior"
profile = "glp-junior-scan-1"
mode = "Mode 1"
address = 1
position = [0.2, 0.5]
[[fixtures]]
name = "b5r"
profile = "stairville-beam-moving-head-b5r"
mode = "16-channel"
address = 20
position = [0.4, 0.5]
[[fixtures]]
name = "kolorado"
profile = "griven-kolorado-4000"
mode = "2ch"
address = 40
position = [0.6, 0.5]
[[fixtures]]
name = "acme"
profile = "acme-acme-ae-610-beam"
mode = "Mode 1 12 DMX"
address = 50
position = [0.8, 0.5]
"""
# 0-based slots of the rig above.
JUNIOR_SHUTTER = 4            # 0..8 "Shutter closed, Lamp off after 1min", 9..15 closed
B5R_SHUTTER = 20              # 0..1 "No strobe effect, lamp off", 2..7 "... lamp on"
B5R_DIMMER = 21
KOLORADO_LAMP = 39            # 0..126 "Lamp on", 127..255 "Lamp off"
KOLORADO_DIMMER = 40
ACME_LAMP = 49 + 11           # GDTF LampControl: 130..139 "Lamp On", 230..239 "Lamp Off"


@pytest.fixture(scope="module")
def profiles() -> Path:
    """The four files imported as a user would, into a fresh config home."""
    home = public_dir("latentdmx-lamp-")
    env = env_for(xdg=public_dir(), XDG_CONFIG_HOME=str(home))
    for f in (GLP, B5R, KOLORADO, ACME):
        r = run_cli("fixtures", "import", str(f), env=env)
        assert r.returncode == 0, r.stdout + r.stderr
    return home


def _lamp_off_values(profiles: Path) -> dict[int, set[int]]:
    """Slot -> the values the fixture *files* call lamp off or reset, read by the independent
    judge's own parser (tests/fixture_judge.py), for the light slots of the rig."""
    from fixture_judge import NEVER, read_raw

    out: dict[int, set[int]] = {}
    for path, mode, base in ((GLP, "Mode 1", 0), (B5R, "16-channel", 19),
                             (KOLORADO, "2ch", 39)):
        for j, ch in enumerate(read_raw(path)[mode]):
            if ch is None:
                continue
            bad = {v for c in ch.caps if NEVER.search(c.text) for v in range(c.lo, c.hi + 1)}
            if bad:
                out[base + j] = bad
    return out


def _assert_dark_and_lamps_on(frame: np.ndarray, profiles: Path, what: str) -> None:
    f = np.asarray(frame[:64], np.uint8)
    assert f[B5R_DIMMER] == 0 and f[KOLORADO_DIMMER] == 0, (what, f[:64])
    assert 9 <= f[JUNIOR_SHUTTER] <= 15, f"{what}: junior's shutter at {f[JUNIOR_SHUTTER]}"
    assert 2 <= f[B5R_SHUTTER] <= 7, f"{what}: B5R's shutter at {f[B5R_SHUTTER]}"
    assert f[KOLORADO_LAMP] <= 126, f"{what}: Kolorado's lamp at {f[KOLORADO_LAMP]}"
    assert 130 <= f[ACME_LAMP] <= 139, f"{what}: the ACME's lamp at {f[ACME_LAMP]}"
    for slot, bad in _lamp_off_values(profiles).items():
        assert int(f[slot]) not in bad, f"{what}: slot {slot + 1} at {f[slot]} is lamp off/reset"


def _rig(profiles: Path, section: str = "") -> tuple[Path, dict]:
    d = public_dir(ram=True)
    cfg = d / "rig.toml"
    cfg.write_text(RIG + section)
    env = env_for(runtime=d, XDG_CONFIG_HOME=str(profiles), STATE_DIRECTORY=str(d / "state"))
    return cfg, env


def test_import_closes_without_switching_the_lamp_off(profiles):
    """The profiles: the junior's shutter closes at 9 (not 0), the B5R's strobe channel is held
    open at 2 (its 0 is lamp off; the dimmer darkens), the Kolorado's lamp is held on."""
    from pi_app.fixtures.profile import load_profile_file

    fx = profiles / "latentdmx" / "fixtures"
    junior = load_profile_file(fx / "glp-junior-scan-1.json").mode("Mode 1")
    b5r = load_profile_file(fx / "stairville-beam-moving-head-b5r.json").mode("16-channel")
    kol = load_profile_file(fx / "griven-kolorado-4000.json").mode("2ch")
    assert junior is not None and b5r is not None and kol is not None
    shutter = junior.channels[JUNIOR_SHUTTER]
    assert (shutter.attr, shutter.min, shutter.max, shutter.dark) == ("dimmer", 240, 240, 9)
    strobe = b5r.channels[1]
    assert (strobe.attr, strobe.min, strobe.max, strobe.dark) == ("strobe", 2, 2, 2)
    assert (kol.channels[0].attr, kol.channels[0].value) == ("hold", 0)


def _sim_run(cfg: Path, env: dict, tmp: Path, *extra: str) -> Path:
    rec = tmp / "show.txt"
    r = subprocess.run([sys.executable, "-m", "pi_app.cli", "run", "--config", str(cfg),
                        "--seed", "3", "--duration", "4", "--record", str(rec), *extra],
                       env={**env, "LATENTDMX_FAKE_CLOCK": "1"}, cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return rec


def _frames(rec: Path) -> np.ndarray:
    """Universe 1's frames of a recording (uint8 [n, 512])."""
    frames, universes, _ = read_show(rec)
    return frames[:, universes.index(1)]


def test_the_show_never_writes_lamp_off_and_ends_dark_with_lamps_on(profiles, tmp_path):
    """Every frame of a recorded show (fade-in, play, fade-out, the last blackout frame): no
    light slot at a lamp-off/reset value; the last frame dark with the lamps on; the flash
    limiter and `safety-check` (against the fixture files) pass."""
    cfg, env = _rig(profiles)
    rec = _sim_run(cfg, env, tmp_path)
    frames = _frames(rec)
    assert len(frames) > 100 and frames[:, B5R_DIMMER].max() > 0       # it played
    bad = _lamp_off_values(profiles)
    for slot, values in bad.items():
        hit = np.isin(frames[:, slot], sorted(values))
        assert not hit.any(), f"slot {slot + 1} at lamp off/reset in {hit.sum()} frames"
    _assert_dark_and_lamps_on(frames[-1], profiles, "the show's last frame")
    r = run_cli("safety-check", str(rec), "--config", str(cfg), env=env)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sacn", "artnet", "ddp"])
def test_every_network_output_ends_dark_with_lamps_on(profiles, kind):
    """A real daemon on a network output, its packets captured on loopback: the last data it
    sends (the blackout its close sends) is the rig's dark frame."""
    cap = UdpCapture(free_port(), bind="127.0.0.1")
    section = {
        "sacn": f'[output]\nkind = "sacn"\n[output.sacn]\nunicast = ["127.0.0.1"]\n'
                f'port = {cap.port}\ndiscovery = false\nsync = false\n',
        "artnet": f'[output]\nkind = "artnet"\n[output.artnet]\nnodes = ["127.0.0.1"]\n'
                  f'port = {cap.port}\n',
        "ddp": f'[output]\nkind = "ddp"\n[output.ddp]\ndestinations = ["127.0.0.1:{cap.port}"]\n',
    }[kind]
    cfg, env = _rig(profiles, section)
    try:
        r = subprocess.run([sys.executable, "-m", "pi_app.cli", "run", "--config", str(cfg),
                            "--seed", "3", "--duration", "3"],
                           env={**env, "LATENTDMX_FAKE_CLOCK": "1"}, cwd=REPO,
                           capture_output=True, text=True, timeout=120)
        cap.settle()
    finally:
        cap.close()
    assert r.returncode == 0, r.stdout + r.stderr
    datas = [_dmx(kind, raw) for *_, raw in cap.packets]
    datas = [d for d in datas if d is not None]
    assert len(datas) > 50 and max(d[B5R_DIMMER] for d in datas) > 0
    _assert_dark_and_lamps_on(datas[-1], profiles, f"{kind}: the last packet")
    bad = _lamp_off_values(profiles)
    for d in datas:
        for slot, values in bad.items():
            assert int(d[slot]) not in values, (kind, slot + 1, int(d[slot]))


def _dmx(kind: str, raw: bytes) -> np.ndarray | None:
    """The 512 slots of one packet, by each protocol's layout, or None (sync, ...)."""
    if kind == "artnet":
        if raw[:8] != b"Art-Net\x00" or int.from_bytes(raw[8:10], "little") != 0x5000:
            return None
        n = int.from_bytes(raw[16:18], "big")
        data = raw[18:18 + n]
    elif kind == "sacn":
        from sacn.messages.data_packet import DataPacket

        try:
            data = bytes(DataPacket.make_data_packet(list(raw)).dmxData)
        except (TypeError, ValueError):
            return None
    else:
        start = 14 if raw[0] & 0b0001_0000 else 10
        data = raw[start:start + (raw[8] << 8 | raw[9])]
    out = np.zeros(512, np.uint8)
    out[:len(data)] = np.frombuffer(data, np.uint8)[:512]
    return out


@pytest.mark.slow
def test_sigterm_sigkill_and_darken_on_olad_keep_the_lamps_on(profiles, olad):
    """The service's ways to end on a real olad: SIGTERM (fade, blackout), then the unit's
    ExecStopPost `latentdmx darken`; and a SIGKILL of a lit show then `darken`, which reads
    olad's current frame. Every time: dimmers 0, shutters closed at a value that keeps the lamp
    on, lamp channels on."""
    section = f'[output]\nkind = "ola"\n[output.ola]\nport = {olad.rpc_port}\n'
    cfg, env = _rig(profiles, section)
    exe = [sys.executable, "-m", "pi_app.cli"]
    for how in ("SIGTERM", "SIGKILL"):
        show = subprocess.Popen([*exe, "run", "--config", str(cfg), "--seed", "3"], env=env,
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        try:
            wait_for(lambda s=show: s.poll() is not None or olad.get_dmx()[B5R_DIMMER] > 40,
                     60, "a lit frame in olad")
            assert show.poll() is None, stop(show)
            if how == "SIGTERM":
                show.send_signal(signal.SIGTERM)
                assert show.wait(timeout=30) == 0
                _assert_dark_and_lamps_on(olad.get_dmx(), profiles, "after SIGTERM")
            else:
                show.send_signal(signal.SIGKILL)
                show.wait(timeout=10)
                time.sleep(0.3)
                assert olad.get_dmx()[B5R_DIMMER] > 0          # olad holds the lit frame
        finally:
            stop(show)
        r = run_cli("darken", "--config", str(cfg), env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        frame = olad.wait_dmx(lambda f: f[B5R_DIMMER] == 0 and f[KOLORADO_DIMMER] == 0, 5.0)
        _assert_dark_and_lamps_on(frame, profiles, f"{how} then darken: {r.stdout.strip()}")


def test_old_last_frames_file_without_dark_values_still_reads(tmp_path):
    """A last-frames file written before dark values existed reads with dark values 0."""
    import json

    from pi_app import laststate

    path = tmp_path / "last.bin"
    head = json.dumps({"v": 1, "pid": os.getpid(), "targets": ["x"], "universes": [1],
                       "light": {"1": [3, 4]}}).encode() + b"\n"
    frame = np.full(512, 7, np.uint8)
    path.write_bytes(head.ljust(laststate.HEADER_BYTES, b" ") + frame.tobytes())
    last = laststate.read(path)
    assert last is not None
    dark = last.dark()[1]
    assert dark[3] == dark[4] == 0 and dark[5] == 7


@pytest.mark.slow
def test_uart_sigterm_and_sigkill_then_darken_keep_the_lamps_on(profiles):
    """The UART (a real pseudo-terminal): the show's end by SIGTERM is the dark frame; after a
    SIGKILL, `darken` sends the dark frame from the show's last frames (kept in RAM, with each
    light slot's dark value), not zeros."""
    from test_stop import PtyReader

    size = 1 + 61                                    # start code + the rig's last slot
    exe = [sys.executable, "-m", "pi_app.cli"]
    for how in ("SIGTERM", "SIGKILL"):
        pty = PtyReader()
        section = (f'[output]\nkind = "uart"\n[output.uart]\ndevice = "{pty.path}"\n'
                   'driver_enable_gpio = -1\n')
        cfg, env = _rig(profiles, section)
        try:
            show = subprocess.Popen([*exe, "run", "--config", str(cfg), "--seed", "3"],
                                    env=env, cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            try:
                wait_for(lambda s=show, p=pty: s.poll() is not None or (
                    len(p.frames(size)) and p.frames(size)[-1][1 + B5R_DIMMER] > 40), 60,
                    "a lit frame on the wire")
                assert show.poll() is None, stop(show)
                show.send_signal(getattr(signal, how))
                show.wait(timeout=30)
                time.sleep(0.3)
            finally:
                stop(show)
            n = len(pty.frames(size))
            if how == "SIGTERM":
                _assert_dark_and_lamps_on(pty.frames(size)[-1][1:], profiles, "UART SIGTERM")
            else:
                assert pty.frames(size)[-1][1 + B5R_DIMMER] > 0        # left lit on the wire
                r = run_cli("darken", "--config", str(cfg), env=env)
                assert r.returncode == 0 and "the show's last frames" in r.stdout, r.stdout
                time.sleep(0.5)
                after = pty.frames(size)[n:]
                assert len(after) >= 3
                _assert_dark_and_lamps_on(after[-1][1:], profiles, "UART SIGKILL + darken")
        finally:
            pty.close()


B5R_LAMP = 19 + 15            # B5R 16-channel: "Lamp Control", 26..100 "Lamp OFF after 5 s"


@pytest.mark.slow
def test_lamps_off_only_when_asked_and_never_under_a_show(profiles, olad):
    """The end of the day: `darken --lamps-off` sends the fixture files' lamp-off values (the
    Kolorado's 127, the B5R's 26) with the dimmers dark; refused, in one line, while a show
    drives the lights; plain `darken` never does."""
    section = f'[output]\nkind = "ola"\n[output.ola]\nport = {olad.rpc_port}\n'
    cfg, env = _rig(profiles, section)
    show = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--config", str(cfg),
                             "--seed", "3"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: show.poll() is not None or olad.get_dmx()[B5R_DIMMER] > 40, 60,
                 "a lit frame in olad")
        hand = env_for(xdg=public_dir(), XDG_CONFIG_HOME=str(profiles))
        r = run_cli("darken", "--config", str(cfg), "--lamps-off", env=hand)
        assert r.returncode != 0 and "never switched off under a running show" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert olad.get_dmx()[KOLORADO_LAMP] <= 126
    finally:
        stop(show)
    r = run_cli("darken", "--config", str(cfg), env=env)
    assert r.returncode == 0, r.stderr
    f = olad.get_dmx()
    assert f[KOLORADO_LAMP] <= 126 and not 26 <= f[B5R_LAMP] <= 100
    r = run_cli("darken", "--config", str(cfg), "--lamps-off", env=env)
    assert r.returncode == 0 and "lamp-off value sent" in r.stdout, r.stdout + r.stderr
    f = olad.get_dmx()
    assert f[KOLORADO_LAMP] >= 127 and 26 <= f[B5R_LAMP] <= 100
    assert 230 <= f[ACME_LAMP] <= 239                  # GDTF "Lamp Off"
    assert f[KOLORADO_DIMMER] == 0 and f[B5R_DIMMER] == 0


def test_a_live_blackout_closes_the_shutter_only_fixture_but_keeps_its_lamp(profiles,
                                                                           monkeypatch):
    """`latentdmx blackout` while the show runs: the dimmers go dark, and the GLP Junior Scan 1,
    whose shutter is its only light (open on every frame while playing), closes too — at 9,
    not at its lamp-off 0. After the blackout it opens again."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(profiles))
    from pi_app.config import parse_config
    from pi_app.pipeline import Pipeline
    from pi_app.runtime import load_model

    cfg = parse_config(RIG, "rig.toml")
    pipe = Pipeline(cfg, load_model(cfg.model), seed=3)
    for k in range(200):
        frame = pipe.frames(k / 40)[1]
    assert frame[JUNIOR_SHUTTER] == 240 and frame[B5R_DIMMER] > 0
    pipe.set_blackout(True, 5.0)
    for k in range(200, 400):
        frame = pipe.frames(k / 40)[1]
        assert frame[JUNIOR_SHUTTER] == 9, k
    _assert_dark_and_lamps_on(frame.copy(), profiles, "live blackout")
    pipe.set_blackout(False, 10.0)
    assert pipe.frames(400 / 40)[1][JUNIOR_SHUTTER] == 240


def test_a_shutter_only_fixture_closes_when_its_light_is_0(profiles, monkeypatch):
    """The GLP Junior Scan 1's shutter is its only light (open at 240, closed at 9): under
    `dim 0` and through the fade-out it closes once its light is 0 (it stayed open at full
    until the final dark frame), never at its lamp-off 0..8; it opens again when the light
    comes back. With hysteresis: each state is held `SWITCH_HOLD_S` at least, so it cannot
    flash, whatever the light does."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(profiles))
    from pi_app.config import parse_config
    from pi_app.pipeline import SWITCH_HOLD_S, Pipeline
    from pi_app.runtime import load_model

    cfg = parse_config(RIG, "rig.toml")
    pipe = Pipeline(cfg, load_model(cfg.model), seed=3)
    shutter = []
    for k in range(1200):
        t = k / 40
        if k == 200:
            pipe.safety.master = 0.0                    # `dim 0`
        elif k == 500:
            pipe.safety.master = 1.0
        elif 700 <= k < 900:                            # the light flickers around 0
            pipe.safety.master = float(k % 3 == 0)
        elif k == 900:
            pipe.safety.master = 1.0
        elif k == 1000:
            pipe.safety.start_fade_out(t)
        shutter.append(int(pipe.frames(t)[1][JUNIOR_SHUTTER]))
    s = np.array(shutter)
    assert set(s.tolist()) <= {9, 240}, "never at its lamp-off 0..8"
    assert s[199] == 240 and (s[300:500] == 9).all(), s[190:320].tolist()
    assert (s[500:700] == 240).any()                    # the light is back: open again
    closed = np.flatnonzero(s[1000:] == 9)
    assert len(closed) and (s[1000 + closed[0]:] == 9).all() and 1000 + closed[0] < 1199
    changes = np.flatnonzero(np.diff(s)) + 1
    assert (np.diff(changes) >= SWITCH_HOLD_S * 40 - 1e-9).all(), changes.tolist()


@pytest.mark.slow
def test_a_shutter_only_fixture_is_seen_by_the_flash_check(profiles, tmp_path):
    """A 40 s recorded show: the Junior Scan's shutter opens and closes with the light, and
    `safety-check` passes, counting the open shutter as full light; the same recording with
    the shutter switched every 3 frames for a second fails as flashing."""
    cfg, env = _rig(profiles)
    rec = _sim_run(cfg, env, tmp_path, "--duration", "40")
    frames = _frames(rec)
    s = frames[:, JUNIOR_SHUTTER]
    assert len(frames) >= 1500 and (s == 240).any() and s[-1] == 9
    r = run_cli("safety-check", str(rec), "--config", str(cfg), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = rec.read_text().splitlines()
    for k in range(400, 440):
        vals = lines[1 + 2 * k].split(" ", 1)[1].split(",")
        vals[JUNIOR_SHUTTER] = "240" if k // 3 % 2 else "9"
        lines[1 + 2 * k] = "1 " + ",".join(vals)
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(lines) + "\n")
    r = run_cli("safety-check", str(bad), "--config", str(cfg), env=env)
    assert r.returncode == 1 and "junior" in r.stdout and "flash" in r.stdout, r.stdout


def test_shutter_only_fixtures_run_ahead_and_roll_back_to_the_same_frames(profiles,
                                                                         monkeypatch):
    """The shutters' open/closed state and hold times are the pipeline's state: a show worked
    out ahead, with `dim 0`, `dim 1` and a pause inside its batches, sends every frame byte
    for byte as a show that never ran ahead."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(profiles))
    from test_run_ahead import same_show

    from pi_app.config import parse_config

    cfg = parse_config(RIG, "rig.toml")
    show = same_show({40: [("dim", {"level": 0.0})], 150: [("dim", {"level": 1.0})],
                      230: [("pause", {})], 300: [("resume", {})]}, config=cfg, seconds=12.0)
    assert show.ahead is not None and show.ahead.rollbacks >= 2
    assert show.pipeline.switch_since.max() > 1.0      # the shutter did close and open
