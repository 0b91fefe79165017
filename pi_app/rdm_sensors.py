"""RDM sensors in `latentdmx status`: what the responders measure, read off the frame loop.

With ``[rdm] sensors = true`` and the OLA output, the daemon reads every responder on the
rig's OLA universes (`pi_app.outputs.rdm.RdmReader`: discovery, DEVICE_INFO, SENSOR_VALUE,
LAMP_HOURS, DEVICE_HOURS; GETs only) at the start and every ``interval_s`` (default a minute),
on a thread of its own at a lower CPU priority. The frame loop never waits for it: `status`
shows the last lines read and how old they are. Off by default: RDM discovery takes time on a
busy line, and some fixtures flicker while they are discovered.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from .config import Config
from .errors import LatentDMXError
from .outputs.rdm import RdmReader

log = logging.getLogger("latentdmx")

NICE = 10                   # the reading thread's CPU priority below the frame loop's


class SensorPoller:
    """``start()``, ``lines()`` (any thread), ``stop()``."""

    def __init__(self, config: Config) -> None:
        o = config.output.ola
        self.host, self.port = o.host, o.port
        self.interval_s = config.rdm.interval_s
        self.universes = sorted({int(o.universe_map.get(str(f.universe), f.universe))
                                 for f in config.fixtures})
        self._lines: tuple[str, ...] = ()
        self._error = ""
        self._at: float | None = None
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rdm-sensors", daemon=True)

    def start(self) -> SensorPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def lines(self) -> list[str]:
        """What `status` shows: one line per device with readings, then how old."""
        if self._at is None:
            return ["reading the RDM responders ..."]
        age = f"read {time.monotonic() - self._at:.0f} s ago"
        if self._error:
            return [*self._lines, f"{self._error} ({age})"]
        return [*self._lines, age] if self._lines else [f"no RDM sensors answer ({age})"]

    def read_once(self) -> None:
        lines = []
        try:
            with RdmReader(self.host, self.port) as reader:
                for u in self.universes:
                    for r in reader.responders(u):
                        if r.readings:
                            lines.append(f"universe {u}: {r.label or r.model}: "
                                         + ", ".join(r.readings))
            self._lines, self._error = tuple(lines), ""
        except LatentDMXError as exc:
            self._error = f"RDM: {getattr(exc, 'what', None) or exc}"
        self._at = time.monotonic()
        self.reads += 1

    def _run(self) -> None:
        with contextlib.suppress(OSError):      # this thread only, below the frame loop
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                           min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICE))
        while not self._stop.is_set():
            try:
                self.read_once()
            except Exception:                   # a bug here must not end the show
                log.exception("RDM sensors: reading failed")
            self._stop.wait(self.interval_s)
