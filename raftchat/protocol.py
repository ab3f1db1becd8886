"""Framing and the client wire format, shared by nodes, peers and clients.

A frame is a 4-byte big-endian length followed by that many bytes of msgpack.
A length cap protects a node from a peer or client that sends garbage.

Client request:  {"id": int, "op": {"op": name, **args}, "client": str, "seq": int, "ack": int}
Client response: {"id": int, "status": str, "value": any, "error": str,
                  "node": str, "leader": str | None, "leader_addr": "host:port" | None}

``client``/``seq``/``ack`` are optional for reads. The statuses a node adds to the state
machine's own are the constants below.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from typing import Any

import msgpack

MAX_FRAME = 1 << 20
_HEADER = struct.Struct(">I")

NOT_LEADER = "not_leader"  # this node is not the leader; the request was not accepted
BAD_REQUEST = "bad_request"  # malformed or invalid request; it was not accepted
UNCERTAIN = "uncertain"  # accepted, but this node lost leadership before learning the outcome


class FrameError(Exception):
    """The byte stream is not a valid sequence of frames; the connection cannot continue."""


async def read_frame(reader: asyncio.StreamReader, max_size: int = MAX_FRAME) -> bytes | None:
    """Return the next frame's payload, or None on a clean end of stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise FrameError("connection closed inside a frame header") from exc
    (size,) = _HEADER.unpack(header)
    if size > max_size:
        raise FrameError(f"frame of {size} bytes exceeds the limit of {max_size}")
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise FrameError(f"connection closed after {len(exc.partial)} of {size} frame bytes") from exc


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def request_sync(
    address: tuple[str, int],
    request: dict[str, Any],
    timeout: float = 5.0,
    ssl_context: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """One request over a fresh blocking socket: for probes, scripts and tests."""
    raw = socket.create_connection(address, timeout=timeout)
    try:
        sock = ssl_context.wrap_socket(raw, server_hostname=address[0]) if ssl_context else raw
    except BaseException:
        raw.close()
        raise
    with sock:
        sock.settimeout(timeout)
        sock.sendall(frame(pack(request)))
        return unpack(recv_frame_sync(sock))


def recv_frame_sync(sock: socket.socket) -> bytes:
    (size,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    return _recv_exactly(sock, size)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)
