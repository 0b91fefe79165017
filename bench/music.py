"""Music: what tracking costs, how fast the lights answer, how well the show follows the beat.

    python bench/music.py [--seconds 20] [--repeat 3] [--skip-realtime]

1. **Tracking CPU**: process time of the whole analysis (aubio's phase vocoder, onset and
   beat tracker, plus our grid, bar, energy and silence) per second of 44.1 kHz audio, as %
   of one core; aubio's beat tracker alone beside it. Best of `--repeat` runs.
2. **Per track** (the synthesised test tracks, `tests/music_tracks.py`): time to lock, BPM
   error after lock, beats matched within 50 ms after lock (the tracker's state at each true
   beat), and, measured from the DMX frames of a show on six 16-bit heads, how far the
   waypoints land from the bars (median, p90) and the share within 50 ms; beside it, aubio's
   beat tracker by itself (what the grid on top of it fixes).
3. **Onset -> light**: a real-time show listening to a file through the live-capture path
   (callback, queue, analysis thread): quiet noise with a loud hit every 2.5 s; the time
   from each hit's first sample to the first DMX frame whose rig luminance jumps.
4. **The frame loop**: late frames and lateness (median / p99 / max) of a real-time show
   with no music, and with music arriving live through the capture path.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import itertools

import music_measure as mm
import music_tracks as mt
from flash_counter import fixture_light, rig_from_config

from pi_app.clock import FastClock, FrameClock
from pi_app.config import load_config
from pi_app.decode import Rig
from pi_app.music.analysis import Tracker
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import Show

MATCH_S = 0.05


def tracking_cpu(tr: mt.Track, repeat: int) -> tuple[float, float]:
    import aubio

    best = best_aubio = float("inf")
    for _ in range(repeat):
        trk = Tracker(tr.sr)
        hop = trk.hop
        t0 = time.process_time()
        for i in range(0, len(tr.audio) - hop + 1, hop):
            trk.feed(tr.audio[i:i + hop])
        best = min(best, time.process_time() - t0)
        tempo = aubio.tempo("default", 2 * hop, hop, tr.sr)
        t0 = time.process_time()
        for i in range(0, len(tr.audio) - hop + 1, hop):
            tempo(tr.audio[i:i + hop])
        best_aubio = min(best_aubio, time.process_time() - t0)
    return 100 * best / tr.duration_s, 100 * best_aubio / tr.duration_s


def tracker_scores(tr: mt.Track) -> dict:
    trk = Tracker(tr.sr)
    states = [trk.feed(tr.audio[i:i + trk.hop])
              for i in range(0, len(tr.audio) - trk.hop + 1, trk.hop)]
    ts = np.array([s.t_s for s in states])
    change = [float(tr.beats_s[i + 1]) for i in np.nonzero(np.diff(tr.bpm))[0]]
    starts = sorted([0.0, *change, *(end for _, end in tr.silent)])
    locks, hits, errs = [], [], []
    for start, end in zip(starts, [*starts[1:], tr.duration_s], strict=True):
        first, lost = None, start not in change
        for b, bpm in zip(tr.beats_s, tr.bpm, strict=True):
            if not start <= b < end:
                continue
            k = np.searchsorted(ts, b, side="right") - 1
            s = states[k] if k >= 0 else None
            lost = lost or s is None or not s.locked
            if first is None and s is not None and s.locked and lost:
                first = b
            if first is None:
                continue
            if s is None or not s.locked:
                hits.append(False)
                continue
            beats = s.beats_at(b)
            hits.append(abs(beats - round(beats)) * s.period_s <= MATCH_S)
            errs.append(abs(s.bpm / bpm - 1))
        locks.append(first - start if first is not None else float("nan"))
    return {"lock_s": max(locks), "bpm_err": max(errs) if errs else float("nan"),
            "bpm_err_med": float(np.median(errs)) if errs else float("nan"),
            "beats": float(np.mean(hits)) if hits else 0.0}


def aubio_alone(tr: mt.Track) -> tuple[float, float]:
    """aubio's beat tracker by itself: (true beats within 50 ms of one of its beats, after
    its first lock; its last BPM's error against the true last tempo)."""
    import aubio

    hop = 512
    tempo = aubio.tempo("default", 2 * hop, hop, tr.sr)
    beats, bpm = [], 0.0
    for i in range(0, len(tr.audio) - hop + 1, hop):
        if tempo(tr.audio[i:i + hop])[0]:
            beats.append(float(tempo.get_last_s()))
            bpm = float(tempo.get_bpm())
    b = np.array(beats)
    if not b.size:
        return 0.0, 1.0
    near = np.array([np.min(np.abs(b - t)) <= MATCH_S for t in tr.beats_s])
    first = next((k for k in range(len(near) - 3) if near[k:k + 4].all()), len(near))
    return float(np.mean(near[first:])) if first < len(near) else 0.0, abs(bpm / tr.bpm[-1] - 1)


