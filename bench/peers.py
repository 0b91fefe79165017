"""The daemon's CPU and memory beside its peers, side by side, in one interleaved run.

    python bench/peers.py [--rounds 3] [--seconds 10] [--warm 4] [--only a,b,...]

Needs root (network namespaces), Debian's ola and ola-python; QLC+ is measured when
`qlcplus` is installed (``sudo apt-get install qlcplus``: not needed by the tests), else
skipped with a note.

Everything runs on a private test LAN of two network namespaces (`tests/netns.py`): a real
olad in ``lights`` on its default ports (9010/9090, so `ola_streaming_client`, which cannot
be pointed elsewhere, finds it), with its E1.31 plugin listening on 10.77.0.1 for QLC+ and
output ports patched to universes 1-8 (so the scaled rigs' universes exist). Each system is
started as its own process, left `--warm` seconds, then its CPU (user + system of every
thread, from /proc, over wall time) is measured for `--seconds`, with its resident memory
(VmRSS) at the end; then it is stopped and the next one starts. The list is run `--rounds`
times in turn (interleaved, so a noisy neighbour hits all systems alike); the table shows
the median of the rounds, their range, and ratios against the bare OLA loop (the floor) and
against QLC+ in the same run.

Systems (all at 40 fps, to olad unless noted):

- ``daemon``: ``latentdmx run --output ola`` on the bundled demo rig (3 heads, 4 pars);
- ``daemon-sim``: the same on the simulator (no output at all);
- ``paused`` / ``blackout``: the daemon to olad after ``latentdmx pause`` /
  ``blackout on``, once the light has settled;
- ``bare``: a Python loop sending one precomputed frame with OLA's own client (the floor);
- ``streaming``: OLA's ``ola_streaming_client``, fed a frame every 25 ms on its stdin (its
  feeder's CPU is not counted);
- ``qlcplus``: QLC+ headless (``qlcplus -o WORKSPACE -p``, offscreen) playing an RGB matrix
  (the Plasma script) over 7 RGBW fixtures, its engine at 40 Hz, sending E1.31 to olad;
- ``pars512``, ``heads288``, ``pars1024``: the daemon on the scaled rigs (`bench/rigs.py`).

"first frame" is from starting the process to olad's first new frame on the universe.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from rigs import rig_toml

FPS = 40
QLC_UNIVERSE = 100                    # olad's universe for QLC+'s E1.31 (its input port)
GOALS = {"daemon_vs_bare": 1.5, "daemon_vs_qlc": 1.0, "pars1024_cpu": 0.04, "rss_mb": 40.0,
         "idle_cpu": 0.005}

BARE = r"""
import array, select, socket, sys, time
sys.path.append("/usr/lib/python3/dist-packages")      # Debian's ola-python, last
from ola.OlaClient import OlaClient
sock = socket.create_connection(("127.0.0.1", 9010))
client = OlaClient(sock)
frame = array.array("B", [(i * 7) % 256 for i in range(512)])
period = 1.0 / float(sys.argv[1])
t0 = time.monotonic()
k = 0
while True:
    client.SendDmx(1, frame, lambda status: None)
    k += 1
    due = t0 + k * period
    while True:
        left = due - time.monotonic()
        if left <= 0:
            break
        if select.select([sock], [], [], left)[0]:
            client.SocketReady()
"""


class Watcher:
    """An OLA client in the bench (inside the namespace): when olad's universes change."""

    def __init__(self, lan, universes: tuple[int, ...]) -> None:
        from pi_app.outputs.ola import import_ola

        mod = import_ola()
        self._sock = lan.lights.connect(("127.0.0.1", 9010), 5.0)
        self._client = mod.OlaClient(self._sock)
        self.first: dict[int, float] = {}
        self._mark = 0.0
        done = threading.Event()
        for u in universes:
            self._client.RegisterUniverse(u, mod.OlaClient.REGISTER,
                                          data_callback=lambda d, u=u: self._data(u),
                                          callback=lambda status: done.set())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        done.wait(5)

    def mark(self) -> float:
        self.first.clear()
        self._mark = time.monotonic()
        return self._mark

    def _data(self, u: int) -> None:
        if u not in self.first:
            self.first[u] = time.monotonic()

    def _run(self) -> None:
        import select

        while not self._stop.is_set():
            if select.select([self._sock], [], [], 0.1)[0]:
                self._client.SocketReady()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


def cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Bench:
    def __init__(self, lan, tmp: Path, a) -> None:
        self.lan, self.tmp, self.a = lan, tmp, a
        self.py = sys.executable
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_RUNTIME_DIR=str(tmp / "run"),
                        OPENBLAS_NUM_THREADS="1")
        (tmp / "run").mkdir(exist_ok=True)
        self.watcher = Watcher(lan, (1, QLC_UNIVERSE))
        self.qlc = shutil.which("qlcplus")

    # -- the systems --------------------------------------------------------------------
    def daemon(self, rig: str = "demo", output: str = "ola") -> subprocess.Popen:
        path = self.tmp / f"{rig}-{output}.toml"
        path.write_text(rig_toml(rig, output=output, ola_port=9010, fps=FPS))
        return self.lan.lights.popen([self.py, "-m", "pi_app.cli", "run", "--config",
                                      str(path)], env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def control(self, *args: str) -> None:
        subprocess.run([self.py, "-m", "pi_app.cli", *args], env=self.env, check=True,
                       capture_output=True, timeout=10)

    def bare(self) -> subprocess.Popen:
        return self.lan.lights.popen([self.py, "-c", BARE, str(FPS)], env=self.env,
                                     stderr=subprocess.DEVNULL)

    def streaming(self) -> subprocess.Popen:
        proc = self.lan.lights.popen(["ola_streaming_client", "-u", "1"],
                                     stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)

        def feed() -> None:
            t0, k = time.monotonic(), 0
            assert proc.stdin is not None
            try:
                while proc.poll() is None:
                    line = ",".join(str((k + i) % 256) for i in range(512)) + "\n"
                    proc.stdin.write(line.encode())
                    proc.stdin.flush()
                    k += 1
                    time.sleep(max(0.0, t0 + k / FPS - time.monotonic()))
            except (BrokenPipeError, ValueError, OSError):
                pass
        threading.Thread(target=feed, daemon=True).start()
        return proc

    def qlcplus(self) -> subprocess.Popen:
        home = self.tmp / "qlc-home"
        (home / ".config" / "qlcplus").mkdir(parents=True, exist_ok=True)
        (home / ".config" / "qlcplus" / "qlcplus.conf").write_text(
            f"[mastertimer]\nfrequency={FPS}\n")
        ws = self.tmp / "peers.qxw"
        ws.write_text(qlc_workspace())
        env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                   QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(self.tmp / "run"))
        return self.lan.pi.popen(["qlcplus", "-o", str(ws), "-p"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # -- measuring ------------------------------------------------------------------------
    def measure(self, name: str) -> dict | None:
        a = self.a
        t0 = self.watcher.mark()
        universe = QLC_UNIVERSE if name == "qlcplus" else 1
        if name == "qlcplus":
            proc = self.qlcplus()
        elif name == "bare":
            proc = self.bare()
        elif name == "streaming":
            proc = self.streaming()
        elif name == "daemon-sim":
            proc = self.daemon(output="sim")
        elif name in ("daemon", "paused", "blackout"):
            proc = self.daemon()
        else:
            proc = self.daemon(rig=name)
        try:
            time.sleep(a.warm)
            if proc.poll() is not None:
                print(f"  {name}: exited early (status {proc.returncode})")
                return None
            if name in ("paused", "blackout"):
                self.control(*(["pause"] if name == "paused" else ["blackout", "on"]))
                time.sleep(a.settle)
            first = self.watcher.first.get(universe)
            c0, w0 = cpu_s(proc.pid), time.monotonic()
            time.sleep(a.seconds)
            c1, w1 = cpu_s(proc.pid), time.monotonic()
            return {"cpu": (c1 - c0) / (w1 - w0), "rss": rss_mb(proc.pid),
                    "first": None if first is None or name == "daemon-sim" else first - t0}
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        self.watcher.close()


def qlc_workspace(n: int = 7) -> str:
    """7 generic RGBW fixtures (4 channels) in a 7 x 1 group, an RGB matrix playing the
    Plasma script on them from the start (Autostart), universe 1 out as E1.31 unicast to
    olad (10.77.0.1, universe 100)."""
    fixtures = "".join(
        f"<Fixture><Manufacturer>Generic</Manufacturer><Model>Generic RGBW</Model>"
        f"<Mode>RGBW</Mode><ID>{i}</ID><Name>par {i + 1}</Name><Universe>0</Universe>"
        f"<Address>{4 * i}</Address><Channels>4</Channels></Fixture>" for i in range(n))
    heads = "".join(f'<Head X="{i}" Y="0" Fixture="{i}">0</Head>' for i in range(n))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE Workspace>
<Workspace xmlns="http://www.qlcplus.org/Workspace" CurrentWindow="VirtualConsole">
 <Creator><Name>Q Light Controller Plus</Name><Version>4.12.6</Version><Author>bench</Author>
 </Creator>
 <Engine Autostart="0">
  <InputOutputMap>
   <Universe Name="Universe 1" ID="0">
    <Output Plugin="E1.31" Line="0">
     <PluginParameters multicast="0" ucastIP="10.77.0.1" ucastPort="5568"
       universe="{QLC_UNIVERSE}" transmitMode="Full"/>
    </Output>
   </Universe>
  </InputOutputMap>
  {fixtures}
  <FixtureGroup ID="0"><Name>rig</Name><Size X="{n}" Y="1"/>{heads}</FixtureGroup>
  <Function ID="0" Type="RGBMatrix" Name="plasma">
   <Speed FadeIn="0" FadeOut="0" Duration="2000"/>
   <Direction>Forward</Direction><RunOrder>Loop</RunOrder>
   <Algorithm Type="Script">Plasma</Algorithm>
   <MonoColor>4294901760</MonoColor>
   <FixtureGroup>0</FixtureGroup>
   <DimmerControl>0</DimmerControl>
  </Function>
 </Engine>
</Workspace>
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0, help="measured, per system")
    ap.add_argument("--warm", type=float, default=4.0, help="before measuring")
    ap.add_argument("--settle", type=float, default=4.0, help="after pause/blackout")
    ap.add_argument("--only", default="bare,streaming,qlcplus,daemon,daemon-sim,paused,"
                                       "blackout,pars512,heads288,pars1024")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    from netns import Lan, lan_missing_reason
    from olad_fixture import Olad, olad_missing_reason

    reason = lan_missing_reason() or olad_missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return 2
    names = a.only.split(",")
    notes = []
    if "qlcplus" in names and not shutil.which("qlcplus"):
        names.remove("qlcplus")
        notes.append("QLC+ skipped: not installed (sudo apt-get install qlcplus)")
    results: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="latentdmx-peers-") as tmp_s, Lan() as lan:
        tmp = Path(tmp_s)
        os.chmod(tmp, 0o755)
        patch = {f"11-1-O-{i}": i + 1 for i in range(8)}
        patch["11-1-I-0"] = QLC_UNIVERSE
        olad = Olad(plugins={"e131": {"ip": "10.77.0.1", "output_ports": "8",
                                      "input_ports": "1"}}, patch=patch, netns=lan.lights)
        olad.start()
        bench = Bench(lan, tmp, a)
        try:
            for r in range(a.rounds):
                for name in names:
                    res = bench.measure(name)
                    if res is not None:
                        results[name].append(res)
                        print(f"round {r + 1}: {name:<11} CPU {res['cpu']:6.2%}  RSS "
                              f"{res['rss']:5.1f} MB", flush=True)
        finally:
            bench.close()
            olad.cleanup()
    report(results, notes, a)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


