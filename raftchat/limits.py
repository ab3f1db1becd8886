"""Bounds on what connections may cost a node, so one misbehaving client cannot exhaust it.

A node's memory per connection is bounded by the reader's buffer (one frame of at most
``protocol.MAX_FRAME``), the requests it runs at once (``MAX_IN_FLIGHT``) and the answers
waiting to be written (``MAX_UNSENT`` bytes: a client that sends but never reads is cut off).
The number of connections is bounded per listening port, in all and per remote address, so
a flood of connections from one address is refused at accept, and logged once in a while.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("raftchat.limits")

MAX_CONNECTIONS = 1024  # per listening port
MAX_PER_ADDRESS = 256  # per listening port and remote host
MAX_IN_FLIGHT = 256  # requests of one client connection running at once; reading pauses past it
MAX_UNSENT = 8 << 20  # bytes of answers one client connection may leave unread before it is cut off
LOG_EVERY = 10.0  # seconds between two log lines about refused connections on one port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class ConnectionLimit:
    """Admits connections to one port up to a total and a per-address cap."""

    def __init__(self, name: str, total: int = MAX_CONNECTIONS, per_address: int = MAX_PER_ADDRESS) -> None:
        self.name = name
        self.total = total
        self.per_address = per_address
        self.open = 0
        self.by_address: collections.Counter[str] = collections.Counter()
        self.refused = 0  # since the process started
        self._last_log = float("-inf")
        self._unlogged = 0

    def guard(self, handler: Handler) -> Handler:
        """``handler`` run only for admitted connections; the others are closed at once."""

        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername")
            host = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
            if self.open >= self.total or self.by_address[host] >= self.per_address:
                self._refuse(host)
                writer.close()
                return
            self.open += 1
            self.by_address[host] += 1
            try:
                await handler(reader, writer)
            finally:
                self.open -= 1
                self.by_address[host] -= 1
                if not self.by_address[host]:
                    del self.by_address[host]

        return guarded

    def _refuse(self, host: str) -> None:
        self.refused += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY:
            log.warning(
                "%s port: refused %d connection(s) over the limit (last from %s: %d open from it, %d in all)",
                self.name,
                self._unlogged,
                host,
                self.by_address[host],
                self.open,
            )
            self._last_log, self._unlogged = now, 0


def over_unsent(writer: asyncio.StreamWriter) -> bool:
    """Whether the answers waiting for this client to read them exceed :data:`MAX_UNSENT`."""
    transport = writer.transport
    return transport is not None and transport.get_write_buffer_size() > MAX_UNSENT
