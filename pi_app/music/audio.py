"""Audio in: live capture or a sound file, analysed on its own thread.

Two ways in, one path through:

* **live capture** (``[audio] device``): PortAudio through `sounddevice` (ALSA or PulseAudio
  on the Pi: a USB sound card or microphone). PortAudio calls back from its own thread with
  each block; the block is copied onto a queue and the callback returns.
* **a file** (``--audio song.wav`` or ``[audio] file``): `FileDevice` plays it in real time
  through the very same callback, from a thread of its own, as a sound card would.

`AudioInput` owns the analysis thread: it takes blocks off the queue, feeds the `Tracker`,
and publishes the tracker's `MusicState` (a frozen object, replaced whole) for the frame loop
to read. Nothing on this path ever waits for the frame loop, and the frame loop only reads a
reference, so audio can never delay a frame. A missing or busy device is one log line with the
fix; the show plays on without music and the input retries every `RETRY_S`.

The time of every sample is known in monotonic seconds: blocks arrive at most a little late,
never early, so the smallest ``arrival - samples / rate`` over recent blocks (minus PortAudio's
input latency) is when the first sample was heard. The tracker's times are shifted by it into
the show's time.

`OfflineAudio` is the same analysis driven by the show's own clock: render and shows on
virtual time (`FastClock`) feed the file up to each frame's time before the frame is made.

``LATENTDMX_FAKE_AUDIO_DEVICE=song.wav`` replaces PortAudio by `FileDevice` for every device
name (for tests: there is no sound card here); it is ignored when a real device is missing a
library, so the error path stays real.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LatentDMXError
from .analysis import MusicState, Tracker

log = logging.getLogger("latentdmx")

EXTRA_FIX = "install the music extra: .venv/bin/pip install -e '.[music]'"
PORTAUDIO_FIX = "install PortAudio: sudo apt-get install libportaudio2"
RETRY_S = 5.0            # a failed device is tried again this often
STALL_S = 2.0            # no block for this long: the device is gone
OFFSET_WINDOW = 400      # blocks over which the arrival-time minimum is taken (~5 s)


class AudioError(LatentDMXError, OSError):
    """Audio in cannot be used (a missing library, file or device)."""


def require_analysis(field: str = "[music]") -> None:
    """Raise a one-line `AudioError` unless the analysis library (aubio) imports."""
    try:
        import aubio  # noqa: F401
    except ImportError:
        raise AudioError("music needs the aubio library, which is not installed",
                         field=field, fix=EXTRA_FIX) from None


def read_sound(path: str | os.PathLike, field: str = "--audio",
               mono: bool = True) -> tuple[np.ndarray, int]:
    """A sound file as float32 and its sample rate (WAV, FLAC, OGG, MP3...): mono, or
    (`mono` False) as (samples, channels)."""
    p = Path(path)
    if not p.is_file():
        raise AudioError("no such sound file", file=p, field=field,
                         fix="check the path of the WAV/FLAC/OGG file")
    try:
        import soundfile
    except (ImportError, OSError):
        raise AudioError("reading sound files needs the soundfile library", file=p,
                         field=field, fix=EXTRA_FIX) from None
    try:
        data, sr = soundfile.read(str(p), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise AudioError(f"cannot read it as sound ({exc})", file=p, field=field,
                         fix="use a WAV, FLAC, OGG or MP3 file") from None
    if len(data) == 0:
        raise AudioError("the sound file is empty", file=p, field=field,
                         fix="use a file with some sound in it")
    if not mono:
        return np.ascontiguousarray(data, np.float32), int(sr)
    return np.ascontiguousarray(data.mean(axis=1), np.float32), int(sr)


# -- device layers: open(callback) -> a stream with start(), close(), latency ---------------
Callback = Callable[[np.ndarray, int, Any, Any], None]


class FileDevice:
    """A sound file played in real time through a capture callback, like a sound card."""

    def __init__(self, path: str | os.PathLike, *, field: str = "--audio") -> None:
        self.path = Path(path)
        self.audio, self.samplerate = read_sound(path, field)
        self.name = f"file {self.path.name}"
        self.latency = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cb: Callback | None = None
        self._block = 512
        self.t0 = 0.0                  # monotonic time at which sample 0 "was heard"

    def open(self, callback: Callback, blocksize: int) -> FileDevice:
        self._cb, self._block = callback, blocksize
        return self

    def start(self) -> None:
        self._thread = threading.Thread(target=self._play, name="latentdmx-audio-file",
                                        daemon=True)
        self._thread.start()

    def _play(self) -> None:
        n, sr, cb = self._block, self.samplerate, self._cb
        assert cb is not None
        t0 = self.t0 = time.monotonic()
        for i in range(0, len(self.audio) - n + 1, n):
            due = t0 + (i + n) / sr            # a block is ready once its last sample is in
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            cb(self.audio[i:i + n, None], n, None, None)
        # the file is over: silence from here on, at the same pace
        log.info("audio: %s is over; the show drifts back to the free walk", self.path.name)
        zeros = np.zeros((n, 1), np.float32)
        k = len(self.audio) - len(self.audio) % n
        while not self._stop.is_set():
            k += n
            delay = t0 + k / sr - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            cb(zeros, n, None, None)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)


class PlaybackDevice:
    """A sound file played through the sound card (PortAudio), and analysed as it is heard.

    PortAudio's output callback asks for each block ahead of time; the block goes to the
    sound card and, the same instant, to the analysis callback, stamped with the monotonic
    time its first sample will be heard: now plus PortAudio's ``outputBufferDacTime -
    currentTime`` (else the stream's output latency). The analysis places its beats by that
    time, so the light lands with the sound, not ahead of it."""

    stamps_heard = True                  # the callback's time_info is when it is heard

    def __init__(self, path: str | os.PathLike, *, field: str = "--audio",
                 device: str | int | None = None) -> None:
        self.path = Path(path)
        self.audio, self.samplerate = read_sound(path, field, mono=False)
        self.name = f"file {self.path.name} (playing)"
        self.latency = 0.0
        self.output_latency = 0.0
        self.played = 0                  # samples handed to the sound card so far
        self._device = device
        self._stream: Any = None
        self._cb: Callback | None = None
        self._block = 512
        self._over = False
        self._fallback: FileDevice | None = None       # no sound output: not played

    def open(self, callback: Callback, blocksize: int) -> PlaybackDevice:
        sd = _sounddevice(field="--audio")
        self._cb, self._block = callback, blocksize
        try:
            self._stream = sd.OutputStream(
                device=self._device, channels=self.audio.shape[1], dtype="float32",
                samplerate=self.samplerate, blocksize=blocksize, callback=self._play,
                latency="low")
        except (ValueError, sd.PortAudioError) as exc:
            log.warning("audio: cannot play %s through the sound card (%s); following it "
                        "without sound (--mute to say so)", self.path.name, exc)
            self._fallback = FileDevice(self.path, field="--audio")
            self._fallback.open(callback, blocksize)
            self.stamps_heard = False
            return self
        self.output_latency = float(self._stream.latency)
        return self

    def _play(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio's thread: the next block to the card and to the analysis."""
        i, x = self.played, self.audio
        block = x[i:i + frames]
        outdata[:len(block)] = block
        outdata[len(block):] = 0.0
        if len(block) < frames and not self._over:
            self._over = True
            log.info("audio: %s is over; the show drifts back to the free walk", self.path.name)
        self.played = i + frames
        ahead = self.output_latency
        try:
            d = float(time_info.outputBufferDacTime - time_info.currentTime)
            ahead = d if 0.0 < d < 1.0 else ahead
        except (AttributeError, TypeError):
            pass
        assert self._cb is not None
        self._cb(outdata.mean(axis=1, keepdims=True), frames, time.monotonic() + ahead, status)

    def start(self) -> None:
        if self._fallback is not None:
            self._fallback.start()
        else:
            self._stream.start()

    def close(self) -> None:
        if self._fallback is not None:
            self._fallback.close()
        if self._stream is not None:
            try:
                self._stream.abort()
                self._stream.close()
            except Exception:
                log.debug("audio: closing the output stream failed", exc_info=True)
            self._stream = None


class PortAudioDevice:
    """A live input through `sounddevice` (PortAudio: ALSA, PulseAudio, JACK)."""

    def __init__(self, device: str, samplerate: int = 0) -> None:
        fake = os.environ.get("LATENTDMX_FAKE_AUDIO_DEVICE")
        self._fake = FileDevice(fake, field="LATENTDMX_FAKE_AUDIO_DEVICE") if fake else None
        self.device = device
        self.name = f"device {device!r}"
        self._stream: Any = None
        if self._fake is not None:
            self.samplerate, self.latency = self._fake.samplerate, 0.0
            return
        sd = _sounddevice()
        dev: int | str | None = None if device in ("", "default") else \
            int(device) if device.isdigit() else device
        try:
            info = sd.query_devices(dev, "input")
        except (ValueError, sd.PortAudioError):
            names = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
            fix = (f"set [audio] device to one of: {', '.join(repr(n) for n in names)}"
                   if names else "no sound input is connected: plug in a USB sound card or "
                   "microphone (`arecord -l` lists them), then set [audio] device")
            raise AudioError(f"no input device {device!r}", field="audio.device",
                             fix=fix) from None
        self.samplerate = samplerate or int(info["default_samplerate"])
        self.latency = float(info.get("default_low_input_latency", 0.0))
        self._dev = dev

    def open(self, callback: Callback, blocksize: int) -> PortAudioDevice:
        if self._fake is not None:
            self._fake.open(callback, blocksize)
            return self
        sd = _sounddevice()
        try:
            self._stream = sd.InputStream(device=self._dev, channels=1, dtype="float32",
                                          samplerate=self.samplerate, blocksize=blocksize,
                                          callback=callback, latency="low")
        except (ValueError, sd.PortAudioError) as exc:
            raise AudioError(f"cannot open input {self.device!r} ({exc})",
                             field="audio.device",
                             fix="it may be busy: close the program using it (`fuser -v "
                                 "/dev/snd/*`), or choose another [audio] device") from None
        self.latency = float(self._stream.latency)
        return self

    def start(self) -> None:
        if self._fake is not None:
            self._fake.start()
        else:
            self._stream.start()

    def close(self) -> None:
        if self._fake is not None:
            self._fake.close()
        elif self._stream is not None:
            try:
                self._stream.abort()
                self._stream.close()
            except Exception:
                log.debug("audio: closing the stream failed", exc_info=True)
            self._stream = None


def _sounddevice(field: str = "audio.device") -> Any:
    what = "playing sound" if field == "--audio" else "live capture"
    try:
        import sounddevice
    except ImportError:
        raise AudioError(f"{what} needs the sounddevice library", field=field,
                         fix=EXTRA_FIX) from None
    except OSError:                       # the module imports, PortAudio itself is missing
        raise AudioError(f"{what} needs PortAudio, which is not installed",
                         field=field, fix=PORTAUDIO_FIX) from None
    return sounddevice


def no_sound_output() -> str:
    """Why nothing can be played (no sounddevice, PortAudio or output device), or ""."""
    try:
        sd = _sounddevice(field="--audio")
    except AudioError as exc:
        return str(exc).split(" — ")[0]
    try:
        sd.query_devices(kind="output")
    except (ValueError, sd.PortAudioError) as exc:
        return f"no sound output: {exc}"
    return ""


# -- the analysis thread ------------------------------------------------------------------
class AudioInput:
    """Real-time analysis of a device layer's blocks on its own thread.

    `state` is the tracker's latest `MusicState` (any thread may read it); `describe` says
    what is listened to and how it goes, for `status`."""

    def __init__(self, make_device: Callable[[], Any], tracker_args: dict[str, float],
                 label: str) -> None:
        self._make_device = make_device
        self._tracker_args = tracker_args
        self.label = label
        self.state = MusicState()
        self.error = ""
        self.blocks = 0
        self._q: queue.SimpleQueue[tuple[np.ndarray, float] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._show_start = time.monotonic()
        self._ready: tuple[Any, Tracker] | None = None

    def prepare(self) -> None:
        """Open the device and load the analysis now, before the frame clock starts: the
        heavy first steps (loading libraries, PortAudio scanning the sound cards, reading a
        file) then never compete with the first frames. A failure is logged (one line) and
        retried by the thread."""
        try:
            dev = self._make_device()
            self._ready = (dev, Tracker(dev.samplerate, None, **self._tracker_args))
        except LatentDMXError as exc:
            self._fail(str(exc))

    def start(self, show_start_mono: float) -> AudioInput:
        """Start listening; show time 0 is `show_start_mono` (the frame clock's start)."""
        self._show_start = show_start_mono
        self._thread = threading.Thread(target=self._run, name="latentdmx-audio", daemon=True)
        self._thread.start()
        return self

    def state_at(self, t_s: float) -> MusicState:
        return self.state

    @property
    def describe(self) -> str:
        return f"{self.label}: {self.error}" if self.error else self.label

    def close(self) -> None:
        self._stop.set()
        self._q.put(None)
        if self._thread is not None:
            self._thread.join(timeout=3.0)

    # -- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            dev = None
            try:
                if self._ready is not None:
                    (dev, tracker), self._ready = self._ready, None
                else:
                    dev = self._make_device()
                    tracker = Tracker(dev.samplerate, None, **self._tracker_args)
                dev.open(self._callback, tracker.hop)
                dev.start()
                if self.error:
                    log.info("audio: %s is back", self.label)
                self.error = ""
                self._listen(dev, tracker)
            except LatentDMXError as exc:
                self._fail(str(exc))
            except Exception as exc:
                log.debug("audio failed", exc_info=True)
                self._fail(f"{self.label}: {exc.__class__.__name__}: {exc}")
            finally:
                if dev is not None:
                    dev.close()
            self.state = MusicState(t_s=self.state.t_s)          # silence while away
            self._stop.wait(RETRY_S)

    def _fail(self, message: str) -> None:
        if message != self.error:
            log.error("audio: %s; the show plays on without music (retrying every %gs)",
                      message, RETRY_S)
        self.error = message

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio's thread (or FileDevice's): copy, enqueue, return at once."""
        stamp = time_info if isinstance(time_info, float) else time.monotonic()
        self._q.put((np.array(indata[:, 0], np.float32), stamp))

    def _listen(self, dev: Any, tracker: Tracker) -> None:
        sr, hop = tracker.sr, tracker.hop
        pending = np.zeros(0, np.float32)
        samples = 0
        arrivals: deque[float] = deque(maxlen=OFFSET_WINDOW)
        offset = None
        while not self._stop.is_set():
            try:
                item = self._q.get(timeout=STALL_S)
            except queue.Empty:
                raise AudioError("no sound for 2 s: the input stopped", field="audio.device",
                                 fix="check the cable / USB sound card") from None
            if item is None:
                return
            block, arrived = item
            if getattr(dev, "stamps_heard", False):       # stamped: when its start is heard
                arrivals.append(arrived - samples / sr)
                samples += len(block)
            else:                                         # arrived once its end was heard
                samples += len(block)
                arrivals.append(arrived - samples / sr)
            start = min(arrivals) - dev.latency - self._show_start   # show time of sample 0
            if offset is None or abs(start - offset) > 0.0005:
                offset = start
                tracker.set_offset(offset)
            pending = np.concatenate([pending, block]) if pending.size else block
            while len(pending) >= hop:
                self.state = tracker.feed(pending[:hop])
                pending = pending[hop:]
            self.blocks += 1


class OfflineAudio:
    """A sound file analysed on the show's own time: `state_at(t)` feeds it up to t first."""

    def __init__(self, path: str | os.PathLike, tracker_args: dict[str, float],
                 field: str = "--audio") -> None:
        self.audio, sr = read_sound(path, field)
        self.tracker = Tracker(sr, None, **tracker_args)
        self.label = f"file {Path(path).name}"
        self.error = ""
        self.state = self.tracker.state
        self._i = 0

    @property
    def describe(self) -> str:
        return self.label

    def prepare(self) -> None:
        pass

    def start(self, show_start_mono: float) -> OfflineAudio:
        return self

    def state_at(self, t_s: float) -> MusicState:
        tr, hop, x = self.tracker, self.tracker.hop, self.audio
        while (self._i + hop) / tr.sr <= t_s + 1e-9:
            block = x[self._i:self._i + hop]
            if len(block) < hop:
                block = np.zeros(hop, np.float32)           # after the end: silence
            self.state = tr.feed(block)
            self._i += hop
        return self.state

    def close(self) -> None:
        pass
