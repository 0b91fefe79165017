"""A raw UDP receiver for tests: every datagram that reaches a port, in order, with its time.

``UdpCapture(port, groups=["239.255.0.1"], iface="10.77.0.1", ns=lan.lights)`` binds the port
(inside the namespace, if given), joins the multicast groups on the interface, and records
``(monotonic time, source address, bytes)`` on its own thread until `close()`. It parses
nothing itself: the tests hand the bytes to an independent parser (the ``sacn`` package's, or
the Art-Net layout written out in the test).
"""

from __future__ import annotations

import select
import socket
import threading
import time

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)        # Linux; Python 3.11 lacks the name


class UdpCapture:
    def __init__(self, port: int, *, groups=(), iface: str = "0.0.0.0", ns=None,
                 bind: str = "") -> None:
        def make() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)   # the destination address
            s.bind((bind, port))
            for g in groups:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                             socket.inet_aton(g) + socket.inet_aton(iface))
            return s

        self.sock = ns.call(make) if ns is not None else make()
        self.port = self.sock.getsockname()[1]
        self.packets: list[tuple[float, str, str, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if select.select([self.sock], [], [], 0.05)[0]:
                data, anc, _, addr = self.sock.recvmsg(2048, 64)
                dest = next((socket.inet_ntoa(d[8:12]) for lvl, kind, d in anc
                             if lvl == socket.IPPROTO_IP and kind == IP_PKTINFO), "")
                self.packets.append((time.monotonic(), addr[0], dest, data))

    def wait_for(self, predicate, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.packets):
                return True
            time.sleep(0.02)
        return predicate(self.packets)

    def settle(self, quiet_s: float = 0.2, timeout_s: float = 5.0) -> None:
        """Wait until nothing new arrived for `quiet_s` and nothing waits unread in the
        socket (on a busy machine the reading thread may not have run for a while)."""
        deadline = time.monotonic() + timeout_s
        n = -1
        while time.monotonic() < deadline and (n != len(self.packets) or self._queued()):
            n = len(self.packets)
            time.sleep(quiet_s)

    def _queued(self) -> int:
        """Bytes of the next datagram waiting in the socket (SIOCINQ), 0 if none."""
        import fcntl
        import struct
        import termios

        try:
            got = fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        return struct.unpack("i", got)[0]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
