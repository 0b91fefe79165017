"""Music: the tracker on synthesised tracks, the show locked to the beat measured from its DMX
frames, the flash limit under loud music (counted by `flash_counter`, independent of
`pi_app.safety`), audio in (file, faked capture device, missing
device), tap tempo, the render lane and the views.

The test music is made by `music_tracks` (sine waves and noise, known beats); nothing here
needs a licence. Times of waypoints are measured from the recorded DMX frames alone
(`music_measure`), never from the show's state.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from private_pulse import private_pulse

pytest.importorskip("aubio", reason="needs the music extra: pip install -e '.[music]'")

import dataclasses
import itertools

import music_measure as mm
import music_tracks as mt
from beat_measure import measure
from flash_counter import count, rig_from_config
from lateness import MachineLateness

from pi_app.clock import FastClock, FrameClock
from pi_app.config import load_config
from pi_app.decode import Rig
from pi_app.errors import ConfigError
from pi_app.music import make_drive
from pi_app.music.analysis import Tracker
from pi_app.music.drive import MusicDrive
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import Show
from pi_app.sim.record import read_show

try:                                   # the browser test's headless Chromium fixture
    from test_views_browser import chromium  # noqa: F401
except ImportError:                    # pragma: no cover
    pass

ENV = dict(os.environ, PYTHONUNBUFFERED="1")
ENV.pop("LATENTDMX_FAKE_AUDIO_DEVICE", None)
MATCH_S = 0.050           # a beat (or a waypoint on a beat) matches within 50 ms
LOCK_WITHIN_S = 4.0
HEADS = list(range(6))    # the `heads_rig` fixtures, all with 16-bit pan/tilt
DEFAULT_TOML = Path(__file__).parents[1] / "pi_app" / "data" / "default.toml"


def heads_rig_text(extra: str = "") -> str:
    """The default config's settings (a brisk walk) with six Lumeri heads in 14ch mode (16-bit
    pan/tilt, so where the walk comes to rest can be read from the DMX to a few ms), limited
    to face the room as the default rig's heads are, instead of its rig."""
    head = DEFAULT_TOML.read_text().split("\n# One [[fixtures]]", 1)[0]
    # a brisker walk, 4 s a waypoint: under the beat, a waypoint every 2 bars at 96-128 BPM
    head = head.replace("seconds_per_waypoint = 6.0 ", "seconds_per_waypoint = 4.0 ", 1)
    fixtures = "".join(
        f'\n[[fixtures]]\nname = "head-{i + 1}"\nprofile = "lumeri-wash-7-10"\nmode = "14ch"\n'
        f"universe = 1\naddress = {1 + 14 * i}\nposition = [{0.1 + 0.16 * i:.2f}, 0.3]\n"
        "pan_limits_deg = [180, 360]\ntilt_limits_deg = [45, 225]\n"
        for i in range(6))
    return head.replace("\n[audio]", extra + "\n[audio]", 1) + fixtures if extra else \
        head + fixtures


@pytest.fixture(scope="session")
def heads_cfg(tmp_path_factory):
    p = tmp_path_factory.mktemp("rig") / "heads.toml"
    p.write_text(heads_rig_text())
    return load_config(p)


@pytest.fixture(scope="session")
def tracks(tmp_path_factory) -> dict[str, tuple[mt.Track, Path]]:
    d = tmp_path_factory.mktemp("music")
    out = {}
    for name in mt.TRACKS:
        tr = mt.make(name)
        out[name] = (tr, tr.write(d / f"{name}.wav"))
    return out


def latentdmx(*args: str, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pi_app.cli", *args], check=False,
                          capture_output=True, text=True, timeout=120, env=env or ENV, **kw)


# -- the tracker, on its own ----------------------------------------------------------------
def track_states(tr: mt.Track) -> tuple[np.ndarray, list]:
    trk = Tracker(tr.sr)
    states = [trk.feed(tr.audio[i:i + trk.hop])
              for i in range(0, len(tr.audio) - trk.hop + 1, trk.hop)]
    return np.array([s.t_s for s in states]), states


