"""Lockstep from the user's side: `[sync]` mistakes are one line each, `check` names the
group, `doctor` says whether the clock is synchronised (as the kernel says it, read here on
its own) and whether the group can be joined, the service's allow-list lets the group
through, and `status` of a daemon in a group shows the group, its members, the clock and the
frame index."""

from __future__ import annotations

import ctypes
import subprocess
import time

import pytest
from click.testing import CliRunner
from group_lan import LoOnly, lan_missing_reason
from lockstep_daemons import LATENTDMX, with_sync

from pi_app.cli import main
from pi_app.config import default_config_path
from pi_app.sync.timestate import parse_chrony_tracking

KEY = 'key = "kV3q-Zt8wPn2RbX7_mLc9YfH4sJd6GaE"'


def _rig(tmp_path, sync: str):
    path = tmp_path / "rig.toml"
    path.write_text(with_sync(default_config_path().read_text(), sync))
    return path


@pytest.mark.parametrize("sync, field, fix", [
    ('group = "foyer"', "sync.key", "secrets.token_urlsafe"),
    ('group = "foyer"\nkey = "short"', "sync.key", "at least 128 random bits"),
    (f'group = "foyer"\n{KEY}\nepoch = "2026-01-01 00:00"', "sync.epoch", "with a zone"),
    (f'group = "foyer"\n{KEY}\nepoch = "yesterday"', "sync.epoch", "ISO 8601"),
    (f'group = "foyer"\n{KEY}\nepoch = "1970-01-01T00:00:00Z"', "sync.epoch", "2026"),
    (f'group = "the foyer"\n{KEY}', "sync.group", "letters, digits"),
    (f'group = "foyer"\n{KEY}\naddress = "192.168.1.20"', "sync.address", "239.192"),
    (f'group = "foyer"\n{KEY}\nlead_s = 10', "sync.lead_s", "0.05..5"),
    (f'group = "foyer"\n{KEY}\ninterface = "eth 0"', "sync.interface", "eth0"),
    (f'group = "foyer"\n{KEY}\nlead = 0.3', "sync.lead", "did you mean 'lead_s'"),
])
def test_sync_mistakes_are_one_line(tmp_path, sync, field, fix):
    path = _rig(tmp_path, sync)
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {path}: {field}: ")
    assert fix in result.output and len(result.output.strip().splitlines()) == 1


def test_check_names_the_group(tmp_path):
    path = _rig(tmp_path, f'group = "foyer"\n{KEY}\ninterface = "lo"')   # on every machine
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "group 'foyer': epoch 2026-01-01T00:00:00Z, 239.192.77.13:5570 on lo" in \
        result.output


def test_the_service_allow_list_lets_the_group_through(tmp_path):
    from pi_app.allow import allowed
    from pi_app.config import load_config

    assert "239.192.77.13" not in allowed(load_config(None))
    cfg = load_config(_rig(tmp_path, f'group = "foyer"\n{KEY}\naddress = "239.192.9.9"'))
    entries = allowed(cfg)
    assert "239.192.9.9" in entries and "192.168.0.0/16" in entries


def _kernel_synchronised() -> bool:
    """adjtimex read on its own (modes 0): TIME_ERROR or STA_UNSYNC -> not synchronised."""
    buf = ctypes.create_string_buffer(256)                   # struct timex, modes = 0
    ret = ctypes.CDLL(None, use_errno=True).adjtimex(buf)
    status = int.from_bytes(buf.raw[40:44], "little", signed=True)   # uint, pad, 4 longs
    return ret != 5 and not status & 0x40


@pytest.mark.skipif(lan_missing_reason() is not None, reason=lan_missing_reason() or "")
def test_doctor_checks_the_clock_and_the_group(tmp_path):
    path = _rig(tmp_path, f'group = "foyer"\n{KEY}\ninterface = "127.0.0.1"')
    with LoOnly() as ns:                   # joining a group is a real IGMP join: not here
        out = ns.run([LATENTDMX, "doctor", "--config", str(path)], timeout=60)
    text = out.stdout
    if _kernel_synchronised():
        assert "ok    clock: synchronised (kernel" in text, text
    else:
        assert "FAIL  clock: NOT synchronised (kernel)" in text and "install chrony" in text
        assert out.returncode == 1
    assert "ok    group foyer: can join 239.192.77.13:5570 on 127.0.0.1" in text, text
    # without a group or a schedule an unsynchronised clock is only a note
    plain = CliRunner().invoke(main, ["doctor", "--output", "uart"])
    assert "clock:" in plain.output and "FAIL  clock" not in plain.output


