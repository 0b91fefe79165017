"""Health you can watch: the figures `latentdmx health`, ``GET /metrics`` and the MQTT sensors
show, read from a running `Show` when asked (never by the frame loop).

The frame loop's own bookkeeping is what it already keeps, plus one number a frame: how long
the tick took from waking to the frame being out (`Show.work_s`, a bounded deque). Everything
else is read here, on the asking thread: frames sent and late (the clock), frame work p50 and
p99 over the last `Show.work_s` samples, the output's errors (its `health()`: frames it could
not deliver, dropped or refused), the flash limiter's interventions (`Safety.interventions`:
how often it started holding light back), the lockstep group's members and largest clock
offset, the audio's lock and BPM, the process's resident memory, uptime, the CPU temperature
where the system shows one (a Pi does), and the config's hash (sha256 of the file as last
loaded, so a monitor can tell which config a Pi plays).

`prometheus_text` writes the same figures in Prometheus' text exposition format (version
0.0.4): counters end in ``_total``, the frame work is a gauge per quantile, the state and
the config hash are info-style labels on a constant 1.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

from . import __version__

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# outputs' counts of what was not delivered ("unresolved": to a host name with no address)
_ERROR_KEYS = ("errors", "dropped", "refused", "unresolved")
_hashes: dict[int, tuple[Any, str]] = {}            # id(config) -> (config, its hash)


def achieved_fps(show: Any) -> float | None:
    """Frames computed per second over the last few seconds; None while the show computes
    none (a quiet spell: paused, blacked out or dark, the same frame re-sent)."""
    if show.holding_still:
        return None
    times = tuple(show._times)                  # (one read: the frame loop may clear it)
    if len(times) > 2 and times[-1] > times[0]:
        return round((len(times) - 1) / (times[-1] - times[0]), 2)
    return 0.0


def show_state(show: Any) -> str:
    """What the show is doing, in a word: what a console's display would say first."""
    p, d = show.pipeline, show.director
    if show.stop_requested:
        return "stopping"
    if d.idle:
        return "dark"               # by the schedule: the dark frame, no pipeline work
    if d.going_dark:
        return "fading"             # the schedule's window closed: fading out
    if p.safety.stopping:
        return "stopping"           # the end of --duration
    if p.blacked_out:
        return "blackout"
    if p.paused:
        return "paused"
    if p.identify is not None:
        return "identify"
    return "playing"


