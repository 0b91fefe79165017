"""A beat you can see, measured from DMX frames alone: accents folded on the beat grid, the
heads' speed in degrees, flashes. For `bench/beat_visible.py` and `tests/test_music_beat.py`.

Independent of the show: the rig's layout is read here from the config and the fixture
profiles (which slot is pan, pan fine, a dimmer, a colour; the profile's pan and tilt
ranges), light and flashes by `flash_counter` (which shares no code with the safety stage),
and nothing of `pi_app.decode`, `pi_app.safety` or `pi_app.music` is used. The steady-loudness
test track is made here with NumPy.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flash_counter import FlashCounter, fixture_light, rig_from_config

from pi_app.clock import FastClock
from pi_app.config import load_config
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import Show

SR = 44100
TRAVERSE_S = 3.0          # the documented default slew: the profile's full range in 3 s
BINS = 16


# -- the track --------------------------------------------------------------------------
def steady_track(bpm: float, seconds: float, sr: int = SR, seed: int = 1) -> np.ndarray:
    """Kick and bass on every beat, a crash on each bar's 1, a steady hiss: flat loudness."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = np.zeros(n, np.float32)
    t = np.arange(int(0.35 * sr)) / sr
    f = 45 + 110 * np.exp(-t / 0.03)
    kick = (0.8 * np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.12)).astype(np.float32)
    tb = np.arange(int(60.0 / bpm * sr)) / sr
    period = 60.0 / bpm
    for k in range(int(seconds / period)):
        i = round(k * period * sr)
        root = (55.0, 55.0, 65.4, 49.0)[(k // 4) % 4]
        bass = 0.25 * np.sin(2 * np.pi * root * tb) * np.minimum(1, tb / 0.005) * \
            np.exp(-tb / (period / 2.5))
        seg = kick[: n - i] if i + len(kick) > n else kick
        x[i:i + len(seg)] += seg
        j = min(n, i + len(bass))
        x[i:j] += bass[: j - i].astype(np.float32)
        if k % 4 == 0:
            m = min(n - i, int(0.8 * sr))
            crash = np.diff(rng.standard_normal(m + 1)) * np.exp(-np.arange(m) / (0.25 * sr))
            x[i:i + m] += (0.25 * crash).astype(np.float32)
    hiss = np.diff(rng.standard_normal(n + 1)).astype(np.float32)
    x += 0.05 * hiss
    return np.clip(x, -1, 1)


def write_wav(x: np.ndarray, path: Path, sr: int = SR) -> Path:
    pcm = np.clip(np.rint(x * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return path


# -- our own reading of the rig's heads ---------------------------------------------------
@dataclass(frozen=True)
class Head:
    name: str
    universe: int
    slots: dict[str, int]        # pan, pan_fine, tilt, tilt_fine -> 0-based slot
    ranges: dict[str, tuple[int, int]]
    pan_deg: float
    tilt_deg: float
    pan_limit: float             # slew limit, deg/s
    tilt_limit: float

    def aim(self, frame: dict[int, np.ndarray]) -> tuple[float, float]:
        data = frame[self.universe]
        out = []
        for axis, full in (("pan", self.pan_deg), ("tilt", self.tilt_deg)):
            coarse = int(data[self.slots[axis]])
            fine = int(data[self.slots[axis + "_fine"]]) if axis + "_fine" in self.slots else 0
            lo, hi = self.ranges[axis]
            v = (coarse * 256 + fine) / 65535.0 if axis + "_fine" in self.slots else \
                coarse / 255.0
            v = (v * 255 - lo) / max(hi - lo, 1) if hi - lo < 255 else v
            out.append(full * min(1.0, max(0.0, v)))
        return out[0], out[1]


def heads_from_config(path: str | None) -> list[Head]:
    from pi_app.fixtures import find_profile

    cfg = load_config(path)
    heads = []
    for fx in cfg.fixtures:
        prof = find_profile(fx.profile)
        mode = prof.mode(fx.mode)
        slots = {ch.attr: fx.address - 1 + j for j, ch in enumerate(mode.channels)
                 if ch.attr in ("pan", "pan_fine", "tilt", "tilt_fine")}
        if "pan" not in slots or "tilt" not in slots:
            continue
        ranges = {ch.attr: (ch.min, ch.max) for ch in mode.channels if ch.attr in slots}
        s = cfg.safety
        heads.append(Head(fx.name, fx.universe, slots, ranges, prof.pan_deg, prof.tilt_deg,
                          s.pan_slew_deg_per_s or prof.pan_deg / TRAVERSE_S,
                          s.tilt_slew_deg_per_s or prof.tilt_deg / TRAVERSE_S))
    return heads


# -- a show ---------------------------------------------------------------------------------
def run_show(cfg_path: str | None, seconds: float, wav: Path | None,
             extra: dict | None = None) -> tuple[list[dict[int, np.ndarray]], float]:
    cfg = load_config(cfg_path)
    if extra:
        from dataclasses import replace
        cfg = replace(cfg, music=replace(cfg.music, **extra))
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    show = Show(cfg, out, duration_s=seconds, control=False, clock=FastClock, audio=wav,
                seed=7)
    show.run()
    return out.history, float(cfg.fps)


@dataclass
class Figures:
    swing: float
    bar1: float
    head_med: float
    at_limit: float
    flash_fixture: float
    flash_rig: float
    mean_light: float
    head_mean: float = 0.0       # mean head speed (deg/s): travel a second, rests included


def measure(frames: list[dict[int, np.ndarray]], fps: float, cfg_path: str | None,
            bpm: float, settle_s: float) -> Figures:
    rig = rig_from_config(cfg_path)
    heads = heads_from_config(cfg_path)
    t = np.arange(len(frames)) / fps
    y = np.array([np.mean([fixture_light(fx, fr)[0] for fx in rig]) for fr in frames])
    counter = FlashCounter(rig)
    for ts, fr in zip(t, frames, strict=True):
        counter.add(float(ts), fr)
    flashes = counter.max_per_s()
    keep = t >= settle_s
    beats = t * bpm / 60.0                       # the track's beat 0 is at t = 0
    phase = beats % 1.0
    b = np.minimum((phase * BINS).astype(int), BINS - 1)
    fold = np.array([y[keep & (b == k)].mean() for k in range(BINS)])
    swing = float((fold.max() - fold.min()) / max(fold.mean(), 1e-9))
    # rise into each beat, per beat of the bar
    rises: dict[int, list[float]] = {k: [] for k in range(4)}
    for kb in range(int(np.ceil(beats[keep][0])), int(beats[-1]) - 1):
        near = keep & (np.abs(beats - kb) <= 0.125)
        before = keep & (beats >= kb - 0.5) & (beats < kb)
        if near.any() and before.any():
            rises[kb % 4].append(float(y[near].max() - y[before].min()))
    r = [float(np.mean(v)) if v else 0.0 for v in rises.values()]
    others = float(np.mean(r[1:]))
    bar1 = r[0] / others if others > 1e-6 else float("inf")
    aims = np.array([[h.aim(fr) for h in heads] for fr in frames])      # (n, heads, 2)
    w = max(1, round(0.25 * fps))
    d = np.abs(aims[w:] - aims[:-w]) / (w / fps)
    speed = np.hypot(d[..., 0], d[..., 1])[keep[w:]]
    w1 = max(1, round(0.1 * fps))
    d1 = (np.abs(aims[w1:] - aims[:-w1]) / (w1 / fps))[keep[w1:]]
    lim = np.array([[h.pan_limit, h.tilt_limit] for h in heads])
    at_limit = float(np.mean((d1 >= 0.9 * lim).any(axis=-1))) if len(heads) else 0.0
    per_fixture = max(v for k, v in flashes.items() if k != "rig" and ":" not in k)
    return Figures(swing, bar1, float(np.median(speed)) if speed.size else 0.0, at_limit,
                   per_fixture, flashes.get("rig", 0.0), float(y[keep].mean()),
                   float(speed.mean()) if speed.size else 0.0)
