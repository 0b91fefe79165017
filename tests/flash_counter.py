"""An independent flash counter for tests: WCAG 2.3.1 flashes per second, from DMX bytes.

It shares no code with the safety stage (`pi_app.safety`) or the checker
(`pi_app.safety_check`): it takes the rig's channel layout from the config and the fixture
profiles (what each slot is), and computes everything else here, in plain Python, so that a
mistake in the limiter or the checker cannot hide itself. Any test may use it (the music
tests, the safety tests, ...):

    from flash_counter import FlashCounter, rig_from_config
    counter = FlashCounter(rig_from_config("rig.toml"))
    for t_s, frames in capture:            # frames: {universe: 512 bytes}
        counter.add(t_s, frames)
    counter.max_per_s()                    # {"par-1": 0.5, ..., "rig": 0.5, "red:rig": 0.0}
    counter.worst()                        # ("par-1", 0.5)

Definitions (README "Safety"; WCAG 2.3.1 general flash and red flash):

- A fixture's relative luminance is ``Y = dim x (R, G, B, W) . (0.2126, 0.7152, 0.0722, 1)``
  divided by the sum of the weights of the colour channels it has (1.0 with all emitters
  full); ``dim`` is the product of its dimmer/intensity channels, each as
  ``(value - min) / (max - min)`` of its light range; a fixture with no colour channels has
  ``Y = dim``. The rig's luminance is the mean over fixtures.
- Red: ``dim x max(0, R - G - B - W)`` per fixture; the rig's red is
  ``max(0, mean(dim x (R - G - B - W)))``.
- A transition is a change of at least ``delta`` (0.1) from the last extreme, the other way
  than the previous transition; for luminance, only where the darker of the two states is
  below 0.80 (red has no such exemption). A flash is two transitions, so the flashes per
  second of a signal are the most transitions in any 1-s window [t, t + 1 s), halved.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

LUMA = {"red": 0.2126, "green": 0.7152, "blue": 0.0722, "white": 1.0}
DIMMERS = ("dimmer", "intensity")
DELTA = 0.1
FILTERS = {"cyan": "red", "magenta": "green", "yellow": "blue"}   # CMY colour mixing
DARKER_BELOW = 0.8


@dataclass(frozen=True)
class Channel:
    universe: int
    slot: int             # 0-based index into the universe's 512 bytes
    attr: str
    lo: int = 0
    hi: int = 255


@dataclass(frozen=True)
class Fixture:
    name: str
    channels: tuple[Channel, ...]


def rig_from_config(path=None) -> tuple[Fixture, ...]:
    """The rig's light channels from a LatentDMX config (None: the bundled default rig)."""
    from pi_app.config import load_config
    from pi_app.fixtures import find_profile

    cfg = load_config(path)
    rig = []
    for fx in cfg.fixtures:
        prof = find_profile(fx.profile)
        assert prof is not None, fx.profile
        mode = prof.mode(fx.mode)
        assert mode is not None, fx.mode
        chans = tuple(Channel(fx.universe, fx.address - 1 + j, ch.attr, ch.min, ch.max)
                      for j, ch in enumerate(mode.channels)
                      if ch.attr in DIMMERS or ch.attr in LUMA or ch.attr in FILTERS)
        rig.append(Fixture(fx.name, chans))
    return tuple(rig)


def _level(v: int, lo: int, hi: int) -> float:
    return min(1.0, max(0.0, (v - lo) / max(hi - lo, 1)))


def fixture_light(fx: Fixture, frames: Mapping[int, Sequence[int]]) -> tuple[float, float]:
    """(Y, red excess) of one fixture in one frame; red excess may be negative."""
    dim = 1.0
    colour: dict[str, float] = {}
    for ch in fx.channels:
        data = frames.get(ch.universe)
        v = int(data[ch.slot]) if data is not None and ch.slot < len(data) else 0
        level = _level(v, ch.lo, ch.hi)
        if ch.attr in DIMMERS:
            dim *= level
        elif ch.attr in FILTERS:            # a subtractive filter: cyan takes red out
            colour[FILTERS[ch.attr]] = 1.0 - level
        else:
            colour[ch.attr] = level
    if not colour:
        return dim, 0.0
    weight = sum(LUMA[a] for a in colour)
    y = dim * sum(LUMA[a] * v for a, v in colour.items()) / weight
    if "red" not in colour:
        return y, 0.0
    excess = colour["red"] - sum(v for a, v in colour.items() if a != "red")
    return y, dim * excess


