"""`latentdmx service-network`: the systemd drop-in that lets the service reach exactly the
addresses its configured output (and web page) need (`pi_app.allow`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click


@click.command("service-network")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Rig config. Default: the service's, /etc/latentdmx/config.toml (else the "
                   "bundled demo rig).")
@click.option("--install", is_flag=True,
              help="Write the drop-in (atomically) instead of printing it.")
@click.option("--check", is_flag=True,
              help="Exit 1 if the installed drop-in does not match the config.")
@click.option("--path", "dropin", type=click.Path(dir_okay=False),
              default=None, help="The drop-in file. Default: "
                                 "/etc/systemd/system/latentdmx.service.d/network.conf.")
def service_network(config_path, install, check, dropin):
    """Print, install or check the service's network allow-list.

    \b
    The unit (systemd/latentdmx.service) denies every address but localhost. A show on
    sACN or Art-Net needs its multicast groups, nodes or broadcast address; this drop-in
    allows exactly those (and the local networks when the web page is on the LAN):
      sudo latentdmx service-network --install
      sudo systemctl daemon-reload && sudo systemctl restart latentdmx
    Run it again after changing [output] or [preview]; `latentdmx doctor` says when.
    """
    from .. import allow
    from ..config import load_config

    if config_path is None and allow.SERVICE_CONFIG.is_file():
        config_path = str(allow.SERVICE_CONFIG)
    cfg = load_config(config_path)
    path = Path(dropin) if dropin else allow.DROPIN_PATH
    text = allow.dropin_text(cfg)
    if check:
        have = allow.installed_entries(path)
        want = allow.allowed(cfg)
        if have is None:
            click.echo(f"{path}: not installed; the config needs: {' '.join(want) or '-'}")
            sys.exit(1)
        if sorted(have) != sorted(want):
            click.echo(f"{path}: allows {' '.join(have) or 'nothing'}; the config needs "
                       f"{' '.join(want) or 'nothing'} — run `sudo latentdmx service-network "
                       "--install`")
            sys.exit(1)
        click.echo(f"{path}: up to date")
        return
    if not install:
        click.echo(text, nl=False)
        return
    from ..errors import LatentDMXError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise LatentDMXError(f"cannot write the drop-in ({exc.strerror or exc})", file=path,
                             field="--install", fix="run it with sudo") from None
    click.echo(f"wrote {path}; now: sudo systemctl daemon-reload && sudo systemctl restart "
               "latentdmx")
