"""Training both families on tiny data, export == NumPy runtime, and the train CLI's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from torch import nn

from pi_app.cli import main
from pi_app.runtime import load_model
from pi_app.training import export, iae, nat, quality

torch.set_num_threads(1)


def raw(model, z: np.ndarray) -> np.ndarray:
    """The runtime's output before the final clip to [0, 1]."""
    x = z.astype(np.float32)
    for op in model._ops:
        x = op(x)
    return x


def export_and_load(net: nn.Sequential, tmp_path, latent: int, image: tuple | None):
    output = ({"kind": "image", "shape": list(image)} if image else
              {"kind": "points", "fields": [{"name": f} for f in "xyrgbw"]})
    export.write_model(tmp_path, net, {"name": "t", "family": "iae" if image else "nat",
                                       "latent_dim": latent, "output": output})
    return load_model(tmp_path)


def torch_out(net: nn.Sequential, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        y = net(torch.from_numpy(z))
    return (y.permute(0, 2, 3, 1) if y.ndim == 4 else y).numpy()


# ----------------------------------------------------------------------------- export == runtime

POINT_NETS = {
    "relu-mlp (fused)": lambda: nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 32),
                                              nn.ReLU(), nn.Linear(32, 6)),
    "activations": lambda: nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 16),
                                         nn.LeakyReLU(0.2), nn.Linear(16, 16), nn.SiLU(),
                                         nn.Linear(16, 6), nn.Sigmoid()),
}


@pytest.mark.parametrize("kind", POINT_NETS)
def test_points_export_matches_torch(kind, tmp_path):
    torch.manual_seed(0)
    net = POINT_NETS[kind]()
    m = export_and_load(net, tmp_path, 5, None)
    z = np.random.default_rng(0).standard_normal((33, 5)).astype(np.float32)
    np.testing.assert_allclose(raw(m, z), torch_out(net, z), atol=1e-5)
    np.testing.assert_allclose(m.generate(z), torch_out(net, z).clip(0, 1), atol=1e-5)


