"""Claims on output targets (pi_app/claims.py) with real processes: exclusive whatever the
user, released by the kernel on SIGKILL, the holder named, requests authorised by the
kernel's word on who asks."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import time
import uuid

import pytest
from procs import REPO, env_for, public_dir, run_cli, stop, wait_for

from pi_app import claims
from pi_app.claims import Claim, ClaimError, Holder

HOLD = """
import sys, time
from pi_app.claims import Claim
def handler(cmd, args):
    return {"echo": cmd}
c = Claim(sys.argv[1:], "show", handler=handler)
print("held", flush=True)
time.sleep(600)
"""
SYSTEM_PYTHON = "/usr/bin/python3"


def target() -> str:
    return f"test:{uuid.uuid4().hex}"


def hold(t: str, user: str | None = None) -> subprocess.Popen:
    """A process holding a claim on `t` (as `user`, with the system Python: any user may run
    it; pi_app.claims needs nothing but the standard library)."""
    kw: dict = {}
    python = sys.executable
    if user is not None:
        pw = pwd.getpwnam(user)
        kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [], "cwd": "/"}
        python = SYSTEM_PYTHON
    proc = subprocess.Popen([python, "-c", HOLD, t], env=env_for(), stdout=subprocess.PIPE,
                            text=True, **kw)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_one_holder_at_a_time_and_the_holder_is_named():
    t = target()
    proc = hold(t)
    try:
        with pytest.raises(ClaimError) as exc:
            Claim([t], "show")
        who = exc.value.holder
        assert who.pid == proc.pid and who.role == "show"
        assert who.uid == os.getuid() and "-c" in who.argv
        assert str(exc.value).startswith(f"{t}: output: already driven by a LatentDMX show, "
                                         f"pid {proc.pid} (started by hand by ")
        assert claims.request(t, "identify", {}) == {"echo": "identify"}
    finally:
        proc.kill()
        proc.wait()


def test_sigkill_releases_the_claim_at_once():
    t = target()
    proc = hold(t)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Claim([t], "show") as c:                 # no stale file, nothing to clean up
        assert claims.holder(t).pid == os.getpid()
        assert c.targets == (t,)
    assert claims.holder(t) is None


def test_all_or_nothing_and_long_targets():
    t1, t2 = target(), "x" * 300
    proc = hold(t2)
    try:
        with pytest.raises(ClaimError):
            Claim([t1, t2], "show")
        assert claims.holder(t1) is None          # nothing half-held
        assert claims.holder(t2).pid == proc.pid   # a long target is hashed, still exclusive
    finally:
        proc.kill()
        proc.wait()


def test_the_systemd_service_is_named_as_such():
    h = Holder(42, 999, "show", ("/opt/latentdmx/venv/bin/latentdmx", "run", "--config",
                                 "/etc/latentdmx/config.toml"), "latentdmx.service", "latentdmx")
    assert h.describe() == ("a LatentDMX show, pid 42 (the systemd service latentdmx.service: "
                            "latentdmx run --config /etc/latentdmx/config.toml)")
    assert "sudo systemctl stop latentdmx.service" in h.fix()


def _why_not_nobody() -> str:
    """Why these tests cannot run a claim as user nobody here ("" if they can): root is
    needed to switch users, and nobody must exist and import pi_app.claims from this
    checkout with the system Python (a checkout in a private home, or a Python older than
    the package needs, would fail the test instead of skipping it)."""
    if os.geteuid() != 0:
        return "needs root (to run a process as another user)"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"needs {SYSTEM_PYTHON}"
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        return "needs a user named nobody"
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import pi_app.claims"], env=env_for(),
                       capture_output=True, text=True, user=pw.pw_uid, group=pw.pw_gid,
                       extra_groups=[], cwd="/", timeout=30)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return f"nobody cannot import pi_app.claims from {REPO} with {SYSTEM_PYTHON}: {last}"
    return ""


_WHY_NOT = _why_not_nobody()
needs_nobody = pytest.mark.skipif(bool(_WHY_NOT), reason=_WHY_NOT or "-")


@pytest.mark.slow
@needs_nobody
def test_a_claim_held_by_another_user_refuses_a_show(tmp_path):
    """Another user's program on the same target: `run` is refused, naming it."""
    import socket

    from pi_app.outputs.ola import _canonical_host

    port = 9
    t = f"ola:{_canonical_host('127.0.0.1')}:{port}/u1"
    with socket.socket(socket.AF_UNIX) as probe:     # a leftover from another run? skip
        if probe.connect_ex(claims.address(t)) == 0:
            pytest.skip(f"{t} is held on this machine")
    proc = hold(t, user="nobody")
    d = public_dir()
    try:
        cfg = d / "rig.toml"
        from procs import rig_text
        cfg.write_text(rig_text(port))
        r = run_cli("run", "--config", str(cfg), "--output", "ola", "--duration", "1",
                    env=env_for(xdg=d))
    finally:
        proc.kill()
        proc.wait()
    assert r.returncode == 2, r.stdout + r.stderr
    # another account's claim: described by the kernel only (it could claim to be anything)
    assert f"already driven by another program, pid {proc.pid} (started by hand by nobody" \
        in r.stderr


@needs_nobody
def test_requests_from_other_users_are_refused_but_who_is_answered():
    t = target()
    with Claim([t], "show", handler=lambda cmd, args: {"done": cmd}):
        ask = ("import json, socket, sys\n"
               "s = socket.socket(socket.AF_UNIX)\n"
               "s.connect(b'\\0latentdmx/claim/' + sys.argv[1].encode())\n"
               "s.sendall((json.dumps({'cmd': sys.argv[2]}) + '\\n').encode())\n"
               "print(s.makefile().readline())\n")
        pw = pwd.getpwnam("nobody")
        out = {}
        for cmd in ("who", "identify"):
            r = subprocess.run([SYSTEM_PYTHON, "-c", ask, t, cmd], capture_output=True,
                               text=True, user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                               cwd="/", timeout=10)
            out[cmd] = r.stdout
    assert f'"pid": {os.getpid()}' in out["who"]
    assert '"ok": false' in out["identify"] and "permission denied" in out["identify"]


def test_a_hung_client_does_not_block_the_claim():
    import socket

    t = target()
    with Claim([t], "show", handler=lambda cmd, args: {"done": cmd}):
        hung = [socket.socket(socket.AF_UNIX) for _ in range(3)]
        for s in hung:
            s.connect(claims.address(t))          # connects, never sends
        t0 = time.monotonic()
        assert claims.request(t, "identify", {}) == {"done": "identify"}
        assert time.monotonic() - t0 < 1.0
        for s in hung:
            s.close()


@pytest.mark.slow
def test_a_show_with_no_targets_claims_nothing(tmp_path):
    """The simulator drives no lights: two simulated shows may run side by side."""
    d = public_dir()
    env = env_for(xdg=d, LATENTDMX_FAKE_CLOCK="1")
    a = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--duration", "2"],
                         env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    b = run_cli("run", "--duration", "2", env=env)
    stop(a)
    assert b.returncode == 0, b.stderr
    wait_for(lambda: a.poll() is not None, 10, "the first show to end")
