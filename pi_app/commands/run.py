"""`latentdmx run` (the daemon) and `latentdmx check` (validate a config, print the patch)."""

from __future__ import annotations

import contextlib
import logging
import sys

import click

from ..config import load_run_config
from ..errors import ConfigError, LatentDMXError
from ..outputs import registry
from ..outputs.several import kinds_text


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def load_show_model(cfg, from_flag: bool):
    """The config's model; a model name that does not exist is blamed on the config file's
    `model` field (or on --model), not on a path the user never typed."""
    from ..errors import ModelError
    from ..runtime import MAX_MODEL_SHARE, find_model, load_model

    try:
        find_model(cfg.model)
    except ModelError as exc:
        raise ModelError(f"no such model {cfg.model!r}", file="command line" if from_flag
                         else cfg.path, field="--model" if from_flag else "model",
                         fix=exc.fix) from None
    return load_model(cfg.model, frame_budget_s=MAX_MODEL_SHARE / cfg.fps)


def check_other_models(cfg) -> None:
    """The models the config's presets and playlist items name load, stay finite and fit the
    frame period, as the config's own model must (`run` would skip such an item, logged)."""
    from ..errors import ModelError
    from ..runtime import MAX_MODEL_SHARE, load_model

    refs = {f"presets.{name}.model": p.model for name, p in cfg.presets.items() if p.model}
    refs.update({f"playlists.{name}.items[{j}].model": item["model"]
                 for name, pl in cfg.playlists.items() for j, item in enumerate(pl.items)
                 if isinstance(item, dict) and item.get("model")})
    done: set[str] = {cfg.model}
    for fld, ref in refs.items():
        if ref in done:
            continue
        done.add(ref)
        try:
            load_model(ref, frame_budget_s=MAX_MODEL_SHARE / cfg.fps)
        except ModelError as exc:
            raise ModelError(f"model {ref!r}: {exc.what}", file=cfg.path, field=fld,
                             fix=exc.fix) from None


@click.command()
@click.option("--config", "config_path", type=click.Path(),
              help="Rig config (TOML). Default: the bundled demo rig (3 Lumeri heads, 4 pars).")
@click.option("--output", type=click.Choice(registry.names()),
              help=f"Where frames go: {registry.help_text()}. Default: the config's "
                   "output.kind (sim).")
@click.option("--model", help="Model: a bundled or user model name (`latentdmx models` lists "
                              "them) or a path to a model folder. Default: the config's "
                              "(nat-aurora).")
@click.option("--fps", type=float, help="Frames per second, 1..44. Default: config (40).")
@click.option("--seed", type=int, help="Walk seed: the same seed plays the same show.")
@click.option("--duration", type=float, metavar="SECONDS",
              help="Stop after this many seconds, kept to the frame (the fade-out ends "
                   "then; heads still parking stay put). Default: run until "
                   "Ctrl-C / SIGTERM.")
@click.option("--record", type=click.Path(dir_okay=False), metavar="PATH",
              help="Record the DMX stream as an ola_recorder show file "
                   "(replay on real lights: `ola_recorder --playback PATH`).")
@click.option("--web", is_flag=True,
              help="Serve the live web page ([preview] in the config: host, port, token; "
                   "default http://127.0.0.1:8044/).")
@click.option("--audio", type=click.Path(dir_okay=False), metavar="FILE",
              help="Follow the music of a sound file (WAV, FLAC, OGG), played through the sound "
                   "card as the show runs, the light in step with it (live sound: [audio] "
                   "device in the config). Needs the music extra.")
