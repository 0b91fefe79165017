"""`latentdmx identify` and `latentdmx doctor`, against the simulator, a real olad
(tests/olad_fixture.py) and pseudo-terminals."""

from __future__ import annotations

import os

import numpy as np
import pytest
import serial
from click.testing import CliRunner

from pi_app.cli import main
from pi_app.config import load_config
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch

pytest_plugins = ["tests.olad_fixture"]

DEFAULT = (load_config.__globals__["default_config_path"]()).read_text()


def write_config(tmp_path, *, port=9010, universe=1, device="/dev/serial0", fps=40):
    text = DEFAULT.replace("port = 9010 ", f"port = {port} ", 1)
    text = text.replace("universe = 1\n", f"universe = {universe}\n")
    text = text.replace('device = "/dev/serial0"', f'device = "{device}"', 1)
    text = text.replace("fps = 40 ", f"fps = {fps} ", 1)
    path = tmp_path / "rig.toml"
    path.write_text(text)
    return str(path)


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- identify -------------------------------------------------------------------------------
@pytest.fixture
def sim(monkeypatch):
    """Route make_output to a SimOutput that keeps its history."""
    from pi_app import outputs

    made: list[SimOutput] = []

    def fake(kind, config, universes, *, blackout=None, **kw):
        out = SimOutput(universes, blackout=blackout, keep_history=True)
        made.append(out)
        return out

    monkeypatch.setattr(outputs, "make_output", fake)
    return made


def lit_fixtures(patch, frame) -> set[str]:
    """Names of fixtures with any light channel above 0 in this frame (universe 1)."""
    lit = set()
    for f in patch.fixtures:
        for j, ch in enumerate(f.mode.channels):
            if ch.attr in ("dimmer", "red", "green", "blue", "white") and \
                    frame[f.universe][f.address - 1 + j] > 0:
                lit.add(f.name)
    return lit


def test_identify_lights_one_fixture_in_white_then_blacks_out(sim):
    r = run("identify", "head-right", "--seconds", "0.2", "--level", "0.3")
    assert r.exit_code == 0, r.output
    assert "head-right: universe 1, addresses 15-28" in r.output
    patch = Patch(load_config(None))
    hist = sim[0].history
    assert len(hist) >= 3
    assert all(lit_fixtures(patch, f) == {"head-right"} for f in hist[:-1])
    assert lit_fixtures(patch, hist[-1]) == set()            # the blackout
    f = hist[0][1]
    dim = patch.fixtures[1].mode.channels[5]
    assert dim.attr == "dimmer" and f[14 + 5] == round(dim.min + 0.3 * (dim.max - dim.min))
    assert f[14 + 9] == 255                                  # white full
    assert f[14] == 128                                      # pan centred (coarse)
    assert sim[0].closed


def test_identify_all_goes_one_after_another(sim):
    r = run("identify", "--all", "--seconds", "0.05")
    assert r.exit_code == 0, r.output
    patch = Patch(load_config(None))
    order = []
    for frame in sim[0].history[:-1]:
        (name,) = lit_fixtures(patch, frame)
        if not order or order[-1] != name:
            order.append(name)
    assert order == [f.name for f in patch.fixtures]


def test_identify_unknown_fixture_suggests(sim):
    r = run("identify", "head-lft", "--seconds", "0.1")
    assert r.exit_code == 2
    assert "did you mean 'head-left'" in r.output and "\n" == r.output[-1]


def test_identify_through_olad(olad, tmp_path):
    cfg = write_config(tmp_path, port=olad.rpc_port)
    r = run("identify", "par-2", "--seconds", "0.3", "--output", "ola", "--config", cfg)
    assert r.exit_code == 0, r.output
    f = olad.get_dmx()
    assert not f[44:48].any()                      # par-2 dark again after the blackout
    assert f[0] == 128 and f[14] == 128            # heads still centred (pan held)


def test_identify_ola_with_olad_down_says_so(tmp_path):
    from tests.olad_fixture import free_port

    cfg = write_config(tmp_path, port=free_port())
    r = run("identify", "par-1", "--seconds", "0.2", "--output", "ola", "--config", cfg)
    assert r.exit_code == 2 and "nothing reached olad" in r.output and "doctor" in r.output


