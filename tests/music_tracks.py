"""Test music nobody needs a licence for: synthesised drums and bass at known tempos.

Every track is made here from sine waves and noise (seeded, so the same bytes every time) and
comes with its ground truth: the time of every beat and of every downbeat (beat 1 of a bar).
The tests and ``bench/music.py`` use them; ``python tests/music_tracks.py --out DIR`` writes
them as 16-bit mono WAV files at 44.1 kHz (e.g. to try ``latentdmx run --audio``).

Tracks (`TRACKS`):

* ``four_on_the_floor`` — 128 BPM, kick on every beat, clap on 2 and 4, open hat on the
  off-beats, a bass note on every beat whose root changes each bar, a crash on each bar's 1.
* ``syncopated`` — 100 BPM, kick on 1, the "and" of 2 and on 3, snare on 2 and 4, 16th hats,
  a syncopated bass line.
* ``swing`` — 96 BPM, swung 8th hats (2:1), kick on 1 and 3, snare on 2 and 4, walking bass.
* ``tempo_change`` — 120 BPM for 8 bars (16 s), then 140 BPM.
* ``silence_break`` — 124 BPM, 4 s of silence in the middle, then the groove again.
* ``loud`` — 180 BPM, every beat a full-scale kick and clap, squashed to full scale.
* ``gated`` — 120 BPM kicks under full-scale noise chopped on and off 8 times a second: the
  loudness itself strobes (the flash-limiter torture test).
"""

from __future__ import annotations

import argparse
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 44100


@dataclass(frozen=True)
class Track:
    name: str
    audio: np.ndarray            # float32 mono in -1..1
    sr: int
    beats_s: np.ndarray          # the time of every beat (s)
    downbeats_s: np.ndarray      # beat 1 of every bar (s)
    bpm: np.ndarray              # the tempo at each beat
    silent: tuple[tuple[float, float], ...] = ()   # (start, end) of silent stretches

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sr

    def write(self, path: str | Path) -> Path:
        p = Path(path)
        pcm = np.clip(np.rint(self.audio * 32767), -32768, 32767).astype("<i2")
        with wave.open(str(p), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sr)
            w.writeframes(pcm.tobytes())
        return p


# ----------------------------------------------------------------------- instruments

def _env(n: int, decay_s: float, sr: int) -> np.ndarray:
    return np.exp(-np.arange(n) / (decay_s * sr)).astype(np.float32)


def kick(sr: int = SR, gain: float = 0.9) -> np.ndarray:
    n = int(0.35 * sr)
    t = np.arange(n) / sr
    f = 45 + 110 * np.exp(-t / 0.03)                 # a pitch drop: the thump
    ph = 2 * np.pi * np.cumsum(f) / sr
    click = np.zeros(n)
    click[: int(0.002 * sr)] = 0.5
    return (gain * (np.sin(ph) * _env(n, 0.12, sr) + click)).astype(np.float32)


def noise_hit(rng: np.random.Generator, decay_s: float, gain: float, sr: int = SR,
              bright: bool = True) -> np.ndarray:
    n = int(6 * decay_s * sr)
    x = rng.standard_normal(n)
    if bright:                                       # a crude high-pass: first difference
        x = np.diff(x, prepend=0.0)
    return (gain * x * _env(n, decay_s, sr) / 2.5).astype(np.float32)


def snare(rng: np.random.Generator, sr: int = SR, gain: float = 0.5) -> np.ndarray:
    body = noise_hit(rng, 0.06, gain, sr, bright=False)
    t = np.arange(len(body)) / sr
    return body + (0.4 * gain * np.sin(2 * np.pi * 190 * t) * _env(len(body), 0.05, sr)
                   ).astype(np.float32)


