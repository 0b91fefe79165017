"""The show: the frame loop that drives a `Pipeline` into an `Output` on the frame clock.

``Show(config, output, model=..., seed=..., duration_s=..., record_path=...).run()`` blocks
until the show stops and returns the exit code. Stop (Ctrl-C, SIGTERM, `stop()`, the end of
``--duration``): fade-out over ``safety.fade_out_s``, then a blackout frame, flushed, then 0.
An exception in the frame loop: blackout at once, then the exception propagates (the CLI exits
non-zero). The control socket's requests are validated on its own thread and applied by the
frame loop between frames, so a client can never stall the clock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .ahead import RunAhead
from .clock import FastClock, FrameClock
from .config import Config, load_config
from .config_rules import check_here, config_warnings
from .errors import ControlError, LatentDMXError
from .health import config_hash
from .outputs import Frames, Output, output_for
from .patch import Patch
from .pipeline import LateFrames, Pipeline
from .rdm_sensors import SensorPoller
from .runtime import MAX_MODEL_SHARE, Model, load_model
from .schedule import Schedule
from .sim.record import ShowRecorder
from .vocabulary import args_text

if TYPE_CHECKING:
    from .laststate import LastFramesWriter
    from .notify import Notifier
    from .sync.group import Lockstep

log = logging.getLogger("latentdmx")
QUIET_REFRESH_S = 0.25      # a show holding still sends its frame this often (keep-alive)

WORK_SAMPLES = 2400          # frame work kept for `health` (a minute at 40 fps)
SWITCH_INTERVAL_S = 0.001       # the longest the frame loop waits for the GIL (default 5 ms)


class Show:
    def __init__(self, config: Config, output: Output, *, model: Model | None = None,
                 seed: int | None = None, duration_s: float | None = None,
                 record_path: str | Path | None = None, control: bool | None = None,
                 config_path: str | Path | None = None,
                 clock: Callable[..., FrameClock] = FrameClock,
                 wall_clock: Callable[[float], float] | None = None,
                 presets_dir: str | Path | None = None,
                 audio: str | Path | None = None, play_audio: bool = False) -> None:
        self.config = config
        config_hash(config)                  # the file as loaded (`health`), not as edited later
        self.config_path = config_path
        self.output = output
        model = model or load_model(config.model)
        self.pipeline = Pipeline(config, model, seed=seed)
        from .music import make_drive  # music: `--audio FILE` / [audio] (README "Music")
        offline = isinstance(clock, type) and issubclass(clock, FastClock)
        self._offline = offline              # virtual time: never a quiet spell
        self.ahead: RunAhead | None = None    # the next frames worked out ahead (ahead.py)
        self._quiet = False                  # holding still: a frame a few times a second
        self._said_slower = False            # the log said the model runs slower (once)
        self._said_not_model = False         # ... or that it is not the model (once)
        self.music = make_drive(config, audio_file=str(audio) if audio else None,
                                offline=offline, play=play_audio)
        self.pipeline.music = self.music
        self.fps = config.fps
        self.duration_s = duration_s
        self.record_path = record_path
        self.control_enabled = config.control.enabled if control is None else control
        self._commands: queue.SimpleQueue[Callable[[float], None]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop_requested = False
        self._reload_requested = False
        self._reading: threading.Thread | None = None     # a reload's reading (real time)
        self._reload_again = False
        self._log_budget = _LogBudget()          # a flood of requests is summed up, not logged
        self._started = time.monotonic()
        self._times: deque[float] = deque(maxlen=int(self.fps * 5) + 1)
        self._make_clock = clock      # FrameClock; FastClock (virtual time) for tests
        self.clock: FrameClock | None = None
        self.frames_out = 0          # frames sent so far (the loop's only per-frame bookkeeping)
        self.work_s: deque[float] = deque(maxlen=WORK_SAMPLES)   # wake -> frame out (health)
        self._live = False           # the output is open: status has something to say
        self.listeners: list[Callable[[Show], None]] = []   # called after each frame (viewers)
        self.sensors: SensorPoller | None = None   # RDM sensors for `status`, if on
        # the installation: schedule, playlists, presets (pi_app/director.py); the wall clock
        # maps show time to Unix time (injected by tests: a night on virtual time)
        from .director import Director
        from .paths import state_dir
        from .presets import PresetStore

        self.presets = PresetStore(Path(presets_dir) if presets_dir else
                                   state_dir() / "presets")
        self.lockstep = None         # a lockstep group (pi_app/sync): show time = wall - epoch
        if config.sync.group and wall_clock is None:
            wall_clock = _epoch_wall(config.sync.epoch_s)
        self.director = Director(config, self.pipeline, self.presets,
                                 wall_clock or (lambda t_s: time.time()), config.model)
        if config.sync.group:
            from .sync.group import Lockstep

            self.lockstep = Lockstep(self, config.sync, record_path=record_path)
            self.pipeline.lockstep = self.director.nominal = True

    @property
    def status_snapshot(self) -> dict:
        """What `latentdmx status` shows; built when asked, never in the frame loop.

        Safe from other threads: it only reads numbers and references the loop replaces."""
        from .vocabulary import Status

        return Status.of(self).as_dict() if self._live else {}

    @property
    def holding_still(self) -> bool:
        """Sending frames without computing them: a quiet spell (paused, blacked out and
        settled) or dark by the schedule. Status then says so rather than an fps."""
        return self._quiet or self.director.idle

    def output_health(self) -> dict:
        return {k: v for k, v in self.output.health().items() if k != "output"}

    def late_frames(self) -> int:
        return self.clock.late if self.clock else 0

    def uptime_s(self) -> float:
        return round(time.monotonic() - self._started, 1)

    # -- called from other threads ------------------------------------------------------
    def stop(self) -> None:
        """Ask for a clean stop (fade-out, blackout). Safe from signal handlers and threads."""
        self._stop_requested = True
        self._wake.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def request_reload(self) -> None:
        self._reload_requested = True

    def handle_control(self, cmd: str, args: dict, origin: str = "socket") -> dict:
        """Every client's way in (socket, web page, OSC): validate against the one control
        vocabulary (`pi_app.vocabulary`) on the caller's thread, log it, and queue a live
        change for the frame loop, which applies it between frames."""
        from .vocabulary import lookup

        if origin == "socket":                   # who: the peer's pid and uid
            from .control import current_peer

            peer = current_peer()
            origin = f"socket ({peer})" if peer is not None else origin
        try:
            command = lookup(cmd)
            values = command.parse(args if isinstance(args, dict) else {})
            command.check_origin(values, origin)         # no paths from the network
            change = command.run(self, values)
        except LatentDMXError as exc:
            if self._log_budget.take():
                log.info("%s: %s %s refused: %s", origin, str(cmd)[:40], args_text(args), exc)
            raise
        if command.reads:
            log.debug("%s: %s %s", origin, command.name, args_text(values))
        elif self._log_budget.take():
            log.info("%s: %s %s", origin, command.name, args_text(values))
        if change.apply is not None:
            if self.lockstep is not None and command.live and command.group:   # all, in step
                return self.lockstep.submit(command, values, change, origin)
            self._commands.put(change.apply)
            if self._quiet:                  # a quiet spell ends at once
                self._wake.set()
        return change.result

    # -- the frame loop -----------------------------------------------------------------
    def _reload(self, t_s: float) -> None:
        """SIGHUP: re-read the config and apply what can change live; a bad config, or one
        whose changes need a restart, is logged and the show goes on as it was.

        Live: the model (cross-faded), seed, walk, master dimmer, and the installation:
        schedule, presets, playlists, palettes, fixture trims. Needs a restart (fade-out,
        blackout, a fresh start): fixtures, output, fps, [audio], [sync], [mqtt] and the other
        safety settings.
        [music] is live too."""
        self._reload_requested = False
        self._reloaded(self._read_reload(), t_s)

    def _read_reload(self) -> tuple[Config, Model | None, Schedule] | None:
        """A reload's reading: the config, its model loaded and tried, its schedule with
        today's sun worked out (any thread; None and logged: rejected)."""
        try:
            new = load_config(self.config_path)
            output_for(new, Patch(new))         # what `run` refuses (built, never opened)
            check_here(new)                     # and its interfaces, on this machine
            model = load_model(new.model, frame_budget_s=MAX_MODEL_SHARE / new.fps) \
                if new.model != self.config.model else None
            if model is not None:
                pipe = self.pipeline
                pipe.check_model(model)
                # the walks the reload makes at a frame (`Pipeline.reconfigure`), made here
                pipe.prepare_walk(model, pipe.seed, pipe.phase, config=new)
                if new.seed != self.config.seed:
                    pipe.prepare_walk(model, new.seed, 0.0, config=new)
            schedule = Schedule(new.schedule, new.location)
            now = self.director.wall_s(self.pipeline.last_t)
            schedule.state(dt.datetime.fromtimestamp(now, dt.UTC))   # its sun, worked out
        except LatentDMXError as exc:
            log.error("reload rejected, the show goes on with the old config: %s", exc)
            return None
        return new, model, schedule

    def _reload_aside(self) -> None:
        """SIGHUP on a live show: the config and its model are read and tried on a thread of
        their own, then applied at a frame (the frame loop never waits for the files or
        the model's load and probe)."""
        self._reload_requested = False
        if self._reading is not None and self._reading.is_alive():
            self._reload_again = True            # another SIGHUP: read again after this one
            return

        def read() -> None:
            while True:
                self._reload_again = False
                self._commands.put(functools.partial(self._reloaded, self._read_reload()))
                self._wake.set()
                if not self._reload_again:
                    return
        self._reading = threading.Thread(target=read, name="latentdmx-reload", daemon=True)
        self._reading.start()

    def _reloaded(self, got: tuple[Config, Model | None, Schedule] | None,
                  t_s: float) -> None:
        """Apply a reload's reading between frames (what can change live)."""
        if got is None:
            return
        new, model, schedule = got
        path, old = self.config_path, self.config
        if model is not None and new.model == old.model:
            model = None                         # a model swap a reading ago: already here
        restart = [name for name, changed in (
            ("fixtures", _untrimmed(new) != _untrimmed(old)),    # trims are live
            ("output", new.output != old.output or new.outputs != old.outputs),
            ("fps", new.fps != old.fps), ("audio", new.audio != old.audio),
            ("sync", new.sync != old.sync),         # the group is joined once, at start
            ("fpp", new.fpp.replace_map() != old.fpp.replace_map()),   # [fpp.map] is live
            ("mqtt", new.mqtt != old.mqtt),
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
        self.director.configure(new, schedule)
        self.config = new
        config_hash(new)
        log.info("reloaded %s: %s", path or "the default config",
                 ", ".join(changes) or "nothing changed that the show uses")
        for line in config_warnings(new):
            log.warning("%s", line)

    def _apply(self, change: Callable[[float], None], t_s: float) -> None:
        """A live change between frames: if it fails, the show goes on as it was."""
        try:
            change(t_s)
        except Exception as exc:
            log.error("a live change failed, the show goes on as it was: %s", exc,
                      exc_info=not isinstance(exc, LatentDMXError))

    def _install_signals(self) -> list:
        if threading.current_thread() is not threading.main_thread():
            return []
        saved = []
        for sig, fn in ((signal.SIGINT, lambda *_: self.stop()),
                        (signal.SIGTERM, lambda *_: self.stop()),
                        (signal.SIGHUP, lambda *_: self.request_reload())):
            saved.append((sig, signal.signal(sig, fn)))
        return saved

    def _claim(self):
        """Claim the output's targets before the first frame (`pi_app.claims`): a second show
        on the same lights is refused here, whatever its socket, user or environment."""
        targets = self.output.targets()
        if not targets:
            return None
        from .claims import Claim

        return Claim(targets, "show", handler=self._claim_request)

    def _claim_request(self, cmd: str, args: dict) -> dict:
        """Requests that reach the show through its claim (from `latentdmx identify`)."""
        if cmd not in ("identify", "status"):
            raise ControlError(f"{cmd!r} is not taken here", field=cmd,
                               fix="use the control socket (`latentdmx status`, `dim`, ...)")
        return self.handle_control(cmd, args, origin="claim")

    def _web_token(self) -> str:
        """The web page's token (OSC's ``/latentdmx/auth`` takes it too); "" if none."""
        from .paths import state_dir
        from .secrecy import web_token

        try:
            return self.config.preview.token or web_token(state_dir())
        except LatentDMXError as exc:
            log.warning("OSC: no /latentdmx/auth: %s", exc)
            return ""

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
            # two daemons must never drive the same real lights; a simulator may run twice;
            # a socket folder another account made first is never used, nor played without
            if ("another latentdmx" in exc.what and self.output.name != "sim") or \
                    "socket folder" in exc.what:
                raise
            log.warning("control socket disabled: %s", exc)
            return None

    def run(self) -> int:
        """Set up (`_set_up`: one `ExitStack` holds everything the show opens and closes it,
        last opened first closed), then one `_frame` after another until the show is over,
        then the blackout frame. An exception: blackout at once (before anything closes),
        then it propagates."""
        with contextlib.ExitStack() as stack:
            try:
                r = self._set_up(stack)
                while not self._frame(r):
                    pass
                self._send_out(r, self.pipeline.blackout_frames(), r.clock.frame)   # dark
            except BaseException:
                self._dark_after_error()
                raise
        return 0

    def _dark_after_error(self) -> None:
        try:
            if self.ahead is not None:
                self.ahead.rollback()            # the last frame sent: what the blackout holds
            if not self.output.closed and self.pipeline.scene is not None:
                self.output.send(self.pipeline.blackout_frames())
        except Exception:        # the output itself may be what failed
            log.exception("could not send the blackout frame")

    def _set_up(self, stack: contextlib.ExitStack) -> _Running:
        """Everything a show opens, each one's close put on `stack` as it is opened: the
        show's own parts first (closed last), the claim before the output (released once the
        lights are dark), the control surfaces after it, then the clock."""
        from .notify import Notifier

        stack.callback(self.output.close)        # however the run ends (idempotent; see below)
        stack.callback(self.director.close)
        if self.lockstep is not None:
            stack.callback(self.lockstep.close)
        if self.music.audio is not None:
            stack.callback(self.music.audio.close)
        notifier = Notifier()
        stack.callback(notifier.close)
        for sig, old in self._install_signals():
            stack.callback(signal.signal, sig, old)
        # The frame loop gets the GIL back within 1 ms when another thread (the control
        # socket under load, the web page) is busy, instead of Python's default 5 ms.
        stack.callback(sys.setswitchinterval, sys.getswitchinterval())
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        recorder = ShowRecorder(self.record_path, self.fps) if self.record_path else None
        if recorder is not None:
            stack.callback(recorder.close)
        last = None
        claim = self._claim()                    # refused here: nothing has been sent
        if claim is not None:
            stack.callback(claim.close)
            from .laststate import LastFramesWriter
            last = LastFramesWriter.open(claim.targets, self.pipeline.patch)
            if last is not None:
                stack.callback(last.close)
        stack.callback(self.output.close)        # dark before the claim is released
        if self.config.preview.web:              # the live web page (pi_app/web.py)
            from .web import start_web
            stack.callback(start_web(self, self.config.preview).close)
        self.output.open()
        if self.music.audio is not None:         # sound card / file / libraries: before frame 0
            self.music.audio.prepare()
        self._live = True                        # status answers before frame 0 too
        self._start_surfaces(stack)
        return self._start_clock(notifier, recorder, last)

    def _start_surfaces(self, stack: contextlib.ExitStack) -> None:
        """The control socket, OSC, the FPP remote, MQTT: each closed by `stack`."""
        server = self._start_control()
        if server is not None:
            stack.callback(server.close)
        if self.config.osc.enabled:              # tablets: pi_app/osc.py
            from .osc import start_osc
            stack.callback(start_osc(self, self.config.osc, self._web_token()).close)
        if self.config.fpp.remote:               # an FPP MultiSync master: pi_app/fpp.py
            from .fpp import start_fpp
            stack.callback(start_fpp(self, self.config.fpp).close)
        if self.config.mqtt.enabled:             # Home Assistant: pi_app/mqtt/
            from .mqtt.bridge import start_mqtt
            stack.callback(start_mqtt(self, self.config.mqtt).close)   # says "offline"

    def _start_clock(self, notifier: Notifier, recorder: ShowRecorder | None,
                     last: LastFramesWriter | None) -> _Running:
        """The frame clock (in a group: the group's, after joining it), listening, the
        schedule's state at the first frame, and the frames worked out ahead."""
        sync = self.lockstep
        clock: FrameClock
        if sync is not None:                     # frame k at epoch + k / fps (pi_app/sync)
            sync.start()
            self.clock = clock = sync.make_clock(self._make_clock, self.fps, self._wake)
            sync.join()                          # the group's state before the first frame
        else:
            self.clock = clock = self._make_clock(self.fps, stop=self._wake)
        # virtual time: a playlist's rotation waits for its item's load, and a frame for
        # a reload's reading (the same show every run, however fast the loader and the
        # reader threads); real time never waits
        self.director.waits = isinstance(clock, FastClock)
        if self.music.audio is not None:         # listening starts with the show's clock
            self.music.audio.start(clock.start_s)
        k0 = clock.frame                         # the first frame's index (0 unless in a group)
        fade_at = None
        if self.duration_s is not None:
            fade_at = k0 / self.fps + max(0.0, self.duration_s - self.config.safety.fade_out_s)
        self.director.start(k0 / self.fps)       # dark from the start if off-schedule
        self.ahead = RunAhead(self.pipeline, 1.0 / self.fps,     # frames worked out ahead
                              pack=self.output.prepare)
        return _Running(notifier=notifier, clock=clock, sync=sync, recorder=recorder,
                        last=last, ahead=self.ahead, k0=k0, fade_at=fade_at)

    def _frame(self, r: _Running) -> bool:
        """One tick of the frame loop: wait for the frame, apply what is due, compute the frame
        (or keep the one of a quiet spell), send it. True once the show is over."""
        k = r.clock.idle(QUIET_REFRESH_S) if r.quiet else r.clock.wait()
        woke = time.perf_counter()
        t = k / self.fps
        changed = self._between_frames(r, k, t)
        pipe = self.pipeline
        r.late.tick()
        if r.clock.late != r.late.seen and r.late.lower(r.clock.late, t) and r.sync is None:
            self._slower_model(r)
        if not r.fading and (self._stop_requested or (r.fade_at is not None and
                                                      t >= r.fade_at)):
            r.fading = True
            pipe.safety.start_fade_out(t)
            r.notifier.stopping("fading out")
        # outside the schedule's windows: the same dark frame, no pipeline work
        idle = self.director.step(t, stopping=r.fading)
        if idle and r.sync is not None:          # a group's walk goes on in the dark
            pipe.keep_up(t)
        if not r.quiet or changed or r.fading or idle:    # else: still the same frame
            if r.quiet and not idle:
                pipe.resume(t)
            r.frames = self.director.idle_frames if idle else r.ahead.frames(t)
        # holding still (paused, blacked out or dark, and settled): a quiet spell,
        # the same frame a few times a second, no pipeline work, until a change
        # (not in a group: its members compute every frame, to stay in step)
        r.quiet = self._quiet = (not self._offline and r.recorder is None and not r.fading
                                 and r.sync is None and (idle or pipe.settled(t)))
        self._send_out(r, r.frames, k, woke)
        self._after_frame(r, k, computed=not (r.quiet or idle))
        if r.fading and (idle or pipe.show_over(t, self.duration_s)):
            return True
        if not (r.quiet or idle):                # the frame is out: the next ones, if known
            r.ahead.prepare(t, functools.partial(self._ticks, r, k))
        return False

    def _slower_model(self, r: _Running) -> None:
        """Frames come late: the model at a lower rate before frames are given up (said
        once in the log). Not in a lockstep group: its members play the same bytes."""
        frame_s = r.late.frame_cpu_s()
        model_s = self.pipeline.model_cost_s()
        # the model's share at every frame decides (once lowered, frames cost less and the
        # frame loop's count mixes in rolled-back batches: the first verdict stands)
        if self.pipeline.model_every == 1 and not r.late.model_matters(model_s, frame_s):
            if not self._said_not_model:
                self._said_not_model = True
                log.info("frames come late, but the model is %.0f%% of a frame's work "
                         "here: it stays at every frame", 100 * model_s / (frame_s or 1))
            return
        r.ahead.rollback()
        every = self.pipeline.lower_model_rate()
        if every and not self._said_slower:
            self._said_slower = True
            log.warning("this machine is too slow for the model at every frame: the model "
                        "now runs at %g fps (a key frame every %d frames, interpolated "
                        "between), the show at %g fps", self.fps / every, every, self.fps)
        elif every:
            log.debug("model at %g fps", self.fps / every)

    def _between_frames(self, r: _Running, k: int, t: float) -> bool:
        """Before frame k: what is due (commands, the group's changes, a reload), the
        pipeline rolled back first if anything but the walk changes it. True if anything
        was due."""
        if self._wake.is_set():                  # (clear() takes a lock: only when set)
            self._wake.clear()
        if r.sync is not None:                   # frames a short stall skipped: walked too
            r.sync.catch_up(k, r.fading)
        if self.director.waits and self._reading is not None:
            self._reading.join()                 # virtual time: its change at the next frame
        # the changes queued by other threads so far: taken before the rollback, so that
        # one arriving meanwhile waits for the next frame (applied without a rollback, the
        # batch's restore would undo it)
        pending = [self._commands.get_nowait() for _ in range(self._commands.qsize())]
        changed = bool(pending) or self._reload_requested
        if (not r.ahead.next_is(t) or changed or self._stop_requested
                or not self.director.calm(t)):   # something other than the walk is due:
            r.ahead.rollback()                   # the pipeline as after the last frame sent
        for change in pending:
            self._apply(change, t)
        if r.sync is not None:
            r.sync.before_frame(k, t)
        if self._reload_requested:               # on virtual time at once, else read aside
            self._apply(self._reload if self._offline else
                        lambda _t: self._reload_aside(), t)
        return changed

    def _send_out(self, r: _Running, frames: Frames, k: int,
                  woke: float | None = None) -> None:
        """Frame k to the output, the last-state file and the recording (in a group as
        played: a clock step is no gap); `woke`: the tick's work is measured."""
        self.output.send(frames)
        if woke is not None:
            self.work_s.append(time.perf_counter() - woke)
        if r.last is not None:
            r.last.write(frames)
        if r.recorder:
            r.recorder.write(frames, k / self.fps if r.sync is None else r.clock.due(k))

    def _after_frame(self, r: _Running, k: int, computed: bool) -> None:
        """After frame k is out: the group, the fps figures, systemd, the listeners."""
        if r.sync is not None:
            r.sync.after_frame(k)
        if not computed:                         # no frames computed: no fps to measure
            if self._times:
                self._times.clear()
        else:
            self._times.append(r.clock.now())
        if k == r.k0:
            r.notifier.ready("first frame out")
        r.notifier.watchdog()
        self.frames_out = k - r.k0 + 1
        for listener in tuple(self.listeners):   # a listener may remove itself
            listener(self)

    def _ticks(self, r: _Running, k: int, n: int) -> list[float]:
        """The show times of frame k and up to n - 1 after it, while nothing is due (the
        fade-out, the schedule): the frames `RunAhead` may work out now."""
        out = []
        for i in range(n):
            t_i = (k + i) / self.fps
            if (r.fade_at is not None and t_i >= r.fade_at) or not self.director.calm(t_i):
                break
            out.append(t_i)
        return out


@dataclass
class _Running:
    """One run's frame loop state besides the show's own: made by `Show._set_up`."""
    notifier: Notifier
    clock: FrameClock
    sync: Lockstep | None
    recorder: ShowRecorder | None
    last: LastFramesWriter | None
    ahead: RunAhead
    k0: int                                      # the first frame's index
    fade_at: float | None                        # show time the fade-out starts (--duration)
    quiet: bool = False                          # a quiet spell: the same frame, resent
    fading: bool = False
    frames: Frames = field(default_factory=dict)      # the frame out (a quiet spell's too)
    late: LateFrames = field(default_factory=LateFrames)   # ... calling for a slower model


def _epoch_wall(epoch_s: float) -> Callable[[float], float]:
    """Show time -> Unix time in a lockstep group: the epoch plus the show time, exactly."""
    def wall_s(t_s: float) -> float:
        return epoch_s + t_s
    return wall_s


def _untrimmed(config: Config) -> list:
    """The fixtures without their trims (which a reload applies live)."""
    import dataclasses

    from .install_config import TrimConfig

    return [dataclasses.replace(f, trim=TrimConfig()) for f in config.fixtures]


class _LogBudget:
    """At most `burst` log lines at once and `per_minute` a minute after that; what is left
    out is counted and said in one line when lines are allowed again. A client that floods
    the daemon with requests must not flood the journal (or its disk) as well."""

    def __init__(self, burst: int = 30, per_minute: float = 60.0) -> None:
        self.burst, self.rate_per_s = burst, per_minute / 60.0
        self.tokens, self.t = float(burst), time.monotonic()
        self.skipped = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate_per_s)
            self.t = now
            if self.tokens < 1.0:
                self.skipped += 1
                return False
            self.tokens -= 1.0
            skipped, self.skipped = self.skipped, 0
        if skipped:
            log.warning("%d more control requests were not logged (too many at once)",
                        skipped)
        return True

