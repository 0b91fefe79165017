"""`latentdmx train`: train, export and measure the two model families (needs PyTorch).

torch, scipy and tqdm are imported inside the commands only, so `latentdmx run` never pays
for them and a Pi without them still has a working CLI.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..errors import LatentDMXError

TORCH_FIX = ("install the training extras: `pip install torch==2.13.0` then "
             "`pip install -e .[train]`")


def _need_training() -> None:
    """Import the training stack or say, in one line, how to install it."""
    missing = []
    for mod in ("torch", "scipy", "tqdm"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise LatentDMXError(f"training needs {', '.join(missing)}, not installed",
                             field="train", fix=TORCH_FIX)


def _budget_options(f):
    f = click.option("--threads", default=0, show_default=True,
                     help="CPU threads for torch; 0 = one, which is fastest for these small "
                          "steps, above all on a shared machine.")(f)
    f = click.option("--fresh", is_flag=True,
                     help="Ignore OUT/checkpoint.pt and start over (default: resume).")(f)
    f = click.option("--device", default="cpu", show_default=True,
                     help="torch device: cpu, cuda, mps.")(f)
    f = click.option("--seed", default=0, show_default=True, help="Seed: same seed, same model.")(f)
    f = click.option("--minutes", type=float, default=None,
                     help="Train for this long (the LR schedule ends then); without --steps "
                          "there is no step limit.")(f)
    f = click.option("--no-quality", is_flag=True, help="Skip the measurement and pictures.")(f)
    return f


def _out_option(f):
    f = click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
                     callback=_system_out,
                     help="Model folder to write (checkpoint.pt, model.safetensors, "
                          "model.json, README.md, pictures); with --system, a model NAME.")(f)
    return click.option("--system", is_flag=True, is_eager=True, expose_value=False,
                        callback=lambda ctx, _p, v: ctx.meta.__setitem__(_SYSTEM, v),
                        help="Write into the service's models folder, "
                             "/var/lib/latentdmx/models/NAME (root or the latentdmx group).")(f)


_SYSTEM = "latentdmx.train.system"


def _system_out(ctx: click.Context, _param, out: Path | None) -> Path | None:
    """--out NAME --system: the folder NAME in the system models folder, checked writable."""
    import os

    from ..paths import system_dir

    if out is None or not ctx.meta.get(_SYSTEM):
        return out
    folder = system_dir() / "models"
    if len(out.parts) != 1 or str(out) in (".", ".."):
        raise LatentDMXError(f"with --system, --out is a model name, not a path ({out})",
                             field="--out", fix=f"e.g. --out my-nat --system (written to "
                                                f"{folder}/my-nat)")
    try:
        if not folder.is_dir():
            folder.mkdir(parents=True)
    except OSError as exc:
        raise LatentDMXError(f"cannot create {folder} ({exc.strerror})", field="--system",
                             fix="on the Pi run `sudo scripts/setup-pi.sh` (it makes the folder, "
                                 "writable by the latentdmx group), or use sudo") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise LatentDMXError(f"no permission to write {folder}", field="--system",
                             fix="join the latentdmx group (`sudo usermod -aG latentdmx $USER`, "
                                 "then log in again), or use sudo")
    return folder / out


def _command_line(ctx: click.Context) -> str:
    """The command as typed (options in a fixed order), recorded in the model's recipe."""
    parts = ["latentdmx", "train", ctx.info_name or ""]
    for key, value in ctx.params.items():
        if value is None or value is False or key in ("threads", "fresh", "no_quality"):
            continue
        if key == "steps" and value >= 10**9:                  # no step limit (--minutes)
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    return " ".join(parts)


@click.group()
def train() -> None:
    """Train a model (PyTorch), export it for the NumPy runtime, and measure it.

    \b
    latentdmx train nat --image PICTURE --out models/NAME --minutes 5
    latentdmx train iae --out models/NAME --minutes 5
    latentdmx train quality models/NAME
    """


