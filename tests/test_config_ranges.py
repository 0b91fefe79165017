"""Ranges are declared with their fields (`pi_app.ranges.ranged`) and every section checks its
own: a value just outside any declared range of a top-level section is one line naming it."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from pi_app.config import Config, load_config, validate
from pi_app.errors import ConfigError


def _ranged() -> list[tuple[str, str, object]]:
    out = []
    hints = typing.get_type_hints(Config)
    for sec in dataclasses.fields(Config):
        tp = hints[sec.name]
        if not dataclasses.is_dataclass(tp):
            continue
        sub = typing.get_type_hints(tp)
        for f in dataclasses.fields(tp):
            rng = f.metadata.get("range")
            if rng is None:
                continue
            bad = rng.hi + 1 if sub[f.name] is int else rng.hi * 2 + 1 if rng.hi > 0 else 1
            out.append((sec.name, f.name, bad))
    return out


CASES = _ranged()


def test_sections_declare_their_ranges():
    have = {(s, f) for s, f, _ in CASES}
    assert {("walk", "tempo"), ("safety", "fade_out_s"), ("safety", "flash_delta"),
            ("preview", "port"), ("music", "silence_s")} <= have


@pytest.mark.parametrize("section, name, bad", CASES)
def test_a_value_outside_a_declared_range_is_one_line(section, name, bad):
    cfg = load_config(None)
    cfg = cfg.replace(**{section: dataclasses.replace(getattr(cfg, section), **{name: bad})})
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    msg = str(e.value)
    assert f"{cfg.path}: {section}.{name}: " in msg and "\n" not in msg
