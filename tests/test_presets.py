"""Presets: a round trip through the control vocabulary, a power cut (SIGKILL) during a save
that leaves the old file whole, and a recall that cross-fades, read from the DMX frames."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pi_app.clock import FastClock
from pi_app.config import default_config_path, parse_config
from pi_app.decode import Rig
from pi_app.errors import ControlError
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.presets import Preset, PresetStore, atomic_write
from pi_app.show import Show

REPO = Path(__file__).resolve().parents[1]


def _show(cfg, tmp_path, **kw) -> tuple[Show, SimOutput]:
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    kw.setdefault("control", False)
    kw.setdefault("clock", FastClock)
    return Show(cfg, out, presets_dir=tmp_path / "presets", **kw), out


def _apply(show: Show, t: float = 0.0) -> None:
    while not show._commands.empty():
        show._commands.get_nowait()(t)


def test_round_trip_save_list_recall_delete(default_config, tmp_path):
    show, _ = _show(default_config, tmp_path)
    show._live = True
    for cmd, args in (("seed", {"seed": 42}), ("tempo", {"tempo": 1.5}),
                      ("dim", {"level": 0.6})):
        show.handle_control(cmd, args)
    _apply(show)
    show.pipeline.phase = 3.25
    show.pipeline.safety.level = 0.7            # the look's own level (as a preset sets it)
    saved = show.handle_control("preset/save", {"name": "dusk"})
    path = Path(saved["file"])
    assert path.parent == tmp_path / "presets" and path.name == "dusk.json"
    data = json.loads(path.read_text())
    assert data | {"saved_at": 0} == {"schema": 1, "name": "dusk", "model": "nat-aurora",
                                      "seed": 42, "phase": 3.25, "tempo": 1.5, "master": 0.7,
                                      "palette": "", "heads_still": False, "music": {},
                                      "saved_at": 0}
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    listed = show.handle_control("preset/list", {})["presets"]
    assert [p["name"] for p in listed] == ["dusk"]
    # change everything, then recall: the look comes back
    for cmd, args in (("seed", {"seed": 1}), ("tempo", {"tempo": 3}), ("dim", {"level": 1})):
        show.handle_control(cmd, args)
    _apply(show)
    assert show.handle_control("preset/recall", {"name": "dusk"})["preset"] == "dusk"
    _apply(show, 10.0)
    p = show.pipeline
    # the look's level comes back; the master dimmer (a grand master) stays where it was
    assert (p.seed, p.phase, p.tempo, p.safety.level, p.safety.master) == (42, 3.25, 1.5, 0.7,
                                                                           1.0)
    assert show.status_snapshot["preset"] == "dusk"
    show.handle_control("preset/delete", {"name": "dusk"})
    assert not path.exists()
    with pytest.raises(ControlError, match="no preset 'dusk'"):
        show.handle_control("preset/recall", {"name": "dusk"})


def test_config_presets_are_read_only(default_config, tmp_path):
    text = default_config_path().read_text() + '[presets.calm]\nseed = 5\ntempo = 0.5\n'
    cfg = parse_config(text, "rig.toml")
    show, _ = _show(cfg, tmp_path)
    show._live = True
    names = [p["name"] for p in show.handle_control("preset/list", {})["presets"]]
    assert names == ["calm"]
    with pytest.raises(ControlError, match="defined in the config"):
        show.handle_control("preset/save", {"name": "calm"})
    with pytest.raises(ControlError, match="defined in the config"):
        show.handle_control("preset/delete", {"name": "calm"})
    show.handle_control("preset/recall", {"name": "calm", "fade_s": 0})
    _apply(show)
    assert (show.pipeline.seed, show.pipeline.tempo) == (5, 0.5)


def test_unwritable_state_folder_is_one_line(default_config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = PresetStore(blocker / "presets")
    with pytest.raises(ControlError) as exc:
        store.save(Preset("a", "nat-aurora", 1, 0.0, 1.0, 1.0))
    assert "cannot save the preset" in str(exc.value) and "\n" not in str(exc.value)


def test_power_cut_mid_save_leaves_the_old_preset_whole(tmp_path):
    """A process killed (SIGKILL) in the middle of writing a preset: the old file is intact,
    byte for byte, and the store still reads it; the next save cleans up."""
    store = PresetStore(tmp_path)
    old = Preset("dusk", "nat-aurora", 7, 1.5, 1.0, 0.8)
    store.save(old)
    before = (tmp_path / "dusk.json").read_bytes()
    child = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from pi_app.presets import atomic_write
        def chunks():
            yield b'{{"schema": 1, "name": "dusk", "model": "iae-glyphs", '
            print("half written", flush=True)
            time.sleep(60)                   # killed here: the new file is half written
            yield b'"seed": 9}}'
        atomic_write(Path({str(tmp_path / "dusk.json")!r}), chunks())
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "half written"
    temps = list(tmp_path.glob(".dusk.json.*.tmp"))
    assert len(temps) == 1                               # the new file, being written
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(5)
    assert (tmp_path / "dusk.json").read_bytes() == before
    assert store.get("dusk") == old
    assert store.names() == ["dusk"]                             # the temp file is no preset
    os.utime(temps[0], (0, 0))                                   # an old leftover
    store.save(Preset("other", "nat-aurora", 1, 0.0, 1.0, 1.0))
    assert not temps[0].exists()


@pytest.mark.slow
def test_killed_at_random_moments_never_leaves_a_broken_file(tmp_path):
    """Kill a process saving big presets in a loop at random moments: each time, the file on
    disk is one whole preset (the old or the new), never a mix or a truncation."""
    target = tmp_path / "big.json"
    atomic_write(target, [json.dumps({"n": -1, "pad": "x" * 100}).encode()])
    child = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from pi_app.presets import atomic_write
        print("go", flush=True)
        for n in range(10**6):
            body = json.dumps({{"n": n, "pad": "x" * 200000}}).encode()
            atomic_write(Path({str(target)!r}), [body])
    """)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "go"
        import time
        time.sleep(float(rng.uniform(0.05, 0.4)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        data = json.loads(target.read_bytes())           # whole JSON, or this raises
        assert data["pad"] in ("x" * 100, "x" * 200000)
        seen.add(data["n"])
    assert len(seen) > 1                                  # the saves did happen


@pytest.mark.slow
def test_recall_cross_fades_on_the_recorded_frames(default_config, tmp_path):
    """Recall at t = 4 s with a 2-s fade, against the same recall as a cut (fade 0): before
    the recall both equal the show without it; during the fade the light moves step by step
    from the old look to the new one; after it both play the same new look."""
    text = default_config_path().read_text() + (
        '[presets.other]\nmodel = "iae-glyphs"\nseed = 11\nphase = 2.0\n')
    cfg = parse_config(text, "rig.toml")
    fps = int(cfg.fps)
    k_recall = 4 * fps
    rig = Rig.from_patch(Patch(cfg))

    def run(fade_s: float | None):
        show, out = _show(cfg, tmp_path)

        def at_frame(s: Show) -> None:
            if s.frames_out == k_recall and fade_s is not None:
                s.handle_control("preset/recall", {"name": "other", "fade_s": fade_s})
        show.listeners.append(at_frame)
        show.duration_s = 10
        show.run()
        frames = np.stack([rig.frames_array(f) for f in out.history])
        return frames, rig.decode(frames).colour          # the DMX bytes, and the light

    (plain, plain_c), (fade, fade_c), (cut, cut_c) = run(None), run(2.0), run(0.0)
    np.testing.assert_array_equal(fade[:k_recall], plain[:k_recall])
    np.testing.assert_array_equal(cut[:k_recall], plain[:k_recall])
    # the light, frame by frame: away from the old look and onto the new one, linearly
    # over the 2 s (the cut is the new look as soon as the safety stage lets it be). On the
    # fixtures that do not move: a moving head whose aim the recall moves goes dark, moves
    # and comes back (moves.py), in its own time
    still = [i for i, f in enumerate(rig.fixtures) if not f.moves]
    plain_c, fade_c, cut_c = plain_c[:, still], fade_c[:, still], cut_c[:, still]
    ks = np.arange(k_recall, k_recall + 2 * fps + 1, fps // 4)
    d_old = np.array([np.abs(fade_c[k] - plain_c[k]).mean() for k in ks])
    d_new = np.array([np.abs(fade_c[k] - cut_c[k]).mean() for k in ks])
    # (the rig-wide flash limit couples the pars to the heads' dimming: the approach to the
    # new look is monotonic over the fade's second half)
    assert np.all(np.diff(d_old) > 0) and np.all(np.diff(d_new[len(ks) // 2:]) < 0)
    assert d_new[-1] < 0.01 and d_old[-1] > 0.1                  # ends on the new look
    mid = len(ks) // 2
    assert 0.3 < d_old[mid] / d_old[-1] < 0.7                      # halfway: half and half
    # the cut is most of the way there within 0.2 s; the fade is not
    k = k_recall + fps // 5
    assert np.abs(fade_c[k] - plain_c[k]).mean() < 0.3 * np.abs(cut_c[k] - plain_c[k]).mean()
    # after it (and after any head that moved in the dark is back): one show, byte for byte
    np.testing.assert_array_equal(fade[k_recall + 4 * fps:], cut[k_recall + 4 * fps:])
