"""The takeover matrix: every surface that changes the show (web page, OSC, control socket,
claims; MQTT through the vocabulary's origin rule) against what a second local account, or a
sender on the network, would try. Each attack by another account runs as a real second
account (``nobody``, with the system Python and the standard library only: what any user has)
against a real daemon of the operator (root here) with its own runtime and state folders.

`pytest -s tests/test_takeover.py` prints the matrix: surface, attack, outcome.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from lockstep_daemons import with_sync
from procs import REPO, env_for, public_dir, rig_text, run_cli, stop, wait_for

from pi_app.control import ControlClient
from pi_app.errors import ControlError

SYSTEM_PYTHON = "/usr/bin/python3"
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK),
    reason="needs root (to run processes as a second account, nobody) and /usr/bin/python3")

ROWS: list[tuple[str, str, str]] = []


def row(surface: str, attack: str, outcome: str) -> None:
    ROWS.append((surface, attack, outcome))


@pytest.fixture(scope="module", autouse=True)
def matrix():
    yield
    if ROWS:
        w1, w2 = max(len(r[0]) for r in ROWS), max(len(r[1]) for r in ROWS)
        print("\n\ntakeover matrix (surface × attack → outcome):")
        for s, a, o in ROWS:
            print(f"  {s:<{w1}}  {a:<{w2}}  → {o}")


# -- the second account -------------------------------------------------------------------
def nobody_kw() -> dict:
    pw = pwd.getpwnam("nobody")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [], "cwd": "/",
            "env": {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}}


def as_nobody(code: str, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([SYSTEM_PYTHON, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout_s, **nobody_kw())


def nobody_popen(code: str, *args: str) -> subprocess.Popen:
    """A long-running process of the second account; it prints "ready" when set."""
    proc = subprocess.Popen([SYSTEM_PYTHON, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **nobody_kw())
    line = proc.stdout.readline().strip()
    assert line == "ready", line + proc.stdout.read()
    return proc


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the operator's daemon ------------------------------------------------------------------
class Daemon:
    def __init__(self) -> None:
        self.dir = public_dir("latentdmx-takeover-")
        self.web_port, self.osc_port = free_port(), free_port(socket.SOCK_DGRAM)
        xdg = self.dir / "xdg"
        xdg.mkdir(mode=0o700)
        self.socket = xdg / "latentdmx" / "control.sock"
        self.state = self.dir / "state"
        self.config = self.dir / "rig.toml"
        self.config.write_text(
            rig_text().replace("web = false", "web = true", 1)
            .replace("port = 8044", f"port = {self.web_port}", 1)
            + f"\n[osc]\nenabled = true\nport = {self.osc_port}\n", encoding="utf-8")
        self.log = self.dir / "daemon.log"
        env = env_for(xdg=xdg, STATE_DIRECTORY=str(self.state))
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pi_app.cli", "run", "--config", str(self.config),
                 "--duration", "900"], env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
        wait_for(lambda: self.proc.poll() is not None or self._frames() > 10, 60,
                 "the daemon's first frames")
        assert self.proc.poll() is None, self.log.read_text()
        token = self.state / "web-token"            # made on first start
        self.token = token.read_text().strip() if token.exists() else ""

    def _frames(self) -> int:
        try:
            return int(self.status().get("frames", 0))
        except ControlError:
            return 0

    def status(self) -> dict:
        return ControlClient(self.socket).request("status")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def daemon():
    d = Daemon()
    yield d
    if d.proc.poll() is None:
        d.proc.send_signal(signal.SIGTERM)
        try:
            d.proc.wait(30)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.wait()


# -- web ------------------------------------------------------------------------------------
HTTP = r"""
import json, sys, urllib.request, urllib.error
port, token, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
hdrs = {"Host": "localhost", "Content-Type": "application/json"}
if token:
    hdrs["X-LatentDMX-Token"] = token
