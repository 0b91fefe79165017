"""OLA's RPC messages as the OLA output writes and reads them (pi_app/outputs/ola_wire.py),
byte for byte against OLA's own generated protobuf classes (Debian's ola-python)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pi_app.outputs.ola import import_ola
from pi_app.outputs.ola_wire import HEADER, SLOTS, Wire, parse_rpc


@pytest.fixture(scope="module")
def pb():
    try:
        import_ola()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"OLA's Python client is not here: {exc}")
    import ola.Ola_pb2 as ola_pb2
    import ola.rpc.Rpc_pb2 as rpc_pb2
    return ola_pb2, rpc_pb2


def _theirs(pb, kind: int, req_id: int, method: str, payload: bytes) -> bytes:
    _, rpc = pb
    msg = rpc.RpcMessage()
    msg.type, msg.id, msg.name, msg.buffer = kind, req_id, method, payload
    data = msg.SerializeToString()
    return struct.pack("=L", (1 << 28) | len(data)) + data


@given(universe=st.integers(0, 2**31 - 1), req_id=st.integers(0, 2**32 - 1),
       frame=st.binary(min_size=0, max_size=SLOTS))
def test_update_dmx_is_what_olas_classes_write(pb, universe, req_id, frame):
    ola, _ = pb
    dmx = ola.DmxData()
    dmx.universe, dmx.data = universe, frame
    assert Wire().update_dmx(req_id, universe, frame) == _theirs(
        pb, 1, req_id, "UpdateDmxData", dmx.SerializeToString())


@given(universe=st.integers(0, 2**31 - 1), frame=st.binary(min_size=SLOTS, max_size=SLOTS))
def test_stream_dmx_data_and_get_plugins_too(pb, universe, frame):
    ola, _ = pb
    dmx = ola.DmxData()
    dmx.universe, dmx.data = universe, frame
    w = Wire()
    assert w.stream_template(universe).frame(frame) == _theirs(
        pb, 10, 0, "StreamDmxData", dmx.SerializeToString())
    assert w.get_plugins(7) == _theirs(pb, 1, 7, "GetPlugins",
                                       ola.PluginListRequest().SerializeToString())


@given(kind=st.sampled_from([2, 3, 4, 5]), req_id=st.integers(0, 2**32 - 1),
       payload=st.binary(max_size=300), split=st.integers(0, 400))
def test_replies_are_read_as_olas_classes_wrote_them(pb, kind, req_id, payload, split):
    """A reply (an Ack, or a failure's text) read back, whatever the TCP stream's cut."""
    data = _theirs(pb, kind, req_id, "", payload) + _theirs(pb, 2, 1, "", b"")
    w = Wire()
    got = w.feed(data[:split]) + w.feed(data[split:])
    assert got == [(kind, req_id, payload), (2, 1, b"")]


def test_a_damaged_reply_is_an_error_not_a_hang():
    for body in (b"\x08", b"\x22\x05ab", b"\x0f"):
        with pytest.raises(ValueError):
            parse_rpc(body)
    w = Wire()
    with pytest.raises(ValueError):
        w.feed(HEADER.pack((2 << 28) | 0))            # another protocol version
