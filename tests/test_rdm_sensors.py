"""RDM sensors in `latentdmx status`: a real daemon on a real olad whose dummy plugin offers RDM
responders (OLA's own code: moving lights, a sensor device with temperatures), with
``[rdm] sensors = true``. The readings appear in `status`, are read again every `interval_s`,
and the frame loop keeps sending frames while they are read. Off by default."""

from __future__ import annotations

import time

import pytest
from procs import env_for, latentdmx, public_dir, run_cli, stop, wait_for

from tests import test_rdm_doctor

rdm_olad = test_rdm_doctor.rdm_olad          # the fixture: olad with its dummy RDM responders

RIG = """
fps = 40
[output]
kind = "ola"
[output.ola]
port = {port}
{rdm}
[[fixtures]]
name = "par"
profile = "generic-rgbw-par"
mode = "4ch"
universe = 1
address = 200
position = [0.5, 0.5]
"""




def _status(env: dict) -> str:
    r = run_cli("status", env=env, timeout_s=20)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _frames(text: str) -> int:
    line = next(x for x in text.splitlines() if x.strip().startswith("frames "))
    return int(line.split()[-1])


def _start(olad, rdm: str):
    d = public_dir()
    cfg = d / "rig.toml"
    cfg.write_text(RIG.format(port=olad.rpc_port, rdm=rdm))
    env = env_for(xdg=d, STATE_DIRECTORY=str(d / "state"))
    show = latentdmx("run", "--config", str(cfg), env=env)
    wait_for(lambda: show.poll() is not None or "frames" in run_cli("status", env=env).stdout,
             60, "the daemon's status")
    assert show.poll() is None, stop(show)
    return show, env


@pytest.mark.slow
def test_status_shows_the_responders_sensors_read_off_the_frame_loop(rdm_olad):
    show, env = _start(rdm_olad, "[rdm]\nsensors = true\ninterval_s = 5\n")
    try:
        text = wait_for(lambda: (lambda t: "Fake Temperature" in t and t)(_status(env)), 60,
                        "the sensor readings in status")
        row = [x for x in text.splitlines() if "Fake Temperature" in x]
        assert row and "°C" in row[0] and "Sensor Device" in row[0], text
        f0, t0 = _frames(text), time.monotonic()
        time.sleep(12)                       # two more reads at interval_s = 5
        text = _status(env)
        ages = [int(x.split("read ")[1].split(" s")[0]) for x in text.splitlines()
                if "read " in x and " s ago" in x]
        assert ages and ages[0] <= 8, text   # read again, not only at the start
        sent = _frames(text) - f0
        assert sent >= 0.5 * 40 * (time.monotonic() - t0), (sent, text)   # frames kept flowing
    finally:
        out = stop(show)
    assert "Traceback" not in out, out


@pytest.mark.slow
def test_sensors_are_off_by_default(rdm_olad):
    show, env = _start(rdm_olad, "")
    try:
        time.sleep(2)
        text = _status(env)
    finally:
        stop(show)
    assert "Fake Temperature" not in text and "RDM" not in text