def beat_scores(tr: mt.Track, ts, states, start_s: float, end_s: float, relock: bool = False):
    """(time of first lock after start_s, fraction of beats after it within 50 ms, worst
    BPM error after it), judging each true beat by the state known at that moment. `relock`:
    the tempo changed at start_s, so the lock that counts is the first after losing the old."""
    first, hits, bpm_err = None, [], []
    lost = not relock
    for b, bpm in zip(tr.beats_s, tr.bpm, strict=True):
        if not start_s <= b < end_s:
            continue
        k = np.searchsorted(ts, b, side="right") - 1
        s = states[k] if k >= 0 else None
        lost = lost or s is None or not s.locked
        if first is None:
            if s is not None and s.locked and lost:
                first = b
            else:
                continue
        if s is None or not s.locked:
            hits.append(False)
            continue
        beats = s.beats_at(b)
        hits.append(abs(beats - round(beats)) * s.period_s <= MATCH_S)
        bpm_err.append(abs(s.bpm / bpm - 1.0))
    return first, (np.mean(hits) if hits else 0.0), (max(bpm_err) if bpm_err else 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", mt.TRACKS)
def test_tracker_locks_within_4s_to_1_percent_and_95_percent_of_beats(tracks, name):
    tr, _ = tracks[name]
    ts, states = track_states(tr)
    # segments that start with music: the start, after a tempo change, after a silence
    starts = [0.0]
    change = np.nonzero(np.diff(tr.bpm))[0]
    changes = [float(tr.beats_s[i + 1]) for i in change]
    starts = sorted([0.0, *changes, *(end for _, end in tr.silent)])
    bounds = [*starts[1:], tr.duration_s]
    for start, end in zip(starts, bounds, strict=True):
        first, matched, bpm_err = beat_scores(tr, ts, states, start, end, start in changes)
        assert first is not None and first - start <= LOCK_WITHIN_S, (name, start, first)
        assert matched >= 0.95, (name, start, matched)
        assert bpm_err <= 0.01, (name, start, bpm_err)


def test_tracker_finds_beat_one_where_the_bar_is_marked(tracks):
    """four_on_the_floor marks beat 1 (crash, louder bass): the bar estimate finds it."""
    tr, _ = tracks["four_on_the_floor"]
    ts, states = track_states(tr)
    down = set(np.round(tr.downbeats_s, 4))
    ok = []
    for b in tr.beats_s[tr.beats_s > 8.0]:
        s = states[np.searchsorted(ts, b, side="right") - 1]
        assert s.locked and s.bar_known
        is_one = (round(s.beats_at(b)) - s.downbeat) % 4 == 0
        ok.append(is_one == (round(b, 4) in down))
    assert np.mean(ok) >= 0.95


def test_silence_is_detected_and_energy_follows_loudness(tracks):
    tr, _ = tracks["silence_break"]
    ts, states = track_states(tr)
    (start, end), = tr.silent
    at = {t: states[np.searchsorted(ts, t, side="right") - 1] for t in
          (start - 1.0, start + 2.5, end - 0.1, end + 1.0)}
    assert not at[start - 1.0].silent and at[start - 1.0].energy > 0.5
    assert at[start + 2.5].silent and at[start + 2.5].energy == 0.0
    assert not at[start + 2.5].locked and at[end - 0.1].silent
    assert not at[end + 1.0].silent


# -- the show locked to the music, measured from the DMX frames -------------------------------
def play(cfg, seconds: float, audio: Path | None, clock=FastClock):
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    show = Show(cfg, out, duration_s=seconds, control=False, clock=clock, audio=audio)
    show.music.trace = []
    show.run()
    rig = Rig.from_patch(patch)
    frames = np.stack([rig.frames_array(h) for h in out.history])
    return show, rig, frames, np.arange(len(frames)) / cfg.fps


def waypoint_hits(rig, frames, times, expected_s: np.ndarray, window_s: float):
    """For each expected arrival: does the rig come to rest (the walk's waypoint: its speed
    falls to zero there) within 50 ms of it? The rest is looked for within +-`window_s`."""
    speeds = mm.aim_motion(rig, frames, HEADS)
    return [abs(mm.rest_near(times, speeds, t, window_s) - t) <= MATCH_S for t in expected_s]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "align"), [("four_on_the_floor", "bar"), ("swing", "bar"),
                                             ("syncopated", "beat"), ("loud", "beat")])
