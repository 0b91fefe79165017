"""`latentdmx render`: pictures of a show, computed offline or read from a recording.

    frames, times = simulate(config, model, seed=7, duration_s=10)   # what `run` would send
    rig = Rig.from_patch(Patch(config))
    img = timeline(rig, frames, times, title="...")                  # a PIL image
    save_png(img, "show.png")

The timeline has one row per fixture, time left to right; each pixel column averages the
frames whose nominal time falls in that column (holding the last frame where none does, as
DMX holds), and each cell is the fixture's emitted light (`state.Look.colour`). Under it,
each moving head's pan (orange) and tilt (blue) as 0..1 of the head's full range, then
snapshots of the rig seen from above. A GIF animates the rig view with a playhead on a
small timeline. `raw_heatmap` draws any recording slot by slot, with no patch.

Everything is decoded from DMX frames, so a picture of a recording and a picture computed
offline from the same config and seed are the same picture.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..decode import Rig
from ..errors import LatentDMXError
from . import draw as dr
from . import music_lane

ROW_H = 16           # timeline row height (px), including ROW_GAP
ROW_GAP = 2
TRACE_H = 30         # pan/tilt trace height per moving fixture
TRACE_GAP = 6


# ----------------------------------------------------------------------- the show's frames

def simulate(config, model, *, seed: int | None = None, duration_s: float,
             progress: bool = False, music=None) -> tuple[np.ndarray, np.ndarray]:
    """The frames `latentdmx run --duration` would send (and `--record` record), offline.

    Same pipeline (safety included), same nominal times k / fps, the same fade-out before the
    end and the final blackout frame. Returns (uint8 [n_frames, n_universes, 512], times_s).
    `music`: a `MusicDrive` (``render --audio``; its `trace` fills as the show is computed).
    """
    n_max, rig, frames_iter = show_frames(config, model, seed=seed, duration_s=duration_s,
                                          music=music)
    frames = np.zeros((n_max, len(rig.universes), 512), np.uint8)
    n = 0
    with _progress(progress, n_max, "rendering") as advance:
        for n, f in enumerate(frames_iter, 1):
            frames[n - 1] = f
            advance()
    return frames[:n], np.arange(n, dtype=np.float64) / config.fps


def show_frames(config, model, *, seed: int | None = None, duration_s: float,
                music=None) -> tuple[int, Rig, Iterator[np.ndarray]]:
    """(at most how many frames, the rig, the frames one by one: uint8 [n_universes, 512]
    in `rig.universes` order): the frames of `simulate` without holding them all
    (``render --fseq`` of a long show)."""
    from ..pipeline import Pipeline

    pipe = Pipeline(config, model, seed=seed)
    pipe.music = music
    fps = config.fps
    rig = Rig.from_patch(pipe.patch)
    fade_at = max(0.0, duration_s - config.safety.fade_out_s)
    n_max = int(np.ceil(duration_s * fps)) + 2     # `show_over` ends it at the duration

    def frames() -> Iterator[np.ndarray]:
        fading = False
        k = 0
        while True:
            t = k / fps
            if not fading and t >= fade_at:
                fading = True
                pipe.safety.start_fade_out(t)
            yield rig.frames_array(pipe.frames(t))
            k += 1
            if fading and pipe.show_over(t, duration_s):
                break
        yield rig.frames_array(pipe.blackout_frames())
    return n_max + 1, rig, frames()


def progress_bar(on: bool, total: int, what: str) -> _progress:
    """A rich progress bar on a terminal for long work (more than 200 steps); a context
    manager that gives the function to call after each step."""
    return _progress(on, total, what)


class _progress:
    """A rich progress bar on a terminal for long renders; nothing otherwise."""

    def __init__(self, on: bool, total: int, what: str) -> None:
        self.on, self.total, self.what = on and total > 200, total, what
        self._bar: Any = None                  # a rich Progress while a bar is shown

    def __enter__(self):
        if not self.on:
            return lambda: None
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)
        if not self._bar.console.is_terminal:
            self._bar = None
            return lambda: None
        self._bar.start()
        task = self._bar.add_task(self.what, total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


def period_of(times: np.ndarray) -> float:
    """A recording's frame period: the median step between frames (25 ms at 40 fps)."""
    steps = np.diff(times)
    steps = steps[steps > 0]
    return float(np.median(steps)) if steps.size else 0.025


# ----------------------------------------------------------------------- the timeline