HEADS_TOML = None


def heads_config():
    import test_music

    global HEADS_TOML
    if HEADS_TOML is None:
        HEADS_TOML = Path(tempfile.mkdtemp(prefix="latentdmx-bench-")) / "heads.toml"
        HEADS_TOML.write_text(test_music.heads_rig_text())
    return load_config(HEADS_TOML)


def dmx_alignment(tr: mt.Track, wav: Path) -> dict:
    """Waypoints against bars, measured from the DMX frames of a virtual-time show."""
    cfg = heads_config()
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    show = Show(cfg, out, duration_s=tr.duration_s - 1.0, control=False, clock=FastClock,
                audio=wav)
    show.music.trace = []
    show.run()
    rig = Rig.from_patch(patch)
    frames = np.stack([rig.frames_array(h) for h in out.history])
    times = np.arange(len(frames)) / cfg.fps
    trace = show.music.trace
    end = tr.duration_s - 2.5
    changed = [a[0] for a, b in itertools.pairwise(trace)
               if (a[2] != b[2] or a[6] != b[6]) and a[0] < end]
    settle = (changed[-1] if changed else 0.0) + 2 * 4 * 60.0 / tr.bpm[-1]
    speeds = mm.aim_motion(rig, frames, mm.fine_heads(patch))
    n = show.music.beats_per_waypoint(tr.bpm[-1], 1.0 / cfg.walk.seconds_per_waypoint)
    best = None
    for k in range(n):                  # which beat of the bar the walk took as beat 1
        want = tr.beats_s[k::n]
        want = want[(want > settle) & (want < end)]
        err = np.array([mm.rest_near(times, speeds, t, 0.25 * n * 60 / tr.bpm[0]) - t
                        for t in want])
        if best is None or np.mean(np.abs(err) <= MATCH_S) > np.mean(np.abs(best) <= MATCH_S):
            best = err
    assert best is not None
    a = np.abs(best)
    return {"after_s": settle, "n": len(a), "med_ms": 1e3 * float(np.median(a)),
            "p90_ms": 1e3 * float(np.percentile(a, 90)), "within": float(np.mean(a <= MATCH_S))}


def onset_track(seconds: float, sr: int = mt.SR) -> tuple[np.ndarray, list[float]]:
    rng = np.random.default_rng(3)
    x = (0.01 * rng.standard_normal(int(seconds * sr))).astype(np.float32)    # -40 dBFS
    hits = [3.0 + 2.5 * i for i in range(int((seconds - 4.0) / 2.5))]
    k = mt.kick(sr, 1.0)
    n = int(0.3 * sr)
    for t in hits:
        i = int(t * sr)
        burst = 0.4 * rng.standard_normal(n)
        burst[: min(n, len(k))] += k[:n]
        x[i:i + n] += burst.astype(np.float32)
    return np.clip(x, -1, 1), hits