req = urllib.request.Request(f"http://127.0.0.1:{port}/control", method="POST",
                             data=json.dumps({"cmd": cmd, "args": args}).encode(), headers=hdrs)
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"""


def test_web_needs_the_token_on_loopback_too(daemon):
    """The issue's curl, as another account: `dim 0.2` over the page on 127.0.0.1."""
    r = as_nobody(HTTP, str(daemon.web_port), "", "dim", '{"level": 0.2}')
    assert r.stdout.startswith("401"), r.stdout + r.stderr
    assert daemon.status()["master"] == 1.0
    get = as_nobody("import urllib.request, sys\n"
                    "req = urllib.request.Request(f'http://127.0.0.1:{sys.argv[1]}/state', "
                    "headers={'Host': 'localhost'})\n"
                    "try: urllib.request.urlopen(req, timeout=5)\n"
                    "except Exception as e: print(getattr(e, 'code', e))\n", str(daemon.web_port))
    assert get.stdout.strip() == "401"
    row("web", "POST /control dim 0.2 without token (another account)", "401, master stays 1")
    row("web", "GET /state without token (another account)", "401")


GUESS = r"""
import sys, time, http.client
port, n = int(sys.argv[1]), int(sys.argv[2])
codes = []
t0 = time.monotonic()
for k in range(n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/state", headers={"Host": "localhost", "X-LatentDMX-Token": f"guess{k:012d}"})
    codes.append(c.getresponse().status)
    c.close()
print(" ".join(map(str, codes)), round(time.monotonic() - t0, 2))
"""


def test_wrong_tokens_back_off_per_account(daemon):
    r = as_nobody(GUESS, str(daemon.web_port), "60")
    *codes, took = r.stdout.split()
    checked = codes.count("401")
    assert len(codes) == 60 and checked + codes.count("429") == 60, r.stdout + r.stderr
    # 0.25 + 0.5 + 1 + 2 + ... s between guesses that are looked at: a handful a few seconds
    assert checked <= 2 + float(took) ** 0.5 * 2, (checked, took)
    # the operator (another account, the right token) is not held up meanwhile
    req = urllib.request.Request(f"http://127.0.0.1:{daemon.web_port}/state",
                                 headers={"X-LatentDMX-Token": daemon.token})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
    row("web", f"60 token guesses in {took} s (another account)",
        f"{checked} checked, {60 - checked} answered 429 unchecked; operator still 200")


HEADERS = r"""
import socket, sys, time
port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(5)
s.sendall(b"GET /state HTTP/1.1\r\nHost: localhost\r\n")
sent = 0
try:
    for k in range(n):
        s.sendall(b"X-Pad-%d: " % k + b"a" * size + b"\r\n")
        sent += 1
except OSError:
    pass
try:
    reply = s.recv(200)
except OSError as e:
    reply = repr(e).encode()
print(sent, reply.split(b"\r\n")[0].decode())
"""


def test_headers_are_capped_before_parsing(daemon):
    # each line just under the standard library's own 64 KiB limit, which took them all
    r = as_nobody(HEADERS, str(daemon.web_port), "99", "65000")
    sent, status = r.stdout.split(" ", 1)
    assert int(sent) < 99, r.stdout                   # cut off (a few in the kernel's buffers)
    assert "431" in status or "Connection reset" in status or status.strip() == "", r.stdout
    row("web", "99 headers of 65,000 bytes, no token (another account)",
        f"cut after {sent} headers (16 KiB read): {status.strip() or 'closed'}")


BODY = r"""
import socket, sys
port, token = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(5)
s.sendall(b"POST /control HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
          b"Content-Length: 4096\r\nX-LatentDMX-Token: " + token.encode() + b"\r\n\r\n")
print(s.recv(100).split(b"\r\n")[0].decode())      # no body sent: answered all the same
"""


def test_the_token_is_checked_before_the_body_is_read(daemon):
    r = as_nobody(BODY, str(daemon.web_port), "wrong-token-0123456789")
    assert " 401 " in r.stdout or " 429 " in r.stdout, r.stdout + r.stderr
    row("web", "POST with a body announced, wrong token", "refused before the body")


def plant_model(name: str) -> Path:
    """A model folder another account planted in /tmp (a copy of a bundled one)."""
    d = Path(tempfile.mkdtemp(prefix=name, dir="/tmp"))
    shutil.copytree(REPO / "models" / "nat-aurora", d / "m")
    pw = pwd.getpwnam("nobody")
    for p in [d, *d.rglob("*")]:
        os.chown(p, pw.pw_uid, pw.pw_gid)
    d.chmod(0o755)
    return d / "m"


