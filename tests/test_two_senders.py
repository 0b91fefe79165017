"""Two senders on one universe (issue 11, part 1), with a real olad, real `latentdmx`
processes and an independent flash counter on what olad really outputs.

Before (58fc28d): `identify` beside a running show, or a second daemon with its own control
socket or environment, both sent to the universe; olad alternated between them and every
fixture flashed ~40 times a second. Now a show claims its target (`pi_app.claims`):
`identify` goes through the show, a second show is refused, `doctor` names other senders.
"""

from __future__ import annotations

import re
import time

import pytest
from flash_counter import count, rig_from_config
from ola_capture import OlaCapture
from procs import env_for, latentdmx, public_dir, rig_text, run_cli, stop, wait_for

pytest_plugins = ["tests.olad_fixture"]

PAR1 = slice(40, 44)          # par-1: R, G, B, W at 41-44


def lit(frame: bytes, fixtures) -> set[str]:
    return {f.name for f in fixtures if any(frame[c.slot] for c in f.channels)}


def assert_flash_safe(rig, frames, what: str) -> None:
    c = count(rig, frames)
    per = c.max_per_s()
    print(f"{what}: {c.summary()}")                  # the figures, with `pytest -s`
    assert c.frames > 40, what
    assert max(per.values()) <= 3.0, f"{what}: {c.summary()}"


def start_show(olad, cap, cfg, env):
    show = latentdmx("run", "--config", str(cfg), "--output", "ola", env=env)
    n0 = len(cap.frames)
    wait_for(lambda: len(cap.frames) > n0 + 60 or show.poll() is not None, 30,
             "the show's frames in olad")
    assert show.poll() is None, stop(show)
    return show


@pytest.mark.slow
def test_identify_goes_through_the_running_show(olad):
    d = public_dir()
    cfg = d / "rig.toml"
    cfg.write_text(rig_text(olad.rpc_port))
    rig = rig_from_config(cfg)
    with OlaCapture(olad.rpc_port, [1]) as cap:
        show = start_show(olad, cap, cfg, env_for(xdg=d))
        try:
            t0 = cap.now()
            # another runtime directory: the show is found by its claim, not by a path
            r = run_cli("identify", "par-1", "--output", "ola", "--config", str(cfg),
                        "--seconds", "5", env=env_for(xdg=public_dir()))
            t1 = cap.now()
            time.sleep(3.0)                            # the way back to the show
            t2 = cap.now()
        finally:
            out = stop(show)
    window = [(t, f[1]) for t, f in cap.frames if t0 - 1.0 <= t <= t2]
    assert_flash_safe(rig, [(t, {1: f}) for t, f in window], "identify during a show")
    rate = len(window) / (window[-1][0] - window[0][0])
    assert rate < 50, f"{rate:.0f} frames/s: two senders"       # one stream at 40 fps
    assert r.returncode == 0, r.stdout + r.stderr
    assert "through the show" in r.stdout and f"pid {show.pid}" in r.stdout
    # the last seconds of identify: par-1 alone, steady white at 30 %
    steady = [f for t, f in window if t1 - 2.0 <= t <= t1 - 0.5]
    assert steady and all(lit(f, rig) == {"par-1"} for f in steady)
    assert all(tuple(f[PAR1]) == (0, 0, 0, 77) for f in steady)
    # and the show comes back
    assert any(lit(f, rig) - {"par-1"} for t, f in window if t >= t1 + 2.0), out