class Timing:
    """A frame listener: when each frame was out (monotonic), its lateness, its frames."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.at: list[float] = []
        self.late_s: list[float] = []
        self.frames: list[np.ndarray] = []

    def __call__(self, show: Show) -> None:
        now = time.monotonic()
        clock = show.clock
        self.at.append(now)
        self.late_s.append(now - clock.due(clock.frame - 1))
        self.frames.append(self.rig.frames_array(show.output.last_frames))


def realtime_show(cfg, seconds: float, wav: Path | None):
    gc.collect()                 # not the daemon's: the garbage of the virtual-time shows above
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames)
    show = Show(cfg, out, duration_s=seconds, control=False, clock=FrameClock, audio=wav)
    timing = Timing(Rig.from_patch(patch))
    show.listeners.append(timing)
    th = threading.Thread(target=show.run, daemon=True)
    th.start()
    th.join(seconds + 30)
    return show, patch, timing


def onset_latency(seconds: float, tmp: Path) -> dict:
    x, hits = onset_track(seconds)
    wav = tmp / "onsets.wav"
    mt.Track("onsets", x, mt.SR, np.array(hits), np.array(hits), np.full(len(hits), 60.0)) \
        .write(wav)
    cfg = load_config(None)
    show, patch, timing = realtime_show(cfg, seconds, wav)
    dev = show.music.audio._make_device()            # the FileDevice: when sample 0 played
    t0 = dev.t0
    fixtures = rig_from_config(None)
    y = np.array([np.mean([fixture_light(fx, {u: f[j] for j, u in enumerate(patch.universes)})[0]
                           for fx in fixtures]) for f in timing.frames])
    at = np.array(timing.at)
    dy = np.diff(y)
    out = []
    for h in hits:
        h_mono = t0 + h
        k0 = np.searchsorted(at, h_mono)              # first frame out after the hit
        if k0 < 45 or k0 + 20 >= len(y):
            continue
        noise = np.abs(dy[k0 - 41:k0 - 1])
        thr = max(2.0 / 255, 3 * np.percentile(noise, 95))
        jump = np.nonzero(y[k0:k0 + 20] - y[k0 - 1] > thr)[0]
        if jump.size:
            out.append(at[k0 + jump[0]] - h_mono)
    lat = np.array(out) * 1e3
    return {"n": len(lat), "med": float(np.median(lat)), "max": float(lat.max()),
            "min": float(lat.min()), "late": show.clock.late}


def frame_loop(seconds: float, wav: Path) -> dict:
    cfg = load_config(None)
    rows = {}
    for name, audio in (("no music", None), ("music, live capture path", wav)):
        show, _, timing = realtime_show(cfg, seconds, audio)
        lat = np.array(timing.late_s[20:]) * 1e3
        rows[name] = {"frames": len(timing.at), "late": show.clock.late,
                      "med": float(np.median(lat)), "p99": float(np.percentile(lat, 99)),
                      "max": float(lat.max())}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="real-time runs (s)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-realtime", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="latentdmx-bench-"))
    tracks = {name: mt.make(name) for name in mt.TRACKS}
    wavs = {name: tr.write(tmp / f"{name}.wav") for name, tr in tracks.items()}

    print("1. tracking CPU, % of one core per second of 44.1 kHz mono audio (best of "
          f"{a.repeat})")
    for name, tr in tracks.items():
        ours, aubio_only = tracking_cpu(tr, a.repeat)
        print(f"   {name:18s} whole analysis {ours:5.2f} %   aubio beat tracker alone "
              f"{aubio_only:5.2f} %")

    print("\n2. per track: lock, BPM, beats (tracker state at each true beat); waypoints vs "
          "bars from the DMX frames")
    print(f"   {'track':18s} {'BPM':>8s} {'lock s':>7s} {'BPM err':>8s} {'beats<=50ms':>11s}"
          f" | {'waypoints':>9s} {'median':>7s} {'p90':>7s} {'<=50ms':>7s}"
          f" | aubio alone: {'beats':>6s} {'last BPM err':>12s}")
    for name, tr in tracks.items():
        s = tracker_scores(tr)
        d = dmx_alignment(tr, wavs[name])
        a_beats, a_err = aubio_alone(tr)
        bpm = f"{tr.bpm[0]:g}" + (f"-{tr.bpm[-1]:g}" if tr.bpm[-1] != tr.bpm[0] else "")
        print(f"   {name:18s} {bpm:>8s} {s['lock_s']:7.2f} {100 * s['bpm_err']:7.2f}% "
              f"{100 * s['beats']:10.1f}% | {d['n']:9d} {d['med_ms']:5.1f}ms "
              f"{d['p90_ms']:5.1f}ms {100 * d['within']:6.1f}% | {100 * a_beats:17.1f}% "
              f"{100 * a_err:11.1f}%")
    if a.skip_realtime:
        return
    print(f"\n3. onset -> light change, real time through the capture path ({a.seconds:g} s)")
    o = onset_latency(a.seconds, tmp)
    print(f"   {o['n']} hits: median {o['med']:.0f} ms, min {o['min']:.0f} ms, max "
          f"{o['max']:.0f} ms (late frames {o['late']})")
    print(f"\n4. the frame loop, real time, {a.seconds:g} s at 40 fps (lateness = how long "
          "after its deadline a frame was out)")
    for name, r in frame_loop(a.seconds, wavs["four_on_the_floor"]).items():
        print(f"   {name:26s} frames {r['frames']:4d} late {r['late']} median "
              f"{r['med']:.2f} ms p99 {r['p99']:.2f} ms max {r['max']:.2f} ms")


if __name__ == "__main__":
    main()
