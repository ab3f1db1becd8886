"""Client sessions (Raft thesis, section 6.3): exactly-once execution of retried commands.

A client numbers its requests ``seq = 1, 2, ...`` and retries a request with the same
number until it gets an answer. Because a retry may reach the log after the original was
already applied, every node remembers the response to each ``(client, seq)`` and hands
it back instead of applying the operation twice. Every piece of bookkeeping here depends
only on the committed commands, so all nodes agree on it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgpack

from raftchat.bugs import ASSERT_AFTER_RESTORE, NO_DEDUP, SKIP_AFTER_RESTORE, SNAPSHOT_DROPS_LAST_KEY
from raftchat.statemachine import InvalidRequest, Result, StateMachine, validate

_FORMAT = 1
CHECKPOINT_EVERY = 64  # indices between two checkpoints of the applied-entry chain
CHECKPOINTS_KEPT = 64  # checkpoints a node remembers: about 4,000 entries back
GENESIS = bytes(32)  # the chain before index 1


class Command(NamedTuple):
    """One entry of the replicated log. ``ack``: the client holds every response up to it.
    (Named tuples, this and :class:`Applied`: every node builds one of each per entry.)"""

    client: str
    seq: int
    ack: int
    op: dict[str, Any]


class Applied(NamedTuple):
    """The outcome of one command; ``duplicate`` marks a response replayed from the session."""

    client: str
    seq: int
    result: Result
    duplicate: bool = False


class CommandError(InvalidRequest):
    """A malformed command. An InvalidRequest, so a server that checks a client's request
    with :func:`encode_command` answers it as a bad request."""


def encode_command(client: str, seq: int, ack: int, op: dict[str, Any]) -> bytes:
    """Serialise a command for the log; checks it first so a bad client fails at home."""
    _check_command(client, seq, ack, op)
    return msgpack.packb([client, seq, ack, op], use_bin_type=True)


def decode_command(data: bytes) -> Command:
    """Parse log bytes into a :class:`Command`; raises :class:`CommandError` if malformed."""
    try:
        values = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise CommandError(f"command is not valid msgpack: {exc!r}") from exc
    if not isinstance(values, list) or len(values) != 4:
        raise CommandError("command must be a 4-element array [client, seq, ack, op]")
    client, seq, ack, op = values
    _check_command(client, seq, ack, op)
    return Command(client, seq, ack, op)


def _check_command(client: Any, seq: Any, ack: Any, op: Any) -> None:
    # The usual case in one test (a bool is an int subclass: never type int).
    if not (type(seq) is int and type(ack) is int and seq >= 1 and ack >= 0):
        for name, value, low in (("seq", seq, 1), ("ack", ack, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise CommandError(f"{name} must be an integer >= {low}, got {value!r}")
    if not isinstance(client, str) or not client:
        raise CommandError(f"client id must be a non-empty string, got {client!r}")
    if not isinstance(op, dict):
        raise CommandError(f"op must be a map, got {type(op).__name__}")


@dataclass(slots=True)
class _Session:
    """What one client's retries need. Every seq <= ``forgotten`` has been answered and
    its response dropped (acknowledged by the client, or pushed out by newer ones)."""

    forgotten: int = 0
    responses: dict[int, Result] = field(default_factory=dict)


# Snapshots up to this size are restored once more in the child that writes them and compared
# with the state they were taken from (Replica.checked_snapshot): a few ms for the states of test
# runs; beyond it the round trip would cost the child seconds of CPU beside the node.
CHECKED_SNAPSHOT_BYTES = 8 << 20


class SnapshotMismatch(Exception):
    """A snapshot does not restore the state it was taken from."""


class Replica:
    """A state machine wrapped with client sessions; what the runtime applies entries to.

    Memory is bounded two ways, both decided by apply order alone so every node agrees:

    * at most ``max_sessions`` clients are remembered; a new client evicts the one whose
      last command is the oldest. Limitation: an evicted client is a stranger again, so a
      retry of a request applied before the eviction is applied a second time. With the
      default limit that needs 10,000 other clients to be active while it waits to retry.
    * at most ``max_responses`` unacknowledged responses per client; past that the lowest
      seq is forgotten, and a retry of it gets ``stale_request`` instead of a replay.

    Exceptions raised by the machine itself propagate: they mean a bug, and carrying on
    past one could let nodes diverge.
    """

    def __init__(
        self,
        machine: StateMachine,
        bugs: frozenset[str] = frozenset(),
        max_sessions: int = 10_000,
        max_responses: int = 1024,
    ) -> None:
        self.machine = machine
        self.bugs = bugs
        self.max_sessions = max_sessions
        self.max_responses = max_responses
        self.applied_index = 0  # set by the runtime after each entry; saved in snapshots
        self._sessions: OrderedDict[str, _Session] = OrderedDict()  # least recently used first
        # The applied-entry hash chain: h_i = H(h_{i-1}, i, term, entry, result). Equal heads at
        # the same index mean the same entries were applied with the same outcomes; a snapshot
        # carries the head, so a node that installs one continues the chain. None: unknown
        # (restored from a snapshot written before chains existed).
        self.chain: bytes | None = GENESIS
        self.checkpoints: deque[tuple[int, bytes]] = deque(maxlen=CHECKPOINTS_KEPT)
        self._restored = False  # for the planted bugs that strike right after a restore
        self._changes = 0  # bumped by each apply that changes state, and each restore: the digest's key
        self._digest: tuple[int, str] | None = None

    def apply_entry(self, index: int, term: int, data: bytes) -> Applied | None:
        """Apply committed entry ``index`` and extend the hash chain with it and its outcome."""
        bug = self._restored and bool(data) and self.bugs & {SKIP_AFTER_RESTORE, ASSERT_AFTER_RESTORE}
        if bug:
            self._restored = False
            if ASSERT_AFTER_RESTORE in self.bugs:
                raise AssertionError(f"session invariant violated at index {index} after a restore")
            applied = None  # skip-after-restore: the entry is lost on this replica
        else:
            applied = self.apply(data)
        if self.chain is not None:
            result = None if applied is None else [applied.result.status, applied.result.value]
            record = msgpack.packb([index, term, data, result], use_bin_type=True)
            self.chain = hashlib.sha256(self.chain + record).digest()
            if index % CHECKPOINT_EVERY == 0:
                self.checkpoints.append((index, self.chain))
        self.applied_index = index
        return applied

    def digest(self) -> str:
        """A hash of the machine state and the sessions, equal on replicas in the same state.

        Both parts are canonical bytes (sorted keys; sessions in their eviction order, which
        apply order alone decides), so dict iteration order never enters it. It costs a pass over
        the whole state, so it is kept until the next apply or restore: the recovery wait asks a
        quiet node again and again, and a node with a large state must answer each time well
        within a poll.
        """
        if self._digest is None or self._digest[0] != self._changes:
            state = msgpack.packb([self.machine.snapshot(), self._session_rows()])
            self._digest = (self._changes, hashlib.sha256(state).hexdigest())
        return self._digest[1]

    def chain_status(self, since: int = -1) -> dict[str, Any]:
        """The chain head at the applied index and the checkpoints after ``since``."""
        return {
            "head": None if self.chain is None else self.chain.hex(),
            "checkpoints": [[i, h.hex()] for i, h in self.checkpoints if i > since],
        }

    def apply(self, data: bytes) -> Applied | None:
        """Apply one committed log entry; ``None`` for a leader's no-op entry."""
        if not data:
            return None  # a no-op changes no state: the kept digest stays right
        self._changes += 1
        try:
            cmd = decode_command(data)
        except CommandError as exc:
            return Applied("", 0, Result("bad_command", error=str(exc)))
        session = self._session(cmd.client)
        if cmd.ack > session.forgotten:
            session.forgotten = cmd.ack
            session.responses = {s: r for s, r in session.responses.items() if s > cmd.ack}
        if cmd.seq <= session.forgotten:
            error = (
                f"request {cmd.seq} of client {cmd.client!r} was answered earlier and its response "
                "has since been forgotten; it was not applied again"
            )
            return Applied(cmd.client, cmd.seq, Result("stale_request", error=error))
        if cmd.seq in session.responses and NO_DEDUP not in self.bugs:
            return Applied(cmd.client, cmd.seq, session.responses[cmd.seq], duplicate=True)
        result = self._apply_op(cmd.op)
        session.responses[cmd.seq] = result
        if len(session.responses) > self.max_responses:
            oldest = min(session.responses)
            del session.responses[oldest]
            session.forgotten = oldest
        return Applied(cmd.client, cmd.seq, result)

    def answered(self, client: str, seq: int) -> bool:
        """Whether request ``seq`` of ``client`` was applied (its response kept or forgotten)."""
        session = self._sessions.get(client)
        return session is not None and (seq <= session.forgotten or seq in session.responses)

    def read(self, op: dict[str, Any]) -> Result:
        """Answer a read-only op from the current state (ReadIndex); raises InvalidRequest."""
        clean = validate(self.machine, op)
        if not self.machine.ops[clean["op"]].read_only:
            raise InvalidRequest(f"{clean['op']} changes state, so it cannot be served as a read")
        return self.machine.apply(clean)

    def _apply_op(self, op: dict[str, Any]) -> Result:
        try:
            clean = validate(self.machine, op)
        except InvalidRequest as exc:
            return Result("bad_command", error=str(exc))
        return self.machine.apply(clean)

    def _session(self, client: str) -> _Session:
        session = self._sessions.get(client)
        if session is None:
            session = self._sessions[client] = _Session()
            self._evict()
        else:
            self._sessions.move_to_end(client)
        return session

    def _evict(self) -> None:
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)

    def snapshot(self) -> bytes:
        """Machine state, sessions (in eviction order) and applied index, as stable bytes."""
        machine = self.machine.snapshot()
        if SNAPSHOT_DROPS_LAST_KEY in self.bugs:
            machine = _drop_last_key(machine)
        state = {
            "format": _FORMAT,
            "machine_name": self.machine.name,
            "applied_index": self.applied_index,
            "machine": machine,
            "sessions": self._session_rows(),
            "chain": self.chain,
        }
        return msgpack.packb(state, use_bin_type=True)

    def checked_snapshot(self, limit: int = CHECKED_SNAPSHOT_BYTES) -> bytes:
        """:meth:`snapshot`, restored again and compared with the state it was taken from
        (digest, applied index, chain), when it is at most ``limit`` bytes: a snapshot that
        does not give back its state would lose it on every node that restarts or installs
        it, silently. Restoring replaces this replica's state, so call it only where that
        state is thrown away after (a forked child); raises :class:`SnapshotMismatch`."""
        data = self.snapshot()
        if len(data) > limit:
            return data
        before = (self.digest(), self.applied_index, self.chain)
        self.restore(data)
        after = (self.digest(), self.applied_index, self.chain)
        if after != before:
            parts = [
                name
                for name, a, b in zip(("state digest", "applied index", "chain"), before, after, strict=True)
                if a != b
            ]
            raise SnapshotMismatch(
                f"invariant violated: the snapshot at index {before[1]} does not restore the state "
                f"it was taken from ({', '.join(parts)} differ; digest {before[0][:12]} before, "
                f"{after[0][:12]} after)"
            )
        return data

    def _session_rows(self) -> list[list[Any]]:
        return [
            [client, s.forgotten, [[seq, *_result_fields(s.responses[seq])] for seq in sorted(s.responses)]]
            for client, s in self._sessions.items()
        ]

    def restore(self, data: bytes) -> None:
        """Replace machine state, sessions and applied index with a snapshot's."""
        self._changes += 1
        try:
            state = msgpack.unpackb(data, raw=False)
            if state["format"] != _FORMAT:
                raise ValueError(f"unsupported snapshot format {state['format']!r}")
            if state["machine_name"] != self.machine.name:
                raise ValueError(
                    f"snapshot is of a {state['machine_name']!r} machine, not {self.machine.name!r}"
                )
            sessions: OrderedDict[str, _Session] = OrderedDict()
            for client, forgotten, responses in state["sessions"]:
                answers = {int(seq): Result(status, value, error) for seq, status, value, error in responses}
                sessions[str(client)] = _Session(int(forgotten), answers)
            applied_index = int(state["applied_index"])
            machine_state = bytes(state["machine"])
            chain = state.get("chain")
            chain = None if chain is None else bytes(chain)
        except Exception as exc:
            raise ValueError(f"corrupt replica snapshot: {exc!r}") from exc
        self.machine.restore(machine_state)
        self._sessions = sessions
        self.applied_index = applied_index
        self.chain = chain
        self.checkpoints.clear()
        if chain is not None:
            self.checkpoints.append((applied_index, chain))
        self._restored = True
        self._evict()


def _drop_last_key(data: bytes) -> bytes:
    """Planted bug: a machine snapshot loses its last key (the newest chat user, the last kv key)."""
    state = msgpack.unpackb(data, raw=False)
    for value in state.values():
        if isinstance(value, dict) and value:
            value.pop(next(reversed(value)))
    return msgpack.packb(state, use_bin_type=True)


def _result_fields(result: Result) -> list[Any]:
    return [result.status, result.value, result.error]
