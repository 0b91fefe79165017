"""Music analysis: blocks of audio in, a beat grid, energy and silence out.

`Tracker.feed(block)` takes mono float32 audio in hops of `hop` samples (about 11.6 ms) and
keeps `state` (a frozen `MusicState`) up to date. It never looks ahead: the state after a
block depends only on the audio up to the end of that block, so an offline render and a live
show agree.

What comes from where:

* **aubio** (``aubio-ledfx``): the phase vocoder, the onset detector and aubio's beat tracker
  (Davies & Plumbley), whose tempo is the first hypothesis. It is precise when right, but on
  our test tracks it locks to the off-beat after a tempo change and reads 180 BPM as 120.
* **the grid** (here): a low-band spectral-flux onset strength (kick and bass) is kept for the
  last `WINDOW_S`. aubio's period and its simple ratios (1/2, 2/3, 3/4, 1, 4/3, 3/2, 2) are
  scored by the onset strength's autocorrelation at 1-3 periods; the best one wins (aubio's
  own and the current one get a small bonus, so it does not flap). The phase is the comb
  position with the most low-band onset strength, so beats land on the kick, not the hi-hat.
  Each measurement nudges the grid (a phase-locked loop), so the grid never jitters; three
  misses in a row re-anchor it. ``locked`` once three measurements in a row agree.
* **the bar**: the accent (all-band plus low-band flux) of each beat, averaged per position in
  a 4-beat bar; the strongest position is beat 1.
* **energy**: the short-term loudness (RMS in dBFS, 0.05 s attack, 0.25 s release) placed
  between a floor and a peak that follows the loudest recent level, so it reads 0..1 whatever
  the input gain. **silence**: every block below `silence_db` for `silence_s`.

Times are seconds of audio since the first sample ("audio time"); `MusicState` carries them
shifted into the show's time by ``offset_s`` (set by whoever feeds the tracker).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

WINDOW_S = 4.5             # onset strength kept for tempo and phase (s)
UPDATE_S = 0.25            # grid measurement interval (s)
LOCK_AFTER = 3             # agreeing measurements in a row before "locked"
MISS_REANCHOR = 3          # measurements off the grid in a row before re-anchoring
PHASE_TOL = 0.12           # a measurement within this fraction of a period agrees
RECENT_TOL = 0.15          # ... and the last three beats alone agree this well
PLL_PHASE_GAIN = 0.3       # fraction of a phase error corrected per measurement
PLL_PERIOD_GAIN = 0.04     # ... and fed into the period
COMB_DECAY = 0.7          # weight of each older beat in the phase comb
BAR_SWITCH = 1.2           # another beat becomes beat 1 when its accent is this much stronger
RATIOS = (1.0, 0.5, 2.0, 2 / 3, 1.5, 0.75, 4 / 3)
LOW_HZ = (30.0, 220.0)     # the band of the low onset strength (kick, bass)
ODF_DELAY_S = 0.0116       # onset strength peaks this long before a hop's end (measured)


@dataclass(frozen=True)
class MusicState:
    """What the analysis knows at `t_s` (show time). Replaced whole, never changed."""

    t_s: float = 0.0               # show time of the end of the last analysed block
    offset_s: float = 0.0          # show time = audio time + offset_s
    locked: bool = False
    searching: bool = False        # sound with no stable beat yet
    bpm: float = 0.0               # 0 = no tempo
    anchor_s: float = 0.0          # show time of a recent beat ...
    anchor_beat: int = 0           # ... and its index (beats since the grid was anchored)
    downbeat: int = 0              # beat index (mod 4) of beat 1 of the bar
    bar_known: bool = False        # the downbeat estimate has enough evidence
    energy: float = 0.0            # short-term loudness, 0..1
    level_db: float = -120.0       # short-term loudness, dBFS
    silent: bool = True
    onsets: int = 0                # onsets detected so far
    last_onset_s: float = -1.0     # show time of the last onset (-1: none yet)

    @property
    def period_s(self) -> float:
        return 60.0 / self.bpm if self.bpm > 0 else 0.0

    def beats_at(self, t_s: float) -> float:
        """Beat index at show time t_s (continuous; 0 when there is no tempo)."""
        if self.bpm <= 0:
            return 0.0
        return self.anchor_beat + (t_s - self.anchor_s) * self.bpm / 60.0


def _prior(bpm: float) -> float:
    """A broad preference for tempos near 120 BPM (log-normal, 1.5 octaves wide)."""
    return math.exp(-0.5 * (math.log2(bpm / 120.0) / 1.5) ** 2)


ATTACK_S = 0.05           # short-term loudness: rises this fast (s) ...
RELEASE_S = 0.25          # ... and falls this fast, so it pulses with the beat


class _Loudness:
    """Short-term loudness in dBFS and a gain-independent 0..1 energy."""

    def __init__(self, hop_s: float, range_db: float = 30.0) -> None:
        self.a_up = 1.0 - math.exp(-hop_s / ATTACK_S)
        self.a_down = 1.0 - math.exp(-hop_s / RELEASE_S)
        self.peak_fall = 1.5 * hop_s            # the peak falls 1.5 dB/s
        self.range_db = range_db
        self.power = 0.0
        self.peak_db = -60.0

    def __call__(self, block: np.ndarray) -> tuple[float, float, float]:
        """(short-term level dBFS, energy 0..1, this block's own level dBFS)."""
        p = float(np.dot(block, block)) / max(len(block), 1)
        a = self.a_up if p > self.power else self.a_down
        self.power += a * (p - self.power)
        db = 10.0 * math.log10(self.power + 1e-12)
        self.peak_db = max(db, self.peak_db - self.peak_fall, -60.0)
        energy = (db - (self.peak_db - self.range_db)) / self.range_db
        return db, min(1.0, max(0.0, energy)), 10.0 * math.log10(p + 1e-12)


class Tracker:
    """Beat, tempo, bar, onset, energy and silence tracking of one mono stream."""

    def __init__(self, samplerate: int, hop: int | None = None, *, min_bpm: float = 60.0,
                 max_bpm: float = 200.0, silence_db: float = -50.0,
                 silence_s: float = 2.0) -> None:
        import aubio  # the `music` extra; `audio.require_analysis()` explains a missing one

        self.sr = int(samplerate)
        self.hop = hop or (512 if self.sr >= 32000 else 256)
        self.win = 2 * self.hop
        self.hop_s = self.hop / self.sr
        self.min_bpm, self.max_bpm = float(min_bpm), float(max_bpm)
        self.silence_db, self.silence_s = float(silence_db), float(silence_s)
        self._tempo = aubio.tempo("default", self.win, self.hop, self.sr)
        self._onset = aubio.onset("hfc", self.win, self.hop, self.sr)
        self._onset.set_minioi_ms(60)
        self._pvoc = aubio.pvoc(self.win, self.hop)
        freqs = np.arange(self.win // 2 + 1) * self.sr / self.win
        self._low = (freqs >= LOW_HZ[0]) & (freqs <= LOW_HZ[1])
        self._prev_mag = np.zeros(self.win // 2 + 1, np.float32)
        n = int(WINDOW_S / self.hop_s)
        self._low_odf = np.zeros(n, np.float32)       # ring buffers, newest at index _i % n
        self._all_odf = np.zeros(n, np.float32)
        self._n = n
        self._i = 0                                    # hops analysed
        self._loud = _Loudness(self.hop_s)
        self._quiet_s = 0.0
        self._next_update = 0
        self._update_every = max(1, round(UPDATE_S / self.hop_s))
        # the grid, in audio time
        self._period = 0.0
        self._anchor = 0.0
        self._anchor_beat = 0          # beat index of the anchor
        self._agree = 0
        self._miss = 0
        self._accent = np.zeros(4)
        self._accent_n = 0
        self._bar = 0                  # beat index (mod 4) taken as beat 1
        self._last_accent_beat = -1
        self._aubio_period = 0.0
        self._onsets = 0
        self._last_onset = -1.0
        self.state = MusicState()
        self.offset_s = 0.0

    # -- per block ----------------------------------------------------------------------
    def feed(self, block: np.ndarray) -> MusicState:
        """Analyse one hop of audio (float32, `hop` samples); returns the new state."""
        x = np.ascontiguousarray(block, dtype=np.float32)
        if len(x) != self.hop:
            x = np.resize(np.pad(x, (0, max(0, self.hop - len(x)))), self.hop)
        t_end = (self._i + 1) * self.hop_s                    # audio time of the block's end
        if self._tempo(x)[0]:
            bpm = float(self._tempo.get_bpm())
            if bpm > 0:
                self._aubio_period = 60.0 / bpm
        if self._onset(x)[0]:
            self._onsets += 1
            self._last_onset = float(self._onset.get_last_s())
        mag = np.log1p(100.0 * np.asarray(self._pvoc(x).norm, np.float32))
        flux = np.maximum(mag - self._prev_mag, 0.0)
        self._prev_mag = mag
        j = self._i % self._n
        self._low_odf[j] = float(flux[self._low].sum())
        self._all_odf[j] = float(flux.sum()) / len(flux)
        self._i += 1
        db, energy, block_db = self._loud(x)
        self._quiet_s = self._quiet_s + self.hop_s if block_db < self.silence_db else 0.0
        silent = self._quiet_s >= self.silence_s
        if silent and self._period:
            self._forget()
        if self._i >= self._next_update and not silent:
            self._next_update = self._i + self._update_every
            self._measure(t_end)
        off = self.offset_s
        self.state = MusicState(
            t_s=t_end + off, offset_s=off, locked=self._agree >= LOCK_AFTER and not silent,
            searching=not silent and self._agree < LOCK_AFTER,
            bpm=60.0 / self._period if self._period else 0.0, anchor_s=float(self._anchor + off),
            anchor_beat=self._anchor_beat,
            downbeat=self._bar,
            bar_known=self._accent_n >= 4, energy=0.0 if silent else energy, level_db=db,
            silent=silent, onsets=self._onsets,
            last_onset_s=self._last_onset + off if self._last_onset >= 0 else -1.0)
        return self.state

    def set_offset(self, offset_s: float) -> None:
        """Show time = audio time + offset_s (the feeder knows when the audio started)."""
        self.offset_s = float(offset_s)
        self.state = replace(self.state, offset_s=self.offset_s)

    # -- the grid -----------------------------------------------------------------------
    def _forget(self) -> None:
        self._period = 0.0
        self._agree = self._miss = 0
        self._accent[:] = 0.0
        self._accent_n = 0
        self._bar = 0
        self._last_accent_beat = -1

    def _odf(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(low, all) onset strength, oldest first, and the audio time of the newest value."""
        n, i = self._n, self._i
        k = min(i, n)
        idx = (np.arange(i - k, i)) % n
        return self._low_odf[idx], self._all_odf[idx], i * self.hop_s - ODF_DELAY_S

    def _score(self, ac: np.ndarray, period: float) -> float:
        """Mean autocorrelation at 1, 2 and 3 periods (linearly interpolated)."""
        s = 0.0
        for m in (1, 2, 3):
            lag = m * period / self.hop_s
            a = int(lag)
            if a + 1 >= len(ac):
                return s / m if m > 1 else 0.0
            f = lag - a
            s += (1 - f) * ac[a] + f * ac[a + 1]
        return s / 3

    def _choose_period(self, low: np.ndarray) -> float:
        base = self._aubio_period
        if not base:
            return 0.0
        x = low - low.mean()
        energy = float(np.dot(x, x))
        if energy <= 1e-12:
            return 0.0
        ac = np.correlate(x, x, mode="full")[len(x) - 1:] / energy
        lo, hi = 60.0 / self.max_bpm, 60.0 / self.min_bpm
        best, best_score = 0.0, -1.0
        cands = [(base / r, 1.15 if r == 1.0 else 1.0) for r in RATIOS]
        own = self._scan(ac, lo, hi)
        if own:
            cands.append((own, 1.0))
        for p, bonus in cands:
            if not lo <= p <= hi:
                continue
            score = self._score(ac, p) * bonus * _prior(60.0 / p)
            if self._period and abs(p / self._period - 1.0) < 0.02:
                score *= 1.15
            if score > best_score:
                best, best_score = p, score
        return best if best_score > 0.05 else 0.0

    def _scan(self, ac: np.ndarray, lo: float, hi: float) -> float:
        """The period in lo..hi (s) with the best score, to a fraction of a hop."""
        lags = np.arange(math.ceil(lo / self.hop_s), math.floor(hi / self.hop_s) + 1)
        m = len(ac)
        if lags.size < 3 or 3 * lags[-1] + 1 >= m:
            lags = lags[3 * lags + 1 < m]
            if lags.size < 3:
                return 0.0
        score = (ac[lags] + ac[2 * lags] + ac[3 * lags]) / 3
        k = int(np.argmax(score))
        if 0 < k < len(score) - 1:
            y0, y1, y2 = score[k - 1], score[k], score[k + 1]
            den = y0 - 2 * y1 + y2
            d = 0.5 * (y0 - y2) / den if den < 0 else 0.0
        else:
            d = 0.0
        return float((lags[k] + d) * self.hop_s)

    def _phase(self, low: np.ndarray, period: float, t_new: float,
               n_max: int = 64) -> tuple[float, float]:
        """(audio time of the best-supported recent beat, contrast of the comb 0..1), from
        the last `n_max` beats at most."""
        h = self.hop_s
        n_beats = min(n_max, max(2, int((len(low) * h - period) / period)))
        steps = max(2, int(period / h))
        offsets = np.arange(steps) * h                               # candidate phases
        lags = offsets[:, None] + np.arange(n_beats)[None, :] * period  # seconds back
        pos = (len(low) - 1) - lags / h
        ok = pos >= 0
        a = np.clip(np.floor(pos).astype(int), 0, len(low) - 1)
        f = pos - a
        b = np.clip(a + 1, 0, len(low) - 1)
        vals = np.where(ok, (1 - f) * low[a] + f * low[b], 0.0)
        weights = COMB_DECAY ** np.arange(n_beats)                        # recent beats count more
        comb = (vals * weights).sum(axis=1)
        k = int(np.argmax(comb))
        # parabolic refinement on the circular comb
        y0, y1, y2 = comb[(k - 1) % steps], comb[k], comb[(k + 1) % steps]
        den = y0 - 2 * y1 + y2
        d = 0.5 * (y0 - y2) / den if den < 0 else 0.0
        contrast = (y1 - float(np.median(comb))) / (y1 + 1e-9)
        return t_new - (k + d) * h, contrast

    def _measure(self, t_end: float) -> None:
        low, allb, t_new = self._odf()
        if len(low) * self.hop_s < 2.0:
            return
        period = self._choose_period(low)
        if not period:
            self._agree = 0
            return
        beat, contrast = self._phase(low, period, t_new)
        if contrast < 0.3:
            self._agree = 0
            return
        if not self._period or abs(period / self._period - 1.0) > 0.02:
            self._reanchor(period, beat)
            return
        p = self._period
        n = math.floor((t_new - self._anchor) / p)
        if n > 0:                       # keep the anchor recent, so a period change is local
            self._anchor += n * p
            self._anchor_beat += n
        err = self._grid_error(beat)
        recent, _ = self._phase(low, p, t_new, n_max=3)              # the last three beats
        if abs(err) <= PHASE_TOL * p and abs(self._grid_error(recent)) <= RECENT_TOL * p:
            self._anchor += PLL_PHASE_GAIN * err
            self._period += PLL_PERIOD_GAIN * err
            self._agree += 1
            self._miss = max(0, self._miss - 1)
            self._accents(low, allb, t_new)
        else:
            self._miss += 1
            if self._miss >= 2:
                self._agree = 0                    # lock lost: the beat moved
            if self._miss >= MISS_REANCHOR:
                self._reanchor(period, recent)

    def _grid_error(self, beat: float) -> float:
        """Seconds from `beat` to the nearest beat of the grid (within +-period/2)."""
        e = (beat - self._anchor) / self._period
        return (e - round(e)) * self._period

    def _reanchor(self, period: float, beat: float) -> None:
        self._period = float(period)
        self._anchor = float(beat)
        self._anchor_beat = 0
        self._agree = 1
        self._miss = 0
        self._accent[:] = 0.0
        self._accent_n = 0
        self._bar = 0
        self._last_accent_beat = -1

    def _accents(self, low: np.ndarray, allb: np.ndarray, t_new: float) -> None:
        """Add the accent of each beat not counted yet to its position in the bar."""
        p, h = self._period, self.hop_s
        newest = self._anchor_beat + math.floor((t_new - 2 * h - self._anchor) / p)
        first = max(self._last_accent_beat + 1, newest - 3)
        lo_n = low / (low.max() + 1e-9)
        al_n = allb / (allb.max() + 1e-9)
        for b in range(first, newest + 1):
            t = self._anchor + (b - self._anchor_beat) * p
            pos = (len(low) - 1) - (t_new - t) / h
            a = round(pos)
            if a - 2 < 0 or a + 2 >= len(low):
                continue
            acc = float(lo_n[a - 2:a + 3].max() + al_n[a - 2:a + 3].max())
            self._accent[b % 4] = 0.85 * self._accent[b % 4] + acc
            self._accent_n += 1
            self._last_accent_beat = b
        best = int(np.argmax(self._accent))
        if best != self._bar and self._accent[best] > BAR_SWITCH * self._accent[self._bar]:
            self._bar = best                   # sticky: only a clearly stronger beat 1 moves it