LABELS = {"bare": "bare Python loop: OLA's client, one precomputed frame (the floor)",
          "streaming": "ola_streaming_client fed 40 fps",
          "qlcplus": "QLC+ headless, RGB matrix -> E1.31 -> olad",
          "daemon": "LatentDMX run --output ola, demo rig",
          "daemon-sim": "LatentDMX run (sim), demo rig",
          "paused": "LatentDMX -> olad, paused (settled)",
          "blackout": "LatentDMX -> olad, blacked out (settled)",
          "pars512": "LatentDMX -> olad, 512 pars / 4 universes",
          "heads288": "LatentDMX -> olad, 288 heads / 8 universes",
          "pars1024": "LatentDMX -> olad, 1,024 pars / 8 universes"}


def report(results: dict[str, list[dict]], notes: list[str], a) -> None:
    med = {n: statistics.median(r["cpu"] for r in rs) for n, rs in results.items() if rs}
    bare, qlc = med.get("bare"), med.get("qlcplus")
    print(f"\n{a.rounds} interleaved rounds, {a.seconds:g} s measured each, {FPS} fps; CPU = "
          f"user + system over wall time (median of the rounds, [min-max])")
    print(f"{'system':<52} {'CPU %':>7} {'range':>15} {'RSS':>7} {'first':>7} "
          f"{'x bare':>7} {'x QLC+':>7}")
    for n, rs in results.items():
        if not rs:
            continue
        cpus = [r["cpu"] for r in rs]
        first = [r["first"] for r in rs if r["first"] is not None]
        rss = statistics.median(r["rss"] for r in rs)
        print(f"{LABELS.get(n, n):<52} {med[n]:7.2%} "
              f"{f'[{min(cpus):.2%}-{max(cpus):.2%}]':>15} {rss:5.1f}MB "
              f"{f'{statistics.median(first):.2f}s' if first else '-':>7} "
              f"{f'{med[n] / bare:.2f}' if bare else '-':>7} "
              f"{f'{med[n] / qlc:.2f}' if qlc else '-':>7}")
    for note in notes:
        print(note)
    print("\ngoals:")

    def goal(text: str, ok: bool | None) -> None:
        print(f"  {text}: {'met' if ok else 'NOT met' if ok is not None else 'not measured'}")

    d = med.get("daemon")
    goal(f"daemon -> olad <= 1.5 x the bare loop ({d / bare:.2f} x)" if d and bare else
         "daemon -> olad <= 1.5 x the bare loop", d / bare <= 1.5 if d and bare else None)
    goal(f"daemon -> olad <= QLC+ ({d / qlc:.2f} x)" if d and qlc else "daemon -> olad <= QLC+",
         d <= qlc if d and qlc else None)
    p = med.get("pars1024")
    goal(f"1,024 pars / 8 universes <= 4 % ({p:.2%})" if p else "1,024 pars <= 4 %",
         p <= 0.04 if p else None)
    if results.get("daemon"):
        rss = statistics.median(r["rss"] for r in results["daemon"])
        goal(f"RSS <= 40 MB for the demo rig through OLA ({rss:.1f} MB)", rss <= 40)
    for n in ("paused", "blackout"):
        if n in med:
            goal(f"{n} <= 0.5 % ({med[n]:.2%})", med[n] <= 0.005)


if __name__ == "__main__":
    sys.exit(main())
