"""`latentdmx models`: the models `--model NAME` can play."""

from __future__ import annotations

import click


@click.command()
def models():
    """List the models `run --model NAME` can play, with what they make and where they are.

    \b
    bundled  with LatentDMX
    user     ~/.local/share/latentdmx/models/NAME ($XDG_DATA_HOME), yours only
    system   /var/lib/latentdmx/models/NAME ($LATENTDMX_SYSTEM_DIR), what the service plays
    A name is looked up in that order; any model folder can also be given as a path.
    """
    from ..runtime import list_models, load_model, model_folders

    rows = list_models()
    folders = dict(model_folders())
    if not rows:
        click.echo("no models found")
        return
    click.echo(f"{'NAME':<16}{'WHERE':<9}{'FAMILY':<8}{'OUTPUT':<18}{'LATENT':>6}  SIZE")
    for name, where in rows:
        info = load_model(folders[where] / name).info
        size = sum(p.stat().st_size for p in info.path.glob("model.*")) / 1024
        out = (f"points {','.join(info.fields)}" if info.kind == "points"
               else f"image {'x'.join(map(str, info.image_shape or ()))}")
        click.echo(f"{name:<16}{where:<9}{info.family:<8}{out:<18}{info.latent_dim:>6}  "
                   f"{size:.0f} KB")
    click.echo("")
    for where, folder in model_folders():
        click.echo(f"{where:<8} {folder}{'' if folder.is_dir() else '  (none yet)'}")
    twice = sorted({n for n, _ in rows if sum(m == n for m, _ in rows) > 1})
    if twice:
        click.echo(f"in more than one folder: {', '.join(twice)} (the first one listed plays)")
