"""`train nat --image PHOTO --minutes 1`: the card's figures (20,000 samples x 3 draws with
their spread), the measuring step's progress, the licence of a user's picture, the off-target
share's k-d tree against brute force."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from pi_app.training import card, measures, nat, quality  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def picture(tmp_path):
    """Two bright shapes on black: a red square and a cyan bar."""
    from PIL import Image

    img = np.zeros((24, 32, 3), np.uint8)
    img[3:9, 3:9] = (255, 40, 40)
    img[18:21, 4:28] = (30, 220, 255)
    path = tmp_path / "mine.png"
    Image.fromarray(img).save(path)
    return path


def _licence_line(folder) -> str:
    text = (folder / "README.md").read_text()
    return next(line for line in text.splitlines() if line.startswith("- Licence"))


def _doc(family: str = "nat") -> dict:
    out = ({"kind": "points", "fields": []} if family == "nat"
           else {"kind": "image", "shape": [16, 16, 3]})
    return {"name": "mine", "family": family, "latent_dim": 4, "output": out, "recipe": {}}


def test_a_users_picture_is_not_claimed_cc0(tmp_path):
    card.write(tmp_path, _doc())
    line = _licence_line(tmp_path)
    assert "CC0" not in line and "unknown" in line and "owner" in line


def test_what_the_project_made_itself_stays_cc0(tmp_path):
    (tmp_path / "make_target.py").write_text("# procedural\n")
    card.write(tmp_path, _doc())
    assert "CC0" in _licence_line(tmp_path)
    glyphs = tmp_path / "glyphs"
    glyphs.mkdir()
    card.write(glyphs, _doc("iae"))
    assert "CC0" in _licence_line(glyphs)
    (tmp_path / "LICENCE.md").write_text("CC BY 4.0\n")
    card.write(tmp_path, _doc())
    assert "LICENCE.md" in _licence_line(tmp_path)


def test_off_target_tree_matches_brute_force():
    rng = np.random.default_rng(3)
    ref = rng.random((3000, 2))
    pts = rng.random((500, 2)) * 1.2
    brute = np.sqrt(((pts[:, None] - ref[None]) ** 2).sum(-1)).min(1)
    assert np.allclose(measures._nearest(pts, ref), brute)
    off = measures.OffTarget(ref, 0.02)
    assert off.fraction(pts) == pytest.approx(float((brute > 0.02).mean()))


@pytest.mark.slow
def test_measuring_shows_progress_and_cards_carry_20000_samples_with_spread(
        picture, tmp_path, capsys):
    out = tmp_path / "nat"
    cfg = nat.NATConfig(image=str(picture), latent_dim=4, width=32, depth=2, n_points=512,
                        batch_size=64, steps=60, background="auto")
    nat.train(cfg, out, progress=False, threads=1)
    capsys.readouterr()
    figures = quality.measure(out, show_minutes=1.0)
    err = capsys.readouterr().err
    assert "measuring:" in err and "100%" in err                 # the bar ran to its end
    assert figures["samples"] == 20_000 and figures["repeats"] == 3
    for key in ("sw_gap_closed", "off_ratio_to_floor", "sw_model", "off_model"):
        assert figures[f"{key}_sd"] > 0                          # 3 draws differ
    text = (out / "README.md").read_text()
    assert "20,000 samples" in text and "3 draws" in text
    ratio = json.loads((out / "model.json").read_text())["quality"]["off_ratio_to_floor_sd"]
    assert f"± {ratio:.1f}x" in text
