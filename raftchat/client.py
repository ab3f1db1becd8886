"""A client for a raftchat cluster that finds the leader, retries safely and says what it knows.

Only the leader answers, and leadership moves, so every call may take several attempts
at several nodes. Writes carry a (client, seq) pair that stays the same on every retry:
the server deduplicates by it, so a retry can never apply a write twice. When a call
fails anyway, :class:`OperationError` says whether the write *certainly* did not take
effect (``definite``) or may have, which a history checker needs to tell fail from info.

Reads carry no ``client``/``seq``/``ack``: they change nothing, so there is nothing to
deduplicate, and leaving them out keeps them from consuming sequence numbers.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from raftchat import tls
from raftchat.config import ClusterConfig, ConfigError, split_hostport
from raftchat.protocol import (
    BAD_REQUEST,
    BAD_RESPONSE,
    CLOSED,
    CONNECTION_LOST,
    NOT_LEADER,
    STATUSES,
    TIMEOUT,
    UNAVAILABLE,
    UNCERTAIN,
    FrameError,
    frame,
    pack,
    read_frame,
    unpack,
)
from raftchat.statemachine import Result

READ_ONLY_OPS = frozenset({"check_account", "list_accounts", "fetch_messages", "get"})

BACKOFF_S = (0.02, 0.05)  # pause range when no leader is known, so a cluster mid-election isn't hammered


class OperationError(Exception):
    """The call got no final answer. ``definite`` is True only if it certainly had no effect."""

    def __init__(self, status: str, message: str, definite: bool) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.definite = definite


class ConnectionLost(Exception):
    """The connection broke while an attempt was waiting: its request may have been applied."""


class NotSent(Exception):
    """The connection was already gone before the request was written: it cannot have been applied."""


@dataclass
class Outcome:
    """What the attempts of one call taught us about whether it took effect.

    A write stays definite only while every attempt certainly was not accepted
    (never sent, or refused with not_leader/bad_request); one attempt that was sent
    and then went unanswered, or got "uncertain", makes the whole call indefinite.
    """

    read_only: bool
    maybe_applied: bool = False
    last_status: str = UNAVAILABLE
    last_error: str = "no attempt was made"

    attempts_made: int = 0

    def attempt_ended(self, status: str, why: str) -> None:
        """One attempt ended with ``status`` (a row of protocol.STATUSES that says whether it
        certainly had no effect)."""
        self.last_status, self.last_error = status, why
        self.attempts_made += 1
        if not STATUSES[status].definite:
            self.maybe_applied = True

    def cut_short(self, why: str) -> str:
        """``why`` of an attempt the call's own deadline cut short, with what the attempt
        before it learned (a refusal, say): the better explanation of the failure."""
        return f"{why} (the attempt before: {self.last_error})" if self.attempts_made else why

    def not_sent(self, why: str) -> None:
        self.attempt_ended(UNAVAILABLE, why)

    @property
    def definite(self) -> bool:
        return self.read_only or not self.maybe_applied

    def error(self, status: str | None = None, why: str | None = None) -> OperationError:
        return OperationError(status or self.last_status, why or self.last_error, self.definite)


@dataclass
class SeqTracker:
    """Hands out write sequence numbers and computes ``ack`` for the server.

    ``ack`` is the highest seq such that it and every lower seq are settled: answered,
    or given up on. A given-up seq is never sent again, so the server may forget it;
    counting it keeps one lost reply from pinning the server's dedup table for good.
    """

    next_seq: int = 1
    ack: int = 0
    _settled: set[int] = field(default_factory=set)

    def allocate(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def settle(self, seq: int) -> None:
        if seq <= self.ack:
            return
        self._settled.add(seq)
        while self.ack + 1 in self._settled:
            self.ack += 1
            self._settled.discard(self.ack)


class _Connection:
    """One TCP connection to a node; a reader task hands each response to its waiting attempt."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    @property
    def closed(self) -> bool:
        return self._task.done()

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` and wait for the response with the same id (caller applies the timeout)."""
        if self.closed:
            raise NotSent("connection already closed")
        rid = message["id"]
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            self._writer.write(frame(pack(message)))
            if self._writer.transport.get_write_buffer_size():
                await self._writer.drain()  # only a full socket buffer makes us wait
            return await future
        except OSError as exc:
            raise ConnectionLost(f"connection broke while sending: {exc}") from exc
        finally:
            self._pending.pop(rid, None)

    async def _read_loop(self) -> None:
        reason = "connection closed by the node"
        try:
            while True:
                data = await read_frame(self._reader)
                if data is None:
                    break
                message = unpack(data)
                if not isinstance(message, dict):
                    raise FrameError("response is not a map")
                future = self._pending.pop(message.get("id"), None)  # type: ignore[arg-type]
                if future is not None and not future.done():
                    future.set_result(message)
        except asyncio.CancelledError:
            reason = "connection closed by the client"
            raise
        except Exception as exc:  # framing, msgpack or socket errors all end this connection the same way
            reason = f"connection failed: {exc}"
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionLost(reason))
            self._pending.clear()
            self._writer.close()

    async def close(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        try:
            await self._writer.wait_closed()
        except OSError:
            pass


class Client:
    """Talks to whichever node leads; safe to use from many tasks at once on one event loop."""

    def __init__(
        self,
        nodes: ClusterConfig | dict[str, str],
        *,
        client_id: str | None = None,
        prefer: str | None = None,
        timeout: float = 5.0,
        attempt_timeout: float = 1.0,
    ) -> None:
        addrs = {n.id: n.client for n in nodes.nodes} if isinstance(nodes, ClusterConfig) else dict(nodes)
        if not addrs:
            raise ConfigError("a client needs at least one node address")
        for addr in addrs.values():
            split_hostport(addr)
        if prefer is not None and prefer not in addrs:
            raise ConfigError(f"preferred node {prefer!r} is not in the cluster (nodes: {', '.join(addrs)})")
        self._addrs = addrs
        # TLS when the cluster file asks for it: the node must show the CA's certificate for its address.
        self._ssl = tls.client(nodes.tls_files) if isinstance(nodes, ClusterConfig) else None
        self.client_id = client_id or uuid.uuid4().hex
        self.prefer = prefer
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.leader: str | None = None
        self.seqs = SeqTracker()
        self._ids = itertools.count(1)
        self._conns: dict[str, _Connection] = {}
        self._connecting: dict[str, asyncio.Lock] = {}
        self._closed = False

    @property
    def node_ids(self) -> list[str]:
        return list(self._addrs)

    async def call(self, op: str, **args: Any) -> Result:
        """Run one operation; non-ok state-machine statuses come back as a Result, not an exception."""
        return await self.request(op, args)

    async def request(self, op: str, args: dict[str, Any], *, timeout: float | None = None) -> Result:
        """Like :meth:`call`, with the arguments as a dict and an optional per-call total timeout."""
        if self._closed:
            raise RuntimeError("client is closed")
        read_only = op in READ_ONLY_OPS
        message: dict[str, Any] = {"op": {"op": op, **args}}
        seq = None
        if not read_only:
            seq = self.seqs.allocate()
            message.update(client=self.client_id, seq=seq)
        try:
            return await self._attempts(message, Outcome(read_only), timeout or self.timeout)
        finally:
            if seq is not None:
                self.seqs.settle(seq)

    async def _attempts(self, message: dict[str, Any], outcome: Outcome, total: float) -> Result:
        deadline = time.monotonic() + total
        target = self.prefer or self.leader or random.choice(self.node_ids)
        hops = 0  # redirects followed in a row; stale hints can bounce us between nodes
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise outcome.error(TIMEOUT, f"no answer within {total:g}s; last: {outcome.last_error}")
            budget = min(self.attempt_timeout, remaining)
            if self._closed:
                raise outcome.error(CLOSED, "the client was closed while the call was in progress")
            if "seq" in message:
                # Fresh on every attempt: other calls may have settled meanwhile.
                message["ack"] = self.seqs.ack
            message["id"] = next(self._ids)
            response = await self._attempt(target, message, budget, outcome)
            if response is None:
                self.leader = None if self.leader == target else self.leader
                target = self._next_after(target)
                await self._backoff()
                continue
            status = response.get("status")
            node = str(response.get("node") or target)
            if status == NOT_LEADER:
                hint = response.get("leader")
                outcome.attempt_ended(
                    NOT_LEADER, f"{node} is not the leader" + (f" (leader: {hint})" if hint else "")
                )
                if hint and self._learn(str(hint), response.get("leader_addr")) and hint != target:
                    self.leader = str(hint)
                    target = str(hint)
                    hops += 1
                    if hops >= len(self._addrs):
                        hops = 0
                        await self._backoff()
                    continue
                self.leader = None
                hops = 0
                target = self._next_after(target)
                await self._backoff()
                continue
            hops = 0
            if status == BAD_REQUEST:
                outcome.attempt_ended(BAD_REQUEST, str(response.get("error") or "invalid request"))
                # Invalid now means invalid on every attempt, so no earlier copy can have been applied.
                raise OperationError(BAD_REQUEST, outcome.last_error, True)
            if status == UNCERTAIN:
                # Retrying the same (client, seq) is safe: the new leader either has it or applies it once.
                outcome.attempt_ended(UNCERTAIN, f"{node} lost leadership before learning the outcome")
                self.leader = None
                target = self._next_after(target)
                await self._backoff()
                continue
            if not isinstance(status, str):
                outcome.attempt_ended(BAD_RESPONSE, f"{node} sent a response without a status")
                target = self._next_after(target)
                continue
            self.leader = node
            return Result(status, response.get("value"), str(response.get("error") or ""))

    async def _attempt(
        self, target: str, message: dict[str, Any], budget: float, outcome: Outcome
    ) -> dict[str, Any] | None:
        """One request to one node; None (with ``outcome`` updated) when it got no answer."""
        conn = self._conns.get(target)
        if conn is None or conn.closed:
            started = time.monotonic()
            try:
                conn = await asyncio.wait_for(self._connection(target), budget)
            except (TimeoutError, OSError) as exc:
                why = f"cannot connect to {target} at {self._addrs[target]}: {_describe(exc)}"
                outcome.not_sent(outcome.cut_short(why) if isinstance(exc, TimeoutError) else why)
                return None
            budget -= time.monotonic() - started
            if budget <= 0:
                outcome.not_sent(outcome.cut_short(f"connecting to {target} took the whole attempt"))
                return None
        try:
            # A deadline on this task rather than wait_for, which (before Python 3.12) runs the
            # request as a task of its own: one more task and loop pass for every call.
            async with asyncio.timeout(budget):
                return await conn.request(message)
        except TimeoutError:
            outcome.attempt_ended(TIMEOUT, f"{target} did not answer within {self.attempt_timeout:g}s")
        except ConnectionLost as exc:
            outcome.attempt_ended(CONNECTION_LOST, f"{target}: {exc}")
        except NotSent as exc:
            outcome.not_sent(f"{target}: {exc}")
        return None

    async def _connection(self, node: str) -> _Connection:
        conn = self._conns.get(node)
        if conn is not None and not conn.closed:
            return conn
        lock = self._connecting.setdefault(node, asyncio.Lock())
        async with lock:  # concurrent calls share one new connection instead of racing to open several
            conn = self._conns.get(node)
            if conn is not None and not conn.closed:
                return conn
            host, port = split_hostport(self._addrs[node])
            reader, writer = await asyncio.open_connection(host, port, ssl=self._ssl)
            conn = _Connection(reader, writer)
            self._conns[node] = conn
            return conn

    def _learn(self, node: str, addr: Any) -> bool:
        """True if we can reach ``node``; a hint naming a node we don't know is usable with its address."""
        if node in self._addrs:
            return True
        if isinstance(addr, str):
            try:
                split_hostport(addr)
            except ConfigError:
                return False
            self._addrs[node] = addr
            return True
        return False

    def _next_after(self, node: str) -> str:
        ids = self.node_ids
        return ids[(ids.index(node) + 1) % len(ids)] if node in ids else random.choice(ids)

    async def _backoff(self) -> None:
        await asyncio.sleep(random.uniform(*BACKOFF_S))

    async def close(self) -> None:
        """Close every connection; attempts still waiting fail as connection losses."""
        self._closed = True
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            await conn.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class SyncClient:
    """A blocking :class:`Client` for code without an event loop (the shell); it owns its loop."""

    def __init__(self, nodes: ClusterConfig | dict[str, str], **kwargs: Any) -> None:
        self._runner = asyncio.Runner()
        self._client = Client(nodes, **kwargs)

    @property
    def leader(self) -> str | None:
        return self._client.leader

    @property
    def client_id(self) -> str:
        return self._client.client_id

    @property
    def node_ids(self) -> list[str]:
        return self._client.node_ids

    def call(self, op: str, **args: Any) -> Result:
        return self._runner.run(self._client.request(op, args))

    def request(self, op: str, args: dict[str, Any], *, timeout: float | None = None) -> Result:
        return self._runner.run(self._client.request(op, args, timeout=timeout))

    def close(self) -> None:
        try:
            self._runner.run(self._client.close())
        finally:
            self._runner.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
