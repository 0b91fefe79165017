"""`latentdmx watch`: a live colour view of the rig in the terminal (rich), for SSH.

The view is drawn from a `state.live_state` dict, got either from the daemon (the control
socket's ``scene`` command, polled ~10 times a second from this process) or from a show this
process plays itself on the simulator (in a thread). Either way the frame loop only keeps
replacing its last frame and status; the viewer reads them on its own time.
"""

from __future__ import annotations

import io
import threading
import time
from typing import Literal

from rich.console import Console, Group
from rich.live import Live
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

MAP_W, MAP_H = 44, 11         # the rig map in character cells (at most)
MIN_MAP_W = 12
GAP = 3                       # between the table and the map


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(round(max(0.0, min(1.0, v)) * 255)
                                          for v in rgb))


def _swatch(rgb, width: int = 6) -> Text:
    if max(rgb) < 0.02:
        return Text("·" * width, style="grey35")
    return Text("█" * width, style=_hex(rgb))


def _bar(level: float, width: int = 10) -> Text:
    full = level * width
    n = int(full)
    part = " ▏▎▍▌▋▊▉"[int((full - n) * 8)] if n < width else ""
    return Text(("█" * n + part).ljust(width), style="grey70") + Text(f" {level * 100:3.0f}%")


def header(status: dict) -> Text:
    s = status
    t = Text()
    t.append("● ", style="green" if s.get("frames") else "grey50")
    t.append(f"{s.get('model', '?')}", style="bold")
    state = s.get("state", "playing")
    if state != "playing":                 # paused, blacked out, dark by the schedule, ...
        t.append(f"  {state.upper()}", style="bold yellow" if state != "blackout" else
                 "bold red")
    if s.get("fps_achieved") is not None:
        t.append(f"  {s['fps_achieved']:.1f}/{s.get('fps', 0):g} fps")
    late = s.get("late_frames", 0)
    t.append(f"  late {late}", style="red" if late else "")
    t.append(f"  master {s.get('master', 1.0) * 100:.0f}%")
    if s.get("level", 1.0) < 1.0:                  # a preset's own level, under the master
        t.append(f" (preset {s['level'] * 100:.0f}%)")
    t.append(f"  seed {s.get('seed', '?')}  tempo {s.get('tempo', 1):g}  "
             f"phase {s.get('phase', 0):.2f}")
    if s.get("music") not in (None, "", "off"):   # music: tempo, beat of the bar, lock
        lock = s["music"]
        t.append("  ♪ ")
        t.append(f"{s.get('bpm', 0):.1f} BPM" if s.get("bpm") else "no beat",
                 style="bold" if lock == "locked" else "")
        if s.get("bar_beat"):
            beat = int(s["bar_beat"])
            t.append("  " + "".join("●" if i == beat else "·" for i in range(1, 5)),
                     style="cyan")
            t.append(f" {s.get('beat_phase', 0):.2f}")
        t.append(f"  {lock}", style={"locked": "green", "searching": "yellow"}.get(lock,
                                                                                 "grey50"))
        if s.get("music_source") not in (None, "audio", "none"):
            t.append(f" ({s['music_source']})")
    if "state" not in s:                    # (a daemon of before the state field)
        if s.get("paused"):
            t.append("  PAUSED", style="bold yellow")
        if s.get("blackout"):
            t.append("  BLACKOUT", style="bold red")
    return t


