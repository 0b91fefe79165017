"""What hostile connections cost the daemon's web page: resident memory before, at the worst
moment and after 64 connections that each send a request line and 99 headers of 64 KB
(no valid token; each line just under the standard library's 64 KiB line limit), as fast
as the page takes them.

    python bench/web_hostile.py [--connections 64] [--headers 99] [--header-bytes 65000]
                                [--repo PATH]

A real daemon (`latentdmx run --web`, simulator output) of the checkout at --repo (default:
this one), its RSS read from /proc/PID/status every 50 ms. Goal: at most +20 MB.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_daemon(repo: Path, tmp: Path, port: int) -> subprocess.Popen:
    text = (repo / "pi_app" / "data" / "default.toml").read_text()
    text = text.replace("web = false", "web = true", 1).replace("port = 8044",
                                                                f"port = {port}", 1)
    cfg = tmp / "rig.toml"
    cfg.write_text(text)
    xdg = tmp / "xdg"
    xdg.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("RUNTIME_DIRECTORY", "NOTIFY_SOCKET")}
    env.update(PYTHONPATH=str(repo), XDG_RUNTIME_DIR=str(xdg), STATE_DIRECTORY=str(tmp / "state"))
    proc = subprocess.Popen([sys.executable, "-m", "pi_app.cli", "run", "--config", str(cfg),
                             "--duration", "600"], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    time.sleep(3.0)                                 # settled: frames flowing
    return proc


def attack(port: int, n_headers: int, size: int, socks: list, sent: list) -> None:
    s = socket.create_connection(("127.0.0.1", port))
    socks.append(s)
    s.settimeout(15)
    pad = b"a" * size
    k = 0
    try:
        s.sendall(b"GET /state HTTP/1.1\r\nHost: localhost\r\nX-LatentDMX-Token: wrong\r\n")
        for k in range(n_headers):
            s.sendall(b"X-Pad-%d: " % k + pad + b"\r\n")
        s.sendall(b"\r\n")
        k = n_headers
    except OSError:
        pass
    sent.append(k)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--headers", type=int, default=99)
    ap.add_argument("--header-bytes", type=int, default=65000)
    ap.add_argument("--repo", type=Path, default=HERE)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="latentdmx-bench-web-"))
    port = free_port()
    proc = start_daemon(a.repo.resolve(), tmp, port)
    try:
        before = rss_mb(proc.pid)
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_mb(proc.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        socks: list[socket.socket] = []
        sent: list[int] = []
        t0 = time.monotonic()
        threads = [threading.Thread(target=attack, args=(port, a.headers, a.header_bytes,
                                                         socks, sent))
                   for _ in range(a.connections)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        took = time.monotonic() - t0
        time.sleep(1.0)
        held = rss_mb(proc.pid)
        for s in socks:
            s.close()
        time.sleep(2.0)
        done.set()
        after = rss_mb(proc.pid)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"repo {a.repo}: {a.connections} connections x {a.headers} headers of "
          f"{a.header_bytes} bytes (wrong token), sent in {took:.1f} s")
    print(f"  headers sent before the page hung up: median {sorted(sent)[len(sent) // 2]}, "
          f"max {max(sent)}")
    print(f"  RSS before {before:.0f} MB, peak {peak[0]:.0f} MB (+{peak[0] - before:.0f}), "
          f"with the connections open {held:.0f} MB, after closing {after:.0f} MB; "
          f"daemon {'alive' if alive else 'DEAD'}")
    print(f"  goal +20 MB at most: {'met' if peak[0] - before <= 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
