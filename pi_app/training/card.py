"""Write a model's card, ``README.md``, from its ``model.json`` (recipe and measured quality).

Every sentence about quality is printed from a figure that `quality.measure` stored in
``model.json``; a claim with no figure behind it is not written. A hand-written ``about.md``
beside the model (what it is for, where the data comes from, its licence) is included at the
top when present.
"""

from __future__ import annotations

import json
from pathlib import Path

from .families import family_of

NAT_TEXT = """\
**Family:** Noise As Targets (`nat`). A small MLP maps a noise vector z ~ N(0, I) of size
{latent} to one point (x, y, r, g, b, w), all in [0, 1]: x, y a position in the target picture
(x = 0 left, y = 0 top), r, g, b, w its colour split for an RGBW fixture (w = the common part
min(R, G, B), r, g, b the rest). Fed a slowly moving z per fixture, each fixture wanders over
the picture's bright parts in their colours."""

IAE_TEXT = """\
**Family:** inverted autoencoder (`iae`). A generator turns a message z ~ N(0, I) of size
{latent} into a {h} x {w} RGB picture in [0, 1] (a "glyph"). It was trained together with a
decoder that had to read the message back through a noisy channel: {channel}. Walking z
morphs one glyph into the next; the whole rig samples one glyph."""


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _sd(q: dict, key: str, scale: float = 1.0, fmt: str = ".1f") -> str:
    """" ± spread" (the standard deviation over the draws) when it was measured."""
    sd = q.get(f"{key}_sd")
    return "" if sd is None or q.get("repeats", 1) < 2 else f" ± {scale * sd:{fmt}}"


def _nat_quality(q: dict) -> list[str]:
    n, reps = q.get("samples", 2000), q.get("repeats", 1)
    ed_n = q.get("ed_samples", n)
    return [
        (f"{n:,} samples of the exported model (the NumPy runtime the Pi runs) against "
         f"{n:,} target samples, mean of {reps} draws (± the standard deviation over the "
         f"draws); the energy distance on the first {ed_n:,} of each. The floor is a second "
         "draw of the target itself, the baseline a Gaussian fitted to the target's mean and "
         "covariance. Lower distances are better."),
        "",
        "| samples from | sliced Wasserstein | energy distance | off-target |",
        "|---|---|---|---|",
        (f"| this model | **{q['sw_model']:.4f}** | **{q['ed_model']:.5f}** | "
         f"**{_pct(q['off_model'])}** |"),
        (f"| Gaussian (baseline) | {q['sw_gaussian']:.4f} | {q['ed_gaussian']:.5f} | "
         f"{_pct(q['off_gaussian'])} |"),
        (f"| the target, a second draw (floor) | {q['sw_floor']:.4f} | {q['ed_floor']:.5f} | "
         f"{_pct(q['off_floor'])} |"),
        "",
        (f"The model closes **{100 * q['sw_gap_closed']:.0f}"
         f"{_sd(q, 'sw_gap_closed', 100, '.0f')} %** of the gap from the Gaussian to the "
         f"floor in sliced Wasserstein distance ({100 * q['ed_gap_closed']:.0f}"
         f"{_sd(q, 'ed_gap_closed', 100, '.0f')} % in energy distance). "
         f"**{_pct(q['off_model'])}** of its samples land off target "
         f"(**{q['off_ratio_to_floor']:.1f}{_sd(q, 'off_ratio_to_floor')}x** the floor's "
         "share): farther from every point of a 4x larger target draw than 99 % of a second "
         "target draw is (the floor scores about 1 % by that definition)."),
    ]


def _iae_quality(q: dict) -> list[str]:
    grid = q["grid"]
    rows = ["| channel strength (noise std) | this generator: cosine / MSE | random fixed "
            "generator (same size, contrast matched) + its own trained decoder: cosine / MSE |",
            "|---|---|---|"]
    for s, g in grid.items():
        rows.append(f"| {float(s):g}x ({g['noise_std']:g}) | **{g['cos_trained']:.3f}** / "
                    f"{g['mse_trained']:.3f} | {g['cos_baseline']:.3f} / "
                    f"{g['mse_baseline']:.3f} |")
    return [
        (f"**The glyphs** (2,000 random messages, from the NumPy runtime): "
         f"**{_pct(q['bold_share'])}** of pixel values are bold (below 0.1 or above 0.9); "
         f"mean chroma (max - min of R, G, B) **{q['chroma']:.2f}**. A linear map from message "
         f"to glyph, fitted on 1,500 messages, explains R² = **{q['linear_r2']:.2f}** of "
         "held-out glyphs (1 = the glyphs are a linear blend of a few fixed pictures, lower "
         "= more shapes than blends)." + _baseline_glyphs(q)),
        "",
        (f"**Morphs** (slerp, as the show walks): the picture halfway between two messages "
         f"differs from the pixel crossfade of the two ends by "
         f"**{100 * q['midpoint_vs_crossfade']:.0f} %** of the difference between the ends "
         f"(0 % = a crossfade). Along 32-step paths each step changes "
         f"{q['interp_step_mean']:.4f} per pixel and channel on average, the largest step is "
         f"{q['interp_step_max_over_mean']:.2f}x the mean step, and the path is "
         f"{q['interp_path_over_ends']:.2f}x as long as the straight change from end to end."),
        "",
        (f"**Decoding** ({q.get('messages', 1000):,} random messages, fresh channel noise; "
         f"the channel at fractions of its training strength; guessing zero scores MSE "
         f"{q['mse_zero_guess']:.3f}, cosine 0; the baseline decoder was trained "
         f"{q['baseline_steps']:,} steps):"),
        "",
        *rows,
    ]


