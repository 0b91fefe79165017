"""Secrets: the lockstep group key, the web page's token, and the files that hold them.

One small module so every surface applies the same rules:

* **A group key** (``[sync] key`` or ``key_file``) carries at least `MIN_KEY_BITS` random
  bits. Nobody can measure randomness from one string, so the estimate is a cautious upper
  bound (`estimated_bits`): the length times the bits of the character classes used, capped
  by how many different characters appear and by how far zlib can squeeze the text. A random
  key passes (``python3 -c 'import secrets; print(secrets.token_urlsafe(32))'``); the README's
  placeholder, a phrase left from an example, 16 spaces or ``aaaaaaaaaaaaaaaa`` do not.
* **A web token** (``[preview] token`` or ``token_file``) has at least `MIN_TOKEN_CHARS`
  characters and is not a run of one character. Without one the daemon makes its own on
  first start (`web_token`): `secrets.token_urlsafe` of 32 bytes, kept mode 0600 in the
  state folder as ``web-token``; ``latentdmx web-token`` prints it.
* **Secret files** are read whole (first line, at most 4 KiB); a file holding a secret, or a
  config holding one inline, that other users may read is one warning line.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import stat
import threading
import time
import zlib
from pathlib import Path

from .errors import ConfigError
from .paths import fsync_dir

log = logging.getLogger("latentdmx")

MIN_KEY_BITS = 128
MIN_TOKEN_CHARS = 16
MAX_SECRET_BYTES = 4096
TOKEN_FILE = "web-token"
BACKOFF_FIRST_S = 0.25         # after a wrong token, that source waits this long ...
BACKOFF_MAX_S = 30.0           # ... doubling with each further wrong one, up to this
BACKOFF_SOURCES = 1024         # sources remembered (the quietest forgotten first)
PLACEHOLDERS = ("long random string", "change me", "changeme", "change-me", "placeholder",
                "your key", "your-key", "example", "password", "secret")
KEY_FIX = ("use at least 128 random bits, the same on every member, e.g. the output of "
           "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'` (or key_file = "
           "a file holding it)")
TOKEN_FIX = ("use a random string of 16 or more characters, e.g. the output of `python3 -c "
             "'import secrets; print(secrets.token_urlsafe(24))'`, or leave token empty and "
             "use the daemon's own (`latentdmx web-token`)")


def estimated_bits(text: str) -> float:
    """A generous upper bound on the random bits in `text` (module doc)."""
    if not text:
        return 0.0
    alphabet = 0
    for present, size in ((any(c.islower() and c.isascii() for c in text), 26),
                          (any(c.isupper() and c.isascii() for c in text), 26),
                          (any(c.isdigit() and c.isascii() for c in text), 10),
                          (any(not c.isalnum() and c.isascii() for c in text), 33),
                          (any(not c.isascii() for c in text), 256)):
        alphabet += size if present else 0
    distinct = len(set(text))
    per_char = math.log2(max(1.0, min(alphabet, distinct ** 2)))
    by_classes = len(text) * per_char
    raw = text.encode()
    by_zlib = 8.0 * max(0, len(zlib.compress(raw, 9)) - 6) * len(text) / max(1, len(raw))
    return min(by_classes, by_zlib)


def check_key(key: str, *, file: str | os.PathLike[str], field: str) -> None:
    """Refuse a group key with fewer than `MIN_KEY_BITS` estimated random bits."""
    lowered = key.lower()
    for phrase in PLACEHOLDERS:
        if phrase in lowered:
            raise ConfigError(f"the key contains {phrase!r}: a placeholder, not a secret",
                              file=file, field=field, fix=KEY_FIX)
    bits = estimated_bits(key)
    if bits < MIN_KEY_BITS:
        raise ConfigError(f"the key is too weak (about {bits:.0f} random bits at most; at "
                          f"least {MIN_KEY_BITS})", file=file, field=field, fix=KEY_FIX)


def check_token(token: str, *, file: str | os.PathLike[str], field: str) -> None:
    """Refuse a web token shorter than `MIN_TOKEN_CHARS` or made of one repeated character."""
    if len(token) < MIN_TOKEN_CHARS or len(set(token)) < 4 or any(
            ord(c) < 33 or ord(c) > 126 for c in token):
        raise ConfigError(f"the token is too weak ({len(token)} characters, "
                          f"{len(set(token))} different; want {MIN_TOKEN_CHARS} or more "
                          "printable characters without spaces)",
                          file=file, field=field, fix=TOKEN_FIX)


def readable_by_others(path: str | os.PathLike[str]) -> bool:
    try:
        return bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return False


def warn_if_exposed(path: str | os.PathLike[str], what: str) -> None:
    """One warning line when a file holding `what` may be read by every user."""
    if readable_by_others(path):
        log.warning("%s: holds %s and every user may read it: chmod o-r %s", path, what, path)


def read_secret(path: str | os.PathLike[str], *, file: str | os.PathLike[str], field: str,
                base: str | os.PathLike[str] | None = None) -> str:
    """The secret in file `path` (its first line; relative paths from `base`)."""
    p = Path(path).expanduser()
    if not p.is_absolute() and base is not None:
        p = Path(base) / p
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigError(f"{p} is not a regular file", file=file, field=field,
                                  fix="give the path of a file holding the secret")
            data = os.read(fd, MAX_SECRET_BYTES + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(f"cannot read {p} ({exc.strerror or exc})", file=file, field=field,
                          fix="check the path and its permissions (the daemon's user reads "
                              "it)") from None
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigError(f"{p} is larger than {MAX_SECRET_BYTES} bytes", file=file,
                          field=field, fix="put the secret alone on the file's first line")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ConfigError(f"{p} is not UTF-8 text", file=file, field=field,
                          fix="put the secret alone on the file's first line") from None
    text = lines[0].strip() if lines else ""
    if not text:
        raise ConfigError(f"{p} is empty", file=file, field=field,
                          fix="put the secret alone on the file's first line")
    warn_if_exposed(p, f"the secret for {field}")
    return text


def web_token(state: Path) -> str:
    """The daemon's own web token in ``state/web-token``: made on first use (mode 0600)."""
    path = state / TOKEN_FILE
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the web token ({exc})", file=path,
                          field="preview.token", fix="remove the file: a new one is made"
                          ) from None
    if not existing and path.exists():
        # empty or blank: a power cut between making the file and its bytes reaching the
        # card (tokens are fsync'ed before they appear now); never a token being written
        log.warning("web page: %s is empty; making a new token", path)
        path.unlink(missing_ok=True)
    if existing:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
        return existing
    token = secrets.token_urlsafe(32)
    try:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(token + "\n")
            fh.flush()
            os.fsync(fh.fileno())               # on the card before it has its name
        try:
            os.link(tmp, path)                  # never replace one made meanwhile
            fsync_dir(state)
        except FileExistsError:
            return web_token(state)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot keep a web token in {state} ({exc.strerror or exc})",
                          file=path, field="preview.token",
                          fix="set [preview] token_file, or make the state folder writable"
                          ) from None
    log.info("web page: made a new token in %s (`latentdmx web-token` prints it)", path)
    return token