@dataclass(frozen=True)
class Layout:
    """Where things are in a timeline picture (for readers and tests)."""

    x0: int                  # first pixel column of the strip
    width: int               # strip width in columns
    strip_y0: int            # top of the first fixture row
    span_s: float            # seconds across the strip

    def row_box(self, i: int) -> tuple[int, int]:
        """(top, bottom exclusive) of fixture i's colour cells."""
        top = self.strip_y0 + i * ROW_H
        return top, top + ROW_H - ROW_GAP

    def column_times(self) -> tuple[np.ndarray, np.ndarray]:
        edges = np.arange(self.width + 1, dtype=np.float64) * (self.span_s / self.width)
        return edges[:-1], edges[1:]


def column_means(values: np.ndarray, times: np.ndarray, layout: Layout) -> np.ndarray:
    """Average `values` (n_frames, ...) over each pixel column's time span -> (width, ...).

    A column no frame falls in holds the last frame before it (DMX holds its last frame)."""
    t0, t1 = layout.column_times()
    lo = np.searchsorted(times, t0, side="left")
    hi = np.searchsorted(times, t1, side="left")
    flat = values.reshape(len(values), -1).astype(np.float64)
    cs = np.concatenate([np.zeros((1, flat.shape[1])), np.cumsum(flat, axis=0)])
    count = hi - lo
    held = np.clip(hi - 1, 0, len(values) - 1)
    mean = np.where((count > 0)[:, None],
                    (cs[hi] - cs[lo]) / np.maximum(count, 1)[:, None], flat[held])
    return mean.reshape((layout.width, *values.shape[1:]))


def timeline(rig: Rig, frames: np.ndarray, times: np.ndarray, *, title: str = "",
             width: int = 720, snapshots: int = 4, music=None) -> Image.Image:
    """The timeline picture of a show's frames (uint8 [n, n_universes, 512]) at `times`;
    `music` (a `music_lane.MusicLane`) adds the beats and energy under the time axis."""
    img, _ = timeline_with_layout(rig, frames, times, title=title, width=width,
                                  snapshots=snapshots, music=music)
    return img


