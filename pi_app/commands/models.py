"""`latentdmx models`: the models `--model NAME` can play."""

from __future__ import annotations

import click


@click.command()
def models():
    """List the bundled and user models (`run --model NAME`), with what they make.

    User models live in ~/.local/share/latentdmx/models/NAME ($XDG_DATA_HOME); any model
    folder can also be given to --model as a path. A model that cannot be played is listed
    as broken, with the reason; the others are listed as usual.
    """
    from ..errors import LatentDMXError
    from ..runtime import list_models, load_model, user_dir

    rows = list_models()
    if not rows:
        click.echo("no models found")
        return
    click.echo(f"{'NAME':<16}{'WHERE':<9}{'FAMILY':<8}{'OUTPUT':<18}{'LATENT':>6}  SIZE")
    broken = 0
    for name, where in rows:
        try:
            info = load_model(name).info
        except LatentDMXError as exc:
            broken += 1
            why = ": ".join(x for x in (exc.field, exc.what) if x)
            click.echo(f"{name:<16}{where:<9}BROKEN  {why}" + (f" — {exc.fix}" if exc.fix
                                                                else ""))
            continue
        size = sum(p.stat().st_size for p in info.path.glob("model.*")) / 1024
        out = (f"points {','.join(info.fields)}" if info.kind == "points"
               else f"image {'x'.join(map(str, info.image_shape or ()))}")
        click.echo(f"{name:<16}{where:<9}{info.family:<8}{out:<18}{info.latent_dim:>6}  "
                   f"{size:.0f} KB")
    if broken:
        click.echo(f"\n{broken} model(s) cannot be played: the reason is on their line")
    click.echo(f"\nuser models folder: {user_dir()}")
