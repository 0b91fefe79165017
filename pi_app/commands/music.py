"""`latentdmx audio`: the sound inputs live capture can use (for `[audio] device`)."""

from __future__ import annotations

import click


@click.command()
def audio() -> None:
    """List the sound inputs `[audio] device` can name (USB sound cards, microphones).

    Put a name (or its number) in the config's `[audio] device`, or "default" for the
    system's default input. Needs the music extra and PortAudio
    (`pip install -e '.[music]'`, `sudo apt-get install libportaudio2`).
    """
    from ..music.audio import _sounddevice

    sd = _sounddevice()
    devices = [(i, d) for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]
    if not devices:
        click.echo("no sound input found: plug in a USB sound card or microphone "
                   "(`arecord -l` lists what ALSA sees)")
        return
    try:
        default = sd.default.device[0]
    except (TypeError, IndexError):
        default = -1
    for i, d in devices:
        mark = "*" if i == default else " "
        click.echo(f"{mark} {i:3d}  {d['name']}  ({d['max_input_channels']} ch, "
                   f"{d['default_samplerate']:g} Hz)")
    click.echo('set one in the config: [audio] device = "NAME" (or its number); * = default')