@dataclass
class _Signal:
    """Hysteresis transition tracker for one signal."""
    darker_rule: bool
    delta: float = DELTA
    times: list[float] = field(default_factory=list)
    _dir: int = 0                  # +1 last transition up, -1 down, 0 none yet
    _hi: float = math.nan
    _lo: float = math.nan

    def add(self, t: float, v: float) -> None:
        if math.isnan(self._hi):
            self._hi = self._lo = v
            return
        self._hi, self._lo = max(self._hi, v), min(self._lo, v)
        eps = 1e-9
        rose = self._dir <= 0 and v - self._lo >= self.delta - eps and \
            (not self.darker_rule or self._lo < DARKER_BELOW)
        fell = not rose and self._dir >= 0 and self._hi - v >= self.delta - eps and \
            (not self.darker_rule or v < DARKER_BELOW)
        if rose or fell:
            self.times.append(t)
            self._dir = 1 if rose else -1
            self._hi = self._lo = v

    def max_per_s(self) -> float:
        ts = self.times
        best = 0
        for i, t in enumerate(ts):
            best = max(best, bisect_left(ts, t + 1.0 - 1e-9) - i)
        return best / 2.0


class FlashCounter:
    """Feed frames in time order with `add`; read flashes per second per fixture and rig."""

    def __init__(self, rig: Iterable[Fixture], delta: float = DELTA) -> None:
        self.rig = tuple(rig)
        names = [f.name for f in self.rig] + ["rig"]
        self._lum = {n: _Signal(True, delta) for n in names}
        self._red = {n: _Signal(False, delta) for n in names}
        self.frames = 0
        self.first_t: float | None = None
        self.last_t: float | None = None

    def add(self, t_s: float, frames: Mapping[int, Sequence[int]]) -> None:
        ys, gs = [], []
        for fx in self.rig:
            y, g = fixture_light(fx, frames)
            self._lum[fx.name].add(t_s, y)
            self._red[fx.name].add(t_s, max(0.0, g))
            ys.append(y)
            gs.append(g)
        n = max(len(ys), 1)
        self._lum["rig"].add(t_s, sum(ys) / n)
        self._red["rig"].add(t_s, max(0.0, sum(gs) / n))
        self.frames += 1
        self.first_t = t_s if self.first_t is None else self.first_t
        self.last_t = t_s

    def max_per_s(self) -> dict[str, float]:
        """Flashes per second: luminance by fixture name and "rig"; red as "red:NAME"."""
        out = {n: s.max_per_s() for n, s in self._lum.items()}
        out.update({f"red:{n}": s.max_per_s() for n, s in self._red.items()})
        return out

    def worst(self) -> tuple[str, float]:
        name, value = max(self.max_per_s().items(), key=lambda kv: kv[1])
        return name, value

    def transitions(self, name: str = "rig") -> list[float]:
        return list(self._lum[name].times)

    def summary(self) -> str:
        per = self.max_per_s()
        fixtures = [f.name for f in self.rig]
        span = (self.last_t or 0.0) - (self.first_t or 0.0)
        lum = ", ".join(f"{n} {per[n]:g}" for n in [*fixtures, "rig"])
        red = max(per[f"red:{n}"] for n in [*fixtures, "rig"])
        return (f"{self.frames} frames over {span:.1f} s; flashes/s: {lum}; "
                f"red max {red:g}")


def count(rig: Iterable[Fixture], capture: Iterable[tuple[float, Mapping[int, Sequence[int]]]],
          delta: float = DELTA) -> FlashCounter:
    counter = FlashCounter(rig, delta)
    for t, frames in capture:
        counter.add(t, frames)
    return counter


def read_show_file(path) -> list[tuple[float, dict[int, bytes]]]:
    """An ``ola_recorder`` show file -> [(t_s, {universe: bytes})], one entry per frame.

    A frame is a run of lines for distinct universes with 0 ms delays between them
    (LatentDMX's recordings); a universe seen again starts a new frame. Every line updates
    the state, so a foreign recording works too."""
    out: list[tuple[float, dict[int, bytes]]] = []
    state: dict[int, bytes] = {}
    t_ms = 0
    with open(path, encoding="ascii") as fh:
        lines = [ln.strip() for ln in fh if ln.strip()]
    if lines and lines[0] == "OLA Show":
        lines = lines[1:]
    seen: set[int] = set()
    for i in range(0, len(lines), 2):
        uni, _, values = lines[i].partition(" ")
        u = int(uni)
        if u in seen:                               # same universe again: a new frame
            out.append((t_ms / 1000.0, dict(state)))
            seen.clear()
        state[u] = bytes(int(v) for v in values.split(",")).ljust(512, b"\0") if values \
            else bytes(512)
        seen.add(u)
        delay = int(lines[i + 1]) if i + 1 < len(lines) else 0
        if delay:
            out.append((t_ms / 1000.0, dict(state)))
            seen.clear()
            t_ms += delay
    if seen:
        out.append((t_ms / 1000.0, dict(state)))
    return out
