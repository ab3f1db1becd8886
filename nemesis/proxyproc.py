"""The TCP proxy process that sits between every pair of nodes for the "proxy" network.

Run by ``nemesis.net.proxy.ProxyNetwork`` as ``python -m nemesis.proxyproc --tag rc-TAG --links JSON``.
It listens on one loopback port per ordered pair (src, dst) and forwards to dst's peer
address. When ready it prints one JSON line on stdout: its control port and the port of
each link. It then takes JSON-line requests on the control port and answers each one only
after applying it, so the caller knows the fault is in force when the call returns.

It exits on SIGTERM, on a ``quit`` request, or when its stdin reaches EOF: stdin is a pipe
held by the harness, so the proxy goes away with the harness even when PDEATHSIG does not
fire (e.g. the thread that started it is still alive but the owner object is gone).

Forwarding uses asyncio protocols: received chunks (up to 256 KiB) are written straight
to the other socket with no copy and no per-byte work; flow control pauses the reading
side while the writing side's buffer is full.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import random
import signal
import socket
import struct
import sys
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("nemesis.proxyproc")

HOST = "127.0.0.1"
RTO_S = 0.2  # a "lost" chunk arrives this much later, like a TCP retransmission after a timeout


@dataclass(frozen=True)
class LinkFault:
    """Link fault on one node's traffic: delay per chunk, its jitter, and the loss probability."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0

    def worst(self, other: LinkFault | None) -> LinkFault:
        """A link between two slowed nodes gets one dose of the worse of each setting, not the sum."""
        if other is None:
            return self
        return LinkFault(
            max(self.delay_ms, other.delay_ms),
            max(self.jitter_ms, other.jitter_ms),
            max(self.loss, other.loss),
        )

    def chunk_delay(self, rng: random.Random) -> float:
        """Seconds to hold one chunk back; a lost chunk is retransmitted one RTO later."""
        delay = self.delay_ms
        if self.jitter_ms:
            delay += rng.uniform(-self.jitter_ms, self.jitter_ms)
        seconds = max(0.0, delay) / 1000.0
        if self.loss and rng.random() < self.loss:
            seconds += RTO_S
        return seconds


class Link:
    """Everything src dials to reach dst: its listening socket and the connections through it."""

    def __init__(self, src: str, dst: str, target: tuple[str, int]) -> None:
        self.src, self.dst, self.target = src, dst, target
        self.cut = False
        self.fault: LinkFault | None = None
        self.conns: set[Conn] = set()
        self.server: asyncio.AbstractServer | None = None
        self.forwarded = 0  # bytes delivered, both directions
        self.dropped = 0  # bytes discarded by a cut, both directions
        self.accepted = 0  # connections accepted

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    def stats(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "dst": self.dst,
            "cut": self.cut,
            "open": len(self.conns),
            "accepted": self.accepted,
            "forwarded": self.forwarded,
            "dropped": self.dropped,
        }


class Half(asyncio.Protocol):
    """One socket of a forwarded connection: what it receives goes to the other half."""

    def __init__(self, conn: Conn, inbound: bool) -> None:
        self.conn = conn
        self.inbound = inbound  # True: the socket accepted from src; False: the one dialled to dst
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.inbound:
            self.conn.accepted(self)

    def data_received(self, data: bytes) -> None:
        self.conn.forward(self, data)

    def eof_received(self) -> bool:
        self.conn.eof(self)
        return True  # keep the socket open for the other direction (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.lost(self, exc)

    def pause_writing(self) -> None:
        other = self.conn.other(self)
        if other.transport is not None and not self.conn.blackholed:
            other.transport.pause_reading()

    def resume_writing(self) -> None:
        other = self.conn.other(self)
        if other.transport is not None and not other.transport.is_closing():
            other.transport.resume_reading()


