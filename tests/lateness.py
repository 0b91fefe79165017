"""What the machine alone does to a frame loop: a canary process that sleeps to the same frame
grid as a show and counts the frames it woke more than a period late (as `FrameClock` counts
them). A test of "this work never delays the frame loop" allows the show the canary's late
frames on top of its own small margin: on a quiet machine the canary counts 0 and the limit
is the strict one; with a CPU hog or a loaded CI machine beside it, the machine's own
lateness is not blamed on the code under test.

    with MachineLateness(fps=40) as machine:
        ... run the show ...
    assert show_late <= 2 + machine.allowance()
"""

from __future__ import annotations

import subprocess
import sys

_CANARY = r"""
import signal, sys, time
fps = float(sys.argv[1]); p = 1.0 / fps
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
print("ready", flush=True)
t0 = time.monotonic(); k = 0; late = 0
while not stop:
    k += 1
    d = t0 + k * p - time.monotonic()
    if d > 0:
        time.sleep(d)
    behind = time.monotonic() - (t0 + k * p)
    if behind > p:
        skip = int(behind * fps)
        late += skip
        k += skip
print(late, flush=True)
"""


class MachineLateness:
    """Counts, in a separate process, the frames a do-nothing frame loop at `fps` is late
    while the `with` block runs."""

    def __init__(self, fps: float) -> None:
        self.fps = float(fps)
        self.late = 0
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> MachineLateness:
        self._proc = subprocess.Popen([sys.executable, "-c", _CANARY, str(self.fps)],
                                      stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        assert self._proc.stdout.readline().strip() == "ready"
        return self

    def __exit__(self, *exc) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        self.late = int(out.split()[-1]) if out.split() else 0

    def allowance(self) -> int:
        """Late frames the show may have beyond its own margin: twice the canary's (a show
        does real work each frame, so a stall hits it more often than a sleeping loop)."""
        return 2 * self.late