def _baseline_glyphs(q: dict) -> str:
    b = q.get("baseline_glyphs")
    if not b:
        return ""
    return (f" For comparison, a random generator of the same size with the same contrast: "
            f"{_pct(b['bold_share'])} bold, chroma {b['chroma']:.2f}, R² {b['linear_r2']:.2f}.")


COLOUR_CLASSES = (
    "a colour's class is *dark* when its brightness max(R, G, B) is at most 10 % (not lit), "
    "else the corner of the RGB cube its channels reach at half the brightness or more (red, "
    "yellow, green, cyan, blue, magenta, white)")


def _colour(c: dict, design: dict) -> list[str]:
    """The colour figures (`quality.colour_figures`) and a monochrome-by-design note."""
    hue = (f"hue entropy **{c['hue_bits']:.2f} bits** (of log2 36 = 5.17: the hue of lit "
           "colours with saturation ≥ 25 %, in 36 bins of 10°)")
    note = [line for key, label in (("monochrome", "Monochrome by design"),
                                    ("palette", "Few hues by design"))
            if design.get(key) for line in ("", f"**{label}:** {design[key]}")]
    if "classes_per_glyph" not in c:
        return [f"**Colour** ({c['samples']:,} samples, r + w, g + w, b + w): {hue}.", *note]
    return [
        (f"**Colour and regions** ({c['samples']:,} random messages; {COLOUR_CLASSES}): "
         f"**{c['classes_per_glyph']:.2f} classes per glyph** on average (covering at least "
         f"1/64 of its area; {c['classes_any_pixel']:.2f} counting any pixel). On an 8 × 8 "
         f"grid of pars, each at its cell's centre reading the glyph: "
         f"**{c['lit_at_once']:.2f} lit classes at once** (p95 {c['lit_at_once_p95']:.0f}); "
         f"of pairs with a par lit, grid neighbours share a class "
         f"{_pct(c['neighbour_share'])} of the time, pars at least 4 spacings apart "
         f"{_pct(c['far_share'])}: **{c['share_ratio']:.2f}x** as often "
         f"({c['grid4_share_ratio']:.2f}x on a 4 × 4 grid). {hue[0].upper()}"
         f"{hue[1:]}. The morph midpoint differs from the crossfade by "
         f"**{100 * c['midpoint_vs_crossfade']:.0f} %** of the ends' difference, a random "
         f"generator's (same layers, contrast matched) by "
         f"{100 * c['midpoint_random']:.0f} %."),
        *note]


def _show_quality(s: dict, kind: str) -> list[str]:
    lines = [
        (f"A {s['minutes']:g}-minute show on the demo rig (`latentdmx render --model ...`, "
         "the real pipeline), decoded from its DMX frames, over its "
         f"{s['heads']} moving heads:"),
        "",
        f"- lit sweeps (aim moving > 20 % of its range within 1 s while lit > 10 %): "
        f"**{s['lit_sweeps']}** ({s['lit_sweeps_per_hour']:.1f} per head-hour);",
        f"- moves in the dark (dim, move, come back): {s['moves_in_black_per_hour']:.0f} "
        f"per head-hour; dark (≤ 10 %) {_pct(s['dark_share'])} of the time;",
        f"- frames at a limit of the configured range: **{_pct(s['at_limit_share'])}** "
        f"(worst head and axis); aim spread (5-95 % range) {100 * s['spread']:.0f} % of the "
        "range on average;",
        f"- median head speed {s['median_speed_deg_per_s']:.1f} °/s.",
    ]
    if kind == "nat" and "tears_per_fixture_hour" in s:
        lines.insert(2, (f"- walk tears (a fixture's wanted point moving > 10 % of the picture "
                         f"in one frame): **{s['tears_per_fixture_hour']:.0f} per "
                         f"fixture-hour**, largest {s['largest_walk_step']:.2f} of the "
                         "picture;"))
    return lines


