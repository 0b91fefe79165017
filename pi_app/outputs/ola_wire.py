"""OLA's RPC wire format, as `olad` speaks it on its RPC port (for `outputs/ola.py`).

A message on the TCP stream is a 4-byte header — ``version << 28 | size`` in the machine's
byte order (OLA's ``StreamRpcChannel``: ``struct.pack('=L', ...)``, version 1) — then an
``ola.rpc.RpcMessage`` (protobuf) of ``size`` bytes: ``type`` (REQUEST, RESPONSE, ...,
STREAM_REQUEST), ``id``, the method ``name``, and the request or reply as ``buffer``.

The three messages the output needs are small protobuf messages, encoded and decoded here
(`RpcMessage`: type = 1, id = 2, name = 3, buffer = 4; `DmxData`: universe = 1, data = 2;
`PluginListRequest`: empty — from OLA's ``Rpc.proto`` and ``Ola.proto``), byte for byte as
OLA's generated ``Rpc_pb2``/``Ola_pb2`` serialise them (`tests/test_ola_wire.py` checks it
against them). So playing to olad loads neither OLA's Python package nor protobuf (2 MB of
the daemon's memory); `doctor` and `darken` still use OLA's client. The framing — eight
lines in OLA's client — is written here too, because OLA's channel object can neither be
shared between a sending and a receiving thread (it registers a reply's callback *after*
sending, so a fast reply is lost) nor send without copying the frame through Python-level
protobuf code on every frame.

`StreamTemplate` makes the per-frame message cheap: a ``StreamDmxData`` (the call OLA's own
``StreamingClient`` and ``ola_streaming_client`` make: no reply, no acknowledgement) for one
universe and 512 slots always has the same bytes but the slots, so the header and the
fields before the slots are encoded once and a frame is that prefix plus its 512 bytes.
"""

from __future__ import annotations

import struct

PROTOCOL_VERSION = 1
VERSION_MASK = 0xF0000000
SIZE_MASK = 0x0FFFFFFF
HEADER = struct.Struct("=L")
SLOTS = 512


# RpcMessage.type (OLA's Rpc.proto)
REQUEST, RESPONSE, RESPONSE_FAILED, STREAM_REQUEST = 1, 2, 4, 10


def _varint(n: int) -> bytes:
    """A protobuf varint (a negative int32/int64 as its 64-bit two's complement)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("a varint runs past the message")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def parse_rpc(body: bytes) -> tuple[int, int, bytes]:
    """An ``RpcMessage`` -> (type, id, buffer); unknown fields are skipped."""
    kind = req_id = 0
    payload = b""
    i = 0
    while i < len(body):
        key, i = _read_varint(body, i)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, i = _read_varint(body, i)
            if number == 1:
                kind = value
            elif number == 2:
                req_id = value & 0xFFFFFFFF
        elif wire_type == 2:
            size, i = _read_varint(body, i)
            if i + size > len(body):
                raise ValueError("a field runs past the message")
            if number == 4:
                payload = bytes(body[i:i + size])
            i += size
        elif wire_type in (1, 5):
            i += 8 if wire_type == 1 else 4
        else:
            raise ValueError(f"wire type {wire_type}")
    return kind, req_id, payload


class Wire:
    """Encoders and a decoder for one connection."""

    REQUEST, RESPONSE, STREAM_REQUEST = REQUEST, RESPONSE, STREAM_REQUEST

    def __init__(self) -> None:
        self._buf = bytearray()

    # -- encoding ---------------------------------------------------------------------------
    @staticmethod
    def message(kind: int, req_id: int, method: str, payload: bytes) -> bytes:
        data = (_field_varint(1, kind) + _field_varint(2, req_id & 0xFFFFFFFF)
                + _field_bytes(3, method.encode()) + _field_bytes(4, payload))
        return HEADER.pack((PROTOCOL_VERSION << 28) & VERSION_MASK | len(data)) + data

    @staticmethod
    def dmx_data(universe: int, frame: bytes) -> bytes:
        return _field_varint(1, universe) + _field_bytes(2, frame)

    def update_dmx(self, req_id: int, universe: int, frame: bytes) -> bytes:
        """``UpdateDmxData`` (olad answers with an Ack, or a failure naming the problem)."""
        return self.message(REQUEST, req_id, "UpdateDmxData", self.dmx_data(universe, frame))

    def get_plugins(self, req_id: int) -> bytes:
        """A cheap question olad always answers (``GetPlugins``): is it there?"""
        return self.message(REQUEST, req_id, "GetPlugins", b"")

    def stream_template(self, universe: int) -> StreamTemplate:
        return StreamTemplate(self, universe)

    # -- decoding ---------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """Bytes read from the socket -> the complete messages: (type, id, buffer)."""
        buf = self._buf
        buf += data
        out = []
        while len(buf) >= 4:
            (header,) = HEADER.unpack_from(buf)
            size = header & SIZE_MASK
            if len(buf) < 4 + size:
                break
            body = bytes(buf[4:4 + size])
            del buf[:4 + size]
            if (header & VERSION_MASK) >> 28 != PROTOCOL_VERSION:
                raise ValueError(f"protocol version {(header & VERSION_MASK) >> 28}")
            out.append(parse_rpc(body))
        return out

    def reset(self) -> None:
        self._buf.clear()


class StreamTemplate:
    """``StreamDmxData`` for one universe: `frame(slots)` -> the bytes to write."""

    def __init__(self, wire: Wire, universe: int) -> None:
        probe = bytes(range(256)) * 2                      # 512 bytes we can find again
        whole = wire.message(STREAM_REQUEST, 0, "StreamDmxData",
                             wire.dmx_data(universe, probe))
        if not whole.endswith(probe):          # the slots are the message's last bytes
            raise ValueError("unexpected StreamDmxData layout")
        self.prefix = whole[:-SLOTS]

    def frame(self, slots: bytes) -> bytes:
        if len(slots) != SLOTS:
            raise ValueError("a frame is 512 slots")
        return self.prefix + slots