def test_waypoints_land_on_the_beat_in_the_dmx_frames(tracks, heads_cfg, name, align):
    tr, wav = tracks[name]
    cfg = heads_cfg.replace(music=heads_cfg.music.__class__(align=align))
    show, rig, frames, times = play(cfg, tr.duration_s - 1.0, wav)
    n = show.music.beats_per_waypoint(tr.bpm[0], 1.0 / cfg.walk.seconds_per_waypoint)
    trace = show.music.trace
    lock_t = next(t for t, _, lock, *_ in trace if lock == "locked")
    assert lock_t <= LOCK_WITHIN_S
    # after lock: from the last change of lock or of beat 1, plus two waypoints to settle
    end = tr.duration_s - 2.5                           # the track's last bars
    changed = [a[0] for a, b in itertools.pairwise(trace)
               if (a[2] != b[2] or a[6] != b[6]) and a[0] < end]
    assert changed[-1] < tr.duration_s / 2
    settle = changed[-1] + n * 60.0 / tr.bpm[0] + 2.0     # a waypoint, and the heads' lag
    # the waypoints the walk reaches: every n beats from a beat 1 / any beat (which of every
    # n: not known ahead)
    grid, m = (tr.downbeats_s, max(1, n // 4)) if align == "bar" else (tr.beats_s, n)
    candidates = [grid[k::m][(grid[k::m] > settle) & (grid[k::m] < end)] for k in range(m)]
    hits = max((waypoint_hits(rig, frames, times, c, 0.25 * 60.0 / tr.bpm[0] * n)
                for c in candidates), key=np.mean)
    assert len(hits) >= 2 and np.mean(hits) >= 0.9, (name, np.mean(hits), len(hits))

    # the same rig without music does not land on such a grid (the measure can fail): a
    # minute of the free show against the grid carried on at the track's tempo (a waypoint
    # every few bars leaves few in the track itself). At 0.9x the walk's pace: at 180 BPM the
    # walk's own 4 s would be 12 beats exactly, on a grid that starts with the show.
    walk = dataclasses.replace(heads_cfg.walk, tempo=0.9)
    _, rig0, frames0, times0 = play(heads_cfg.replace(walk=walk), 60.0, None)
    step = m * (4 if align == "bar" else 1) * 60.0 / tr.bpm[0]
    free = max(np.mean(waypoint_hits(rig0, frames0, times0,
                                     np.arange(c[0] if len(c) else settle, 58.0, step),
                                     0.25 * 60.0 / tr.bpm[0] * n)) for c in candidates)
    assert free < 0.5, free


@pytest.mark.slow
def test_silence_drifts_back_to_the_free_walk_and_the_beat_comes_back(tracks, heads_cfg):
    tr, wav = tracks["silence_break"]
    cfg = heads_cfg
    show, rig, frames, times = play(cfg, tr.duration_s - 0.5, wav)
    trace = show.music.trace
    (start, end), = tr.silent
    free_rate = cfg.walk.tempo / cfg.walk.seconds_per_waypoint
    music_rate = tr.bpm[0] / 60.0 / show.music.beats_per_waypoint(tr.bpm[0], free_rate)
    t = np.array([r[0] for r in trace])
    level = np.array([r[4] for r in trace])
    lock = [r[2] for r in trace]
    k_quiet = np.searchsorted(t, end - 0.05)          # the end of the break
    assert lock[k_quiet] == "silent"
    k_dark = np.searchsorted(t, start + cfg.music.silence_s)   # silence found: the drift back
    assert level[k_dark] < 0.6 < 0.8 < level[k_quiet]           # to the free show's full light
    assert np.all(np.diff(level[k_dark + 5:k_quiet]) > 0)
    # the walk's speed glides back to the free walk's (no jump, no stop)
    rates = np.array([r[7] for r in trace])
    assert abs(rates[k_quiet] - free_rate) < 0.2 * abs(music_rate - free_rate)
    assert np.max(np.abs(np.diff(rates))) < 0.1 * music_rate        # glides: never a step
    assert rates.min() > 0
    relock = next(tt for tt, lk in zip(t, lock, strict=True) if tt > end and lk == "locked")
    assert relock - end <= LOCK_WITHIN_S
    # and after the break the waypoints land on the bars again (from the DMX frames)
    n = show.music.beats_per_waypoint(tr.bpm[0], free_rate)
    m = max(1, n // 4)                                  # a waypoint every m bars
    after = tr.downbeats_s[(tr.downbeats_s > relock + 4.0 + n * 60.0 / tr.bpm[0]) &
                           (tr.downbeats_s < times[-1] - 2)]
    hits = max((waypoint_hits(rig, frames, times, after[k::m], 0.25 * 60.0 / tr.bpm[0] * n)
                for k in range(m)), key=np.mean)
    assert len(hits) >= 2 and np.mean(hits) >= 0.75


# -- safety: loud music can never make a strobe -----------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["loud", "gated"])
def test_loud_beat_heavy_track_stays_under_3_flashes_per_second(tracks, name):
    """The default rig, the most eager music settings (a waypoint on every beat, the light
    from dark to full with the loudness): an independent flash count from the DMX bytes
    stays <= 3/s for every fixture and for the rig."""
    tr, wav = tracks[name]
    cfg = load_config(None)
    cfg = cfg.replace(music=cfg.music.__class__(beats_per_waypoint=1, align="beat",
                                                energy_range=(0.0, 1.0)))
    show, rig, frames, times = play(cfg, tr.duration_s - 1.0, wav)
    trace = show.music.trace
    locked = [r for r in trace if r[2] == "locked"]
    assert len(locked) > 0.7 * len(trace)
    rate = np.median([r[7] for r in locked])            # waypoints per second: one a beat
    assert rate == pytest.approx(tr.bpm[0] / 60.0, rel=0.02)
    # the independent counter (tests/flash_counter.py: no code shared with pi_app.safety)
    counter = count(rig_from_config(None), (
        (float(t), {u: frames[k, j] for j, u in enumerate(rig.universes)})
        for k, t in enumerate(times)))
    rates = counter.max_per_s()
    assert len(rates) >= len(rig) + 1 and "rig" in rates
    assert max(rates.values()) <= 3.0, rates
    # the project's own checker agrees
    from pi_app.safety_check import check_frames

    report = check_frames(frames, rig.universes, times, cfg, path=name)
    assert not [v for v in report.violations if "flash" in v], report.violations


# -- audio in, end to end ----------------------------------------------------------------
def late_frames(log: str) -> int:
    """The late-frame count from `run`'s last log line ("stopped after N frames (K late)")."""
    return int(log.rsplit("frames (", 1)[1].split(" late)", 1)[0])


def _aligned_from_recording(path: Path, cfg, tr: mt.Track, after_s: float) -> float:
    frames, _universes, times = read_show(path)
    rig = Rig.from_patch(Patch(cfg))
    bars = tr.downbeats_s[(tr.downbeats_s > after_s) & (tr.downbeats_s < times[-1] - 2.0)]
    n = MusicDrive(cfg.music).beats_per_waypoint(tr.bpm[0], 1.0 / cfg.walk.seconds_per_waypoint)
    m = max(1, n // 4)                                  # a waypoint every m bars
    return max(float(np.mean(waypoint_hits(rig, frames, times, bars[k::m],
                                           0.25 * 60 / tr.bpm[0] * n))) for k in range(m))


@pytest.mark.slow
def test_run_audio_file_in_real_time_follows_the_song(tracks, heads_cfg, tmp_path):
    """`latentdmx run --audio song.wav`: real time, audio on its own thread; `status` shows
    the beat; the recorded DMX lands its waypoints on the song's bars; no late frame."""
    tr, wav = tracks["four_on_the_floor"]
    env = dict(ENV, XDG_RUNTIME_DIR=str(tmp_path))
    rec = tmp_path / "show.txt"
    machine = MachineLateness(heads_cfg.fps).__enter__()
    proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--audio", str(wav),
                             "--config", heads_cfg.path, "--duration", "14", "--record",
                             str(rec)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(7.0)
        st = latentdmx("status", env=env)
        assert st.returncode == 0, st.stderr
        assert "music          locked" in st.stdout and "file four_on_the_floor.wav" in st.stdout
        bpm = float(st.stdout.split("bpm", 1)[1].split()[0])
        assert abs(bpm / 128.0 - 1) < 0.01
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        machine.__exit__()
    assert proc.returncode == 0, err
    assert "music from file four_on_the_floor.wav" in err
    assert late_frames(err) <= 2 + machine.allowance()     # 0 on a quiet machine (bench)
    # the first sample is heard when the frame clock starts: within a few ms of show time 0
    assert _aligned_from_recording(rec, heads_cfg, tr, after_s=6.0) >= 0.9


@pytest.mark.slow
def test_live_capture_through_the_device_path(tracks, heads_cfg, tmp_path):
    """`[audio] device`: PortAudio's place taken by a file played in real time through the
    same callback, queue, thread and clock mapping (there is no sound card here)."""
    tr, wav = tracks["four_on_the_floor"]
    cfg = tmp_path / "rig.toml"
    cfg.write_text(heads_rig_text().replace('device = ""  ', 'device = "USB Audio"', 1))
    assert 'device = "USB Audio"' in cfg.read_text()
    env = dict(ENV, XDG_RUNTIME_DIR=str(tmp_path), LATENTDMX_FAKE_AUDIO_DEVICE=str(wav))
    rec = tmp_path / "live.txt"
    machine = MachineLateness(heads_cfg.fps).__enter__()
    proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--config", str(cfg),
                             "--duration", "13", "--record", str(rec)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(7.0)
        st = latentdmx("status", env=env)
        assert "music          locked" in st.stdout and "device 'USB Audio'" in st.stdout
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        machine.__exit__()
    assert proc.returncode == 0, err
    assert late_frames(err) <= 2 + machine.allowance()     # 0 on a quiet machine (bench)
    assert _aligned_from_recording(rec, heads_cfg, tr, after_s=6.0) >= 0.9


@pytest.mark.slow
def test_missing_device_is_one_line_and_the_show_plays_on(tmp_path):
    """A device name that does not exist, through the real PortAudio: one log line with the
    fix; the show plays without music and stops cleanly."""
    pytest.importorskip("sounddevice", reason="needs PortAudio (apt install libportaudio2)",
                        exc_type=OSError)
    cfg = tmp_path / "rig.toml"
    text = (Path(__file__).parents[1] / "pi_app/data/default.toml").read_text()
    cfg.write_text(text.replace('device = ""  ', 'device = "no-such-card"', 1))
    rec = tmp_path / "show.txt"
    r = latentdmx("run", "--config", str(cfg), "--duration", "2", "--record", str(rec),
                  env=dict(ENV, XDG_RUNTIME_DIR=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("ERROR")]
    assert len(errors) == 1, r.stderr
    assert "audio.device: no input device 'no-such-card'" in errors[0]
    assert "arecord -l" in errors[0] or "set [audio] device to one of" in errors[0]
    assert "the show plays on without music" in errors[0]
    assert "Traceback" not in r.stderr
    frames, _, _ = read_show(rec)
    assert len(frames) >= 70 and frames[:, 0, :56].any()


@pytest.mark.slow
def test_bad_audio_file_and_missing_library_are_one_line(tracks, tmp_path):
    r = latentdmx("run", "--audio", str(tmp_path / "nope.wav"), "--duration", "1",
                  env=dict(ENV, XDG_RUNTIME_DIR=str(tmp_path)))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "nope.wav: --audio: no such sound file" in r.stderr and "Traceback" not in r.stderr
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a sound file at all" * 10)
    r = latentdmx("run", "--audio", str(junk), "--duration", "1",
                  env=dict(ENV, XDG_RUNTIME_DIR=str(tmp_path)))
    assert r.returncode == 2 and "cannot read it as sound" in r.stderr

    # no aubio: --audio refuses with the fix; a configured [audio] plays on without music
    fake = tmp_path / "noaubio"
    fake.mkdir()
    (fake / "aubio.py").write_text("raise ImportError('no aubio here')\n")
    env = dict(ENV, XDG_RUNTIME_DIR=str(tmp_path), PYTHONPATH=f"{fake}:{ENV.get('PYTHONPATH', '')}")
    _, wav = tracks["swing"]
    r = latentdmx("run", "--audio", str(wav), "--duration", "1", env=env)
    assert r.returncode == 2, r.stderr
    assert "--audio: music needs the aubio library" in r.stderr
    assert "pip install -e '.[music]'" in r.stderr
    cfg = tmp_path / "rig.toml"
    text = (Path(__file__).parents[1] / "pi_app/data/default.toml").read_text()
    cfg.write_text(text.replace('\nfile = ""    ', f'\nfile = "{wav}"', 1))
    r = latentdmx("run", "--config", str(cfg), "--duration", "1",
                  env=dict(env, LATENTDMX_FAKE_CLOCK="1"))
    assert r.returncode == 0, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("ERROR")]
    assert len(errors) == 1 and "the show plays without music" in errors[0]


@pytest.mark.slow
def test_audio_thread_never_delays_the_frame_loop(tracks, monkeypatch):
    """The analysis made CPU-bound and 1.5x slower than real time (pure Python, holding the
    GIL as long as Python lets it): it falls behind, the frame loop stays on time."""
    _tr, wav = tracks["swing"]
    real_feed = Tracker.feed

    def slow_feed(self, block):
        end = time.perf_counter() + 1.5 * self.hop_s
        while time.perf_counter() < end:
            pass
        return real_feed(self, block)

    monkeypatch.setattr(Tracker, "feed", slow_feed)
    cfg = load_config(None)
    with MachineLateness(cfg.fps) as machine:
        show, _, frames, _ = play(cfg, 4.0, wav, clock=FrameClock)
    assert show.music.audio.blocks > 100                    # it was working all along
    assert show.clock is not None                           # 0 late on a quiet machine
    assert show.clock.late <= 2 + machine.allowance(), (show.clock.late, machine.late)
    assert len(frames) >= 4.0 * cfg.fps - 2


@pytest.mark.slow
def test_tap_and_bpm_on_the_running_daemon(tmp_path):
    from pi_app.control import ControlClient

    env = dict(ENV, XDG_RUNTIME_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--duration", "30"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sock = tmp_path / "latentdmx" / "control.sock"
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        client = ControlClient(sock)
        assert client.request("status")["music"] == "off"        # no music configured
        t0 = time.monotonic()
        for k in range(5):                                       # 120 BPM
            time.sleep(max(0.0, t0 + 0.5 * k - time.monotonic()))
            reply = client.request("tap")
        assert reply["taps"] == 5 and abs(reply["bpm"] - 120) < 3
        time.sleep(0.2)
        st = client.request("status")
        assert st["music"] == "locked" and st["music_source"] == "tap"
        assert abs(st["bpm"] - 120) < 3
        # the beat phase runs with the taps: 0.2 s after the last tap is 0.4 of a beat
        assert 0.25 < st["beat_phase"] < 0.65 and st["bar_beat"] == 1
        r = latentdmx("bpm", "100", "--socket", str(sock), env=env)
        assert r.returncode == 0, r.stderr
        time.sleep(0.2)
        st = client.request("status")
        assert st["bpm"] == 100 and st["music_source"] == "manual"
        r = latentdmx("tap", "--once", "--socket", str(sock), env=env)
        assert r.returncode == 0 and "bpm 100" in r.stdout          # one tap re-aligns beat 1
        r = latentdmx("bpm", "5", "--socket", str(sock), env=env)
        assert r.returncode == 2 and "bpm must be 0 (follow the music) or 20..400" in r.stderr
        latentdmx("bpm", "0", "--socket", str(sock), env=env)
        time.sleep(0.2)
        assert client.request("status")["music"] == "off"
        # `latentdmx tap`: Enter on every beat (here every 0.4 s: 150 BPM), q to finish
        tapper = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "tap", "--socket",
                                   str(sock)], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert tapper.stdin is not None and tapper.stdout is not None
        prompt = tapper.stdout.readline()                        # the CLI reads its stdin now
        assert prompt.startswith("tap Enter on each beat"), prompt
        with MachineLateness(40) as machine:                     # a stall bunches the taps
            t0 = time.monotonic()
            for k in range(4):
                time.sleep(max(0.0, t0 + 0.4 * k - time.monotonic()))
                tapper.stdin.write("\n")
                tapper.stdin.flush()
            time.sleep(0.3)
        taps_out, _ = tapper.communicate("q\n", timeout=10)
        assert tapper.returncode == 0
        last = taps_out.strip().splitlines()[-1]
        assert "(4 taps)" in last, taps_out
        if machine.late == 0:                   # the taps went out 0.4 s apart, as played
            assert abs(float(last.split()[0]) - 150) < 8, taps_out
            assert abs(client.request("status")["bpm"] - 150) < 8
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


# -- config, render, views ----------------------------------------------------------------
@pytest.mark.parametrize(("toml", "field", "fix"), [
    ('[music]\nalign = "phrase"', "music.align", 'use "bar" or "beat"'),
    ("[music]\nenergy_range = [0.8, 0.2]", "music.energy_range", "0 <= low <= high <= 1"),
    ("[music]\nbeats_per_waypoint = 65", "music.beats_per_waypoint", "or 1..64"),
    ("[music]\nbpm = 5", "music.bpm", "20..400"),
    ('[audio]\ndevice = "hw:1"\nfile = "a.wav"', "audio.file", "keep one"),
    ('[music]\nenergy_to = "strobe"', "music.energy_to", '"master", "intensity" or "none"'),
])
def test_music_config_mistakes_are_one_line(tmp_path, toml, field, fix):
    text = (Path(__file__).parents[1] / "pi_app/data/default.toml").read_text()
    head = text.split("\n[audio]", 1)[0]
    fixtures = "[[fixtures]]" + text.split("\n[[fixtures]]", 1)[1]
    p = tmp_path / "rig.toml"
    p.write_text(head + toml + "\n\n" + fixtures)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.field == field and fix in (e.value.fix or "")


@pytest.mark.slow
def test_render_audio_draws_beats_and_energy_under_the_timeline(tracks, tmp_path):
    tr, wav = tracks["four_on_the_floor"]
    out, plain = tmp_path / "song.png", tmp_path / "plain.png"
    r = latentdmx("render", "--audio", str(wav), "--duration", "12", "--out", str(out),
                  "--snapshots", "0")
    assert r.returncode == 0, r.stderr
    assert latentdmx("render", "--duration", "12", "--out", str(plain),
                     "--snapshots", "0").returncode == 0
    from PIL import Image

    from pi_app.runtime import load_model
    from pi_app.views import music_lane as ml
    from pi_app.views import render as rd

    assert Image.open(out).size[1] == Image.open(plain).size[1] + ml.LANE_H + 6
    # the same picture in-process, to know where the lane is
    cfg = load_config(None)
    drive = make_drive(cfg, audio_file=str(wav), offline=True)
    drive.trace = []
    frames, times = rd.simulate(cfg, load_model(cfg.model), duration_s=12, music=drive)
    rig = Rig.from_patch(Patch(cfg))
    pic, layout = rd.timeline_with_layout(rig, frames, times, title="x", snapshots=0,
                                          music=ml.MusicLane.from_trace(drive.trace))
    img = np.asarray(pic).astype(int)
    assert np.array_equal(img[-40:], np.asarray(Image.open(out).convert("RGB"))[-40:])
    y = layout.strip_y0 + len(rig) * rd.ROW_H + 20
    x0, w, span = layout.x0, layout.width, layout.span_s
    band = img[y + 1, x0:x0 + w]
    green = np.all(band == ml.LOCK_COLOURS["locked"], axis=1)
    assert green[: int(2.0 / span * w)].sum() == 0                  # not locked at 0-2 s
    assert green[int(5.0 / span * w):int(12.0 / span * w)].mean() > 0.9   # locked from 5 s
    ticks = np.nonzero(np.all(img[y + 8, x0:x0 + w] == 255, axis=1))[0]
    tick_s = (ticks + 0.5) * span / w
    bars = tr.downbeats_s[(tr.downbeats_s > 5.0) & (tr.downbeats_s < 11.5)]
    assert len(ticks) >= len(bars)
    for b in bars:                                      # a bar tick at every bar, to a pixel
        assert np.min(np.abs(tick_s - b)) <= 1.5 * span / w, b
    energy = img[y + ml.LANE_H - 3, x0 + int(6.0 / span * w):x0 + int(11 / span * w)]
    assert np.all(energy == ml.ENERGY_COLOUR, axis=1).mean() > 0.9   # loud: energy drawn


def test_watch_header_shows_bpm_beat_and_lock():
    from pi_app.views.watch import header

    text = header({"model": "m", "fps": 40, "music": "locked", "bpm": 128.0, "bar_beat": 3,
                   "beat_phase": 0.25, "music_source": "tap"}).plain
    assert "♪ 128.0 BPM" in text and "··●·" in text and "locked (tap)" in text
    assert "BPM" not in header({"model": "m", "fps": 40}).plain


def test_make_drive_without_music_is_inactive_and_the_show_unchanged(sim, default_config):
    drive = make_drive(default_config)
    assert not drive.active and drive.audio is None
    a = sim(2.0, seed=4)
    b = sim(2.0, seed=4)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a.history, b.history, strict=True))


def test_tracker_state_is_causal(tracks):
    """The state after a block depends only on the audio so far: an offline render and a
    live show agree (the same track cut short gives the same states up to the cut)."""
    tr, _ = tracks["swing"]
    cut = mt.Track(tr.name, tr.audio[: tr.sr * 10], tr.sr, tr.beats_s, tr.downbeats_s, tr.bpm)
    _, full = track_states(tr)
    _, part = track_states(cut)
    assert part == full[: len(part)]


def test_show_status_is_json_and_carries_the_music(tracks):
    import json

    _tr, wav = tracks["four_on_the_floor"]
    cfg = load_config(None)
    show, *_ = play(cfg, 8.0, wav)
    st = show.status_snapshot
    json.dumps(st, allow_nan=False)
    assert st["music"] in ("locked", "searching") and 120 < st["bpm"] < 136
    assert set(st) >= {"beat_phase", "bar_beat", "energy", "audio", "music_source"}



@pytest.mark.slow
@pytest.mark.browser
def test_web_page_tap_button_sets_the_tempo_and_shows_it(chromium):
    """The page's Tap button, clicked in headless Chromium at 120 BPM: the daemon takes the
    tempo and the page's header shows the BPM, the beat and the lock state."""
    from test_views import TEST_TOKEN, start_web_show
    from test_views_browser import wait_for

    show, _, url = start_web_show(load_config(None))
    try:
        chromium.call("Page.navigate", url=url + "#token=" + TEST_TOKEN)
        wait_for(lambda: chromium.js("document.getElementById('model').textContent") ==
                 "nat-aurora")
        assert chromium.js("document.getElementById('music').textContent") == ""
        box = chromium.js("(() => { const r = document.getElementById('tap')"
                          ".getBoundingClientRect(); return [r.x + r.width / 2,"
                          " r.y + r.height / 2]; })()")
        t0 = time.monotonic()
        clicked = []                      # when each click was out (a busy machine delays it)
        for k in range(4):
            time.sleep(max(0.0, t0 + 0.5 * k - time.monotonic()))
            for kind in ("mousePressed", "mouseReleased"):
                chromium.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1],
                              button="left", clickCount=1)
            clicked.append(time.monotonic())
        wait_for(lambda: "locked" in chromium.js("document.getElementById('music').textContent"))
        text = chromium.js("document.getElementById('music').textContent")
        bpm = float(text.split("♪ ", 1)[1].split(" BPM")[0])
        tapped = 60.0 / float(np.median(np.diff(clicked)))     # 120 on a quiet machine
        # (the clicks are timed here when CDP has taken them, the page times them when they
        # arrive: on a busy machine the two differ by a few BPM either way)
        assert abs(bpm - tapped) < 12 and abs(bpm - 120) < 15, (text, tapped)
        assert "beat " in text and "(tap)" in text

        def page_bpm() -> float:
            shown = chromium.js("document.getElementById('music').textContent")
            return float(shown.split("♪ ", 1)[1].split(" BPM")[0])

        # the page shows the daemon's tempo (polled: a tap after the lock shows a poll later)
        wait_for(lambda: show.music.manual is not None and
                 abs(show.music.manual.bpm - page_bpm()) <= 0.05 + 1e-9)
    finally:
        show.stop()
        show._test_thread.join(5)


