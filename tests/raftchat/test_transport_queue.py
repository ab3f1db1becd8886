"""A peer that stops reading (a silent partition keeps its TCP connection open) must not make
the sender hoard messages: the link's queue is bounded in bytes, and the rest is dropped."""

from __future__ import annotations

import asyncio

from raftchat import auth
from raftchat.protocol import MAX_FRAME
from raftchat.raft.messages import AppendEntries, Entry
from raftchat.transport import MAX_QUEUED_BYTES, PeerLink


def _batch(index: int) -> AppendEntries:
    entries = [Entry(index * 4 + i, 1, bytes(60_000)) for i in range(4)]  # about 240 kB a message
    return AppendEntries("n1", "n2", 1, index * 4, 1, entries, 0)


def test_a_peer_that_never_reads_costs_the_sender_a_bounded_queue() -> None:
    async def scenario() -> tuple[int, int]:
        # A peer that completes the hello and then never reads: the kernel buffers fill,
        # drain() blocks.
        secret = b"k" * 32
        hung: list[asyncio.StreamWriter] = []

        async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await auth.accept(reader, writer, secret, "cluster", "n2", {"n1", "n2"})
            hung.append(writer)

        server = await asyncio.start_server(never_reads, "127.0.0.1", 0)
        link = PeerLink("cluster", "n1", "n2", server.sockets[0].getsockname()[:2], secret=secret)
        link.start()
        try:
            for _ in range(200):  # wait for the connection
                if link.connected:
                    break
                await asyncio.sleep(0.01)
            assert link.connected
            peak = 0
            for i in range(2_000):  # about 480 MB offered in all
                link.send(_batch(i))
                peak = max(peak, link.queued_bytes)
                if i % 20 == 0:
                    await asyncio.sleep(0)  # let the writer run (and block)
            return peak, len(link.queue)
        finally:
            await link.stop()
            for writer in hung:
                writer.close()
            server.close()

    peak, queued = asyncio.run(scenario())
    assert 0 < peak <= MAX_QUEUED_BYTES
    assert queued * 200_000 <= MAX_QUEUED_BYTES + MAX_FRAME
