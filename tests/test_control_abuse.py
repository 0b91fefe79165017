"""The operator against 200 hostile clients, end to end: a real `latentdmx run` daemon, a
separate attacker process (bench/control_abuse.py: slow-loris, non-readers, garbage, idle and
greedy clients that come back whenever dropped), and the real CLI typed by the operator.

The figures (10/10, RSS, lost frames) come from `python bench/control_abuse.py`; this test
holds them with generous margins for a busy CI machine."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from lateness import MachineLateness

from bench.control_abuse import run_control, start_daemon

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_blackout_gets_through_200_hostile_clients(tmp_path):
    # at the service's priority (systemd/latentdmx.service: Nice=-5) where the test may set it
    d = start_daemon(tmp_path, ROOT, fps=40, nice=-5 if os.geteuid() == 0 else 0)
    try:
        with MachineLateness(40) as machine:             # what the machine does alone
            r = run_control(d, clients=200, tries=3, uid=None)
        assert r["attack"]["connects"] > 200                   # the attack was on
        for cmd, rows in r["results"].items():
            assert [ok for ok, _, _ in rows] == [True] * 3, (cmd, rows)
        growth_mb = (r["peak_kb"] - r["rss0_kb"]) / 1024
        assert growth_mb < 30, growth_mb                       # bench: ~1 MB; before: 370
        frames = d.request("status")["frames"]
        assert int(r["late"]) <= max(5, frames // 200) + machine.allowance(), \
            (r["late"], machine.late)                                 # bench: 0
        d.request("blackout")                                  # and it still obeys
        deadline = time.monotonic() + 5                        # (applied at the next frame)
        while not d.request("status")["blackout"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        if d.proc.poll() is None:
            d.proc.terminate()
            d.proc.wait(20)
    assert d.proc.returncode == 0
    assert "Traceback" not in d.log.read_text()
