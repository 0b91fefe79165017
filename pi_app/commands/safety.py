"""`latentdmx safety-check RECORDING`: measure flashes, speeds and slot violations of a show."""

from __future__ import annotations

import json
import sys

import click


@click.command("safety-check")
@click.argument("recording", type=click.Path(dir_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Rig config (TOML) the show was played on, to know each slot's meaning. "
                   "Default: the bundled demo rig (as `latentdmx run`).")
@click.option("--raw", is_flag=True,
              help="Ignore the rig: treat every slot as an intensity (value / 255).")
@click.option("--max-flashes", type=float, default=3.0, show_default=True,
              help="Flashes allowed in any 1-s window (WCAG 2.3.1: 3).")
@click.option("--delta", type=float, default=0.1, show_default=True,
              help="Relative-luminance change that counts as half a flash (WCAG: 10 %).")
@click.option("--fixture-source", "fixture_sources", multiple=True, metavar="KEY=FILE",
              help="Judge profile KEY's channels against this OFL/QLC+ fixture file too "
                   "(imported profiles use the copy kept beside them). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def safety_check(recording, config_path, raw, max_flashes, delta, fixture_sources, as_json):
    """Check a recorded show (ola_recorder format, e.g. from `latentdmx run --record`).

    Reports flashes per second (most in any 1-s window, per fixture, for the whole rig, and
    red flashes), pan/tilt speeds in degrees per second (the fastest the recording proves,
    allowing for the recorder's timing jitter), held/strobe/macro slots written, keep-out
    boxes entered, and — for imported fixtures — any value the fixture file itself calls a
    macro, auto, music-trigger, rotation or strobe range. A recording damaged part-way is
    checked up to the damage, which the report names. Exit status: 0 if no violation, 1 if
    any, 2 if the recording or config cannot be used.

    \b
    Examples:
      latentdmx safety-check show.txt
      latentdmx safety-check show.txt --config rig.toml --json
      latentdmx safety-check capture.show --config rig.toml \\
          --fixture-source my-par=/usr/share/qlcplus/fixtures/Cameo/Cameo-Flat-Pro-7.qxf
      latentdmx safety-check other-tool.show --raw
    """
    from ..config import load_config
    from ..safety_check import check_recording, format_report, parse_sources
    from ..sim.record import open_show

    sources = parse_sources(fixture_sources)
    config = None if raw else load_config(config_path)
    total = open_show(recording).frames_hint if sys.stderr.isatty() else 0
    if total > 20000:                 # a long recording: show progress on a terminal
        with click.progressbar(length=total * (2 if raw else 1), label="checking",
                               file=sys.stderr) as bar:
            rep = check_recording(recording, config, raw=raw, max_flashes=max_flashes,
                                  delta=delta, sources=sources, progress=bar.update)
    else:
        rep = check_recording(recording, config, raw=raw, max_flashes=max_flashes, delta=delta,
                              sources=sources)
    if as_json:
        click.echo(json.dumps(rep.to_json(), indent=2))
    else:
        click.echo(format_report(rep))
    sys.exit(0 if rep.ok else 1)
