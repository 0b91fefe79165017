"""The show: the frame loop that drives a `Pipeline` into an `Output` on the frame clock.

``Show(config, output, model=..., seed=..., duration_s=..., record_path=...).run()`` blocks
until the show stops and returns the exit code. Stop (Ctrl-C, SIGTERM, `stop()`, the end of
``--duration``): fade-out over ``safety.fade_out_s``, then a blackout frame, flushed, then 0.
An exception in the frame loop: blackout at once, then the exception propagates (the CLI exits
non-zero). The control socket's requests are validated on its own thread and applied by the
frame loop between frames, so a client can never stall the clock.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from .clock import FastClock, FrameClock
from .config import Config, load_config
from .errors import ControlError, LatentDMXError
from .outputs import Output
from .pipeline import Pipeline
from .runtime import Model, load_model
from .sim.record import ShowRecorder

log = logging.getLogger("latentdmx")


class Show:
    def __init__(self, config: Config, output: Output, *, model: Model | None = None,
                 seed: int | None = None, duration_s: float | None = None,
                 record_path: str | Path | None = None, control: bool | None = None,
                 config_path: str | Path | None = None,
                 clock: Callable[..., FrameClock] = FrameClock,
                 audio: str | Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.output = output
        model = model or load_model(config.model)
        self.pipeline = Pipeline(config, model, seed=seed)
        from .music import make_drive  # music: `--audio FILE` / [audio] (README "Music")
        offline = isinstance(clock, type) and issubclass(clock, FastClock)
        self.music = make_drive(config, audio_file=str(audio) if audio else None,
                                offline=offline)
        self.pipeline.music = self.music
        self.fps = config.fps
        self.duration_s = duration_s
        self.record_path = record_path
        self.control_enabled = config.control.enabled if control is None else control
        self._commands: queue.SimpleQueue[Callable[[float], None]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop_requested = False
        self._reload_requested = False
        self._started = time.monotonic()
        self._times: deque[float] = deque(maxlen=int(self.fps * 5) + 1)
        self._make_clock = clock      # FrameClock; FastClock (virtual time) for tests
        self.clock: FrameClock | None = None
        self.frames_out = 0          # frames sent so far (the loop's only per-frame bookkeeping)
        self._live = False           # the output is open: status has something to say
        self.listeners: list[Callable[[Show], None]] = []   # called after each frame (viewers)

    @property
    def status_snapshot(self) -> dict:
        """What `latentdmx status` shows; built when asked, never in the frame loop.

        Safe from other threads: it only reads numbers and references the loop replaces."""
        return self._status(self.frames_out - 1) if self._live else {}

    # -- called from other threads ------------------------------------------------------
    def stop(self) -> None:
        """Ask for a clean stop (fade-out, blackout). Safe from signal handlers and threads."""
        self._stop_requested = True
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested = True

    def handle_control(self, cmd: str, args: dict) -> dict:
        """The control socket's handler: validate here, apply between frames."""
        p = self.pipeline

        def number(name: str, lo: float, hi: float) -> float:
            v = args.get(name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
                raise ControlError(f"{name} must be a number in {lo:g}..{hi:g}", field=cmd,
                                   fix=f"e.g. `latentdmx {cmd} {hi / 2:g}`")
            return float(v)

        if cmd == "status":
            return self.status_snapshot
        if cmd == "dim":
            level = number("level", 0.0, 1.0)
            self._commands.put(lambda t: setattr(p.safety, "master", level))
            return {"master": level}
        if cmd == "pause":
            self._commands.put(lambda t: setattr(p, "paused", True))
            return {"paused": True}
        if cmd == "resume":
            def resume(t: float) -> None:
                p.paused = False
                p.blacked_out = False
            self._commands.put(resume)
            return {"paused": False, "blackout": False}
        if cmd == "blackout":
            on = bool(args.get("on", True))
            self._commands.put(lambda t: setattr(p, "blacked_out", on))
            return {"blackout": on}
        if cmd == "seed":
            seed = args.get("seed")
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ControlError("seed must be a whole number >= 0", field="seed",
                                   fix="e.g. `latentdmx seed 7`")
            self._commands.put(lambda t: p.set_seed(seed))
            return {"seed": seed}
        if cmd == "tempo":
            tempo = number("tempo", 0.01, 100.0)
            self._commands.put(lambda t: setattr(p, "tempo", tempo))
            return {"tempo": tempo}
        if cmd == "model":
            name = args.get("name")
            if not isinstance(name, str) or not name:
                raise ControlError("model needs a name", field="model",
                                   fix="e.g. `latentdmx model iae-glyphs`")
            model = load_model(name)            # loads on the control thread, not the loop
            self._commands.put(lambda t: p.set_model(model, t))
            return {"model": model.info.name}
        if cmd == "tap":                        # tap tempo: the time it arrived is the beat
            clock = self.clock
            t_tap = time.monotonic() - clock.start_s if clock is not None else 0.0
            return self.music.tap(t_tap)
        if cmd == "bpm":
            bpm = number("bpm", 0.0, 400.0)
            if 0 < bpm < 20:
                raise ControlError("bpm must be 0 (follow the music) or 20..400", field="bpm",
                                   fix="e.g. `latentdmx bpm 128`, `latentdmx bpm 0`")
            self._commands.put(lambda t: self.music.set_bpm(bpm, t))
            return {"bpm": bpm or "follow the music"}
        if cmd == "scene":                      # for `latentdmx watch` (read-only)
            from .views.state import live_state
            return live_state(self)
        raise ControlError(f"unknown command {cmd!r}", field="cmd",
                           fix="use status, scene, dim, pause, resume, blackout, seed, model, "
                               "tempo, tap or bpm")

    # -- the frame loop -----------------------------------------------------------------
    def _status(self, k: int) -> dict:
        p = self.pipeline
        times = self._times
        health = {k: v for k, v in self.output.health().items() if k != "output"}
        achieved = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 and \
            times[-1] > times[0] else 0.0
        return {"model": p.model.info.name, "family": p.model.info.family,
                "fps": self.fps, "fps_achieved": round(achieved, 2),
                "frames": k + 1, "late_frames": self.clock.late if self.clock else 0,
                "output": self.output.name, "output_health": health,
                "uptime_s": round(time.monotonic() - self._started, 1),
                "master": p.safety.master, "paused": p.paused, "blackout": p.blacked_out,
                "seed": p.seed, "tempo": p.tempo, "phase": round(p.phase, 3),
                "fixtures": [f.name for f in p.patch.fixtures],
                "universes": list(p.patch.universes),
                "config": str(self.config.path),
                **(self.music.status() if self.music.active else {})}

    def _reload(self, t_s: float) -> None:
        """SIGHUP: re-read the config and apply what can change live; a bad config, or one
        whose changes need a restart, is logged and the show goes on as it was.

        Live: the model (cross-faded), seed, walk, master dimmer, [music]. Needs a restart
        (fade-out, blackout, a fresh start): fixtures, output, fps, [audio] and the other
        safety settings."""
        self._reload_requested = False
        path = self.config_path
        old = self.config
        try:
            new = load_config(path)
            model = load_model(new.model) if new.model != old.model else None
        except LatentDMXError as exc:
            log.error("reload rejected, the show goes on with the old config: %s", exc)
            return
        restart = [name for name, changed in (
            ("fixtures", new.fixtures != old.fixtures), ("output", new.output != old.output),
            ("fps", new.fps != old.fps), ("audio", new.audio != old.audio),
            ("safety", new.safety.replace_master(old.safety.master) != old.safety))
            if changed]
        if restart:
            log.error("reload rejected: changes to %s need a restart (systemctl restart "
                      "latentdmx); the show goes on with the old config", ", ".join(restart))
            return
        changes = self.pipeline.reconfigure(new, model, t_s)
        if new.music != old.music:              # the music's settings apply live
            self.music.reconfigure(new.music, t_s)
            changes.append("music")
        self.config = new
        log.info("reloaded %s: %s", path or "the default config",
                 ", ".join(changes) or "nothing changed that the show uses")

    def _install_signals(self) -> list:
        if threading.current_thread() is not threading.main_thread():
            return []
        saved = []
        for sig, fn in ((signal.SIGINT, lambda *_: self.stop()),
                        (signal.SIGTERM, lambda *_: self.stop()),
                        (signal.SIGHUP, lambda *_: self.request_reload())):
            saved.append((sig, signal.signal(sig, fn)))
        return saved

    def _start_control(self):
        if not self.control_enabled:
            return None
        try:
            from .control import ControlServer, server_socket_path
            server = ControlServer(server_socket_path(self.config.control.socket or None),
                                   self.handle_control)
            server.start()
            return server
        except LatentDMXError as exc:
            # two daemons must never drive the same real lights; a simulator may run twice
            if "another latentdmx" in exc.what and self.output.name != "sim":
                raise
            log.warning("control socket disabled: %s", exc)
            return None

    def run(self) -> int:
        from .notify import Notifier

        notifier = Notifier()
        saved = self._install_signals()
        recorder = ShowRecorder(self.record_path, self.fps) if self.record_path else None
        server = None
        web = None
        fading = False
        clean = False
        fade_at = None
        if self.duration_s is not None:
            fade_at = max(0.0, self.duration_s - self.config.safety.fade_out_s)
        try:
            if self.config.preview.web:          # the live web page (pi_app/views/web.py)
                from .views.web import start_web
                web = start_web(self, self.config.preview)
            self.output.open()
            if self.music.audio is not None:     # sound card / file / libraries: before frame 0
                self.music.audio.prepare()
            self._live = True                           # status answers before frame 0 too
            server = self._start_control()
            self.clock = clock = self._make_clock(self.fps, stop=self._wake)
            if self.music.audio is not None:     # listening starts with the show's clock
                self.music.audio.start(clock.start_s)
            while True:
                k = clock.wait()
                t = k / self.fps
                self._wake.clear()
                while not self._commands.empty():
                    self._commands.get_nowait()(t)
                if self._reload_requested:
                    self._reload(t)
                pipe = self.pipeline
                if not fading and (self._stop_requested or (fade_at is not None and
                                                            t >= fade_at)):
                    fading = True
                    pipe.safety.start_fade_out(t)
                    notifier.stopping("fading out")
                frames = pipe.frames(t)
                self.output.send(frames)
                if recorder:
                    recorder.write(frames, t)
                self._times.append(clock.now())
                if k == 0:
                    notifier.ready("first frame out")
                notifier.watchdog()
                self.frames_out = k + 1
                for listener in tuple(self.listeners):   # a listener may remove itself
                    listener(self)
                if fading and pipe.safety.fade_out_done(t):
                    break
            # The last frame out is dark: blackout, flushed.
            frames = self.pipeline.blackout_frames()
            self.output.send(frames)
            if recorder:
                recorder.write(frames, (clock.frame) / self.fps)
            clean = True
            return 0
        except BaseException:
            if not clean:
                try:
                    if not self.output.closed and self.pipeline.scene is not None:
                        self.output.send(self.pipeline.blackout_frames())
                except Exception:    # the output itself may be what failed
                    log.exception("could not send the blackout frame")
            raise
        finally:
            if self.music.audio is not None:
                self.music.audio.close()
            self.output.close()
            if recorder:
                recorder.close()
            if server is not None:
                server.close()
            if web is not None:
                web.close()
            notifier.close()
            for sig, old in saved:
                signal.signal(sig, old)