class Direction:
    """One direction of a connection: chunks held back by a link fault, in order, with their release time."""

    def __init__(self) -> None:
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.eof = False  # the sender closed its side; pass the EOF on once the queue is empty
        self.eof_sent = False

    def clear(self) -> int:
        """Drop what is held back (a cut); return how many bytes that was."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        dropped = sum(len(data) for _, data in self.queue)
        self.queue.clear()
        return dropped


class Conn:
    """One connection from src to dst through the proxy: an inbound and an outbound half."""

    def __init__(self, proxy: Proxy, link: Link) -> None:
        self.proxy, self.link = proxy, link
        self.inbound = Half(self, True)
        self.outbound = Half(self, False)
        self.blackholed = False
        self.closed = False
        # keyed by the receiving half's "inbound" flag: True = src->dst traffic
        self.directions = {True: Direction(), False: Direction()}

    def other(self, half: Half) -> Half:
        return self.outbound if half is self.inbound else self.inbound

    def accepted(self, half: Half) -> None:
        self.link.conns.add(self)
        self.link.accepted += 1
        if self.link.cut:
            self.blackholed = True  # accept, then read and discard: what src sees across a partition
            return
        assert half.transport is not None
        half.transport.pause_reading()  # until dst answers
        self.proxy.spawn(self.dial())

    async def dial(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: self.outbound, *self.link.target)
        except OSError:
            # dst is down. src's connect already succeeded, so the nearest thing to a refusal is a
            # reset: src learns of it at its next write (that message is lost) and reconnects.
            self.abort()
            return
        if self.closed or self.blackholed:
            # src left, or a cut came while we dialled: dst must not see this connection carry data
            if self.closed:
                self.abort()
            return
        assert self.inbound.transport is not None
        self.inbound.transport.resume_reading()

    def forward(self, half: Half, data: bytes) -> None:
        if self.blackholed:
            self.link.dropped += len(data)
            return
        target = self.other(half).transport
        direction = self.directions[half.inbound]
        if target is None:  # cannot happen while reading is paused before the dial; be safe
            self.link.dropped += len(data)
            return
        fault = self.link.fault
        delay = fault.chunk_delay(self.proxy.rng) if fault else 0.0
        if delay == 0.0 and not direction.queue:
            target.write(data)
            self.link.forwarded += len(data)
            return
        loop = asyncio.get_running_loop()
        release = loop.time() + delay
        if direction.queue:  # TCP delivers in order: wait behind earlier chunks
            release = max(release, direction.queue[-1][0])
        direction.queue.append((release, data))
        if direction.timer is None:
            direction.timer = loop.call_at(direction.queue[0][0], self.release, half.inbound)

    def release(self, key: bool) -> None:
        """Write the held-back chunks of one direction whose time has come."""
        direction = self.directions[key]
        direction.timer = None
        if self.blackholed or self.closed:
            return
        target = (self.outbound if key else self.inbound).transport
        loop = asyncio.get_running_loop()
        now = loop.time()
        ready = []
        while direction.queue and direction.queue[0][0] <= now:
            ready.append(direction.queue.popleft()[1])
        if ready and target is not None:
            data = b"".join(ready)
            target.write(data)
            self.link.forwarded += len(data)
        if direction.queue:
            direction.timer = loop.call_at(direction.queue[0][0], self.release, key)
        else:
            self.pass_eof(key)

    def eof(self, half: Half) -> None:
        if self.blackholed:
            # that side hung up; across a partition the other side must not hear of it
            assert half.transport is not None
            half.transport.close()
            return
        self.directions[half.inbound].eof = True
        if not self.directions[half.inbound].queue:
            self.pass_eof(half.inbound)

    def pass_eof(self, key: bool) -> None:
        direction = self.directions[key]
        if not direction.eof or direction.eof_sent:
            return
        direction.eof_sent = True
        target = (self.outbound if key else self.inbound).transport
        if target is not None and target.can_write_eof():
            target.write_eof()
        if all(d.eof_sent for d in self.directions.values()):
            self.close()

    def lost(self, half: Half, exc: Exception | None) -> None:
        """One socket is gone: end the other the same way, a reset for a reset and a FIN for a FIN.

        Not across a cut, though: there the other side hears nothing until the heal resets it.
        """
        if self.blackholed:
            if all(h.transport is None or h.transport.is_closing() for h in (self.inbound, self.outbound)):
                self.closed = True
                self.link.conns.discard(self)
            return
        if exc is not None:
            self.abort()
            return
        other = self.other(half).transport
        if other is not None and not other.is_closing():
            other.close()  # flush what was written, then FIN
        self.closed = True
        for direction in self.directions.values():
            direction.clear()
        self.link.conns.discard(self)

    def blackhole(self) -> None:
        """A cut: from now on read from both sides and discard, and drop what is held back."""
        self.blackholed = True
        for direction in self.directions.values():
            self.link.dropped += direction.clear()
        for half in (self.inbound, self.outbound):
            if half.transport is not None:
                half.transport.resume_reading()  # paused by flow control or a pending dial: keep draining

    def close(self) -> None:
        for half in (self.inbound, self.outbound):
            if half.transport is not None and not half.transport.is_closing():
                half.transport.close()
        self.closed = True
        self.link.conns.discard(self)

    def abort(self) -> None:
        """Close both sockets with RST, so a node's next write fails at once and it reconnects."""
        for half in (self.inbound, self.outbound):
            if half.transport is not None and not half.transport.is_closing():
                sock = half.transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                half.transport.abort()
        self.closed = True
        for direction in self.directions.values():
            direction.clear()
        self.link.conns.discard(self)


