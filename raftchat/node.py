"""One raftchat node: the asyncio runtime around the Raft core, storage and state machine.

Everything touching the core runs on the event loop thread without awaiting, so the
core never sees interleaved calls. Inputs (peer messages, client requests, ticks) are
stepped as they arrive; a single ``_flush`` scheduled per loop iteration then handles
the core's Ready: hand its state to the writer thread (``raftchat.writer``), send what may
leave before it is durable, apply, answer clients. What must wait for the disk (votes, a
follower's acknowledgements) is sent when the writer reports the write durable. Requests
that arrive while a flush is pending are batched into the same AppendEntries, and those
that arrive while a write is in flight into the same fsync.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from raftchat import allocator, auth, limits, protocol, tls
from raftchat.accounts import KeyDeriver
from raftchat.bugs import ALL_BUGS, LEADER_READ_WITHOUT_QUORUM, STALE_READ
from raftchat.chat import ChatMachine
from raftchat.config import ClusterConfig
from raftchat.forked import ForkedBytes, Refused
from raftchat.kv import KVMachine
from raftchat.memtrace import MemoryTracer
from raftchat.protocol import BAD_REQUEST, NOT_LEADER, UNCERTAIN, FrameError
from raftchat.raft.core import Config, RaftCore, Ready, Role
from raftchat.raft.messages import HardState, Message, Snapshot
from raftchat.sessions import Replica, SnapshotMismatch, encode_command
from raftchat.statemachine import InvalidRequest, Result, StateMachine, validate
from raftchat.storage import Storage
from raftchat.transport import PeerLink, PeerServer
from raftchat.writer import Writer

log = logging.getLogger("raftchat.node")


# Failpoints: crashes at exact points of the protocol that a kill from outside cannot time.
# A harness arms them over the client port, and only on nodes started with failpoints allowed.
# crash-after-vote: exit right after a vote for another node is persisted and the grant
# sent, so the node comes back having voted but knowing nothing of the term's leader.
# stall-writes: hold every storage write back before it reaches the disk, until disarmed (a
# disk that does not answer: the node must send nothing that claims durability meanwhile).
FAILPOINTS = ("crash-after-vote", "stall-writes")
FAILPOINT_EXIT = 75  # the exit status of a node stopped by a failpoint

# Entry bytes per AppendEntries and snapshot bytes per InstallSnapshot chunk: a quarter of the
# peer frame limit leaves room for the encoding, and a window of a few chunks keeps what one
# follower's transfer puts on the link ahead of heartbeats to a few MiB at most.
PEER_MESSAGE_BYTES = protocol.MAX_FRAME // 4


def make_machine(name: str, config: ClusterConfig) -> StateMachine:
    if name == "chat":
        return ChatMachine(max_username=config.max_username, max_message=config.max_message)
    if name == "kv":
        return KVMachine()
    raise ValueError(f"unknown state machine {name!r} (choose chat or kv)")


@dataclass(slots=True)
class _Pending:
    """A client write waiting for its log entry to be applied."""

    term: int
    index: int
    key: tuple[str, int]
    future: asyncio.Future | _Reply


class _Connection:
    """One client connection: where its answers go, and how many of its requests are in flight
    (reading pauses at ``limits.MAX_IN_FLIGHT``)."""

    __slots__ = ("writer", "in_flight", "_room")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.in_flight = 0
        self._room: asyncio.Future | None = None  # set while reading waits for a request to finish

    def finished(self, _task: object = None) -> None:
        self.in_flight -= 1
        if self._room is not None and not self._room.done():
            self._room.set_result(None)

    async def room(self) -> None:
        """Return once fewer than ``limits.MAX_IN_FLIGHT`` requests are in flight."""
        while self.in_flight >= limits.MAX_IN_FLIGHT:
            self._room = asyncio.get_running_loop().create_future()
            await self._room
        self._room = None


class _Reply:
    """A request served without a task of its own: its answer is written to the connection
    the moment it is known (in the flush that applies its entry, say). It has the two methods
    of a future that :meth:`Node._resolve` uses, so pending writes and reads hold either."""

    __slots__ = ("node", "connection", "request_id", "_done")

    def __init__(self, node: Node, connection: _Connection, request_id: Any) -> None:
        self.node = node
        self.connection = connection
        self.request_id = request_id
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, answer: dict) -> None:
        self._done = True
        answer["id"] = self.request_id
        self.node._write(self.connection.writer, answer)
        self.connection.finished()


class Node:
    def __init__(
        self,
        config: ClusterConfig,
        node_id: str,
        data_dir: str | Path,
        machine: str = "chat",
        bugs: frozenset[str] = frozenset(),
        seed: int | None = None,
        failpoints: bool = False,
        trace_every: float | None = None,
    ) -> None:
        unknown = bugs - ALL_BUGS
        if unknown:
            raise ValueError(f"unknown bug switch(es): {', '.join(sorted(unknown))}")
        self.config = config
        self.id = node_id
        self.me = config.node(node_id)
        self.bugs = bugs
        self.failpoints_allowed = failpoints
        self._armed: str | None = None  # the failpoint in effect
        self._crashing = False
        if not config.secret_file:
            raise auth.SecretError(
                "the cluster file names no secret_file: peers could not prove they are members "
                "(raftchat cluster creates one; or write 32 random bytes, hex, to a file of mode 600)"
            )
        self.secret = auth.load_secret(config.secret_file)
        files = config.tls_files  # contexts made now, so bad certificates stop the start
        self._tls = (tls.peer_server(files), tls.peer_client(files), tls.client_server(files))
        self.storage = Storage.open(data_dir, config.cluster_id, node_id, bugs=bugs)
        hard_state, snapshot, entries = self.storage.load()
        # The last hard state handed to the writer (durable before anything sent after it).
        self._submitted_hard_state = self._last_hard_state = hard_state
        self._writer = Writer(self.storage, self._on_write_failure)
        self.failure: BaseException | None = None  # why the node stopped, if it failed
        self.replica = Replica(make_machine(machine, config), bugs=bugs)
        self.keys = KeyDeriver(config.cluster_id, getattr(self.replica.machine, "keyed", {}))
        self.replica.applied_index = 0
        if snapshot is not None:
            self.replica.restore(snapshot.data)
            self.replica.applied_index = snapshot.index
        self.snapshot_index = snapshot.index if snapshot else 0
        raft_config = Config(
            election_ticks=max(2, config.election_timeout_ms // config.tick_ms),
            heartbeat_ticks=max(1, config.heartbeat_ms // config.tick_ms),
            max_batch_bytes=PEER_MESSAGE_BYTES,
            snapshot_chunk=PEER_MESSAGE_BYTES,
            bugs=bugs,
        )
        self.core = RaftCore(
            node_id, config.ids, raft_config, random.Random(seed), hard_state, snapshot, list(entries)
        )
        self.links = {
            peer: PeerLink(
                config.cluster_id,
                node_id,
                peer,
                config.peer_address(node_id, peer),
                self._on_peer_gone,
                secret=self.secret,
                ssl_context=self._tls[1],
            )
            for peer in config.ids
            if peer != node_id
        }
        self._client_addrs = {n.id: n.client for n in config.nodes}  # answers name the leader's
        self._pending_by_index: dict[int, _Pending] = {}
        self._pending_by_key: dict[tuple[str, int], list[_Pending]] = {}
        self._reads: dict[int, tuple[dict, asyncio.Future | _Reply]] = {}  # ctx -> waiting ReadIndex read
        # Confirmed reads, waiting for their index to be applied.
        self._ready_reads: list[tuple[int, dict, asyncio.Future | _Reply]] = []
        self._read_ctx = 0
        self._leader_waiters: set[asyncio.Future] = set()  # requests waiting for an election's outcome
        self._flush_scheduled = False
        self._stopping = asyncio.Event()
        self._servers: list[asyncio.base_events.Server] = []
        self._last_role: tuple = ()
        self._snapshotting = False
        self._refused_at = 0  # the applied index of the last snapshot refused (Replica.checked_snapshot)
        self._background: set[asyncio.Task] = set()
        self._requests: set[asyncio.Task] = set()  # requests that wait for something first
        # Requests to serve once the flush has applied the entries committed meanwhile.
        self._after_apply: list[tuple[dict, _Reply]] = []
        # Since process start: snapshots taken here, installed from a leader, sent to followers.
        self.snapshots = {"taken": 0, "installed": 0, "sent": 0}
        # Opt-in (RAFTCHAT_TRACEMALLOC): tracemalloc reports in the data directory, see raftchat.memtrace.
        self._trace_every = trace_every
        self.tracer = MemoryTracer(data_dir) if trace_every else None

    # ----------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Serve until :meth:`stop` (or SIGTERM/SIGINT when run from the CLI)."""
        loop = asyncio.get_running_loop()
        peer_server = PeerServer(
            self.config.cluster_id, set(self.config.ids), self._on_message, me=self.id, secret=self.secret
        )
        peer_host, peer_port = self.me.peer_hostport
        client_host, client_port = self.me.client_hostport
        peer_limit = limits.ConnectionLimit("peer", total=256, per_address=128)
        client_limit = limits.ConnectionLimit("client")
        self._servers = [
            await asyncio.start_server(
                peer_limit.guard(peer_server.handle), peer_host, peer_port, ssl=self._tls[0]
            ),
            await asyncio.start_server(
                client_limit.guard(self._serve_client),
                client_host,
                client_port,
                limit=protocol.MAX_FRAME,
                ssl=self._tls[2],
            ),
        ]
        for link in self.links.values():
            link.start()
        log.info(
            "%s: serving peers on %s, clients on %s (term %d, %d entries after snapshot %d)",
            self.id,
            self.me.peer,
            self.me.client,
            self.core.term,
            self.core.last_index - self.snapshot_index,
            self.snapshot_index,
        )
        self._tick_base = loop.time()
        self._ticks_done = 0
        self._tick_handle = loop.call_at(self._tick_base + self.config.tick_ms / 1000, self._tick)
        self._schedule_flush()
        if self.tracer is not None:
            self._trace_handle = loop.call_later(self._trace_every, self._trace)
            if hasattr(signal, "SIGUSR2"):
                loop.add_signal_handler(signal.SIGUSR2, self._write_trace)
        try:
            await self._stopping.wait()
        finally:
            self._tick_handle.cancel()
            if self.tracer is not None:
                self._trace_handle.cancel()
            for server in self._servers:
                server.close()
            for link in self.links.values():
                await link.stop()
            self._fail_all_pending(UNCERTAIN, "node is shutting down")
            await self._writer.close()
            self.storage.close()
            log.info("%s: stopped", self.id)

    def stop(self) -> None:
        self._stopping.set()

    def _tick(self) -> None:
        """Ticks keep to a fixed grid, so a late callback (an fsync, a busy machine) does not
        push every later tick back and stretch timeouts by the sum of the delays. Missed ticks
        come one per loop iteration, with the I/O that waited in between (a leader must read
        its followers' answers before it judges check-quorum); past one election timeout
        behind (the process was stopped), the rest are skipped."""
        loop = asyncio.get_running_loop()
        period = self.config.tick_ms / 1000
        behind = int((loop.time() - self._tick_base) / period) - self._ticks_done
        if behind > self.core.config.election_ticks:
            self._ticks_done += behind - self.core.config.election_ticks
        self.core.tick()
        self._ticks_done += 1
        self._schedule_flush()
        self._tick_handle = loop.call_at(self._tick_base + (self._ticks_done + 1) * period, self._tick)

    def _trace(self) -> None:
        self._write_trace()
        self._trace_handle = asyncio.get_running_loop().call_later(self._trace_every, self._trace)

    def _write_trace(self) -> None:
        try:
            self.tracer.report()
        except OSError as exc:
            log.warning("%s: could not write the tracemalloc report: %s", self.id, exc)

    # ----------------------------------------------------------------- Raft plumbing

    def _on_message(self, msg: Message) -> None:
        if self._crashing:
            return  # a failpoint fired: this node takes nothing more in before it exits
        self.core.step(msg)
        self._schedule_flush()

    def _on_peer_gone(self, peer: str) -> None:
        if not self._crashing:
            self.core.peer_gone(peer)
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self.core.has_ready():
            self._handle_ready(self.core.ready())
        if self._after_apply:
            waiting, self._after_apply = self._after_apply, []
            for request, reply in waiting:
                self._serve_again(request, reply)
            while self.core.has_ready():  # their entries go out in this flush's batch
                self._handle_ready(self.core.ready())

    def _serve_again(self, request: dict, reply: _Reply) -> None:
        """A request that waited for the apply of committed entries (see _serve_now)."""
        try:
            if self._serve_now(request, reply):
                return
        except InvalidRequest as exc:
            self._resolve(reply, self._answer(Result(BAD_REQUEST, error=str(exc))))
            return
        self._spawn(request, reply.request_id, reply.connection)

    def _handle_ready(self, rd: Ready) -> None:
        if rd.hard_state is not None:
            self._last_hard_state = rd.hard_state
        latest, submitted = self._last_hard_state, self._submitted_hard_state
        # The commit index is volatile in Raft (a restarted node relearns it from the leader),
        # so a change of commit alone costs no fsync: it rides along with the next real write.
        vote_changed = (latest.term, latest.voted_for) != (submitted.term, submitted.voted_for)
        # A leader may send its entries before they are on its own disk (thesis 10.2.1): the
        # core counts the leader toward a commit only once persisted() says they are, so the
        # followers' fsyncs overlap ours. Everything else (votes, a follower's
        # acknowledgements) leaves only once the writer has made everything before it durable.
        early = not vote_changed and rd.snapshot is None and self.core.role is Role.LEADER
        if early:
            self._send(rd.messages)
        voted = latest if vote_changed and latest.voted_for not in (None, self.id) else None
        on_durable = partial(self._on_durable, rd, [] if early else rd.messages, voted)
        queued = False
        if rd.entries or rd.snapshot is not None or vote_changed:
            hard = latest if latest != submitted else None
            # A leader's loop must keep reading acknowledgements and requests while its disk
            # works (even one request alone now may be followed by a batch: written here, it
            # would hold that batch back for an fsync). Anyone else has nothing to send until
            # the write is done, so when the writer is idle it writes here and spares two
            # thread hand-offs (see Writer.save_now).
            if early or rd.snapshot is not None or not self._write_now(hard, rd.entries):
                self._writer.save(hard, rd.entries, rd.snapshot, on_durable)
                queued = True
            self._submitted_hard_state = latest
        if rd.snapshot is not None:
            self.replica.restore(rd.snapshot.data)
            self.replica.applied_index = rd.snapshot.index
            self.snapshot_index = rd.snapshot.index
            allocator.release()  # the transfer's chunks and the old state are free now
        for entry in rd.committed:
            self._apply(entry.index, entry.term, entry.data)
        for state in rd.read_states:
            read = self._reads.pop(state.ctx, None)
            if read is not None:
                self._ready_reads.append((state.index, *read))
        for ctx in rd.dropped_reads:
            read = self._reads.pop(ctx, None)
            if read is not None:
                self._resolve(
                    read[1], self._redirect(NOT_LEADER, "leadership lost before the read was confirmed")
                )
        self._serve_ready_reads()
        self.core.advance(rd, persisted=False)
        if rd.role_changed:
            self._on_role_change()
        if not queued:
            self._writer.then(on_durable)  # at once, unless writes are in flight
        self._maybe_compact()

    def _on_durable(self, rd: Ready, messages: list[Message], voted: HardState | None) -> None:
        """The writer made ``rd`` and everything before it durable: what waited may leave.
        ``voted``: the hard state of a vote for another node that ``rd`` recorded."""
        if self._crashing:
            return
        self._send(messages)
        self.core.persisted(rd)
        if rd.snapshot is not None:
            # Counted and logged once on disk: a restart from here starts from this snapshot.
            self.snapshots["installed"] += 1
            log.info(
                "%s: installed snapshot at index %d (%d bytes) from the leader",
                self.id,
                rd.snapshot.index,
                len(rd.snapshot.data),
            )
        if voted is not None and self._armed == "crash-after-vote":
            self._crash(f"voted for {voted.voted_for} in term {voted.term}")
            return
        self._schedule_flush()

    def _write_now(self, hard_state: HardState | None, entries: list) -> bool:
        """Write on the loop thread if the writer is idle; True if it was (or failed: then the
        node is stopping and nothing that waited for it may leave)."""
        try:
            return self._writer.save_now(hard_state, entries)
        except Exception as exc:
            self._on_write_failure(exc)
            return True

    def _on_write_failure(self, exc: BaseException) -> None:
        """A write that failed leaves the disk's state unknown: stop, as a crash would (the
        log says why), rather than go on and answer as if it had been written."""
        log.error("%s: a storage write failed, stopping: %s", self.id, exc)
        self.failure = exc
        self._crashing = True
        self.stop()

    def _send(self, messages: list[Message]) -> None:
        for msg in messages:
            link = self.links.get(msg.dst)
            if link is not None:
                link.send(msg)

    def _apply(self, index: int, term: int, data: bytes) -> None:
        applied = self.replica.apply_entry(index, term, data)
        pending = self._pending_by_index.pop(index, None)
        if pending is not None and pending.term != term:
            # Another leader's entry took this slot: our proposal is gone from the log.
            self._drop_pending(pending, self._redirect(UNCERTAIN, "proposal was overwritten by a new leader"))
        if applied is None:
            return
        for waiter in self._pending_by_key.pop((applied.client, applied.seq), []):
            self._pending_by_index.pop(waiter.index, None)
            self._resolve(waiter.future, self._answer(applied.result))

    def _serve_ready_reads(self) -> None:
        if not self._ready_reads:
            return
        waiting = []
        for index, op, future in self._ready_reads:
            if index <= self.replica.applied_index:
                self._resolve(future, self._answer(self._read_now(op)))
            else:
                waiting.append((index, op, future))
        self._ready_reads = waiting

    def _on_role_change(self) -> None:
        role = (self.core.role, self.core.term, self.core.leader_id)
        if role == self._last_role:
            return
        self._last_role = role
        log.info(
            "%s: term %d, %s, leader %s", self.id, self.core.term, self.core.role.value, self.core.leader_id
        )
        if self.core.role is not Role.LEADER:
            self._fail_all_pending(UNCERTAIN, "leadership lost before the write was known to commit")
        if self.core.leader_id is not None:
            for waiter in self._leader_waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _fail_all_pending(self, status: str, why: str) -> None:
        waiting, self._after_apply = self._after_apply, []
        for _request, reply in waiting:  # not proposed: certainly not done
            self._resolve(reply, self._redirect(NOT_LEADER, why))
        for pending in list(self._pending_by_index.values()):
            self._drop_pending(pending, self._redirect(status, why))
        self._pending_by_index.clear()
        for _op, future in list(self._reads.values()):
            self._resolve(future, self._redirect(NOT_LEADER, why))
        self._reads.clear()

    def _drop_pending(self, pending: _Pending, answer: dict) -> None:
        waiters = self._pending_by_key.get(pending.key, [])
        if pending in waiters:
            waiters.remove(pending)
            if not waiters:
                del self._pending_by_key[pending.key]
        self._resolve(pending.future, answer)

    def _maybe_compact(self) -> None:
        applied = self.replica.applied_index
        since = max(self.snapshot_index, self._refused_at)
        if self._snapshotting or applied - since < self.config.snapshot_every:
            return
        term = self.core.term_of(applied)
        if term is None:
            return
        self._snapshotting = True
        child = ForkedBytes(self._checked_snapshot)  # forks now: the state as of ``applied``
        task = asyncio.get_running_loop().create_task(self._snapshot(child, applied, term))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _checked_snapshot(self) -> bytes:
        """In the snapshot's child: its bytes, refused if they do not restore the state."""
        try:
            return self.replica.checked_snapshot()
        except SnapshotMismatch as exc:
            raise Refused(str(exc)) from None

    async def _snapshot(self, child: ForkedBytes, index: int, term: int) -> None:
        """Store the snapshot the child is writing, without stopping the node (see raftchat.forked)."""
        try:
            data = await child.result()
            if self._stopping.is_set() or index <= self.snapshot_index:
                return  # shutting down, or a newer snapshot arrived from the leader meanwhile
            snapshot = Snapshot(index, term, data)
            # Writing tens of MiB takes longer than an election timeout: a thread does it, and
            # the loop only records it (a new base segment holding the few entries after it).
            await asyncio.to_thread(self.storage.write_snapshot, snapshot)
            if self._stopping.is_set():
                return  # the file is removed at the next open, as one that the log does not name
            # After the writes queued before it (they hold the entries up to ``index``); it
            # drops the snapshot if one as new arrived meanwhile.
            await self._writer.call(partial(self.storage.compact, snapshot, written=True))
            if index <= self.snapshot_index:
                return
            self.core.compact(snapshot)
            self.snapshot_index = index
            self.snapshots["taken"] += 1
            allocator.release()  # the bytes read from the child and the log it covered are free now
            log.info("%s: snapshot at index %d (%d bytes)", self.id, index, len(data))
        except Refused as exc:
            # Not stored: the log keeps the entries, and the node's log says why (as an
            # internal error, which a test harness treats as one).
            log.error("%s: %s; snapshot not taken", self.id, exc)
            self._refused_at = index  # tried again only after another snapshot_every entries
        except Exception:
            log.exception("%s: snapshot at index %d failed; will try again later", self.id, index)
        finally:
            self._snapshotting = False

    def _crash(self, why: str) -> None:
        """Exit as abruptly as kill -9, but only once the messages just queued are on the wire."""
        self._crashing = True
        log.warning("%s: failpoint %s: %s; exiting", self.id, self._armed, why)

        async def exit_when_sent() -> None:
            for _ in range(100):
                if not any(link.queue for link in self.links.values()):
                    break
                await asyncio.sleep(0)
            await asyncio.sleep(0)  # let the link that took the last batch write it
            os._exit(FAILPOINT_EXIT)

        task = asyncio.get_running_loop().create_task(exit_when_sent())
        self._background.add(task)

    def _arm(self, name: Any) -> dict:
        if not self.failpoints_allowed:
            raise InvalidRequest("failpoints are not allowed on this node (start it with --failpoints)")
        if name is not None and name not in FAILPOINTS:
            raise InvalidRequest(f"unknown failpoint {name!r} (known: {', '.join(FAILPOINTS)})")
        self._armed = name
        if name == "stall-writes":
            self._writer.gate.clear()
        else:
            self._writer.gate.set()
        log.info("%s: failpoint %s", self.id, f"{name} armed" if name else "disarmed")
        return {"armed": name}

    # ----------------------------------------------------------------- clients

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(writer)
        try:
            while True:
                try:
                    payload = await protocol.read_frame(reader)
                except FrameError as exc:
                    # The stream cannot be resynchronised after a bad length: answer and hang up.
                    self._write(writer, {"id": None, "status": BAD_REQUEST, "error": str(exc)})
                    break
                if payload is None:
                    break
                self._on_request(payload, connection)
                if connection.in_flight >= limits.MAX_IN_FLIGHT:  # stop reading until one finishes
                    await connection.room()
        except (OSError, ConnectionError, asyncio.CancelledError):
            pass  # a client went away, or the node is shutting down
        finally:
            writer.close()

    def _on_request(self, payload: bytes, connection: _Connection) -> None:
        """Serve one request frame. The usual one (the leader, a password whose key is known, a
        write the applied state authorizes, or a read) starts at once and is answered from the
        flush that settles it; anything that must wait first (a key derivation, an election, a
        ReadIndex round to authorize) runs as a task of its own."""
        connection.in_flight += 1
        request_id = None
        try:
            request = _decode_request(payload)
            request_id = request.get("id")
            if self._serve_now(request, _Reply(self, connection, request_id)):
                return
        except InvalidRequest as exc:
            _Reply(self, connection, request_id).set_result(self._answer(Result(BAD_REQUEST, error=str(exc))))
            return
        self._spawn(request, request_id, connection)

    def _spawn(self, request: dict, request_id: Any, connection: _Connection) -> None:
        """Serve a request that must wait for something first as a task of its own."""
        task = asyncio.create_task(self._handle_request(request, request_id, connection))
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)
        task.add_done_callback(connection.finished)

    def _serve_now(self, request: dict, reply: _Reply) -> bool:
        """Start ``request`` without awaiting anything, if it needs no wait; False if it does.
        Raises InvalidRequest as :meth:`_execute` would."""
        if "meta" in request or self.core.role is not Role.LEADER:
            return False
        op = self.keys.replace_now(request.get("op"))
        if op is None:
            return False  # the password's key must be derived first
        machine = self.replica.machine
        op = validate(machine, op)
        if machine.ops[op["op"]].read_only:
            self._start_read(op, reply)
            return True
        client, seq, ack = _write_args(request)
        if op["op"] in getattr(machine, "acting", ()):
            if self.core.commit_index > self.replica.applied_index:
                # An acknowledgement read in this loop iteration committed entries that the
                # flush has yet to apply: try again right after it applies them, rather than
                # authorize at a ReadIndex point (a heartbeat round to every follower).
                self._after_apply.append((request, reply))
                self._schedule_flush()
                return True
            if not (self._applied_is_current() and machine.authorize(op).status == "ok"):
                return False  # a refusal is only given at a confirmed read point (see _authorize)
        self._start_write(client, seq, ack, op, reply)
        return True

    async def _handle_request(self, request: dict, request_id: Any, connection: _Connection) -> None:
        try:
            if request.get("meta") == "status":
                answer = self._answer(Result("ok", self.status(request)))
            elif request.get("meta") == "failpoint":
                answer = self._answer(Result("ok", self._arm(request.get("name"))))
            else:
                answer = await self._execute(request)
        except InvalidRequest as exc:
            answer = self._answer(Result(BAD_REQUEST, error=str(exc)))
        answer["id"] = request_id
        self._write(connection.writer, answer)

    def _write(self, writer: asyncio.StreamWriter, answer: dict) -> None:
        if writer.is_closing():
            return
        if limits.over_unsent(writer):
            log.warning(
                "%s: closing the connection of %s: it left %d bytes of answers unread",
                self.id,
                writer.get_extra_info("peername"),
                writer.transport.get_write_buffer_size(),
            )
            writer.close()
            return
        writer.write(protocol.frame(protocol.pack(answer)))

    async def _execute(self, request: dict) -> dict:
        op = validate(self.replica.machine, await self.keys.replace_password(request.get("op")))
        await self._leader_known()
        future = asyncio.get_running_loop().create_future()
        if self.replica.machine.ops[op["op"]].read_only:
            self._start_read(op, future)
        else:
            client, seq, ack = _write_args(request)
            refused = await self._authorize(client, seq, op)
            if refused is not None:
                return refused
            self._start_write(client, seq, ack, op, future)
        return await future

    async def _leader_known(self) -> None:
        """While an election is under way no node can take a request. Rather than send the
        client off to poll the others, wait until this node learns the outcome (for at most
        the minimum election timeout, so a node cut off from a majority still answers soon):
        then its answer either serves the request (it won) or names the new leader."""
        if self.core.role is Role.LEADER or self.core.leader_id is not None:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._leader_waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, self.config.election_timeout_ms / 1000)
        except TimeoutError:
            pass  # answered as before: not the leader, and no leader known
        finally:
            self._leader_waiters.discard(waiter)

    async def _authorize(self, client: str, seq: int, op: dict) -> dict | None:
        """A refusal (bad password, not the leader) of a write that acts for an account, decided
        at a confirmed read point, so a wrong password never reaches the log; None to go on.
        A retry of a request already in the log (or in flight here) is never refused: its
        original may have happened, and the session answers it."""
        authorize = getattr(self.replica.machine, "authorize", None)
        if authorize is None or op["op"] not in getattr(self.replica.machine, "acting", ()):
            return None
        if self._applied_is_current() and authorize(op).status == "ok":
            # The key is right in a state that is at the commit point of this leader's term,
            # so a ReadIndex round would say the same (unless this leader was deposed without
            # knowing it: then the entry is judged when it applies, as after any race). Only a
            # refusal needs a confirmed read point: it is an answer nothing else checks.
            return None
        future = asyncio.get_running_loop().create_future()
        self._start_read(lambda: authorize(op), future)
        answer = await future
        if answer["status"] == "ok" or (client, seq) in self._pending_by_key:
            return None
        if self.replica.answered(client, seq):
            return None
        return answer

    def _applied_is_current(self) -> bool:
        """Whether the applied state holds everything committed so far, as this node knows it:
        it leads, has committed an entry of its own term (so nothing from an earlier term is
        committed beyond its commit index) and has applied up to that index."""
        core = self.core
        return (
            core.role is Role.LEADER
            and core.term_of(core.commit_index) == core.term
            and self.replica.applied_index >= core.commit_index
        )

    def _read_now(self, op: dict | Any) -> Result:
        """A read-only op's answer from the applied state; ``op`` may be a callable that reads."""
        return op() if callable(op) else self.replica.read(op)

    def _start_read(self, op: dict | Any, future: asyncio.Future | _Reply) -> None:
        is_leader = self.core.role is Role.LEADER
        if (STALE_READ in self.bugs and not is_leader) or (
            LEADER_READ_WITHOUT_QUORUM in self.bugs and is_leader
        ):
            self._resolve(future, self._answer(self._read_now(op)))
            return
        self._read_ctx += 1
        if not self.core.read_index(self._read_ctx):
            self._resolve(future, self._redirect(NOT_LEADER, "this node is not the leader"))
            return
        self._reads[self._read_ctx] = (op, future)
        self._schedule_flush()

    def _start_write(
        self, client: str, seq: int, ack: int, op: dict, future: asyncio.Future | _Reply
    ) -> None:
        index = self.core.propose(encode_command(client, seq, ack, op))
        if index is None:
            self._resolve(future, self._redirect(NOT_LEADER, "this node is not the leader"))
            return
        pending = _Pending(self.core.term, index, (client, seq), future)
        self._pending_by_index[index] = pending
        self._pending_by_key.setdefault((client, seq), []).append(pending)
        self._schedule_flush()

    def _answer(self, result: Result) -> dict:
        answer = result.to_wire()
        answer["node"] = self.id
        answer["leader"] = self.core.leader_id
        answer["leader_addr"] = self._leader_addr()
        return answer

    def _redirect(self, status: str, why: str) -> dict:
        return self._answer(Result(status, error=why))

    def _leader_addr(self) -> str | None:
        return self._client_addrs.get(self.core.leader_id)

    @staticmethod
    def _resolve(future: asyncio.Future | _Reply, answer: dict) -> None:
        if not future.done():
            future.set_result(answer)

    def status(self, request: dict | None = None) -> dict[str, Any]:
        """Raft state, snapshot counters and the replica's chain; with ``"digest": true`` also a
        digest of the state (costs a pass over it); ``"since": N`` limits the checkpoints sent."""
        request = request or {}
        since = request.get("since")
        status = {
            "node": self.id,
            "role": self.core.role.value,
            "term": self.core.term,
            "leader": self.core.leader_id,
            "commit": self.core.commit_index,
            "applied": self.replica.applied_index,
            "last_index": self.core.last_index,
            "snapshot_index": self.snapshot_index,
            "snapshots": {**self.snapshots, "sent": self.core.snapshots_sent},
            "snapshot_receiving": self.core.snapshot_receiving,  # bytes of a transfer under way
            "chain": self.replica.chain_status(since if isinstance(since, int) else -1),
            "pid": os.getpid(),
        }
        if self.tracer is not None:
            status["traced"] = self.tracer.traced()  # bytes of live Python allocations
            status["malloc"] = allocator.usage()
        if request.get("digest") is True:
            status["digest"] = self.replica.digest()
        return status


def _decode_request(payload: bytes) -> dict:
    try:
        request = protocol.unpack(payload)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise InvalidRequest(f"frame is not valid msgpack: {exc}") from exc
    if not isinstance(request, dict):
        raise InvalidRequest(f"request must be a map, got {type(request).__name__}")
    return request


def _write_args(request: dict) -> tuple[str, int, int]:
    """A write's session fields (``client``, ``seq``, ``ack``), checked."""
    client, seq, ack = request.get("client"), request.get("seq"), request.get("ack", 0)
    if not isinstance(client, str) or not client:
        raise InvalidRequest("a write needs 'client', a non-empty string")
    for name, value, low in (("seq", seq, 1), ("ack", ack, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InvalidRequest(f"a write needs {name!r}, an integer of at least {low}")
    return client, seq, ack


def serve(node: Node) -> None:
    """Run a node until SIGTERM or SIGINT, then shut it down cleanly."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, node.stop)
        await node.run()

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main())


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (measured faster on the node's hot path, see
    bench/README.md), else asyncio's own; RAFTCHAT_EVENT_LOOP=asyncio forces the latter."""
    if os.environ.get("RAFTCHAT_EVENT_LOOP", "uvloop") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
