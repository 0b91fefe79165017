"""The test olad runs beside any other olad (a Pi's system olad, another test's)."""

from __future__ import annotations

import numpy as np
import pytest
from olad_fixture import Olad, olad_missing_reason

pytestmark = pytest.mark.olad


@pytest.mark.slow
def test_two_test_olads_run_side_by_side():
    """What a Pi set up with --with-ola has: one olad running already. A second (the test's
    own) must start on its own ports and answer, and so must a third."""
    if reason := olad_missing_reason():
        pytest.skip(reason)
    daemons = [Olad(), Olad(), Olad()]
    try:
        for d in daemons:
            d.start()
        assert all(d.alive for d in daemons)
        assert len({d.rpc_port for d in daemons}) == 3
        for d in daemons:
            assert np.array_equal(d.get_dmx(), np.zeros(512, np.uint8))
    finally:
        for d in daemons:
            d.cleanup()


def test_a_failed_start_says_why():
    if reason := olad_missing_reason():
        pytest.skip(reason)
    first = Olad().start()
    clash = Olad()
    clash.rpc_port = first.rpc_port                  # a port already taken
    try:
        with pytest.raises(RuntimeError, match=rf"RPC port {first.rpc_port}.*exited"):
            clash.start(timeout_s=10)
    finally:
        first.cleanup()
        clash.cleanup()
