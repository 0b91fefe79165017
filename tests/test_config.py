"""Config errors: each is one line naming file, field and fix; the CLI exits 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from pi_app.cli import main
from pi_app.config import load_config
from pi_app.errors import ConfigError

GOOD_FIXTURE = """
[[fixtures]]
name = "a"
profile = "lumeri-wash-7-10"
mode = "14ch"
universe = 1
address = {address}
"""


def cfg_text(extra_top: str = "", fixtures: str | None = None) -> str:
    return extra_top + (fixtures if fixtures is not None else GOOD_FIXTURE.format(address=1))


BAD = {
    "overlap": (cfg_text(fixtures=GOOD_FIXTURE.format(address=1) +
                         GOOD_FIXTURE.format(address=10).replace('"a"', '"b"')),
                "fixtures[2] ('b').address", "overlap"),
    "past-512": (cfg_text(fixtures=GOOD_FIXTURE.format(address=500)), "fixtures[1] ('a').address",
                 "at most 499"),
    "unknown-profile": (cfg_text(fixtures=GOOD_FIXTURE.format(address=1).replace(
        "lumeri-wash-7-10", "lumeri-wash-7-11")), "fixtures[1] ('a').profile", "did you mean"),
    "unknown-mode": (cfg_text(fixtures=GOOD_FIXTURE.format(address=1).replace("14ch", "16ch")),
                     "fixtures[1] ('a').mode", "9ch, 14ch"),
    "fps-too-high": (cfg_text("fps = 60\n"), "fps", "1..44"),
    "unknown-key": (cfg_text("fsp = 30\n"), "fsp", "did you mean 'fps'"),
    "bad-type": (cfg_text("seed = 'x'\n"), "seed", "whole number"),
    "bad-toml": (cfg_text("fps = \n"), "(syntax)", "TOML"),
    "no-fixtures": ("fps = 30\n", "fixtures", "[[fixtures]]"),
    "short-break": (cfg_text("[output.uart]\nbreak_us = 50\n"), "output.uart.break_us", "92"),
    "flashes": (cfg_text("[safety]\nmax_flashes_per_s = 5\n"), "safety.max_flashes_per_s",
                "3 flashes"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_is_one_clear_error(tmp_path, case):
    text, field, fix_part = BAD[case]
    path = tmp_path / "rig.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg and err.value.field == field
    assert fix_part in msg


@pytest.mark.parametrize("case", ["overlap", "fps-too-high", "unknown-profile"])
def test_cli_prints_one_line_and_exits_2(tmp_path, case):
    path = tmp_path / "rig.toml"
    path.write_text(BAD[case][0])
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ")
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_missing_file_in_a_real_process(tmp_path):
    missing = tmp_path / "nope.toml"
    proc = subprocess.run([sys.executable, "-m", "pi_app.cli", "run", "--config", str(missing),
                           "--duration", "0.1"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {missing}: (file): file not found — check the "
                                   "path, or leave out --config for the default rig")


def test_cli_flag_error_names_the_flag():
    result = CliRunner().invoke(main, ["run", "--fps", "100", "--duration", "0"])
    assert result.exit_code == 2
    assert "command line: --fps:" in result.output and "1..44" in result.output


def test_default_config_is_valid_and_documented():
    cfg = load_config(None)
    assert cfg.fps == 40 and cfg.output.kind == "sim" and len(cfg.fixtures) == 7
    # every field of every section appears (commented) in the bundled example
    from pi_app import config as c
    text = c.default_config_path().read_text()
    import dataclasses

    from pi_app.outputs import registry
    for cls in (c.WalkConfig, *registry.sections().values(), c.SafetyConfig, c.ControlConfig,
                c.PreviewConfig):
        for f in dataclasses.fields(cls):
            assert f"{f.name} =" in text, f"{cls.__name__}.{f.name} not in default.toml"


def test_check_prints_patch_table():
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 0, result.output
    assert "head-left" in result.output and "1-14" in result.output and "ok:" in result.output


def test_the_manuals_config_is_the_bundled_config():
    from pathlib import Path

    from pi_app import config as c
    page = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    block = page.split("```toml\n", 1)[1].split("```", 1)[0]
    assert block.strip() == c.default_config_path().read_text().strip()


def test_unknown_model_is_blamed_on_the_config_field(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text('model = "nonsense"\n' + GOOD_FIXTURE.format(address=1))
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {path}: model: no such model 'nonsense' — ")
    assert "nat-aurora" in result.output            # the fix lists the models there are


@pytest.mark.slow
def test_models_lists_the_bundled_models():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    assert "nat-aurora" in result.output and "iae-glyphs" in result.output
    assert "points x,y,r,g,b,w" in result.output and "image 16x16x3" in result.output
