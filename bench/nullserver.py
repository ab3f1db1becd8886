"""A server that answers every request at once, to measure the load generator's own ceiling.

It speaks raftchat's framed msgpack protocol (so raftchat's real client, the raw framed
client and the PySyncObj driver can all be pointed at it) and just enough HTTP/1.1 for
the etcd driver. Answers have the same shape and about the same size as real ones, so
the client-side decoding cost is included. Run: ``python -m bench.nullserver FRAMED_PORT HTTP_PORT``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys

from raftchat import protocol

_FETCHED = [["r0", "x" * 48] for _ in range(10)]
_KVS = [
    {
        "key": base64.b64encode(f"chat/inbox/r0/{i}".encode()).decode(),
        "create_revision": "5",
        "mod_revision": "5",
        "version": "1",
        "value": base64.b64encode(json.dumps(["r0", "x" * 48]).encode()).decode(),
    }
    for i in range(10)
]
_ETCD_HEADER = {"cluster_id": "1", "member_id": "1", "revision": "5", "raft_term": "2"}
_PUT_ANSWER = json.dumps({"header": _ETCD_HEADER}).encode()
_RANGE_ANSWER = json.dumps({"header": _ETCD_HEADER, "kvs": _KVS, "count": "10"}).encode()


async def serve_framed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while (payload := await protocol.read_frame(reader)) is not None:
            request = protocol.unpack(payload)
            op = (request.get("op") or {}).get("op")
            if request.get("meta") == "status":
                value: object = {"node": "n1", "role": "leader", "term": 1, "leader": "n1"}
            else:
                value = _FETCHED if op == "fetch_messages" else 1
            answer = {
                "id": request.get("id"),
                "status": "ok",
                "value": value,
                "error": "",
                "node": "n1",
                "leader": "n1",
                "leader_addr": None,
            }
            writer.write(protocol.frame(protocol.pack(answer)))
    except (protocol.FrameError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            body = _RANGE_ANSWER if b"/v3/kv/range" in head.split(b"\r\n", 1)[0] else _PUT_ANSWER
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                + body
            )
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(framed_port: int, http_port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers = [
        await asyncio.start_server(serve_framed, "127.0.0.1", framed_port),
        await asyncio.start_server(serve_http, "127.0.0.1", http_port),
    ]
    await stop.wait()
    for server in servers:
        server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
