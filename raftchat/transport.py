"""Peer-to-peer transport: one outbound TCP connection per peer, framed Raft messages.

Raft tolerates lost messages, so the transport never retries a message: while a peer
is unreachable its messages are dropped and the core's heartbeats repair the gap (a
snapshot transfer resumes from the offset the follower confirmed). Every message must fit
in one frame of at most ``protocol.MAX_FRAME`` bytes; the core cuts entry batches and
snapshot chunks to a fraction of it.

Both ends of a link prove they know the cluster secret before any Raft message flows
(see :mod:`raftchat.auth`); an acceptor also drops messages that claim another sender.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import time
from collections.abc import Callable

from raftchat import auth
from raftchat.protocol import MAX_FRAME, FrameError, frame, read_frame
from raftchat.raft.messages import DecodeError, Message, decode, encode

log = logging.getLogger("raftchat.transport")

MAX_QUEUED = 4096  # frames waiting for a slow peer before newer ones are dropped
# Bytes waiting for a slow peer before newer frames are dropped. A peer cut off by a silent
# network (its TCP connection stays open, the send buffer full) must not make the sender
# hoard messages: Raft repairs whatever is dropped, so a few frames' worth is all it needs.
MAX_QUEUED_BYTES = 4 * MAX_FRAME
RECONNECT_DELAY = 0.05
REFUSAL_LOG_EVERY = 10.0  # seconds between two log lines about the same kind of refused hello


class PeerLink:
    """Keeps a connection to one peer open and writes queued messages to it."""

    def __init__(
        self,
        cluster_id: str,
        src: str,
        dst: str,
        address: tuple[str, int],
        on_gone: Callable[[str], None] | None = None,
        *,
        secret: bytes,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        # Called with dst when the peer's process is gone: it closed our connection and its
        # port then refused a new one (a live peer, or a reset by the network, accepts it).
        self.on_gone = on_gone
        self._closed_by_peer = False
        self.ssl_context = ssl_context  # TLS on this link (raftchat.tls), or None
        self.cluster_id = cluster_id
        self.src = src
        self.secret = secret
        self._refused = ""  # the last hello failure logged, so a wrong peer is not logged 20 times a second
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
            return await asyncio.wait_for(
                asyncio.open_connection(*self.address, ssl=self.ssl_context), timeout=1.0
            )
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
                await auth.dial(reader, writer, self.secret, self.cluster_id, self.src, self.dst)
                self._refused = ""
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
            except auth.HelloError as exc:
                if str(exc) != self._refused:
                    self._refused = str(exc)
                    log.error("not talking to %s at %s:%d: it %s", self.dst, *self.address, exc)
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

    def __init__(
        self,
        cluster_id: str,
        peers: set[str],
        deliver: Callable[[Message], None],
        *,
        me: str,
        secret: bytes,
    ) -> None:
        self.cluster_id = cluster_id
        self.peers = peers
        self.deliver = deliver
        self.me = me
        self.secret = secret
        self._refusals: dict[str, tuple[float, int]] = {}  # reason -> (last logged, suppressed since)

    def _log_refusal(self, peer: object, why: str) -> None:
        """Log each kind of refusal at most once per REFUSAL_LOG_EVERY seconds, with a count:
        a misconfigured or hostile dialer retries many times a second."""
        now = time.monotonic()
        last, suppressed = self._refusals.get(why, (float("-inf"), 0))
        if now - last < REFUSAL_LOG_EVERY:
            self._refusals[why] = (last, suppressed + 1)
            return
        more = f" ({suppressed} more like it since the last report)" if suppressed else ""
        log.error("refusing peer connection from %s: it %s%s", peer, why, more)
        self._refusals[why] = (now, 0)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            try:
                src = await auth.accept(reader, writer, self.secret, self.cluster_id, self.me, self.peers)
            except auth.HelloError as exc:
                self._log_refusal(peer, str(exc))
                return
            while (payload := await read_frame(reader)) is not None:
                msg = decode(payload)
                if msg.src != src or msg.dst != self.me:
                    raise DecodeError(f"{src} sent a message from {msg.src!r} to {msg.dst!r}")
                self.deliver(msg)
        except (FrameError, DecodeError, ValueError) as exc:
            log.warning("dropping peer connection from %s: %s", peer, exc)
        except (OSError, ConnectionError, asyncio.CancelledError):
            pass  # the peer went away, or this node is shutting down
        finally:
            writer.close()
