"""`latentdmx render --fseq`: the show as an FSEQ v2 file, read back by a reader written here
from FPP's ``docs/FSEQ_Sequence_File_Format.txt`` (not from the writer's code), frame for frame
equal to the simulator's recording of the same seed and duration."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import zstandard
from procs import interruptible

from pi_app.errors import ConfigError
from pi_app.sim.fseq import FseqWriter
from pi_app.sim.record import read_show

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "LATENTDMX_FAKE_CLOCK": "1"}

RIG = """
fps = 40
[control]
enabled = false
[[fixtures]]
name = "head"
profile = "lumeri-wash-7-10"
mode = "14ch"
universe = {u1}
address = 1
position = [0.3, 0.3]
[[fixtures]]
name = "par"
profile = "generic-rgbw-par"
mode = "4ch"
universe = {u2}
address = 300
position = [0.7, 0.6]
"""


def read_fseq(path: Path) -> dict:
    """An FSEQ v2 file as the spec describes it (all numbers little-endian)."""
    raw = path.read_bytes()
    assert raw[:4] == b"PSEQ"
    data_offset, minor, major, hdr_len = struct.unpack_from("<HBBH", raw, 4)
    channels, n_frames = struct.unpack_from("<II", raw, 10)
    step, flags = raw[18], raw[19]
    comp = raw[20] & 0x0F
    n_blocks = (raw[20] & 0xF0) << 4 | raw[21]          # 12 bits: 4 high, then 8 low
    n_ranges, flags2 = raw[22], raw[23]
    pos = 32
    blocks = []
    for _ in range(n_blocks):
        first, length = struct.unpack_from("<II", raw, pos)
        pos += 8
        blocks.append((first, length))
    ranges = []
    for _ in range(n_ranges):
        ranges.append((int.from_bytes(raw[pos:pos + 3], "little"),
                       int.from_bytes(raw[pos + 3:pos + 6], "little")))
        pos += 6
    assert pos == hdr_len
    variables = {}
    while pos + 4 <= data_offset:
        length = struct.unpack_from("<H", raw, pos)[0]
        if length < 4:
            break                                       # padding to the data offset
        code = raw[pos + 2:pos + 4].decode()
        variables[code] = raw[pos + 4:pos + length].rstrip(b"\x00").decode()
        pos += length
    frames = []
    at = data_offset
    used = [(f, n) for f, n in blocks if n > 0]
    for i, (first, length) in enumerate(used):
        assert comp == 1
        data = zstandard.ZstdDecompressor().decompress(raw[at:at + length],
                                                       max_output_size=1 << 30)
        at += length
        count = (used[i + 1][0] if i + 1 < len(used) else n_frames) - first
        assert len(data) == count * channels and first == len(frames)
        frames += [data[k * channels:(k + 1) * channels] for k in range(count)]
    assert at == len(raw) and len(frames) == n_frames
    return {"major": major, "minor": minor, "channels": channels, "step_ms": step,
            "flags": (flags, flags2), "compression": comp, "blocks": blocks, "ranges": ranges,
            "vars": variables, "frames": frames, "data_offset": data_offset}


def record(tmp_path: Path, rig: Path, seed: int, duration: float) -> tuple[np.ndarray, tuple]:
    """What the simulator records (`run --record`, virtual time)."""
    rec = tmp_path / "sim.show"
    env = {**ENV, "STATE_DIRECTORY": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-m", "pi_app.cli", "run", "--config", str(rig),
                           "--seed", str(seed), "--duration", str(duration), "--record",
                           str(rec)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    frames, universes, _ = read_show(rec)
    return frames, universes


def render(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**ENV, "STATE_DIRECTORY": str(tmp_path / "state")}
    return subprocess.run([sys.executable, "-m", "pi_app.cli", "render", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("u1, u2, ranges", [
    (1, 2, []),                                          # from channel 1: no sparse range
    (2, 5, [(512, 512), (2048, 512)]),                   # sparse: two ranges
])
@pytest.mark.slow
def test_every_frame_equals_the_simulators_recording(tmp_path, u1, u2, ranges):
    rig = tmp_path / "rig.toml"
    rig.write_text(RIG.format(u1=u1, u2=u2))
    want, universes = record(tmp_path, rig, seed=4, duration=3)
    out = tmp_path / "show.fseq"
    done = render(tmp_path, "--config", str(rig), "--seed", "4", "--duration", "3",
                  "--fseq", str(out))
    assert done.returncode == 0, done.stderr
    f = read_fseq(out)
    assert (f["major"], f["minor"], f["compression"], f["step_ms"]) == (2, 0, 1, 25)
    assert f["ranges"] == ranges and f["channels"] == 1024
    assert f["data_offset"] % 4 == 0 and f["vars"]["sp"].startswith("LatentDMX")
    assert "mf" not in f["vars"]
    assert universes == (u1, u2) and len(f["frames"]) == len(want) > 100
    got = np.frombuffer(b"".join(f["frames"]), np.uint8).reshape(len(want), 2, 512)
    assert np.array_equal(got, want)
    assert any(got[:, 1].ravel()) and not any(got[-1, 1])   # the par lit, then dark
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".show.fseq")]


@pytest.mark.slow
def test_audio_names_the_media_file(tmp_path):
    pytest.importorskip("aubio", reason="needs the music extra")
    pytest.importorskip("soundfile", reason="needs the music extra")
    song = tmp_path / "song.wav"
    sr = 22050
    t = np.arange(int(sr * 2.5)) / sr
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(song), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    out = tmp_path / "song.fseq"
    done = render(tmp_path, "--audio", str(song), "--duration", "2", "--fseq", str(out))
    assert done.returncode == 0, done.stderr
    assert read_fseq(out)["vars"]["mf"] == "song.wav"


def test_more_than_255_blocks_is_fseq_2_1_with_12_bit_block_count(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (300, 1, 512), dtype=np.uint8)
    out = tmp_path / "long.fseq"
    with FseqWriter(out, universes=[3], fps=20, max_frames=80_000) as w:
        w.frames_per_block = 1                         # (a block a frame: 300 blocks)
        for f in frames:
            w.write(f)
    f = read_fseq(out)
    assert f["minor"] == 1 and f["step_ms"] == 50 and f["ranges"] == [(1024, 512)]
    assert len(f["blocks"]) == w.max_blocks and sum(n > 0 for _, n in f["blocks"]) == 300
    assert [bytes(x) for x in f["frames"]] == [fr.tobytes() for fr in frames]


def test_an_error_midway_leaves_no_file(tmp_path):
    out = tmp_path / "x.fseq"
    with pytest.raises(RuntimeError), FseqWriter(out, universes=[1], fps=40,
                                                 max_frames=100) as w:
        w.write(np.zeros((1, 512), np.uint8))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_leaves_no_file(tmp_path):
    """A long render interrupted (SIGINT, as Ctrl-C): nothing under the name, no part file."""
    out = tmp_path / "long.fseq"
    env = {**ENV, "STATE_DIRECTORY": str(tmp_path / "state")}
    proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "render", "--duration",
                             "3600", "--fseq", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(tmp_path.glob(".long.fseq.*")):
        time.sleep(0.1)
    assert any(tmp_path.glob(".long.fseq.*")), "the render never started writing"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"] or \
        [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.parametrize("args, field, fix", [
    (["--fps", "44"], "--fps", "40, 25 or 20"),
    (["--duration", "0"], "--duration", "seconds"),
    (["--out", "x.png"], "--fseq", "drop --out"),
])
@pytest.mark.slow
def test_bad_export_is_one_line(tmp_path, args, field, fix):
    done = render(tmp_path, "--fseq", str(tmp_path / "x.fseq"), *args)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{field}: " in lines[0] and fix in lines[0], done.stderr
    assert not list(tmp_path.glob("*.fseq")) and not list(tmp_path.glob(".x.fseq*"))


@pytest.mark.slow
def test_config_fps_and_universe_0_are_one_line(tmp_path):
    rig = tmp_path / "rig.toml"
    rig.write_text(RIG.format(u1=1, u2=2).replace("fps = 40", "fps = 44"))
    done = render(tmp_path, "--config", str(rig), "--fseq", str(tmp_path / "x.fseq"))
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
    assert f"{rig}: fps: " in done.stderr
    rig.write_text(RIG.format(u1=0, u2=2))
    done = render(tmp_path, "--config", str(rig), "--fseq", str(tmp_path / "x.fseq"))
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
    assert "universe 0" in done.stderr and "fixtures" in done.stderr
    with pytest.raises(ConfigError, match="universe 0"):
        FseqWriter(tmp_path / "y.fseq", universes=[0, 1], fps=40, max_frames=10)
    with pytest.raises(ConfigError, match="universe 32769 is past"):
        FseqWriter(tmp_path / "y.fseq", universes=[1, 32769], fps=40, max_frames=10)
    FseqWriter(tmp_path / "y.fseq", universes=[32768], fps=40, max_frames=10)   # the last
    assert not list(tmp_path.glob("*.fseq"))


@pytest.mark.slow
def test_the_daemon_never_imports_zstandard(tmp_path):
    """Only the export loads zstandard: a show played through `run`'s code path does not."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from pi_app.cli import main\n"
        "r = CliRunner().invoke(main, ['run', '--duration', '0.5'])\n"
        "assert r.exit_code == 0, r.output\n"
        "import pi_app.commands.views, pi_app.fpp, pi_app.outputs.ddp\n"
        "assert 'zstandard' not in sys.modules, 'zstandard imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**ENV, "STATE_DIRECTORY": str(tmp_path / "s"),
                                            "RUNTIME_DIRECTORY": str(tmp_path / "r")})
    assert done.returncode == 0, done.stderr
