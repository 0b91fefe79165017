"""OlaOutput against a real olad (tests/olad_fixture.py): delivery, universe map, blackout on
close, olad down at start, olad SIGKILLed and restarted mid-stream, olad hung."""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
import time
from typing import Self

import numpy as np
import pytest

from pi_app.clock import FastClock, FrameClock
from pi_app.errors import OutputError
from pi_app.outputs.ola import OlaOutput, OlaQuery, import_ola
from pi_app.outputs.ola_wire import Wire

pytest_plugins = ["tests.olad_fixture"]      # the `olad` and `ola_config` fixtures
pytestmark = pytest.mark.olad


def frame(value: int, n: int = 512) -> np.ndarray:
    f = np.zeros(512, dtype=np.uint8)
    f[:n] = (np.arange(n) + value) % 256
    return f


class Streamer:
    """Sends a new frame at `fps` from a thread, like the show; times every send()."""

    def __init__(self, out: OlaOutput, universe: int = 1, fps: float = 40.0) -> None:
        self.out, self.universe, self.period = out, universe, 1.0 / fps
        self.value = 0
        self.max_send_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        k = 0
        while not self._stop.is_set():
            self.value = (self.value + 1) % 256
            t = time.perf_counter()
            self.out.send({self.universe: frame(self.value, 16)})
            self.max_send_s = max(self.max_send_s, time.perf_counter() - t)
            k += 1
            self._stop.wait(max(0.0, t0 + k * self.period - time.monotonic()))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def wait_for(predicate, timeout_s: float, step_s: float = 0.01) -> float | None:
    """Seconds until predicate() held, or None on timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if predicate():
            return time.monotonic() - t0
        time.sleep(step_s)
    return None


def test_frames_arrive_and_read_back_with_fetchdmx(olad, ola_config):
    with OlaOutput([1], config=ola_config) as out:
        out.send({1: frame(7)})
        got = olad.wait_dmx(lambda f: np.array_equal(f, frame(7)))
        assert np.array_equal(got, frame(7))
        with OlaQuery("127.0.0.1", olad.rpc_port) as q:      # OLA's own client: FetchDmx
            assert np.array_equal(q.dmx(1), frame(7))
        h = out.health()
        assert h["connected"] and h["ok"] and h["reconnects"] == 0 and h["delivered"] >= 1


@pytest.mark.parametrize("ack_every_s", [0.0, 60.0])
def test_frames_prepared_ahead_reach_olad_as_sent(olad, ola_config, ack_every_s):
    """`prepare` packs the StreamDmxData bytes ahead (pi_app/ahead.py's frames); they are the
    bytes `send` would write, and olad shows the frame, streamed or acknowledged."""
    with OlaOutput([1], config=ola_config, ack_every_s=ack_every_s) as out:
        out.send({1: frame(1)})
        assert wait_for(lambda: out.health()["connected"], 5)
        for value in (7, 8):
            src = frame(value)
            ready = out.prepare({1: src})
            assert ready.packed[1] == Wire().stream_template(1).frame(src.tobytes())
            src[:] = 0                                   # the show reuses its buffer
            out.send(ready)
            got = olad.wait_dmx(lambda f, v=value: np.array_equal(f, frame(v)))
            assert np.array_equal(got, frame(value))
            assert np.array_equal(out.last_frames[1], frame(value))
        assert out.health()["delivered"] == 3


def test_universe_map_sends_rig_universe_to_ola_universe(olad, ola_config):
    cfg = dataclasses.replace(ola_config, universe_map={"5": 1})
    with OlaOutput([5], config=cfg) as out:
        out.send({5: frame(42)})
        assert np.array_equal(olad.wait_dmx(lambda f: f[0] == 42), frame(42))


def test_blackout_is_sent_on_close(olad, ola_config):
    def blackout(frames):          # like the patch: light slots 0, slot 0 (pan) held
        return {u: np.where(np.arange(512) == 0, f, 0).astype(np.uint8)
                for u, f in frames.items()}

    out = OlaOutput([1], config=ola_config, blackout=blackout).open()
    lit = np.full(512, 200, dtype=np.uint8)
    out.send({1: lit})
    olad.wait_dmx(lambda f: f[5] == 200)
    out.close()
    got = olad.get_dmx()        # close() returns after olad acknowledged the blackout
    assert got[0] == 200 and not got[1:].any()
    out.close()                 # idempotent


def test_unpatched_universe_is_refused_but_does_not_disconnect(olad, ola_config, caplog):
    with OlaOutput([1, 9], config=ola_config) as out:
        out.send({1: frame(3), 9: frame(3)})
        assert wait_for(lambda: out.health()["refused"] >= 1, 5)
        assert out.health()["connected"]
        # logged by the sender thread just after it counts the refusal (a slow CPU sees between)
        assert wait_for(lambda: "refused universe 9" in caplog.text, 5) is not None, caplog.text


def test_olad_down_at_start_then_up():
    from pi_app.config import OlaConfig
    from tests.olad_fixture import Olad, olad_missing_reason

    reason = olad_missing_reason()
    if reason:
        pytest.skip(reason)
    daemon = Olad()
    try:
        cfg = OlaConfig(port=daemon.rpc_port, retry_max_s=1.0)
        with OlaOutput([1], config=cfg) as out:
            t = time.perf_counter()
            out.send({1: frame(9)})
            # never blocks the caller: a send that waited for the first retry would take its
            # back-off (0.1 s); the margin under it is for a busy machine's scheduling
            assert time.perf_counter() - t < 0.09
            assert wait_for(lambda: out.health()["last_error"] is not None, 3)
            assert not out.health()["connected"]
            daemon.start()
            out.send({1: frame(9)})
            got = daemon.wait_dmx(lambda f: np.array_equal(f, frame(9)), timeout_s=5)
            assert np.array_equal(got, frame(9))
            # (olad shows the frame before its ack reaches the output's sender thread)
            assert wait_for(lambda: out.health()["connected"], 3)
    finally:
        daemon.cleanup()


@pytest.mark.slow
def test_olad_killed_mid_show_is_noticed_without_spinning_and_resumes(olad, ola_config,
                                                                     caplog):
    cfg = dataclasses.replace(ola_config, retry_max_s=2.0)      # the shipped default
    with OlaOutput([1], config=cfg) as out, Streamer(out) as show:
        assert wait_for(lambda: olad.get_dmx()[0] != 0, 5) is not None
        olad.kill(signal.SIGKILL)
        noticed = wait_for(lambda: not out.health()["connected"], 5)
        assert noticed is not None and noticed <= 5.0, "olad's death not noticed in 5 s"
        # While olad is down (and the show keeps sending at 40 fps): no spinning.
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(2.5)
        cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        assert cpu < 0.20, f"process used {cpu:.0%} of a core while olad was down"
        olad.start()
        back = wait_for(lambda: out.health()["connected"], 6)
        assert back is not None and back <= 2.0 + 1.5, f"reconnected after {back} s"
        v = show.value
        assert daemon_follows(olad, show, v), "frames do not flow after olad's restart"
        assert out.health()["reconnects"] == 1
        assert show.max_send_s < 0.05, f"send() blocked for {show.max_send_s * 1e3:.1f} ms"
    assert "lost olad" in caplog.text and "reconnected to olad" in caplog.text
    print(f"\ndeath noticed in {noticed * 1e3:.0f} ms, CPU while down {cpu:.1%}, "
          f"reconnected {back:.2f} s after olad was up")


@pytest.mark.slow
def test_olad_death_noticed_while_idle_without_spinning(olad, ola_config):
    """OLA's own client misses this (it idles in Run() and spins at 100 %): we must not."""
    with OlaOutput([1], config=ola_config) as out:
        out.send({1: frame(1)})
        assert wait_for(lambda: out.health()["connected"], 5) is not None
        time.sleep(0.2)                                   # idle: nothing in flight
        olad.kill(signal.SIGKILL)
        noticed = wait_for(lambda: not out.health()["connected"], 5)
        assert noticed is not None and noticed < 2.0
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(1.5)
        cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        assert cpu < 0.10, f"{cpu:.0%} of a core while olad was down and nothing was sent"


def daemon_follows(olad, show: Streamer, after_value: int) -> bool:
    """True when olad shows a frame the streamer made after `after_value`."""
    def newer() -> bool:
        f = olad.get_dmx()
        return f[0] != 0 and f[0] != after_value and np.array_equal(f[:16], frame(f[0], 16)[:16])
    return wait_for(newer, 5) is not None


@pytest.mark.slow
def test_hung_olad_is_a_disconnect_and_send_never_blocks(olad, ola_config):
    with OlaOutput([1], config=ola_config, ack_timeout_s=0.5) as out, Streamer(out) as show:
        assert wait_for(lambda: olad.get_dmx()[0] != 0, 5) is not None
        olad.proc.send_signal(signal.SIGSTOP)
        try:
            assert wait_for(lambda: not out.health()["connected"], 5) is not None
        finally:
            olad.proc.send_signal(signal.SIGCONT)
        assert wait_for(lambda: out.health()["connected"], 5) is not None
        assert daemon_follows(olad, show, show.value)
        assert show.max_send_s < 0.05


def test_missing_ola_python_is_one_line_with_the_fix(monkeypatch):
    import pi_app.outputs.ola as ola_mod

    for name in [m for m in sys.modules if m == "ola" or m.startswith("ola.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(ola_mod, "DEBIAN_OLA_DIRS", ())
    monkeypatch.delenv("LATENTDMX_OLA_PYTHON", raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "dist-packages" not in p])
    with pytest.raises(OutputError) as err:
        import_ola()
    msg = str(err.value)
    assert "\n" not in msg and "apt-get install ola ola-python" in msg and "protobuf<6" in msg


def test_debian_module_found_off_sys_path():
    import os

    if not os.path.isdir("/usr/lib/python3/dist-packages/ola"):
        pytest.skip("needs Debian's ola-python")
    def debian_dirs() -> list[str]:
        return [p for p in sys.path
                if p.startswith("/usr/lib/python3/") and p.rstrip("/").endswith("dist-packages")]

    # A venv made with --system-site-packages (as docs/raspberry-pi.md makes it) has Debian's
    # folder on sys.path already; import_ola must not add it where it was not.
    before = debian_dirs()
    mod = import_ola()
    assert hasattr(mod, "OlaClient")
    assert debian_dirs() == before


class OlaWatcher:
    """A second OLA client, registered for a universe: records every frame olad pushes."""

    def __init__(self, port: int, universe: int = 1) -> None:
        import select
        import socket

        self._select = select.select
        mod = import_ola()
        self.frames: list[np.ndarray] = []
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        self._client = mod.OlaClient(self._sock)
        registered = threading.Event()
        self._client.RegisterUniverse(
            universe, mod.OlaClient.REGISTER,
            data_callback=lambda data: self.frames.append(np.array(data, dtype=np.uint8)),
            callback=lambda status: registered.set())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert registered.wait(5), "could not register with olad"

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = self._select([self._sock], [], [], 0.05)
            if ready:
                self._client.SocketReady()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


def _dedupe(frames: list[np.ndarray]) -> list[bytes]:
    out: list[bytes] = []
    for f in frames:
        b = np.pad(f, (0, 512 - len(f))).tobytes()
        if not out or out[-1] != b:
            out.append(b)
    return out


class _NoSkipClock(FrameClock):
    """A real-time frame clock that never skips a late frame (on a loaded machine the show
    through olad would skip frames the simulator's show computed, and differ)."""

    def wait(self) -> int:
        k = self.frame
        delay = self.due(k) - self.now()
        if delay > 0:
            self._stop.wait(delay)
        self.frame = k + 1
        return k


@pytest.mark.slow
def test_show_through_olad_matches_the_simulator(olad, ola_config):
    from pi_app.config import load_config
    from pi_app.outputs.sim import SimOutput
    from pi_app.patch import Patch
    from pi_app.show import Show

    cfg = load_config(None)
    cfg = cfg.replace(output=dataclasses.replace(cfg.output, ola=ola_config))
    patch = Patch(cfg)
    sim = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
    Show(cfg, sim, seed=7, duration_s=1.5, control=False, clock=FastClock).run()
    expected = _dedupe([f[1] for f in sim.history])

    watcher = OlaWatcher(olad.rpc_port)
    try:
        out = OlaOutput(patch.universes, config=ola_config, blackout=patch.blackout_frames)
        Show(cfg, out, seed=7, duration_s=1.5, control=False, clock=_NoSkipClock).run()
        time.sleep(0.2)
    finally:
        watcher.close()
    got = _dedupe(watcher.frames)
    assert len(expected) > 20 and got, (len(expected), len(got))
    assert got[-1] == expected[-1]                       # the show ends on the same blackout
    it = iter(expected)                                  # every frame olad saw, in order,
    assert all(any(g == e for e in it) for g in got)     # is one the simulator made
    assert len(got) >= 0.8 * len(expected), f"only {len(got)} of {len(expected)} frames"
    assert out.health()["dropped"] <= 0.05 * len(expected)
    print(f"\nolad saw {len(got)} of the simulator's {len(expected)} distinct frames")


def _light_slots(patch) -> np.ndarray:
    from pi_app.fixtures.profile import LIGHT_KINDS

    return np.array([f.address - 1 + j for f in patch.fixtures
                     for j, ch in enumerate(f.mode.channels) if ch.attr in LIGHT_KINDS])


class Boom(RuntimeError):
    pass


@pytest.mark.slow
def test_exception_in_the_frame_loop_leaves_olad_dark(olad, ola_config):
    from pi_app.config import load_config
    from pi_app.patch import Patch
    from pi_app.show import Show

    cfg = load_config(None)
    cfg = cfg.replace(safety=dataclasses.replace(cfg.safety, fade_in_s=0.0))
    patch = Patch(cfg)
    light = _light_slots(patch)
    out = OlaOutput(patch.universes, config=ola_config, blackout=patch.blackout_frames)
    show = Show(cfg, out, seed=3, control=False)

    def explode(s) -> None:
        if s.status_snapshot.get("frames", 0) >= 20:
            raise Boom("model exploded")

    show.listeners.append(explode)
    lit = []
    show.listeners.insert(0, lambda s: lit.append(olad.get_dmx()[light].any()))
    with pytest.raises(Boom):
        show.run()
    assert any(lit), "the show never lit anything: the test would prove nothing"
    f = olad.get_dmx()
    assert not f[light].any() and f[0] != 0               # dark, heads held where they were


@pytest.mark.slow
def test_sigterm_to_latentdmx_run_leaves_olad_dark(olad, tmp_path):
    import os
    import subprocess

    from pi_app.config import default_config_path, load_config
    from pi_app.patch import Patch

    text = default_config_path().read_text().replace("port = 9010 ", f"port = {olad.rpc_port} ")
    text = text.replace("fade_in_s = 1.0", "fade_in_s = 0.0")
    cfg_path = tmp_path / "rig.toml"
    cfg_path.write_text(text)
    light = _light_slots(Patch(load_config(cfg_path)))
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--output", "ola",
                             "--config", str(cfg_path), "--seed", "5"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert olad.wait_dmx(lambda f: f[light].any(), timeout_s=20)[light].any(), \
            "the show never lit anything"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    assert not olad.get_dmx()[light].any()
