"""A foreign sender for tests: a program (like a lighting console or a loop of
`ola_set_dmx`) that streams one DMX frame to an olad universe over RPC until killed.

    python tests/ola_sender.py RPC_PORT UNIVERSE FPS SLOT=VALUE...   # 1-based slots

(`ola_set_dmx` and `ola_streaming_client` only talk to port 9010; the tests' olads use
private ports.)
"""

from __future__ import annotations

import array
import socket
import sys
import time
from pathlib import Path


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pi_app.outputs.ola import import_ola

    port, universe, fps = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    data = array.array("B", [0] * 512)
    for arg in sys.argv[4:]:
        slot, value = arg.split("=")
        data[int(slot) - 1] = int(value)
    client = import_ola().OlaClient(socket.create_connection(("127.0.0.1", port)))
    sock = client._socket
    next_t = time.monotonic()
    while True:
        client.SendDmx(universe, data, None)
        sock.setblocking(False)          # drain acks so olad never blocks on us
        try:
            while sock.recv(65536):
                pass
        except BlockingIOError:
            pass
        sock.setblocking(True)
        next_t += 1.0 / fps
        time.sleep(max(0.0, next_t - time.monotonic()))


if __name__ == "__main__":
    main()
