"""`latentdmx render` (pictures of a show) and `latentdmx watch` (a live terminal view)."""

from __future__ import annotations

import click

from ..errors import ConfigError


@click.command()
@click.option("--config", "config_path", type=click.Path(),
              help="Rig config (TOML). Default: the bundled demo rig.")
@click.option("--model", help="Model name or folder. Default: the config's model.")
@click.option("--seed", type=int, help="Walk seed. Default: the config's seed.")
@click.option("--fps", type=float, help="Frames per second. Default: the config's fps.")
@click.option("--duration", type=float, metavar="SECONDS", default=20.0, show_default=True,
              help="Show length to render, fade-out included (as `run --duration`).")
@click.option("--recording", type=click.Path(dir_okay=False, exists=True), metavar="FILE",
              help="Draw a recording (`run --record` or ola_recorder) instead of computing.")
@click.option("--raw", is_flag=True,
              help="With --recording: draw every used slot as a heat-map (no patch needed).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False),
              metavar="PATH", help="show.png (timeline) or show.gif (animated rig).")
@click.option("--fseq", "fseq_path", type=click.Path(dir_okay=False), metavar="PATH",
              help="Write the show as an FSEQ v2 sequence for Falcon Player / xLights "
                   "(zstd, the config's fps; with --audio, FPP plays that file with it).")
@click.option("--width", type=click.IntRange(60, 8000),
              help="Timeline width in pixels (default 720); GIF: the rig view's (400).")
@click.option("--snapshots", type=click.IntRange(0, 12), default=4, show_default=True,
              help="PNG: how many views of the rig from above under the timeline.")
@click.option("--gif-fps", type=click.FloatRange(1, 25), default=10.0, show_default=True,
              help="GIF frames per second of show time.")
@click.option("--audio", type=click.Path(dir_okay=False), metavar="FILE",
              help="Follow a sound file's music (as `run --audio`) and draw its beats and "
                   "energy under the timeline. Needs the music extra.")
def render(config_path, model, seed, fps, duration, recording, raw, out_path, fseq_path,
           width, snapshots, gif_fps, audio):
    """Draw a show as a picture: a timeline PNG or an animated GIF of the rig.

    Computes the show offline through the same pipeline as `run` (safety, fade-out and the
    final blackout included), at the configured fps, so `render --seed S --duration D` draws
    exactly what `run --seed S --duration D --record FILE` records.

    \b
    Examples:
      latentdmx render --duration 30 --out show.png
      latentdmx render --seed 7 --duration 10 --out show.gif
      latentdmx render --recording show.txt --out show.png          # a recording, same rig
      latentdmx render --recording show.txt --raw --out slots.png   # any recording
      latentdmx render --audio song.wav --duration 30 --out song.png # follows the song
      latentdmx render --duration 600 --fseq show.fseq               # for FPP / xLights
      latentdmx render --audio song.mp3 --duration 200 --fseq song.fseq
    """
    from pathlib import Path

    from ..config import load_run_config
    from ..decode import Rig
    from ..patch import Patch
    from ..views import render as rd

    if fseq_path is not None:
        if out_path or recording or raw:
            raise ConfigError("--fseq writes a sequence on its own", file="command line",
                              field="--fseq", fix="drop --out / --recording / --raw, or run "
                                                  "render twice")
        _fseq(Path(fseq_path), config_path, model, seed, fps, duration, audio)
        return
    if out_path is None:
        raise ConfigError("nothing to write", file="command line", field="--out",
                          fix="give --out show.png (or .gif), or --fseq show.fseq")
    out = Path(out_path)
    if out.suffix.lower() not in (".png", ".gif"):
        raise ConfigError(f"cannot write {out.suffix or 'a file without extension'}",
                          file="command line", field="--out", fix="name it .png or .gif")
    if raw and not recording:
        raise ConfigError("--raw draws a recording", file="command line", field="--raw",
                          fix="add --recording FILE")
    if duration is not None and not duration > 0:
        raise ConfigError("must be more than 0", file="command line", field="--duration",
                          fix="give seconds, e.g. --duration 10")
    if audio and recording:
        raise ConfigError("--audio computes a show; a recording is already made",
                          file="command line", field="--audio", fix="drop --recording or --audio")
    lane = None
    if recording:
        import numpy as np

        from ..sim.record import open_show

        show = open_show(recording)
        parts = list(show.chunks(4096))
        frames = np.concatenate([f for f, _ in parts])
        times = np.concatenate([t for _, t in parts]) / 1000.0
        universes = show.universes
        if show.damage is not None:
            click.echo(f"note: {recording} is {show.damage}; drawing those frames", err=True)
        title = f"{Path(recording).name} · {len(frames)} frames · {times[-1]:.1f} s"
        if raw:
            if out.suffix.lower() == ".gif":
                raise ConfigError("--raw draws a PNG", file="command line", field="--out",
                                  fix="name it .png")
            rd.save(rd.raw_heatmap(frames, universes, times, title=title,
                                   width=width or 720), out)
            click.echo(f"wrote {out}")
            return
        cfg = load_run_config(config_path)
        rig = Rig.from_patch(Patch(cfg))
        frames = _align(frames, universes, rig.universes, recording)
    else:
        from ..runtime import load_model

        cfg = load_run_config(config_path, model=model, fps=fps, seed=seed)
        mdl = load_model(cfg.model)
        drive = None
        if audio:
            from ..music import make_drive

            drive = make_drive(cfg, audio_file=audio, offline=True)
            drive.trace = []
        frames, times = rd.simulate(cfg, mdl, seed=seed, duration_s=duration, progress=True,
                                    music=drive)
        rig = Rig.from_patch(Patch(cfg))
        title = (f"{mdl.info.name} · seed {cfg.seed} · {cfg.fps:g} fps · "
                 f"{duration:g} s · {len(rig)} fixtures")
        if drive is not None and drive.trace is not None:
            from ..views.music_lane import MusicLane

            lane = MusicLane.from_trace(drive.trace)
            title += f" · {Path(audio).name}"
    if out.suffix.lower() == ".gif":
        w = width or 400
        pics = rd.animation(rig, frames, times, title=title.split(" · ")[0],
                            size=(w, int(0.62 * w)), gif_fps=gif_fps, progress=True)
        rd.save(pics, out, gif_fps=gif_fps)
    else:
        rd.save(rd.timeline(rig, frames, times, title=title, width=width or 720,
                            snapshots=snapshots, music=lane), out)
    click.echo(f"wrote {out}")


