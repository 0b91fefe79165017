"""The operator against hostile clients: can `latentdmx blackout` still get through?

    python bench/control_abuse.py [--clients 200] [--tries 10] [--fps 40] [--repo PATH]
                                  [--attacker-uid UID] [--web-clients 400]

A real daemon (`latentdmx run --output sim`) plays; a separate process opens `--clients`
hostile connections to its control socket and keeps them coming back when dropped:

* slowloris — one byte of a request every 4 s, never a newline;
* non-readers — pipeline ``{"cmd":"scene"}`` as fast as the socket takes it, never read;
* garbage — random bytes, over-long lines, invalid UTF-8;
* idle — connect and say nothing;
* greedy — pipeline ``{"cmd":"scene"}`` as fast as the daemon answers, and read it all.

While they run, the real CLI (a new process each time, as an operator types it) sends
`blackout`, `dim 0.8`, `resume` and `status`, `--tries` times each. Printed: how many got
through and how long they took, the daemon's RSS before and at its peak, its late (lost)
frames during the attack, and whether SIGTERM still stops it cleanly under the attack.

Then the web page (``--web-clients`` idle keep-alive connections, then all closed at once):
connections the daemon kept, late frames, and tracebacks in its log.

`--repo` runs another checkout's daemon (e.g. the code before the fix) with this bench.
`--attacker-uid` runs the attackers as another user in the daemon's group (needs root), so
the socket owner's reserved slots come into play.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("slowloris", "nonreader", "garbage", "idle", "greedy")
SCENE = b'{"cmd":"scene"}\n'


# ------------------------------------------------------------------------------ the daemon
@dataclass
class Daemon:
    proc: subprocess.Popen
    socket: Path
    log: Path
    web_port: int | None

    def rss_kb(self) -> int:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def cli(self, *args: str, timeout: float = 10.0) -> tuple[bool, float, str]:
        t0 = time.monotonic()
        try:
            r = subprocess.run([sys.executable, "-m", "pi_app.cli", *args, "--socket",
                                str(self.socket)], capture_output=True, text=True,
                               timeout=timeout, env=self.env())
            ok, out = r.returncode == 0, (r.stdout + r.stderr).strip()
        except subprocess.TimeoutExpired:
            ok, out = False, "timed out"
        return ok, time.monotonic() - t0, out

    def request(self, cmd: str, timeout: float = 5.0, **args) -> dict:
        """One request straight over the socket (the bench's own, quiet, probe)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(max(0.1, deadline - time.monotonic()))
                    s.connect(str(self.socket))
                    s.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
                    buf = b""
                    while not buf.endswith(b"\n"):
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        buf += chunk
                reply = json.loads(buf)
                if reply.get("ok"):
                    return reply["result"]
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{cmd}: no answer within {timeout:g} s")
            time.sleep(0.05)

    def threads(self) -> int:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("Threads:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def cpu_s(self) -> float:
        """The daemon's CPU time so far (user + system), in seconds."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def env(self) -> dict:
        return dict(os.environ, PYTHONPATH=str(self.repo), LATENTDMX_SOCKET=str(self.socket))

    repo: Path = field(default=ROOT)


def start_daemon(tmp: Path, repo: Path, fps: float, web_port: int | None = None,
                 nice: int = 0) -> Daemon:
    sock = tmp / "run" / "control.sock"
    cfg = tmp / "rig.toml"
    text = (repo / "pi_app" / "data" / "default.toml").read_text()
    text = text.replace('socket = ""', f'socket = "{sock}"').replace("fps = 40", f"fps = {fps:g}")
    if web_port:
        text = text.replace("web = false", "web = true").replace("port = 8044",
                                                                 f"port = {web_port}")
    cfg.write_text(text)
    log = tmp / "daemon.log"
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET",
                                                              "RUNTIME_DIRECTORY")}
    env.update(PYTHONPATH=str(repo), PYTHONUNBUFFERED="1")
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--config",
                                 str(cfg), "--output", "sim"], stdout=fh, stderr=fh, env=env,
                                cwd=tmp, preexec_fn=(lambda: os.nice(nice)) if nice else None)
    d = Daemon(proc, sock, log, web_port, repo=repo)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError("daemon exited:\n" + log.read_text())
        try:
            if d.request("status", timeout=1.0).get("frames", 0) > fps:
                break
        except TimeoutError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("daemon did not start:\n" + log.read_text())
    return d


# ------------------------------------------------------------------------------ attackers
@dataclass
class _Slot:
    kind: str
    sock: socket.socket | None = None
    retry_at: float = 0.0
    next_act: float = 0.0


def attack(path: str, n: int, seconds: float, trickle_s: float = 4.0,
           kinds: tuple[str, ...] = KINDS) -> dict:
    """Keep `n` hostile connections to `path` going for `seconds`; return counts."""
    rng = random.Random(1)
    sel = selectors.DefaultSelector()
    slots = [_Slot(kinds[i % len(kinds)]) for i in range(n)]
    stats = {"connects": 0, "refused": 0, "dropped": 0, "bytes_sent": 0, "bytes_read": 0}
    end = time.monotonic() + seconds

    def stop_early(*_: object) -> None:         # SIGTERM: stop, report what was done
        nonlocal end
        end = 0.0

    signal.signal(signal.SIGTERM, stop_early)

    def drop(slot: _Slot, now: float) -> None:
        if slot.sock is not None:
            try:
                sel.unregister(slot.sock)
            except (KeyError, ValueError):
                pass
            slot.sock.close()
            slot.sock = None
        slot.retry_at = now + 0.01

    def send(slot: _Slot, data: bytes, now: float) -> None:
        assert slot.sock is not None
        try:
            stats["bytes_sent"] += slot.sock.send(data)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            stats["dropped"] += 1
            drop(slot, now)

    while (now := time.monotonic()) < end:
        for slot in slots:
            if slot.sock is None and now >= slot.retry_at:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.setblocking(False)
                try:
                    s.connect(path)
                except OSError:
                    s.close()
                    stats["refused"] += 1
                    slot.retry_at = now + 0.02
                    continue
                stats["connects"] += 1
                slot.sock, slot.next_act = s, now
                if slot.kind != "nonreader":        # a non-reader never reads
                    sel.register(s, selectors.EVENT_READ, slot)
            if slot.sock is None or now < slot.next_act:
                continue
            if slot.kind == "slowloris":
                send(slot, b'{"cmd":"status"}'[rng.randrange(15):][:1], now)
                slot.next_act = now + trickle_s
            elif slot.kind in ("nonreader", "greedy"):
                send(slot, SCENE * 64, now)
                slot.next_act = now + 0.01
            elif slot.kind == "garbage":
                junk = rng.choice((os.urandom(rng.randrange(1, 600)), b"\xff\xfe\n",
                                   b"x" * 5000, b'{"cmd": 5}\n', b"[" * 3000 + b"\n",
                                   b'{"cmd":"blackout","args":{"on":1e999}}\n'))
                send(slot, junk, now)
                slot.next_act = now + 0.05
            else:
                slot.next_act = end
        for key, _ in sel.select(0.01):
            slot = key.data
            try:
                data = slot.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                stats["dropped"] += 1
                drop(slot, time.monotonic())
            else:
                stats["bytes_read"] += len(data)
    for slot in slots:
        drop(slot, 0.0)
    return stats if n else {"connects": 0, "dropped": 0, "refused": 0}


def start_attack(d: Daemon, n: int, seconds: float, uid: int | None,
                 kinds: tuple[str, ...] = KINDS) -> subprocess.Popen:
    kw: dict = {}
    python, script = sys.executable, Path(__file__).resolve()
    if uid is not None:          # another user in the daemon's group: the system's Python
        kw.update(user=uid, group=os.getgid(), extra_groups=[])   # and a copy it can read
        python, script = "/usr/bin/python3", d.socket.parent.parent / "attack.py"
        script.write_text(Path(__file__).read_text())
        script.chmod(0o644)
    return subprocess.Popen([python, str(script), "--attack",
                             str(d.socket), "--clients", str(n), "--seconds", str(seconds),
                             "--kinds", ",".join(kinds)],
                            stdout=subprocess.PIPE, text=True, **kw)


# ------------------------------------------------------------------------------ web page
def web_abuse(d: Daemon, n: int, hold_s: float) -> dict:
    """`n` keep-alive connections that send nothing, held `hold_s`, then closed at once."""
    assert d.web_port
    socks, refused = [], 0
    for _ in range(n):
        s = socket.socket()
        s.settimeout(2.0)
        try:
            s.connect(("127.0.0.1", d.web_port))
            socks.append(s)
        except OSError:
            s.close()
            refused += 1
    def open_now() -> int:                   # still open on the daemon's side?
        alive = 0
        for s in socks:
            s.setblocking(False)
            try:
                alive += s.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return alive

    time.sleep(2.0)
    early, threads = open_now(), d.threads()
    time.sleep(hold_s - 2.0)
    alive = open_now()
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # RST
        s.close()
    return {"opened": len(socks), "refused": refused, "alive_after_2s": early,
            "threads_after_2s": threads, "alive_after_hold": alive}


def late(d: Daemon) -> int | None:
    """The daemon's late-frame count, or None if it cannot be reached within 30 s."""
    try:
        return int(d.request("status", timeout=30.0)["late_frames"])
    except TimeoutError:
        return None


def diff(a: int | None, b: int | None) -> str:
    return "unknown (status unreachable)" if a is None or b is None else str(a - b)


def count_tracebacks(d: Daemon) -> int:
    return d.log.read_text(errors="replace").count("Traceback")


# ------------------------------------------------------------------------------ main
def run_control(d: Daemon, clients: int, tries: int, uid: int | None,
                kinds: tuple[str, ...] = KINDS) -> dict:
    d.request("scene")                          # warm up what `scene` imports
    time.sleep(1.0)
    rss0 = d.rss_kb()
    late0 = late(d)
    peak = [rss0]
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(0.05):
            peak[0] = max(peak[0], d.rss_kb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0, t0 = d.cpu_s(), time.monotonic()
    attacker = start_attack(d, clients, 600.0, uid, kinds)
    time.sleep(4.0)                             # let the attack fill every slot
    results: dict[str, list[tuple[bool, float, str]]] = {}
    for _ in range(tries):
        for args in (("blackout",), ("dim", "0.8"), ("resume",), ("status",)):
            results.setdefault(args[0], []).append(d.cli(*args))
    attacker.terminate()
    out, _ = attacker.communicate(timeout=30)
    cpu = (d.cpu_s() - cpu0) / (time.monotonic() - t0)
    stop_sampling.set()
    sampler.join()
    return {"results": results, "rss0_kb": rss0, "peak_kb": peak[0],
            "late": diff(late(d), late0), "cpu": cpu, "attack": json.loads(out or "{}")}


def run_stop(d: Daemon, clients: int, uid: int | None) -> dict:
    attacker = start_attack(d, clients, 20.0, uid)
    time.sleep(4.0)
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    try:
        code = d.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        d.proc.kill()
        code = None
    took = time.monotonic() - t0
    attacker.kill()
    attacker.wait()
    return {"code": code, "took_s": took}


def print_control(r: dict, clients: int, kinds: tuple[str, ...] = KINDS) -> None:
    print(f"\ncontrol socket, {clients} hostile clients ({', '.join(kinds)}; "
          f"attackers: {r['attack'].get('connects', '?')} connects, "
          f"{r['attack'].get('dropped', '?')} dropped by the daemon, "
          f"{r['attack'].get('refused', '?')} refused):")
    for cmd, rows in r["results"].items():
        ok = [t for good, t, _ in rows if good]
        worst = max((t for _, t, _ in rows), default=0.0)
        fails = sorted({out.splitlines()[-1][:90] for good, _, out in rows if not good and out})
        print(f"  latentdmx {cmd:<9} {len(ok)}/{len(rows)} ok, slowest {worst:.2f} s"
              + (f"  ({'; '.join(fails)})" if fails else ""))
    print(f"  daemon RSS  {r['rss0_kb'] / 1024:.1f} MB before, {r['peak_kb'] / 1024:.1f} MB at "
          f"peak: +{(r['peak_kb'] - r['rss0_kb']) / 1024:.1f} MB")
    print(f"  late (lost) frames during the attack: {r['late']}; daemon CPU "
          f"{100 * r['cpu']:.0f} % of one core")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--tries", type=int, default=10)
    ap.add_argument("--fps", type=float, default=40.0)
    ap.add_argument("--repo", type=Path, default=ROOT)
    ap.add_argument("--attacker-uid", type=int, default=None)
    ap.add_argument("--web-clients", type=int, default=400)
    ap.add_argument("--daemon-nice", type=int, default=-5,
                    help="the daemon's niceness; -5 as systemd/latentdmx.service sets it")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help=f"which attackers, comma-separated (default: {','.join(KINDS)})")
    ap.add_argument("--attack", metavar="SOCKET", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=20.0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.attack:
        print(json.dumps(attack(a.attack, a.clients, a.seconds,
                                kinds=tuple(a.kinds.split(",")))))
        return

    tmp = Path(tempfile.mkdtemp(prefix="latentdmx-abuse-"))
    os.chmod(tmp, 0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = start_daemon(tmp, a.repo.resolve(), a.fps, web_port=port, nice=a.daemon_nice)
    rev = subprocess.run(["git", "-C", str(a.repo), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    print(f"LatentDMX control abuse bench: daemon from {a.repo} ({rev or '?'}), {a.fps:g} fps, "
          f"{os.cpu_count()} CPUs, daemon at nice {a.daemon_nice}, attackers as uid "
          f"{a.attacker_uid if a.attacker_uid is not None else os.getuid()}")
    try:
        kinds = tuple(k for k in a.kinds.split(",") if k in KINDS) or KINDS
        r = run_control(d, a.clients, a.tries, a.attacker_uid, kinds)
        print_control(r, a.clients, kinds)
        tb0, late0 = count_tracebacks(d), late(d)
        w = web_abuse(d, a.web_clients, hold_s=12.0)
        time.sleep(2.0)
        print(f"\nweb page, {a.web_clients} idle keep-alive connections held 12 s, then reset:")
        print(f"  connected {w['opened']}, refused {w['refused']}; kept open by the daemon after "
              f"2 s: {w['alive_after_2s']} (daemon threads {w['threads_after_2s']}), after 12 s: "
              f"{w['alive_after_hold']}")
        print(f"  late frames: {diff(late(d), late0)}, tracebacks logged: "
              f"{count_tracebacks(d) - tb0}")
        s = run_stop(d, a.clients, a.attacker_uid)
        print(f"\nSIGTERM under the attack: exit {s['code']} after {s['took_s']:.2f} s "
              f"(fade-out 1 s)")
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


if __name__ == "__main__":
    main()