def test_image_layers_match_torch(tmp_path):
    """Linear, Unflatten, Upsample, Conv2d (3x3 padded, 3x3 unpadded, 1x1), activations."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(7, 6 * 4 * 5), nn.ReLU(), nn.Unflatten(1, (6, 4, 5)),
                        nn.Upsample(scale_factor=2, mode="nearest"),      # (6, 8, 10)
                        nn.Conv2d(6, 5, 3, padding=1), nn.LeakyReLU(0.1),
                        nn.Upsample(scale_factor=3, mode="nearest"),      # (5, 24, 30)
                        nn.Conv2d(5, 4, 3), nn.Tanh(),                    # (4, 22, 28)
                        nn.Conv2d(4, 3, 1), nn.Sigmoid())                 # (3, 22, 28)
    m = export_and_load(net, tmp_path, 7, (22, 28, 3))
    z = np.random.default_rng(1).standard_normal((3, 7)).astype(np.float32)
    np.testing.assert_allclose(m.generate(z), torch_out(net, z), atol=1e-5)


def test_unsupported_layer_is_refused_at_export(tmp_path):
    with pytest.raises(TypeError, match="BatchNorm"):
        export.describe(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))


# ----------------------------------------------------------------------------- NAT


@pytest.fixture
def picture(tmp_path):
    """A tiny target: a red blob top-left, a cyan bar at the bottom, a white dot."""
    from PIL import Image

    img = np.zeros((24, 32, 3), np.uint8)
    img[3:9, 3:9] = (255, 40, 40)
    img[18:21, 4:28] = (30, 220, 255)
    img[10:12, 24:26] = 255
    path = tmp_path / "target.png"
    Image.fromarray(img).save(path)
    return path


def test_picture_target_samples(picture):
    target = nat.PictureTarget(nat.load_picture(picture))
    pts = target.sample(4000, np.random.default_rng(0))
    assert pts.shape == (4000, 6) and pts.min() >= 0 and pts.max() <= 1
    x, y, r, g, b, w = pts.T
    red = (x < 0.5) & (y < 0.5)                             # top left: only the red blob
    assert red.any() and (x[red] < 9 / 32).all() and (y[red] < 9 / 24).all()
    assert np.allclose(g[red], 0) and np.allclose(w[red], 40 / 255)
    assert ((y > 0.5) | (x < 0.5) | (w > 0.99)).all()       # nothing from the dark sky
    white = (x > 0.7) & (y < 0.6) & (y > 0.35)
    assert white.any() and np.allclose(pts[white, 2:5], 0) and np.allclose(w[white], 1)
    assert np.allclose(np.minimum(np.minimum(r, g), b), 0)  # the common part went to w


@pytest.mark.slow
def test_nat_trains_exports_and_improves(picture, tmp_path):
    cfg = nat.NATConfig(image=str(picture), latent_dim=4, width=32, depth=2, n_points=256,
                        batch_size=64, lr=5e-3, steps=150, ckpt_every=100)
    out = tmp_path / "nat"
    torch.manual_seed(cfg.seed)
    untrained = nat.build(cfg)                               # the same initial weights
    summary = nat.train(cfg, out, progress=False, threads=1)
    assert summary["steps"] == 150 and (out / "checkpoint.pt").is_file()

    m = load_model(out)
    target = nat.PictureTarget(nat.load_picture(picture))
    ref = target.sample(400, np.random.default_rng(5))
    z = np.random.default_rng(6).standard_normal((400, 4)).astype(np.float32)
    before = quality.ot_cost(torch_out(untrained.net, z).clip(0, 1), ref)
    after = quality.ot_cost(m.generate(z), ref)
    assert after < 0.7 * before

    # export == torch on the trained weights
    trained = nat.build(cfg)
    trained.load_state_dict(torch.load(out / "checkpoint.pt", weights_only=False)["model"])
    np.testing.assert_allclose(raw(m, z), torch_out(trained.net, z), atol=1e-5)

    # resume to a larger budget continues from the checkpoint
    cfg.steps = 170
    assert nat.train(cfg, out, progress=False, threads=1)["steps"] == 170

    # the quality step writes figures to model.json, a picture and the card
    figures = quality.measure(out, quick=True)
    assert figures["sw_floor"] <= figures["sw_gaussian"] and figures["sw_gap_closed"] > 0
    assert json.loads((out / "model.json").read_text())["quality"] == figures
    card = (out / "README.md").read_text()
    assert (out / "samples.png").is_file() and "Measured quality" in card
    # every figure the card prints is one that was measured
    for key in ("sw_model", "sw_gaussian", "sw_floor"):
        assert f"{figures[key]:.4f}" in card
    assert f"{100 * figures['off_model']:.1f} %" in card
    assert f"**{100 * figures['sw_gap_closed']:.0f} %**" in card
    show = figures["show"]
    assert f"**{show['lit_sweeps']}**" in card and "per fixture-hour" in card


@pytest.mark.slow
def test_nat_ctrl_c_saves_checkpoint_and_export(picture, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = nat.assign_batch

    def flaky(out, targets):
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt
        return real(out, targets)

    monkeypatch.setattr(nat, "assign_batch", flaky)
    cfg = nat.NATConfig(image=str(picture), latent_dim=4, width=16, depth=1, n_points=128,
                        batch_size=32, steps=100)
    summary = nat.train(cfg, tmp_path, progress=False, threads=1)
    assert summary["interrupted"] and summary["steps"] == 11
    assert (tmp_path / "checkpoint.pt").is_file() and load_model(tmp_path).info.latent_dim == 4


@pytest.mark.slow
def test_resume_with_other_settings_is_refused(picture, tmp_path):
    from pi_app.errors import LatentDMXError

    cfg = nat.NATConfig(image=str(picture), latent_dim=4, width=16, depth=1, n_points=128,
                        batch_size=32, steps=5)
    nat.train(cfg, tmp_path, progress=False, threads=1)
    cfg.width = 32
    with pytest.raises(LatentDMXError, match="width"):
        nat.train(cfg, tmp_path, progress=False, threads=1)
    assert nat.train(cfg, tmp_path, progress=False, threads=1, fresh=True)["steps"] == 5


# ----------------------------------------------------------------------------- inverted AE


@pytest.mark.slow
def test_iae_trains_exports_and_matches_torch(tmp_path):
    cfg = iae.IAEConfig(latent_dim=6, size=8, channels=8, batch_size=16, steps=25)
    out = tmp_path / "iae"
    summary = iae.train(cfg, out, progress=False, threads=1)
    assert summary["steps"] == 25

    m = load_model(out)
    assert m.info.kind == "image" and m.info.image_shape == (8, 8, 3)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    net = iae.build(cfg)
    net.load_state_dict(ckpt["model"])
    z = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    np.testing.assert_allclose(m.generate(z), torch_out(net.generator.net, z), atol=1e-5)

    figures = quality.measure(out, quick=True)
    full = figures["grid"]["1.0"]
    assert full["mse_trained"] < figures["mse_zero_guess"] * 1.5
    assert {"cos_baseline", "mse_baseline"} <= full.keys() and len(figures["grid"]) == 4
    assert 0 < figures["interp_step_mean"] < figures["interp_endpoint_change"]
    assert (out / "glyphs.png").is_file() and (out / "interpolation.png").is_file()
    card = (out / "README.md").read_text()
    assert f"{100 * figures['bold_share']:.1f} %" in card
    assert f"R² = **{figures['linear_r2']:.2f}**" in card
    assert f"**{full['cos_trained']:.3f}**" in card and f"{full['cos_baseline']:.3f}" in card
    assert "survive being moved and blurred" not in card       # no claim without a figure
    assert "baseline_decoder" in torch.load(out / "checkpoint.pt", weights_only=False)


def test_channel_is_differentiable_and_noisy():
    cfg = iae.IAEConfig()
    img = torch.rand(4, 3, 16, 16, requires_grad=True)
    out = iae.channel(img, cfg)
    assert out.shape == img.shape and not torch.allclose(out, img)
    out.sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- the CLI


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_trains_a_tiny_nat(picture, tmp_path):
    out = tmp_path / "cli"
    r = invoke("train", "nat", "--image", str(picture), "--out", str(out), "--steps", "5",
               "--points", "64", "--batch", "32", "--width", "8", "--no-quality")
    assert r.exit_code == 0, r.output
    recipe = json.loads((out / "model.json").read_text())["recipe"]
    assert recipe["command"].startswith("latentdmx train nat --image")


def test_cli_bad_picture_is_one_line(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not a picture")
    r = invoke("train", "nat", "--image", str(bad), "--out", str(tmp_path / "x"))
    assert r.exit_code == 2
    assert r.output.strip().count("\n") == 0 and "bad.png" in r.output
    assert "Traceback" not in r.output


def test_cli_bad_options_are_one_line(picture, tmp_path):
    r = invoke("train", "nat", "--image", str(picture), "--out", str(tmp_path), "--batch", "0")
    assert r.exit_code == 2 and "--batch" in r.output
    r = invoke("train", "iae", "--out", str(tmp_path), "--size", "10")
    assert r.exit_code == 2 and "--size" in r.output


def test_cli_without_torch_says_how_to_install(tmp_path, monkeypatch, picture):
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    r = invoke("train", "nat", "--image", str(picture), "--out", str(tmp_path / "x"))
    assert r.exit_code == 2 and "pip install torch==2.13.0" in r.output
    assert r.output.strip().count("\n") == 0


def test_cli_quality_needs_a_model_folder(tmp_path):
    r = invoke("train", "quality", str(tmp_path))
    assert r.exit_code == 2 and "model.json" in r.output


@pytest.mark.slow
def test_cli_minutes_is_the_budget_and_the_end_says_how_to_play(picture, tmp_path,
                                                                 monkeypatch):
    """`--minutes` alone: no 20000-step cap, a bar in % of the time budget (its estimate is
    the time left), the command that plays the result; and a warning for a model no better
    than the Gaussian baseline (one training step is not)."""
    import functools

    monkeypatch.setattr(quality, "measure", functools.partial(quality.measure, quick=True))
    out = tmp_path / "m"
    r = invoke("train", "nat", "--image", str(picture), "--out", str(out), "--minutes", "0.03",
               "--points", "256", "--batch", "32", "--width", "8", "--depth", "1")
    assert r.exit_code == 0, r.output
    assert "/20000" not in r.output and "%|" in r.output
    steps = json.loads((out / "model.json").read_text())["recipe"]["trained"]["steps"]
    assert steps > 20                                        # it ran for the time, not 0 %
    assert f"play it:    latentdmx run --model {out}" in r.output
    figures = json.loads((out / "model.json").read_text())["quality"]
    assert (quality.warning(figures) is None) == (figures["sw_gap_closed"] > 0)

    bad = tmp_path / "bad"
    r = invoke("train", "nat", "--image", str(picture), "--out", str(bad), "--steps", "1",
               "--points", "64", "--batch", "32", "--width", "4", "--depth", "1", "--lr", "1e-6")
    assert r.exit_code == 0, r.output
    assert "warning: the model is no closer to the picture than a Gaussian" in r.output


def test_background_threshold_and_gamma_shape_the_target(tmp_path):
    from PIL import Image

    from pi_app.errors import LatentDMXError

    rng = np.random.default_rng(3)
    sky = (0.25 + 0.05 * rng.standard_normal((40, 40, 3))).clip(0, 1)     # a grey, noisy sky
    sky[10:16, 10:16] = 1.0                                                 # one bright star
    path = tmp_path / "sky.png"
    Image.fromarray((sky * 255).astype(np.uint8)).save(path)
    pic = nat.load_picture(path)
    star = (10 / 40, 16 / 40)

    def on_star(t):
        pts = t.sample(2000, np.random.default_rng(0))
        inside = ((pts[:, 0] >= star[0]) & (pts[:, 0] < star[1]) & (pts[:, 1] >= star[0])
                  & (pts[:, 1] < star[1]))
        return inside.mean()

    assert on_star(nat.PictureTarget(pic)) < 0.2                            # the sky takes it
    assert on_star(nat.PictureTarget(pic, background="auto")) > 0.99         # Otsu: the star
    assert on_star(nat.PictureTarget(pic, threshold=0.5)) > 0.99
    assert on_star(nat.PictureTarget(pic, gamma=4.0)) > on_star(nat.PictureTarget(pic))
    with pytest.raises(LatentDMXError, match="background"):
        nat.PictureTarget(pic, background="sky")
    r = invoke("train", "nat", "--image", str(path), "--out", str(tmp_path / "x"),
               "--threshold", "1.5")
    assert r.exit_code == 2 and "--threshold" in r.output


def test_threads_default_to_one():
    from pi_app.training import common

    assert common.auto_threads(0) == 1 and common.auto_threads(3) == 3


def test_one_training_loop_steps_checkpoints_and_stops_on_ctrl_c():
    """`common.run_steps` is every family's loop: the learning rate follows the budget,
    `after` sees every step, checkpoints come every `ckpt_every`, Ctrl-C ends it cleanly."""
    from pi_app.training import common

    w = nn.Parameter(torch.tensor([4.0]))
    opt = torch.optim.SGD([w], lr=0.1)
    budget = common.Budget(steps=10)
    seen, saved, lrs = [], [], []

    def one_step(progress: float) -> torch.Tensor:
        lrs.append(opt.param_groups[0]["lr"])
        if len(lrs) == 8:
            raise KeyboardInterrupt
        return (w ** 2).sum()

    def after(step, loss):
        seen.append(step)
        return {"loss": f"{loss.item():.3f}"}

    step, interrupted = common.run_steps(
        opt, 0.1, budget, 0, common.Progress(budget, 0, "t", False), one_step,
        after=after, ckpt_every=3, checkpoint=saved.append)
    assert (step, interrupted) == (7, True)
    assert seen == [1, 2, 3, 4, 5, 6, 7] and saved == [3, 6]
    assert lrs[:7] == [common.cosine_lr(0.1, s / 10) for s in range(7)]
    assert abs(float(w) - 4.0) > 0.5                       # it did train
    step, interrupted = common.run_steps(                  # resumed: on to the budget's end
        opt, 0.1, budget, step, common.Progress(budget, step, "t", False),
        lambda p: (w ** 2).sum())
    assert (step, interrupted) == (10, False)


@pytest.mark.parametrize("family", ["gan", None, "NAT"])
def test_a_card_or_measure_of_an_unknown_family_is_one_line(tmp_path, family):
    from pi_app.errors import LatentDMXError
    from pi_app.training import card

    doc = {"schema": 1, "name": "x", "family": family, "latent_dim": 4,
           "output": {"kind": "image", "shape": [8, 8, 3]}}
    with pytest.raises(LatentDMXError) as err:
        card.write(tmp_path, doc)
    msg = str(err.value)
    assert "unknown model family" in msg and "model.json" in msg and "nat, iae" in msg
    assert "\n" not in msg and not (tmp_path / "README.md").exists()
    (tmp_path / "model.json").write_text(json.dumps(doc))
    r = invoke("train", "quality", str(tmp_path))
    assert r.exit_code == 2 and "family" in r.output and "Traceback" not in r.output
