"""Write a model's card, ``README.md``, from its ``model.json`` (recipe and measured quality).

A hand-written ``about.md`` beside the model (what it is for, where the data comes from, its
licence) is included at the top when present.
"""

from __future__ import annotations

import json
from pathlib import Path

NAT_TEXT = """\
**Family:** Noise As Targets (`nat`). A small MLP maps a noise vector z ~ N(0, I) of size
{latent} to one point (x, y, r, g, b, w), all in [0, 1]: x, y a position in the target picture
(x = 0 left, y = 0 top), r, g, b, w its colour split for an RGBW fixture (w = the common part
min(R, G, B), r, g, b the rest). Fed a slowly moving z per fixture, each fixture wanders over
the picture's bright parts in their colours."""

IAE_TEXT = """\
**Family:** inverted autoencoder (`iae`). A generator turns a message z ~ N(0, I) of size
{latent} into a {h} x {w} RGB picture in [0, 1] (a "glyph"). It was trained together with a
decoder that had to read the message back after a noisy channel (random rotation, translation,
scale, shear and perspective, additive and multiplicative Gaussian noise), so the glyphs are
bold, smooth shapes that survive being moved and blurred; moving z morphs them."""


def _nat_quality(q: dict) -> list[str]:
    return [
        "Distance between 2,000 generated samples and 2,000 target samples: the exact optimal",
        "one-to-one assignment cost per point (mean Euclidean distance in (x, y, r, g, b, w),",
        (f"`scipy.optimize.linear_sum_assignment`), mean of {q.get('repeats', 1)} draws. "
        "Lower is better."),
        "",
        "| samples from | cost per point |",
        "|---|---|",
        f"| this model (NumPy runtime) | **{q['assignment_cost']:.4f}** |",
        (f"| Gaussian fitted to the target's mean and covariance (baseline) | "
        f"{q['gaussian_cost']:.4f} |"),
        f"| the target itself, an independent draw (floor) | {q['floor_cost']:.4f} |",
        "",
        (f"Model / baseline = {q['ratio_to_gaussian']:.2f}; model / floor = "
        f"{q['ratio_to_floor']:.2f}. `generate` on 32 latents: {q['generate_us']:.0f} µs "
        "(NumPy, this machine)."),
    ]


def _iae_quality(q: dict) -> list[str]:
    return [
        (f"Message reconstruction through the noise channel ({q.get('messages', 1000):,} random "
        "messages, fresh channel noise), with the trained decoder:"),
        "",
        "| generator | MSE | cosine similarity |",
        "|---|---|---|",
        f"| trained | **{q['mse_trained']:.4f}** | **{q['cos_trained']:.3f}** |",
        (f"| untrained (its initial weights) | {q['mse_untrained']:.4f} | "
        f"{q['cos_untrained']:.3f} |"),
        f"| guessing zero | {q['mse_zero_guess']:.4f} | 0 |",
        "",
        (f"Interpolation ({q['interp_steps']} steps along straight lines between random "
        f"messages): mean change per step {q['interp_step_mean']:.4f} (mean |Δ| per pixel "
        f"and channel), largest step / mean step {q['interp_step_max_over_mean']:.2f} "
        f"(1 = perfectly even), whole path {q['interp_endpoint_change']:.3f}."),
        f"`generate` of one glyph: {q['generate_us']:.0f} µs (NumPy, this machine).",
    ]


def write(folder: Path, doc: dict) -> Path:
    """Write ``folder/README.md`` from `doc` (the model.json contents)."""
    recipe, q = doc.get("recipe", {}), doc.get("quality", {})
    trained = recipe.get("trained", {})
    family = doc["family"]
    out = doc["output"]
    lines = [f"# {doc.get('name', folder.name)}", ""]
    about = folder / "about.md"
    if about.is_file():
        lines += [about.read_text(encoding="utf-8").strip(), ""]
    if family == "nat":
        lines += [NAT_TEXT.format(latent=doc["latent_dim"]), "",
                  "![target | samples | samples over the target](samples.png)", "",
                  ("*Left: the target picture. Middle: 2,000 samples from the model (colour at "
                  "full brightness). Right: the samples over the dimmed target.*")]
    else:
        h, w, _ = out["shape"]
        lines += [IAE_TEXT.format(latent=doc["latent_dim"], h=h, w=w), "",
                  "![64 random glyphs](glyphs.png)", "", "*64 random messages.*", "",
                  "![interpolations](interpolation.png)", "",
                  "*Four straight-line interpolations between random messages, 12 steps.*"]
    lines += ["", "## Recipe", "", "```sh"]
    if family == "nat":
        lines.append("python models/nat-aurora/make_target.py   # the target picture"
                     if folder.name == "nat-aurora" else "# any PNG/JPEG target picture")
    lines += [recipe.get("command", "(command not recorded)"), "```", "",
              f"Settings: `{json.dumps(recipe.get('config', {}))}`", "",
              (f"Trained {trained.get('steps', '?')} steps in "
               f"{trained.get('train_seconds', '?')} s "
              f"on this machine's CPU (torch {recipe.get('torch', '?')}, "
              f"{recipe.get('date', '?')}). The command writes the checkpoint, the export "
              "(`model.safetensors`, `model.json`), the measurements below, the pictures and "
              "this card; `latentdmx train quality FOLDER` measures again."), "",
              "## Measured quality", ""]
    if q:
        lines += _nat_quality(q) if family == "nat" else _iae_quality(q)
    else:
        lines.append("Not measured yet: run `latentdmx train quality` on this folder.")
    lines += ["", "## Files", "",
              ("- `model.safetensors` — the generator's weights (no pickle), "
              "`model.json` — its layers, output fields and this recipe; "
              "`pi_app.runtime` runs it with NumPy."),
              ("- `checkpoint.pt` (the training state, a pickle) is not shipped (git-ignored); "
              "the recipe makes it again. `train quality` needs it for an `iae` model, whose "
              "decoder lives there."),
              "- Licence: the weights and pictures are CC0 (public domain); the code is MIT."]
    if family == "nat" and folder.name == "nat-aurora":
        lines.append("- `target.png` is made by `make_target.py` (procedural, seeded; CC0).")
    path = folder / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
