"""`Show.run`'s set-up: one ExitStack closes everything the show opened, in reverse order,
whatever fails on the way (a close that raises does not skip the ones after it)."""

from __future__ import annotations

import signal
import sys

import pytest

from pi_app.clock import FastClock
from pi_app.config import load_config
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import Show


class _FailingClose(SimOutput):
    def _close(self) -> None:
        raise OSError("the device went away")


def _show(output_cls: type[SimOutput]) -> Show:
    cfg = load_config(None)
    patch = Patch(cfg)
    return Show(cfg, output_cls(patch.universes, blackout=patch.blackout_frames),
                duration_s=0.5, control=False, clock=FastClock)


def test_a_failing_close_still_restores_signals_and_the_switch_interval():
    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP),
              sys.getswitchinterval())
    show = _show(_FailingClose)
    with pytest.raises(OSError, match="went away"):
        show.run()
    assert show.frames_out > 0                      # it played, then failed closing
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP),
            sys.getswitchinterval()) == before
    assert show.director._pool._shutdown            # the show's own parts closed too


def test_a_clean_run_closes_everything_and_returns_0():
    before = (signal.getsignal(signal.SIGTERM), sys.getswitchinterval())
    show = _show(SimOutput)
    assert show.run() == 0
    assert show.output.closed and show.director._pool._shutdown
    assert (signal.getsignal(signal.SIGTERM), sys.getswitchinterval()) == before