@click.option("--mute", is_flag=True,
              help="With --audio: follow the file without playing it (the sound comes from "
                   "elsewhere).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def run(config_path, output, model, fps, seed, duration, record, web, audio, mute, verbose):
    """Play a show: walk the model's latent space and send DMX frames.

    \b
    Examples:
      latentdmx run                                  # demo rig, default model, simulator
      latentdmx run --duration 5 --record show.txt   # record 5 s for ola_recorder
      latentdmx run --config rig.toml --output ola   # real lights through olad
      latentdmx run --config rig.toml --output sacn  # sACN nodes / WLED on the LAN
      latentdmx run --audio song.wav                 # plays the song; the light follows
      latentdmx run --audio song.wav --mute          # follows it without playing it

    Stops cleanly on Ctrl-C or SIGTERM: fade-out, blackout frame, exit 0. SIGHUP reloads the
    config. While it runs, `latentdmx status`, `dim`, `pause`, ... control it.

    One show per set of lights: if another LatentDMX program already drives the same olad
    universe or serial port (however it was started), this one is refused, naming it.
    """
    from ..lean import settle_after_start, without_openssl

    without_openssl()                           # before NumPy's random module: 3.4 MB less
    from ..show import Show

    _logging(verbose)
    if duration is not None and duration < 0:
        raise ConfigError("must be 0 or more", file="command line", field="--duration",
                          fix="give seconds, e.g. --duration 5")
    cfg = load_run_config(config_path, output=output, model=model, fps=fps, seed=seed)
    if web:
        import dataclasses
        cfg = cfg.replace(preview=dataclasses.replace(cfg.preview, web=True))
    mdl = load_show_model(cfg, from_flag=model is not None)
    check_other_models(cfg)
    from ..outputs import output_for
    from ..patch import Patch

    patch = Patch(cfg)
    with _blamed_on(cfg):
        out = output_for(cfg, patch)
    show = Show(cfg, out, model=mdl, duration_s=duration, record_path=record,
                config_path=config_path, clock=_clock(kinds_text(cfg)), audio=audio,
                play_audio=not mute)
    show.pipeline.check_model(mdl)      # finite, and cheap enough for the frame period
    log = logging.getLogger("latentdmx")
    from ..config_rules import config_warnings

    for line in config_warnings(cfg):
        log.warning("%s", line)
    show.listeners.append(_status_logger(log, every_s=30.0))
    started = (f"playing {mdl.info.name} ({mdl.info.family}) on {len(cfg.fixtures)} fixtures, "
               f"{len(patch.universes)} universe(s), output {kinds_text(cfg)}, {cfg.fps:g} fps, "
               f"seed {show.pipeline.seed}" + (f", recording to {record}" if record else "") +
               (f", music from {show.music.audio.describe}" if show.music.audio else ""))

    def first_frame(s) -> None:                 # logged once the first frame is out
        log.info("%s", started)
        s.listeners.remove(first_frame)

    show.listeners.insert(0, first_frame)
    settle_after_start(show)                    # heap trimmed, start-up's objects frozen
    poller = None
    if cfg.rdm.sensors and cfg.output.kind == "ola":    # RDM sensors in `status`, off the loop
        from ..rdm_sensors import SensorPoller

        show.sensors = poller = SensorPoller(cfg).start()
    elif cfg.rdm.sensors:
        log.warning("[rdm] sensors: RDM is read through olad; output %s has none",
                    cfg.output.kind)
    try:
        code = show.run()
    finally:
        if poller is not None:
            poller.stop()
    snap = show.status_snapshot
    log.info("stopped after %s frames (%s late)%s", snap.get("frames", 0),
             snap.get("late_frames", 0), f"; recording: {record}" if record else "")
    sys.exit(code)


@contextlib.contextmanager
def _blamed_on(cfg):
    """A config field's error that names no file (the output's, e.g. "output.kind: the UART
    sends one universe") names the config file it came from."""
    try:
        yield
    except LatentDMXError as exc:
        if exc.file or not exc.field or not exc.field.split(".")[0].isidentifier():
            raise
        exc.file = cfg.path
        raise


def _clock(kind: str):
    """The frame clock: real time, or virtual time (`FastClock`) for tests of the simulator.

    ``LATENTDMX_FAKE_CLOCK=1`` plays a `sim` show as fast as the machine can, frame for frame
    the same show; it is ignored for every real output (lights never run on virtual time)."""
    import os

    from ..clock import FastClock, FrameClock

    if os.environ.get("LATENTDMX_FAKE_CLOCK") == "1" and set(kind.split("+")) == {"sim"}:
        return FastClock
    return FrameClock


def _status_logger(log: logging.Logger, every_s: float):
    """A frame listener that logs one status line every `every_s` seconds of show time."""
    state = {"next": every_s}

    def listener(show) -> None:
        t = show.frames_out / show.fps
        if t >= state["next"]:
            state["next"] += every_s
            snap = show.status_snapshot
            fps = snap["fps_achieved"]
            log.info("t=%.0fs frames=%d %s late=%d master=%.2f level=%.2f%s", t,
                     snap["frames"], f"fps={fps:.1f}" if fps is not None else "fps=-",
                     snap["late_frames"], snap["master"], snap["level"],
                     "" if snap["state"] == "playing" else " " + snap["state"])
    return listener


@click.command()
@click.argument("config_path", metavar="CONFIG", required=False, type=click.Path())
def check(config_path):
    """Validate a rig config and print its patch as a table.

    Without CONFIG, checks the bundled default rig. Exit 0 if valid; otherwise one line
    naming the file, the field and the fix, exit 2.
    """
    from rich.console import Console
    from rich.table import Table

    from ..clock import FastClock
    from ..config import load_config
    from ..config_rules import check_here, config_warnings
    from ..outputs import output_for
    from ..patch import Patch
    from ..show import Show

    cfg = load_config(config_path)      # every rule `run` and a reload apply (config_rules)
    patch = Patch(cfg)
    mdl = load_show_model(cfg, from_flag=False)
    check_other_models(cfg)
    # built as `run` builds them, not opened: what `run` refuses before its first frame (the
    # output's universes and map, a rig that could strobe, the sound file, the schedule, a
    # model too slow for the frame period), `check` refuses
    check_here(cfg)                     # the interfaces it sends on are on this machine
    import dataclasses

    quiet = cfg.replace(audio=dataclasses.replace(cfg.audio, file="", device=""))  # read by
    with _blamed_on(cfg):                                   # config_rules, not played here
        show = Show(quiet, output_for(cfg, patch), model=mdl, control=False, clock=FastClock)
        show.pipeline.check_model(mdl)
    table = Table(title=f"{cfg.path}: {len(patch)} fixtures, universes "
                        f"{', '.join(map(str, patch.universes))}")
    for col in ("fixture", "profile / mode", "universe", "addresses", "channels"):
        table.add_column(col, overflow="fold")
    for name, prof, uni, addr, chans in patch.table():
        table.add_row(name, prof, str(uni), addr, chans)
    console = Console(width=max(100, Console().width))
    console.print(table)
    console.print(f"ok: model {cfg.model!r} ({mdl.info.family}, {mdl.info.kind}, from "
                  f"{mdl.info.path}), output {kinds_text(cfg)}, {cfg.fps:g} fps")
    if cfg.sync.group:                  # a lockstep group (README "Lockstep")
        s = cfg.sync
        console.print(f"group {s.group!r}: epoch {s.epoch}, {s.address}:{s.port} on "
                      f"{s.interface or 'the default route'}, changes {s.lead_s:g} s ahead")
    _note_home_model(console, mdl.info.path)
    for line in config_warnings(cfg):   # what may be meant, but may well be a slip
        console.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)


def _note_home_model(console, folder) -> None:
    """A model in the user's home plays for the user, not for the service (no home there)."""
    from ..paths import system_dir
    from ..runtime import user_dir

    user = user_dir()
    if user is not None and folder.parent == user:
        console.print(f"note: {user} is in your home, which the service (user latentdmx) "
                      f"cannot read; for the service copy the model to "
                      f"{system_dir() / 'models' / folder.name}")
