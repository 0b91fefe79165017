"""A member's live state as a snapshot: what a late joiner (or a member that missed a
message) takes to play exactly what the others play.

Everything here is independent of the rig and of the frame it was read at: the walk is its
model, seed and phase *line* (`pi_app.phase.PhaseLine`: anchor and rate, not a phase that
moves), a cross-fade is its start time and length, heads-still is the walk position the heads
froze at (each member computes its own heads' aim from it). So members with different rigs
(one Pi per room) share one snapshot, and a snapshot read a second ago is still exact now.

::

    {"t": 28900000.025,                     # show time it was read at
     "model": "nat-aurora", "seed": 7, "line": [t0_s, phase0, tempo, s_per_waypoint, paused],
     "anchor": 1234 | null,                 # where the walk is anchored (pi_app/walk.py)
     "xfade": {"model": ..., "seed": ..., "offset": ..., "t0": ..., "s": ...,
               "anchor": ...} | null,
     "master": 0.8, "level": 1.0, "blackout": false, "palette": "", "preset": "dusk",
     "still": {"model": ..., "seed": ..., "phase": ..., "anchor": ...} | null,
     "playlist": {"name": "evening", "anchor": 1795000000.0, "index": 3} | null}

`capture` reads it between frames (the frame loop's thread); `models_of` lists the models it
needs, loaded beforehand off the frame loop; `restore` applies it between frames.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from ..phase import MAX_PHASE, PhaseLine, phase_ok

log = logging.getLogger("latentdmx.sync")


def _ref(director: Any, model: Any) -> str:
    """The name/path that loads `model` on every member (as the director knows it)."""
    if model is director.pipeline.model:
        return str(director.model_ref)
    for ref, m in director._models.items():
        if m is model:
            return str(ref)
    return str(model.info.name)


def capture(show: Any, t_s: float) -> dict[str, Any]:
    """The show's live state as of show time `t_s` (call between frames)."""
    p, d = show.pipeline, show.director
    xf = p.xfade()
    still = None
    if p.looks.heads_still and p.still_from is not None:
        m, seed, phase, anchor = p.still_from
        still = {"model": _ref(d, m), "seed": int(seed), "phase": float(phase),
                 "anchor": anchor}
    pl = d.playlist
    return {
        "t": float(t_s), "model": str(d.model_ref), "seed": int(p.seed),
        "line": p.line.to_json(), "anchor": p.anchor,
        "xfade": None if xf is None or t_s - xf[3] >= xf[4] else {
            "model": _ref(d, xf[0]), "seed": int(xf[1]), "offset": float(xf[2]),
            "t0": float(xf[3]), "s": float(xf[4]), "anchor": xf[5]},
        "master": float(p.safety.master), "level": float(p.safety.level),
        "blackout": bool(p.blacked_out),
        "palette": p.looks.palette_name, "preset": d.preset, "still": still,
        "playlist": None if pl is None else {"name": pl.name, "anchor": pl.anchor_s,
                                             "index": pl.index},
    }


def digest(state: dict[str, Any]) -> str:
    """A short hash of what a snapshot says (not of when it was read)."""
    body = {k: v for k, v in state.items() if k != "t"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


def models_of(state: dict[str, Any]) -> list[str]:
    """The model references the snapshot needs loaded."""
    refs = [state["model"]]
    for key in ("xfade", "still"):
        if state.get(key):
            refs.append(state[key]["model"])
    return refs


def check(state: Any) -> dict[str, Any]:
    """The snapshot's shape, or ValueError (it came over the wire, signed but still checked)."""
    if not isinstance(state, dict):
        raise ValueError("not an object")
    PhaseLine.from_json(state["line"])
    _anchor(state.get("anchor"))
    for key in ("xfade", "still"):
        if state.get(key):
            _anchor(state[key].get("anchor"))
    if state.get("xfade") and not abs(float(state["xfade"]["offset"])) <= MAX_PHASE:
        raise ValueError("xfade offset")
    if state.get("still") and not phase_ok(float(state["still"]["phase"])):
        raise ValueError("still phase")
    float(state["t"])
    int(state["seed"])
    float(state["master"])
    float(state.get("level", 1.0))          # (a member before the grand master: none)
    for key in ("model", "palette", "preset"):
        if not isinstance(state[key], str):
            raise ValueError(key)
    return state


def _anchor(value: Any) -> int | None:
    """A walk's anchor from the wire: a waypoint index in the phase's range, or None."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_PHASE:
        raise ValueError("anchor")
    return value


def prepare(pipeline: Any, state: dict[str, Any], models: dict[str, Any],
            t_s: float) -> None:
    """Make the walks `restore` will set, looking at show time `t_s`'s segment (the socket
    thread's work, before the snapshot is queued): a walk anchored far behind the group's
    phase would otherwise climb up to a block of its chain at the frame that takes it."""
    phase = PhaseLine.from_json(state["line"]).at(t_s)
    pipeline.prepare_walk(models[state["model"]], int(state["seed"]), phase,
                          anchor=_anchor(state.get("anchor")))
    xf = state.get("xfade")
    if xf:
        pipeline.prepare_walk(models[xf["model"]], int(xf["seed"]),
                              phase + float(xf["offset"]), anchor=_anchor(xf.get("anchor")))


def restore(show: Any, state: dict[str, Any], models: dict[str, Any]) -> None:
    """Play `state` from now on (between frames; `models`: ref -> loaded model)."""
    from ..director import PlaylistRun

    p, d = show.pipeline, show.director
    xf = state.get("xfade")
    xfade = None
    if xf:
        xfade = (models[xf["model"]], int(xf["seed"]), float(xf["offset"]), float(xf["t0"]),
                 float(xf["s"]), _anchor(xf.get("anchor")))
    p.set_walk(models[state["model"]], int(state["seed"]),
               PhaseLine.from_json(state["line"]), xfade, _anchor(state.get("anchor")))
    d.model_ref = state["model"]
    p.safety.master = float(state["master"])
    p.safety.level = float(state.get("level", 1.0))
    p.blacked_out = bool(state["blackout"])
    palette = state["palette"]
    if palette and palette not in p.looks.palettes:
        log.warning("group: palette %r is not in this member's config; playing without one",
                    palette)
        palette = ""
    p.looks.set_palette(palette)
    still = state.get("still")
    p.looks.set_heads_still(False, None)
    if still:
        m, seed, phase = models[still["model"]], int(still["seed"]), float(still["phase"])
        anchor = _anchor(still.get("anchor"))
        p.still_from = (m, seed, phase, anchor)
        p.looks.set_heads_still(True, p.walk_scene(m, seed, phase, anchor))
    d.preset = state["preset"]
    pl = state.get("playlist")
    d.playlist = None
    if pl and pl["name"] in d.config.playlists:
        run = d.check_playlist(pl["name"])
        from ..install_config import parse_duration_s

        d.playlist = PlaylistRun(pl["name"], tuple(run.items),
                                 parse_duration_s(run.every) or 900.0, run.fade_s,
                                 float(pl["anchor"]), int(pl["index"]))
