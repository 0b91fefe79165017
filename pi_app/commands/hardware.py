"""`latentdmx identify` (light one fixture at a time) and `latentdmx doctor` (what is wrong
with the DMX set-up, each problem with its fix).

Both go through the same config, patch and outputs as `latentdmx run`; OLA and serial
libraries are imported only inside the outputs' own modules.
"""

from __future__ import annotations

import contextlib
import difflib
import grp
import logging
import os
import pwd
import socket
import sys
import time
from pathlib import Path

import click

from ..errors import ConfigError, LatentDMXError, OutputError
from ..outputs import registry
from ..outputs.doctor import Finding
from ..outputs.several import kinds_text
from .rdm_check import rdm_findings

SETUP = "sudo scripts/setup-pi.sh"


# -- identify ---------------------------------------------------------------------------
@click.command()
@click.argument("fixture", required=False)
@click.option("--all", "all_", is_flag=True, help="Every fixture, one after another.")
@click.option("--seconds", type=float, default=5.0, show_default=True,
              help="How long each fixture stays lit.")
@click.option("--level", type=click.FloatRange(0.0, 1.0), default=0.3, show_default=True,
              help="Dimmer level of the white light, 0..1.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Rig config (TOML). Default: the bundled demo rig.")
@click.option("--output", type=click.Choice(registry.names()),
              help="Where frames go. Default: the config's output.kind.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def identify(fixture, all_, seconds, level, config_path, output, verbose):
    """Light FIXTURE in steady white at a safe level, to check its address.

    \b
    Examples:
      latentdmx identify head-left --output ola        # 5 s at 30 %
      latentdmx identify --all --seconds 3             # every fixture in turn

    Every other fixture stays dark, moving heads point to the middle of their range. Ends
    (or on Ctrl-C) with a blackout.

    While a show drives the same lights (the same olad universe or serial port, however it
    was started), identify goes through that show: it lights the fixture the same way, the
    others go dark, then the show comes back, all through its flash limiter. Any other
    program on those lights (another identify) makes it stop with the reason.
    """
    from .. import outputs
    from ..config import load_run_config
    from ..identify import identify_scene
    from ..patch import Patch
    from .run import _logging

    _logging(verbose)
    if not all_ and not fixture:
        raise click.UsageError("name a FIXTURE or give --all")
    if seconds <= 0:
        raise ConfigError("must be more than 0", file="command line", field="--seconds",
                          fix="e.g. --seconds 5")
    cfg = load_run_config(config_path, output=output)
    patch = Patch(cfg)
    names = [f.name for f in patch.fixtures]
    if all_:
        chosen = list(range(len(names)))
    elif fixture in names:
        chosen = [names.index(fixture)]
    else:
        close = difflib.get_close_matches(fixture, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"no fixture named {fixture!r}", file=cfg.path, field="fixtures",
                          fix=f"{hint}fixtures: {', '.join(names)}")
    kind = kinds_text(cfg)
    out = outputs.output_for(cfg, patch)        # [[outputs]]: every one of them
    from ..claims import Claim, ClaimError

    try:
        claim = Claim(out.targets(), "identify")
    except ClaimError as exc:
        if exc.holder.role != "show":
            raise
        _identify_through_show(exc, [names[i] for i in chosen] if not all_ else None,
                               seconds, level)
        return
    period = 1.0 / cfg.fps
    with _sigterm_as_interrupt(), claim, out:   # `kill` ends it like Ctrl-C: with a blackout
        for i in chosen:
            fx = patch.fixtures[i]
            click.echo(f"{fx.name}: universe {fx.universe}, addresses {fx.address}-"
                       f"{fx.last_address} ({fx.profile.key} {fx.mode.name}) - white at "
                       f"{level:.0%} for {seconds:g} s")
            frames = patch.frames(identify_scene(patch, i, level))
            t0 = time.monotonic()
            k = 0
            while time.monotonic() - t0 < seconds:     # a steady refresh on the frame clock
                out.send(frames)
                k += 1
                time.sleep(max(0.0, t0 + k * period - time.monotonic()))
        health = out.health()
    if kind == "ola" and not health.get("delivered"):
        raise OutputError(f"nothing reached olad at {health.get('server')}",
                          field="output.ola", fix="start olad (`systemctl start olad`), then "
                                                  "see `latentdmx doctor --output ola`")
    click.echo("done: blackout sent")


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt while inside (main thread only), so the output's
    close() still sends its blackout."""
    import signal
    import threading

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _identify_through_show(held, names: list[str] | None, seconds: float,
                           level: float) -> None:
    """Ask the show holding the lights (`held`: its `ClaimError`) to identify `names` (None:
    all its fixtures), wait while it does, cancel on Ctrl-C."""
    from .. import claims

    click.echo(f"{held.target} is driven by {held.holder.describe()}: identifying through it")
    args: dict = {"seconds": seconds, "level": level}
    if names is None:
        args["all"] = True
    else:
        args["fixtures"] = names
    res = claims.request(held.target, "identify", args)
    master = float(res.get("master", 1.0))
    if master < 1.0:
        click.echo(f"note: the show's master is {master:g}, so the light is at "
                   f"{level * master:.0%}")
    try:
        for fx in res.get("fixtures", []):
            click.echo(f"{fx['name']}: universe {fx['universe']}, addresses {fx['addresses']} "
                       f"({fx['profile']}) - white at {level:.0%} for {seconds:g} s, through "
                       "the show")
            time.sleep(seconds)
    except KeyboardInterrupt:
        claims.request(held.target, "identify", {"cancel": True})
        click.echo("cancelled: the show comes back (through its flash limiter)")
        return
    click.echo("done: the show comes back (through its flash limiter)")


# -- darken -----------------------------------------------------------------------------
@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Rig config (TOML). Default: the bundled demo rig.")
@click.option("--output", type=click.Choice(registry.names()),
              help="The output to darken. Default: the config's output.kind.")
@click.option("--lamps-off", is_flag=True,
              help="Also switch discharge lamps off (the end of the day): the lamp-off values "
                   "the fixture files name, held 6 s. Refused while a show runs.")
def darken(config_path, output, lamps_off):
    """Black the rig out now, without the daemon: light channels to their dark value (0, or
    a closed value that keeps the lamp on), pan/tilt and held channels (lamp on) where they
    are. Lamps stay on unless --lamps-off.

    \b
    The systemd unit runs it after the daemon ends, however it ends (ExecStopPost=):
      latentdmx darken --config /etc/latentdmx/config.toml
    After a crash, a watchdog abort or SIGKILL, olad would keep sending the last lit frame
    (and fixtures on a silent UART hold it). For OLA it reads the universe back from olad;
    for the UART it uses the last frames the show kept in RAM. If a show drives the lights
    again, it leaves them to that show. Exit 0 when the rig is dark.
    """
    from ..config import load_run_config
    from ..darken import darken as send_blackout
    from .run import _logging

    _logging(False)
    cfg = load_run_config(config_path, output=output)
    click.echo(send_blackout(cfg, lamps_off=lamps_off))


# -- doctor -----------------------------------------------------------------------------
def _processes() -> list[tuple[int, str, list[str]]]:
    """(pid, comm, argv) of every process we can see."""
    procs = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            comm = (d / "comm").read_text().strip()
            argv = (d / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        procs.append((int(d.name), comm, [a for a in argv if a]))
    return procs


def _option(argv: list[str], short: str, long: str) -> str | None:
    for j, a in enumerate(argv):
        if a in (short, long) and j + 1 < len(argv):
            return argv[j + 1]
        if a.startswith(long + "="):
            return a.split("=", 1)[1]
        if a.startswith(short) and len(a) > len(short) and not a.startswith("--"):
            return a[len(short):]
    return None


def _olad_process(port: int) -> tuple[int, list[str], str] | None:
    """The local olad listening on RPC `port`: (pid, argv, config dir)."""
    for pid, comm, argv in _processes():
        if comm != "olad":
            continue
        rpc = _option(argv, "-r", "--rpc-port") or "9010"
        if rpc.isdigit() and int(rpc) == port:
            conf = _option(argv, "-c", "--config-dir")
            if conf is None:
                try:
                    uid = os.stat(f"/proc/{pid}").st_uid
                    conf = os.path.join(pwd.getpwuid(uid).pw_dir, ".ola")
                except (OSError, KeyError):
                    conf = "/etc/ola"
            return pid, argv, conf
    return None


def _read_conf(path: Path) -> tuple[dict[str, list[str]], bool]:
    """OLA's ``key = value`` preferences file -> {key: [values]}; (…, False) if absent."""
    out: dict[str, list[str]] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out, False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = (s.strip() for s in line.split("=", 1))
        out.setdefault(k, []).append(v)
    return out, True


def _holders(device: str) -> list[str]:
    """'comm (pid N)' of other processes that have `device` open (as far as we can see)."""
    from ..outputs.uart import port_holders

    return [str(h) for h in port_holders(device)]


def _is_local(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def check_ola(cfg) -> list[Finding]:
    from ..outputs.ola import import_ola

    o = cfg.output.ola
    server = f"{o.host}:{o.port}"
    found: list[Finding] = []
    try:
        mod = import_ola()
        found.append(Finding(True, f"OLA's Python client ({Path(mod.__file__).parent})"))
        have_client = True
    except OutputError as exc:
        found.append(Finding(False, exc.what, exc.fix or ""))
        have_client = False
    proc = _olad_process(o.port) if _is_local(o.host) else None
    try:
        socket.create_connection((o.host, o.port), timeout=2.0).close()
        listening = True
    except OSError:
        listening = False
    if not listening:
        others = [p for p in _processes() if p[1] == "olad"] if _is_local(o.host) else []
        if others:
            found.append(Finding(False, f"olad runs (pid {others[0][0]}) but not on RPC port "
                                        f"{o.port}", "set output.ola.port to olad's -r port, "
                                                     "or restart olad: sudo systemctl restart "
                                                     "olad"))
        else:
            found.append(Finding(False, f"olad is not running at {server}",
                                 "start it: sudo systemctl enable --now olad (not installed? "
                                 "sudo apt-get install ola, or sudo scripts/setup-pi.sh "
                                 "--with-ola)"))
        return found
    found.append(Finding(True, f"olad answers at {server}" +
                         (f" (pid {proc[0]}, config {proc[2]})" if proc else "")))
    if not have_client:
        return found
    from ..outputs.ola import OlaQuery

    try:
        with OlaQuery(o.host, o.port) as q:
            universes = {u.id: u for u in q.universes()}
            plugins = q.plugins()
            devices = q.devices()
    except OutputError as exc:
        found.append(Finding(False, exc.what, exc.fix or ""))
        return found
    rig = sorted({f.universe for f in cfg.fixtures})
    uart_plugin = next((p for p in plugins if "uart" in p.name.lower()), None)
    uart_ids = {d.alias for d in devices if uart_plugin and d.plugin_id == uart_plugin.id}
    port_owner: dict[int, list] = {}
    for d in devices:
        for p in d.output_ports:
            if p.universe is not None:
                port_owner.setdefault(p.universe, []).append(d)
    unpatched = False
    for u in rig:
        ou = int(o.universe_map.get(str(u), u))
        label = f"OLA universe {ou}" + (f" (rig universe {u})" if ou != u else "")
        uni = universes.get(ou)
        if uni is None or not uni.output_ports:
            unpatched = True
            outs = [f"{d.alias}: {d.name}" for d in devices if d.output_ports][:4]
            found.append(Finding(False, f"{label} is not patched to any output port in OLA",
                                 f"patch it at http://{o.host}:9090 (Add Universe) or with "
                                 f"`ola_patch -d DEVICE -p 0 -u {ou}`"
                                 + (f"; devices with outputs: {'; '.join(outs)}" if outs
                                    else "; no output device found: plug the interface in, "
                                         "or enable the uartdmx plugin")))
        else:
            ports = ", ".join(p.description or f"port {p.id}" for p in uni.output_ports)
            names = ", ".join(d.name for d in port_owner.get(ou, [])) or "?"
            found.append(Finding(True, f"{label} is patched to {ports} ({names})"))
    found += _check_senders(cfg, universes, proc)
    found += _check_uartdmx(proc, uart_plugin, unpatched, uart_ids)
    return found


def _check_senders(cfg, universes: dict, proc) -> list[Finding]:
    """Other programs sending to the rig's OLA universes, and each one's merge mode
    (`pi_app.commands.senders`)."""
    from .. import claims
    from ..outputs.ola import _canonical_host
    from .senders import MERGE_NOTE, connected_programs, merge_mode_name, source_clients

    o = cfg.output.ola
    http = _option(proc[1], "-p", "--http-port") if proc else None
    http_port = int(http) if http and http.isdigit() else 9090
    counts = source_clients(o.host, http_port)
    programs = connected_programs(o.port) if _is_local(o.host) else []
    found = []
    for u in sorted({f.universe for f in cfg.fixtures}):
        ou = int(o.universe_map.get(str(u), u))
        uni = universes.get(ou)
        if uni is None:
            continue
        mode = merge_mode_name(uni.merge_mode)
        show = claims.holder(f"ola:{_canonical_host(o.host)}:{o.port}/u{ou}")
        n = None if counts is None else counts.get(ou, 0)
        ours = 1 if show is not None else 0
        inputs = [p.description or f"port {p.id}" for p in uni.input_ports]
        label = f"OLA universe {ou}"
        if (n is not None and n > ours) or inputs:
            who = []
            if n is not None and n > ours:
                k = n - ours
                who.append(f"{k} other program{'s' if k > 1 else ''} send{'' if k > 1 else 's'}"
                           " to it")
            if inputs:
                who.append(f"input port{'s' if len(inputs) > 1 else ''} {', '.join(inputs)} "
                           "feed it")
            others = [p.label() for p in programs if show is None or p.pid != show.pid]
            conn = f" (connected to olad: {', '.join(others)})" if others else ""
            found.append(Finding(False, f"{label}: {' and '.join(who)}{conn}, merge mode "
                                        f"{mode}: {MERGE_NOTE.get(mode, '')}",
                                 "stop the other sender, or give it (or LatentDMX) a universe "
                                 "of its own: no flash limit holds while two programs drive "
                                 "one set of lights"))
        elif n is None:
            found.append(Finding(True, f"{label}: merge mode {mode}; olad's web server (port "
                                       f"{http_port}) did not say whether other programs send "
                                       "to it"))
        else:
            found.append(Finding(True, f"{label}: merge mode {mode}, no other sender" +
                                 (f" (LatentDMX: {show.describe()})" if show else "")))
        if show is None:
            found += _check_left_on(cfg, u, ou, label)
    return found


def _check_left_on(cfg, u: int, ou: int, label: str) -> list[Finding]:
    """No LatentDMX program drives universe `ou`: is a lit frame left in it?"""
    from ..outputs.ola import OlaQuery
    from ..patch import Patch

    o = cfg.output.ola
    try:
        with OlaQuery(o.host, o.port) as q:
            data = q.dmx(ou)
    except LatentDMXError:
        return []
    light = Patch(cfg).light_slots().get(u)
    lit = [int(s) + 1 for s in (light if light is not None else []) if s < len(data) and data[s]]
    if not lit:
        return []
    return [Finding(False, f"{label} holds a lit frame ({len(lit)} light channel"
                           f"{'s' if len(lit) > 1 else ''} on, from slot {lit[0]}) and no "
                           "LatentDMX show drives it: a program that has gone left it (a "
                           "killed daemon, ola_set_dmx?)",
                    f"latentdmx darken --config {cfg.path} (or start the show)")]


def _check_uartdmx(proc, plugin, unpatched: bool, uart_devices) -> list[Finding]:
    conf_dir = Path(proc[2]) if proc else Path("/etc/ola")
    conf_path = conf_dir / "ola-uartdmx.conf"
    conf, exists = _read_conf(conf_path)
    enabled = (conf.get("enabled", ["false"])[-1].lower() == "true") if exists else \
        bool(plugin and plugin.enabled)
    restart = "then sudo systemctl restart olad"
    if plugin is None:
        return [] if not unpatched else [Finding(
            False, "this olad has no uartdmx plugin", "use an OLA build with the UART plugin "
                                                     "(Debian's ola has it) or --output uart")]
    if not enabled:
        if unpatched:
            return [Finding(False, f"OLA's UART plugin (uartdmx) is disabled ({conf_path})",
                            f"set enabled = true and device = /dev/ttyAMA0 in {conf_path}, "
                            f"{restart} (or {SETUP} --with-ola)")]
        return [Finding(True, "OLA's UART plugin (uartdmx) is disabled (not needed: the "
                              "universe goes to another device)")]
    found = []
    devices = conf.get("device", [])
    for dev in devices:
        if not os.path.exists(dev):
            found.append(Finding(False, f"OLA's UART plugin points at {dev}, which does not "
                                        f"exist ({conf_path})",
                                 f"set device = /dev/ttyAMA0 (the Pi's PL011 UART) in "
                                 f"{conf_path}, {restart}; enable the UART with {SETUP}"))
        else:
            found += _check_serial_device(dev, for_olad=True)
    if not devices:
        found.append(Finding(False, f"OLA's UART plugin has no device line ({conf_path})",
                             f"add device = /dev/ttyAMA0 to {conf_path}, {restart}"))
    if not plugin.active and not found:
        found.append(Finding(False, "OLA's UART plugin is enabled but not running",
                             "check olad's log (journalctl -u olad): a conflicting plugin, "
                             "or no permission on the device (olad must be in dialout)"))
    if not found:
        found.append(Finding(True, f"OLA's UART plugin on {', '.join(devices)}"))
    return found


def _console_on(device: str) -> bool:
    try:
        cmdline = Path("/proc/cmdline").read_text()
    except OSError:
        return False
    real = os.path.basename(os.path.realpath(device))
    consoles = [a.split("=", 1)[1].split(",")[0] for a in cmdline.split() if
                a.startswith("console=")]
    return any(c == real or os.path.basename(os.path.realpath(f"/dev/{c}")) == real
               for c in consoles)


def _in_dialout(user: str | None = None) -> bool:
    try:
        g = grp.getgrnam("dialout")
    except KeyError:
        return False
    if user is None:
        return g.gr_gid in os.getgroups() or os.getgid() == g.gr_gid
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return True
    return user in g.gr_mem or pw.pw_gid == g.gr_gid


def _check_serial_device(device: str, *, for_olad: bool = False) -> list[Finding]:
    """Exists, right UART, no console, permission, not held by someone else."""
    from ..outputs.gpio import on_raspberry_pi

    found: list[Finding] = []
    real = os.path.realpath(device)
    shown = device if real == device else f"{device} -> {real}"
    if not os.path.exists(device):
        return [Finding(False, f"serial port {device} does not exist",
                        f"enable the UART: {SETUP}, then reboot; or set output.uart.device")]
    if on_raspberry_pi() and real.endswith("ttyS0"):
        found.append(Finding(False, f"{shown} is the mini UART (its baud rate follows the "
                                    "core clock)", f"{SETUP} moves DMX to the PL011 "
                                                   "(dtoverlay=disable-bt); use /dev/ttyAMA0"))
    if _console_on(device):
        found.append(Finding(False, f"the serial console (kernel command line) uses {shown}",
                             f"{SETUP} removes it from cmdline.txt; then reboot"))
    holders = _holders(device)
    if for_olad:
        others = [h for h in holders if not h.startswith("olad ")]
        if others:
            found.append(Finding(False, f"{shown} is also open in {', '.join(others)}",
                                 "stop it (a getty? " + SETUP + " masks serial-getty)"))
        return found
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.getuid()).pw_name
        if not _in_dialout():
            found.append(Finding(False, f"you ({me}) are not in the dialout group",
                                 f"sudo usermod -aG dialout {me}, then log out and in "
                                 f"(the service user gets it from {SETUP})"))
        elif not os.access(device, os.R_OK | os.W_OK):
            found.append(Finding(False, f"no permission to open {shown}",
                                 f"check its group (ls -l {real}); {SETUP}"))
    try:
        pwd.getpwnam("latentdmx")
        if not _in_dialout("latentdmx"):
            found.append(Finding(False, "the service user latentdmx is not in the dialout "
                                        "group", "sudo usermod -aG dialout latentdmx (or "
                                                 f"{SETUP})"))
    except KeyError:
        pass
    # busy or not: the very check `run` makes when it opens the port (outputs.uart)
    from ..outputs.uart import busy_error, port_holders, probe_port

    err = (probe_port(device) if os.access(device, os.R_OK | os.W_OK)
           else busy_error(device, port_holders(device)) if holders else None)
    if err is not None:
        found.append(Finding(False, err.what, err.fix or ""))
    if not found:
        found.append(Finding(True, f"serial port {shown} is free and usable"))
    return found


def check_uart(cfg) -> list[Finding]:
    found = _check_serial_device(cfg.output.uart.device)
    n = len({f.universe for f in cfg.fixtures})
    if n > 1:
        found.append(Finding(False, f"the patch uses {n} universes; the UART sends one",
                             "patch every fixture into one universe, or use --output ola"))
    return found


def _doctor_target(kind: str, cfg) -> str:
    """What the doctor looks at, for its first line."""
    if kind == "ola":
        return f"olad at {cfg.output.ola.host}:{cfg.output.ola.port}"
    if kind == "uart":
        return cfg.output.uart.device
    from ..outputs import make_output

    universes = sorted({f.universe for f in cfg.fixtures})
    targets = make_output(kind, cfg, universes).targets()
    more = f" and {len(targets) - 3} more" if len(targets) > 3 else ""
    return ", ".join(targets[:3]) + more


def _output_findings(kind: str, cfg) -> list[Finding]:
    """One output kind's doctor checks on `cfg` (a check that crashes is a finding)."""
    checks = registry.get(kind).doctor_checks()
    try:
        return checks(cfg)
    except LatentDMXError:
        raise
    except Exception as exc:        # a doctor must not crash on odd systems
        logging.getLogger("latentdmx").debug("doctor failed", exc_info=True)
        return [Finding(False, f"the check itself failed ({exc.__class__.__name__}: {exc})",
                        "run with LATENTDMX_DEBUG=1 and report it")]


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Rig config (TOML). Default: the bundled demo rig.")
@click.option("--output", type=click.Choice(registry.doctor_names()),
              help="The output to check. Default: the config's output.kind (sim: ola), or "
                   "each of its [[outputs]].")
@click.option("--rdm", is_flag=True,
              help="Also ask the fixtures on each OLA universe over RDM whether they are where "
                   "the config says (address, mode) and what they measure. Read-only.")
def doctor(config_path, output, rdm):
    """Say what is wrong with the DMX output, each problem with its fix.

    \b
    OLA: the Python client, olad running, each universe patched to an output port, OLA's
    UART plugin enabled and pointed at a device that exists.
    UART: the serial port exists, is the right UART, is not busy (serial console, olad),
    and you (and the service user) are in the dialout group.
    sACN / Art-Net: the interface is up, a route to the multicast groups or the nodes, the
    nodes answering (ping; Art-Net: ArtPoll), the port, the service's IPAddressAllow=.
    The clock: synchronised (chrony, timedatectl), needed by a [sync] group and a schedule;
    a group's multicast address can be joined.
    --rdm (OLA): the RDM devices on each universe the config uses against the config: a
    fixture missing, at another address, in another mode, footprints overlapping, a device
    the config does not know; and their sensors (temperature, lamp hours). Sends no SET.
    Exit 0 when all is well, 1 when a problem was found.
    """
    from ..config import load_run_config
    from ..outputs.several import blamed, labels, sub_configs

    cfg = load_run_config(config_path)
    if cfg.outputs and output is None:      # [[outputs]]: each one, as if it were the one
        found = []
        for i, (label, sub) in enumerate(zip(labels(cfg), sub_configs(cfg), strict=True)):
            if sub.output.kind not in registry.doctor_names():
                continue
            with blamed(cfg, i):
                click.echo(f"checking outputs[{i + 1}] {label} "
                           f"({_doctor_target(sub.output.kind, sub)}), config {cfg.path}")
                found += _output_findings(sub.output.kind, sub)
        kind = kinds_text(cfg)
    else:
        kind = output or (cfg.output.kind if cfg.output.kind in registry.doctor_names()
                          else "ola")
        cfg = next((sub for sub in sub_configs(cfg) if sub.output.kind == kind), cfg)
        click.echo(f"checking output {kind} ({_doctor_target(kind, cfg)}), config {cfg.path}")
        found = _output_findings(kind, cfg)
    from ..sync.doctor import sync_findings  # the clock, and a [sync] group's socket

    found += sync_findings(cfg)
    if rdm:
        if kind != "ola":               # (with [[outputs]]: --rdm --output ola)
            found.append(Finding(False, f"--rdm needs the ola output (this is {kind})",
                                 "run: latentdmx doctor --rdm --output ola"))
        else:
            found += rdm_findings(cfg)
    for f in found:
        click.echo(f"  {'ok  ' if f.ok else 'FAIL'}  {f.what}")
        if not f.ok and f.fix:
            click.echo(f"        fix: {f.fix}")
    problems = sum(not f.ok for f in found)
    if problems:
        click.echo(f"{problems} problem{'s' if problems > 1 else ''} found")
        sys.exit(1)
    click.echo("no problems found")
