"""One table of outputs (`pi_app.outputs.registry`): every place that lists outputs reads it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pi_app.config import load_config
from pi_app.errors import ConfigError
from pi_app.outputs import Output, make_output, registry

ROOT = Path(__file__).resolve().parents[1]


def test_table_rows_load_and_name_themselves():
    assert registry.names() == ("sim", "ola", "uart", "sacn", "artnet", "ddp")
    for k in registry.KINDS:
        cls = k.load()
        assert issubclass(cls, Output) and cls.name == k.name
        if k.doctor:
            assert callable(k.doctor_checks())


def test_cli_choices_come_from_the_table():
    from pi_app.commands.hardware import doctor, identify
    from pi_app.commands.run import run

    def choices(cmd):
        opt = next(p for p in cmd.params if p.name == "output")
        return tuple(opt.type.choices)

    assert choices(run) == choices(identify) == registry.names()
    assert choices(doctor) == registry.doctor_names() == ("ola", "uart", "sacn", "artnet",
                                                                "ddp")
    help_ = next(p.help for p in run.params if p.name == "output")
    assert all(f"{k.name} ({k.summary})" in help_ for k in registry.KINDS)


def test_config_sections_come_from_the_table():
    cfg = load_config(None)
    sections = registry.sections()
    assert set(sections) == {"ola", "uart", "sacn", "artnet", "ddp"}
    for name, cls in sections.items():
        assert isinstance(getattr(cfg.output, name), cls)
    changed = dataclasses.replace(cfg.output, kind="artnet")     # still a plain dataclass
    assert changed.kind == "artnet" and changed.sacn == cfg.output.sacn


def test_unknown_kind_names_every_kind(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text('[output]\nkind = "dmxking"\n[[fixtures]]\nname = "p"\n'
                    'profile = "generic-rgbw-par"\nmode = "4ch"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "use one of: sim, ola, uart, sacn, artnet, ddp" in str(err.value)
    with pytest.raises(ConfigError, match="sim, ola, uart, sacn, artnet, ddp"):
        make_output("dmxking", load_config(None), [1])


def test_every_section_is_validated_even_when_another_output_is_chosen(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text('[output]\nkind = "sim"\n[output.artnet]\nnodes = ["no_pe"]\n'
                    '[[fixtures]]\nname = "p"\nprofile = "generic-rgbw-par"\nmode = "4ch"\n')
    with pytest.raises(ConfigError, match=r"output\.artnet\.nodes\[0\]"):
        load_config(path)


def test_make_output_builds_each_kind_from_its_section():
    cfg = load_config(None)
    for k in registry.KINDS:
        out = make_output(k.name, cfg, [1])
        assert out.name == k.name
        if k.load().config_class is not None:
            assert out.config == getattr(cfg.output, k.name)


def test_readme_documents_every_output():
    readme = (ROOT / "docs" / "outputs.md").read_text()
    for name in registry.names():
        assert f"`{name}`" in readme, name
