"""One frame's way through the program, without clock or output:
walk -> model -> mapper -> safety -> patch.

`Pipeline.frames(t_s)` is what the show loop calls once per frame, and what `render` and
the benchmarks call offline. Live changes (tempo, pause, blackout, seed, model swap with a
cross-fade) are plain method calls made between frames by the frame loop's thread. The walk's
phase is a pure function of show time and those changes (`pi_app.phase.PhaseLine`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .config import Config
from .errors import ControlError
from .heads import HeadPaths
from .identify import IdentifySequence
from .lean import trim_heap
from .looks import Looks
from .mapper import HeldColumns, make_mapper, streams_for
from .moves import Moves
from .patch import Patch
from .phase import PHASE_FIX, PhaseLine, phase_ok
from .runtime import MAX_MODEL_SHARE, Model
from .safety import Safety
from .scene import COLOUR, DIMMER, LIGHT, N_ATTRS, PAN, TILT
from .walk import CHAIN_BLOCK, LatentWalk
from .wheels import Wheels

if TYPE_CHECKING:
    from .music.drive import MusicDrive

MODEL_XFADE_S = 2.0
# A shutter-only fixture (its shutter is its light, open or closed: `Patch.close_switches`)
# closes when its light is 0 (below what an 8-bit dimmer writes as 1) and opens again when
# its light is back at SWITCH_OPEN_AT; either way only SWITCH_HOLD_S after its last change, so
# it cannot flash (at most one flash in two seconds) whatever the light does.
SWITCH_CLOSE_BELOW = 0.5 / 255.0
SWITCH_OPEN_AT = 0.1
SWITCH_HOLD_S = 1.0
AHEAD_FRAMES = 8         # walk + model of the next frames in one call (small rigs) ...
AHEAD_ROWS = 256         # ... as long as frames x streams stays within this; else the walk
AHEAD_WALK_ROWS = 8192   # alone, within this (1,024 streams: 512 KB of latents)
AIMS_KEPT = 64           # model aims kept for the heads' slots (`_Source.aims_at`)
# A machine too slow for the model at every frame: the model at key frames, every
# `model_every` frames (at tempo 1), its outputs interpolated between them; late frames
# (`LATE_TO_LOWER` within `LATE_WINDOW_S`) halve the model's rate, down to a key every
# `MODEL_EVERY_MAX` frames, before a frame is given up.
MODEL_EVERY_MAX = 8
LATE_TO_LOWER = 3
LATE_WINDOW_S = 10.0
MODEL_SHARE_TO_LOWER = 0.3    # ... only while the model is this share of a frame's CPU


class _Guard:
    """The guarded walk's look at a segment (`pi_app.walk`): latents -> the points' x, y.
    The model's work buffers are kept per thread from one call to the next until the walk
    `release`s them (after each segment's look), so a look's few MB are made once, not
    once a call; a thread never shares them (the look ahead runs on a helper thread)."""

    def __init__(self, model: Model, xy: list[int]) -> None:
        self.model = model
        self.xy = xy
        self._local = threading.local()

    def __call__(self, z: np.ndarray) -> np.ndarray:
        work = getattr(self._local, "work", None)
        if work is None:
            work = self._local.work = {}
        return self.model.generate_scratch(z, work)[:, self.xy]

    def release(self) -> None:
        if getattr(self._local, "work", None):
            self._local.work = None
            trim_heap()                          # the freed MBs back to the system


class _Source:
    """A model with its walk and mapper: latent phase -> raw scene. A walk made while the
    show plays is anchored at the segment it starts in (`anchor`: pi_app/walk.py), so making
    it costs one guarded step whatever the phase."""

    def __init__(self, model: Model, config: Config, seed: int, positions: np.ndarray,
                 anchor: int | None = None, every: int = 1):
        self.model = model
        self.seed = seed
        self.every = 1                          # the model at every frame (see `set_every`)
        self._per_waypoint = config.walk.seconds_per_waypoint * config.fps
        self._keys_per_waypoint = 0
        self._keys: dict[int, np.ndarray] = {}
        info = model.info
        guard = None
        if info.kind == "points":                 # re-route segments that would tear
            guard = _Guard(model, [info.fields.index("x"), info.fields.index("y")])
        self.walk = LatentWalk(seed, streams_for(info, len(positions)), info.latent_dim,
                               loop_waypoints=config.walk.loop_waypoints,
                               spread=config.walk.spread, guard=guard,
                               segment_s=config.walk.seconds_per_waypoint,
                               chain_block=CHAIN_BLOCK, anchor=anchor)
        self.anchor = self.walk.anchor
        self.mapper = make_mapper(info, positions)
        streams = self.walk.streams
        self._stacks = model.stacks                   # a NAT model: see `scene_ahead`
        self._model_ahead = AHEAD_ROWS // streams >= 2          # else the walk alone
        self._ahead_n = max(1, min(AHEAD_FRAMES, (AHEAD_ROWS if self._model_ahead else
                                                  AHEAD_WALK_ROWS) // streams))
        self._zs: np.ndarray | None = None                      # latents of the next frames
        self._rows = np.zeros((0, streams, 0), np.float32)    # model outputs, frame by frame
        self._row_of: dict[float, int] = {}                     # ... by phase
        self._scenes: np.ndarray | None = None                  # ... and their scenes
        self._scene = np.zeros((len(positions), N_ATTRS), np.float32)   # this frame's
        self._aims: dict[int, np.ndarray] = {}                  # `aims_at`, by waypoint
        self.set_every(every)

    def aims_at(self, q: int) -> np.ndarray:
        """Every fixture's (pan, tilt) from the model at the walk's plain waypoint q (a pure
        function of the seed and q: `pi_app/heads.py`'s slots), cached. Uses the mapper's
        buffer: call before this frame's `scene`."""
        a = self._aims.get(q)
        if a is None:
            if len(self._aims) >= AIMS_KEPT:            # the slots in use are the newest
                self._aims = {j: v for j, v in self._aims.items()
                              if j >= max(self._aims) - AIMS_KEPT // 2}
            scene = self.mapper(self.model.generate(self.walk.waypoint(q)))
            a = self._aims[q] = scene[:, PAN:TILT + 1].copy()
        return a

    def set_every(self, every: int) -> None:
        """The model at every frame (1), or at key frames `every` frames apart at tempo 1,
        its outputs interpolated (linearly) between them. The keys lie on a fixed grid of
        the walk's phase (``i / K``, K keys a waypoint, a whole number), so a frame is a
        pure function of its phase, as ever: the same show for a seed, however its frames
        are worked out (ahead or not, after a rollback), on whichever member of a group
        plays at the same rate. Not within one 8-bit step of every frame's evaluation for
        the bundled models (`bench/slow_core.py` measures it), so only a machine too slow
        for every frame plays this way (`Pipeline.lower_model_rate`)."""
        self.every = max(1, int(every))
        self._keys_per_waypoint = 0 if self.every == 1 else \
            max(1, round(self._per_waypoint / self.every))
        self._keys = {}
        self._row_of = {}

    def _keyed(self, phase: float) -> np.ndarray:
        """The model's outputs at `phase` from the key frames on either side."""
        x = phase * self._keys_per_waypoint
        i = math.floor(x)
        f = np.float32(x - i)
        r0 = self._key(i)
        if f == 0:
            return r0.copy()
        r1 = self._key(i + 1)
        out = r1 - r0
        out *= f
        out += r0
        return out

    def _key(self, i: int) -> np.ndarray:
        rows = self._keys.get(i)
        if rows is None:
            if len(self._keys) > 2:                  # the two in use and the one before
                self._keys = {j: r for j, r in self._keys.items() if j >= i - 1}
            rows = self._keys[i] = self.model.generate(
                self.walk.at(i / self._keys_per_waypoint))
        return rows

    def scene(self, phase: float) -> np.ndarray:
        if self.every > 1:
            return self.mapper(self._keyed(phase))
        return self.mapper(self.model.generate(self.walk.at(phase)))

    def scene_ahead(self, phase: float, ahead: Callable[[int], list[float]]) -> np.ndarray:
        """`scene(phase)`, the same numbers, with the walk and the model of the next frames
        worked out with this one: ``ahead(n)`` gives the phases of this frame and the n - 1
        after it as they will be if nothing changes (only this one's when they cannot be
        known). A frame whose phase is among them costs the mapper only (a large rig: the
        model and the mapper, the latents only are worked out ahead); any live change
        (a new line, seed, model) gives other phases or another `_Source`, and a new block.
        The walk and the model are pure functions of the phase, so a row worked out ahead
        is the row the frame would have computed (`LatentWalk.at_many`,
        `Model.generate_stacked`: bit for bit)."""
        if not self._stacks or self.every > 1:          # image models: frame by frame
            return self.scene(phase)
        j = self._row_of.get(phase)
        if j is None:
            phases = ahead(self._ahead_n)
            k = math.floor(phase)
            n = 1
            while n < len(phases) and math.floor(phases[n]) == k:   # one segment at a time
                n += 1
            self._zs = self._scenes = None
            if n == 1:
                self._rows = self.model.generate(self.walk.at(phase))[None]
            elif self._model_ahead:
                self._rows = self.model.generate_stacked(self.walk.at_many(phases[:n]))
                many = getattr(self.mapper, "many", None)     # the points mapper: scenes too
                self._scenes = None if many is None else many(self._rows)
            else:                                  # a large rig: the model frame by frame
                self._zs = self.walk.at_many(phases[:n])
            self._row_of = {p: i for i, p in enumerate(phases[:n])}
            j = 0
        if self._zs is not None:
            return self.mapper(self.model.generate(self._zs[j]))
        if self._scenes is None:
            return self.mapper(self._rows[j])
        np.copyto(self._scene, self._scenes[j])
        return self._scene


class LateFrames:
    """When late frames call for a lower model rate: `LATE_TO_LOWER` of them within
    `LATE_WINDOW_S` of show time (a single hiccup does not), while the model is at least
    `MODEL_SHARE_TO_LOWER` of the frame loop's CPU time a frame. A lower model rate saves
    only the model's share: when the frames are late for another reason (a busy machine, a
    large rig's safety stage), the show stays as it is."""

    def __init__(self) -> None:
        self.seen = 0                            # the clock's late count, as last seen
        self._times: list[float] = []
        self._ticks = 0                          # frames out
        self._cpu: tuple[float, int] | None = None   # (frame loop's CPU time, frames) mark

    def lower(self, late: int, t_s: float) -> bool:
        """`late`: the clock's count so far, at show time `t_s`. True: lower the rate."""
        new, self.seen = late - self.seen, late
        if new <= 0:
            return False
        self._times = [t for t in self._times if t > t_s - LATE_WINDOW_S] + [t_s] * new
        if len(self._times) < LATE_TO_LOWER:
            return False
        self._times = []
        return True

    def tick(self) -> None:
        """One more frame out (the frame loop counts them: late frames skip frame numbers)."""
        self._ticks += 1
        if self._cpu is None:                    # the mark: CPU a frame is counted from here
            self._cpu = (time.thread_time(), self._ticks)

    def frame_cpu_s(self) -> float | None:
        """The frame loop thread's CPU time a frame out since the last call (or the first
        frame; None before it). Call from the frame loop."""
        now, last = time.thread_time(), self._cpu
        self._cpu = (now, self._ticks)
        if last is None or self._ticks <= last[1]:
            return None
        return (now - last[0]) / (self._ticks - last[1])

    @staticmethod
    def model_matters(model_s: float, frame_s: float | None) -> bool:
        """Is the model (`model_s` a frame) enough of a frame's CPU time (`frame_s`) that
        running it less often makes the frames keep up?"""
        return frame_s is not None and model_s >= MODEL_SHARE_TO_LOWER * frame_s


COST_RUNS = 5                # a model's frame cost: the fastest of this many frames


def frame_cost_s(src: _Source, runs: int = COST_RUNS) -> float:
    """What one frame of `src`'s model and mapper costs here, in seconds: the fastest of
    `runs` frames after a first (buffers made, caches warm), so a busy machine does not make
    a model look slower than it is."""
    z = src.walk.at(0.5)
    best = math.inf
    for k in range(runs + 1):
        t0 = time.thread_time()
        src.mapper(src.model.generate(z))
        if k:
            best = min(best, time.thread_time() - t0)
    return best


class _Prepared:
    """Walks made ahead on other threads (`Pipeline.prepare_walk`: a client's, before it
    queues its change; the playlist's loader, for the next item), each until the change
    that makes the very same walk takes it: a cache keyed by what the walk is a function
    of (model, seed, anchor, config), so a client's walk and the playlist's next one never
    take each other's place. At most `KEEP` are kept (the oldest goes). Kept out of the
    run-ahead's snapshot of the pipeline (its rollback does not undo another thread's
    work)."""

    KEEP = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._walks: list[tuple[Model, int, int | None, Config, _Source]] = []

    def put(self, made: tuple[Model, int, int | None, Config, _Source]) -> None:
        with self._lock:
            self._walks = [w for w in self._walks if w[:4] != made[:4]][-(self.KEEP - 1):]
            self._walks.append(made)

    def take(self, model: Model, seed: int, anchor: int | None,
             config: Config) -> _Source | None:
        with self._lock:
            for i, w in enumerate(self._walks):
                if w[0] is model and w[1] == seed and w[2] == anchor and w[3] is config:
                    del self._walks[i]
                    return w[4]
        return None


class Pipeline:
    def __init__(self, config: Config, model: Model, *, seed: int | None = None) -> None:
        self.config = config
        self.fps = config.fps
        self.patch = Patch(config)
        self.positions = np.array([f.position for f in config.fixtures], np.float32)
        self.looks = Looks(config, self.patch)  # palette, still heads, trims (before safety)
        self.safety = Safety(config, self.patch, self.fps)
        lit = config.safety.lit_move_deg_per_s
        self.moves = Moves(self.patch, self.fps, lit)    # heads reposition in the dark
        self.heads = HeadPaths(self.patch, config.walk.seconds_per_waypoint, lit)  # ... slowly
        self.held = HeldColumns(self.patch.fixtures)  # zoom, ...: held or driven in limits
        wheels = Wheels(self.patch)                  # colour wheels turn in the dark
        self.wheels = wheels if len(wheels) else None
        self.wheel_slot = wheels.state()             # each wheel's slot (-1: held)
        self.wheel_until = wheels.dwell_state()      # ... and its dwell's end (show time)
        self.wanted_colour: np.ndarray | None = None  # the last scene's colour before safety
        n_sw = len(self.patch.switch_fixture)         # shutter-only fixtures: closed at the
        self.switch_open = np.zeros(n_sw, bool)       # start, open once their light is up,
        self.switch_since = np.full(n_sw, -np.inf)    # each state held SWITCH_HOLD_S at least
        self._switch_pending = False                  # a change waits for its hold time
        self.seed = config.seed if seed is None else int(seed)
        self.model_every = 1                     # the model at every frame (`lower_model_rate`)
        self._model_cost: tuple[Model, float] | None = None      # `model_cost_s`, kept
        self.source = _Source(model, config, self.seed, self.positions)
        self._old: _Source | None = None        # the model being cross-faded out
        self._xfade_t0 = 0.0
        self._xfade_s = MODEL_XFADE_S
        self._old_offset = 0.0                   # the old source's phase minus the new one's
        self.line = base_line(config)            # phase = line.at(show time): pi_app/phase.py
        self.phase = 0.0                         # the last frame's position on the walk
        self._t = 0.0                            # the last frame's show time
        self._music_t: float | None = None       # ... for the music's step (None: no frame)
        self.lockstep = False                    # in a group (pi_app/sync): see wake, still_aim
        self.still_from: tuple[Model, int, float, int | None] | None = None
        self.scene: np.ndarray | None = None     # the last safe scene (for viewers)
        self.music: MusicDrive | None = None     # the beat's hold on walk and light (music/)
        self.identify: IdentifySequence | None = None   # `latentdmx identify` through the show
        self._held: np.ndarray | None = None    # the last safe scene while holding still
        self._prepared = _Prepared()             # a walk made ahead on a client's thread
        self._steady = False                     # ... and it was the same as the one before

    @property
    def model(self) -> Model:
        return self.source.model

    @property
    def last_t(self) -> float:
        """The last frame's show time (0 before the first)."""
        return self._t

    def fixture_names(self) -> list[str]:
        return [f.name for f in self.patch.fixtures]

    # -- live changes (call between frames; `t_s`: the show time they take effect) -------
    @property
    def tempo(self) -> float:
        return self.line.tempo

    @tempo.setter
    def tempo(self, tempo: float) -> None:      # from the last frame on
        self.set_tempo(tempo, self._t)

    @property
    def paused(self) -> bool:
        return self.line.paused

    @paused.setter
    def paused(self, paused: bool) -> None:
        self.set_paused(paused, self._t)

    @property
    def blacked_out(self) -> bool:
        return self.line.held

    @blacked_out.setter
    def blacked_out(self, on: bool) -> None:
        self.set_blackout(on, self._t)

    def set_blackout(self, on: bool, t_s: float) -> None:
        """Lights dark (through the limiter) and the walk held where it is, like pause."""
        if bool(on) != self.line.held:
            self.line = self.line.since(t_s, held=bool(on))

    def set_tempo(self, tempo: float, t_s: float) -> None:
        self.line = self.line.since(t_s, tempo=float(tempo))

    def set_paused(self, paused: bool, t_s: float) -> None:
        self.line = self.line.since(t_s, paused=bool(paused))

    def prepare_walk(self, model: Model, seed: int, phase: float,
                     config: Config | None = None, *, anchor: int | bool | None = True
                     ) -> None:
        """Make the walk of (model, seed) anchored at `phase`'s segment, and look at that
        segment, on the caller's thread (a client's before it queues the change, the
        playlist's loader, a reload's reader), so the change that makes this walk at the
        frame loop finds it made (a large rig's look at a segment costs more than a frame
        period). The very walk the frame loop would make: a walk is a pure function of
        model, seed, anchor and phase (and `config`: a reload's new one). `anchor`: the
        walk's, when it is not `phase`'s segment (a group's snapshot: another member's)."""
        if not phase_ok(phase):
            return                               # refused where it is applied
        if anchor is True:
            anchor = math.floor(phase)
        config = self.config if config is None else config
        source = _Source(model, config, int(seed), self.positions, anchor, self.model_every)
        source.walk.at(phase)
        self._prepared.put((model, int(seed), anchor, config, source))

    def _source(self, model: Model, seed: int, anchor: int | None) -> _Source:
        """The walk of (model, seed, anchor): made ahead (`prepare_walk`), or now."""
        ready = self._prepared.take(model, seed, anchor, self.config)
        if ready is not None:
            if ready.every != self.model_every:
                ready.set_every(self.model_every)
            return ready
        return _Source(model, self.config, seed, self.positions, anchor, self.model_every)

    def set_seed(self, seed: int, t_s: float | None = None) -> None:
        """A new walk from phase 0 at show time `t_s` (default: the last frame's)."""
        t = self._t if t_s is None else t_s
        if self._old is not None:                # a cross-fade under way: the walk fading
            self._old_offset += self.line.at(t)  # out goes on where it is (the new one
        self.seed = int(seed)                    # starts at phase 0)
        self.source = self._source(self.source.model, self.seed, 0)
        self.line = self.line.jump(t, 0.0)
        self.phase = 0.0

    def check_model(self, model: Model) -> None:
        """Raise (a `ModelError`) if `model` cannot play on this rig; changes nothing."""
        from .errors import ModelError

        try:
            src = _Source(model, self.config, self.seed, self.positions)
            src.scene(0.0)
        except (ValueError, TypeError, IndexError) as exc:
            raise ModelError(f"cannot play on this rig ({exc})", file=model.info.path,
                             field="model", fix="pick another model") from None
        cost = frame_cost_s(src)
        period = 1.0 / self.fps
        if cost > MAX_MODEL_SHARE * period:
            fits = math.floor(MAX_MODEL_SHARE / cost) if cost < MAX_MODEL_SHARE else 0
            raise ModelError(
                f"takes {cost * 1e3:.1f} ms a frame on this machine and rig, more than half "
                f"the {period * 1e3:.1f} ms period at {self.fps:g} fps", file=model.info.path,
                field="model", fix=("pick a smaller model, or lower fps to " +
                                    (f"{fits} or less" if fits >= 1 else "... it is too slow "
                                     "at any fps"))) from None

    def set_model(self, model: Model, t_s: float) -> None:
        """Swap models with a cross-fade of `MODEL_XFADE_S` seconds."""
        self.recall(model, self.seed, self.line.at(t_s), t_s, MODEL_XFADE_S)

    def recall(self, model: Model, seed: int, phase: float, t_s: float,
               xfade_s: float) -> None:
        """Jump to (model, seed, phase), cross-fading from where the show is over `xfade_s`
        seconds (0: a cut; the safety stage still limits it). The old walk keeps moving.
        The new walk is anchored at `phase` (one guarded step, whatever the phase)."""
        if not phase_ok(phase):
            raise ControlError(f"phase {phase!r} is not a finite number in range",
                               field="phase", fix=PHASE_FIX)
        if xfade_s > 0:
            self._old = self.source
            self._old_offset = self.line.at(t_s) - float(phase)
            self._xfade_t0 = t_s
            self._xfade_s = xfade_s
        else:
            self._old = None
        self.seed = int(seed)
        self.source = self._source(model, self.seed, math.floor(phase))
        self.line = self.line.jump(t_s, phase)
        self.phase = float(phase)

    def model_cost_s(self) -> float:
        """What the playing model and mapper cost a frame here (CPU time; `frame_cost_s` on a
        fresh source, so the playing one's buffers are not touched), once per model."""
        model = self.source.model
        if self._model_cost is None or self._model_cost[0] is not model:
            src = _Source(model, self.config, self.seed, self.positions)
            self._model_cost = (model, frame_cost_s(src))
        return self._model_cost[1]

    def lower_model_rate(self) -> int:
        """This machine is too slow for the frames: the model at half its rate (key frames
        twice as far apart, `_Source.set_every`) before a frame is given up. Returns the
        new number of frames from one key to the next, or 0 when it is already at
        `MODEL_EVERY_MAX` (the frames must go then). Call between frames, after a rollback."""
        if self.model_every >= MODEL_EVERY_MAX:
            return 0
        self.model_every *= 2
        for src in (self.source, self._old):
            if src is not None:
                src.set_every(self.model_every)
        return self.model_every

    def wake(self, t_s: float) -> None:
        """Play again after an idle dark spell (the schedule's next window): the walk goes on
        from its phase (in a lockstep group it went on in the dark, as it does on every
        member), the light fades in through the safety stage."""
        if not self.lockstep:
            self.line = self.line.jump(t_s, self.phase)
        self._music_t = None
        self.safety.restart(t_s)

    def keep_up(self, t_s: float) -> None:
        """Dark by the schedule in a lockstep group: the walk goes on unseen (every member's
        phase moves on with the group's clock), so its guarded chain is kept up with it, a
        segment at a time (the next one is worked out ahead on the walk's helper thread).
        On waking the first frame then finds its segment ready, instead of working out up
        to a block of the chain at once (33 looks, 133 ms on the demo rig). Alone, the walk
        waits where it stopped (`wake`), and this does nothing."""
        if self.lockstep:
            phase = self.line.at(t_s)
            if math.isfinite(phase) and phase >= 0:
                self.source.walk.at(phase)

    def still_aim(self, t_s: float) -> np.ndarray | None:
        """The aim `still on` freezes: the last safe scene's; in a lockstep group the walk's
        own aim at `t_s`, which every member (and a late joiner) computes alike."""
        if not self.lockstep:
            return self.scene
        phase = self.line.at(t_s)
        self.still_from = (self.source.model, self.seed, phase,   # for a late joiner
                           self.source.anchor)
        return self.source.scene(phase).copy()

    # -- a lockstep group's view of the walk (pi_app/sync/state.py) -----------------------
    @property
    def anchor(self) -> int | None:
        """Where the show's walk is anchored (pi_app/walk.py): part of what the walk is."""
        return self.source.anchor

    def xfade(self) -> tuple[Model, int, float, float, float, int | None] | None:
        """The cross-fade in progress: (old model, old seed, phase offset, t0_s, fade_s,
        the old walk's anchor)."""
        old = self._old
        if old is None:
            return None
        return (old.model, old.seed, self._old_offset, self._xfade_t0, self._xfade_s,
                old.anchor)

    def set_walk(self, model: Model, seed: int, line: PhaseLine,
                 xfade: tuple[Model, int, float, float, float, int | None] | None = None,
                 anchor: int | None = None) -> None:
        """Take a walk as it is (another member's): model, seed, phase line, cross-fade,
        anchor."""
        if model is not self.source.model or int(seed) != self.seed or \
                anchor != self.source.anchor:
            self.source = self._source(model, int(seed), anchor)
        self.seed = int(seed)
        self.line = line
        self.phase = line.at(self._t)
        self._old = None
        if xfade is not None:
            old_model, old_seed, self._old_offset, self._xfade_t0, self._xfade_s, old_anchor \
                = xfade
            self._old = self._source(old_model, int(old_seed), old_anchor)

    def walk_scene(self, model: Model, seed: int, phase: float,
                   anchor: int | None = None) -> np.ndarray:
        """The mapper's scene of (model, seed, anchor) at `phase` (a fresh walk; not the
        show's)."""
        return _Source(model, self.config, int(seed), self.positions,
                       anchor, self.model_every).scene(phase).copy()

    def reconfigure(self, new: Config, model: Model | None, t_s: float) -> list[str]:
        """Apply a reloaded config's live parts (same fixtures, output, fps and safety):
        model (cross-faded), seed, walk settings, master. Returns what changed."""
        old, self.config = self.config, new
        changes = []
        if model is not None:
            self.set_model(model, t_s)
            changes.append(f"model {new.model}")
        if new.seed != old.seed:
            self.set_seed(new.seed, t_s)
            changes.append(f"seed {new.seed}")
        elif new.walk != old.walk and model is None:    # the same walk, new settings
            self.source = _Source(self.source.model, new, self.seed, self.positions,
                                  math.floor(self.line.at(t_s)), self.model_every)
        if new.walk.tempo != old.walk.tempo:            # a live `tempo` stays unless changed
            self.set_tempo(new.walk.tempo, t_s)
        if new.walk != old.walk:
            self.line = self.line.since(
                t_s, seconds_per_waypoint=new.walk.seconds_per_waypoint)
            changes.append("walk")
        if self.lockstep and (new.seed != old.seed or new.walk != old.walk):
            self.line = base_line(new)      # every member that reloads it plays the same
        lit = new.safety.lit_move_deg_per_s
        if lit != old.safety.lit_move_deg_per_s or \
                new.walk.seconds_per_waypoint != old.walk.seconds_per_waypoint:
            self.moves.set_lit(lit)
            self.heads = HeadPaths(self.patch, new.walk.seconds_per_waypoint, lit)
        if new.safety.master != old.safety.master:
            self.safety.master = new.safety.master
            changes.append(f"master {new.safety.master:g}")
        changes += self.looks.reconfigure(new)          # palettes, trims (pi_app/looks.py)
        return changes

    # -- per frame ---------------------------------------------------------------------
    def raw_scene(self, t_s: float) -> np.ndarray:
        """The mapper's scene at show time `t_s`: the walk at its phase there, from the phase
        line (pi_app/phase.py); while music leads (pi_app/music/), the last frame's phase
        plus the music's step for this frame, the line re-anchored there (so a live tempo,
        pause or seed composes with it, and the line carries on when the music stops)."""
        music = self.music if self.music is not None and self.music.active else None
        if music is not None and not self.line.still and self._music_t is not None and \
                t_s > self._music_t:
            step = music.advance(t_s, t_s - self._music_t, self.phase, self.line.rate_per_s)
            self.line = self.line.jump(t_s, self.phase + step)
        self._music_t = t_s
        self.phase = self.line.at(t_s)
        self._t = t_s
        line, phase, fps = self.line, self.phase, self.fps

        def ahead(n: int) -> list[float]:        # the next frames' phases, if no change
            k = round(t_s * fps)
            if music is not None or line.still or n < 2 or k / fps != t_s:
                return [phase]
            return [line.at((k + i) / fps) for i in range(n)]

        heads, src = self.heads, self.source
        aims = heads.aims(phase, src.aims_at, src) if len(heads) else None
        scene = src.scene_ahead(phase, ahead)
        if aims is not None:                     # the heads' slow moves (pi_app/heads.py)
            scene = heads.put(scene, aims)
        if self._old is not None:
            a = (t_s - self._xfade_t0) / self._xfade_s
            if a >= 1.0:
                self._old = None
            else:
                off = self._old_offset
                old_src = self._old
                aims = heads.aims(phase + off, old_src.aims_at, old_src) if len(heads) \
                    else None
                old = old_src.scene_ahead(phase + off, lambda n: [p + off for p in ahead(n)])
                if aims is not None:
                    old = heads.put(old, aims)
                scene = (1.0 - a) * old + a * scene
        scene = self.held(scene)
        if music is not None:             # accents within what the flash limiter passes
            safety = self.safety
            music.accent_budget = min(safety.lum_slew_per_s, safety.red_slew_per_s)
            music.y_weights = safety.y_weights
            scene = music.light(scene)
        if self.blacked_out:
            scene = scene.copy()
            scene[:, LIGHT] = 0.0
        return scene

    def safe_scene(self, t_s: float) -> np.ndarray:
        scene = self.looks(self.raw_scene(t_s))
        if self.identify is not None:           # replaces the show's look for a while (after
            ident = self.identify.scene(scene, t_s)     # the looks: a palette must not hide
            if ident is None:                           # it; before safety, as every frame)
                self.identify = None
            elif not self.blacked_out:
                scene = ident
        if self.wheels is not None:              # what a wheel turns to: before safety,
            self.wanted_colour = np.array(scene[:, COLOUR])     # which whitens wheel heads
        scene = self.moves(scene, self.scene)    # heads move in black
        if self.wheels is not None:              # a wheel on its way: dark
            scene = self.wheels.hold_dark(scene, self.wheel_until, t_s)
        self.scene = self.safety(scene, t_s)
        if self.paused or self.blacked_out:      # holding still: is it still yet?
            self._steady = self._held is not None and np.array_equal(self._held, self.scene)
            self._held = self.scene.copy()
        else:
            self._held, self._steady = None, False
        return self.scene

    def settled(self, t_s: float) -> bool:
        """Paused or blacked out, and the frame the same as the one before, with nothing that
        changes it by itself (a fade, the flash limiter's glide, a head on its way, a model
        cross-fade, the music, identify): every next frame would be this one again, so the
        show may send it without computing it (`Show`'s quiet spell; `resume`)."""
        music = self.music is not None and self.music.active
        return (self._steady and not music and self.identify is None and self._old is None
                and self.safety.steady(t_s) and self.moves.steady()
                and (self.wheels is None or not self.wheels.dwelling(self.wheel_until, t_s))
                and not self._switch_pending)

    def resume(self, t_s: float) -> None:
        """After a quiet spell (frames sent, not computed): on as if the frame before show
        time `t_s` had been computed."""
        if self._music_t is not None:
            self._music_t = t_s - 1.0 / self.fps
        self._t = t_s - 1.0 / self.fps

    def frames(self, t_s: float) -> dict[int, np.ndarray]:
        """The DMX frames of the frame due at show time `t_s` (the patch's own buffers)."""
        frames = self.patch.frames(self.safe_scene(t_s))
        if self.wheels is not None:
            self.wheels.write(frames, self.wanted_colour, self.wheel_slot, self.wheel_until,
                              t_s)
        if self.patch.has_switches:              # a shutter-only fixture has no dimmer to dim
            self._switches(t_s)
        return frames

    def _switches(self, t_s: float) -> None:
        """Open or close the shutter-only fixtures on the frame `frames` just wrote: closed
        through a blackout; else closed when their light (the safe scene's dimmer) is 0, open
        again at `SWITCH_OPEN_AT`, each change `SWITCH_HOLD_S` after the last (show time)."""
        if self.blacked_out:
            self.patch.close_switches()
            return
        assert self.scene is not None
        light = self.scene[self.patch.switch_fixture, DIMMER]
        is_open = self.switch_open
        want = np.where(is_open, light >= SWITCH_CLOSE_BELOW, light >= SWITCH_OPEN_AT)
        since = self.switch_since
        free = (t_s - since >= SWITCH_HOLD_S - 1e-9) | (since > t_s + 1e-9)  # or time went back
        flip = (want != is_open) & free
        if flip.any():
            np.logical_xor(is_open, flip, out=is_open)
            since[flip] = t_s
        self._switch_pending = bool((want != is_open).any())
        if not is_open.all():
            self.patch.close_switches(~is_open)

    def show_over(self, t_s: float, duration_s: float | None) -> bool:
        """Once a stop has begun: is the show over at frame time `t_s`?

        Over when the fade-out is done (lights dark, heads parked), or, for a show with a
        duration, when the duration has come: the fade-out ends there (it starts
        ``fade_out_s`` before), and a head still on its way to park stays where it is — the
        blackout frame holds pan/tilt, never snaps. So ``--duration 5`` lasts 5 s whatever
        the slew limits; a show stopped by Ctrl-C or SIGTERM parks in full."""
        return self.safety.fade_out_done(t_s) or (duration_s is not None and
                                                  t_s >= duration_s - 1e-9)

    def blackout_frames(self) -> dict[int, np.ndarray]:
        """Blackout of the last safe scene: light 0, pan/tilt held, held channels held
        (before any frame: the safety stage's start state, heads at park), as the rig's dark
        frame (`Patch.blackout_frames`: shutters closed at a value that keeps the lamp on)."""
        self.scene = dark = self.safety.blackout(self.scene)
        frames = self.patch.frames(dark)
        if self.wheels is not None:              # the wheels stay: no dwell to wait out
            self.wheels.write(frames, None, self.wheel_slot)
        return self.patch.blackout_frames(frames)


def base_line(config: Config) -> PhaseLine:
    """The config's walk from show time 0 at phase 0 (a group's time 0 is its epoch)."""
    return PhaseLine(0.0, 0.0, config.walk.tempo, config.walk.seconds_per_waypoint)