class Proxy:
    """All links, the faults in force, and the control server that changes them."""

    def __init__(self, links: dict[str, dict[str, str]], seed: int | None = None) -> None:
        self.links: dict[tuple[str, str], Link] = {}
        for src, dsts in links.items():
            for dst, target in dsts.items():
                host, _, port = target.rpartition(":")
                self.links[(src, dst)] = Link(src, dst, (host, int(port)))
        self.node_faults: dict[str, LinkFault] = {}
        self.rng = random.Random(seed)
        self.stopped = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()
        self.control: asyncio.AbstractServer | None = None
        self.control_writers: set[asyncio.StreamWriter] = set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def start(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for link in self.links.values():
            link.server = await loop.create_server(
                lambda link=link: Conn(self, link).inbound, HOST, 0, reuse_address=True
            )
        self.control = await asyncio.start_server(self.serve_control, HOST, 0)
        routes: dict[str, dict[str, str]] = {}
        for (src, dst), link in self.links.items():
            routes.setdefault(src, {})[dst] = f"{HOST}:{link.port}"
        return {"control": self.control.sockets[0].getsockname()[1], "routes": routes}

    # -- control ---------------------------------------------------------------------------------

    async def serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.control_writers.add(writer)
        try:
            while line := await reader.readline():
                try:
                    reply = {"ok": True, **(self.apply(json.loads(line)) or {})}
                except Exception as exc:  # a bad request must not kill the proxy; the caller sees why
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            self.control_writers.discard(writer)
            writer.close()

    async def shutdown(self) -> None:
        """Close every socket, so control handlers end on EOF rather than by cancellation."""
        servers = [link.server for link in self.links.values()] + [self.control]
        for server in servers:
            if server is not None:
                server.close()
        for link in self.links.values():
            for conn in list(link.conns):
                conn.abort()
        for writer in list(self.control_writers):
            writer.close()
        for _ in range(3):  # let the handlers see their EOF
            await asyncio.sleep(0)

    def apply(self, request: dict[str, Any]) -> dict[str, Any] | None:
        op = request.get("op")
        if op == "cut":
            self.set_cut({frozenset(pair) for pair in request["pairs"]})
        elif op == "slow":
            fault = LinkFault(float(request["delay_ms"]), float(request["jitter_ms"]), float(request["loss"]))
            for node in request["nodes"]:
                self.node_faults[node] = fault
            self.refresh_faults()
        elif op == "clear_slow":
            self.node_faults.clear()
            self.refresh_faults()
        elif op == "stats":
            return {"links": [link.stats() for link in self.links.values()]}
        elif op == "ping":
            return None
        elif op == "quit":
            self.stopped.set()
        else:
            raise ValueError(f"unknown op {op!r}")
        return None

    def set_cut(self, pairs: set[frozenset[str]]) -> None:
        """Black-hole the links of cut pairs; reset the black-holed connections of links no longer cut."""
        for link in self.links.values():
            cut = frozenset((link.src, link.dst)) in pairs
            if cut and not link.cut:
                for conn in list(link.conns):
                    conn.blackhole()
            elif link.cut and not cut:
                for conn in list(link.conns):
                    if conn.blackholed:
                        conn.abort()
            link.cut = cut

    def refresh_faults(self) -> None:
        for link in self.links.values():
            src, dst = self.node_faults.get(link.src), self.node_faults.get(link.dst)
            link.fault = src.worst(dst) if src else dst


async def amain(args: argparse.Namespace) -> None:
    proxy = Proxy(json.loads(args.links), args.seed)
    ready = await proxy.start()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, proxy.stopped.set)
    loop.add_signal_handler(signal.SIGINT, proxy.stopped.set)
    await watch_stdin(proxy.stopped)
    sys.stdout.write(json.dumps({"tag": args.tag, **ready}) + "\n")
    sys.stdout.flush()
    await proxy.stopped.wait()
    await proxy.shutdown()


async def watch_stdin(stopped: asyncio.Event) -> None:
    """Stop when the harness's end of our stdin pipe closes (the harness is gone)."""

    class Lifeline(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            stopped.set()

    with contextlib.suppress(OSError, ValueError):  # stdin is not a pipe: rely on signals only
        await asyncio.get_running_loop().connect_read_pipe(Lifeline, sys.stdin)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nemesis.proxyproc", description=__doc__)
    parser.add_argument("--tag", required=True, help="run tag (rc-XXXX), so leftovers can be found")
    parser.add_argument("--links", required=True, help='JSON {"src": {"dst": "host:port", ...}, ...}')
    parser.add_argument("--seed", type=int, default=None, help="seed for jitter and loss")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s proxy %(levelname)s %(message)s")
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
