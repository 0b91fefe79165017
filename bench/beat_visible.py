"""Is the beat visible? Accents, head speed and flashes of a music show, from its DMX alone.

    python bench/beat_visible.py [--seconds 40] [--bpm 117 180] [--config rig.toml]
                                 [--wav-dir DIR]

A steady-loudness test track is made here with NumPy for each tempo (a kick on every beat, a
bass note on every beat, a crash on beat 1 of each bar, a hiss under it all, so the loudness
does not follow the beat), written as a WAV, and played into a show on virtual time
(`FastClock`: the music is analysed on the show's own clock, as `render --audio` does). The
same show without music is the baseline. Everything below is measured from the DMX frames the
show sent, by code of this file and `tests/flash_counter.py`, which read the rig's channel
layout from the config and the fixture profiles and share nothing with the show's decoder,
safety stage or music code. Measured after the first `--settle` seconds (the tracker locks).

* **swing**: the rig's luminance (mean of every fixture's relative luminance), folded on the
  track's beat grid (16 bins a beat): (max - min) / mean of the folded curve, in %.
* **swing/2 beats**: the same folded on two beats (at fast tempi the accents come every
  other beat).
* **bar 1 / others**: the luminance's rise into each beat (peak within +-1/8 beat minus the
  trough of the half beat before), averaged per beat of the bar: beat 1's over the others'.
* **head speed**: each head's aim (pan, tilt in degrees, from the DMX and the profile's
  ranges) over 0.25 s windows; the median over heads and windows (0 when heads rest more
  than half the time) and the mean, music / no music.
* **at slew limit**: share of 0.1 s head-windows in which an axis moves at >= 90 % of its
  slew limit (the config's, else the profile's range in 3 s).
* **flashes/s**: WCAG 2.3.1 flashes in the worst second, worst fixture and the rig.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from beat_measure import measure, run_show, steady_track, write_wav


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--settle", type=float, default=8.0)
    ap.add_argument("--bpm", type=float, nargs="+", default=[117.0, 180.0])
    ap.add_argument("--config", default=None, help="a rig (default: the bundled one)")
    ap.add_argument("--wav-dir", default=None, help="keep the test songs here "
                    "(steady-117.wav, ...)")
    args = ap.parse_args()
    tmp = Path(args.wav_dir or tempfile.mkdtemp(prefix="latentdmx-beat-"))
    tmp.mkdir(parents=True, exist_ok=True)
    free_frames, fps = run_show(args.config, args.seconds, None)
    print(f"rig: {args.config or 'the bundled default'}; {args.seconds:g} s per show on "
          f"virtual time, measured after {args.settle:g} s; figures from the DMX frames")
    print("track     show      swing  swing/2 beats  bar1/other  head med (mean)  at limit  "
          "flashes/s fixture/rig  mean light")
    for bpm in args.bpm:
        wav = write_wav(steady_track(bpm, args.seconds + 1.0), tmp / f"steady-{bpm:g}.wav")
        free = measure(free_frames, fps, args.config, bpm, args.settle)
        frames, _ = run_show(args.config, args.seconds, wav)
        mus = measure(frames, fps, args.config, bpm, args.settle)
        two = {"no music": measure(free_frames, fps, args.config, bpm / 2, args.settle).swing,
               "music": measure(frames, fps, args.config, bpm / 2, args.settle).swing}
        for label, f in (("no music", free), ("music", mus)):
            print(f"{bpm:5.0f} BPM {label:9s} {100 * f.swing:5.1f} %  {100 * two[label]:9.1f} %  "
                  f"{f.bar1:8.2f}  "
                  f"{f.head_med:6.1f} ({f.head_mean:4.1f}) °/s  {100 * f.at_limit:5.1f} %   "
                  f"{f.flash_fixture:4.1f} / "
                  f"{f.flash_rig:4.1f}        {f.mean_light:.3f}")
        print(f"{bpm:5.0f} BPM music/free: swing {mus.swing / max(free.swing, 1e-9):.1f}x, "
              f"head speed median {mus.head_med:.1f} vs {free.head_med:.1f} °/s, mean "
              f"{mus.head_mean / max(free.head_mean, 1e-9):.1f}x")


if __name__ == "__main__":
    main()
