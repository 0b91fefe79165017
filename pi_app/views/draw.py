"""Pillow drawing shared by the pictures: fonts, colours, and the rig seen from above.

`rig_view(rig, colour, level, pan, tilt, size)` draws one moment of the show: every fixture
at its rig position (x left to right, y top to bottom, as in the config), a par as a soft
pool of its colour, a moving head as a beam of its colour pointing where pan/tilt aim it
(pan turns the beam around the head, tilt sets how far from straight down it reaches).
Light adds up like light does (additive), then is clipped.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

BG = (17, 17, 20)
PANEL = (28, 28, 33)
GRID = (55, 55, 62)
TEXT = (215, 215, 220)
DIM_TEXT = (140, 140, 150)
PAN_COLOUR = (255, 170, 40)
TILT_COLOUR = (70, 190, 255)


@lru_cache(maxsize=8)
def font(size: int = 11) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at `size` px (a bitmap fallback on a Pillow without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):     # pragma: no cover - old Pillow / no FreeType
        return ImageFont.load_default()


def text_width(text: str, size: int = 11) -> int:
    box = font(size).getbbox(text)
    return int(box[2] - box[0])


def beam_end(x: float, y: float, pan: float, tilt: float, pan_deg: float, tilt_deg: float,
             reach: float) -> tuple[float, float]:
    """Where a head at (x, y) (pixels) throws its beam, seen from above (pixels).

    Pan 0..1 of `pan_deg` turns the beam; tilt 0.5 points straight down (a short beam), 0 or 1
    tilts it out to `reach` (to the horizontal and beyond it folds back)."""
    phi = math.radians(pan * pan_deg)
    tau = math.radians((tilt - 0.5) * tilt_deg)
    d = reach * math.sin(tau)
    return x + d * math.cos(phi), y + d * math.sin(phi)


def rig_view(rig, colour: np.ndarray, level: np.ndarray, pan: np.ndarray, tilt: np.ndarray,
             size: tuple[int, int], *, labels: bool = False) -> Image.Image:
    """One moment of the show from above as an RGB picture of `size` (w, h)."""
    w, h = size
    pad = max(6, int(0.08 * min(w, h)))
    light = np.zeros((h, w, 3), np.float32)
    pool_r = max(3.0, 0.10 * min(w, h))
    reach = 0.42 * min(w, h)
    blur = max(1.0, 0.02 * min(w, h))
    centres = []
    for i, f in enumerate(rig.fixtures):
        cx = pad + f.x * (w - 2 * pad)
        cy = pad + f.y * (h - 2 * pad)
        centres.append((cx, cy))
        c = np.asarray(colour[i], np.float32)
        if float(c.max()) <= 1e-3:
            continue
        mask = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(mask)
        if f.moves:
            ex, ey = beam_end(cx, cy, float(pan[i]), float(tilt[i]), f.pan_deg or 360.0,
                              f.tilt_deg or 180.0, reach)
            dx, dy = ex - cx, ey - cy
            length = math.hypot(dx, dy)
            spot = pool_r * 0.9
            if length > 1.0:
                nx, ny = -dy / length, dx / length
                cone = [(cx + nx * 2, cy + ny * 2), (ex + nx * spot, ey + ny * spot),
                        (ex - nx * spot, ey - ny * spot), (cx - nx * 2, cy - ny * 2)]
                d.polygon(cone, fill=150)
            d.ellipse((ex - spot, ey - spot, ex + spot, ey + spot), fill=255)
        else:
            d.ellipse((cx - pool_r, cy - pool_r, cx + pool_r, cy + pool_r), fill=230)
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
        light += (np.asarray(mask, np.float32) / 255.0)[:, :, None] * c
    bg = np.asarray(BG, np.float32) / 255.0
    pic = np.clip(bg + light, 0.0, 1.0)
    img = Image.fromarray(np.rint(pic * 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    body = max(2.0, 0.025 * min(w, h))
    for i, (cx, cy) in enumerate(centres):
        fill = tuple(round(v * 255) for v in colour[i])
        d.ellipse((cx - body, cy - body, cx + body, cy + body), fill=fill, outline=(160, 160, 170))
        if labels:
            d.text((cx + body + 2, cy - body - 9), rig.fixtures[i].name, fill=DIM_TEXT,
                   font=font(9))
    return img


def nice_step(span: float, target_ticks: int = 8) -> float:
    """A 1-2-5 tick step so that `span` gets about `target_ticks` ticks."""
    raw = max(span, 1e-9) / max(target_ticks, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag   # pragma: no cover


def seconds_label(t: float) -> str:
    if t >= 60 and abs(t - round(t)) < 1e-6:
        return f"{int(t) // 60}:{int(t) % 60:02d}"
    return f"{t:g} s"
