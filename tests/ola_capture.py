"""Capture what olad really outputs on a universe, as `ola_recorder --record` would.

`OlaCapture(rpc_port, universes)` registers with olad as a DMX receiver (a sink client, over
its RPC port, through OLA's own Python client) and records every merged frame olad sends,
timestamped on arrival. Two senders on one LTP universe show up as the frames alternating.
(`ola_recorder` itself only talks to port 9010, and the tests' olads use private ports.)

    with OlaCapture(olad.rpc_port, [1]) as cap:
        ...                                 # run the senders
    cap.frames                              # [(t_s, {1: bytes(512)}), ...]
"""

from __future__ import annotations

import select
import socket
import threading
import time


class OlaCapture:
    def __init__(self, rpc_port: int, universes=(1,), host: str = "127.0.0.1") -> None:
        self.rpc_port, self.host = rpc_port, host
        self.universes = tuple(universes)
        self.frames: list[tuple[float, dict[int, bytes]]] = []
        self._state: dict[int, bytes] = {u: bytes(512) for u in self.universes}
        self._stop = threading.Event()
        self._registered = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self.error: BaseException | None = None

    def __enter__(self) -> OlaCapture:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> OlaCapture:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._registered.wait(5.0):
            raise RuntimeError(f"could not register with olad on port {self.rpc_port}: "
                               f"{self.error}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def since(self, t_s: float) -> list[tuple[float, dict[int, bytes]]]:
        return [(t, f) for t, f in list(self.frames) if t >= t_s]

    def now(self) -> float:
        return time.monotonic() - self._t0

    def _run(self) -> None:
        from pi_app.outputs.ola import import_ola

        try:
            mod = import_ola()
            sock = socket.create_connection((self.host, self.rpc_port), timeout=2.0)
            client = mod.OlaClient(sock)
            acks = []
            for u in self.universes:
                client.RegisterUniverse(u, client.REGISTER, self._callback(u),
                                        lambda status: acks.append(status))
            while not self._stop.is_set():
                ready, _, _ = select.select([sock], [], [], 0.1)
                if ready:
                    if not sock.recv(1, socket.MSG_PEEK):
                        break
                    client.SocketReady()
                if len(acks) == len(self.universes):
                    self._registered.set()
            sock.close()
        except BaseException as exc:         # noqa: BLE001 - reported by start()
            self.error = exc

    def _callback(self, universe: int):
        def got(data) -> None:
            self._state[universe] = bytes(data).ljust(512, b"\0")
            self.frames.append((time.monotonic() - self._t0, dict(self._state)))
        return got