@pytest.mark.slow
def test_no_model_paths_from_the_network(daemon):
    planted = plant_model("planted-")
    try:
        before = daemon.status()["model"]
        # even with the token (a leaked one): the page names installed models only
        code, body = _post_web(daemon, "model", {"name": str(planted)})
        assert code == 400 and "only from this machine" in body["error"], body
        row("web", "model /tmp/PLANTED with the token", "400: a path only from the CLI")
        # OSC from the operator's own account: the same rule (it is the network)
        reply = _osc_exchange(daemon.osc_port, "/latentdmx/model", str(planted))
        assert "only from this machine" in reply.get("/latentdmx/error", [""])[0], reply
        row("osc", "/latentdmx/model /tmp/PLANTED (admitted sender)", "error: a path only "
            "from the CLI")
        assert daemon.status()["model"] == before
        # the socket (the CLI, this machine) may: the rule is the origin, not the model
        assert ControlClient(daemon.socket, timeout=30).request("model", name=str(planted))
        ControlClient(daemon.socket, timeout=30).request("model", name=before)
    finally:
        shutil.rmtree(planted.parent, ignore_errors=True)


def _post_web(daemon, cmd: str, args: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{daemon.web_port}/control", method="POST",
        data=json.dumps({"cmd": cmd, "args": args}).encode(),
        headers={"Content-Type": "application/json", "X-LatentDMX-Token": daemon.token})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# -- OSC ------------------------------------------------------------------------------------
def _osc_message(address: str, *args) -> bytes:
    from pythonosc.osc_message_builder import build_msg

    return build_msg(address, list(args)).dgram


def _osc_exchange(port: int, address: str, *args, wait_s: float = 2.0) -> dict[str, list]:
    from pythonosc.osc_message import OscMessage

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.sendto(_osc_message(address, *args), ("127.0.0.1", port))
        s.settimeout(wait_s)
        out: dict[str, list] = {}
        try:
            while True:
                msg = OscMessage(s.recv(65536))
                out[msg.address] = list(msg.params)
                s.settimeout(0.3)
        except OSError:
            pass
    return out


OSC_SEND = r"""
import socket, struct, sys
port, level = int(sys.argv[1]), float(sys.argv[2])
source = (sys.argv[3], int(sys.argv[4])) if len(sys.argv) > 4 else ("127.0.0.1", 0)
addr = b"/latentdmx/dim\0\0"
msg = addr + b",f\0\0" + struct.pack(">f", level)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(source)
s.sendto(msg, ("127.0.0.1", port))
s.settimeout(1.5)
try:
    print("reply", len(s.recv(65536)))
except OSError:
    print("no reply")
"""


@pytest.mark.slow
def test_osc_from_another_account_is_dropped(daemon):
    r = as_nobody(OSC_SEND, str(daemon.osc_port), "0.2")
    assert r.stdout.strip() == "no reply", r.stdout + r.stderr
    time.sleep(0.5)
    assert daemon.status()["master"] == 1.0
    assert re.search(r"OSC: ignoring 127\.0\.0\.1 \(uid 65534\)", daemon.log_text())
    row("osc", "/latentdmx/dim 0.2 from loopback (another account)",
        "dropped (kernel names uid 65534), one log line")
    # from the daemon's own port on another loopback address: still that account's socket
    r = as_nobody(OSC_SEND, str(daemon.osc_port), "0.3", "127.0.0.2", str(daemon.osc_port))
    assert r.stdout.strip() == "no reply", r.stdout + r.stderr
    time.sleep(0.5)
    assert daemon.status()["master"] == 1.0
    row("osc", "the same from 127.0.0.2:<the daemon's own port> (another account)",
        "dropped (exact address in the socket table)")


def _bundle(inner: bytes) -> bytes:
    return b"#bundle\0" + b"\0" * 7 + b"\1" + struct.pack(">i", len(inner)) + inner


