"""`latentdmx audio` (the sound inputs `[audio] device` can use) and `latentdmx tap` (tap
tempo from the keyboard: the vocabulary's `tap`, once per Enter)."""

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


@click.command()
@click.option("--once", is_flag=True, help="Send one tap and exit (e.g. from a foot switch).")
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False),
              envvar="LATENTDMX_SOCKET", default=None,
              help="The daemon's control socket (default: found automatically).")
def tap(once: bool, socket_path: str | None) -> None:
    """Tap the tempo: press Enter on every beat (q or Ctrl-D to finish).

    Two taps or more set the tempo (the median of the last 8 intervals); the last tap is
    beat 1 of a bar. A single tap later re-aligns beat 1 at the same tempo. A pause of more
    than 2 s starts counting afresh. `latentdmx bpm 0` goes back to following the audio.
    (The web page's Tap button and OSC's /latentdmx/tap send the same `tap`.)
    """
    import sys

    from ..control import ControlClient

    client = ControlClient(socket_path)
    if once:
        r = client.request("tap")
        click.echo(f"bpm {r['bpm']:g}, taps {r['taps']}" if r.get("bpm") else
                   f"taps {r['taps']}")
        return
    click.echo("tap Enter on each beat; q + Enter (or Ctrl-D) to finish")
    while True:
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            break
        if not line or line.strip().lower() == "q":
            break
        r = client.request("tap")
        taps = f"{r['taps']} tap{'' if r['taps'] == 1 else 's'}"
        click.echo(f"  {r['bpm']:g} BPM ({taps})" if r.get("bpm") else f"  ({taps})")