def test_reload_applies_music_live_and_refuses_an_audio_change(tmp_path):
    """SIGHUP: a changed [music] applies to the running show; a changed [audio] needs a
    restart (logged, the show goes on as it was)."""
    cfg_path = tmp_path / "rig.toml"
    text = DEFAULT_TOML.read_text()
    cfg_path.write_text(text)
    patch = Patch(load_config(cfg_path))
    out = SimOutput(patch.universes, blackout=patch.blackout_frames)
    show = Show(load_config(cfg_path), out, duration_s=None, control=False,
                config_path=cfg_path, clock=FastClock)
    cfg_path.write_text(text.replace("bpm = 0.0 ", "bpm = 90.0", 1))
    show._reload(1.0)
    assert show.music.cfg.bpm == 90.0 and show.music.manual is not None
    assert show.music.manual.bpm == 90.0 and show.music.active
    cfg_path.write_text(text.replace("bpm = 0.0 ", "bpm = 90.0", 1)
                        .replace('device = ""  ', 'device = "hw:1"', 1))
    show._reload(2.0)
    assert show.config.audio.device == ""            # refused: a restart is needed


@pytest.fixture
def pulse(tmp_path):
    """A private PulseAudio server with a null sink "loop": what is played into it can be
    captured from "loop.monitor" through ALSA's pulse plugin and PortAudio, as from a sound
    card. Yields the environment a client needs."""
    with private_pulse(tmp_path / "pa", dict(ENV, PULSE_SOURCE="loop.monitor")) as env:
        yield env


