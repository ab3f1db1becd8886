"""Peer-to-peer transport: one outbound TCP connection per peer, framed Raft messages.

Raft tolerates lost messages, so the transport never retries a message: while a peer
is unreachable its messages are dropped and the core's heartbeats repair the gap (a
snapshot transfer resumes from the offset the follower confirmed). Every message must fit
in one frame of at most ``protocol.MAX_FRAME`` bytes; the core cuts entry batches and
snapshot chunks to a fraction of it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

from raftchat.protocol import MAX_FRAME, FrameError, frame, pack, read_frame, unpack
from raftchat.raft.messages import DecodeError, Message, decode, encode

log = logging.getLogger("raftchat.transport")

MAX_QUEUED = 4096  # frames waiting for a slow peer before newer ones are dropped
# Bytes waiting for a slow peer before newer frames are dropped. A peer cut off by a silent
# network (its TCP connection stays open, the send buffer full) must not make the sender
# hoard messages: Raft repairs whatever is dropped, so a few frames' worth is all it needs.
MAX_QUEUED_BYTES = 4 * MAX_FRAME
RECONNECT_DELAY = 0.05


class PeerLink:
    """Keeps a connection to one peer open and writes queued messages to it."""

    def __init__(
        self,
        cluster_id: str,
        src: str,
        dst: str,
        address: tuple[str, int],
        on_gone: Callable[[str], None] | None = None,
    ) -> None:
        # Called with dst when the peer's process is gone: it closed our connection and its
        # port then refused a new one (a live peer, or a reset by the network, accepts it).
        self.on_gone = on_gone
        self._closed_by_peer = False
        self.hello = frame(pack({"cluster": cluster_id, "from": src}))
        self.dst = dst
        self.address = address
        self.queue: collections.deque[bytes] = collections.deque()
        self.queued_bytes = 0
        self.connected = False
        self._writer: asyncio.StreamWriter | None = None  # set while connected
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"peer-{self.dst}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def send(self, msg: Message) -> None:
        if not self.connected or len(self.queue) >= MAX_QUEUED:
            return
        payload = encode(msg)
        if len(payload) > MAX_FRAME:
            # The peer would drop the connection on it, and a retry would meet the same fate:
            # say so here, where the cause is. The core keeps messages far below this size.
            log.error(
                "not sending a %s of %d bytes to %s: over the frame limit of %d",
                type(msg).__name__,
                len(payload),
                self.dst,
                MAX_FRAME,
            )
            return
        data = frame(payload)
        writer = self._writer
        if writer is not None and not self.queue:
            transport = writer.transport
            if transport.is_closing():
                self._wake.set()  # the peer went away: the link task reconnects; Raft resends
                return
            if not transport.get_write_buffer_size():
                # Nothing waits ahead of it: hand it to the socket now rather than a loop
                # iteration later (a leader sends before its own fsync: the two overlap).
                writer.write(data)
                return
        if self.queued_bytes + len(data) > MAX_QUEUED_BYTES:
            return
        self.queue.append(data)
        self.queued_bytes += len(data)
        self._wake.set()

    def _peer_closed(self, read: asyncio.Future) -> None:
        self.connected = False
        self._writer = None
        self._wake.set()
        if not read.cancelled():
            read.exception()  # a reset is a close too (and retrieving it keeps asyncio quiet)
            self._closed_by_peer = True

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        closed_by_peer, self._closed_by_peer = self._closed_by_peer, False
        try:
            return await asyncio.wait_for(asyncio.open_connection(*self.address), timeout=1.0)
        except ConnectionRefusedError:
            if closed_by_peer and self.on_gone is not None:
                self.on_gone(self.dst)
            raise

    async def _run(self) -> None:
        while True:
            writer = None
            closed: asyncio.Future | None = None
            connected_at = 0.0
            try:
                reader, writer = await self._connect()
                connected_at = asyncio.get_running_loop().time()
                writer.write(self.hello)
                self.connected = True
                self._writer = writer
                # The peer never writes on this connection, so a read returns only when it
                # closes (say its process died): reconnect at once, rather than after the next
                # message was lost in a dead socket, and learn whether anyone is listening.
                closed = asyncio.ensure_future(reader.read(1))
                closed.add_done_callback(self._peer_closed)
                while True:
                    if not self.queue:
                        self._wake.clear()
                        await self._wake.wait()
                    if closed.done() or writer.transport.is_closing():
                        break  # reconnect
                    batch = b"".join(self.queue)
                    self.queue.clear()
                    self.queued_bytes = 0
                    writer.write(batch)
                    await writer.drain()
            except (TimeoutError, OSError, ConnectionError, RuntimeError):
                pass  # RuntimeError: uvloop refuses a write to a transport the peer just closed
            finally:
                if closed is not None:
                    closed.remove_done_callback(self._peer_closed)
                    closed.cancel()
                self.connected = False
                self._writer = None
                self.queue.clear()
                self.queued_bytes = 0
                if writer is not None:
                    writer.close()
            # After the peer closed a connection that had lived, find out at once why; one
            # that accepts and closes again at once (a proxy with nothing behind) waits.
            lived = writer is not None and asyncio.get_running_loop().time() - connected_at > RECONNECT_DELAY
            if not (self._closed_by_peer and lived):
                await asyncio.sleep(RECONNECT_DELAY)


class PeerServer:
    """Accepts connections from peers of the same cluster and hands their messages on."""

    def __init__(self, cluster_id: str, peers: set[str], deliver: Callable[[Message], None]) -> None:
        self.cluster_id = cluster_id
        self.peers = peers
        self.deliver = deliver

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            hello = unpack(await read_frame(reader) or b"\xc0")
            if not isinstance(hello, dict) or hello.get("cluster") != self.cluster_id:
                log.error(
                    "rejecting peer connection from %s: it belongs to another cluster (%r)", peer, hello
                )
                return
            if hello.get("from") not in self.peers:
                log.error("rejecting peer connection from %s: unknown node %r", peer, hello.get("from"))
                return
            while (payload := await read_frame(reader)) is not None:
                self.deliver(decode(payload))
        except (FrameError, DecodeError, ValueError) as exc:
            log.warning("dropping peer connection from %s: %s", peer, exc)
        except (OSError, ConnectionError, asyncio.CancelledError):
            pass  # the peer went away, or this node is shutting down
        finally:
            writer.close()
