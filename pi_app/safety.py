"""Safety stage (placeholder until the flash limiter lands): master dimmer, fades, blackout.

Interface used by the show: ``Safety(config, patch, fps)``; ``safety(scene, t_s)`` per frame;
``master`` settable; ``start_fade_out(t_s)``; ``fade_out_done(t_s)``; ``blackout(scene)``.
"""

from __future__ import annotations

import numpy as np

from . import scene as sc


class Safety:
    def __init__(self, config, patch, fps: float) -> None:
        self.cfg = config.safety
        self.fps = float(fps)
        self.master = float(self.cfg.master)
        self._fade_out_t: float | None = None
        self._out = sc.empty_scene(len(patch))

    def __call__(self, scene: np.ndarray, t_s: float) -> np.ndarray:
        gain = self.master
        if self.cfg.fade_in_s > 0:
            gain *= min(1.0, t_s / self.cfg.fade_in_s)
        if self._fade_out_t is not None:
            left = 1.0 - (t_s - self._fade_out_t) / self.cfg.fade_out_s if self.cfg.fade_out_s \
                else 0.0
            gain *= max(0.0, left)
        np.copyto(self._out, scene)
        self._out[:, sc.DIMMER] *= gain
        return self._out

    def start_fade_out(self, t_s: float) -> None:
        if self._fade_out_t is None:
            self._fade_out_t = t_s

    def fade_out_done(self, t_s: float) -> bool:
        return self._fade_out_t is not None and t_s - self._fade_out_t >= self.cfg.fade_out_s

    def blackout(self, scene: np.ndarray | None = None) -> np.ndarray:
        return sc.blackout(self._out if scene is None else scene)
