"""A recording that runs out of room: on a real, small file system (a tmpfs of 256 KB the test
mounts) and under a file-size limit (RLIMIT_FSIZE). The show goes on to its end, one log
line says the recording stopped, and the file holds the frames written so far, readable."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pi_app.sim.record import ShowRecorder, read_show

ROOT = Path(__file__).resolve().parents[1]
FPS = 40
SECONDS = 10


@pytest.fixture
def tiny_fs(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    if subprocess.run(["umount", str(mnt)], check=False).returncode:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def run_recording(path: Path, tmp_path: Path, preexec=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, LATENTDMX_FAKE_CLOCK="1", XDG_RUNTIME_DIR=str(tmp_path),
               PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pi_app.cli", "run", "--duration", str(SECONDS),
                           "--fps", str(FPS), "--record", str(path)], capture_output=True,
                          text=True, env=env, timeout=120, preexec_fn=preexec, check=False)


def check(r: subprocess.CompletedProcess, path: Path) -> None:
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    stopped = [ln for ln in r.stderr.splitlines() if "recording stopped" in ln]
    assert len(stopped) == 1, r.stderr
    assert str(path) in stopped[0] and "the show goes on" in stopped[0]
    # the show played to its end (its last log line counts every frame)
    last = [ln for ln in r.stderr.splitlines() if "stopped after" in ln and "late" in ln]
    frames = int(last[-1].split("stopped after ")[1].split()[0])
    assert frames >= SECONDS * FPS
    # what was recorded is a whole, readable show file under the real name
    assert path.exists() and not path.with_name(path.name + ".part").exists()
    got, universes, times = read_show(path)
    assert universes == (1,) and 20 <= len(got) < frames
    assert np.allclose(np.diff(times), 1 / FPS, atol=0.0011)
    assert path.read_bytes().endswith(b"\n")


@pytest.mark.slow
def test_full_disk_stops_the_recording_not_the_show(tiny_fs, tmp_path):
    path = tiny_fs / "show.txt"
    check(run_recording(path, tmp_path), path)


def test_file_size_limit_stops_the_recording_not_the_show(tmp_path):
    path = tmp_path / "show.txt"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    check(run_recording(path, tmp_path, preexec=limit), path)


def test_a_frame_cut_in_half_is_dropped(tiny_fs):
    """The file ends at the last whole frame, even when a write stops mid-frame."""
    rec = ShowRecorder(tiny_fs / "cut.txt", FPS)
    frame = {1: np.arange(512, dtype=np.uint16).astype(np.uint8)}
    k = 0
    while rec.failed is None:
        rec.write(frame, k / FPS)
        k += 1
    rec.write(frame, k / FPS)                      # after a failure: ignored
    assert rec.close() == tiny_fs / "cut.txt"
    frames, _, _ = read_show(tiny_fs / "cut.txt")
    assert len(frames) == rec.written and rec.written > 50
    assert np.array_equal(frames[-1, 0], frame[1])
    assert "No space left" in rec.failed


@pytest.mark.slow
def test_last_frames_on_a_full_run_dir_are_refused_not_a_crash(tiny_fs):
    """The last-frames file is an mmap in /run: on a full tmpfs its pages must be had at
    open (one warning), never by a SIGBUS in the middle of the show."""
    (tiny_fs / "filler").write_bytes(b"\0" * (256 * 1024 - 4096))     # all but one page
    code = (f"from pathlib import Path\nimport numpy as np\n"
            f"from pi_app.laststate import LastFramesWriter\n"
            f"try:\n"
            f"    w = LastFramesWriter(Path({str(tiny_fs / 'last.bin')!r}), ['sim'], "
            f"range(1, 41), {{}})\n"
            f"    w.write({{u: np.full(512, 7, np.uint8) for u in range(1, 41)}})\n"
            f"    print('wrote')\n"
            f"except OSError as exc:\n"
            f"    print('refused', exc.errno)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)
    assert r.returncode == 0, (r.returncode, r.stderr)          # -7 would be SIGBUS
    assert r.stdout.strip() == "refused 28"                     # ENOSPC
