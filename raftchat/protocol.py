"""Framing and the client wire format, shared by nodes, peers and clients.

A frame is a 4-byte big-endian length followed by that many bytes of msgpack.
A length cap protects a node from a peer or client that sends garbage.

Client request:  {"id": int, "op": {"op": name, **args}, "client": str, "seq": int, "ack": int}
Client response: {"id": int, "status": str, "value": any, "error": str,
                  "node": str, "leader": str | None, "leader_addr": "host:port" | None}

``client``/``seq``/``ack`` are optional for reads. The statuses a node adds to the state
machine's own, and those the client library gives a call that got no final answer, are the
rows of :data:`STATUSES`, each with its ``definite`` meaning.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from dataclasses import dataclass
from typing import Any

import msgpack

MAX_FRAME = 1 << 20
_HEADER = struct.Struct(">I")

NOT_LEADER = "not_leader"
BAD_REQUEST = "bad_request"
UNCERTAIN = "uncertain"
UNAVAILABLE = "unavailable"
TIMEOUT = "timeout"
CONNECTION_LOST = "connection_lost"
BAD_RESPONSE = "bad_response"
CLOSED = "closed"


@dataclass(frozen=True)
class Status:
    """A status that is not the state machine's answer.

    ``definite``: an attempt that ended with it certainly had no effect (True), or may have
    had one (False); None for a status that ends a whole call, whose definiteness is that of
    all its attempts (one attempt that may have taken effect makes the call indefinite).
    ``sender``: who says it, the node or the client library.
    """

    name: str
    definite: bool | None
    sender: str
    meaning: str


STATUSES: dict[str, Status] = {
    s.name: s
    for s in (
        Status(NOT_LEADER, True, "node", "this node is not the leader; the request was not accepted"),
        Status(BAD_REQUEST, True, "node", "malformed or invalid request; it was not accepted"),
        Status(
            UNCERTAIN, False, "node", "accepted, but this node lost leadership before learning the outcome"
        ),
        Status(UNAVAILABLE, True, "client", "the request never reached a node (connect failed, or not sent)"),
        Status(TIMEOUT, False, "client", "sent, but no answer within the attempt's time"),
        Status(CONNECTION_LOST, False, "client", "sent, but the connection broke before the answer"),
        Status(BAD_RESPONSE, False, "client", "the node answered without a status"),
        Status(CLOSED, None, "client", "the client was closed while the call was in progress"),
    )
}


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