def bass(freq: float, dur_s: float, sr: int = SR, gain: float = 0.35) -> np.ndarray:
    n = int(dur_s * sr)
    t = np.arange(n) / sr
    x = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(4 * np.pi * freq * t)
    env = np.minimum(1.0, t / 0.005) * _env(n, dur_s / 2.5, sr)
    return (gain * x * env).astype(np.float32)


def _add(out: np.ndarray, x: np.ndarray, t_s: float, sr: int) -> None:
    i = round(t_s * sr)
    if i >= len(out):
        return
    j = min(len(out), i + len(x))
    out[i:j] += x[: j - i]


# ----------------------------------------------------------------------- patterns

def _groove(beat_times: list[float], bpms: list[float], style: str, seed: int,
            total_s: float, sr: int = SR, loud: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(int(total_s * sr) + sr, np.float32)
    roots = (55.0, 55.0 * 2 ** (5 / 12), 55.0 * 2 ** (3 / 12), 55.0 * 2 ** (7 / 12))
    k = kick(sr, 1.0 if loud else 0.9)
    for i, (t, bpm) in enumerate(zip(beat_times, bpms, strict=True)):
        p = 60.0 / bpm
        beat_in_bar, bar = i % 4, i // 4
        root = roots[bar % 4]
        if style == "four":
            _add(out, k, t, sr)
            if beat_in_bar in (1, 3):
                _add(out, snare(rng, sr, 0.45), t, sr)
            _add(out, noise_hit(rng, 0.03, 0.25), t + p / 2, sr)
            _add(out, bass(root * (2 if beat_in_bar == 0 else 1), p * 0.8, sr,
                           0.45 if beat_in_bar == 0 else 0.3), t, sr)
            if beat_in_bar == 0:
                _add(out, noise_hit(rng, 0.4, 0.35), t, sr)            # crash on the 1
        elif style == "sync":
            if beat_in_bar in (0, 2):
                _add(out, k, t, sr)
            if beat_in_bar == 1:
                _add(out, k, t + p / 2, sr)                            # the "and" of 2
            if beat_in_bar in (1, 3):
                _add(out, snare(rng, sr, 0.5), t, sr)
            for s in range(4):
                _add(out, noise_hit(rng, 0.015, 0.12 if s else 0.2), t + s * p / 4, sr)
            _add(out, bass(root, p * 0.4, sr, 0.4 if beat_in_bar == 0 else 0.3),
                 t + (0.0 if beat_in_bar % 2 == 0 else 0.75 * p), sr)
        elif style == "swing":
            if beat_in_bar in (0, 2):
                _add(out, k, t, sr)
            if beat_in_bar in (1, 3):
                _add(out, snare(rng, sr, 0.45), t, sr)
            _add(out, noise_hit(rng, 0.02, 0.2), t, sr)
            _add(out, noise_hit(rng, 0.02, 0.12), t + 2 * p / 3, sr)   # swung 8th
            walk = (1.0, 2 ** (4 / 12), 2 ** (7 / 12), 2 ** (9 / 12))[beat_in_bar]
            _add(out, bass(root * walk, p * 0.9, sr, 0.4 if beat_in_bar == 0 else 0.3), t, sr)
        elif style == "loud":
            _add(out, k, t, sr)
            _add(out, snare(rng, sr, 0.8), t, sr)
            _add(out, noise_hit(rng, 0.05, 0.6), t + p / 2, sr)
            _add(out, bass(root, p * 0.9, sr, 0.6), t, sr)
    out = out[: int(total_s * sr)]
    peak = float(np.max(np.abs(out))) or 1.0
    target = 0.99 if loud else 0.7
    if loud:                                      # squashed to full scale: as loud as it gets
        out = np.tanh(2.5 * out / peak) / np.tanh(2.5)
        return (target * out).astype(np.float32)
    return (out * (target / peak)).astype(np.float32)


def _beats(bpm: float, start_s: float, end_s: float) -> list[float]:
    p = 60.0 / bpm
    n = int(np.floor((end_s - start_s) / p + 1e-9))
    return [start_s + i * p for i in range(n)]


def make(name: str, seed: int = 0, sr: int = SR) -> Track:
    """One of `TRACKS` with its ground truth."""
    silent: tuple[tuple[float, float], ...] = ()
    if name == "four_on_the_floor":
        bpm, total = 128.0, 30.0
        beats = _beats(bpm, 0.0, total - 0.5)
        bpms = [bpm] * len(beats)
        audio = _groove(beats, bpms, "four", seed, total, sr)
    elif name == "syncopated":
        bpm, total = 100.0, 30.0
        beats = _beats(bpm, 0.0, total - 0.5)
        bpms = [bpm] * len(beats)
        audio = _groove(beats, bpms, "sync", seed, total, sr)
    elif name == "swing":
        bpm, total = 96.0, 30.0
        beats = _beats(bpm, 0.0, total - 0.5)
        bpms = [bpm] * len(beats)
        audio = _groove(beats, bpms, "swing", seed, total, sr)
    elif name == "tempo_change":
        total = 32.0
        a = _beats(120.0, 0.0, 16.0)                  # 32 beats = 8 bars at 120
        b = _beats(140.0, 16.0, total - 0.5)
        beats, bpms = a + b, [120.0] * len(a) + [140.0] * len(b)
        audio = _groove(beats, bpms, "four", seed, total, sr)
    elif name == "silence_break":
        bpm, total = 124.0, 34.0
        p = 60.0 / bpm
        a = [i * p for i in range(24)]                 # 6 bars, then 4 s of silence
        gap_end = a[-1] + p + 4.0
        b = _beats(bpm, gap_end, total - 0.5)
        beats, bpms = a + b, [bpm] * (len(a) + len(b))
        audio = _groove(beats, bpms, "four", seed, total, sr)
        silent = ((a[-1] + p, gap_end),)
        lo, hi = (int(x * sr) for x in silent[0])
        audio[lo:hi] = 0.0                         # no tail of the last hit into the gap
    elif name == "loud":
        bpm, total = 180.0, 30.0
        beats = _beats(bpm, 0.0, total - 0.5)
        bpms = [bpm] * len(beats)
        audio = _groove(beats, bpms, "loud", seed, total, sr, loud=True)
    elif name == "gated":
        bpm, total = 120.0, 20.0
        beats = _beats(bpm, 0.0, total - 0.5)
        bpms = [bpm] * len(beats)
        audio = _groove(beats, bpms, "four", seed, total, sr)
        t = np.arange(len(audio)) / sr
        gate = (np.floor(t * 16) % 2 == 0).astype(np.float32)        # 8 Hz on/off
        noise = np.random.default_rng(seed + 1).standard_normal(len(audio)).astype(np.float32)
        audio = np.clip(0.5 * audio + 0.5 * gate * noise, -1, 1).astype(np.float32)
    else:
        raise ValueError(f"unknown track {name!r}; one of {', '.join(TRACKS)}")
    beats_a = np.asarray(beats)
    downbeats = beats_a[::4] if name != "silence_break" else np.concatenate(
        [beats_a[: len(a)][::4], beats_a[len(a):][::4]])
    return Track(name, audio, sr, beats_a, downbeats, np.asarray(bpms), silent)


TRACKS = ("four_on_the_floor", "syncopated", "swing", "tempo_change", "silence_break", "loud",
          "gated")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=".", help="folder for the WAV files")
    ap.add_argument("tracks", nargs="*", default=list(TRACKS), help="which (default: all)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.tracks:
        tr = make(name)
        p = tr.write(out / f"{name}.wav")
        print(f"{p}  {tr.duration_s:.0f} s  {tr.bpm[0]:g}"
              f"{'-' + format(tr.bpm[-1], 'g') if tr.bpm[-1] != tr.bpm[0] else ''} BPM")


if __name__ == "__main__":
    main()
