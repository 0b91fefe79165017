"""A real Mosquitto broker for the MQTT tests: its own folder, a password file and two
listeners on loopback, one plain and one TLS with a throwaway CA made here with openssl.

``Broker(folder).start()``; ``.kill()`` (SIGKILL, as a crash) and ``.start()`` again on the
same ports; ``.close()``. Skips the test where mosquitto or openssl is not installed
(scripts/test.sh installs Debian's ``mosquitto``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

USER, PASSWORD = "latentdmx", "correct-horse-battery-staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for localhost / 127.0.0.1 -> (ca, cert, key)."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _run("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
         "-subj", "/CN=LatentDMX test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    _run("openssl", "req", *ec, "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=localhost", cwd=folder)
    (folder / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n")
    _run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext",
         cwd=folder)
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


class Broker:
    def __init__(self, folder: Path, *, port: int | None = None,
                 tls_port: int | None = None, ns: Any = None) -> None:
        self.ns = ns                        # a tests/netns.NetNs to run in (None: here)
        for tool in ("mosquitto", "mosquitto_passwd", "openssl"):
            if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
                pytest.skip(f"{tool} is not installed (apt-get install mosquitto openssl)")
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls_port = tls_port or free_port()
        self.ca, cert, key = make_ca(folder)
        passwd = folder / "passwd"
        _run(shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", "-c",
             str(passwd), USER, PASSWORD, cwd=folder)
        self.conf = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        root = os.geteuid() == 0
        self.conf.write_text(
            ("user root\n" if root else "") +
            "per_listener_settings false\nallow_anonymous false\n"
            f"password_file {passwd}\npersistence false\nlog_dest stderr\n"
            f"listener {self.port} 127.0.0.1\n"
            f"listener {self.tls_port} 127.0.0.1\n"
            f"cafile {self.ca}\ncertfile {cert}\nkeyfile {key}\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        args = [exe, "-c", str(self.conf)]
        self.proc = subprocess.Popen(self.ns.exec_args(args) if self.ns else args,
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited: " + self.log.read_text()[-2000:])
            connect = self.ns.connect if self.ns else socket.create_connection
            try:
                connect(("127.0.0.1", self.tls_port), 0.2).close()
                connect(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen within 10 s")

    def kill(self) -> None:
        """As a crash: SIGKILL, no goodbye to the clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
