"""`Lockstep`: this daemon as one member of a group that plays one show (README "Lockstep").

There is no master. Every member computes every frame itself (show time = wall clock since
the epoch, `SyncClock`); the group's messages only carry what a member cannot compute:

* **change** — a live command (``seed``, ``tempo``, ``model``, ``dim``, ``pause``,
  ``resume``, ``blackout``, ``palette``, ``still``, ``preset recall``, ``playlist ...``) given
  to any member (CLI, web page, control socket, OSC) is not applied there at once: it gets a
  frame ``k = now + lead_s`` (0.3 s ahead) and an id ``(k, sender, n)``, goes to the group
  (three copies, one frame apart) and is applied by every member, the sender too, between
  frames k - 1 and k — the same show time everywhere. Two changes for the same frame apply in
  id order on every member. A preset travels with its contents (saved presets live on one
  member's disk).
* **announce** — every ``announce_s`` (1 s), each member sends its state as a snapshot
  (`pi_app.sync.state`): the walk's line, model, seed, master, ..., the ids of the changes
  it has applied, the changes it has scheduled, its frame index and clock stamps.
* **hello** — a member that starts asks for announcements and waits up to `JOIN_WAIT_S` for
  them before its first frame; **bye** — it leaves (a clean stop).

What a member does with an announcement:

* A **late joiner** (or a restarted member) takes the snapshot of the member that has seen
  the most recent change, before its first frame (then fades in on its own, as any start).
  With no change ever made, there is nothing to take: the config and the clock say it all.
* A member that **missed a change** (all three copies lost) sees its id in another member's
  list: it takes that member's snapshot between two frames, then replays any change of its
  own that is newer than the snapshot. A change it missed that is still ahead is scheduled
  from the announcement's list, in time.
* A member whose **config differs** (fps, seed, model, walk, presets, schedule: its
  *fingerprint*) is shown in `status` and logged; no state is taken from or given to it.

Messages are signed (HMAC-SHA256 with ``[sync] key``) and replays are refused
(`pi_app.sync.wire`). The socket thread receives and prepares (loads a model, reads a
preset); the frame loop applies, announces and resends between frames: a few attribute reads
on a frame with nothing to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import heapq
import json
import logging
import math
import os
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ControlError, LatentDMXError
from ..sync_config import SyncConfig
from ..vocabulary import args_text, lookup
from .clock import FastSyncClock, SyncClock
from .state import capture, check, digest, models_of, prepare, restore
from .wire import Guard, Refused, Signer

log = logging.getLogger("latentdmx.sync")

JOIN_WAIT_S = 0.5          # before its first frame a member waits this long for the others
RESENDS = 2                # a change goes out 1 + RESENDS times, one frame apart
RECENT = 32                # change ids listed in an announcement
KNOWN = 512                # change ids remembered
HISTORY = 64               # applied changes kept (to replay on top of a snapshot)
GONE_S = 5.0               # a member not heard for this long (x announce_s) is shown as gone
FORGET_S = 60.0            # ... and forgotten after this long
MAX_DATAGRAM = 60000
CATCH_UP_S = 0.25          # a stall of up to this long is walked through unseen
CLOCK_CHECK_S = 60.0       # how often the machine's clock state is read

Cid = tuple[int, str, int]          # (frame it takes effect, sender id, sender's change number)


def fingerprint(config: Any) -> str:
    """A short hash of what decides the show (not the rig): members should agree on it."""
    asd = dataclasses.asdict
    parts = {"fps": config.fps, "seed": config.seed, "model": config.model,
             "walk": asd(config.walk), "epoch": config.sync.epoch_s,
             "playlist": config.playlist, "schedule": [asd(e) for e in config.schedule],
             "location": asd(config.location),
             "presets": {k: asd(v) for k, v in config.presets.items()},
             "playlists": {k: asd(v) for k, v in config.playlists.items()},
             "palettes": {k: asd(v) for k, v in config.palettes.items()}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()
                          ).hexdigest()[:12]


@dataclass
class Member:
    src: str
    name: str = ""
    pid: int = 0
    addr: str = ""
    heard_s: float = 0.0            # monotonic, when last heard
    frame: int = 0                  # its frame index when it last announced
    version: Cid | None = None
    fingerprint: str = ""
    digest: str = ""
    offset_s: float | None = None   # its clock minus ours (NTP-style, least-delay sample)
    rtt_s: float | None = None
    samples: deque = field(default_factory=lambda: deque(maxlen=8))
    echo: tuple[float, float] | None = None   # (its sent stamp, our receive stamp)


@dataclass(order=True)
class _Due:
    cid: Cid
    apply: Callable[[float], None] = field(compare=False)
    body: dict = field(compare=False)
    origin: str = field(compare=False, default="")


def _cid(value: Any) -> Cid:
    k, src, n = value
    if not (isinstance(k, int) and isinstance(src, str) and isinstance(n, int)):
        raise ValueError("bad change id")
    return (k, src, n)


class Lockstep:
    """One member of ``[sync] group``; built by `Show` when the config has a group."""

    def __init__(self, show: Any, cfg: SyncConfig, *, record_path: str | Path | None = None
                 ) -> None:
        self.show = show
        self.cfg = cfg
        self.fps = float(show.fps)
        self.epoch_s = cfg.epoch_s
        self.signer = Signer(cfg.key, cfg.group)
        self.src = self.signer.src
        self.guard = Guard(cfg.key, cfg.group, cfg.max_age_s, own_src=self.src)
        self.name = socket.gethostname()
        self.pid = os.getpid()
        self.fingerprint = fingerprint(show.config)
        self.lead_frames = max(1, math.ceil(cfg.lead_s * self.fps))
        self.clock: SyncClock | None = None
        self.sock: socket.socket | None = None
        self.members: dict[str, Member] = {}
        self.version: Cid | None = None
        self.adoptions = 0
        self.changes_applied = 0
        self.late_changes = 0
        self.refused_here = 0           # changes this member could not apply (logged)
        self._lock = threading.RLock()
        self._heap: list[_Due] = []
        self._scheduled: set[Cid] = set()
        self._known: set[Cid] = set()
        self._known_order: deque[Cid] = deque()
        self._history: deque[_Due] = deque(maxlen=HISTORY)
        self._adopt: tuple | None = None
        self._resend: list[tuple[int, bytes]] = []       # (frame, datagram): a change again
        self._change_n = 0
        self._reply_due = False
        self._synced = False            # heard the group (or waited for it) at least once
        self._heard = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_announce_s = 0.0
        self._warned: dict[tuple[str, str], float] = {}
        self._wall: Callable[[], float] = time.time
        self._last_digest = ""
        self.clock_state: Any = None
        self._next_clock_check = 0.0
        self.record_path = Path(record_path) if record_path else None
        self._stamps: Any = None
        self._prev_k: int | None = None
        self._frame_t0 = 0.0
        self.work_s = 0.0               # the last frame's CPU time (hook to sent)
        self.caught_up = 0              # frames computed unseen after a stall

    # -- set-up -----------------------------------------------------------------------------
    def make_clock(self, factory: Callable[..., Any], fps: float,
                   stop: threading.Event) -> SyncClock:
        """The frame clock: `SyncClock` on the wall clock; on virtual time (a test's
        `FastClock`) a `FastSyncClock`; a `SyncClock` subclass given by a test as is."""
        from ..clock import FastClock

        kw: dict[str, Any] = {"epoch_s": self.epoch_s, "stop": stop,
                              "slew_limit_s": self.cfg.slew_limit_s}
        target = getattr(factory, "func", factory)               # a functools.partial too
        clock: SyncClock
        if isinstance(target, type) and issubclass(target, SyncClock):
            clock = factory(fps, **kw)
        elif isinstance(target, type) and issubclass(target, FastClock):
            clock = FastSyncClock(fps, **kw)
        else:
            clock = SyncClock(fps, **kw)
        self.clock = clock
        self._wall = clock.wall
        return clock

    def start(self) -> None:
        """Open the group's socket and start listening (before the first frame)."""
        from .timestate import read_clock_state

        self.clock_state = read_clock_state()
        if self.clock_state.synchronised is False:
            log.warning("clock: this machine's clock is %s: the group's frames can only be "
                        "as close as the members' clocks are; set up chrony (README "
                        "'Lockstep', `latentdmx doctor`)", self.clock_state.text())
        self._open_socket(first=True)
        if self.record_path is not None:
            from .stamps import FrameStamps

            self._stamps = FrameStamps(self.record_path)
        self._thread = threading.Thread(target=self._serve, name="latentdmx-sync",
                                        daemon=True)
        self._thread.start()

    def join(self) -> None:
        """Say hello and wait (up to `JOIN_WAIT_S`) for the group's state, so that the first
        frame already plays the group's show."""
        self._send("hello", {"name": self.name, "pid": self.pid, "fp": self.fingerprint})
        if self._heard.wait(JOIN_WAIT_S):
            deadline = time.monotonic() + 0.1          # more replies may be on their way
            while time.monotonic() < deadline:
                time.sleep(0.01)
        self._synced = True
        if self.clock is not None:
            self.clock.restart()                       # from the frame due now
        n = len(self.members)
        log.info("group %s: %s", self.cfg.group,
                 f"joined {n} member{'s' if n != 1 else ''}" if n else
                 "no other member heard yet; playing the show from the config and the clock")

    def close(self) -> None:
        self._send("bye", {})
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
        if self._stamps is not None:
            self._stamps.close()

    # -- the socket -------------------------------------------------------------------------
    def _open_socket(self, first: bool = False) -> bool:
        from ..outputs.net import interface_address

        cfg = self.cfg
        try:
            source = interface_address(cfg.interface)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                with contextlib.suppress(AttributeError, OSError):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.bind((cfg.address, cfg.port))        # only the group's datagrams
                mreq = struct.pack("4s4s", socket.inet_aton(cfg.address),
                                   socket.inet_aton(source or "0.0.0.0"))
                s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, cfg.ttl)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
                if source:
                    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                 socket.inet_aton(source))
                s.settimeout(0.5)
            except OSError:
                s.close()
                raise
        except (OSError, LatentDMXError) as exc:
            what = exc.what if isinstance(exc, LatentDMXError) else (exc.strerror or str(exc))
            if first:
                log.warning("group %s: cannot join %s:%d on %s yet (%s); the show plays in "
                            "step by the clock, live changes reach this member once it "
                            "can (retried every 2 s; `latentdmx doctor`)", cfg.group,
                            cfg.address, cfg.port, cfg.interface or "the default route",
                            what)
            return False
        self.sock = s
        if not first:
            log.warning("group %s: joined %s:%d", cfg.group, cfg.address, cfg.port)
            self._send("hello", {"name": self.name, "pid": self.pid, "fp": self.fingerprint})
        return True

    def _send(self, kind: str, payload: dict[str, Any]) -> bytes | None:
        data = self.signer.seal(kind, payload, self._wall())
        if len(data) > MAX_DATAGRAM:
            log.error("group: %s message too large (%d bytes), not sent", kind, len(data))
            return None
        self._sendto(data)
        return data

    def _sendto(self, data: bytes) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            sock.sendto(data, socket.MSG_DONTWAIT, (self.cfg.address, self.cfg.port))
        except OSError as exc:
            self._warn("send", str(exc.strerror or exc),
                       "group: cannot send to %s:%d: %s", self.cfg.address, self.cfg.port,
                       exc.strerror or exc)

    def _warn(self, kind: str, key: str, msg: str, *args: Any) -> None:
        """Log once a minute per (kind, key)."""
        now = time.monotonic()
        if len(self._warned) > 1000:                   # many senders refused: start over
            self._warned.clear()
        if now - self._warned.get((kind, key), -math.inf) >= 60.0:
            self._warned[(kind, key)] = now
            log.warning(msg, *args)

    def _serve(self) -> None:
        """The socket thread: receive, check, prepare."""
        while not self._stop.is_set():
            if self.sock is None:
                if not self._open_socket():
                    self._stop.wait(2.0)
                continue
            try:
                data, addr = self.sock.recvfrom(65536)
            except TimeoutError:
                self._housekeeping()
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            now = self._wall()
            try:
                body = self.guard.open(data, now)
            except Refused as exc:
                if exc.reason not in ("own", "group"):
                    self._warn(exc.reason, addr[0], "group: refused a message from %s: %s",
                               addr[0], exc)
                continue
            try:
                self._on_message(body, addr[0], now)
            except (KeyError, ValueError, TypeError) as exc:
                self._warn("malformed", addr[0], "group: a message from %s could not be "
                           "used (%s)", addr[0], exc)
            self._housekeeping()

    def _housekeeping(self) -> None:
        now = time.monotonic()
        forget = now - FORGET_S * self.cfg.announce_s
        with self._lock:
            for src in [s for s, m in self.members.items() if m.heard_s < forget]:
                del self.members[src]
        if now >= self._next_clock_check:
            self._next_clock_check = now + CLOCK_CHECK_S
            if self.clock_state is not None:           # read at start; then once a minute
                from .timestate import read_clock_state

                self.clock_state = read_clock_state()

    # -- incoming ---------------------------------------------------------------------------
    def _member(self, body: dict[str, Any], addr: str) -> Member:
        src = body["src"]
        with self._lock:
            m = self.members.get(src)
            if m is None:
                m = self.members[src] = Member(src)
            m.addr = addr
            m.heard_s = time.monotonic()
            if "name" in body:
                m.name, m.pid = str(body["name"]), int(body.get("pid", 0))
        return m

    def _on_message(self, body: dict[str, Any], addr: str, recv_s: float) -> None:
        kind = body["type"]
        if kind == "bye":
            with self._lock:
                gone = self.members.pop(body["src"], None)
            if gone is not None:
                log.info("group: %s left", _who(gone))
            return
        if kind == "change":
            self._on_change(body, f"{body.get('name', '?')}@{addr}")
            return
        m = self._member(body, addr)
        if kind == "hello":
            if m.fingerprint == "" and body.get("fp") not in (None, self.fingerprint):
                log.warning("group: %s joined with a different show config (fps, seed, "
                            "model, walk, presets or schedule differ)", _who(m))
            m.fingerprint = str(body.get("fp", ""))
            self._reply_due = True
            return
        if kind == "announce":
            self._on_announce(body, m, recv_s)

    def _on_announce(self, body: dict[str, Any], m: Member, recv_s: float) -> None:
        fresh = m.fingerprint == ""
        m.frame = int(body["frame"])
        m.version = _cid(body["version"]) if body.get("version") else None
        m.digest = str(body.get("digest", ""))
        if fresh or m.fingerprint != body["fp"]:
            m.fingerprint = str(body["fp"])
            if m.fingerprint != self.fingerprint:
                log.warning("group: %s plays a different show config (fps, seed, model, "
                            "walk, presets or schedule differ): no state is shared with it",
                            _who(m))
        self._clock_sample(m, body, recv_s)
        if m.fingerprint != self.fingerprint:
            self._heard.set()
            return
        for pending in body.get("pending", ()):
            self._on_change(pending, _who(m))
        recent = [_cid(c) for c in body.get("recent", ())]
        k_now = self.clock.frame if self.clock is not None else 0
        with self._lock:
            missed = [c for c in recent if c not in self._known and c not in self._scheduled
                      and c[0] < k_now]
            newer = m.version is not None and (self.version is None or m.version > self.version)
        if missed or (not self._synced and newer):
            why = (f"missed change{'s' if len(missed) > 1 else ''} "
                   f"{', '.join(_cid_text(c) for c in missed[:3])}" if missed else "joining")
            self._prepare_adoption(body, m, recent, why)
        self._heard.set()

    def _clock_sample(self, m: Member, body: dict[str, Any], recv_s: float) -> None:
        """NTP's four stamps: our announce sent (t1) and received there (t2), echoed back in
        its announce, sent (t3) and received here (t4)."""
        echo = (body.get("echo") or {}).get(self.src)
        t3 = float(body["sent"])
        if echo:
            t1, t2 = float(echo[0]), float(echo[1])
            delay = (recv_s - t1) - (t3 - t2)
            if 0 <= delay < 1.0 and recv_s - t1 < 10 * self.cfg.announce_s:
                m.samples.append((delay, ((t2 - t1) + (t3 - recv_s)) / 2))
                best = min(m.samples)
                m.rtt_s, m.offset_s = best
        m.echo = (t3, recv_s)

    def _on_change(self, body: dict[str, Any], origin: str) -> None:
        cid = _cid(body["id"])
        with self._lock:
            if cid in self._known or cid in self._scheduled:
                return
            self._scheduled.add(cid)
        try:
            apply = self._prepare(body)
        except LatentDMXError as exc:
            self.refused_here += 1
            log.error("group: change %s from %s (%s) cannot be applied here: %s",
                      _cid_text(cid), origin, body.get("cmd"), exc)
            with self._lock:
                self._scheduled.discard(cid)
                self._know(cid)
            return
        k_now = self.clock.frame if self.clock is not None else cid[0]
        if cid[0] < k_now:
            self.late_changes += 1
            log.warning("group: change %s (%s) from %s arrived %d frames late; applied as of "
                        "its own time", _cid_text(cid), body.get("cmd"), origin,
                        k_now - cid[0])
        with self._lock:
            heapq.heappush(self._heap, _Due(cid, apply, body, origin))

    def _prepare(self, body: dict[str, Any]) -> Callable[[float], None]:
        """A change message -> the function the frame loop applies (this thread: validates,
        loads a model, reads a preset)."""
        command = lookup(body["cmd"])
        if not (command.live and command.group):
            raise ControlError(f"{command.name} is not a group command", field="cmd")
        values = command.parse(body.get("args") or {})
        if command.name == "preset/recall" and isinstance(body.get("preset"), dict):
            from ..presets import Preset

            d = self.show.director
            try:
                preset = Preset.from_json(body["preset"], source="group")
            except (TypeError, ValueError) as exc:
                raise ControlError(f"bad preset ({exc})", field="preset") from None
            model = d._model(preset.model)
            self.show.pipeline.prepare_walk(model, preset.seed, preset.phase)
            fade_s = values.get("fade_s", d.default_fade_s)
            return lambda t_s: d.recall(preset, model, t_s, fade_s)
        change = command.run(self.show, values)
        if change.apply is None:
            raise ControlError(f"{command.name} changes nothing live", field="cmd")
        return change.apply

    def _prepare_adoption(self, body: dict[str, Any], m: Member, recent: list[Cid],
                          why: str) -> None:
        state = check(body["state"])
        d = self.show.director
        try:
            models = {ref: d._model(ref) for ref in models_of(state)}
        except LatentDMXError as exc:
            self._warn("adopt", m.src, "group: cannot take %s's state (%s): %s", _who(m),
                       why, exc)
            return
        version = _cid(body["version"]) if body.get("version") else None
        pipe = self.show.pipeline
        prepare(pipe, state, models, pipe.last_t + 1.0 / self.fps)
        with self._lock:
            self._adopt = (state, recent, version, models, f"{_who(m)} ({why})")

    # -- the frame loop ---------------------------------------------------------------------
    def catch_up(self, k: int, fading: bool) -> None:
        """Frame k comes after a short stall that skipped frames (late): compute the
        skipped ones unseen, so that this member's safety stage (its slew and flash limits
        go frame by frame) stays where the group's is and its frames stay byte-identical.
        Not after a clock step, and not when the frames themselves take too long (more
        than half a period of CPU: that would only make it later)."""
        prev, self._prev_k = self._prev_k, k
        if prev is None or not 1 < k - prev <= 1 + CATCH_UP_S * self.fps or \
                self.work_s > 0.5 / self.fps:
            return
        show = self.show
        for j in range(prev + 1, k):
            t = j / self.fps
            self.before_frame(j, t)
            if not show.director.step(t, stopping=fading):
                show.pipeline.frames(t)
            self.caught_up += 1

    def before_frame(self, k: int, t_s: float) -> None:
        """Between frames, before frame k (show time t_s): take a snapshot that came in,
        apply the changes due, resend, announce."""
        self._frame_t0 = time.thread_time()
        if self._adopt is not None:
            self._take_snapshot(k)
        heap = self._heap
        if heap and heap[0].cid[0] <= k:
            with self._lock:
                due = []
                while heap and heap[0].cid[0] <= k:
                    due.append(heapq.heappop(heap))
            for item in due:
                self._apply(item)
        if self._resend:
            with self._lock:
                due_now = [d for f, d in self._resend if f <= k]
                self._resend = [(f, d) for f, d in self._resend if f > k]
            for data in due_now:
                self._sendto(data)
        if self._reply_due or time.monotonic() >= self._next_announce_s:
            self._announce(k, t_s)

    def _apply(self, item: _Due) -> None:
        if item.origin != "here":
            log.info("group: %s %s from %s, at frame %d", item.body.get("cmd"),
                     args_text(item.body.get("args")), item.origin, item.cid[0])
        try:
            item.apply(item.cid[0] / self.fps)
        except Exception:
            log.exception("group: change %s (%s) failed", _cid_text(item.cid),
                          item.body.get("cmd"))
        with self._lock:
            self._scheduled.discard(item.cid)
            self._know(item.cid)
            self._history.append(item)
        self.changes_applied += 1

    def _know(self, cid: Cid) -> None:
        if cid in self._known:
            return
        self._known.add(cid)
        self._known_order.append(cid)
        if len(self._known_order) > KNOWN:
            self._known.discard(self._known_order.popleft())
        if self.version is None or cid > self.version:
            self.version = cid

    def _take_snapshot(self, k: int) -> None:
        with self._lock:
            adopt, self._adopt = self._adopt, None
        if adopt is None:
            return
        state, recent, version, models, who = adopt
        restore(self.show, state, models)
        k_snap = round(float(state["t"]) * self.fps)
        seen = set(recent)
        with self._lock:
            for cid in recent:
                self._know(cid)
            if version is not None:
                self._know(version)
            replay = sorted(i for i in self._history if i.cid[0] > k_snap and i.cid not in seen)
        for item in replay:
            item.apply(item.cid[0] / self.fps)
        self.adoptions += 1
        log.info("group: took the state of %s at frame %d%s", who, k,
                 f", then replayed {len(replay)} newer change(s)" if replay else "")

    def _announce(self, k: int, t_s: float) -> None:
        self._next_announce_s = time.monotonic() + self.cfg.announce_s
        reply, self._reply_due = self._reply_due, False
        state = capture(self.show, t_s)
        self._last_digest = digest(state)
        with self._lock:
            recent = [list(c) for c in list(self._known_order)[-RECENT:]]
            pending = [i.body for i in self._heap]
            echo = {src: list(m.echo) for src, m in self.members.items() if m.echo}
            version = list(self.version) if self.version else None
        self._send("announce", {"name": self.name, "pid": self.pid, "frame": k,
                                "fps": self.fps, "fp": self.fingerprint, "version": version,
                                "recent": recent, "pending": pending, "state": state,
                                "digest": self._last_digest, "echo": echo, "reply": reply})

    def after_frame(self, k: int) -> None:
        """After frame k went out: stamp it (with --record)."""
        self.work_s = time.thread_time() - self._frame_t0
        if self._stamps is not None:
            self._stamps.write(k, self._wall())

    # -- changes given to this member ---------------------------------------------------------
    def submit(self, command: Any, values: dict[str, Any], change: Any, origin: str
               ) -> dict[str, Any]:
        """A live command given here (any client): schedule it for the whole group."""
        clock = self.clock
        if clock is None:                  # not playing yet: nothing to be in step with
            self.show._commands.put(change.apply)
            return change.result
        with self._lock:
            self._change_n += 1
            cid: Cid = (clock.frame + self.lead_frames, self.src, self._change_n)
        body: dict[str, Any] = {"id": list(cid), "cmd": command.name, "args": values,
                                "name": self.name}
        if command.name == "preset/recall":
            preset, _ = self.show.director.prepare_recall(values["name"])
            body["preset"] = preset.to_json()
        with self._lock:
            self._scheduled.add(cid)
            heapq.heappush(self._heap, _Due(cid, change.apply, body, "here"))
        data = self._send("change", body)
        if data is not None:
            # resends are new messages (new sequence numbers) with the same change id
            again = [(cid[0] - self.lead_frames + i, self.signer.seal(
                "change", body, self._wall())) for i in range(1, RESENDS + 1)]
            with self._lock:
                self._resend.extend(again)
        at_s = (cid[0] - clock.frame) / self.fps
        alone = "" if self.sock is not None else "; NOT sent: this member has not joined " \
                                                  "the group (see its log)"
        return {**change.result,
                "group_at": f"{self.cfg.group}: frame {cid[0]} (in {at_s:.2f} s){alone}"}

    # -- status -----------------------------------------------------------------------------
    def group_text(self) -> str:
        live = self._live_members()
        same = sum(1 for m in live if m.fingerprint == self.fingerprint)
        in_step = sum(1 for m in live if m.fingerprint == self.fingerprint and
                      m.version == self.version and m.digest == self._last_digest)
        text = f"{self.cfg.group} ({self.cfg.address}:{self.cfg.port}), {len(live) + 1} " \
               f"member{'s' if live else ''} heard"
        if live:
            text += f", {in_step} of {len(live)} in step with this one"
        if same < len(live):
            text += f", {len(live) - same} with a different config"
        if self.sock is None:
            text += ", NOT joined (see the log)"
        refused = {k: v for k, v in self.guard.refused.items() if k not in ("own", "group")}
        if refused:
            text += ", refused: " + ", ".join(f"{v} {k}" for k, v in sorted(refused.items()))
        return text

    def _live_members(self) -> list[Member]:
        cutoff = time.monotonic() - GONE_S * self.cfg.announce_s
        with self._lock:
            return [m for m in self.members.values() if m.heard_s >= cutoff]

    def members_text(self) -> list[str]:
        now = time.monotonic()
        out = []
        with self._lock:
            members = sorted(self.members.values(), key=lambda m: (m.name, m.pid))
        for m in members:
            ago = now - m.heard_s
            parts = [f"{_who(m)} {m.addr}", f"frame {m.frame}", f"heard {ago:.1f} s ago"]
            if m.offset_s is not None:
                parts.append(f"clock {m.offset_s * 1000:+.2f} ms (rtt "
                             f"{(m.rtt_s or 0) * 1000:.2f} ms)")
            if m.fingerprint and m.fingerprint != self.fingerprint:
                parts.append("DIFFERENT CONFIG")
            elif m.version != self.version or (m.digest and m.digest != self._last_digest):
                parts.append("state differs")
            if ago > GONE_S * self.cfg.announce_s:
                parts.append("GONE")
            out.append(", ".join(parts))
        return out

    def clock_text(self) -> str:
        c = self.clock
        parts = [self.clock_state.text() if self.clock_state is not None else "unknown"]
        offsets = [m.offset_s for m in self._live_members() if m.offset_s is not None]
        if offsets:
            worst = max(offsets, key=abs)
            parts.append(f"largest offset to a member {worst * 1000:+.2f} ms")
        if c is not None and c.steps:
            parts.append(f"{c.steps} step(s), last {c.last_step}")
        if c is not None and c.slewing_s:
            parts.append(f"slewing, {c.slewing_s * 1000:+.1f} ms to go")
        if self.caught_up:
            parts.append(f"{self.caught_up} skipped frame(s) walked unseen after stalls")
        return "; ".join(parts)


def _who(m: Member) -> str:
    return f"{m.name or '?'} (pid {m.pid})" if m.pid else (m.name or m.src[:8])


def _cid_text(cid: Cid) -> str:
    return f"{cid[1][:6]}#{cid[2]}@{cid[0]}"