# -- doctor ---------------------------------------------------------------------------------
def test_doctor_all_well_with_olad(olad, tmp_path):
    r = run("doctor", "--output", "ola", "--config", write_config(tmp_path, port=olad.rpc_port))
    assert r.exit_code == 0, r.output
    assert "OLA universe 1 is patched to Dummy Port" in r.output
    assert f"config {olad.dir}" in r.output          # found olad's own config dir
    assert "no problems found" in r.output


def test_doctor_olad_not_running(tmp_path):
    from pi_app.commands.hardware import _processes
    from tests.olad_fixture import free_port

    r = run("doctor", "--output", "ola", "--config", write_config(tmp_path, port=free_port()))
    assert r.exit_code == 1
    # another olad may run on this machine (a Pi's system olad, another test's): then doctor
    # must say that one is on another port; with none, that olad is not running at all
    if any(comm == "olad" for _, comm, _ in _processes()):
        assert "FAIL  olad runs (pid" in r.output and "but not on RPC port" in r.output
    else:
        assert "FAIL  olad is not running" in r.output
        assert "systemctl enable --now olad" in r.output


def test_doctor_universe_not_patched(olad, tmp_path):
    cfg = write_config(tmp_path, port=olad.rpc_port, universe=2)
    r = run("doctor", "--output", "ola", "--config", cfg)
    assert r.exit_code == 1
    assert "OLA universe 2 is not patched to any output port" in r.output
    assert "ola_patch -d DEVICE -p 0 -u 2" in r.output


def test_doctor_uartdmx_disabled_when_needed(olad, tmp_path):
    r = run("doctor", "--output", "ola",
            "--config", write_config(tmp_path, port=olad.rpc_port, universe=3))
    assert "FAIL  OLA's UART plugin (uartdmx) is disabled" in r.output
    assert "enabled = true" in r.output and r.exit_code == 1


def test_doctor_uartdmx_points_at_missing_device(tmp_path):
    from tests.olad_fixture import Olad, olad_missing_reason

    if olad_missing_reason():
        pytest.skip(olad_missing_reason())
    daemon = Olad()
    try:
        conf = daemon.dir / "ola-uartdmx.conf"
        conf.write_text("enabled = true\ndevice = /dev/ttyLATENTDMX-missing\n")
        os.chown(conf, daemon.dir.stat().st_uid, daemon.dir.stat().st_gid)
        daemon.start()
        r = run("doctor", "--output", "ola",
                "--config", write_config(tmp_path, port=daemon.rpc_port))
        assert r.exit_code == 1, r.output
        assert "UART plugin points at /dev/ttyLATENTDMX-missing, which does not exist" \
            in r.output
        assert "device = /dev/ttyAMA0" in r.output
    finally:
        daemon.cleanup()


@pytest.fixture
def pty_path():
    m, s = os.openpty()
    yield os.ttyname(s)
    os.close(s)
    os.close(m)


def test_doctor_uart_ok_busy_missing(tmp_path, pty_path):
    r = run("doctor", "--output", "uart", "--config", write_config(tmp_path, device=pty_path))
    assert r.exit_code == 0, r.output
    assert "free and usable" in r.output
    holder = serial.Serial(pty_path, exclusive=True)
    try:
        r = run("doctor", "--output", "uart",
                "--config", write_config(tmp_path, device=pty_path))
        assert r.exit_code == 1 and "busy" in r.output
    finally:
        holder.close()
    r = run("doctor", "--output", "uart",
            "--config", write_config(tmp_path, device="/dev/ttyLATENTDMX-x"))
    assert r.exit_code == 1 and "does not exist" in r.output and "setup-pi.sh" in r.output


def test_doctor_dialout(monkeypatch, tmp_path, pty_path):
    import pi_app.commands.hardware as hw

    monkeypatch.setattr(hw.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(hw, "_in_dialout", lambda user=None: user is not None)
    r = run("doctor", "--output", "uart", "--config", write_config(tmp_path, device=pty_path))
    assert r.exit_code == 1 and "not in the dialout group" in r.output
    assert "usermod -aG dialout" in r.output


def test_uart_identify_passes_fps_and_last_slot(tmp_path, pty_path):
    from pi_app.outputs import backend_kwargs

    cfg = load_config(write_config(tmp_path, device=pty_path, fps=30))
    assert backend_kwargs("uart", cfg, Patch(cfg)) == {"fps": 30.0, "slots": 56}
    r = run("identify", "par-4", "--seconds", "0.2", "--output", "uart",
            "--config", write_config(tmp_path, device=pty_path))
    assert r.exit_code == 0, r.output
    assert np.__name__                               # (numpy imported for the sim helpers)