@pytest.mark.slow
def test_unreadable_osc_is_one_line_a_minute(daemon):
    before = daemon.log_text()
    deep = _osc_message("/latentdmx/status")
    for _ in range(300):
        deep = _bundle(deep)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(300):
            s.sendto(deep, ("127.0.0.1", daemon.osc_port))
            s.sendto(b"/latentdmx/\xff\xfe\0\0,\0\0\0", ("127.0.0.1", daemon.osc_port))
            s.sendto(b"/latentdmx/palette\0\0,s\0\0\xff\xfe\0\0", ("127.0.0.1", daemon.osc_port))
        time.sleep(1.0)
    assert daemon.status()["frames"] > 0                 # the daemon is fine
    new = daemon.log_text()[len(before):]
    lines = [ln for ln in new.splitlines() if "OSC" in ln]
    assert "Traceback" not in new and "RecursionError" not in new, new[:2000]
    assert len(lines) <= 2, lines
    row("osc", "900 packets: 300-deep bundles, non-UTF-8 address and string",
        f"{len(lines)} log line(s), no traceback")


@pytest.mark.slow
def test_osc_replies_no_larger_than_the_request_until_authenticated(tmp_path):
    """A sender on the LAN (a real network namespace): replies no larger than its request,
    no pushes; after ``/latentdmx/auth TOKEN``, full feedback."""
    from netns import Lan, lan_missing_reason

    if lan_missing_reason():
        pytest.skip(lan_missing_reason())
    import threading

    from pi_app.config import load_config
    from pi_app.install_config import OscConfig
    from pi_app.osc import OscServer
    from pi_app.outputs.sim import SimOutput
    from pi_app.patch import Patch
    from pi_app.show import Show

    cfg = load_config(None)
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes, blackout=patch.blackout_frames),
                duration_s=60, control=False, presets_dir=str(tmp_path))
    th = threading.Thread(target=show.run, daemon=True)
    th.start()
    wait_for(lambda: show.status_snapshot, 10, "frames")
    with Lan() as lan:
        server = OscServer(show, OscConfig(enabled=True, host="10.77.0.2", port=0,
                                           allow=("10.77.0.0/24",)))
        server.token = "t" * 8 + "-auth-token-0123"
        lan.pi.call(server.start)
        tablet = lan.lights.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        tablet.bind(("10.77.0.1", 0))

        def exchange(data: bytes) -> int:
            tablet.sendto(data, ("10.77.0.2", server.port))
            got, tablet_wait = 0, 1.0
            while True:
                tablet.settimeout(tablet_wait)
                try:
                    got += len(tablet.recv(65536))
                except OSError:
                    return got
                tablet_wait = 0.3

        try:
            status = _osc_message("/latentdmx/status")
            before = exchange(status)
            assert before <= len(status), before
            dim = _osc_message("/latentdmx/dim", 0.9)
            assert 0 < exchange(dim) <= len(dim)             # its own value comes back
            assert exchange(_osc_message("/latentdmx/auth", server.token)) > 0
            after = exchange(status)
            assert after > 20 * len(status)
        finally:
            server.close()
            tablet.close()
            show.stop()
            th.join(5)
    row("osc", f"{len(status)}-byte /latentdmx/status from a LAN source (spoofable)",
        f"{before} bytes back (52dfd6e: 1,816); {after} after /latentdmx/auth TOKEN")


# -- the control socket -------------------------------------------------------------------
IMPOSTOR = r"""
import os, socket, sys
path = sys.argv[1]
os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
s = socket.socket(socket.AF_UNIX)
s.bind(path)
os.chmod(path, 0o777)
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b'{"ok": true, "result": {"blackout": true}}\n')
    c.close()
"""


