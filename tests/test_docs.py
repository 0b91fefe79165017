"""The front page and the manual: README is short and its links land; the manual (docs/,
built by `mkdocs build --strict` in scripts/test.sh) speaks of the product, not its history."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = sorted((ROOT / "docs").glob("*.md"))


def slug(title: str) -> str:                  # MkDocs' (Python-Markdown toc) anchors
    s = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return re.sub(r"[\s]+", "-", s)


def anchors(page: Path) -> set[str]:
    text, fence, out = page.read_text(encoding="utf-8"), False, set()
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"^#{1,6} (.*)$", line)
        if m:
            out.add(slug(m.group(1)))
    return out


def test_readme_is_a_front_page():
    assert len(README.splitlines()) <= 300
    for page in ("docs/commands.md", "docs/configuration.md", "docs/safety.md"):
        assert f"]({page})" in README


def test_every_readme_link_lands():
    for _label, target in re.findall(r"\[([^\]]*)\]\(([^)\s]+)\)", README):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        assert (ROOT / path).exists(), target
        if anchor:
            assert anchor in anchors(ROOT / path), target


@pytest.mark.parametrize("page", [p for p in PAGES if p.name != "architecture.md"],
                         ids=lambda p: p.name)
def test_the_manual_speaks_of_the_product_not_its_history(page):
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"\b[Ii]ssues? \d", text), "issue numbers: CHANGELOG"
    assert not re.search(r"\b(before|was) \(?[0-9a-f]{7,}\b|\([0-9a-f]{7}\b", text), \
        "commit references: CHANGELOG"
    assert not re.search(r"^\|.*\| before .*\| now \|", text, re.MULTILINE), \
        "before/after tables: CHANGELOG"