def timeline_with_layout(rig: Rig, frames: np.ndarray, times: np.ndarray, *, title: str = "",
                         width: int = 720, snapshots: int = 4,
                         music=None) -> tuple[Image.Image, Layout]:
    if len(frames) == 0:
        raise LatentDMXError("nothing to draw: no frames", field="--duration",
                             fix="render at least one frame")
    look = rig.decode(frames)
    span = float(times[-1]) + period_of(times)
    label_w = max([dr.text_width(n, 11) for n in rig.names] + [60]) + 14
    title_h = 26 if title else 8
    n = len(rig)
    movers = [i for i, f in enumerate(rig.fixtures) if f.moves]
    strip_h = n * ROW_H
    traces_h = (len(movers) * (TRACE_H + TRACE_GAP) + 14) if movers else 0
    axis_h = 20
    lane_h = music_lane.LANE_H + 6 if music is not None else 0
    snap_w = (width - (snapshots - 1) * 8) // snapshots if snapshots else 0
    snap_h = int(snap_w * 0.62) if snapshots else 0
    snaps_h = snap_h + 22 if snapshots else 0
    total_w = label_w + width + 12
    total_h = title_h + strip_h + axis_h + lane_h + traces_h + snaps_h + 8
    layout = Layout(label_w, width, title_h, span)

    img = Image.new("RGB", (total_w, total_h), dr.BG)
    d = ImageDraw.Draw(img)
    if title:
        d.text((8, 6), title, fill=dr.TEXT, font=dr.font(13))

    # -- colour strip: one row per fixture
    colour = column_means(look.colour, times, layout)              # (W, n, 3)
    cells = np.rint(np.clip(colour, 0, 1) * 255).astype(np.uint8)
    pix = np.asarray(img).copy()
    for i in range(n):
        top, bottom = layout.row_box(i)
        pix[top:bottom, label_w:label_w + width] = cells[:, i][None, :, :]
    img = Image.fromarray(pix, "RGB")
    d = ImageDraw.Draw(img)
    for i, f in enumerate(rig.fixtures):
        top, _ = layout.row_box(i)
        d.text((8, top + 1), f.name, fill=dr.TEXT, font=dr.font(11))

    # -- time axis under the strip
    y_axis = title_h + strip_h
    _time_axis(d, label_w, y_axis, width, span)

    # -- pan/tilt traces of the moving heads (under the music lane, if any)
    y = y_axis + axis_h
    if music is not None:
        y += music_lane.draw_lane(d, music, layout, y, column_means)
    if movers:
        d.text((8, y), "pan", fill=dr.PAN_COLOUR, font=dr.font(10))
        d.text((8 + dr.text_width("pan ", 10), y), "tilt", fill=dr.TILT_COLOUR,
               font=dr.font(10))
        d.text((8 + dr.text_width("pan tilt ", 10), y), "(each plot spans the head's "
               "configured range)", fill=dr.DIM_TEXT, font=dr.font(10))
        y += 14
        pan = column_means(look.pan, times, layout)
        tilt = column_means(look.tilt, times, layout)
        xs = label_w + np.arange(width) + 0.5
        for i in movers:
            d.rectangle((label_w, y, label_w + width - 1, y + TRACE_H - 1), fill=dr.PANEL)
            d.line((label_w, y + TRACE_H // 2, label_w + width - 1, y + TRACE_H // 2),
                   fill=dr.GRID)
            if music is not None:               # bars: the heads' turns land on them
                music_lane.draw_bar_lines(d, music, layout, y, y + TRACE_H - 1)
            d.text((8, y + TRACE_H // 2 - 9), rig.fixtures[i].name, fill=dr.DIM_TEXT,
                   font=dr.font(11))
            f = rig.fixtures[i]
            for series, col, (lo, hi) in ((tilt[:, i], dr.TILT_COLOUR, f.tilt_range),
                                          (pan[:, i], dr.PAN_COLOUR, f.pan_range)):
                v = np.clip((series - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
                ys = y + (TRACE_H - 3) * (1.0 - v) + 1
                d.line(list(zip(xs.tolist(), ys.tolist(), strict=False)), fill=col, width=1)
            rng = (f"{f.pan_range[0] * f.pan_deg:.0f}-{f.pan_range[1] * f.pan_deg:.0f}° / "
                   f"{f.tilt_range[0] * f.tilt_deg:.0f}-{f.tilt_range[1] * f.tilt_deg:.0f}°")
            d.text((8, y + TRACE_H // 2 + 4), rng, fill=dr.DIM_TEXT, font=dr.font(9))
            y += TRACE_H + TRACE_GAP

    # -- snapshots of the rig from above
    if snapshots:
        y += 4
        for s in range(snapshots):
            t = span * (s + 0.5) / snapshots
            k = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1))
            x = label_w + s * (snap_w + 8)
            view = dr.rig_view(rig, look.colour[k], look.level[k], look.pan[k], look.tilt[k],
                               (snap_w, snap_h))
            img.paste(view, (x, y))
            d.rectangle((x, y, x + snap_w - 1, y + snap_h - 1), outline=dr.GRID)
            d.text((x + 2, y + snap_h + 3), f"{float(times[k]):.1f} s",
                   fill=dr.DIM_TEXT, font=dr.font(10))
        d.text((8, y + snap_h // 2 - 14), "rig from\nabove", fill=dr.DIM_TEXT,
               font=dr.font(11))
    return img, layout


def _time_axis(d: ImageDraw.ImageDraw, x0: int, y: int, width: int, span: float) -> None:
    step = dr.nice_step(span, max(2, width // 90))
    t = 0.0
    while t <= span + 1e-9:
        x = x0 + round(t / span * width)
        x = min(x, x0 + width - 1)
        d.line((x, y, x, y + 4), fill=dr.DIM_TEXT)
        label = dr.seconds_label(round(t, 6))
        tw = dr.text_width(label, 10)
        d.text((min(x - tw // 2, x0 + width - tw), y + 5), label, fill=dr.DIM_TEXT,
               font=dr.font(10))
        t += step


# ----------------------------------------------------------------------- raw recordings

def raw_heatmap(frames: np.ndarray, universes: tuple[int, ...], times: np.ndarray, *,
                title: str = "", width: int = 720) -> Image.Image:
    """Any recording with no patch: one row per slot that is ever non-zero, value as heat."""
    used = np.nonzero(frames.max(axis=0).reshape(-1))[0]
    if used.size == 0:
        raise LatentDMXError("every slot is 0 in every frame", field="--recording",
                             fix="nothing to draw; record a show that sends light")
    row_h = 4 if used.size <= 64 else 2 if used.size <= 200 else 1
    label_w = 90
    title_h = 26 if title else 8
    span = float(times[-1]) + period_of(times)
    layout = Layout(label_w, width, title_h, span)
    vals = column_means(frames.reshape(len(frames), -1)[:, used], times, layout)  # (W, slots)
    heat = _heat(vals / 255.0)                                                     # (W, s, 3)
    h = title_h + used.size * row_h + 30
    pix = np.zeros((h, label_w + width + 12, 3), np.uint8)
    pix[:] = dr.BG
    block = np.repeat(heat.transpose(1, 0, 2), row_h, axis=0)
    pix[title_h:title_h + block.shape[0], label_w:label_w + width] = block
    img = Image.fromarray(pix, "RGB")
    d = ImageDraw.Draw(img)
    if title:
        d.text((8, 6), title, fill=dr.TEXT, font=dr.font(13))
    every = max(1, int(np.ceil(13 / row_h)))
    last_uni = None
    for r in range(0, used.size, every):
        uni, slot = divmod(int(used[r]), 512)
        u = universes[uni]
        label = f"u{u}:{slot + 1}" if u != last_uni else f"{slot + 1}"
        last_uni = u
        d.text((8, title_h + r * row_h - 1), label, fill=dr.DIM_TEXT, font=dr.font(10))
    _time_axis(d, label_w, title_h + used.size * row_h, width, span)
    return img


def _heat(v: np.ndarray) -> np.ndarray:
    """0..1 -> a black-red-yellow-white heat colour, uint8 (..., 3)."""
    v = np.clip(v, 0.0, 1.0)
    r = np.clip(v * 3.0, 0, 1)
    g = np.clip(v * 3.0 - 1.0, 0, 1)
    b = np.clip(v * 3.0 - 2.0, 0, 1)
    return np.rint(np.stack([r, g, b], -1) * 255).astype(np.uint8)


# ----------------------------------------------------------------------- the GIF

def animation(rig: Rig, frames: np.ndarray, times: np.ndarray, *, title: str = "",
              size: tuple[int, int] = (400, 250), gif_fps: float = 10.0,
              progress: bool = False) -> list[Image.Image]:
    """Frames of an animated rig view (seen from above) with a playhead on a mini timeline."""
    look = rig.decode(frames)
    span = float(times[-1]) + period_of(times)
    w, h = size
    bar_h = max(2, min(6, 48 // max(len(rig), 1)))
    strip_h = bar_h * len(rig)
    layout = Layout(0, w, 0, span)
    cells = np.rint(np.clip(column_means(look.colour, times, layout), 0, 1) * 255).astype(np.uint8)
    strip = np.repeat(cells.transpose(1, 0, 2), bar_h, axis=0)                 # (n*bar_h, w, 3)
    strip_img = Image.fromarray(strip, "RGB")
    n_out = max(1, int(span * gif_fps))
    out = []
    with _progress(progress, n_out, "animating") as advance:
        for j in range(n_out):
            t = j / gif_fps
            k = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1))
            view = dr.rig_view(rig, look.colour[k], look.level[k], look.pan[k], look.tilt[k],
                               (w, h), labels=True)
            frame = Image.new("RGB", (w, h + strip_h + 4), dr.BG)
            frame.paste(view, (0, 0))
            frame.paste(strip_img, (0, h + 4))
            d = ImageDraw.Draw(frame)
            x = int(t / span * w)
            d.line((x, h + 2, x, h + 4 + strip_h), fill=(255, 255, 255), width=1)
            label = f"{title}  {t:5.1f} s" if title else f"{t:5.1f} s"
            d.text((6, 4), label, fill=dr.TEXT, font=dr.font(11))
            out.append(frame)
            advance()
    return out


# ----------------------------------------------------------------------- saving

def save(picture: Image.Image | list[Image.Image], path: str | os.PathLike, *,
         gif_fps: float = 10.0) -> Path:
    """Write a PNG (one image) or GIF (a list of frames) atomically: tmp file, then rename."""
    p = Path(path)
    suffix = p.suffix.lower()
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        if suffix == ".gif":
            frames = picture if isinstance(picture, list) else [picture]
            # one palette for the whole animation, no dithering: small files, no flicker
            sheet = Image.new("RGB", (frames[0].width, frames[0].height * min(len(frames), 8)))
            for j, f in enumerate(frames[:: max(1, len(frames) // 8)][:8]):
                sheet.paste(f, (0, j * f.height))
            ref = sheet.quantize(colors=96, method=Image.Quantize.MEDIANCUT)
            pal = [f.quantize(palette=ref, dither=Image.Dither.NONE) for f in frames]
            pal[0].save(tmp, format="GIF", save_all=True, append_images=pal[1:],
                        duration=round(1000 / gif_fps), loop=0, optimize=True)
        elif suffix == ".png":
            img = picture[0] if isinstance(picture, list) else picture
            img.save(tmp, format="PNG", optimize=True)
        else:
            raise LatentDMXError(f"cannot write {suffix or 'a file without extension'}",
                                 file=p, field="--out", fix="name it .png or .gif")
        os.replace(tmp, p)
    except OSError as exc:
        raise LatentDMXError(f"cannot write ({exc.strerror or exc})", file=p, field="--out",
                             fix="choose a writable path") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return p