def rig_map(fixtures: list[dict], look: dict, width: int = MAP_W) -> Text:
    """A small map of the rig, `width` cells wide: each fixture a coloured block at its
    position."""
    width = max(MIN_MAP_W, width)
    grid: list[list[tuple[str, str]]] = [[(" ", "")] * width for _ in range(MAP_H)]
    for i, f in enumerate(fixtures):
        cx = round(f["x"] * (width - 3))
        cy = round(f["y"] * (MAP_H - 1))
        rgb = look["colour"][i]
        style = _hex(rgb) if max(rgb) >= 0.02 else "grey35"
        glyph = "██" if max(rgb) >= 0.02 else "○ "
        for k, ch in enumerate(glyph):
            grid[cy][cx + k] = (ch, style)
        label = f["name"][:8]
        ly = cy + 1 if cy + 1 < MAP_H else cy - 1
        lx = max(0, min(cx - len(label) // 2 + 1, width - len(label)))
        if all(grid[ly][lx + k][0] == " " for k in range(len(label))):
            for k, ch in enumerate(label):
                grid[ly][lx + k] = (ch, "grey50")
    text = Text()
    for r, row in enumerate(grid):
        for ch, style in row:
            text.append(ch, style=style or None)
        if r < MAP_H - 1:
            text.append("\n")
    return text


def view(state: dict, width: int = 100) -> Group:
    """The whole screen for one `live_state` dict, for a terminal `width` columns wide: the
    map beside the table when both fit, else under it, narrowed to the width."""
    fixtures, look = state["fixtures"], state["look"]
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="grey62")
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (
        ("fixture", "left"), ("light", "left"), ("dimmer", "left"), ("pan", "right"),
        ("tilt", "right"))
    for col, just in columns:
        table.add_column(col, justify=just, no_wrap=True)
    for i, f in enumerate(fixtures):
        pan = f"{look['pan'][i] * f['pan_deg']:.0f}°" if f["moves"] else ""
        tilt = f"{look['tilt'][i] * f['tilt_deg']:.0f}°" if f["moves"] else ""
        table.add_row(f["name"], _swatch(look["colour"][i]), _bar(look["level"][i]), pan, tilt)
    table_w = Measurement.get(_MEASURE, _MEASURE.options, table).maximum
    body: Table | Group
    if table_w + GAP + MAP_W <= width:
        body = side = Table.grid(padding=(0, GAP))
        side.add_column()
        side.add_column()
        side.add_row(table, rig_map(fixtures, look))
    else:
        body = Group(table, Text(""), rig_map(fixtures, look, min(MAP_W, width - 1)))
    return Group(header(state["status"]), Text(""), body,
                 Text("Ctrl-C stops watching", style="grey42"))


_MEASURE = Console(width=1000, color_system=None, file=io.StringIO())


def _loop(get_state, rate: float, duration_s: float | None, console: Console | None) -> None:
    console = console or Console()
    period = 1.0 / rate
    end = None if duration_s is None else time.monotonic() + duration_s
    with Live(console=console, auto_refresh=False, transient=False) as live:
        next_t = time.monotonic()
        while end is None or time.monotonic() < end:
            state = get_state()
            if state is None:
                break
            live.update(view(state, console.width), refresh=True)
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))


def watch_daemon(client, *, rate: float = 10.0, duration_s: float | None = None,
                 console: Console | None = None) -> None:
    """Poll the daemon's ``scene`` command `rate` times a second until Ctrl-C / `duration_s`."""
    from ..errors import ControlError

    console = console or Console()

    def get():
        try:
            return client.request("scene")
        except ControlError as exc:
            console.print(f"[yellow]the daemon went away:[/] {exc.what}")
            return None

    try:
        _loop(get, rate, duration_s, console)
    except KeyboardInterrupt:
        pass


def watch_local(config_path=None, *, model=None, seed=None, rate: float = 10.0,
                duration_s: float | None = None, console: Console | None = None) -> int:
    """No daemon: play a show on the simulator in a thread here and watch it."""
    from ..config import load_run_config
    from ..decode import live_state
    from ..outputs.sim import SimOutput
    from ..patch import Patch
    from ..runtime import load_model
    from ..show import Show

    console = console or Console()
    cfg = load_run_config(config_path, output="sim", model=model, seed=seed)
    patch = Patch(cfg)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames)
    show = Show(cfg, out, model=load_model(cfg.model), control=False)
    failed: list[BaseException] = []

    def play() -> None:
        try:
            show.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised after the view closes
            failed.append(exc)

    thread = threading.Thread(target=play, name="latentdmx-watch-show", daemon=True)
    thread.start()
    console.print(f"no daemon running: playing {cfg.model} on the simulator here",
                  style="grey50")

    def get():
        if failed or not thread.is_alive():
            return None
        return live_state(show) if show.status_snapshot else \
            {"status": {}, "fixtures": [], "look": {}}

    try:
        _loop(lambda: _ready(get), rate, duration_s, console)
    except KeyboardInterrupt:
        pass
    finally:
        show.stop()
        thread.join(timeout=5.0)
    if failed:
        raise failed[0]
    return 0


def _ready(get):
    """Wait (briefly) for the first frame so the first screen is not empty."""
    for _ in range(50):
        state = get()
        if state is None or state["fixtures"]:
            return state
        time.sleep(0.02)
    return get()
