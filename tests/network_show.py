"""The end-to-end check both network outputs share: the daemon on the Pi's side of a test
LAN, olad on the other, and the show olad receives compared with the simulator's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TWO_UNIVERSE_RIG = """
fps = 40
[[fixtures]]
name = "head"
profile = "lumeri-wash-7-10"
mode = "14ch"
address = 1
position = [0.3, 0.3]
[[fixtures]]
name = "par-a"
profile = "generic-rgbw-par"
mode = "4ch"
universe = 2
address = 1
position = [0.6, 0.5]
[[fixtures]]
name = "par-b"
profile = "generic-rgbw-par"
mode = "5ch"
universe = 2
address = 300
position = [0.9, 0.7]
"""


def read_recording(path: Path) -> dict[int, list[tuple[int, ...]]]:
    """An ola_recorder show file -> per universe, its frames with repeats collapsed."""
    out: dict[int, list[tuple[int, ...]]] = {}
    for line in path.read_text().splitlines()[1:]:
        parts = line.split(" ", 1)
        if len(parts) != 2:
            continue
        values = tuple(int(v) for v in parts[1].split(",") if v)
        frame = values + (0,) * (512 - len(values))
        seq = out.setdefault(int(parts[0]), [])
        if not seq or seq[-1] != frame:
            seq.append(frame)
    return out


def run_against_olad(lan, olad, tmp_path: Path, kind: str, section: str) -> None:
    """`latentdmx run --output KIND` in the Pi's namespace (two universes, seed 5, 2.5 s)
    while ola_recorder records olad's universes 1 and 2. olad must get every frame the
    daemon sent (its own --record), ending in the blackout; and for a run whose real-time
    clock skipped no frame — the safety stage's state follows the frames computed, so a
    skipped frame changes what follows; up to 3 tries — exactly the simulator's show."""
    rig = tmp_path / "rig.toml"
    rig.write_text(TWO_UNIVERSE_RIG + section)
    env = {**os.environ, "STATE_DIRECTORY": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    exe = [sys.executable, "-m", "pi_app.cli"]
    show = ["--config", str(rig), "--seed", "5", "--duration", "2.5"]
    sim_path = tmp_path / "sim.show"
    sim = subprocess.run([*exe, "run", *show, "--record", str(sim_path)],
                         env={**env, "LATENTDMX_FAKE_CLOCK": "1"}, capture_output=True,
                         text=True, timeout=60)
    assert sim.returncode == 0, sim.stderr
    want = read_recording(sim_path)
    assert len(want[1]) > 50 and len(want[2]) > 50
    for attempt in range(3):
        rec_path, sent_path = tmp_path / f"olad{attempt}.show", tmp_path / f"sent{attempt}.show"
        recorder = olad.ola_tool(["ola_recorder", "--record", str(rec_path), "--universes",
                                  "1,2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)                           # registered with olad
            run = lan.pi.run([*exe, "run", *show, "--output", kind, "--record",
                              str(sent_path)], env=env, timeout=60)
            assert run.returncode == 0, run.stderr
            time.sleep(0.5)
        finally:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(10)
        got, sent = read_recording(rec_path), read_recording(sent_path)
        assert got == sent, "olad did not get every frame the daemon sent"
        assert got[1][-1] == want[1][-1] and got[2][-1] == want[2][-1]     # the blackout
        if " (0 late)" in run.stderr:
            assert got == want
            return
    pytest.fail(f"every run had late frames (machine too busy): {run.stderr[-300:]}")


def assert_bad_output_section_is_one_line(tmp_path, kind: str, section: str, field: str,
                                          fix: str) -> None:
    """`[output.KIND]` with `section` in it: `load_config` refuses it in one line naming the
    file and `field`, with `fix` in the fix (every network output's bad-config table)."""
    import pytest

    from pi_app.config import load_config
    from pi_app.errors import ConfigError

    path = tmp_path / "rig.toml"
    path.write_text(f'[output]\nkind = "{kind}"\n[output.{kind}]\n{section}\n'
                    '[[fixtures]]\nname = "p"\nprofile = "generic-rgbw-par"\nmode = "4ch"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {field}: ") and fix in msg and "\n" not in msg
