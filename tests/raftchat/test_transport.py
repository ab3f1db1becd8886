"""Peer links over real loopback sockets: order, reconnection, and the "peer is gone" hint.

The hint (PeerLink.on_gone) feeds RaftCore.peer_gone, which lets followers replace a dead
leader within a fraction of the election timeout; it must fire when the peer's process is
gone (connection closed, port refusing) and never when the peer merely dropped the
connection and still listens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from raftchat.raft.messages import Message, VoteResponse
from raftchat.transport import PeerLink, PeerServer

SECRET = b"s" * 32  # both ends hold the cluster secret: the hello passes


class _Peer:
    """A PeerServer on a loopback port that can drop its connections or stop listening."""

    def __init__(self) -> None:
        self.received: list[Message] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.accepted = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self._peer = PeerServer("c", {"n1", "n2"}, self.received.append, me="n2", secret=SECRET)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        self.accepted += 1
        await self._peer.handle(reader, writer)

    async def listen(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def drop_connections(self) -> None:
        for w in self.writers:
            w.close()
        self.writers.clear()

    async def stop_listening(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def _until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def _run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def _msg(term: int) -> VoteResponse:
    return VoteResponse("n1", "n2", term, True)


def test_messages_arrive_in_order_and_a_gone_peer_is_reported() -> None:
    async def scenario() -> None:
        peer = _Peer()
        await peer.listen()
        gone: list[str] = []
        link = PeerLink("c", "n1", "n2", ("127.0.0.1", peer.port), on_gone=gone.append, secret=SECRET)
        link.start()
        try:
            await _until(lambda: link.connected, "the link to connect")
            for term in range(1, 201):
                link.send(_msg(term))
            await _until(lambda: len(peer.received) == 200, "200 messages")
            assert [m.term for m in peer.received] == list(range(1, 201))
            # The peer's process dies: its connections close and its port refuses.
            await peer.stop_listening()
            await peer.drop_connections()
            await _until(lambda: gone == ["n2"], "the gone hint")
            assert not link.connected
        finally:
            await link.stop()

    _run(scenario)


def test_a_peer_that_drops_the_connection_but_listens_is_not_gone() -> None:
    async def scenario() -> None:
        peer = _Peer()
        await peer.listen()
        gone: list[str] = []
        link = PeerLink("c", "n1", "n2", ("127.0.0.1", peer.port), on_gone=gone.append, secret=SECRET)
        link.start()
        try:
            await _until(lambda: link.connected and peer.writers, "the link to connect")
            await peer.drop_connections()
            # Reconnected at once (no message needed to notice), and it carries traffic again.
            await _until(lambda: peer.accepted == 2 and link.connected, "the link to reconnect", timeout=2.0)
            link.send(_msg(7))
            await _until(lambda: [m.term for m in peer.received] == [7], "the message after reconnecting")
            assert gone == []
        finally:
            await link.stop()
            await peer.stop_listening()

    _run(scenario)
