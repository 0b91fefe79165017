"""A real `olad` in a network namespace of its own, for OLA tools that only talk to port 9010.

``ola_recorder`` has no option for olad's RPC port: it always connects to 127.0.0.1:9010. To
record a show from a test's own olad without touching a system olad (a Pi set up with
``--with-ola`` runs one on 9010), the test makes a network namespace (``ip netns add``, its
own loopback), starts olad inside it on 9010 (as user ``olad``: olad refuses root), and runs
``ola_recorder`` and ``latentdmx run --output ola`` inside it too. Nothing leaves the
namespace; it is deleted afterwards. Needs root and iproute2; skips otherwise.

Fixture ``olad_ns`` yields an `OladNamespace`: ``.run(args)`` -> the argument list to run a
command inside, ``.popen(args, ...)``, ``.name``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from olad_fixture import OLAD, Olad, olad_missing_reason
from procs import interruptible


class OladNamespace:
    def __init__(self) -> None:
        self.name = f"ldmx-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.olad = Olad()                   # config dir, plugins, port patch, owned by olad
        self.proc: subprocess.Popen | None = None

    def run(self, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def popen(self, args: list[str], **kw) -> subprocess.Popen:
        """Start `args` in the namespace; SIGINT stops it (`procs.interruptible`)."""
        kw.setdefault("preexec_fn", interruptible)
        return subprocess.Popen(self.run(args), **kw)

    def start(self, timeout_s: float = 10.0) -> OladNamespace:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        subprocess.run(self.run(["ip", "link", "set", "lo", "up"]), check=True,
                       capture_output=True)
        args = ["setpriv", "--reuid=olad", "--regid=olad", "--clear-groups", "--", OLAD,
                "--config-dir", str(self.olad.dir), "--no-register-with-dns-sd", "-r", "9010",
                "-p", "9090", "-l", "2"]
        with open(self.olad.log_path, "ab") as log:
            self.proc = self.popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=log)
        probe = self.run(["python3", "-c", "import urllib.request as u; u.urlopen("
                          "'http://127.0.0.1:9090/get_dmx?u=1', timeout=0.5)"])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"olad in netns {self.name} exited with status "
                                   f"{self.proc.returncode}: {self.olad.log_tail()}")
            if subprocess.run(probe, capture_output=True).returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"olad in netns {self.name} did not answer in {timeout_s} s: "
                           f"{self.olad.log_tail()}")

    def cleanup(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
        finally:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
            shutil.rmtree(self.olad.dir, ignore_errors=True)


def netns_missing_reason() -> str | None:
    reason = olad_missing_reason()
    if reason:
        return reason
    if os.geteuid() != 0:
        return "a network namespace needs root"
    for tool in ("ip", "setpriv", "ola_recorder"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    return None


@pytest.fixture
def olad_ns():
    reason = netns_missing_reason()
    if reason:
        pytest.skip(reason)
    ns = OladNamespace()
    try:
        ns.start()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        ns.cleanup()
        pytest.skip(f"cannot run olad in a network namespace here: {exc}")
    try:
        yield ns
    finally:
        ns.cleanup()


def record(ns: OladNamespace, out: Path, universes: str = "1") -> subprocess.Popen:
    """Start ``ola_recorder --record OUT`` inside the namespace (stop it with SIGINT)."""
    proc = ns.popen(["ola_recorder", "--record", str(out), "--universes", universes],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)                         # registered with olad
    return proc
