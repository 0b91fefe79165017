"""A private PulseAudio server for the music tests: a null sink "loop" (no sound card), its
own runtime folder and home, so nothing reaches or reads the user's sound. What is played
into "loop" can be captured from "loop.monitor" (PortAudio through ALSA's pulse plugin, or
parecord), as from a sound card."""
from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def private_pulse(folder: Path, env: dict[str, str], *, needs: str = "paplay",
                  default_sink: bool = False) -> Iterator[dict[str, str]]:
    """Start it in `folder`; yields `env` with the client's variables set. `needs`: the
    pulseaudio-utils command the test uses; `default_sink`: make "loop" the default output
    (a player that does not name a sink plays into it). Skips when PulseAudio is missing or
    does not start."""
    if not (shutil.which("pulseaudio") and shutil.which(needs)):
        pytest.skip("needs pulseaudio and pulseaudio-utils (scripts/test.sh installs them)")
    (folder / "home").mkdir(parents=True)
    env = dict(env, XDG_RUNTIME_DIR=str(folder), HOME=str(folder / "home"))
    args = ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no",
            "--load=module-native-protocol-unix",
            "--load=module-null-sink sink_name=loop rate=44100"]
    if default_sink:
        args.append("--load=module-always-sink")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["pactl", "info"], env=env, capture_output=True,
                             check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip("pulseaudio did not start here")
            time.sleep(0.1)
        if default_sink:
            subprocess.run(["pactl", "set-default-sink", "loop"], env=env, check=False)
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=10)
