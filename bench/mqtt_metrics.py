"""What Home Assistant over MQTT and ``GET /metrics`` cost the daemon: CPU % of one core.

    python bench/mqtt_metrics.py [--seconds 20] [--rounds 3]

Plays the default rig at 40 fps on the real frame clock, a state change every second (the
master dimmer steps, so the light's state is published each time), in two variants, taking
turns within one run: without (no [mqtt], no web page) and with (a real Mosquitto broker on
loopback, discovery and retained state on change, health sensors every 10 s, and the web
page scraped for /metrics every 5 s by a separate process, as Prometheus would). The CPU
time of this process (every thread: frame loop, paho's network loop, the publisher, the
page server) over the wall time of the measured window is the figure; the broker's and
the scraper's own CPU are other processes and not counted. Needs Debian's ``mosquitto``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from mosquitto_fixture import PASSWORD, USER, Broker, free_port

from pi_app.config import PreviewConfig, default_config_path, load_config
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import Show

TOKEN = "bench-token-8Kq2xZr7Pw"
SCRAPER = """
import sys, time, urllib.request
url, every = sys.argv[1], float(sys.argv[2])
while True:
    try:
        urllib.request.urlopen(urllib.request.Request(url, headers={
            "Authorization": "Bearer %s"}), timeout=5).read()
    except Exception:
        pass
    time.sleep(every)
"""


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def one(folder: Path, broker: Broker | None, seconds: float) -> float:
    """CPU % of one core over `seconds` of a running show (with MQTT and /metrics if
    `broker`)."""
    text = default_config_path().read_text()
    port = free_port()
    if broker is not None:
        pw = folder / "pw"
        pw.write_text(PASSWORD + "\n")
        pw.chmod(0o600)
        text += (f'\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nusername = "{USER}"\n'
                 f'password_file = "{pw}"\ntopic_prefix = "bench/{port}"\n')
    path = folder / f"rig-{port}.toml"
    path.write_text(text)
    cfg = load_config(path)
    if broker is not None:                        # the page, for /metrics
        cfg = cfg.replace(preview=PreviewConfig(web=True, port=port, token=TOKEN))
    patch = Patch(cfg)
    show = Show(cfg, SimOutput(patch.universes, blackout=patch.blackout_frames),
                control=False, presets_dir=folder / "presets")
    thread = threading.Thread(target=show.run, daemon=True)
    thread.start()
    scraper = None
    if broker is not None:
        scraper = subprocess.Popen([sys.executable, "-c", SCRAPER.replace("%s", TOKEN),
                                    f"http://127.0.0.1:{port}/metrics", "5"])
    while show.frames_out < 80:
        time.sleep(0.05)
    time.sleep(1.0)
    c0, w0 = cpu_s(), time.monotonic()
    for k in range(int(seconds)):                 # a state change every second
        show.handle_control("dim", {"level": 0.6 if k % 2 else 0.5}, origin="bench")
        time.sleep(1.0)
    c1, w1 = cpu_s(), time.monotonic()
    if scraper is not None:
        scraper.kill()
        scraper.wait()
    show.stop()
    thread.join(30)
    return 100.0 * (c1 - c0) / (w1 - w0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        broker = Broker(folder / "broker").start()
        try:
            without: list[float] = []
            with_: list[float] = []
            for r in range(args.rounds):
                without.append(one(folder, None, args.seconds))
                with_.append(one(folder, broker, args.seconds))
                print(f"round {r + 1}: without {without[-1]:.2f} %  with MQTT + /metrics "
                      f"{with_[-1]:.2f} %  (CPU % of one core)", flush=True)
        finally:
            broker.close()
    a, b = sorted(without)[len(without) // 2], sorted(with_)[len(with_) // 2]
    print(f"median: without {a:.2f} %, with {b:.2f} %: MQTT and /metrics add "
          f"{b - a:+.2f} % of a core at 40 fps with a state change every second "
          f"(goal: at most 1 %)")


if __name__ == "__main__":
    main()
