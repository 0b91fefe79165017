"""One frame's way through the program, without clock or output:
walk -> model -> mapper -> safety -> patch.

`Pipeline.frames(t_s)` is what the show loop calls once per frame, and what `render` and
the benchmarks call offline. Live changes (tempo, pause, blackout, seed, model swap with a
cross-fade) are plain method calls made between frames by the frame loop's thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .config import Config
from .identify import IdentifySequence
from .looks import Looks
from .mapper import make_mapper, streams_for
from .moves import Moves
from .patch import Patch
from .runtime import Model
from .safety import Safety
from .scene import LIGHT
from .walk import LatentWalk

if TYPE_CHECKING:
    from .music.drive import MusicDrive

MODEL_XFADE_S = 2.0


class _Source:
    """A model with its walk and mapper: latent phase -> raw scene."""

    def __init__(self, model: Model, config: Config, seed: int, positions: np.ndarray):
        self.model = model
        self.seed = seed
        info = model.info
        guard = None
        if info.kind == "points":                 # re-route segments that would tear
            xy = [info.fields.index("x"), info.fields.index("y")]
            def guard(z: np.ndarray) -> np.ndarray:
                return model.generate_scratch(z)[:, xy]
        self.walk = LatentWalk(seed, streams_for(info, len(positions)), info.latent_dim,
                               loop_waypoints=config.walk.loop_waypoints,
                               spread=config.walk.spread, guard=guard,
                               segment_s=config.walk.seconds_per_waypoint)
        self.mapper = make_mapper(info, positions)

    def scene(self, phase: float) -> np.ndarray:
        return self.mapper(self.model.generate(self.walk.at(phase)))


class Pipeline:
    def __init__(self, config: Config, model: Model, *, seed: int | None = None) -> None:
        self.config = config
        self.fps = config.fps
        self.patch = Patch(config)
        self.positions = np.array([f.position for f in config.fixtures], np.float32)
        self.looks = Looks(config, self.patch)  # palette, still heads, trims (before safety)
        self.safety = Safety(config, self.patch, self.fps)
        self.moves = Moves(self.patch, self.fps)     # heads reposition in the dark
        self.seed = config.seed if seed is None else int(seed)
        self.source = _Source(model, config, self.seed, self.positions)
        self._old: _Source | None = None        # the model being cross-faded out
        self._xfade_t0 = 0.0
        self._xfade_s = MODEL_XFADE_S
        self._old_offset = 0.0                   # the old source's phase minus the new one's
        self.tempo = config.walk.tempo
        self.paused = False
        self.blacked_out = False
        self.phase = 0.0                         # position on the walk, in waypoints
        self._last_t: float | None = None
        self.scene: np.ndarray | None = None     # the last safe scene (for viewers)
        self.music: MusicDrive | None = None     # the beat's hold on walk and light (music/)
        self.identify: IdentifySequence | None = None   # `latentdmx identify` through the show
        self._held: np.ndarray | None = None    # the last safe scene while holding still
        self._steady = False                     # ... and it was the same as the one before

    @property
    def model(self) -> Model:
        return self.source.model

    def fixture_names(self) -> list[str]:
        return [f.name for f in self.patch.fixtures]

    # -- live changes (call between frames) ---------------------------------------------
    def set_seed(self, seed: int) -> None:
        self.seed = int(seed)
        self.source = _Source(self.source.model, self.config, self.seed, self.positions)
        self.phase = 0.0

    def set_model(self, model: Model, t_s: float) -> None:
        """Swap models with a cross-fade of `MODEL_XFADE_S` seconds."""
        self.recall(model, self.seed, self.phase, t_s, MODEL_XFADE_S)

    def recall(self, model: Model, seed: int, phase: float, t_s: float,
               xfade_s: float) -> None:
        """Jump to (model, seed, phase), cross-fading from where the show is over `xfade_s`
        seconds (0: a cut; the safety stage still limits it). The old walk keeps moving."""
        if xfade_s > 0:
            self._old = self.source
            self._old_offset = self.phase - float(phase)
            self._xfade_t0 = t_s
            self._xfade_s = xfade_s
        else:
            self._old = None
        self.seed = int(seed)
        self.source = _Source(model, self.config, self.seed, self.positions)
        self.phase = float(phase)

    def wake(self, t_s: float) -> None:
        """Play again after an idle dark spell (the schedule's next window): the walk goes on
        from its phase, the light fades in through the safety stage."""
        self._last_t = None
        self.safety.restart(t_s)

    def reconfigure(self, new: Config, model: Model | None, t_s: float) -> list[str]:
        """Apply a reloaded config's live parts (same fixtures, output, fps and safety):
        model (cross-faded), seed, walk settings, master. Returns what changed."""
        old, self.config = self.config, new
        changes = []
        if model is not None:
            self.set_model(model, t_s)
            changes.append(f"model {new.model}")
        if new.seed != old.seed:
            self.set_seed(new.seed)
            changes.append(f"seed {new.seed}")
        elif new.walk != old.walk and model is None:    # the same walk, new settings
            self.source = _Source(self.source.model, new, self.seed, self.positions)
        if new.walk.tempo != old.walk.tempo:            # a live `tempo` stays unless changed
            self.tempo = new.walk.tempo
        if new.walk != old.walk:
            changes.append("walk")
        if new.safety.master != old.safety.master:
            self.safety.master = new.safety.master
            changes.append(f"master {new.safety.master:g}")
        changes += self.looks.reconfigure(new)          # palettes, trims (pi_app/looks.py)
        return changes

    # -- per frame ---------------------------------------------------------------------
    def raw_scene(self, t_s: float) -> np.ndarray:
        """The mapper's scene at show time `t_s` (advances the walk unless paused)."""
        music = self.music if self.music is not None and self.music.active else None
        if self._last_t is not None and not (self.paused or self.blacked_out):
            if music is not None:
                self.phase += music.advance(t_s, t_s - self._last_t, self.phase,
                                            self.tempo / self.config.walk.seconds_per_waypoint)
            else:
                self.phase += ((t_s - self._last_t) * self.tempo /
                               self.config.walk.seconds_per_waypoint)
        self._last_t = t_s
        scene = self.source.scene(self.phase)
        if self._old is not None:
            a = (t_s - self._xfade_t0) / self._xfade_s
            if a >= 1.0:
                self._old = None
            else:
                scene = (1.0 - a) * self._old.scene(self.phase + self._old_offset) + a * scene
        if music is not None:
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
        self.moves.on_the_beat(self.music is not None and self.music.active)
        self.scene = self.safety(self.moves(scene, self.scene), t_s)   # heads move in black
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
                and self.safety.steady(t_s) and self.moves.steady())

    def resume(self, t_s: float) -> None:
        """After a quiet spell (frames sent, not computed): on as if the frame before show
        time `t_s` had been computed."""
        if self._last_t is not None:
            self._last_t = t_s - 1.0 / self.fps

    def frames(self, t_s: float) -> dict[int, np.ndarray]:
        """The DMX frames of the frame due at show time `t_s` (the patch's own buffers)."""
        return self.patch.frames(self.safe_scene(t_s))

    def blackout_frames(self) -> dict[int, np.ndarray]:
        """Blackout of the last safe scene: light 0, pan/tilt held, held channels held
        (before any frame: the safety stage's start state, heads at park)."""
        self.scene = dark = self.safety.blackout(self.scene)
        return self.patch.frames(dark)