@pytest.mark.slow
def test_live_capture_from_a_real_portaudio_stream(tracks, heads_cfg, pulse, tmp_path):
    """Real live capture: the song is played (by paplay) into a PulseAudio null sink and the
    daemon captures its monitor through PortAudio (`[audio] device = "pulse"`), the same
    stream a USB sound card gives. The show locks to 128 BPM, and the light recorded in its
    DMX frames swings on that beat as it does not without music."""
    pytest.importorskip("sounddevice", reason="needs PortAudio", exc_type=OSError)
    _tr, wav = tracks["four_on_the_floor"]
    cfg = tmp_path / "rig.toml"
    cfg.write_text(heads_rig_text().replace('device = ""  ', 'device = "pulse"', 1))
    env = dict(pulse, XDG_RUNTIME_DIR=pulse["XDG_RUNTIME_DIR"])
    player = subprocess.Popen(["paplay", "--device=loop", str(wav)], env=env)
    rec = tmp_path / "live.txt"
    try:
        time.sleep(0.3)
        machine = MachineLateness(heads_cfg.fps).__enter__()
        proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--config", str(cfg),
                                 "--duration", "15", "--record", str(rec)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(8.0)
        st = latentdmx("status", env=env)
        assert "music          locked" in st.stdout and "device 'pulse'" in st.stdout, st.stdout
        bpm = float(st.stdout.split("bpm", 1)[1].split()[0])
        assert abs(bpm / 128.0 - 1) < 0.01
        _, err = proc.communicate(timeout=30)
    finally:
        player.kill()
        player.wait()
        machine.__exit__()
    assert proc.returncode == 0, err
    assert late_frames(err) <= 2 + machine.allowance()
    # the light accents the captured beat: folded on a 128 BPM grid (its phase is not
    # needed: the swing is the fold's peak to trough), the rig's light swings visibly, and
    # several times more than the same show's without music (heads rest between slow moves,
    # so their waypoints no longer mark every bar)
    frames, universes, _times = read_show(rec)
    as_dicts = [{u: f[k] for k, u in enumerate(universes)} for f in frames]
    live = measure(as_dicts, heads_cfg.fps, heads_cfg.path, 128.0, 6.0)
    patch = Patch(heads_cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    Show(heads_cfg, out, duration_s=15.0, control=False, clock=FastClock).run()
    free = measure(out.history, heads_cfg.fps, heads_cfg.path, 128.0, 6.0)
    assert live.swing >= 0.25 and live.swing >= 3 * free.swing, (live, free)


@pytest.mark.slow
def test_osc_foot_switch_taps_the_tempo(tmp_path):
    """`/latentdmx/tap` over OSC (a tablet's button or a foot switch) is the vocabulary's tap."""
    pytest.importorskip("pythonosc")
    import socket as sk

    from pythonosc.udp_client import SimpleUDPClient

    from pi_app.control import ControlClient

    with sk.socket(sk.AF_INET, sk.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "rig.toml"
    cfg.write_text(DEFAULT_TOML.read_text() + f'\n[osc]\nenabled = true\nport = {port}\n'
                   'allow = ["127.0.0.1"]\n')
    env = dict(ENV, XDG_RUNTIME_DIR=str(tmp_path), STATE_DIRECTORY=str(tmp_path / "state"))
    proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--config", str(cfg),
                             "--duration", "30"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        sock = tmp_path / "latentdmx" / "control.sock"
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        osc = SimpleUDPClient("127.0.0.1", port)
        t0 = time.monotonic()
        for k in range(4):                                      # 120 BPM
            time.sleep(max(0.0, t0 + 0.5 * k - time.monotonic()))
            osc.send_message("/latentdmx/tap", [])
        time.sleep(0.3)
        st = ControlClient(sock).request("status")
        assert st["music"] == "locked" and st["music_source"] == "tap", st
        assert abs(st["bpm"] - 120) < 4
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "osc 127.0.0.1" in err and "tap" in err
