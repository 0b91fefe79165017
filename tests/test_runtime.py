"""The NumPy runtime: bundled models, model lookup, broken files, and no torch on import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pi_app.errors import ModelError
from pi_app.runtime import ModelInfo, list_models, load_model

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ("nat-aurora", "iae-glyphs")


def z_for(m, n: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, m.info.latent_dim)).astype(np.float32)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_loads_and_gives_finite_outputs_in_range(name):
    m = load_model(name)
    assert isinstance(m.info, ModelInfo)
    assert m.info.name == name
    assert (name, "bundled") in list_models()
    out = m.generate(z_for(m, 8) * 3)                 # far-out latents too
    assert out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    if m.info.kind == "points":
        assert m.info.fields == ("x", "y", "r", "g", "b", "w")
        assert out.shape == (8, 6) and m.info.image_shape is None
    else:
        assert out.shape == (8, *m.info.image_shape) and m.info.image_shape[2] == 3
    assert "quality" in m.info.card and "recipe" in m.info.card
    assert (m.info.path / "model.safetensors").stat().st_size < 1_000_000
    assert (m.info.path / "README.md").is_file()


def test_nat_aurora_is_the_points_model_the_show_expects():
    m = load_model("nat-aurora")
    assert (m.info.family, m.info.kind, m.info.latent_dim) == ("nat", "points", 16)
    z = z_for(m)
    a = m.generate(z)
    b = m.generate(z)
    assert a is not b and np.array_equal(a, b)       # deterministic, fresh arrays
    a[:] = -1                                         # the caller may scribble on its result
    assert np.array_equal(m.generate(z), b)
    assert np.array_equal(z, z_for(m))               # and z is left alone
    pts = m.generate(z_for(m, 2000, seed=1))
    assert pts[:, :2].std(0).min() > 0.1              # spread over the picture, not collapsed


def test_wrong_z_shape_is_refused():
    m = load_model("nat-aurora")
    with pytest.raises(ValueError):
        m.generate(np.zeros((4, m.info.latent_dim + 1), np.float32))


def test_lookup_by_path_and_model_json(tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(ROOT / "models" / "nat-aurora", dst,
                    ignore=shutil.ignore_patterns("checkpoint.pt", "*.png"))
    assert load_model(dst).info.path == dst
    assert load_model(str(dst / "model.json")).info.path == dst


def test_user_models_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    dst = tmp_path / "latentdmx" / "models" / "mine"
    shutil.copytree(ROOT / "models" / "nat-aurora", dst,
                    ignore=shutil.ignore_patterns("checkpoint.pt", "*.png"))
    assert ("mine", "user") in list_models()
    assert load_model("mine").info.path == dst


# ----------------------------------------------------------------------------- broken models


@pytest.fixture
def broken(tmp_path):
    dst = tmp_path / "broken"
    shutil.copytree(ROOT / "models" / "nat-aurora", dst,
                    ignore=shutil.ignore_patterns("checkpoint.pt", "*.png"))
    return dst


def _error(name) -> ModelError:
    with pytest.raises(ModelError) as info:
        load_model(name)
    text = str(info.value)
    assert "\n" not in text and info.value.fix
    return info.value


def test_missing_model_names_the_place(tmp_path):
    err = _error(tmp_path / "nowhere")
    assert "nowhere" in str(err) and "nat-aurora" in err.fix
    _error("no-such-model")


def test_missing_weights(broken):
    (broken / "model.safetensors").unlink()
    assert _error(broken).file.endswith("model.safetensors")


def test_truncated_weights(broken):
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert _error(broken).file.endswith("model.safetensors")


def test_garbage_weights(broken):
    (broken / "model.safetensors").write_bytes(b"\x00" * 4)
    assert _error(broken).file.endswith("model.safetensors")


def test_bad_json(broken):
    (broken / "model.json").write_text("{not json")
    assert _error(broken).file.endswith("model.json")


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.pop("family"), "family"),
    (lambda d: d.update(family="gan"), "family"),
    (lambda d: d.update(schema=99), "schema"),
    (lambda d: d.update(latent_dim="16"), "latent_dim"),
    (lambda d: d["output"].update(kind="sound"), "output.kind"),
    (lambda d: d.pop("layers"), "layers"),
    (lambda d: d["layers"].append({"type": "dropout"}), "layers["),
    (lambda d: d["layers"].insert(0, {"type": "upsample", "scale": 2}), "layers[0]."),
])
def test_wrong_json_fields_are_named(broken, edit, field):
    path = broken / "model.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    err = _error(broken)
    assert err.file.endswith("model.json") and err.field.startswith(field)


def test_shape_mismatch_between_json_and_weights(broken):
    path = broken / "model.json"
    doc = json.loads(path.read_text())
    doc["latent_dim"] = 8
    path.write_text(json.dumps(doc))
    err = _error(broken)
    assert err.file.endswith("model.safetensors") and "shape" in str(err)


def test_runtime_import_does_not_import_torch():
    code = ("import sys, pi_app.runtime; m = pi_app.runtime.load_model('nat-aurora'); "
            "import pi_app.commands.train; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_nan_weights_are_refused(tmp_path):
    """A diverged training run must not play silently dark: one line naming the tensor."""
    import shutil

    from safetensors.numpy import load_file, save_file

    from pi_app.errors import ModelError
    from pi_app.runtime import find_model, load_model

    folder = tmp_path / "m"
    shutil.copytree(find_model("nat-aurora"), folder)
    weights = load_file(str(folder / "model.safetensors"))
    name = min(weights)
    weights[name][...] = np.nan
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(ModelError) as err:
        load_model(str(folder))
    assert err.value.field == name and "not finite" in str(err.value)