def quantile(samples: list[float], q: float) -> float:
    """The nearest-rank `q` quantile of `samples` (0 when there are none)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def rss_bytes() -> int:
    """This process's resident memory (Linux /proc; 0 where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def cpu_temp_c(path: Path = THERMAL_ZONE) -> float | None:
    """The CPU's temperature in °C where the kernel shows it (a Pi does), else None."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def config_hash(config: Any) -> str:
    """sha256 (first 16 hex digits) of the config file as loaded; of its settings when it is
    not a file (the bundled default). Worked out once per loaded config (`Show` asks when it
    takes a config, so a later edit without a reload does not change it)."""
    key = id(config)
    cached = _hashes.get(key)
    if cached is not None and cached[0] is config:
        return cached[1]
    try:
        data = Path(config.path).read_bytes()
    except (OSError, ValueError, TypeError):
        data = repr(config).encode()
    digest = hashlib.sha256(data).hexdigest()[:16]
    _hashes[key] = (config, digest)                  # (kept: its id is not reused)
    while len(_hashes) > 8:                          # a few shows in one process at most
        del _hashes[next(iter(_hashes))]
    return digest


def output_errors(health: dict) -> int:
    return sum(int(v) for k, v in health.items()
               if k in _ERROR_KEYS and isinstance(v, int | float) and not isinstance(v, bool))


def _group(show: Any) -> tuple[str, int, float | None]:
    sync = show.lockstep
    if sync is None:
        return "", 0, None
    live = sync._live_members()
    offsets = [m.offset_s for m in live if m.offset_s is not None]
    worst = max(offsets, key=abs) if offsets else None
    return str(show.config.sync.group), len(live), worst


def health_of(show: Any) -> dict[str, Any]:
    """The figures (module doc), as plain numbers and strings, in base units."""
    work = list(tuple(show.work_s))          # one read: the loop appends meanwhile
    out = show.output.health()
    music = show.music.status()
    group, members, offset_s = _group(show)
    clock = show.clock
    return {
        "state": show_state(show),
        "frames_sent": int(show.frames_out),
        "frames_late": int(clock.late) if clock is not None else 0,
        "fps_achieved": achieved_fps(show),
        "fps": float(show.fps),
        "frame_work_p50_ms": round(quantile(work, 0.5) * 1000.0, 3),
        "frame_work_p99_ms": round(quantile(work, 0.99) * 1000.0, 3),
        "frame_work_samples": len(work),
        "output": str(out.get("output", show.output.name)),
        "output_ok": bool(out.get("ok", False)),
        "output_errors": output_errors(out),
        "outputs": [{"output": str(p.get("label", p.get("output", ""))),
                     "ok": bool(p.get("ok", False)), "errors": output_errors(p)}
                    for p in out.get("outputs", ())],      # [[outputs]]: each one's own
        "limiter_interventions": int(show.pipeline.safety.interventions),
        "group": group,
        "group_members": members,
        "group_offset_ms": None if offset_s is None else round(offset_s * 1000.0, 3),
        "music": str(music["music"]),
        "audio_locked": music["music"] == "locked",
        "bpm": float(music["bpm"]),
        "next_event": str(show.director.next_event_text()),
        "rss_bytes": rss_bytes(),
        "uptime_s": float(show.uptime_s()),
        "cpu_temp_c": cpu_temp_c(),
        "config_hash": config_hash(show.config),
        "version": str(__version__),
    }


# -- Prometheus ----------------------------------------------------------------------------
# (name, type, help, key of `health_of`, scale); None values are left out
_METRICS: tuple[tuple[str, str, str, str, float], ...] = (
    ("latentdmx_frames_sent_total", "counter", "Frames sent to the output.", "frames_sent", 1),
    ("latentdmx_frames_late_total", "counter", "Frames sent after their deadline.",
     "frames_late", 1),
    ("latentdmx_fps", "gauge", "Frames a second achieved (left out while holding still).",
     "fps_achieved", 1),
    ("latentdmx_fps_target", "gauge", "The configured frames a second.", "fps", 1),
    ("latentdmx_output_ok", "gauge", "1 when the output is open and delivering.",
     "output_ok", 1),
    ("latentdmx_output_errors_total", "counter",
     "Frames the output could not deliver (errors, dropped, refused).", "output_errors", 1),
    ("latentdmx_limiter_interventions_total", "counter",
     "Times the flash limiter started holding light back.", "limiter_interventions", 1),
    ("latentdmx_group_members", "gauge", "Lockstep group members heard from (0: no group).",
     "group_members", 1),
    ("latentdmx_group_offset_seconds", "gauge",
     "Largest clock offset to a group member.", "group_offset_ms", 1e-3),
    ("latentdmx_audio_locked", "gauge", "1 when the beat tracker is locked to the music.",
     "audio_locked", 1),
    ("latentdmx_bpm", "gauge", "The music's tempo (0: none).", "bpm", 1),
    ("latentdmx_cpu_temperature_celsius", "gauge", "The CPU's temperature.", "cpu_temp_c", 1),
    ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", "rss_bytes", 1),
    ("latentdmx_uptime_seconds", "gauge", "Seconds since the daemon started.", "uptime_s", 1),
)


def _number(value: Any, scale: float) -> str:
    v = float(value) * scale
    return repr(round(v, 9)) if math.isfinite(v) else "NaN"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus_text(h: dict[str, Any]) -> str:
    """`health_of`'s figures in Prometheus' text format (ends with a newline)."""
    lines: list[str] = []
    for name, kind, help_text, key, scale in _METRICS:
        value = h.get(key)
        if value is None:
            continue
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}",
                  f"{name} {_number(value, scale)}"]
    parts = h.get("outputs") or []
    for name, help_text, key in (
            ("latentdmx_outputs_ok", "1 when this one of several outputs is delivering.",
             "ok"),
            ("latentdmx_outputs_errors_total", "What this one of several outputs could not "
             "deliver.", "errors")):
        if parts:
            kind = "gauge" if key == "ok" else "counter"
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            lines += [f'{name}{{output="{_label(p["output"])}"}} {_number(p[key], 1)}'
                      for p in parts]
    name = "latentdmx_frame_work_seconds"
    lines += [f"# HELP {name} Time from a tick's wake to its frame out, over the last "
              "frames.", f"# TYPE {name} gauge"]
    for q, key in (("0.5", "frame_work_p50_ms"), ("0.99", "frame_work_p99_ms")):
        lines.append(f'{name}{{quantile="{q}"}} {_number(h[key], 1e-3)}')
    lines += ["# HELP latentdmx_info The running show: state, output, config hash, version.",
              "# TYPE latentdmx_info gauge",
              "latentdmx_info{" + ",".join(
                  f'{k}="{_label(str(h[key]))}"' for k, key in (
                      ("state", "state"), ("output", "output"),
                      ("config_hash", "config_hash"), ("version", "version"))) + "} 1"]
    return "\n".join(lines) + "\n"
