"""Where LatentDMX keeps what users make: one place for every folder the program reads or
writes outside its own package.

Two families:

* **user** folders (XDG): imported fixtures in ``$XDG_CONFIG_HOME/latentdmx/fixtures``
  (``~/.config/...``), user models in ``$XDG_DATA_HOME/latentdmx/models``
  (``~/.local/share/...``). A hand-started daemon, `train` and `fixtures import` use them.
* the **system** folder, ``/var/lib/latentdmx`` (``$LATENTDMX_SYSTEM_DIR`` overrides it, e.g.
  in tests): ``fixtures/``, ``models/`` — what the systemd service (user ``latentdmx``, no
  home, ``ProtectHome=yes``) can see — and ``state/``, the one place the service may write
  (presets and the like; ``StateDirectory=latentdmx`` in the unit).

A lookup reads the user folder first (when there is a usable home), then the system folder;
the error for something not found names every folder it looked in (`where_looked`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

SYSTEM_DIR_DEFAULT = "/var/lib/latentdmx"


def system_dir() -> Path:
    """The system-wide folder (``$LATENTDMX_SYSTEM_DIR``, default ``/var/lib/latentdmx``)."""
    return Path(os.environ.get("LATENTDMX_SYSTEM_DIR") or SYSTEM_DIR_DEFAULT)


def _home() -> Path | None:
    """The user's home if it is a real folder (the service's ``/nonexistent`` is not)."""
    try:
        home = Path.home()
    except (KeyError, RuntimeError):
        return None
    return home if home.is_dir() else None


def user_config_dir() -> Path | None:
    """``$XDG_CONFIG_HOME/latentdmx`` (default ``~/.config/latentdmx``); None without a home."""
    base = os.environ.get("XDG_CONFIG_HOME")
    if base:
        return Path(base) / "latentdmx"
    home = _home()
    return None if home is None else home / ".config" / "latentdmx"


def user_data_dir() -> Path | None:
    """``$XDG_DATA_HOME/latentdmx`` (default ``~/.local/share/latentdmx``); None without a home."""
    base = os.environ.get("XDG_DATA_HOME")
    if base:
        return Path(base) / "latentdmx"
    home = _home()
    return None if home is None else home / ".local" / "share" / "latentdmx"


def fixtures_dirs() -> list[Path]:
    """Folders of imported fixture profiles, in lookup order (user, then system)."""
    user = user_config_dir()
    return [p for p in (user / "fixtures" if user else None, system_dir() / "fixtures") if p]


def models_dirs() -> list[Path]:
    """Folders of user models, in lookup order (user, then system)."""
    user = user_data_dir()
    return [p for p in (user / "models" if user else None, system_dir() / "models") if p]


def state_dir() -> Path:
    """Where the running daemon may write state that must survive a restart (presets...):
    systemd's ``$STATE_DIRECTORY`` under the service, else the user's data folder, else the
    system folder's ``state/``."""
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    user = user_data_dir()
    return user / "state" if user else system_dir() / "state"


def where_looked(dirs: list[Path]) -> str:
    """``looked in A, B`` for error messages."""
    return "looked in " + ", ".join(str(d) for d in dirs)


# -- atomic files: what a power cut leaves is the old file or the new one, whole -----------
def atomic_write(path: Path, chunks: Iterable[bytes], mode: int = 0o640) -> None:
    """Write `chunks` to `path` so that a crash at any moment leaves the old file or the new
    one, whole: temp file in the same folder -> fsync -> rename -> fsync the folder."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