def _channel(ch: dict) -> str:
    return (f"rotation ±{ch['rotate_deg']:g}°, shift ±{100 * ch['translate']:g} %, zoom "
            f"±{100 * ch['scale']:g} %, shear ±{ch['shear_deg']:g}°, perspective "
            f"±{ch['perspective']:g}, blur up to σ {ch.get('blur', 0):g} px, multiplicative "
            f"noise {ch['noise_mul']:g} and additive Gaussian noise of std {ch['noise_add']:g}")


def _licence(folder: Path, family: str) -> str:
    """CC0 only for what the project made itself: a glyph model (trained from noise) or a
    picture drawn by the model's own `make_target.py`. A picture brought by a user keeps
    its owner's licence, which the card cannot know."""
    if (folder / "LICENCE.md").is_file():
        return "- Licence: see [LICENCE.md](LICENCE.md). The code is MIT."
    if family != "nat" or (folder / "make_target.py").is_file():
        return "- Licence: the weights and pictures are CC0 (public domain); the code is MIT."
    return ("- Licence: unknown. The target picture is not part of LatentDMX: it keeps its "
            "owner's licence, and the weights and `samples.png`, made from it, follow it "
            "(add a `LICENCE.md` here to say which). The code is MIT.")


def write(folder: Path, doc: dict) -> Path:
    """Write ``folder/README.md`` from `doc` (the model.json contents)."""
    recipe, q = doc.get("recipe", {}), doc.get("quality", {})
    trained = recipe.get("trained", {})
    family = family_of(doc, folder / "model.json")
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
        cfg = recipe.get("config", {})
        ch = q.get("channel") or {k: cfg.get(k, 0) for k in (
            "rotate_deg", "translate", "scale", "shear_deg", "perspective", "blur",
            "noise_add", "noise_mul")}
        lines += [IAE_TEXT.format(latent=doc["latent_dim"], h=h, w=w, channel=_channel(ch)),
                  "", "![64 random glyphs](glyphs.png)", "", "*64 random messages.*", "",
                  "![interpolations](interpolation.png)", "",
                  ("*Four morphs between random messages in 12 steps (slerp, as the show "
                   "walks); the last picture of each row is the pixel crossfade of its two "
                   "ends, for comparison with the real midpoint.*")]
    lines += ["", "## Recipe", "", "```sh"]
    if (folder / "make_target.py").is_file():
        lines.append(f"python models/{folder.name}/make_target.py   # the target picture")
    lines += [recipe.get("command", "(command not recorded)"), "```", "",
              f"Settings: `{json.dumps(recipe.get('config', {}))}`", "",
              (f"Trained {trained.get('steps', '?')} steps in "
               f"{trained.get('train_seconds', '?')} s "
              f"on this machine's CPU (torch {recipe.get('torch', '?')}, "
              f"{recipe.get('date', '?')}). The command writes the checkpoint, the export "
              "(`model.safetensors`, `model.json`), the measurements below, the pictures and "
              "this card; `latentdmx train quality FOLDER` measures again.")]
    if trained.get("flat_since_s") is not None:
        lines += ["", (f"Quality stopped improving after {trained['flat_since_s']:.0f} s of "
                       "training.")]
    lines += ["", "## Measured quality", ""]
    if q.get("grid") or q.get("sw_model") is not None:
        lines += _nat_quality(q) if family == "nat" else _iae_quality(q)
        if q.get("colour"):
            lines += ["", *_colour(q["colour"], doc.get("design", {}))]
        if q.get("show"):
            lines += ["", *_show_quality(q["show"], family)]
        lines += ["", (f"`generate` of {'32 points' if family == 'nat' else 'one glyph'}: "
                       f"{q['generate_us']:.0f} µs (NumPy, this machine).")]
    else:
        lines.append("Not measured yet: run `latentdmx train quality` on this folder.")
    lines += ["", "## Files", "",
              ("- `model.safetensors` — the generator's weights (no pickle), "
              "`model.json` — its layers, output fields, this recipe and the measurements; "
              "`pi_app.runtime` runs it with NumPy."),
              ("- `checkpoint.pt` (the training state, a pickle) is not shipped (git-ignored); "
              "the recipe makes it again. `train quality` needs it for an `iae` model, whose "
              "decoder lives there.")]
    lines.append(_licence(folder, family))
    if (folder / "make_target.py").is_file():
        lines.append("- `target.png` is made by `make_target.py` (procedural, seeded; CC0).")
    path = folder / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
