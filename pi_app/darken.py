"""`latentdmx darken`: black the rig out without the daemon, after it ended however it ended.

The systemd unit runs it as ``ExecStopPost=``, so it runs after every end of the daemon: a
clean stop, a crash, the watchdog's abort, the OOM killer, SIGKILL after TimeoutStopSec.
Only a clean stop leaves the rig dark by itself; olad keeps sending the last frame it got,
and most fixtures hold the last frame they received when a UART falls silent.

What it sends is the blackout (docs/architecture.md): light channels at their dark value (0,
or a closed value that keeps the lamp on where the fixture's 0 switches it off), pan/tilt and
held channels (lamp on, fan auto) where they are, so no head swings and no lamp goes out. Where they
are comes from the lights' own source of truth:

- ``ola``: the universe's current frame, read back from olad;
- otherwise (the UART, sACN, Art-Net): the show's last frames (`pi_app.laststate`, kept in
  RAM by the show), sent for a quarter of a second so every receiver has one;
- neither: the heads go to their park positions, dark.

The light slots are the show's own (from its last-frames file) or else the config's patch.
It claims the lights first (`pi_app.claims`): if a show of the operator's (the same user,
root or the service user) already drives them again (a hand-started one), that show keeps
them safe and darken sends nothing. Under the service (``ExecStopPost=``) it darkens whatever
a claim says: the service's own show has just ended, so a claim there is another
account's, which could say anything ("a show, which keeps it safe") while olad holds the
rig lit.
"""

from __future__ import annotations

import contextlib
import logging
import time

import numpy as np

from . import laststate
from .accounts import trusted_uids
from .claims import Claim, ClaimError, own_unit
from .config import Config
from .errors import LatentDMXError, OutputError
from .outputs import backend_kwargs, make_output, output_for
from .outputs.several import blamed, labels, sub_configs
from .patch import Patch
from .scene import AIM, dark_frames, empty_scene, lit_slots

log = logging.getLogger("latentdmx")

REPEAT_S = 0.25               # frames sent (not to olad) so every receiver has seen one
LAMPS_OFF_S = 6.0             # --lamps-off: long enough for "lamp off after 5 s" (OFL hold 5s)


def _park_frames(cfg: Config, patch: Patch) -> dict[int, np.ndarray]:
    scene = empty_scene(len(patch.fixtures))
    scene[:, AIM] = np.array([f.park for f in cfg.fixtures], np.float32).reshape(-1, 2)
    return {u: f.copy() for u, f in patch.frames(scene).items()}


def _olad_frames(cfg: Config, universes) -> dict[int, np.ndarray] | None:
    """The rig universes' current frames in olad; None if olad is not there."""
    from .outputs.ola import OlaQuery

    o = cfg.output.ola
    out = {}
    try:
        with OlaQuery(o.host, o.port) as q:
            for u in universes:
                data = q.dmx(int(o.universe_map.get(str(u), u)))
                frame = np.zeros(512, np.uint8)
                frame[:len(data)] = data[:512]
                out[u] = frame
    except OutputError as exc:
        log.info("olad: %s", exc.what)
        return None
    return out


def darken(cfg: Config, *, lamps_off: bool = False) -> str:
    """Send the blackout to the config's output (every one of its ``[[outputs]]``); returns
    what was done, in one line (one per output).

    `lamps_off` (``latentdmx darken --lamps-off``, the end of the day): the blackout with
    every lamp-off value the fixture files name (`Patch.lamps_off_slots`), held for
    `LAMPS_OFF_S`; refused while a show drives the lights. Never by default: a discharge lamp
    switched off takes minutes to strike again."""
    if cfg.outputs:
        return _darken_each(cfg, lamps_off)
    return _darken(cfg, lamps_off=lamps_off)


