"""Are sound and light in step? A real-time show plays a song through the sound card while
this process records what the card plays, and the light the show sends, on one clock.

    PULSE_SOURCE=loop.monitor python tests/beat_in_step.py SONG.wav BPM SECONDS

Run under a PulseAudio whose default sink is a null sink "loop" (`tests/test_music_beat.py`
starts a private one): the show (`play_audio=True`, as `run --audio`) plays the song to the
default output through PortAudio; here PortAudio records the sink's monitor ("pulse" device,
PULSE_SOURCE), each block stamped with when it was heard (the smallest arrival minus its
samples over the run, minus the input latency). The song's kicks are found in what was
heard; the light is the rig's luminance of every frame (the independent `flash_counter`
reading of the DMX), stamped when it was sent. Both are folded on the song's beat period:
the offset is where the light peaks minus where the kick was heard (ms, + = light late).
Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

BINS = 96


def fold_peak(times: np.ndarray, values: np.ndarray, period: float) -> float:
    """Where in the period (s) the folded values peak (the bins' centre of mass near the top)."""
    ph = (times / period) % 1.0
    b = np.minimum((ph * BINS).astype(int), BINS - 1)
    fold = np.array([values[b == k].mean() if (b == k).any() else np.nan for k in range(BINS)])
    fold = np.nan_to_num(fold, nan=float(np.nanmin(fold)))
    k = int(np.argmax(fold))
    idx = (np.arange(k - 3, k + 4)) % BINS
    w = fold[idx] - fold.min()
    centre = k + float(np.sum(w * np.arange(-3, 4)) / max(np.sum(w), 1e-12))
    return ((centre + 0.5) / BINS % 1.0) * period


def main() -> None:
    import sounddevice as sd
    from flash_counter import fixture_light, rig_from_config

    from pi_app.clock import FrameClock
    from pi_app.config import load_config
    from pi_app.outputs.sim import SimOutput
    from pi_app.patch import Patch
    from pi_app.show import Show

    wav, bpm, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    cfg = load_config(None)
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames)
    rig = rig_from_config(None)
    sent: list[tuple[float, float]] = []

    def listener(show) -> None:
        frames = show.output.last_frames
        y = float(np.mean([fixture_light(fx, frames)[0] for fx in rig]))
        sent.append((time.monotonic(), y))

    blocks: list[tuple[float, np.ndarray]] = []

    def heard(indata, frames, time_info, status) -> None:
        blocks.append((time.monotonic(), indata[:, 0].copy()))

    stream = sd.InputStream(device="pulse", channels=1, samplerate=44100, blocksize=256,
                            dtype="float32", callback=heard, latency="low")
    stream.start()
    show = Show(cfg, out, duration_s=seconds, control=False, clock=FrameClock, audio=wav,
                play_audio=True)
    show.listeners.append(listener)
    th = threading.Thread(target=show.run, daemon=True)
    th.start()
    th.join(seconds + 30)
    time.sleep(0.3)
    stream.stop()
    in_latency = float(stream.latency)
    stream.close()
    playing = show.music.audio.describe if show.music.audio else ""
    sr = 44100
    n = np.cumsum([len(b) for _, b in blocks])
    t0 = min(a - k / sr for (a, _), k in zip(blocks, n, strict=True)) - in_latency
    x = np.concatenate([b for _, b in blocks])
    t_audio = t0 + np.arange(len(x)) / sr
    env = np.convolve(np.abs(x), np.ones(44) / 44, mode="same")      # 1 ms
    on = np.flatnonzero((env[1:] > 0.2) & (env[:-1] <= 0.2)) + 1
    period = 60.0 / bpm
    kicks = t_audio[on]
    kicks = kicks[np.concatenate([[True], np.diff(kicks) > 0.5 * period])] if kicks.size else kicks
    at = np.array([a for a, _ in sent])
    y = np.array([v for _, v in sent])
    keep = at > at[0] + 8.0
    light_peak = fold_peak(at[keep], y[keep], period)
    kick_phase = float(np.angle(np.mean(np.exp(2j * np.pi * kicks / period))) / (2 * np.pi)
                       % 1.0 * period) if kicks.size else float("nan")
    off = (light_peak - kick_phase + period / 2) % period - period / 2
    print(json.dumps({"offset_ms": round(1e3 * off, 1), "kicks": int(kicks.size),
                      "peak": float(np.abs(x).max()) if x.size else 0.0,
                      "frames": len(sent), "late": show.clock.late if show.clock else -1,
                      "audio": playing, "input_latency_ms": round(1e3 * in_latency, 1),
                      "output_latency_ms": round(1e3 * getattr(
                          show.music.audio._make_device() if show.music.audio else None,
                          "output_latency", 0.0), 1)}))


if __name__ == "__main__":
    main()