def resolve_files(cfg, path: str):
    """`cfg` with ``[sync] key_file``, ``[preview] token_file`` and ``[mqtt] password_file``
    read into ``key``, ``token`` and ``password`` (relative paths from the config's folder);
    a world-readable config holding a secret inline is one warning line."""
    import dataclasses

    base = Path(path).parent if os.path.isfile(path) else None
    sync, preview = cfg.sync, cfg.preview
    if sync.key_file:
        if sync.key:
            raise ConfigError("both key and key_file are set", file=path, field="sync.key_file",
                              fix="keep one of them (key_file keeps the key out of the config)")
        sync = dataclasses.replace(sync, key=read_secret(sync.key_file, file=path,
                                                         field="sync.key_file", base=base))
    elif sync.key and base is not None:
        warn_if_exposed(path, "the group key ([sync] key)")
    if preview.token_file:
        if preview.token:
            raise ConfigError("both token and token_file are set", file=path,
                              field="preview.token_file", fix="keep one of them")
        preview = dataclasses.replace(preview, token=read_secret(
            preview.token_file, file=path, field="preview.token_file", base=base))
    elif preview.token and base is not None:
        warn_if_exposed(path, "the web token ([preview] token)")
    mqtt = getattr(cfg, "mqtt", None)
    if mqtt is not None and mqtt.password_file:
        if mqtt.password:
            raise ConfigError("both password and password_file are set", file=path,
                              field="mqtt.password_file", fix="keep one of them "
                              "(password_file keeps the password out of the config)")
        mqtt = dataclasses.replace(mqtt, password=read_secret(
            mqtt.password_file, file=path, field="mqtt.password_file", base=base))
    elif mqtt is not None and mqtt.password and base is not None:
        warn_if_exposed(path, "the MQTT password ([mqtt] password)")
    if sync is cfg.sync and preview is cfg.preview and mqtt is getattr(cfg, "mqtt", None):
        return cfg
    extra = {"mqtt": mqtt} if mqtt is not None else {}
    return dataclasses.replace(cfg, sync=sync, preview=preview, **extra)


class Backoff:
    """Wrong tokens per source: after the n-th wrong one in a row, that source is answered
    429 without a look at its token for `BACKOFF_FIRST_S` * 2**(n-1) seconds (at most
    `BACKOFF_MAX_S`); a right token clears it. Thread-safe."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._fails: dict[str, tuple[int, float]] = {}     # source -> (wrong in a row, until)

    def wait_s(self, source: str) -> float:
        """How long `source` must still wait (0: its token may be checked now)."""
        with self._lock:
            _, until = self._fails.get(source, (0, 0.0))
        return max(0.0, until - self._clock())

    def failed(self, source: str) -> float:
        with self._lock:
            n = self._fails.get(source, (0, 0.0))[0] + 1
            wait = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** min(n - 1, 32))
            self._fails[source] = (n, self._clock() + wait)
            if len(self._fails) > BACKOFF_SOURCES:
                del self._fails[min(self._fails, key=lambda k: self._fails[k][1])]
            return wait

    def passed(self, source: str) -> None:
        with self._lock:
            self._fails.pop(source, None)