def _fseq(path, config_path, model, seed, fps, duration, audio) -> None:
    """`render --fseq`: the show, frame by frame, into an FSEQ file (`pi_app.sim.fseq`)."""
    from pathlib import Path

    from .. import __version__
    from ..config import load_run_config
    from ..errors import LatentDMXError
    from ..runtime import load_model
    from ..sim.fseq import FseqWriter, step_ms, universe_ranges
    from ..views import render as rd

    if path.is_dir() or not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}" + (" (a folder)" if path.is_dir() else
                                                    f": no folder {path.parent}"),
                          file="command line", field="--fseq",
                          fix="give a file name in an existing folder, e.g. show.fseq")
    if not duration > 0:
        raise ConfigError("must be more than 0", file="command line", field="--duration",
                          fix="give seconds, e.g. --duration 60")
    cfg = load_run_config(config_path, model=model, fps=fps, seed=seed)
    step_ms(cfg.fps, file=cfg.path if fps is None else "command line",
            field="fps" if fps is None else "--fps")
    mdl = load_model(cfg.model)
    drive = None
    if audio:
        from ..music import make_drive

        drive = make_drive(cfg, audio_file=audio, offline=True)
    n_max, rig, frames = rd.show_frames(cfg, mdl, seed=seed, duration_s=duration, music=drive)
    universe_ranges(rig.universes, file=cfg.path)
    try:
        with FseqWriter(path, universes=rig.universes, fps=cfg.fps, max_frames=n_max,
                        media=Path(audio).name if audio else "",
                        producer=f"LatentDMX {__version__}") as out, \
                rd.progress_bar(True, n_max, "rendering") as advance:
            for f in frames:
                out.write(f)
                advance()
    except OSError as exc:
        raise LatentDMXError(f"cannot write {path} ({exc.strerror or exc})", field="--fseq",
                             fix="check the folder is writable and has room") from None
    click.echo(f"wrote {path}: {out.frames} frames at {cfg.fps:g} fps, {out.channels} "
               f"channels in {len(out.ranges)} range(s), {len(out.blocks)} zstd blocks")


