"""Music: the walk locks to the beat of the room (see README "Music").

    audio.py     sound in: live capture (PortAudio) or a file, on its own thread
    analysis.py  the tracker: beat grid, tempo, bar, onsets, energy, silence (aubio + ours)
    drive.py     the music's hold on the show: walk speed and phase, light level, tap tempo

`make_drive(config, audio_file=...)` builds what the show needs. The daemon imports none of
the audio libraries unless audio is configured; without them it says how to install them and
plays without music.
"""

from __future__ import annotations

import logging

from .audio import (
    AudioError,
    AudioInput,
    FileDevice,
    OfflineAudio,
    PlaybackDevice,
    PortAudioDevice,
    no_sound_output,
    require_analysis,
)
from .drive import MusicDrive

log = logging.getLogger("latentdmx")

__all__ = ["AudioError", "MusicDrive", "make_drive"]


def playing(path: str, field: str) -> FileDevice | PlaybackDevice:
    """The file through the sound card, or (no sounddevice, PortAudio or output device) one
    log line with the fix and the file followed without playing."""
    why = no_sound_output()
    if why:
        log.warning("audio: not playing %s (%s); following it without sound (--mute to "
                    "say so)", path, why)
        return FileDevice(path, field=field)
    return PlaybackDevice(path, field=field)


def tracker_args(music) -> dict[str, float]:
    return {"min_bpm": music.min_bpm, "max_bpm": music.max_bpm,
            "silence_db": music.silence_db, "silence_s": music.silence_s}


def make_drive(config, *, audio_file: str | None = None, offline: bool = False,
               play: bool = False) -> MusicDrive:
    """The show's `MusicDrive`, listening to `audio_file` (``--audio``), else the config's
    ``[audio] file`` or ``device``. `offline`: analyse on the show's own time (render,
    virtual-time shows); else in real time on a thread, started by `AudioInput.start`.
    `play`: ``--audio FILE`` in real time is also played through the sound card (the
    analysis then hears it as the card plays it); with no sound output, one log line and the
    file is followed without playing.

    A sound file that cannot be read, or missing libraries for ``--audio``, raise a one-line
    `AudioError` (the user asked for it on the command line). Missing libraries for the
    config's ``[audio]`` are logged with the fix and the show plays without music."""
    a = config.audio
    path = audio_file or a.file or None
    field = "--audio" if audio_file else "audio.file" if a.file else "audio.device"
    if not (path or a.device):
        return MusicDrive(config.music)
    try:
        require_analysis(field)
    except AudioError as exc:
        if audio_file:
            raise
        log.error("%s; the show plays without music", exc)
        return MusicDrive(config.music)
    args = tracker_args(config.music)
    if path and offline:
        return MusicDrive(config.music, OfflineAudio(path, args, field))
    if path:
        dev = playing(path, field) if play and audio_file else FileDevice(path, field=field)
        return MusicDrive(config.music, AudioInput(lambda: dev, args, dev.name))
    device = a.device
    return MusicDrive(config.music, AudioInput(
        lambda: PortAudioDevice(device, a.samplerate), args, f"device {device!r}"))