@train.command()
@click.option("--image", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Target picture (PNG or JPEG): bright parts on a darker background.")
@_out_option
@click.option("--steps", type=int, default=None,
              help="Training steps (budget) [default: 20000, none with --minutes].")
@click.option("--latent", default=16, show_default=True, help="Noise (latent) size.")
@click.option("--width", default=128, show_default=True, help="Hidden units per layer.")
@click.option("--depth", default=5, show_default=True, help="Hidden layers.")
@click.option("--points", default=65536, show_default=True,
              help="Noise/target pool size (a large pool keeps samples off the gaps).")
@click.option("--batch", default=256, show_default=True, help="Points per Hungarian step.")
@click.option("--lr", default=3e-3, show_default=True, help="Peak learning rate.")
@click.option("--threshold", default=0.06, show_default=True,
              help="Pixels darker than this (0..1, after the background) are never targets.")
@click.option("--gamma", default=1.0, show_default=True,
              help="Target mass = brightness ** gamma (above 1: the brightest parts).")
@click.option("--background", default="auto", show_default=True,
              help="Brightness taken as background and removed: auto (Otsu's threshold: "
                   "a photograph's sky or wall), none, or 0..1.")
@_budget_options
@click.pass_context
def nat(ctx: click.Context, image: str, out: Path, steps: int | None, latent: int, width: int,
        depth: int, points: int, batch: int, lr: float, threshold: float, gamma: float,
        background: str, minutes: float | None, seed: int, device: str, fresh: bool,
        threads: int, no_quality: bool) -> None:
    """Noise As Targets: learn to draw points (x, y, r, g, b, w) from PICTURE."""
    _need_training()
    from ..training import nat as natmod

    steps = _steps(steps, minutes, 20000)
    for name, value in (("--steps", steps), ("--latent", latent), ("--width", width),
                        ("--depth", depth), ("--points", points), ("--batch", batch)):
        if value < 1:
            raise LatentDMXError(f"must be at least 1, got {value}", field=name,
                                 fix="give a positive number")
    if batch > points:
        raise LatentDMXError(f"batch {batch} is larger than the pool {points}", field="--batch",
                             fix="use --batch <= --points")
    if not 0.0 <= threshold < 1.0:
        raise LatentDMXError(f"must be in 0..1, got {threshold}", field="--threshold",
                             fix="e.g. 0.06")
    if not 0.05 <= gamma <= 10.0:
        raise LatentDMXError(f"must be in 0.05..10, got {gamma}", field="--gamma",
                             fix="1 = brightness as is; 2 favours the brightest parts")
    natmod.background_level(np.zeros(1), background)         # refuses a bad value early
    cfg = natmod.NATConfig(image=str(image), latent_dim=latent, width=width, depth=depth,
                           n_points=points, batch_size=batch, lr=lr, steps=steps, seed=seed,
                           threshold=threshold, gamma=gamma, background=background)
    summary = natmod.train(cfg, out, minutes=minutes, device=device, threads=threads,
                           fresh=fresh)
    _finish(out, summary, _command_line(ctx), no_quality, show_minutes=NAT_SHOW_MINUTES)


# `train nat` ends with a shorter show than `train quality` (20 minutes): the whole
# "--minutes 1" command fits in a minute and a half; the card says the show's length.
NAT_SHOW_MINUTES = 5.0


def _steps(steps: int | None, minutes: float | None, default: int) -> int:
    """--steps as given; else the default, or no step limit when --minutes sets the budget."""
    if steps is not None:
        return steps
    return 10**9 if minutes else default


@train.command()
@_out_option
@click.option("--steps", type=int, default=None,
              help="Training steps (budget) [default: 6000, none with --minutes].")
@click.option("--latent", default=16, show_default=True, help="Message (latent) size.")
@click.option("--size", default=16, show_default=True, help="Glyph size in pixels (multiple of 4).")
@click.option("--channels", default=32, show_default=True, help="Generator channels.")
@click.option("--batch", default=64, show_default=True, help="Messages per step.")
@click.option("--lr", default=2e-3, show_default=True, help="Peak learning rate.")
@click.option("--noise", default=1.0, show_default=True,
              help="The channel's additive noise (std; the references use about 1).")
@click.option("--palette", default=2.0, show_default=True,
              help="Weight of keeping each glyph to 3 colour classes (0 = any colours).")
@click.option("--smooth", default=0.6, show_default=True,
              help="Weight of colour regions larger than a cell (0 = any pattern).")
@_budget_options
@click.pass_context
def iae(ctx: click.Context, out: Path, steps: int | None, latent: int, size: int,
        channels: int, batch: int, lr: float, noise: float, palette: float, smooth: float,
        minutes: float | None, seed: int, device: str, fresh: bool, threads: int,
        no_quality: bool) -> None:
    """Inverted autoencoder: message -> glyph -> noisy channel -> message."""
    _need_training()
    from ..training import iae as iaemod

    steps = _steps(steps, minutes, 6000)
    if size < 4 or size % 4:
        raise LatentDMXError(f"must be a multiple of 4, got {size}", field="--size",
                             fix="use 16 or 32")
    for name, value in (("--steps", steps), ("--latent", latent), ("--channels", channels),
                        ("--batch", batch)):
        if value < 1:
            raise LatentDMXError(f"must be at least 1, got {value}", field=name,
                                 fix="give a positive number")
    if not 0.0 <= noise <= 5.0:
        raise LatentDMXError(f"must be in 0..5, got {noise}", field="--noise",
                             fix="about 1 makes bold glyphs; 0.1 makes pastel washes")
    for flag, weight in (("--palette", palette), ("--smooth", smooth)):
        if not 0.0 <= weight <= 10.0:
            raise LatentDMXError(f"must be in 0..10, got {weight}", field=flag,
                                 fix="about 1 keeps glyphs to a few colours in large regions")
    cfg = iaemod.IAEConfig(latent_dim=latent, size=size, channels=channels, batch_size=batch,
                           lr=lr, steps=steps, seed=seed, noise_add=noise, palette=palette,
                           smooth=smooth)
    summary = iaemod.train(cfg, out, minutes=minutes, device=device, threads=threads,
                           fresh=fresh)
    _finish(out, summary, _command_line(ctx), no_quality)


@train.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--threads", default=2, show_default=True, help="CPU threads for torch.")
def quality(folder: Path, threads: int) -> None:
    """Measure a trained model in FOLDER, draw its pictures and rewrite its README.md."""
    _need_training()
    from ..training import quality as q

    figures = q.measure(folder, threads=threads)
    click.echo(q.summary_line(figures))


def _finish(out: Path, summary: dict, command: str, no_quality: bool,
            show_minutes: float | None = None) -> None:
    from ..training import export

    export.set_command(out, command)
    if summary.get("interrupted"):
        click.echo(f"interrupted at step {summary['steps']}: checkpoint and export written; "
                   "run the same command again to continue", err=True)
    click.echo(f"trained {summary['steps']} steps in {summary['train_seconds']:.0f} s "
               f"-> {out / 'model.safetensors'}")
    flat = summary.get("flat_since_s")
    if flat is not None:
        click.echo(f"quality stopped improving after {flat:.0f} s of training "
                   "(a shorter --minutes would have done)")
    if not no_quality:
        from ..training import quality as q

        figures = q.measure(out, show_minutes=show_minutes)
        click.echo(q.summary_line(figures))
        warning = q.warning(figures)
        if warning:
            click.echo(f"warning: {warning}", err=True)
    click.echo(f"play it:    latentdmx run --model {out}")
    click.echo(f"see it:     latentdmx render --model {out} --out {out / 'show.png'}")
