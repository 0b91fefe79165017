"""The director: what the show plays, and when — the schedule, playlists and preset recalls.

The frame loop calls ``director.step(t_s)`` once per frame, before the pipeline. It costs a
float comparison on most frames: the schedule and the playlist are looked at only when the
wall clock passes the next change they announced.

* **Schedule** (`pi_app.schedule`): outside every window the light fades out through the
  safety stage (fade-out, heads to park), then the director goes *idle*: the loop sends the
  same dark frame every period (the output keeps its refresh) and runs no model, mapper or
  safety work. When a window opens the pipeline wakes and fades in; the window's preset is
  recalled (or its playlist started).
* **Playlists**: item ``k`` plays from ``anchor + k * every`` (the anchor: the window's
  opening, or when the playlist was started), so a restart resumes the right item. A model
  not yet loaded is loaded on a helper thread; the switch waits for it, never the clock.
* **Presets**: `capture` reads the live look, `recall` applies one between frames with a
  cross-fade (the old walk keeps moving while it fades out). A preset's `master` is the
  look's own level (`Safety.level`), under the operator's grand master (`Safety.master`,
  set by `dim`), which no recall, playlist step or schedule window changes.

The wall clock is injected (``wall_s(t_s) -> Unix seconds``), so tests run a night on
virtual time across midnight and DST.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import Config, PlaylistConfig
from .errors import ControlError, LatentDMXError
from .install_config import parse_duration_s
from .presets import Preset, PresetStore, check_name, config_presets
from .schedule import Schedule, State, Window, format_local

log = logging.getLogger("latentdmx")
DEFAULT_FADE_S = 2.0


@dataclass
class PlaylistRun:
    name: str
    items: tuple[object, ...]
    every_s: float
    fade_s: float
    anchor_s: float                 # wall time of item 0
    index: int = -1                 # the item playing (-1: none yet)

    def due_index(self, now_s: float) -> int:
        return math.floor((now_s - self.anchor_s) / self.every_s)

    def next_switch_s(self) -> float:
        return self.anchor_s + (self.index + 1) * self.every_s

    def item(self, k: int) -> object:
        return self.items[k % len(self.items)]


class Director:
    def __init__(self, config: Config, pipeline: Any, presets: PresetStore,
                 wall_s: Callable[[float], float], model_ref: str,
                 loader: Callable[[str], Any] | None = None) -> None:
        from .runtime import load_model

        self.pipeline = pipeline
        self.presets = presets
        self.wall_s = wall_s
        self.model_ref = model_ref            # what loads the playing model (name or path)
        self._load = loader or load_model
        self._models: dict[str, Any] = {pipeline.model.info.name: pipeline.model,
                                        model_ref: pipeline.model}
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="latentdmx-load")
        self._pending: dict[object, cf.Future] = {}
        self.default_fade_s = DEFAULT_FADE_S
        self.preset = ""                      # the last preset recalled
        self.playlist: PlaylistRun | None = None
        self.idle = False                     # dark, parked, no pipeline work
        self.idle_frames: dict[int, np.ndarray] = {}
        self._going_dark = False
        self._window: Window | None = None
        self._state: State | None = None
        self._next_check_s = -math.inf
        self._warned: set[object] = set()
        self.nominal = False    # lockstep: events take effect at their own time (_at)
        self.waits = False      # virtual time: a rotation waits for its item's load, so it
        self.configure(config)  # comes at its frame whatever the loader thread's speed

    # -- config ---------------------------------------------------------------------------
    def configure(self, config: Config, schedule: Schedule | None = None) -> None:
        """(Re)read the installation sections: schedule (`schedule`: made already, on a
        reload's reader thread), presets, playlists."""
        self.config = config
        self.schedule = schedule or Schedule(config.schedule, config.location)
        self.presets.config_presets = config_presets(config)
        self._next_check_s = -math.inf               # look at the schedule again
        if self.playlist and self.playlist.name not in config.playlists:
            self.playlist = None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- per frame ------------------------------------------------------------------------
    def start(self, t_s: float) -> None:
        """Before the first frame: go straight to the schedule's state (dark: no fade-in)."""
        now = self.wall_s(t_s)
        if self.config.playlist and self.schedule.always_on:
            self._start_playlist(self.config.playlist,
                                 self.wall_s(0.0) if self.nominal else now, now)
        self._check_schedule(t_s, now, first=True)

    def step(self, t_s: float, stopping: bool = False) -> bool:
        """Apply what is due at show time `t_s`; True if the rig is idle (send `idle_frames`)."""
        if stopping:
            return self.idle
        now = self.wall_s(t_s)
        if now >= self._next_check_s:
            self._check_schedule(t_s, now)
        if self._going_dark and self.pipeline.safety.fade_out_done(t_s):
            self._go_idle()
        pl = self.playlist
        if pl is not None and not self.idle and not self._going_dark and \
                now >= pl.next_switch_s():
            # in a group the first item waits for its load (every member plays it from the
            # same frame); after it, each item is loaded a whole item ahead
            self._rotate(t_s, now, wait=self.nominal and pl.index < 0)
        return self.idle

    def calm(self, t_s: float) -> bool:
        """Would `step` at show time `t_s` leave the show alone (playing, nothing due: no
        schedule check, no playlist switch, no dark spell under way)? For frames worked out
        ahead (pi_app/ahead.py)."""
        if self.idle or self._going_dark:
            return False
        now = self.wall_s(t_s)
        pl = self.playlist
        return now < self._next_check_s and (pl is None or now < pl.next_switch_s())

    @property
    def going_dark(self) -> bool:
        """The schedule's window has closed and the light is fading out."""
        return self._going_dark

    def _go_idle(self) -> None:
        self._going_dark = False
        self.idle = True
        self.idle_frames = {u: f.copy() for u, f in self.pipeline.blackout_frames().items()}
        log.info("schedule: dark (heads parked), idle until %s", self.next_event_text() or
                 "the next window")

    # -- schedule -------------------------------------------------------------------------
    def _check_schedule(self, t_s: float, now_s: float, first: bool = False) -> None:
        if self.schedule.always_on:
            self._next_check_s = math.inf
            return
        when = dt.datetime.fromtimestamp(now_s, dt.UTC)
        state = self.schedule.state(when)
        self._state = state
        self._next_check_s = state.next_change.timestamp() if state.next_change else \
            now_s + 86400.0
        window = state.window
        if window == self._window and not first:
            return
        self._window = window
        if window is None:
            self.playlist = None
            if first:
                self._go_idle()
            elif not self.idle:
                self._going_dark = True
                self.pipeline.safety.start_fade_out(t_s)
                log.info("schedule: off at %s, fading out", format_local(
                    when.astimezone(self.schedule.tz)))
            return
        waking = first or self.idle or self._going_dark
        if self.idle or self._going_dark:
            self.idle = False
            self._going_dark = False
            self.pipeline.wake(t_s)
        log.info("schedule: on (%s) until %s", window.what,
                 format_local(self.schedule.local(window.off)))
        fade = 0.0 if waking else self.default_fade_s
        if window.entry.preset:
            self.playlist = None
            self._recall_named(window.entry.preset, self._at(t_s, window.on.timestamp()),
                               fade)
        elif window.entry.playlist:
            self._start_playlist(window.entry.playlist, window.on.timestamp())
            if waking and self.playlist is not None:
                self._rotate(t_s, now_s, fade_s=0.0, wait=True)
        elif self.config.playlist:
            self._start_playlist(self.config.playlist, window.on.timestamp())

    def schedule_text(self) -> str:
        if self.schedule.always_on:
            return "always on (no [[schedule]])"
        st = self._state
        if st is None:
            return ""
        if st.window is None:
            return "off (dark, heads parked)"
        return f"on: {st.window.what}, {st.window.entry.on} to {st.window.entry.off}"

    def next_event_text(self) -> str:
        st = self._state
        if st is None or st.next_change is None:
            return ""
        t = format_local(st.next_change.astimezone(self.schedule.tz))
        if st.next_window is None:
            return f"off at {t}"
        w = st.next_window
        verb = "on" if st.window is None else "switch"
        return f"{verb} at {t} ({w.entry.on}): {w.what}"

    # -- playlists ------------------------------------------------------------------------
    def check_playlist(self, name: str) -> PlaylistConfig:
        pl = self.config.playlists.get(name)
        if pl is None:
            known = ", ".join(sorted(self.config.playlists)) or "none defined"
            raise ControlError(f"no playlist {name!r}", field="playlist",
                               fix=f"known playlists: {known} (define [playlists.NAME] in "
                                   "the config)")
        return pl

    def _start_playlist(self, name: str, anchor_s: float, now_s: float | None = None) -> None:
        """Run playlist `name` with item 0 at wall time `anchor_s`; the item due at `now_s`
        (default: the anchor's) is loaded from now on."""
        pl = self.check_playlist(name)
        every = parse_duration_s(pl.every) or 900.0
        self.playlist = PlaylistRun(name, tuple(pl.items), every, pl.fade_s, anchor_s)
        due = self.playlist.due_index(anchor_s if now_s is None else max(anchor_s, now_s))
        self._prefetch(self.playlist.item(due))

    def start_playlist(self, name: str, t_s: float) -> None:
        """Live: rotate `name` from its first item, now."""
        now = self.wall_s(t_s)
        self._start_playlist(name, now)
        self._rotate(t_s, now, wait=False)

    def stop_playlist(self) -> None:
        self.playlist = None

    def next_item(self, t_s: float) -> None:
        pl = self.playlist
        if pl is None:
            return
        now = self.wall_s(t_s)
        # shift the anchor so the next item is due now and keeps its full time
        pl.anchor_s = now - (pl.index + 1) * pl.every_s
        self._rotate(t_s, now)

    def playlist_text(self) -> str:
        pl = self.playlist
        if pl is None:
            return ""
        item = pl.item(pl.index) if pl.index >= 0 else None
        what = item if isinstance(item, str) else _item_text(item) if item else "starting"
        return f"{pl.name} ({what}; every {_dur(pl.every_s)})"

    def _rotate(self, t_s: float, now_s: float, fade_s: float | None = None,
                wait: bool = False) -> None:
        pl = self.playlist
        assert pl is not None
        k = pl.due_index(now_s)
        item = pl.item(k)
        ready = self._ready(item, wait=wait)
        if ready is None:
            return                                  # loading: try again next frame
        pl.index = k
        self._prefetch(pl.item(k + 1))
        if isinstance(ready, Exception):
            return                                  # logged once; the look stays
        preset, model = ready
        self.recall(preset, model, self._at(t_s, pl.anchor_s + k * pl.every_s),
                    pl.fade_s if fade_s is None else fade_s)
        log.info("playlist %s: %s", pl.name, item if isinstance(item, str) else
                 _item_text(item))

    def _item_preset(self, item: object) -> Preset:
        if isinstance(item, str):
            return self.presets.get(item)
        assert isinstance(item, dict)
        p = self.pipeline
        return Preset(name="", model=str(item.get("model") or self.model_ref),
                      seed=int(item.get("seed", p.seed)), phase=0.0,
                      tempo=float(item.get("tempo", p.tempo)), master=p.safety.level,
                      palette=str(item.get("palette", p.looks.palette_name)),
                      heads_still=p.looks.heads_still)

    def _resolve(self, item: object) -> tuple[Preset, Any]:
        """An item's preset and model, and the walk its recall makes, made ahead (the
        loader's thread or a client's: `Pipeline.prepare_walk`)."""
        preset = self._item_preset(item)
        model = self._model(preset.model)
        self.pipeline.prepare_walk(model, preset.seed, preset.phase)
        return preset, model

    def resolve_item(self, item: object) -> tuple[Preset, Any]:
        """A preset name or a playlist item table -> (its preset, its model, loaded now):
        on a client's thread, never the frame loop's."""
        try:
            return self._resolve(item)
        except LatentDMXError as exc:
            raise ControlError(f"{_item_text(item) if isinstance(item, dict) else item}: "
                               f"{exc.what}", field="fpp.map", fix=exc.fix) from None

    def _prefetch(self, item: object) -> None:
        key = _key(item)
        if key not in self._pending:
            self._pending[key] = self._pool.submit(self._resolve, item)

    def _ready(self, item: object, wait: bool) -> tuple[Preset, Any] | Exception | None:
        key = _key(item)
        fut = self._pending.get(key)
        if fut is None:
            self._prefetch(item)
            fut = self._pending[key]
        if not fut.done() and not (wait or self.waits):
            return None
        del self._pending[key]                      # re-read next time (presets change)
        try:
            return fut.result()
        except LatentDMXError as exc:
            if key not in self._warned:
                self._warned.add(key)
                log.error("playlist item %s skipped: %s", key, exc)
            return exc

    def _at(self, t_s: float, event_wall_s: float) -> float:
        """The show time a schedule or playlist event takes effect: now (`t_s`), or in a
        lockstep group its own time, so that every member, however late it started,
        computes the same walk (pi_app/sync)."""
        return t_s - (self.wall_s(t_s) - event_wall_s) if self.nominal else t_s

    # -- presets --------------------------------------------------------------------------
    def _model(self, ref: str) -> Any:
        model = self._models.get(ref)
        if model is None:
            model = self._models[ref] = self._load(ref)
        return model

    def prepare_recall(self, name: str) -> tuple[Preset, Any]:
        """Read preset `name` and load its model (the client's thread)."""
        check_name(name)
        preset = self.presets.get(name)
        try:
            return preset, self._model(preset.model)
        except LatentDMXError as exc:
            raise ControlError(f"preset {name!r}: {exc.what}", field="preset",
                               fix=exc.fix) from None

    def _recall_named(self, name: str, t_s: float, fade_s: float) -> None:
        ready = self._ready(name, wait=True)
        if isinstance(ready, tuple):
            self.recall(ready[0], ready[1], t_s, fade_s)

    def recall(self, preset: Preset, model: Any, t_s: float, fade_s: float) -> None:
        """Play `preset` from show time `t_s`, cross-fading over `fade_s` (frame loop)."""
        p = self.pipeline
        if self.idle or self._going_dark:
            fade_s = 0.0
        p.recall(model, preset.seed, preset.phase, t_s, fade_s)
        p.set_tempo(preset.tempo, t_s)
        p.safety.level = preset.master      # the preset's own level; the grand master stays
        palette = preset.palette if preset.palette in p.looks.palettes else ""
        if preset.palette and not palette:
            log.warning("preset %s: no palette %r in the config; playing without one",
                        preset.name, preset.palette)
        p.looks.set_palette(palette)
        p.looks.set_heads_still(preset.heads_still, p.still_aim(t_s))
        self.model_ref = preset.model
        if preset.name:
            self.preset = preset.name

    def set_model(self, model: Any, ref: str, t_s: float) -> None:
        self.pipeline.set_model(model, t_s)
        self.model_ref = ref
        self._models.setdefault(ref, model)

    def capture(self, name: str) -> Preset:
        """The live look as preset `name` (any thread: reads numbers only)."""
        check_name(name)
        p = self.pipeline
        return Preset(name=name, model=self.model_ref, seed=int(p.seed),
                      phase=round(float(p.phase), 6), tempo=float(p.tempo),
                      master=float(p.safety.level), palette=p.looks.palette_name,
                      heads_still=p.looks.heads_still, music={}, saved_at=time.time())


def _key(item: object) -> object:
    return item if isinstance(item, str) else tuple(sorted(dict(item).items()))  # type: ignore


def _item_text(item: object) -> str:
    if isinstance(item, dict):
        return ", ".join(f"{k} {v}" for k, v in item.items())
    return str(item)


def _dur(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"