SQUAT = r"""
import json, os, pwd, subprocess, sys
# a private /tmp (this mount namespace only): the machine's own /tmp/latentdmx-UID untouched
subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/tmp"], check=True)
impostor, cfg, elsewhere = sys.argv[1], sys.argv[2], sys.argv[3]
pw = pwd.getpwnam("nobody")
kw = dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], cwd="/", env={"PATH": "/usr/bin"},
          stdout=subprocess.PIPE, text=True)
squat = f"/tmp/latentdmx-{os.getuid()}/control.sock"
procs = [subprocess.Popen(["/usr/bin/python3", "-c", impostor, p], **kw)
         for p in (squat, elsewhere)]
for p in procs:
    assert p.stdout.readline().strip() == "ready"
env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "RUNTIME_DIRECTORY")}
def cli(*args):
    r = subprocess.run([sys.executable, "-m", "pi_app.cli", *args], env=env,
                       capture_output=True, text=True, timeout=60)
    return [r.returncode, r.stdout, r.stderr]
out = {"blackout": cli("blackout", "on"), "run": cli("run", "--config", cfg, "--duration", "1"),
       "elsewhere": cli("blackout", "on", "--socket", elsewhere),
       "squat_mode": oct(os.stat(os.path.dirname(squat)).st_mode & 0o777)}
for p in procs:
    p.kill()
print(json.dumps(out))
"""


@pytest.mark.slow
def test_a_squatted_runtime_folder_is_refused():
    """Another account made /tmp/latentdmx-0/control.sock first (in a private /tmp): the
    operator's daemon refuses to start there, and the operator's `blackout` never believes
    it; nor an answer from another account's socket given with --socket."""
    readable = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               sys.executable, "-c", "import pi_app.cli"], env=env_for(),
                              cwd="/", capture_output=True, text=True, timeout=60)
    if readable.returncode != 0:             # a checkout in a private folder (mktemp -d)
        pytest.skip("nobody cannot run this checkout's Python: "
                    + (readable.stderr.strip().splitlines() or ["?"])[-1])
    if not shutil.which("unshare") or Path("/run/latentdmx/control.sock").exists():
        pytest.skip("needs unshare (a private /tmp), and no service running here")
    d = public_dir("latentdmx-squat-", ram=True)          # outside /tmp: seen inside too
    cfg = d / "rig.toml"
    cfg.write_text(rig_text())
    other = Path(tempfile.mkdtemp(prefix="squat-", dir="/dev/shm"))
    os.chown(other, pwd.getpwnam("nobody").pw_uid, -1)
    try:
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable,
                            "-c", SQUAT, IMPOSTOR, str(cfg), str(other / "control.sock")],
                           env=env_for(), cwd=REPO, capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(other, ignore_errors=True)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    code, stdout, stderr = out["blackout"]
    assert code == 2 and "blackout yes" not in stdout, out
    assert "belongs to uid 65534 (nobody)" in stderr and len(stderr.splitlines()) == 1, out
    row("socket", "squatted /tmp/latentdmx-0 (another account): `latentdmx blackout`",
        "refused in one line, the impostor never asked")
    code, _, stderr = out["run"]
    assert code == 2 and "belongs to uid 65534 (nobody)" in stderr, out
    assert out["squat_mode"] == "0o755"                        # untouched: not ours
    row("socket", "squatted /tmp/latentdmx-0: `latentdmx run`",
        "refused in one line (exit 2), never listens there")
    code, _, stderr = out["elsewhere"]
    assert code == 2 and "answered by uid 65534 (nobody)" in stderr, out
    row("socket", "another account's socket given with --socket",
        "refused: SO_PEERCRED uid 65534")


@pytest.mark.slow
def test_the_control_socket_refuses_another_account(daemon):
    code = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
            "try:\n    s.connect(sys.argv[1]); print('connected')\n"
            "except OSError as e: print(type(e).__name__)\n")
    r = as_nobody(code, str(daemon.socket))
    assert r.stdout.strip() == "PermissionError", r.stdout + r.stderr
    assert (daemon.socket.parent.stat().st_mode & 0o777) == 0o700
    row("socket", "connect to the operator's socket (another account)",
        "PermissionError (folder 0700, socket 0660)")


def test_root_looks_for_the_service_first(monkeypatch):
    """Under sudo (no XDG_RUNTIME_DIR) the service's socket comes before the /tmp fallback,
    whichever of them exist on this machine (here both are made to seem to: the user's own
    show, or a stale socket, must not decide the test)."""
    from pi_app.control import client_socket_path

    if os.geteuid() != 0:
        pytest.skip("the order is root's")
    service = Path("/run/latentdmx/control.sock")
    fallback = Path(f"/tmp/latentdmx-{os.getuid()}/control.sock")
    real = Path.exists
    monkeypatch.setattr(Path, "exists", lambda p: p in (service, fallback) or real(p))
    assert client_socket_path({}) == service
    monkeypatch.setattr(Path, "exists", lambda p: p == fallback or
                        (real(p) and p != service))
    assert client_socket_path({}) == fallback              # no service: the fallback
    row("socket", "sudo (no XDG_RUNTIME_DIR): which socket", "/run/latentdmx first")