def test_chrony_tracking_is_read():
    normal = """Reference ID    : C0A80115 (192.168.1.21)
Stratum         : 9
Ref time (UTC)  : Sat Nov 28 16:00:00 2026
System time     : 0.000081234 seconds fast of NTP time
Last offset     : -0.000012345 seconds
RMS offset      : 0.000045678 seconds
Frequency       : 3.225 ppm slow
Residual freq   : -0.000 ppm
Skew            : 0.129 ppm
Root delay      : 0.000300000 seconds
Root dispersion : 0.000100000 seconds
Update interval : 16.2 seconds
Leap status     : Normal
"""
    st = parse_chrony_tracking(normal)
    assert st is not None and st.synchronised and st.source == "chrony, 192.168.1.21"
    assert st.error_s == pytest.approx(0.000081234 + 0.0001 + 0.00015)
    assert "synchronised (chrony, 192.168.1.21, est. error 0.33 ms)" == st.text()
    unsynced = normal.replace("Leap status     : Normal", "Leap status     : Not synchronised")
    st = parse_chrony_tracking(unsynced)
    assert st is not None and st.synchronised is False
    assert parse_chrony_tracking("506 Cannot talk to daemon") is None


@pytest.mark.slow
@pytest.mark.skipif(lan_missing_reason() is not None, reason=lan_missing_reason() or "")
def test_status_of_a_daemon_in_a_group(tmp_path):
    path = _rig(tmp_path, f'group = "foyer"\n{KEY}\ninterface = "127.0.0.1"')
    env = {"XDG_RUNTIME_DIR": str(tmp_path), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    with LoOnly() as ns:
        proc = ns.popen([LATENTDMX, "run", "--config", str(path), "--duration", "6"], env=env,
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            out = None
            own = tmp_path / "latentdmx" / "control.sock"    # this daemon's, not another's
            while time.monotonic() < deadline:
                if not own.exists():          # (the CLI would look for the user's own show)
                    time.sleep(0.1)
                    continue
                out = subprocess.run([LATENTDMX, "status"], env=env, capture_output=True,
                                     text=True)
                if out.returncode == 0 and "frame index" in out.stdout:
                    break
                time.sleep(0.3)
            assert out is not None and out.returncode == 0, out and out.stderr
            lines = {label: line[len(label):].strip() for line in out.stdout.splitlines()
                     for label in ("group ", "clock ", "frame index ", "members ")
                     if line.startswith(label)}
            lines = {k.strip(): v for k, v in lines.items()}
            assert lines["group"].startswith("foyer (239.192.77.13:5570), 1 member heard")
            assert "synchronised" in lines["clock"]
            expect = int((time.time() - 1767225600.0) * 40)
            assert abs(int(lines["frame index"]) - expect) < 40 * 3
        finally:
            proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read()


def test_which_commands_go_to_the_group(tmp_path):
    """Live commands are scheduled for the whole group; `identify` (this Pi's fixtures),
    `tap` and the preset store stay on the member they are given to."""
    from pi_app.config import load_config
    from pi_app.outputs.sim import SimOutput
    from pi_app.patch import Patch
    from pi_app.show import Show
    from pi_app.sync.clock import FastSyncClock
    from pi_app.vocabulary import COMMANDS

    cfg = load_config(_rig(tmp_path, f'group = "foyer"\n{KEY}\ninterface = "127.0.0.1"'))
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes), control=False, presets_dir=tmp_path / "p")
    sync = show.lockstep
    sync.clock = FastSyncClock(cfg.fps, epoch_s=cfg.sync.epoch_s)      # playing, not joined
    reply = show.handle_control("dim", {"level": 0.5})
    assert "frame" in reply["group_at"] and len(sync._heap) == 1 and show._commands.empty()
    show.handle_control("identify", {"fixtures": ["par-1"]})
    assert len(sync._heap) == 1 and not show._commands.empty()
    local = sorted(c.name for c in COMMANDS.values() if c.live and not c.group)
    # identify; and FPP's, which every member takes from the master itself (pi_app/fpp.py)
    assert local == ["fpp/play", "fpp/stop", "identify"]
