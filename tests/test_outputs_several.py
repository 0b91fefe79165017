"""Several outputs in one show (``[[outputs]]``): a UART (a pty pair, as in test_output_uart)
and an sACN receiver on loopback fed by one show at once, the same frames on the same tick;
the blackout, `darken`, the claims, doctor, the service's allow-list and health for every
output; one line for every mistake from `check` and `run` alike."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import test_output_uart
from network_show import TWO_UNIVERSE_RIG
from test_output_ddp import WledStyleReceiver
from test_output_uart import packets
from udp_capture import UdpCapture

from pi_app import allow
from pi_app.claims import Claim, ClaimError
from pi_app.config import parse_config
from pi_app.errors import ConfigError
from pi_app.fixtures.profile import LIGHT_KINDS
from pi_app.health import prometheus_text
from pi_app.outputs import output_for
from pi_app.outputs.several import MultiOutput
from pi_app.patch import Patch

pty = test_output_uart.pty                  # the fixture: a pty pair standing for the UART

sacn_messages = pytest.importorskip("sacn.messages.data_packet")
from sacn.messages.data_packet import DataPacket  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAR = 'profile = "generic-rgbw-par"\nmode = "4ch"\n'


def env(tmp_path: Path) -> dict:
    return {**os.environ, "STATE_DIRECTORY": str(tmp_path / "state"),
            "RUNTIME_DIRECTORY": str(tmp_path / "run"), "PYTHONPATH": str(ROOT)}


def light_slots(patch, universe: int) -> list[int]:
    return [f.address - 1 + j for f in patch.fixtures if f.universe == universe
            for j, ch in enumerate(f.mode.channels) if ch.attr in LIGHT_KINDS]


def sacn_data(cap: UdpCapture, universe: int) -> list[bytes]:
    """The DMX data of every sACN data packet for `universe`, in order (sACN's own parser;
    stream-terminated packets left out)."""
    out = []
    for _, _, _, raw in cap.packets:
        if raw[18:22] != b"\x00\x00\x00\x04":          # E1.31 root vector: data
            continue
        p = DataPacket.make_data_packet(raw)
        if p.universe == universe and not p.option_StreamTerminated:
            out.append(bytes(p.dmxData))
    return out


@pytest.fixture
def events(monkeypatch):
    """Every write of the Serial the UART output opens (a pty makes no BREAK, as in
    test_output_uart)."""
    import serial

    log: list[tuple] = []

    class RecordingSerial(serial.Serial):
        def _update_break_state(self):
            log.append(("break", self._break_state))

        def write(self, data):
            log.append(("write", bytes(data)))
            return super().write(data)

    monkeypatch.setattr(serial, "Serial", RecordingSerial)
    return log


# -- one show, two outputs ------------------------------------------------------------------
def test_one_show_feeds_a_uart_and_an_sacn_receiver_the_same_frames(tmp_path, monkeypatch,
                                                                      pty, events):
    """The head (universe 1) on the UART, the pars (universe 2) over sACN: every frame the
    show sends reaches both on its tick; the last frame on both is the blackout."""
    from pi_app.clock import FrameClock
    from pi_app.show import Show

    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "run"))
    cap = UdpCapture(0, bind="127.0.0.1")
    cfg = parse_config(
        TWO_UNIVERSE_RIG +
        f'[[outputs]]\nkind = "uart"\nuniverses = [1]\ndevice = "{pty.path}"\n'
        f'[[outputs]]\nkind = "sacn"\nuniverses = [2]\nunicast = ["127.0.0.1"]\n'
        f'port = {cap.port}\ndiscovery = false\n'
        "[control]\nenabled = false\n[safety]\nfade_in_s = 0.0\nfade_out_s = 0.0\n",
        str(tmp_path / "rig.toml"))
    patch = Patch(cfg)
    out = output_for(cfg, patch)
    assert isinstance(out, MultiOutput) and out.name == "uart+sacn"
    assert [p.universes for _, p in out.parts] == [(1,), (2,)]
    show = Show(cfg, out, seed=3, duration_s=1.0, control=False, clock=FrameClock)
    sent: list[dict[int, bytes]] = []
    show.listeners.append(lambda s: sent.append(
        {u: bytes(f) for u, f in s.output.last_frames.items()}))
    try:
        assert show.run() == 0
        cap.settle()
    finally:
        cap.close()
    slots = out.parts[0][1].slots                       # the UART stops at its last slot
    shown_u1 = [bytes(p[1:]) for p in packets(events)]
    shown_u2 = sacn_data(cap, 2)
    played = [f for f in sent]
    dark = {u: bytes(patch.blackout_frames({u: np.frombuffer(played[-1][u], np.uint8)})[u])
            for u in (1, 2)}
    # every frame of the show went to sACN, in order, then the blackout (the close's too)
    assert shown_u2[:len(played)] == [f[2] for f in played]
    assert set(shown_u2[len(played):]) == {dark[2]}
    # the UART sends the newest frame at its own pace: only frames the show sent, in order
    wanted = [f[1][:slots] for f in played] + [dark[1][:slots]]
    pos = 0
    for pk in shown_u1:
        while pos < len(wanted) and wanted[pos] != pk:
            pos += 1
        assert pos < len(wanted), "the UART sent a frame the show never sent"
    assert shown_u1[-1] == dark[1][:slots]
    assert len(set(shown_u1)) > 10 and len(set(shown_u2)) > 10      # the show moved
    assert any(played[5][1][i] for i in light_slots(patch, 1))        # lit, then dark:
    assert any(played[5][2][i] for i in light_slots(patch, 2))
    assert not any(shown_u1[-1][i] for i in light_slots(patch, 1))
    assert not any(shown_u2[-1][i] for i in light_slots(patch, 2))
    h = out.health()
    assert [p["label"] for p in h["outputs"]] == ["uart", "sacn"]
    assert h["frames_sent"] == len(played) + 1


def test_one_output_that_fails_still_lets_the_others_have_the_frame(tmp_path):
    """A part that raises (its device gone) is raised after the other parts have the frame,
    and counted against that part in health."""
    cfg = _sim_pair(tmp_path)
    out = output_for(cfg, Patch(cfg))
    (_, a), (_, b) = out.parts

    def broken(frames):
        raise OSError("gone")
    with out:
        a._send = broken                                  # type: ignore[method-assign]
        with pytest.raises(OSError):
            out.send({1: np.full(512, 3, np.uint8), 2: np.full(512, 4, np.uint8)})
        assert b.frames_sent == 1 and b.last_frames[2][0] == 4
        h = out.health()
        assert h["outputs"][0]["raised"] == 1 and "raised" not in h["outputs"][1]


def _sim_pair(tmp_path: Path, extra: str = ""):
    return parse_config('[[outputs]]\nkind = "sim"\nuniverses = [1]\n'
                        '[[outputs]]\nkind = "sim"\nuniverses = [2]\n' + extra +
                        f'[[fixtures]]\nname = "a"\n{PAR}[[fixtures]]\nname = "b"\n{PAR}'
                        'universe = 2\n', str(tmp_path / "rig.toml"))


# -- claims -----------------------------------------------------------------------------------
def test_one_show_claims_every_output_and_a_second_is_refused_on_any_of_them(tmp_path):
    cap1, cap2 = UdpCapture(0, bind="127.0.0.1"), UdpCapture(0, bind="127.0.0.1")
    try:
        cfg = parse_config(
            f'[[outputs]]\nkind = "ddp"\nuniverses = [1]\n'
            f'destinations = ["127.0.0.1:{cap1.port}"]\n'
            f'[[outputs]]\nkind = "artnet"\nuniverses = [2]\nnodes = ["127.0.0.1"]\n'
            f'port = {cap2.port}\n'
            f'[[fixtures]]\nname = "a"\n{PAR}[[fixtures]]\nname = "b"\n{PAR}universe = 2\n',
            str(tmp_path / "rig.toml"))
        out = output_for(cfg, Patch(cfg))
        targets = out.targets()
        assert any(t.startswith("ddp:") for t in targets)
        assert any(t.startswith("artnet:") for t in targets)
        with Claim(targets, "show"):
            for t in targets:
                with pytest.raises(ClaimError):
                    Claim([t], "identify")
    finally:
        cap1.close()
        cap2.close()


def test_two_outputs_on_the_same_lights_are_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        cfg = parse_config(
            '[[outputs]]\nkind = "sacn"\nuniverses = [1]\nunicast = ["192.0.2.5"]\n'
            '[[outputs]]\nkind = "sacn"\nuniverses = [2]\nunicast = ["192.0.2.5"]\n'
            'universe_map = { "2" = 1 }\nsync = false\n'
            f'[[fixtures]]\nname = "a"\n{PAR}[[fixtures]]\nname = "b"\n{PAR}universe = 2\n',
            str(tmp_path / "rig.toml"))
        output_for(cfg, Patch(cfg))
    assert err.value.field == "outputs[2]" and "both drive sacn:192.0.2.5:5568/u1" in str(
        err.value)


def test_two_sacn_outputs_to_the_same_receivers_need_their_own_sync_universe(tmp_path):
    two = ('[[outputs]]\nkind = "sacn"\nuniverses = [1]\nunicast = ["192.0.2.5", "n.lan"]\n'
           '[[outputs]]\nkind = "sacn"\nuniverses = [2]\nunicast = ["n.lan"]\n')
    with pytest.raises(ConfigError) as err:
        parse_config(two + RIG2, "rig.toml")
    assert err.value.field == "outputs[2].sync_universe" and "63998" in err.value.fix
    parse_config(two + "sync_universe = 63998\n" + RIG2, "rig.toml")
    parse_config(two.replace('["n.lan"]', '["m.lan"]') + RIG2, "rig.toml")   # other nodes


# -- mistakes: one line, check and run alike ---------------------------------------------------
RIG2 = f'[[fixtures]]\nname = "a"\n{PAR}[[fixtures]]\nname = "b"\n{PAR}universe = 2\n'


@pytest.mark.parametrize("outputs, field, words", [
    ('[[outputs]]\nkind = "sim"\nuniverses = [1, 2]\n[[outputs]]\nkind = "sim"\n'
     'universes = [2]\n', "outputs[2].universes", "also sent by outputs[1]"),
    ('[[outputs]]\nkind = "sim"\nuniverses = [1]\n', "outputs", "universe 2 (fixture 'b') "
     "goes to no output"),
    ('[[outputs]]\nkind = "sim"\nuniverses = [1, 2, 3]\n', "outputs[1].universes",
     "no fixture is patched in universe 3"),
    ('[[outputs]]\nkind = "dmx"\nuniverses = [1, 2]\n', "outputs[1].kind", "unknown output"),
    ('[[outputs]]\nkind = "sim"\n', "outputs[1].universes", "no universes"),
    ('[[outputs]]\nkind = "sim"\nuniverses = [1, 2]\ndevice = "/dev/x"\n',
     "outputs[1].device", "unknown key"),
    ('[[outputs]]\nkind = "uart"\nuniverses = [1, 2]\n', "outputs[1].universes",
     "one universe"),
    ('[[outputs]]\nkind = "sim"\nuniverses = [1]\n[[outputs]]\nkind = "ddp"\n'
     'universes = [2]\ndestinations = ["wled_strip.local"]\n', "outputs[2].destinations[1]",
     "not an IPv4 address or a host name"),
    ('[[outputs]]\nkind = "sim"\nuniverses = [1]\n[[outputs]]\nkind = "sacn"\n'
     'universes = [2]\nunicast = ["-node.lan"]\n', "outputs[2].unicast[0]",
     "not an IPv4 address or a host name"),
    ('[[outputs]]\nkind = "sim"\nuniverses = [1]\n[[outputs]]\nkind = "artnet"\n'
     'universes = [2]\nnodes = ["10.0.0.300"]\n', "outputs[2].nodes[0]",
     "not an IPv4 address or a host name"),
    ('[[outputs]]\nkind = "sim"\nuniverses = [1]\n[[outputs]]\nkind = "sacn"\n'
     'universes = [2]\nuniverse_map = { "2" = 64000 }\n', "outputs[2].universe_map",
     "1..63999"),
    ('[output]\nkind = "ola"\n[[outputs]]\nkind = "sim"\nuniverses = [1, 2]\n',
     "output.kind", "beside [[outputs]]"),
    ('[output.uart]\ndevice = "/dev/ttyAMA0"\n[[outputs]]\nkind = "uart"\nuniverses = [1]\n'
     '[[outputs]]\nkind = "sim"\nuniverses = [2]\n', "output.uart", "not read when there "
     "are [[outputs]]"),
])
def test_a_mistake_in_outputs_is_one_line_from_check_and_run(tmp_path, outputs, field, words):
    rig = tmp_path / "rig.toml"
    rig.write_text(outputs + RIG2)
    for args in (["check", str(rig)], ["run", "--config", str(rig), "--duration", "1"]):
        done = subprocess.run([sys.executable, "-m", "pi_app.cli", *args], env=env(tmp_path),
                              capture_output=True, text=True, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, (args, done.stderr)
        assert lines[0].startswith(f"error: {rig}: {field}: "), lines[0]
        assert words in lines[0]


def test_host_names_are_accepted_by_check(tmp_path):
    rig = tmp_path / "rig.toml"
    rig.write_text('[[outputs]]\nkind = "ddp"\nuniverses = [1]\n'
                   'destinations = ["wled-strip.local", "Node-2.lan.:4049"]\n'
                   '[[outputs]]\nkind = "sacn"\nuniverses = [2]\nunicast = ["localhost"]\n'
                   + RIG2)
    done = subprocess.run([sys.executable, "-m", "pi_app.cli", "check", str(rig)],
                          env=env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "output ddp+sacn" in " ".join(done.stdout.split())     # (wrapped on a long path)


# -- darken, doctor, service-network, health ------------------------------------------------
def test_darken_darkens_every_output(tmp_path):
    """`latentdmx darken` on a show of a DDP strip and an Art-Net node: both get dark frames
    (no last frames known: heads to park, light 0), one line each."""
    ddp, art = UdpCapture(0, bind="127.0.0.1"), UdpCapture(0, bind="127.0.0.1")
    rig = tmp_path / "rig.toml"
    rig.write_text(f'[[outputs]]\nkind = "ddp"\nuniverses = [1]\n'
                   f'destinations = ["127.0.0.1:{ddp.port}"]\n'
                   f'[[outputs]]\nkind = "artnet"\nuniverses = [2]\nnodes = ["localhost"]\n'
                   f'port = {art.port}\n' + RIG2)
    try:
        done = subprocess.run([sys.executable, "-m", "pi_app.cli", "darken", "--config",
                               str(rig)], env=env(tmp_path), capture_output=True, text=True,
                              timeout=60)
        ddp.settle()
        art.settle()
    finally:
        ddp.close()
        art.close()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("ddp: blackout sent to ddp:127.0.0.1:")
    assert lines[1].startswith("artnet: blackout sent to artnet:localhost:")
    rx = WledStyleReceiver(512)
    for _, _, _, raw in ddp.packets:
        rx.feed(raw)
    assert len(rx.shown) >= 5 and not any(any(s[:4]) for s in rx.shown)
    dmx = [raw for _, _, _, raw in art.packets if raw[8:10] == b"\x00\x50"]
    assert len(dmx) >= 5 and all(raw[14] == 2 and not any(raw[18:22]) for raw in dmx)


def test_doctor_checks_each_output(tmp_path):
    rig = tmp_path / "rig.toml"
    rig.write_text('[[outputs]]\nkind = "uart"\nuniverses = [1]\ndevice = "/dev/nonesuch"\n'
                   '[[outputs]]\nkind = "ddp"\nuniverses = [2]\n'
                   'destinations = ["127.0.0.1:9"]\n' + RIG2)
    done = subprocess.run([sys.executable, "-m", "pi_app.cli", "doctor", "--config",
                           str(rig)], env=env(tmp_path), capture_output=True, text=True,
                          timeout=120)
    out = done.stdout
    assert "checking outputs[1] uart (/dev/nonesuch)" in out, out + done.stderr
    assert "checking outputs[2] ddp (ddp:127.0.0.1:9/u2)" in out
    assert "/dev/nonesuch" in out.split("checking outputs[2]")[0]     # the UART's findings
    assert done.returncode == 1                   # /dev/nonesuch is a problem


def test_service_network_allows_every_network_output(tmp_path):
    cfg = parse_config('[[outputs]]\nkind = "ddp"\nuniverses = [1]\n'
                       'destinations = ["192.168.7.20"]\n'
                       '[[outputs]]\nkind = "artnet"\nuniverses = [2]\n'
                       'nodes = ["10.1.2.3"]\n' + RIG2, "rig.toml")
    assert allow.allowed(cfg) == ["10.1.2.3", "192.168.7.20"]
    named = parse_config('[[outputs]]\nkind = "uart"\nuniverses = [1]\n'
                         '[[outputs]]\nkind = "ddp"\nuniverses = [2]\n'
                         'destinations = ["wled-strip.local"]\n' + RIG2, "rig.toml")
    got = allow.allowed(named)          # a name's address may change: the local networks
    assert "192.168.0.0/16" in got and "10.0.0.0/8" in got


def test_health_and_metrics_count_each_output(tmp_path):
    from pi_app.health import health_of

    cfg = _sim_pair(tmp_path)
    from pi_app.show import Show

    show = Show(cfg, output_for(cfg, Patch(cfg)), seed=1, control=False)
    with show.output:
        show.output.send({1: np.zeros(512, np.uint8), 2: np.zeros(512, np.uint8)})
        h = health_of(show)
    assert [p["output"] for p in h["outputs"]] == ["sim-1", "sim-2"]
    text = prometheus_text(h)
    assert 'latentdmx_outputs_ok{output="sim-1"} 1' in text
    assert 'latentdmx_outputs_errors_total{output="sim-2"} 0' in text


def test_output_flag_replaces_the_outputs(tmp_path):
    from pi_app.config import load_run_config

    rig = tmp_path / "rig.toml"
    rig.write_text('[[outputs]]\nkind = "uart"\nuniverses = [1]\n'
                   '[[outputs]]\nkind = "sim"\nuniverses = [2]\n' + RIG2)
    cfg = load_run_config(str(rig), output="sim")
    assert cfg.outputs == () and output_for(cfg, Patch(cfg)).name == "sim"


def test_the_manuals_gallery_example_is_a_valid_config():
    """docs/outputs.md's UART + WLED strip example: parsed, validated and built as `run`
    builds it (not opened: no UART or strip here)."""
    text = (ROOT / "docs" / "outputs.md").read_text(encoding="utf-8")
    block = text.split("## Several outputs in one show", 1)[1].split("```toml", 1)[1]
    cfg = parse_config(block.split("```", 1)[0], "outputs.md")
    assert [(e.kind, e.universes) for e in cfg.outputs] == [("uart", (1,)), ("ddp", (2,))]
    out = output_for(cfg, Patch(cfg))
    assert out.targets() == ("uart:/dev/ttyAMA0", "ddp:wled-strip.local:4048/u2")


@pytest.mark.slow
def test_sigkill_then_exec_stop_post_darkens_the_uart_and_the_strip():
    """The unit's way: the daemon plays the head on the UART (a pty) and the pars over DDP,
    is SIGKILLed mid-show, and ExecStopPost (`darken`) darkens both from the show's last
    frames: light 0, the head's pan/tilt where the show left it."""
    from procs import env_for, public_dir, stop
    from test_stop import PtyReader, exec_start, exec_stop_post

    pty = PtyReader()
    ddp = UdpCapture(0, bind="127.0.0.1")
    d = public_dir(ram=True)
    rig = d / "rig.toml"
    rig.write_text(TWO_UNIVERSE_RIG +
                   f'[[outputs]]\nkind = "uart"\nuniverses = [1]\ndevice = "{pty.path}"\n'
                   'driver_enable_gpio = -1\n'
                   f'[[outputs]]\nkind = "ddp"\nuniverses = [2]\n'
                   f'destinations = ["localhost:{ddp.port}"]\n'
                   '[safety]\nfade_in_s = 0.2\n')
    patch = Patch(parse_config(rig.read_text(), str(rig)))
    light1 = light_slots(patch, 1)
    light2 = [512 + i for i in light_slots(patch, 2)]     # universe 2: DDP bytes 512..1023
    size = 1 + max(f.last_address for f in patch.fixtures if f.universe == 1)

    def shown() -> list[bytes]:
        rx = WledStyleReceiver(1024)
        for _, _, _, raw in list(ddp.packets):
            rx.feed(raw)
        return rx.shown
    env = env_for(runtime=d)
    show = exec_start(rig, env)
    try:
        deadline = time.monotonic() + 60
        while show.poll() is None and time.monotonic() < deadline and not (
                len(pty.frames(size)) and pty.frames(size)[-1][1:][light1].any()
                and any(s[i] for s in shown()[-3:] for i in light2)):
            time.sleep(0.05)
        assert show.poll() is None and time.monotonic() < deadline, \
            (len(pty.data), len(ddp.packets), stop(show))
        show.send_signal(signal.SIGKILL)
        show.wait()
        time.sleep(0.3)
        before_uart, before_ddp = pty.frames(size), len(shown())
        said = exec_stop_post(rig, env)
        time.sleep(0.5)
        ddp.settle()
        after_uart, after_ddp = pty.frames(size)[len(before_uart):], shown()[before_ddp:]
    finally:
        if show.poll() is None:
            show.kill()
            show.wait()
        pty.close()
        ddp.close()
    assert "uart: blackout sent" in said[0] and "ddp: blackout sent" in said[0], said
    assert said[0].count("the show's last frames") == 2, said
    assert len(after_uart) >= 3 and len(after_ddp) >= 3
    assert not after_uart[-1][1:][light1].any()
    assert not any(after_ddp[-1][i] for i in light2)
    aim = [f.address - 1 + j for f in patch.fixtures if f.universe == 1
           for j, ch in enumerate(f.mode.channels) if ch.attr in ("pan", "tilt")]
    assert aim and (after_uart[-1][1:][aim].astype(int) -
                    before_uart[-1][1:][aim].astype(int)).__abs__().max() <= 8   # held