# -- claims ---------------------------------------------------------------------------------
FORGER = r"""
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(b"\0latentdmx/claim/" + sys.argv[1].encode())
s.listen(8)
print("ready", flush=True)
lie = {"pid": os.getpid(), "role": "show", "unit": "latentdmx.service",
       "argv": ["/opt/latentdmx/venv/bin/latentdmx", "run"], "targets": [sys.argv[1]]}
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall((json.dumps({"ok": True, "result": lie}) + "\n").encode())
    c.close()
"""

pytest_plugins = ["tests.olad_fixture"]


def _ola_target(port: int) -> str:
    from pi_app.outputs.ola import _canonical_host

    return f"ola:{_canonical_host('127.0.0.1')}:{port}/u1"


def _service_cgroup() -> Path | None:
    """A cgroup named like the unit's, so `claims.own_unit` sees the service as systemd
    would run it (None if this machine cannot make one)."""
    base = Path("/sys/fs/cgroup/systemd")
    if not base.is_dir():
        base = Path("/sys/fs/cgroup/unified")
    d = base / f"latentdmx-takeover-{os.getpid()}.service"
    try:
        d.mkdir(exist_ok=True)
    except OSError:
        return None
    return d


@pytest.mark.slow
def test_forged_claims_are_not_believed(olad):
    from test_stop import LIGHT, lit, rig_on, start_lit_show

    from pi_app import claims

    target = _ola_target(olad.rpc_port)
    d = public_dir(ram=True)
    cfg = d / "rig.toml"
    cfg.write_text(rig_on("ola", ola_port=olad.rpc_port))
    env = env_for(runtime=d)
    show = start_lit_show(olad, cfg, env)          # the service's show lights the rig ...
    show.send_signal(signal.SIGKILL)               # ... and is killed: olad holds it lit
    show.wait()
    assert olad.get_dmx()[LIGHT].any()
    forger = nobody_popen(FORGER, target)          # another account answers "role: show"
    cgroup = _service_cgroup()
    try:
        who = claims.holder(target)
        assert who is not None and who.role == "?" and who.unit == "" and who.user == "nobody"
        # a new show: refused, but naming the real holder, not a forged "systemd service"
        r = run_cli("run", "--config", str(cfg), "--duration", "1", env=env)
        assert r.returncode == 2 and "systemd service" not in r.stderr, r.stderr
        assert f"another program, pid {forger.pid} (started by hand by nobody" in r.stderr
        row("claims", "forged claim 'show, latentdmx.service' (another account): `run`",
            "refused naming pid and nobody, not the forged service")
        # darken by hand: not "nothing to do" on the forger's word
        r = run_cli("darken", "--config", str(cfg), env=env)
        assert "nothing to do" not in r.stdout and r.returncode == 2, r.stdout + r.stderr
        row("claims", "forged claim: `darken` by hand", "refused naming nobody (not 'nothing "
            "to do')")
        # darken as the service runs it (ExecStopPost): darkens whatever the claim says
        if cgroup is None:
            pytest.skip("cannot make a cgroup to run darken as the service")
        code = (f"echo $$ > {cgroup}/cgroup.procs && exec {sys.executable} -m pi_app.cli "
                f"darken --config {cfg}")
        r = subprocess.run(["sh", "-c", code], env={**env, "INVOCATION_ID": "0" * 32},
                           cwd=REPO, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "blackout sent" in r.stdout, r.stdout + r.stderr
        assert not lit(olad.wait_dmx(lambda f: not lit(f), 5.0))
        row("claims", "forged claim after SIGKILL: `darken` under the service",
            "rig dark (darkens whatever the claim says)")
    finally:
        forger.kill()
        forger.wait()
        if cgroup is not None:
            try:
                cgroup.rmdir()
            except OSError:
                pass
        stop(show)


# -- secrets --------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("key", ["Zq0a7...a long random string", " " * 16, "a" * 16,
                                 "abcdabcdabcdabcdabcdabcdabcdabcd"])