def _align(frames, universes, want, recording):
    """Recording frames in the rig's universe order; universes the recording lacks are 0."""
    import numpy as np

    if not set(want) & set(universes):
        raise ConfigError(f"the recording has universes {list(universes)}, the rig patches "
                          f"{list(want)}", file=recording, field="--config",
                          fix="give the rig's config with --config, or draw it with --raw")
    out = np.zeros((len(frames), len(want), frames.shape[-1]), np.uint8)
    for k, u in enumerate(want):
        if u in universes:
            out[:, k] = frames[:, universes.index(u)]
    return out


@click.command()
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False),
              help="The daemon's control socket. Default: found automatically.")
@click.option("--rate", type=click.FloatRange(1, 30), default=10.0, show_default=True,
              help="Screen updates per second.")
@click.option("--local", is_flag=True,
              help="Do not look for a daemon: play a show on the simulator here.")
@click.option("--config", "config_path", type=click.Path(),
              help="With no daemon: the rig config to play.")
@click.option("--model", help="With no daemon: the model to play.")
@click.option("--seed", type=int, help="With no daemon: the walk seed.")
@click.option("--duration", type=float, metavar="SECONDS",
              help="Stop watching after this many seconds. Default: until Ctrl-C.")
def watch(socket_path, rate, local, config_path, model, seed, duration):
    """Watch the show live in the terminal (works over SSH).

    Attaches to the running daemon through its control socket; when none runs (or with
    --local), plays its own show on the simulator. One row per fixture: its colour, a dimmer
    bar, pan/tilt in degrees, and a map of the rig; the header shows model, fps and late
    frames. Watching reads the daemon's last frame ~10 times a second and never touches the
    frame loop. Ctrl-C stops watching (a daemon keeps playing).
    """
    from ..views.watch import watch_daemon, watch_local

    if not local:
        from ..control import ControlClient
        from ..errors import ControlError

        client = ControlClient(socket_path)
        try:
            client.request("scene")
        except ControlError as exc:
            if socket_path or "no latentdmx daemon" not in exc.what:
                raise
        else:
            watch_daemon(client, rate=rate, duration_s=duration)
            return
    watch_local(config_path, model=model, seed=seed, rate=rate, duration_s=duration)


@click.command("web-token")
@click.option("--config", "config_path", type=click.Path(),
              help="The daemon's rig config: its [preview] token or token_file, if set.")
@click.option("--url", is_flag=True, help="Print the page's address with the token in it.")
def web_token(config_path, url):
    """Print the token the live web page asks for.

    The page needs a token on every address, loopback included. It is the config's
    [preview] token (or token_file); without one, the daemon's own, made on its first start
    and kept (mode 0600) as `web-token` in its state folder: the service's
    (/var/lib/latentdmx/state: run this with sudo) or, for a hand-started daemon, yours.
    Made here if no daemon has made one yet.

    Open the page once as http://127.0.0.1:8044/#token=TOKEN (`--url` prints that): the
    browser keeps the token and never sends it in a URL.

    \b
    Examples:
      latentdmx web-token
      sudo latentdmx web-token --url
      latentdmx web-token --config /etc/latentdmx/config.toml
    """
    import os
    from pathlib import Path

    from .. import paths, secrecy
    from ..config import load_config
    from ..errors import ConfigError

    cfg = load_config(config_path)
    token = cfg.preview.token
    if not token:
        user = paths.user_data_dir()
        mine = [user / "state"] if user else []
        system = [paths.system_dir() / "state"]
        where = [Path(os.environ["STATE_DIRECTORY"].split(":")[0])] \
            if os.environ.get("STATE_DIRECTORY") else []
        where += system + mine if os.geteuid() == 0 else mine + system    # sudo: the service's
        denied = None
        for folder in where:
            path = folder / secrecy.TOKEN_FILE
            try:
                token = path.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                continue
            except PermissionError:
                denied = denied or path
                continue
            if token:
                break
        if not token and denied is not None:
            raise ConfigError("permission denied", file=denied, field="preview.token",
                              fix="run it with sudo (the service's token is its own)")
        token = token or secrecy.web_token(paths.state_dir())
    if url:
        host = cfg.preview.host if cfg.preview.host not in ("0.0.0.0", "::") else "PI"
        host = f"[{host}]" if ":" in host else host
        click.echo(f"http://{host}:{cfg.preview.port}/#token={token}")
    else:
        click.echo(token)
