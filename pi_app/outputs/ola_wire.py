"""OLA's RPC wire format, as `olad` speaks it on its RPC port (for `outputs/ola.py`).

A message on the TCP stream is a 4-byte header — ``version << 28 | size`` in the machine's
byte order (OLA's ``StreamRpcChannel``: ``struct.pack('=L', ...)``, version 1) — then an
``ola.rpc.RpcMessage`` (protobuf) of ``size`` bytes: ``type`` (REQUEST, RESPONSE, ...,
STREAM_REQUEST), ``id``, the method ``name``, and the request or reply as ``buffer``.

The messages themselves are built and parsed with OLA's own protobuf classes (``Rpc_pb2``,
``Ola_pb2``, from Debian's ola-python). Only the framing — eight lines in OLA's client — is
written here, because OLA's channel object can neither be shared between a sending and a
receiving thread (it registers a reply's callback *after* sending, so a fast reply is lost)
nor send without copying the frame through Python-level protobuf code on every frame.

`StreamTemplate` makes the per-frame message cheap: a ``StreamDmxData`` (the call OLA's own
``StreamingClient`` and ``ola_streaming_client`` make: no reply, no acknowledgement) for one
universe and 512 slots always has the same bytes but the slots, so the header and the
protobuf fields before the slots are serialised once (by the library) and a frame is that
prefix plus its 512 bytes.
"""

from __future__ import annotations

import struct
from typing import Any

PROTOCOL_VERSION = 1
VERSION_MASK = 0xF0000000
SIZE_MASK = 0x0FFFFFFF
HEADER = struct.Struct("=L")
SLOTS = 512


class Wire:
    """Encoders and a decoder for one connection, over OLA's generated protobuf modules."""

    def __init__(self, ola_client_module: Any) -> None:
        # `ola` is in sys.modules once `import_ola` returned `ola.OlaClient` (passed in)
        import ola.Ola_pb2 as ola_pb2
        import ola.rpc.Rpc_pb2 as rpc_pb2

        del ola_client_module
        self.pb = ola_pb2
        self.rpc = rpc_pb2
        self.REQUEST = rpc_pb2.REQUEST
        self.RESPONSE = rpc_pb2.RESPONSE
        self.STREAM_REQUEST = rpc_pb2.STREAM_REQUEST
        self._buf = bytearray()

    # -- encoding ---------------------------------------------------------------------------
    def message(self, kind: int, req_id: int, method: str, payload: bytes) -> bytes:
        msg = self.rpc.RpcMessage()
        msg.type = kind
        msg.id = req_id
        msg.name = method
        msg.buffer = payload
        data = msg.SerializeToString()
        return HEADER.pack((PROTOCOL_VERSION << 28) & VERSION_MASK | len(data)) + data

    def update_dmx(self, req_id: int, universe: int, frame: bytes) -> bytes:
        """``UpdateDmxData`` (olad answers with an Ack, or a failure naming the problem)."""
        dmx = self.pb.DmxData()
        dmx.universe = universe
        dmx.data = frame
        return self.message(self.REQUEST, req_id, "UpdateDmxData", dmx.SerializeToString())

    def get_plugins(self, req_id: int) -> bytes:
        """A cheap question olad always answers (``GetPlugins``): is it there?"""
        return self.message(self.REQUEST, req_id, "GetPlugins",
                            self.pb.PluginListRequest().SerializeToString())

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
            msg = self.rpc.RpcMessage.FromString(body)
            out.append((msg.type, msg.id, msg.buffer))
        return out

    def reset(self) -> None:
        self._buf.clear()


class StreamTemplate:
    """``StreamDmxData`` for one universe: `frame(slots)` -> the bytes to write."""

    def __init__(self, wire: Wire, universe: int) -> None:
        probe = bytes(range(256)) * 2                      # 512 bytes we can find again
        dmx = wire.pb.DmxData()
        dmx.universe = universe
        dmx.data = probe
        whole = wire.message(wire.STREAM_REQUEST, 0, "StreamDmxData", dmx.SerializeToString())
        if not whole.endswith(probe):          # the slots are the message's last bytes
            raise ValueError("unexpected StreamDmxData layout")
        self.prefix = whole[:-SLOTS]

    def frame(self, slots: bytes) -> bytes:
        if len(slots) != SLOTS:
            raise ValueError("a frame is 512 slots")
        return self.prefix + slots