def test_weak_group_keys_are_refused_by_check_and_run(key, tmp_path):
    from pi_app.config import default_config_path

    cfg = tmp_path / "rig.toml"
    cfg.write_text(with_sync(default_config_path().read_text(),
                             f'group = "foyer"\nkey = "{key}"'))
    cfg.chmod(0o600)
    env = env_for(xdg=public_dir())
    for args in (["check", str(cfg)], ["run", "--config", str(cfg), "--duration", "1"]):
        r = run_cli(*args, env=env)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "sync.key" in r.stderr and ("too weak" in r.stderr or "placeholder" in r.stderr)
    row("secrets", f"group key {key[:20]!r}", "refused by check and run, one line")


@pytest.mark.slow
def test_secret_files_and_world_readable_warnings(tmp_path):
    import secrets as pysecrets

    from pi_app.config import default_config_path

    key = tmp_path / "group.key"
    key.write_text(pysecrets.token_urlsafe(32) + "\n")
    key.chmod(0o600)
    token = tmp_path / "web.token"
    token.write_text("x\n")
    token.chmod(0o600)
    cfg = tmp_path / "rig.toml"
    base = default_config_path().read_text()
    cfg.write_text(with_sync(base, 'group = "foyer"\nkey_file = "group.key"'))
    cfg.chmod(0o644)
    env = env_for(xdg=public_dir())
    r = run_cli("check", str(cfg), env=env)
    assert r.returncode == 0 and "may read" not in r.stderr, r.stdout + r.stderr
    key.chmod(0o644)
    r = run_cli("check", str(cfg), env=env)
    assert r.returncode == 0 and f"{key}: holds the secret for sync.key_file and every user " \
        "may read it" in r.stderr, r.stderr
    row("secrets", "key_file readable by every user", "one warning line")
    cfg.write_text(base.replace('token_file = ""', 'token_file = "web.token"', 1))
    r = run_cli("check", str(cfg), env=env)
    assert r.returncode == 2 and "preview.token_file" in r.stderr and "too weak" in r.stderr
    row("secrets", "web token of 1 character (token_file)", "refused, one line")
    cfg.write_text(base.replace('token = ""', f'token = "{pysecrets.token_urlsafe(24)}"', 1))
    r = run_cli("check", str(cfg), env=env)
    assert r.returncode == 0 and "holds the web token ([preview] token) and every user may " \
        "read it" in r.stderr, r.stderr
    row("secrets", "config holding the token inline, mode 0644", "one warning line")


@pytest.mark.slow
def test_osc_allow_lists_open_to_everyone_are_refused(tmp_path):
    from pi_app.config import default_config_path

    for net in ("0.0.0.0/0", "::/0", "0.0.0.0/1"):
        cfg = tmp_path / "rig.toml"
        cfg.write_text(default_config_path().read_text() +
                       f'\n[osc]\nenabled = true\nhost = "0.0.0.0"\nallow = ["{net}"]\n')
        r = run_cli("check", str(cfg), env=env_for(xdg=public_dir()))
        assert r.returncode == 2 and "osc.allow[1]" in r.stderr, r.stderr
    row("osc", "allow = [\"0.0.0.0/0\"] (or ::/0)", "refused by check, one line")


# -- MQTT (not built yet): the vocabulary's origin rule covers it ---------------------------
@pytest.mark.slow
def test_every_other_origin_takes_no_paths():
    from pi_app.errors import ModelError
    from pi_app.vocabulary import is_local, lookup

    model = lookup("model")
    for origin in ("mqtt broker.local:1883", "web (127.0.0.1)", "osc 10.0.0.5:9000", "x"):
        assert not is_local(origin)
        with pytest.raises(ModelError, match="only from this machine"):
            model.check_origin({"name": str(REPO / "models" / "nat-aurora")}, origin)
        model.check_origin({"name": "nat-aurora"}, origin)          # names are fine
    assert is_local("socket (pid 1, uid 0)") and is_local("claim")
    row("mqtt", "model PATH (any origin but the socket)", "refused by the vocabulary's rule")
