"""Keep the daemon's resident memory small (issue 18: at most 40 MB for the demo rig).

* `without_openssl()`: NumPy's random generators import `secrets`, which imports `hmac`,
  which loads OpenSSL's libcrypto (3.4 MB resident) for nothing but `compare_digest`. The
  daemon binds `hashlib` and `hmac` to Python's own built-in digests instead (sha256 and
  `compare_digest` are all it uses; both give the same results). Call it before NumPy's
  random module is imported; later imports of `_hashlib` (e.g. `ssl`) still work.
* `trim_heap()`: after start-up (config, model, the walk's first look ahead) glibc keeps the
  freed heap; `malloc_trim` gives it back. A no-op where there is no glibc.
* `settle_after_start(show)`: a show's listener that, 2 s into the show, trims the heap and
  freezes start-up's objects out of the cyclic GC's sight (its collections then look at what
  the show made since, not at every object the libraries made: ~7 % of the CPU otherwise).
  The daemon and the benchmarks that stand for it use the same one.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

SETTLE_S = 2.0                  # a show's first seconds: start-up's allocations are done


def without_openssl() -> None:
    if "hmac" in sys.modules or "hashlib" in sys.modules:
        return                                # too late, or done: leave them as they are
    saved = sys.modules.get("_hashlib")
    sys.modules["_hashlib"] = None            # type: ignore[assignment]  # ImportError
    try:
        import hashlib  # noqa: F401 - bound to the built-in digests
        import hmac  # noqa: F401
    finally:
        if saved is None:
            del sys.modules["_hashlib"]
        else:
            sys.modules["_hashlib"] = saved


def trim_heap() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def settle_after_start(show: Any) -> None:
    """Add to `show.listeners`: once, after `SETTLE_S` of frames, trim the heap and freeze
    the objects made so far out of the cyclic GC's sight."""
    def settled(s: Any) -> None:
        if s.frames_out >= SETTLE_S * s.fps:
            trim_heap()
            gc.freeze()
            s.listeners.remove(settled)
    show.listeners.append(settled)