def _darken_each(cfg: Config, lamps_off: bool) -> str:
    """Each of the ``[[outputs]]`` in turn, as if it were the one output; the show's last
    frames are in one file for all of them (named by all their targets). One output that
    fails does not keep the others lit: its error is raised after they are dark."""
    every = output_for(cfg, Patch(cfg)).targets()
    lines, failed = [], None
    for i, (label, sub) in enumerate(zip(labels(cfg), sub_configs(cfg), strict=True)):
        try:
            with blamed(cfg, i):
                lines.append(f"{label}: {_darken(sub, every, lamps_off=lamps_off)}")
        except LatentDMXError as exc:
            failed = failed or exc
    if failed is not None:
        for line in lines:
            log.info("%s", line)
        raise failed
    return "\n".join(lines)


def _darken(cfg: Config, last_targets: tuple[str, ...] | None = None, *,
            lamps_off: bool = False) -> str:
    patch = Patch(cfg)
    kind = cfg.output.kind
    sent: dict[int, np.ndarray] = {}
    # Closing sends the blackout of the last frames: here, what this command sent (with
    # --lamps-off the patch's blackout would put the lamps' held "on" values back).
    out = make_output(kind, cfg, patch.universes,
                      blackout=lambda frames: {u: f.copy() for u, f in sent.items()},
                      **backend_kwargs(kind, cfg, patch))
    targets = out.targets()
    if not targets:
        return f"nothing to do: output {kind} drives no lights"
    claim: Claim | contextlib.nullcontext = contextlib.nullcontext()
    try:
        claim = Claim(targets, "darken")
    except ClaimError as exc:
        if own_unit():                          # the service's: whatever the claim says
            log.warning("darkening anyway: %s is claimed by %s", exc.target,
                        exc.holder.describe())
        elif lamps_off:
            raise OutputError(f"{exc.target} is driven by {exc.holder.describe()}: lamps are "
                              "never switched off under a running show", field="--lamps-off",
                              fix="stop the show first (systemctl stop latentdmx)") from None
        elif exc.holder.role == "show" and exc.holder.uid in trusted_uids():
            return (f"nothing to do: {exc.target} is driven by {exc.holder.describe()}, "
                    "which keeps it safe")
        else:
            raise
    with claim:
        path = laststate.state_path(last_targets or targets)
        last = laststate.read(path) if path is not None else None
        light, dark_v = (last.light, last.dark_v) if last is not None else patch.dark_slots()
        source = "the show's last frames"
        frames: dict[int, np.ndarray] | None = None
        if kind == "ola":
            frames = _olad_frames(cfg, patch.universes)
            if frames is None:
                return "nothing to do: olad is not running, so it holds no frame"
            source = "olad's current frames"
        elif last is not None:
            frames = {u: last.frames[u] for u in patch.universes if u in last.frames}
        if not frames or set(frames) != set(patch.universes):
            frames, source = _park_frames(cfg, patch), "no last frame known: heads to park"
        dark = dark_frames(frames, light, dark_v)      # shutters closed, lamps kept on
        lit = lit_slots(frames, light, dark_v)
        n_off = 0
        if lamps_off:
            off = patch.lamps_off_slots()
            n_off = sum(len(v) for v in off[0].values())
            dark = dark_frames(dark, *off)
        elif kind == "ola" and lit == 0:
            return f"already dark ({', '.join(targets)})"
        sent.update(dark)
        with out:
            t_end = time.monotonic() + (LAMPS_OFF_S if lamps_off else
                                        REPEAT_S if kind != "ola" else 0.0)
            period = 1.0 / cfg.fps
            while True:
                out.send(dark)
                if time.monotonic() >= t_end:
                    break
                time.sleep(period)
        health = out.health()                   # after close(): the blackout is delivered
        if kind == "ola" and not health.get("delivered"):
            raise OutputError(f"olad at {health.get('server')} did not take the blackout",
                              field="output.ola", fix="check olad (`latentdmx doctor`)")
        lamps = (f"; lamp-off value sent on {n_off} channel{'s' if n_off != 1 else ''}"
                 if lamps_off else "")
        return (f"blackout sent to {', '.join(targets)} ({lit} light channel"
                f"{'s' if lit != 1 else ''} were on; from {source}{lamps})")
