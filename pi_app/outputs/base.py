"""The one output interface (after mido's ``BaseOutput``).

`Output.send(frames)` checks the output is open and every frame is ``uint8[512]`` for a
patched universe, takes the lock, then calls the backend's `_send`. A backend overrides only
the hooks `_open`, `_send`, `_close` (and may override `health`, `_pack`). `close()` is
idempotent and sends a blackout of the last frames first, so the lights are dark whatever
happens.

`send` sends a `Prepared`: a dict of the output's own checked copies plus what the backend
packed from them (`_pack`, e.g. OLA's wire bytes). It makes one from any other frames
(`prepare`); the show loop calls `prepare` itself for the frames it works out ahead
(pi_app/ahead.py), so the tick that sends one does not check, copy or pack again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Self

import numpy as np

from ..errors import OutputError

Frames = Mapping[int, np.ndarray]   # OLA universe number -> uint8[512]
BlackoutFn = Callable[[Frames], dict[int, np.ndarray]]
SLOTS = 512
_U8 = np.dtype(np.uint8)
_FRAME = (SLOTS,)


class Prepared(dict):
    """Frames checked and copied by `Output.prepare` (universe -> the output's own
    uint8[512], never written again), with what the backend packed from them (`packed`)."""

    __slots__ = ("by", "packed")

    def __init__(self, frames: dict[int, np.ndarray], by: Output) -> None:
        super().__init__(frames)
        self.by = by
        self.packed: Any = None


def zero_blackout(frames: Frames) -> dict[int, np.ndarray]:
    """Fallback blackout when no patch is known: every slot to 0."""
    return {u: np.zeros(SLOTS, dtype=np.uint8) for u in frames}


class Output:
    """Base class. Backends implement `_open`, `_send`, `_close`; callers use the rest.

    Must override: `_send(frames)`. May override: `_open()`, `_close()`, `health()`.
    `blackout` maps the last frames to dark frames (the patch knows which slots are light and
    which are pan/tilt that must hold); default: all slots 0.
    """

    name = "base"
    config_class: ClassVar[type | None] = None     # its [output.<name>] section, if any

    @classmethod
    def build(cls, config: Any, universes: Iterable[int], *,
              blackout: BlackoutFn | None = None, **kwargs: Any) -> Output:
        """The output for the whole validated config (`pi_app.config.Config`): backends with
        a ``config_class`` get their ``[output.<name>]`` section as ``config=``."""
        if cls.config_class is not None:
            kwargs.setdefault("config", getattr(config.output, cls.name))
        return cls(universes, blackout=blackout, **kwargs)

    @classmethod
    def rig_kwargs(cls, config: Any, patch: Any) -> dict:
        """Extra `build` arguments the backend takes from the rig (default: none)."""
        return {}

    def __init__(self, universes: Iterable[int], *, blackout: BlackoutFn | None = None) -> None:
        self.universes: tuple[int, ...] = tuple(sorted({int(u) for u in universes}))
        if not self.universes:
            raise OutputError("no universe to send", field="fixtures",
                              fix="patch at least one fixture")
        self._blackout = blackout or zero_blackout
        self._lock = threading.Lock()
        self._opened = False
        self._closed = False
        self.frames_sent = 0
        self.last_frames: dict[int, np.ndarray] = {
            u: np.zeros(SLOTS, dtype=np.uint8) for u in self.universes}

    # -- public API -------------------------------------------------------------------
    def open(self) -> Self:
        with self._lock:
            if self._closed:
                raise OutputError("output is closed", field=self.name, fix="open a new output")
            if not self._opened:
                self._open()
                self._opened = True
        return self

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, frames: Frames) -> None:
        """Send one frame per universe (``{universe: uint8[512]}``, or a `Prepared` of
        this output's)."""
        if self._closed or not self._opened:
            raise OutputError("send on an output that is not open", field=self.name,
                              fix="call open() first")
        if type(frames) is not Prepared or frames.by is not self:
            frames = self.prepare(frames)                       # checked and copied now
        with self._lock:
            self._send(frames)
            self.last_frames.update(frames)
            self.frames_sent += 1

    def prepare(self, frames: Frames) -> Prepared:
        """`frames` checked and copied now, for a later `send` (see the module doc)."""
        self._check(frames)
        ready = Prepared({u: f.copy() for u, f in frames.items()}, self)
        ready.packed = self._pack(ready)
        return ready

    def _check(self, frames: Frames) -> None:
        last = self.last_frames
        for u, f in frames.items():
            if u not in last:
                raise OutputError(f"universe {u} is not patched", field=self.name,
                                  fix=f"send only universes {list(self.universes)}")
            if not isinstance(f, np.ndarray) or f.dtype != _U8 or f.shape != _FRAME:
                raise OutputError("a frame must be a uint8[512] NumPy array", field=self.name,
                                  fix="build frames with the patch")

    def blackout(self) -> None:
        """Send the blackout of the last frames now (light 0, pan/tilt held).

        Nothing is sent before the first frame: the lights are in whatever state they were
        left, and a blackout of all-zero frames would swing moving heads to pan/tilt 0."""
        if self._opened and not self._closed and self.frames_sent > 0:
            self.send(self._blackout(self.last_frames))

    def close(self) -> None:
        """Black out, then close. Safe to call more than once."""
        if self._closed:
            return
        try:
            if self._opened:
                try:
                    self.blackout()
                finally:
                    with self._lock:
                        self._close()
        finally:
            self._closed = True

    def targets(self) -> tuple[str, ...]:
        """What this output drives, as stable strings that name the same physical lights
        whoever asks (user, environment, config path): e.g. ``ola:127.0.0.1:9010/u1``,
        ``uart:/dev/ttyAMA0``. Two shows must never drive one target at once. Default: none
        (the simulator drives no lights)."""
        return ()

    def addresses(self) -> tuple[str, ...]:
        """The IP addresses this output sends to, for the service's ``IPAddressAllow=``
        (`latentdmx service-network`). Default: the addresses in `targets()`
        (``kind:ADDRESS:port/...``)."""
        import ipaddress

        out: list[str] = []
        for t in self.targets():
            parts = t.split(":", 2)
            if len(parts) == 3:
                try:
                    out.append(str(ipaddress.ip_address(parts[1].strip("[]"))))
                except ValueError:
                    continue
        return tuple(dict.fromkeys(out))

    def health(self) -> dict:
        """A small status dict for `latentdmx status` (backends add their own keys)."""
        return {"output": self.name, "ok": self._opened and not self._closed,
                "frames_sent": self.frames_sent}

    # -- hooks --------------------------------------------------------------------------
    def _open(self) -> None:
        pass

    def _send(self, frames: Prepared) -> None:
        raise NotImplementedError

    def _pack(self, frames: Prepared) -> Any:
        """What `_send` will use of these frames (`Prepared.packed`); default none."""
        return None

    def _close(self) -> None:
        pass
