"""Claims on output targets: at most one LatentDMX program drives a set of lights at a time.

A target is one of `Output.targets()`'s stable names (``ola:127.0.0.1:9010/u1``,
``uart:/dev/ttyAMA0``, a network universe later). A show, `identify` and `darken` claim every
target they are about to drive, before they send anything, and hold the claim until they are
done. A second program asking for a claimed target is refused with one line naming the
holder (its pid, how it was started, its command line).

**How.** A claim is a listening Unix socket in Linux's *abstract* namespace, named
``\\0latentdmx/claim/<target>``:

- no file anywhere: nothing goes stale, nothing is written to the SD card, nothing depends
  on ``$XDG_RUNTIME_DIR``, ``$RUNTIME_DIRECTORY``, ``[control] socket``, the config path or
  the user: two programs that name one target meet at one name;
- the kernel drops it when the process ends, however it ends (SIGKILL, OOM, watchdog);
- binding is atomic: of two programs starting at once, exactly one wins;
- whoever connects learns the holder's pid, uid and gid from the kernel (``SO_PEERCRED``),
  so a holder cannot hide, and the holder knows who asks (``SO_PEERCRED`` and
  ``SO_PEERGROUPS``: requests that change the show are taken only from the holder's own user,
  root, or a member of its group, the same people the 0660 control socket admits).

Any account can bind any abstract name, so a claim's own word (its role, its systemd unit)
is believed only from the same user, root or the service user (`accounts.trusted_uids`);
anyone else's claim is described by the kernel alone ("another program, pid N, started by
hand by nobody: its command line"). It still keeps a show off those lights (whoever it is
may drive them), but `darken` under the service darkens them whatever a claim says.

The abstract namespace belongs to the network namespace, as ``127.0.0.1:9010`` does: two
programs that see the same olad on loopback see the same claims. (Rejected: a lock file —
it needs a directory every user and the sandboxed service can write, and a path that means
the same to all of them; a lock on the device — there is none for an OLA universe or a
network universe; a TCP port — it collides with other programs.)

**Talking to the holder.** The socket also answers JSON lines, one request per connection:
``{"cmd": "who"}`` from anyone (who holds it: what ``ps`` would say), and any other command
from an authorised peer, passed to the holder's handler (a show takes ``identify``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import selectors
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .accounts import trusted_uids
from .errors import ControlError, LatentDMXError

log = logging.getLogger(__name__)

PREFIX = "latentdmx/claim/"
_NAME_MAX = 107                    # sun_path is 108 bytes, the first is the NUL
_LINE_MAX = 4096
_CONN_TIMEOUT_S = 2.0
_MAX_CONNS = 8
_SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)      # Linux >= 4.13
Handler = Callable[[str, dict[str, Any]], dict[str, Any]]


class ClaimError(LatentDMXError, RuntimeError):
    """A target is held by another program."""

    def __init__(self, target: str, holder: Holder, *, fix: str | None = None) -> None:
        super().__init__(f"already driven by {holder.describe()}", file=target,
                         field="output", fix=fix or holder.fix())
        self.target = target
        self.holder = holder


def address(target: str) -> bytes:
    """The abstract socket name of a target (hashed if the target is too long)."""
    name = (PREFIX + target).encode()
    if len(name) > _NAME_MAX:
        name = (PREFIX + "#" + hashlib.sha256(target.encode()).hexdigest()).encode()
    return b"\0" + name


# -- who holds a target ---------------------------------------------------------------------
@dataclass(frozen=True)
class Holder:
    """The program holding a claim, as the kernel (pid, uid) and the holder describe it."""

    pid: int
    uid: int
    role: str = "?"                  # show | identify | darken
    argv: tuple[str, ...] = ()
    unit: str = ""                   # the systemd unit it runs in, if any
    user: str = ""

    def describe(self) -> str:
        what = {"show": "a LatentDMX show", "identify": "`latentdmx identify`",
                "darken": "`latentdmx darken`"}.get(self.role, "another program")
        how = f"the systemd service {self.unit}" if self.unit else \
            f"started by hand by {self.user or f'uid {self.uid}'}"
        cmd = command_line(self.argv)
        return f"{what}, pid {self.pid} ({how}{': ' + cmd if cmd else ''})"

    def fix(self) -> str:
        if self.unit:
            return (f"stop it first (sudo systemctl stop {self.unit}), or send this one to "
                    "other lights (another universe or output)")
        return (f"stop it first (Ctrl-C in its terminal, or kill {self.pid}), or send this "
                "one to other lights (another universe or output)")


def command_line(argv: Iterable[str]) -> str:
    args = list(argv)
    if not args:
        return ""
    # `python -m pi_app.cli run ...` and `.../bin/latentdmx run ...` both read `latentdmx run`
    if len(args) > 2 and args[1] == "-m" and args[2] in ("pi_app.cli", "pi_app"):
        args = ["latentdmx", *args[3:]]
    elif os.path.basename(args[0]) == "latentdmx":
        args = ["latentdmx", *args[1:]]
    text = " ".join(args)
    return text if len(text) <= 160 else text[:157] + "..."


def _peer(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the other end, from the kernel."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def _peer_groups(sock: socket.socket) -> set[int]:
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, 4 * 256)
    except OSError:
        return set()
    return set(struct.unpack(f"{len(raw) // 4}I", raw[:len(raw) // 4 * 4]))


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _proc_argv(pid: int) -> tuple[str, ...]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ()
    return tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)


def own_unit() -> str:
    """The systemd unit this process runs in ("" when started by hand)."""
    if not os.environ.get("INVOCATION_ID"):
        return ""
    try:
        cgroup = Path("/proc/self/cgroup").read_text()
    except OSError:
        return ""
    for line in cgroup.splitlines():
        for part in reversed(line.rsplit(":", 1)[-1].split("/")):
            if part.endswith(".service"):
                return part
    return ""


def _connect(target: str, timeout_s: float) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout_s)
    try:
        sock.connect(address(target))
    except (ConnectionRefusedError, FileNotFoundError):
        sock.close()
        return None
    except OSError:
        sock.close()
        raise
    return sock


def _exchange(sock: socket.socket, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
    sock.sendall((json.dumps({"cmd": cmd, "args": args}) + "\n").encode())
    buf = bytearray()
    while b"\n" not in buf and len(buf) <= _LINE_MAX * 16:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    try:
        reply = json.loads(buf.split(b"\n", 1)[0].decode("utf-8", "replace"))
    except json.JSONDecodeError:
        reply = None
    return reply if isinstance(reply, dict) else {"ok": False, "error": "no answer"}


def holder(target: str, timeout_s: float = 2.0) -> Holder | None:
    """Who holds `target`, or None if nobody does."""
    try:
        sock = _connect(target, timeout_s)
    except OSError:
        return None
    if sock is None:
        return None
    with sock:
        pid, uid, _ = _peer(sock)
        try:
            reply = _exchange(sock, "who", {})
        except OSError:
            reply = {}
    info = reply.get("result") if reply.get("ok") else None
    if not isinstance(info, dict) or info.get("pid") != pid or uid not in trusted_uids():
        # not a LatentDMX claim, one that lies about itself, or another account's (which
        # could say anything): the kernel's word only
        return Holder(pid, uid, "?", _proc_argv(pid), "", _user_name(uid))
    argv = info.get("argv")
    return Holder(pid, uid, str(info.get("role", "?")),
                  tuple(str(a) for a in argv) if isinstance(argv, list) else _proc_argv(pid),
                  str(info.get("unit") or ""), _user_name(uid))


def request(target: str, cmd: str, args: dict[str, Any], timeout_s: float = 5.0
            ) -> dict[str, Any]:
    """Send one request to the holder of `target`; its result, or a `ControlError`."""
    try:
        sock = _connect(target, timeout_s)
    except OSError as exc:
        raise ControlError(f"cannot reach the program driving it ({exc.strerror or exc})",
                           file=target, field=cmd) from None
    if sock is None:
        raise ControlError("no program drives it any more", file=target, field=cmd,
                           fix="run the command again")
    with sock:
        _, uid, _ = _peer(sock)
        if uid not in trusted_uids():           # its answer could say anything
            raise ControlError(f"held by {_user_name(uid)}, not by a show of yours or the "
                               "service's", file=target, field=cmd,
                               fix="find it with `latentdmx doctor` and stop it")
        try:
            reply = _exchange(sock, cmd, args)
        except TimeoutError:
            raise ControlError(f"the show did not answer within {timeout_s:g} s", file=target,
                               field=cmd, fix="check its log (journalctl -u latentdmx)") from None
        except OSError as exc:
            raise ControlError(f"connection failed ({exc.strerror or exc})", file=target,
                               field=cmd) from None
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error") or "refused"), file=target, field=cmd,
                           fix=reply.get("fix") or None)
    result = reply.get("result")
    return result if isinstance(result, dict) else {}


# -- holding claims -------------------------------------------------------------------------
class Claim:
    """Claims held on a set of targets; `close()` (or process exit) releases them.

    ``Claim(targets, role)`` binds every target's name or raises `ClaimError` naming the
    holder of the first one taken (and holds none). With a `handler`, requests other than
    ``who`` from authorised peers are passed to it, on the claim's own thread."""

    def __init__(self, targets: Iterable[str], role: str, *,
                 handler: Handler | None = None) -> None:
        self.targets = tuple(sorted(set(targets)))
        self.role = role
        self.handler = handler
        self._socks: list[socket.socket] = []
        self._info = {"pid": os.getpid(), "role": role, "argv": list(sys.argv),
                      "unit": own_unit(), "targets": list(self.targets)}
        self._argv0_fix()
        self._thread: threading.Thread | None = None
        self._stop_r, self._stop_w = -1, -1
        try:
            for target in self.targets:
                self._socks.append(self._bind(target))
        except BaseException:
            self._release()
            raise
        if self._socks:
            self._stop_r, self._stop_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._thread = threading.Thread(target=self._serve, name="latentdmx-claims",
                                            daemon=True)
            self._thread.start()

    def _argv0_fix(self) -> None:
        # sys.argv[0] of `python -m pi_app.cli` is the module's path: use the real command line
        real = _proc_argv(os.getpid())
        if real:
            self._info["argv"] = list(real)

    def _bind(self, target: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(address(target))
        except OSError as exc:
            sock.close()
            if exc.errno != 98:                                  # EADDRINUSE
                raise
            who = holder(target)
            if who is None:                                      # gone meanwhile: once more
                return self._bind_again(target)
            raise ClaimError(target, who) from None
        sock.listen(8)
        sock.setblocking(False)
        return sock

    def _bind_again(self, target: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(address(target))
        except OSError:
            sock.close()
            raise ClaimError(target, Holder(0, -1, "?", (), "", "another program"),
                             fix="try again in a moment") from None
        sock.listen(8)
        sock.setblocking(False)
        return sock

    def close(self) -> None:
        """Release every claim. Idempotent."""
        if self._thread is not None:
            try:
                os.write(self._stop_w, b"x")
            except OSError:
                pass
            if self._thread is not threading.current_thread():
                self._thread.join(2.0)
            self._thread = None
            os.close(self._stop_r)
            os.close(self._stop_w)
        self._release()

    def _release(self) -> None:
        for sock in self._socks:
            sock.close()
        self._socks = []

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving requests ---------------------------------------------------------------
    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        for sock in self._socks:
            sel.register(sock, selectors.EVENT_READ, "listen")
        sel.register(self._stop_r, selectors.EVENT_READ, "stop")
        conns: dict[socket.socket, tuple[bytearray, float]] = {}
        try:
            while True:
                for key, _ in sel.select(0.5):
                    if key.data == "stop":
                        return
                    if key.data == "listen":
                        self._accept(key.fileobj, sel, conns)     # type: ignore[arg-type]
                    else:
                        self._read(key.fileobj, sel, conns)       # type: ignore[arg-type]
                now = time.monotonic()
                for c in [c for c, (_, t) in conns.items() if t < now]:
                    self._drop(c, sel, conns)
        except Exception:                       # never let a client kill the claim thread
            log.exception("claim server failed")
        finally:
            for c in list(conns):
                self._drop(c, sel, conns)
            sel.close()

    def _accept(self, listener: socket.socket, sel, conns) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        if len(conns) >= _MAX_CONNS:
            conn.close()
            return
        conn.setblocking(False)
        conns[conn] = (bytearray(), time.monotonic() + _CONN_TIMEOUT_S)
        sel.register(conn, selectors.EVENT_READ, "conn")

    def _read(self, conn: socket.socket, sel, conns) -> None:
        buf, _ = conns[conn]
        try:
            data = conn.recv(_LINE_MAX)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        buf += data
        if not data or b"\n" in buf or len(buf) > _LINE_MAX:
            reply = self._answer(conn, bytes(buf).split(b"\n", 1)[0]) if b"\n" in buf else \
                {"ok": False, "error": "one JSON line per request"}
            try:
                conn.setblocking(True)
                conn.settimeout(0.5)
                conn.sendall((json.dumps(reply, allow_nan=False) + "\n").encode())
            except (OSError, ValueError, TypeError):
                pass
            self._drop(conn, sel, conns)

    @staticmethod
    def _drop(conn: socket.socket, sel, conns) -> None:
        conns.pop(conn, None)
        try:
            sel.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()

    def _answer(self, conn: socket.socket, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {"ok": False, "error": "not a JSON request"}
        if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
            return {"ok": False, "error": 'the request needs a "cmd" string'}
        cmd, args = req["cmd"], req.get("args") or {}
        if not isinstance(args, dict):
            return {"ok": False, "error": '"args" must be an object'}
        if cmd == "who":
            return {"ok": True, "result": self._info}
        if self.handler is None:
            return {"ok": False, "error": f"{self.role} takes no requests",
                    "fix": "wait until it is done"}
        if not self._authorised(conn):
            return {"ok": False, "error": "permission denied",
                    "fix": "run it as the show's user or a member of its group "
                           "(sudo usermod -aG latentdmx $USER, then log in again)"}
        try:
            return {"ok": True, "result": self.handler(cmd, args)}
        except LatentDMXError as exc:
            return {"ok": False, "error": exc.what, "fix": exc.fix}
        except (ValueError, TypeError, KeyError) as exc:
            return {"ok": False, "error": str(exc) or type(exc).__name__}

    @staticmethod
    def _authorised(conn: socket.socket) -> bool:
        _, uid, gid = _peer(conn)
        if uid in (0, os.geteuid()):
            return True
        mine = os.getegid()
        return gid == mine or mine in _peer_groups(conn)