@pytest.mark.slow
@pytest.mark.parametrize("second_env", ["service", "own-socket"])
def test_second_show_is_refused_whatever_socket_or_environment(olad, second_env):
    d1, d2 = public_dir(), public_dir()
    cfg1 = d1 / "rig.toml"
    cfg1.write_text(rig_text(olad.rpc_port))
    cfg2 = d2 / "rig.toml"
    cfg2.write_text(rig_text(olad.rpc_port, replace={'socket = ""': f'socket = "{d2}/x.sock"'}))
    rig = rig_from_config(cfg1)
    # the first by hand ($XDG_RUNTIME_DIR); the second as the service ($RUNTIME_DIRECTORY)
    # or by hand with its own [control] socket, as the old error message suggested
    env2 = env_for(runtime=d2) if second_env == "service" else env_for(xdg=d2)
    with OlaCapture(olad.rpc_port, [1]) as cap:
        first = start_show(olad, cap, cfg1, env_for(xdg=d1))
        try:
            t0 = cap.now()
            second = latentdmx("run", "--config", str(cfg2), "--output", "ola", "--duration",
                               "6", env=env2)
            out2, _ = second.communicate(timeout=60)
            time.sleep(2.0)
            t1 = cap.now()
        finally:
            stop(first)
    window = [(t, f) for t, f in cap.frames if t0 - 1.0 <= t <= t1]
    assert_flash_safe(rig, window, f"a second show ({second_env})")
    lines = [ln for ln in out2.splitlines() if ln.strip()]
    assert second.returncode == 2, out2
    assert len(lines) == 1, out2
    assert re.fullmatch(rf"error: ola:127\.0\.0\.1:{olad.rpc_port}/u1: output: already driven "
                        rf"by a LatentDMX show, pid {first.pid} \(started by hand by \w+: "
                        rf"latentdmx run --config {cfg1} --output ola\) — stop it first .*",
                        lines[0]), lines[0]


@pytest.mark.slow
def test_identify_is_refused_while_another_identify_runs(olad):
    d = public_dir()
    cfg = d / "rig.toml"
    cfg.write_text(rig_text(olad.rpc_port))
    env = env_for(xdg=d)
    first = latentdmx("identify", "head-left", "--output", "ola", "--config", str(cfg),
                      "--seconds", "8", env=env)
    try:
        wait_for(lambda: olad.get_dmx()[5], 20, "the first identify's frame")   # its dimmer
        r = run_cli("identify", "par-2", "--output", "ola", "--config", str(cfg),
                    "--seconds", "1", env=env)
        run = run_cli("run", "--config", str(cfg), "--output", "ola", "--duration", "1",
                      env=env)
    finally:
        stop(first)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"already driven by `latentdmx identify`, pid {first.pid}" in r.stderr
    assert run.returncode == 2 and f"pid {first.pid}" in run.stderr, run.stderr
    # stopped with SIGTERM, the first identify still leaves the rig dark
    rig = rig_from_config(cfg)
    assert lit(bytes(olad.wait_dmx(lambda f: not lit(bytes(f), rig), 5.0)), rig) == set()


@pytest.mark.slow
def test_doctor_names_another_sender_and_the_merge_mode(olad):
    from pi_app.outputs.ola import OlaQuery, import_ola

    d = public_dir()
    cfg = d / "rig.toml"
    cfg.write_text(rig_text(olad.rpc_port))
    env = env_for(xdg=d)
    import sys
    from pathlib import Path

    sender_py = Path(__file__).with_name("ola_sender.py")
    with OlaCapture(olad.rpc_port, [1]) as cap:
        show = start_show(olad, cap, cfg, env)
        try:
            alone = run_cli("doctor", "--config", str(cfg), "--output", "ola", env=env)
            import subprocess

            console = subprocess.Popen([sys.executable, str(sender_py), str(olad.rpc_port), "1",
                                        "30", "41=255"], env=env)
            try:
                wait_for(lambda: any(f[1][40] == 255 for _, f in cap.frames[-20:]), 10,
                         "the other sender's frames")
                both = run_cli("doctor", "--config", str(cfg), "--output", "ola", env=env)
                # olad's other merge mode: set it as `ola_uni_merge` would, and ask again
                mod = import_ola()
                with OlaQuery("127.0.0.1", olad.rpc_port) as q:
                    q._call("SetUniverseMergeMode", 1, mod.Universe.HTP)
                htp = run_cli("doctor", "--config", str(cfg), "--output", "ola", env=env)
            finally:
                console.kill()
                console.wait()
        finally:
            stop(show)
    assert alone.returncode == 0, alone.stdout
    assert "OLA universe 1: merge mode LTP, no other sender (LatentDMX: a LatentDMX show, " \
           f"pid {show.pid}" in alone.stdout
    assert both.returncode == 1, both.stdout
    line = next(ln for ln in both.stdout.splitlines() if "FAIL" in ln and "universe 1" in ln)
    assert "1 other program sends to it" in line and f"pid {console.pid}" in line
    assert "ola_sender.py" in line and "merge mode LTP" in line and "take turns" in line
    assert "merge mode HTP" in htp.stdout and "highest value" in htp.stdout
