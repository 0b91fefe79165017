"""Command-line mistakes are one line naming the argument and a fix, exit 2 — negative
numbers included (click would take `-1` for an option)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pi_app.cli import main


@pytest.mark.parametrize("argv, field, example", [
    (["dim", "-1"], "dim: level", "latentdmx dim 0.5"),
    (["dim", "1.5"], "dim: level", "latentdmx dim 0.5"),
    (["dim", "abc"], "dim: level", "latentdmx dim 0.5"),
    (["dim", "nan"], "dim: level", "latentdmx dim 0.5"),
    (["seed", "-3"], "seed: seed", "latentdmx seed 7"),
    (["seed", "2.5"], "seed: seed", "latentdmx seed 7"),
    (["tempo", "-2"], "tempo: tempo", "latentdmx tempo 1"),
    (["tempo", "0"], "tempo: tempo", "latentdmx tempo 1"),
])
def test_bad_values_are_one_line_before_any_daemon_is_asked(tmp_path, argv, field, example):
    res = CliRunner().invoke(main, [*argv, "--socket", str(tmp_path / "none.sock")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    assert lines[0].startswith(f"error: command line: {field}: {argv[1]} is not ")
    assert example in lines[0]


@pytest.mark.parametrize("argv, start", [
    (["dim"], "error: command line: dim: needs LEVEL"),
    (["run", "--fps", "abc"], "error: command line: --fps: 'abc' is not a valid float"),
    (["run", "--nope"], "error: command line: --nope: No such option"),
    (["frobnicate"], "error: command line: (usage): No such command 'frobnicate'"),
])
def test_usage_errors_are_one_line(argv, start):
    res = CliRunner().invoke(main, argv)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), res.output
    assert "--help`" in lines[0] or "e.g." in lines[0]


def test_good_negative_looking_values_still_work(tmp_path):
    """`dim 0` and `seed 0` reach the daemon (here: none, so the socket error is what shows)."""
    res = CliRunner().invoke(main, ["dim", "0", "--socket", str(tmp_path / "none.sock")])
    assert res.exit_code == 2 and "no latentdmx daemon is listening" in res.output
