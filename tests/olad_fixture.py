"""A real `olad` for tests: private config dir, private ports, killable (a pytest plugin).

Use it with ``pytest_plugins = ["tests.olad_fixture"]`` (conftest) or by importing the
fixture. `olad` (function scope) yields an `Olad`: ``.rpc_port``, ``.http_port``,
``.get_dmx(u)``, ``.kill()`` (SIGKILL), ``.start()`` (again, same ports and config),
``.stop()``. Skips with the reason when Debian's olad is not installed.

Recipe (OLA 0.10.9, measured on this project's machines): a fresh config dir with
``enabled = false`` for every plugin but `dummy`, ``ola-port.conf`` pre-seeded with
``1-1-O-0 = 1`` (plugin 1 = dummy, device 1, output port 0 -> universe 1; an unpatched
universe does not exist and SendDmx to it fails). olad refuses to run as root, so as root it
is started as user ``olad`` (``Popen(user=, group=)``: the child's pid *is* olad's), with
``--no-register-with-dns-sd -r RPC -p HTTP``; it is ready when
``http://127.0.0.1:HTTP/get_dmx?u=1`` answers with no error.

Network plugins (``Olad(plugins={"e131": {"ip": "10.77.0.1"}}, patch={"11-1-I-0": 1},
netns=lan.lights)``): `plugins` enables a plugin and writes its preferences, `patch` adds
``ola-port.conf`` lines (``PLUGIN-DEVICE-I|O-PORT = UNIVERSE``; E1.31 is plugin 11, Art-Net
2, dummy 1). E1.31 and Art-Net listen on fixed UDP ports (5568, 6454) and the E1.31 plugin
will not use a loopback interface, so an olad with them runs inside a network namespace the
test made (`tests/netns.py`): there it owns those ports, uses the default RPC/HTTP ports
(so OLA's own tools, ``ola_recorder`` included, work unchanged inside: `ola_tool`), and
cannot collide with any other olad. `get_dmx` reaches its HTTP port through the namespace.

RDM responders: ``Olad(plugins={"dummy": {"moving_light_count": "4", "dimmer_count": "0",
...}})`` writes the dummy plugin's preferences (OLA's own responder code: dimmers with
sub-devices, moving lights with personalities, sensor devices; see tests/test_rdm_doctor.py).

Any number of these run side by side, and beside a system olad (a Pi set up with
``setup-pi.sh --with-ola`` runs one on 9010/9090): each has its own ports and config dir, and
nothing matches processes by name (``start-stop-daemon --exec`` did, and refused to start a
second olad). If olad does not come up, the error says why: its exit status and the tail of
its log, or the ports it was given.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

OLAD = shutil.which("olad") or "/usr/bin/olad"
PLUGINS_OFF = ("artnet", "e131", "espnet", "ftdidmx", "gpio", "karate", "kinet", "milinst",
               "opendmx", "openpixelcontrol", "osc", "pathport", "renard", "sandnet", "shownet",
               "spi", "stageprofi", "uartdmx", "usbdmx", "usbserial", "usbpro", "dmx4linux",
               "nanoleaf")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def olad_missing_reason() -> str | None:
    if not os.path.exists(OLAD):
        return "olad is not installed (sudo apt-get install ola)"
    if os.geteuid() == 0:
        if not shutil.which("start-stop-daemon"):
            return "running as root needs start-stop-daemon to start olad as user olad"
        try:
            pwd.getpwnam("olad")
        except KeyError:
            return "running as root and there is no 'olad' user to run olad as"
    return None


class Olad:
    """One olad process on a private config dir and private ports."""

    def __init__(self, universe: int = 1, *, plugins: dict[str, dict[str, str]] | None = None,
                 patch: dict[str, int] | None = None, netns=None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="latentdmx-olad-"))
        self.universe = universe
        self.netns = netns                           # a tests.netns.NetNs, or None
        self.rpc_port = 9010 if netns else free_port()
        self.http_port = 9090 if netns else free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "olad.log"
        plugins = plugins or {}
        for name in PLUGINS_OFF:
            if name not in plugins:
                (self.dir / f"ola-{name}.conf").write_text("enabled = false\n")
        for name, prefs in plugins.items():
            lines = ["enabled = true", *(f"{k} = {v}" for k, v in prefs.items())]
            (self.dir / f"ola-{name}.conf").write_text("\n".join(lines) + "\n")
        if "dummy" not in plugins:      # the dummy plugin's RDM responders: its preferences
            (self.dir / "ola-dummy.conf").write_text("enabled = true\n")
        ports = {"1-1-O-0": universe, **(patch or {})}
        (self.dir / "ola-port.conf").write_text(
            "".join(f"{k} = {v}\n" for k, v in ports.items()))
        if os.geteuid() == 0:
            user = pwd.getpwnam("olad")
            for p in (self.dir, *self.dir.iterdir()):
                os.chown(p, user.pw_uid, user.pw_gid)

    def start(self, timeout_s: float = 10.0) -> Olad:
        args = [OLAD, "--config-dir", str(self.dir), "--no-register-with-dns-sd",
                "-r", str(self.rpc_port), "-p", str(self.http_port), "-l", "3"]
        user: dict = {}
        if self.netns is not None:                  # enter the namespace, then become olad
            args = self.netns.exec_args(["setpriv", "--reuid=olad", "--regid=olad",
                                         "--clear-groups", *args])
        elif os.geteuid() == 0:                     # olad refuses root: run it as olad
            pw = pwd.getpwnam("olad")
            user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log, **user)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"olad (RPC port {self.rpc_port}, HTTP port "
                                   f"{self.http_port}) exited with status "
                                   f"{self.proc.returncode} before answering: "
                                   f"{self.log_tail()}")
            try:
                if self._get(f"/get_dmx?u={self.universe}", 0.5).get("error") == "":
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"olad (RPC port {self.rpc_port}, HTTP port {self.http_port}) did "
                           f"not answer on HTTP in {timeout_s} s: {self.log_tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self) -> None:
        try:
            self.kill(signal.SIGKILL)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n: int = 15) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def _get(self, path: str, timeout_s: float = 2.0) -> dict:
        if self.netns is not None:                  # its HTTP port is inside the namespace
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout_s)
            conn.sock = self.netns.connect(("127.0.0.1", self.http_port), timeout_s)
            try:
                conn.request("GET", path)
                return json.loads(conn.getresponse().read())
            finally:
                conn.close()
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return json.loads(r.read())

    def ola_tool(self, args: list[str], **kw) -> subprocess.Popen:
        """Start one of OLA's programs (ola_recorder, ola_streaming_client, ...) so that it
        talks to this olad (inside its namespace, on the default ports)."""
        assert self.netns is not None, "OLA's programs only know the default RPC port"
        return self.netns.popen(args, **kw)

    def get_dmx(self, universe: int | None = None) -> np.ndarray:
        """The universe's current data through olad's HTTP API (512 values, zero-padded)."""
        data = self._get(f"/get_dmx?u={universe or self.universe}")["dmx"]
        out = np.zeros(512, dtype=np.uint8)
        out[:len(data)] = data
        return out

    def wait_dmx(self, predicate, timeout_s: float = 5.0) -> np.ndarray:
        """Poll get_dmx until `predicate(frame)` holds; return the frame (or the last seen)."""
        deadline = time.monotonic() + timeout_s
        frame = self.get_dmx()
        while not predicate(frame) and time.monotonic() < deadline:
            time.sleep(0.02)
            frame = self.get_dmx()
        return frame


@pytest.fixture
def olad():
    reason = olad_missing_reason()
    if reason:
        pytest.skip(reason)
    daemon = Olad()
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


@pytest.fixture
def ola_config(olad):
    """An `OlaConfig` pointing at the test's olad."""
    from pi_app.config import OlaConfig

    return OlaConfig(host="127.0.0.1", port=olad.rpc_port, retry_max_s=0.5)
