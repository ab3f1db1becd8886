"""The Raft algorithm as a deterministic state machine with no I/O.

The runtime feeds the core ticks, messages, proposals and read requests and drains what it
must do as a :class:`Ready`. The core never touches a clock, a socket or a disk, and its only
randomness is the injected ``random.Random``, so a simulation can replay any schedule exactly.

The design follows the Raft paper (figure 2), Ongaro's thesis (pre-vote 9.6, check-quorum
and leader stickiness 6.2, ReadIndex 6.4) and the shape of etcd's raft library: the leader
tracks each follower in probe, replicate or snapshot state, and durability is the
runtime's job, announced back through :meth:`RaftCore.advance`.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from operator import attrgetter

from raftchat.bugs import COMMIT_PREVIOUS_TERM, LEADER_READ_WITHOUT_QUORUM
from raftchat.raft.messages import (
    AppendEntries,
    AppendResponse,
    Entry,
    HardState,
    InstallSnapshot,
    Message,
    RequestVote,
    Snapshot,
    SnapshotResponse,
    VoteResponse,
)


class Role(Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True)
class Config:
    """Timing is in ticks; the runtime decides how long a tick is (10 ms by default)."""

    election_ticks: int = 15  # timeout is drawn uniformly from [election_ticks, 2 * election_ticks)
    heartbeat_ticks: int = 5
    max_batch: int = 512  # most entries in one AppendEntries
    max_inflight: int = 64  # most unacknowledged AppendEntries per follower while replicating
    max_batch_bytes: int = 256 << 10  # most entry bytes in one AppendEntries (one entry always goes)
    snapshot_chunk: int = 256 << 10  # snapshot bytes in one InstallSnapshot
    snapshot_inflight: int = 4  # most unacknowledged InstallSnapshot chunks per follower
    pre_vote: bool = True
    check_quorum: bool = True
    bugs: frozenset[str] = frozenset()  # deliberate faults for the harness self-test; empty in production


@dataclass(frozen=True)
class ReadState:
    """A ReadIndex request ``ctx`` is safe to serve once the state machine has applied ``index``."""

    ctx: int
    index: int


@dataclass
class Ready:
    """What the runtime must do, in this order: persist ``snapshot``, ``entries`` and
    ``hard_state`` (fsync); then send ``messages``; then apply ``committed``; then call
    :meth:`RaftCore.advance` with this object.

    A runtime that writes in the background may instead apply ``committed`` and call
    ``advance(rd, persisted=False)`` at once, and send ``messages`` and call
    :meth:`RaftCore.persisted` once the write (and every earlier one) is durable. Committed
    entries are on a majority's disks already, so applying them does not wait for ours; a
    leader may send its AppendEntries early too, since it counts itself only once persisted."""

    hard_state: HardState | None = None  # None when unchanged since the last Ready
    snapshot: Snapshot | None = None  # received from the leader: persist it, restore the state machine
    # May overwrite: delete stored entries >= entries[0].index first.
    entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    committed: list[Entry] = field(default_factory=list)  # to apply, in index order
    read_states: list[ReadState] = field(default_factory=list)
    dropped_reads: list[int] = field(default_factory=list)  # ReadIndex ctxs that will never be confirmed
    role_changed: bool = False  # role, term or known leader changed: worth a log line

    def empty(self) -> bool:
        return not (
            self.hard_state
            or self.snapshot
            or self.entries
            or self.messages
            or self.committed
            or self.read_states
            or self.dropped_reads
            or self.role_changed
        )


class _State(Enum):
    """How the leader talks to one follower (etcd's progress states)."""

    PROBE = "probe"  # next is a guess: one AppendEntries at a time until one succeeds
    REPLICATE = "replicate"  # next is known: stream up to max_inflight batches
    SNAPSHOT = "snapshot"  # the follower needs entries we compacted: a snapshot transfer is under way


@dataclass(slots=True)
class _Progress:
    """The leader's view of one follower."""

    next: int
    match: int = 0
    state: _State = _State.PROBE
    probe_sent: bool = False  # PROBE: a probe is out, wait for its answer (or the next heartbeat)
    inflight: deque[int] = field(default_factory=deque)  # REPLICATE: last index of each batch in flight
    snapshot: Snapshot | None = None  # SNAPSHOT: the one being sent (kept if we compact again meanwhile)
    snapshot_index: int = 0  # SNAPSHOT: its index
    snap_sent: int = 0  # SNAPSHOT: bytes sent so far (the offset of the next chunk)
    snap_acked: int = 0  # SNAPSHOT: bytes the follower confirmed holding
    snap_done: bool = False  # SNAPSHOT: the last chunk is out
    snap_rewound: int = -1  # SNAPSHOT: the offset last resent from, so one hole costs one resend
    snapshot_wait: int = 0  # SNAPSHOT: ticks without progress, to resume after lost chunks
    commit_sent: int = 0  # highest commit this follower may have learnt from us
    active: bool = False  # heard from it since the last check-quorum round
    read_ack: int = 0  # highest ReadIndex ctx it confirmed in this term

    def probe(self, next_index: int) -> None:
        self.state = _State.PROBE
        self.next = max(next_index, self.match + 1)
        self.probe_sent = False
        self.inflight.clear()
        self.snapshot = None

    def replicate(self) -> None:
        self.state = _State.REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.inflight.clear()
        self.snapshot = None

    def rewind_snapshot(self, offset: int) -> None:
        """Send the snapshot again from ``offset`` (what the follower confirmed holding)."""
        self.snap_sent = self.snap_acked = offset
        self.snap_done = False
        self.snapshot_wait = 0


@dataclass(slots=True)
class _Incoming:
    """A follower's partly received snapshot: one transfer, from the leader of ``term``."""

    term: int
    snap_index: int
    snap_term: int
    data: bytearray


@dataclass(slots=True)
class _PendingRead:
    ctx: int
    index: int | None  # None until the leader has committed an entry of its term


_term = attrgetter("term")
_ENTRY_OVERHEAD = 24  # bytes an entry's index, term and framing take in an encoded AppendEntries


class RaftCore:
    """One Raft peer. Single-threaded; see :class:`Ready` for the runtime's half of the deal.

    Between :meth:`ready` and :meth:`advance` the runtime may keep calling ``step``, ``tick``
    and friends, but must advance a Ready before asking for the next one.
    """

    def __init__(
        self,
        node_id: str,
        peers: list[str],
        config: Config,
        rng: random.Random,
        hard_state: HardState = HardState(),  # noqa: B008 - frozen dataclass, safe as a default
        snapshot: Snapshot | None = None,
        entries: list[Entry] = (),  # type: ignore[assignment]
    ) -> None:
        peers = list(dict.fromkeys(peers))
        if node_id not in peers:
            raise ValueError(f"peers must include this node ({node_id!r}); got {peers}")
        for name in (
            "election_ticks",
            "heartbeat_ticks",
            "max_batch",
            "max_inflight",
            "max_batch_bytes",
            "snapshot_chunk",
            "snapshot_inflight",
        ):
            if getattr(config, name) < 1:
                raise ValueError(f"Config.{name} must be at least 1")
        self.id = node_id
        self.config = config
        self._rng = rng
        self._others = [p for p in peers if p != node_id]
        self._members = frozenset(peers)
        self._quorum = len(peers) // 2 + 1

        # Durable state, as restored.
        self.term = hard_state.term
        self.voted_for = hard_state.voted_for
        self._snapshot = snapshot
        self._snap_index = snapshot.index if snapshot else 0
        self._snap_term = snapshot.term if snapshot else 0
        self._log: list[Entry] = [e for e in entries if e.index > self._snap_index]
        for offset, e in enumerate(self._log):
            if e.index != self._snap_index + 1 + offset:
                raise ValueError(f"stored entries must follow the snapshot without gaps; found {e.index}")
        # The commit index is volatile in Raft, so clamping a stored one that outruns the log
        # (a torn write) is safe: the leader will tell us again.
        self.commit_index = min(max(hard_state.commit, self._snap_index), self.last_index)

        # What the runtime has been handed and has made durable.
        self._applied = self._snap_index  # last index handed out in Ready.committed (or snapshot)
        self._persisted = self.last_index  # entries up to here are on disk
        self._unstable_from = self.last_index + 1  # first entry not yet handed out in Ready.entries
        self._pending_snapshot: Snapshot | None = None
        self._incoming: _Incoming | None = None  # follower: the snapshot transfer under way
        self._prev_hard = hard_state
        self._outstanding: Ready | None = None

        # Volatile state.
        self.role = Role.FOLLOWER
        self.leader_id: str | None = None
        self._prev_soft = (self.role, self.term, self.leader_id)
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._timeout = self._random_timeout()
        self._votes: dict[str, bool] = {}
        # Follower: up-to-date pre-votes refused only because our lease was still running;
        # granted when it runs out without word from the leader (see _defer_pre_vote).
        self._deferred_votes: dict[str, RequestVote] = {}
        # The highest term of a pre-vote we granted and restarted our timer for: we wait for
        # an asker once per term, never again, so an asker that cannot win (it reaches too few
        # nodes) does not hold back, ask after ask, a node that could.
        self._waited_for_term = 0
        self._progress: dict[str, _Progress] = {}
        self._bcast_pending = False  # leader: new entries or commit to push out at the next ready()
        self._read_bcast = 0  # leader: a ReadIndex heartbeat round to send at the next ready()
        self._reads: deque[_PendingRead] = deque()
        self._outbox: list[Message] = []
        self._read_states: list[ReadState] = []
        self._dropped_reads: list[int] = []
        self.snapshots_sent = 0  # transfers a follower confirmed as installed, for the node's status

    # ------------------------------------------------------------------ log access

    @property
    def last_index(self) -> int:
        return self._snap_index + len(self._log)

    @property
    def last_term(self) -> int:
        return self._log[-1].term if self._log else self._snap_term

    @property
    def snapshot_receiving(self) -> int:
        """Bytes of the snapshot transfer under way that this follower holds (0: none)."""
        return len(self._incoming.data) if self._incoming else 0

    def term_of(self, index: int) -> int | None:
        """Term of the entry at ``index``; None if compacted away or beyond the log."""
        offset = index - self._snap_index
        if offset == 0:
            return self._snap_term
        if 0 < offset <= len(self._log):
            return self._log[offset - 1].term
        return None

    def entries_from(self, index: int) -> list[Entry]:
        """The entries from ``index`` to the end that the log still holds (not the compacted ones)."""
        return self._log[max(index - self._snap_index - 1, 0) :]

    def _slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries lo..hi inclusive; lo must be after the snapshot."""
        return self._log[lo - self._snap_index - 1 : hi - self._snap_index]

    def _truncate_from(self, index: int) -> None:
        """Drop a conflicting suffix. Never a committed entry: that would break Raft's core promise."""
        if index <= self.commit_index:
            raise AssertionError(f"{self.id}: refusing to truncate committed entry {index}")
        del self._log[index - self._snap_index - 1 :]
        self._unstable_from = min(self._unstable_from, index)
        self._persisted = min(self._persisted, index - 1)

    def _last_at_most(self, limit: int, term: int) -> int:
        """Largest index <= limit whose term is <= ``term``. Terms never decrease along a log, so
        bisect finds it. When the answer lies inside the snapshot we cannot tell exactly and
        return an index below the snapshot, which makes the leader send the snapshot."""
        if limit < self._snap_index:
            return limit
        count = bisect_right(self._log, term, hi=limit - self._snap_index, key=_term)
        if count:
            return self._snap_index + count
        return self._snap_index if self._snap_term <= term else self._snap_index - 1

    # ------------------------------------------------------------------ inputs

    def tick(self) -> None:
        """One unit of time: elections for followers, heartbeats and check-quorum for leaders."""
        if self.role is Role.LEADER:
            self._tick_leader()
            return
        self._election_elapsed += 1
        if self._deferred_votes and self._election_elapsed >= self.config.election_ticks:
            self._grant_deferred_votes()
        if self._election_elapsed >= self._timeout:
            if self.config.pre_vote:
                self._become_pre_candidate()
            else:
                self._become_candidate()

    def peer_gone(self, peer: str) -> None:
        """The runtime saw ``peer``'s process go away (it closed our connection and its port
        refused the next one, as after a crash). If it is our leader we stop counting on its lease
        and campaign within a third of the minimum timeout instead of a full random one; the
        draw keeps the followers that all saw it from campaigning in the same tick. Only a
        hint: elections stay as safe as ever, and pre-vote keeps a wrong hint harmless (the
        others still hear the leader and refuse until its next heartbeat corrects us)."""
        if self.role is not Role.FOLLOWER or peer != self.leader_id:
            return
        self.leader_id = None
        soon = self._election_elapsed + self._rng.randrange(1, max(2, self.config.election_ticks // 3))
        self._timeout = min(self._timeout, soon)
        if self._deferred_votes:
            self._grant_deferred_votes()

    def propose(self, data: bytes) -> int | None:
        """Append a command to the leader's log; it goes out at the next :meth:`ready`."""
        if self.role is not Role.LEADER:
            return None
        index = self.last_index + 1
        self._log.append(Entry(index, self.term, data))
        self._bcast_pending = True
        return index

    def read_index(self, ctx: int) -> bool:
        """Start a linearizable read (thesis 6.4): it is served at the commit index once a
        quorum confirms we still lead. ``ctx`` must grow from call to call."""
        if self.role is not Role.LEADER:
            return False
        index = self.commit_index if self.term_of(self.commit_index) == self.term else None
        self._reads.append(_PendingRead(ctx, index))
        if self._others:
            self._read_bcast = max(self._read_bcast, ctx)
        self._release_reads()
        return True

    def compact(self, snapshot: Snapshot) -> None:
        """The runtime snapshotted the state machine at an applied index: forget the log it covers."""
        if snapshot.index <= self._snap_index:
            return
        if snapshot.index > self._applied:
            raise ValueError(f"cannot compact to {snapshot.index}: only {self._applied} was applied")
        if self.term_of(snapshot.index) != snapshot.term:
            raise ValueError(f"snapshot term {snapshot.term} does not match the log at {snapshot.index}")
        del self._log[: snapshot.index - self._snap_index]
        self._snapshot = snapshot
        self._snap_index, self._snap_term = snapshot.index, snapshot.term

    def step(self, msg: Message) -> None:
        """Handle one message from a peer. Any message may be stale, duplicated or reordered."""
        if msg.dst != self.id or msg.src == self.id or msg.src not in self._members:
            return
        if msg.term > self.term:
            if isinstance(msg, RequestVote):
                # Leader stickiness (thesis 6.2 / 9.6): while we hear from a live leader, a
                # vote request is a disruptive (or partitioned-away) node; do not let it win.
                if self._in_lease() and (msg.pre_vote or self.config.check_quorum):
                    if msg.pre_vote:
                        self._defer_pre_vote(msg)
                    return
                if not msg.pre_vote:
                    self._become_follower(msg.term, None)
            elif isinstance(msg, VoteResponse) and msg.pre_vote and msg.granted:
                pass  # carries the term the pre-candidate asked for, not a newer one
            else:
                leader = msg.src if isinstance(msg, (AppendEntries, InstallSnapshot)) else None
                self._become_follower(msg.term, leader)
        elif msg.term < self.term:
            self._reply_stale(msg)
            return

        if isinstance(msg, RequestVote):
            self._on_request_vote(msg)
        elif isinstance(msg, VoteResponse):
            self._on_vote_response(msg)
        elif isinstance(msg, AppendEntries):
            if self.role is not Role.LEADER:
                self._hear_leader(msg.src)
                self._on_append(msg)
        elif isinstance(msg, InstallSnapshot):
            if self.role is not Role.LEADER:
                self._hear_leader(msg.src)
                self._on_snapshot(msg)
        elif self.role is Role.LEADER and msg.src in self._progress:
            if isinstance(msg, AppendResponse):
                self._on_append_response(msg)
            elif isinstance(msg, SnapshotResponse):
                self._on_snapshot_response(msg)

    # ------------------------------------------------------------------ outputs

    def has_ready(self) -> bool:
        if self._outstanding is not None:
            return False
        hard, soft = self._prev_hard, self._prev_soft
        return bool(
            self._outbox
            or self._unstable_from <= self.last_index
            or self.commit_index > self._applied
            or (self.role is Role.LEADER and (self._bcast_pending or self._read_bcast))
            or self.term != hard.term
            or self.voted_for != hard.voted_for
            or self.commit_index != hard.commit
            or self.role is not soft[0]
            or self.leader_id != soft[2]
            or self._pending_snapshot
            or self._read_states
            or self._dropped_reads
        )

    def ready(self) -> Ready:
        """Everything to persist, send and apply since the last Ready."""
        if self._outstanding is not None:
            raise RuntimeError("advance() the previous Ready before asking for another")
        if self.role is Role.LEADER:
            self._flush_leader()
        rd = Ready()
        hard = self._hard_state()
        if hard != self._prev_hard:
            rd.hard_state = self._prev_hard = hard
        rd.snapshot, self._pending_snapshot = self._pending_snapshot, None
        if self._unstable_from <= self.last_index:
            rd.entries = self._slice(self._unstable_from, self.last_index)
            self._unstable_from = self.last_index + 1
        rd.messages, self._outbox = self._outbox, []
        if self.commit_index > self._applied:
            rd.committed = self._slice(self._applied + 1, self.commit_index)
            self._applied = self.commit_index
        rd.read_states, self._read_states = self._read_states, []
        rd.dropped_reads, self._dropped_reads = self._dropped_reads, []
        soft = (self.role, self.term, self.leader_id)
        rd.role_changed, self._prev_soft = soft != self._prev_soft, soft
        self._outstanding = rd
        return rd

    def advance(self, rd: Ready, persisted: bool = True) -> None:
        """The runtime made ``rd`` durable, sent it and applied it; with ``persisted=False``
        the write is still under way and :meth:`persisted` will say when it is done."""
        if rd is not self._outstanding:
            raise RuntimeError("advance() must be given the Ready that ready() returned last")
        self._outstanding = None
        if persisted:
            self.persisted(rd)

    def persisted(self, rd: Ready) -> None:
        """``rd`` (advanced already) and every Ready before it are durable: a leader now
        counts itself as holding its entries."""
        if rd.entries:
            last = rd.entries[-1]
            # A step() between ready() and advance() may have truncated these entries; then the
            # rewrite is in a later Ready and counts when that one is advanced.
            if self.term_of(last.index) == last.term:
                self._persisted = max(self._persisted, last.index)
        if self.role is Role.LEADER:
            self._maybe_commit()

    def _hard_state(self) -> HardState:
        return HardState(self.term, self.voted_for, self.commit_index)

    def _send(self, msg: Message) -> None:
        self._outbox.append(msg)

    # ------------------------------------------------------------------ roles

    def _random_timeout(self) -> int:
        e = self.config.election_ticks
        return self._rng.randrange(e, 2 * e)

    def _reset_timers(self) -> None:
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._timeout = self._random_timeout()

    def _in_lease(self) -> bool:
        """Have we heard from a live leader within the minimum election timeout?"""
        if self.role is Role.LEADER:
            return True
        return self.leader_id is not None and self._election_elapsed < self.config.election_ticks

    def _become_follower(self, term: int, leader: str | None) -> None:
        if self.role is Role.LEADER:
            self._dropped_reads.extend(r.ctx for r in self._reads)
            self._reads.clear()
            self._read_bcast = 0
            self._bcast_pending = False
            self._progress = {}
        if term > self.term:
            self.term, self.voted_for = term, None
            self._incoming = None  # its leader is gone; a new one starts its own transfer
        self.role = Role.FOLLOWER
        self.leader_id = leader
        self._votes = {}
        self._deferred_votes.clear()
        self._reset_timers()

    def _hear_leader(self, leader: str) -> None:
        """A message from the leader of our term: follow it and restart the election timer."""
        if self.role is not Role.FOLLOWER:
            self._become_follower(self.term, leader)
        elif self.leader_id != leader:
            self._timeout = self._random_timeout()  # undo a timer shortened by peer_gone()
        self.leader_id = leader
        self._election_elapsed = 0
        self._deferred_votes.clear()  # the leader is alive: whoever asked must not win

    def _defer_pre_vote(self, msg: RequestVote) -> None:
        """A pre-vote reached us while we still hear from a leader (thesis 9.6: refuse it).
        If the asker's log would win our vote, its election timer simply fired a little before
        our lease ran out; rather than make it wait for a second timeout, we answer once our
        lease expires without word from the leader, exactly when we would grant it anyway.
        Until then the asker gets no answer (as in etcd), so refusals cannot make it give up.
        A node rejoining a healthy cluster never gets the grant: the leader's next heartbeat
        renews our lease and drops the deferred request."""
        if self.role is not Role.FOLLOWER or not self._up_to_date(msg.last_log_term, msg.last_log_index):
            self._send(VoteResponse(self.id, msg.src, self.term, False, pre_vote=True))
            return
        self._deferred_votes[msg.src] = msg

    def _grant_deferred_votes(self) -> None:
        """Our lease ran out: we no longer know a leader, and we grant the pre-votes we held
        back if they still hold (newer term than ours, log at least as up to date as ours)."""
        deferred, self._deferred_votes = self._deferred_votes, {}
        self.leader_id = None
        for msg in deferred.values():
            if msg.term > self.term and self._up_to_date(msg.last_log_term, msg.last_log_index):
                self._grant_pre_vote(msg)

    def _grant_pre_vote(self, msg: RequestVote) -> None:
        """Grant a pre-vote. A follower also forgets the leader it no longer hears from and,
        as for a granted vote, restarts its election timer: the asker gets the time to win
        before we campaign too and split the vote (the usual cause of a second election).
        Only once per term: an asker that keeps asking for the same term did not win in that
        time, and restarting again would keep us, who might win, from ever campaigning."""
        if self.role is Role.FOLLOWER:
            self.leader_id = None
            if msg.term > self._waited_for_term:
                self._waited_for_term = msg.term
                self._election_elapsed = 0
        self._send(VoteResponse(self.id, msg.src, msg.term, True, pre_vote=True))

    def _become_pre_candidate(self) -> None:
        """Ask whether we could win before disturbing anyone's term (thesis 9.6)."""
        self.role = Role.PRE_CANDIDATE
        self.leader_id = None
        self._reset_timers()
        self._votes = {self.id: True}
        for peer in self._others:
            self._send(RequestVote(self.id, peer, self.term + 1, self.last_index, self.last_term, True))
        self._tally()

    def _become_candidate(self) -> None:
        self.role = Role.CANDIDATE
        self._incoming = None
        self.term += 1
        self.voted_for = self.id
        self.leader_id = None
        self._reset_timers()
        self._votes = {self.id: True}
        for peer in self._others:
            self._send(RequestVote(self.id, peer, self.term, self.last_index, self.last_term))
        self._tally()

    def _tally(self) -> None:
        granted = sum(self._votes.values())
        if granted >= self._quorum:
            if self.role is Role.PRE_CANDIDATE:
                self._become_candidate()
            else:
                self._become_leader()
        elif len(self._votes) - granted >= self._quorum:
            self._become_follower(self.term, None)

    def _become_leader(self) -> None:
        self.role = Role.LEADER
        self.leader_id = self.id
        self._reset_timers()
        self._votes = {}
        self._progress = {p: _Progress(next=self.last_index + 1) for p in self._others}
        self._reads.clear()
        # A no-op of our term lets us commit (and so serve reads for) everything before it.
        self._log.append(Entry(self.last_index + 1, self.term, b""))
        self._bcast_pending = True

    # ------------------------------------------------------------------ elections

    def _up_to_date(self, last_term: int, last_index: int) -> bool:
        return (last_term, last_index) >= (self.last_term, self.last_index)

    def _on_request_vote(self, msg: RequestVote) -> None:
        up_to_date = self._up_to_date(msg.last_log_term, msg.last_log_index)
        if msg.pre_vote:
            # Lease was checked in step(); a pre-vote never changes our own state. At our own
            # term, we would still vote if we have not voted and know no leader (as etcd does).
            would_vote = msg.term > self.term or (
                msg.term == self.term and self.voted_for in (None, msg.src) and self.leader_id is None
            )
            if would_vote and up_to_date:
                self._grant_pre_vote(msg)
            else:
                self._send(VoteResponse(self.id, msg.src, self.term, False, pre_vote=True))
            return
        can_vote = self.voted_for == msg.src or (self.voted_for is None and self.leader_id is None)
        granted = can_vote and up_to_date
        if granted:
            self.voted_for = msg.src
            self._election_elapsed = 0
        self._send(VoteResponse(self.id, msg.src, self.term, granted))

    def _on_vote_response(self, msg: VoteResponse) -> None:
        if msg.pre_vote:
            if self.role is not Role.PRE_CANDIDATE or (msg.granted and msg.term != self.term + 1):
                return
        elif self.role is not Role.CANDIDATE:
            return
        self._votes[msg.src] = msg.granted
        self._tally()

    def _reply_stale(self, msg: Message) -> None:
        """Tell a peer from an older term about ours, so a deposed leader or a lagging
        candidate catches up instead of waiting (and a stuck higher-term node gets heard)."""
        if isinstance(msg, AppendEntries):
            self._send(AppendResponse(self.id, msg.src, self.term, False, match_index=msg.prev_index))
        elif isinstance(msg, InstallSnapshot):
            self._send(SnapshotResponse(self.id, msg.src, self.term, 0))
        elif isinstance(msg, RequestVote):
            self._send(VoteResponse(self.id, msg.src, self.term, False, pre_vote=msg.pre_vote))

    # ------------------------------------------------------------------ follower side

    def _on_append(self, msg: AppendEntries) -> None:
        prev, prev_term, entries = msg.prev_index, msg.prev_term, msg.entries
        if prev < self.commit_index:
            # Our committed prefix is in every later leader's log, so only what follows it
            # needs checking; this also covers a prev_index inside our snapshot.
            entries = entries[self.commit_index - prev :]
            prev = self.commit_index
        elif self.term_of(prev) != prev_term:
            hint = self._last_at_most(min(prev, self.last_index), prev_term)
            self._send(
                AppendResponse(
                    self.id,
                    msg.src,
                    self.term,
                    False,
                    match_index=msg.prev_index,  # echo the rejected index: the leader can spot stale replies
                    hint_index=hint,
                    hint_term=self.term_of(hint) or 0,
                    read_ctx=msg.read_ctx,
                )
            )
            return
        for i, e in enumerate(entries):
            known = self.term_of(e.index)
            if known == e.term:
                continue  # already have it: a duplicate or reordered message must not truncate
            if known is not None:
                self._truncate_from(e.index)
            self._log.extend(entries[i:])
            break
        last_new = prev + len(entries)
        if msg.commit > self.commit_index:
            self.commit_index = max(self.commit_index, min(msg.commit, last_new))
        self._send(
            AppendResponse(self.id, msg.src, self.term, True, match_index=last_new, read_ctx=msg.read_ctx)
        )

    def _on_snapshot(self, msg: InstallSnapshot) -> None:
        """Collect one chunk. Chunks are taken strictly in order: a duplicate, a reordered
        one or one after a gap is ignored, and the answer names the offset we want next, so
        the leader resumes from there. The snapshot is installed with its last chunk, and the
        answer saying so goes out only after the runtime made it durable (Ready order)."""
        if msg.snap_index <= self.commit_index:
            self._send(SnapshotResponse(self.id, msg.src, self.term, self.commit_index))
            return
        inc = self._incoming
        if inc is None or (inc.term, inc.snap_index, inc.snap_term) != (
            msg.term,
            msg.snap_index,
            msg.snap_term,
        ):
            if msg.offset != 0:  # a chunk of a transfer we know nothing of (we restarted, or it is stale)
                self._send(SnapshotResponse(self.id, msg.src, self.term, 0, msg.snap_index, 0))
                return
            inc = self._incoming = _Incoming(msg.term, msg.snap_index, msg.snap_term, bytearray())
        if msg.offset == len(inc.data):
            inc.data += msg.data
            if msg.done:
                self._incoming = None
                self._install(Snapshot(inc.snap_index, inc.snap_term, bytes(inc.data)))
                self._send(SnapshotResponse(self.id, msg.src, self.term, inc.snap_index))
                return
        self._send(SnapshotResponse(self.id, msg.src, self.term, 0, inc.snap_index, len(inc.data)))

    def _install(self, snap: Snapshot) -> None:
        # Entries after the snapshot survive only if our log agrees with it at its index
        # (they may already count toward a commit); otherwise the whole log goes.
        keep = self._slice(snap.index + 1, self.last_index) if self.term_of(snap.index) == snap.term else []
        self._log = keep
        self._snapshot = snap
        self._snap_index, self._snap_term = snap.index, snap.term
        self.commit_index = self._applied = self._persisted = snap.index
        self._unstable_from = snap.index + 1  # hand the kept suffix out again, after the snapshot
        self._pending_snapshot = snap

    # ------------------------------------------------------------------ leader side

    def _tick_leader(self) -> None:
        self._election_elapsed += 1
        if self._election_elapsed >= self.config.election_ticks:
            self._election_elapsed = 0
            # The bug's leader never doubts itself (the runtime also serves its reads locally).
            if self.config.check_quorum and LEADER_READ_WITHOUT_QUORUM not in self.config.bugs:
                active = 1 + sum(pr.active for pr in self._progress.values())
                for pr in self._progress.values():
                    pr.active = False
                if active < self._quorum:
                    self._become_follower(self.term, None)
                    return
        self._heartbeat_elapsed += 1
        if self._heartbeat_elapsed >= self.config.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._heartbeat()
        else:
            self._send_commit_news()

    def _heartbeat(self) -> None:
        """Keep followers quiet, push commit, and recover from lost messages: a probe is
        resent, and a replicating follower is asked about next - 1 so a lost batch shows up
        as a rejection."""
        ctx = self._reads[-1].ctx if self._reads else 0
        for peer in self._others:
            pr = self._progress[peer]
            if pr.state is _State.REPLICATE and pr.next - 1 < self._snap_index:
                pr.probe(pr.match + 1)
            elif pr.state is _State.SNAPSHOT:
                pr.snapshot_wait += self.config.heartbeat_ticks
                if pr.snapshot_wait >= self.config.election_ticks and self._newer_snapshot(pr, pr.snap_acked):
                    self._send_snapshot(peer, pr)  # none of it arrived: send the newest instead
                elif pr.snapshot_wait >= self.config.election_ticks:
                    # Chunks or their answers were lost (a connection dropped, say): resume
                    # from what the follower confirmed; it tells us if it has less.
                    pr.rewind_snapshot(pr.snap_acked)
                    pr.snap_rewound = pr.snap_acked
                    self._send_chunks(peer, pr)
            if pr.state is _State.PROBE:
                pr.probe_sent = False
                if self._send_append(peer, read_ctx=ctx, empty_ok=True):
                    continue
            self._send_empty(peer, pr.next - 1 if pr.state is _State.REPLICATE else pr.match, ctx)

    def _flush_leader(self) -> None:
        """Send what accumulated since the last Ready: one batch of new entries per follower
        (carrying the commit index), and one ReadIndex heartbeat round. A commit alone sends
        nothing here: the next AppendEntries carries it, and if none leaves before the next
        tick, that tick sends the news (:meth:`_send_commit_news`). Under load the next batch
        comes well within a tick, so a commit costs no message (and no answer) of its own."""
        if self._bcast_pending:
            self._bcast_pending = False
            for peer in self._others:
                self._send_append(peer)
        if self._read_bcast:
            for peer in self._others:
                self._send_empty(peer, self._progress[peer].match, self._read_bcast)
            self._read_bcast = 0

    def _send_commit_news(self) -> None:
        """An empty AppendEntries to each replicating follower that has not heard of a commit
        it could apply (one that no later AppendEntries carried): followers learn a commit at
        most one tick after the leader, however quiet the clients are."""
        for peer in self._others:
            pr = self._progress[peer]
            if pr.state is _State.REPLICATE and min(self.commit_index, pr.match) > pr.commit_sent:
                self._send_empty(peer, pr.match, 0)

    def _send_append(self, peer: str, read_ctx: int = 0, empty_ok: bool = False) -> bool:
        """Send entries from ``next`` as far as the follower's state allows; True if sent."""
        pr = self._progress[peer]
        if pr.state is _State.SNAPSHOT or (pr.state is _State.PROBE and pr.probe_sent):
            return False
        if pr.next <= self._snap_index:
            self._send_snapshot(peer, pr)
            return True
        sent = False
        last = self.last_index
        while pr.state is _State.PROBE or len(pr.inflight) < self.config.max_inflight:
            hi = self._batch_end(pr.next, min(last, pr.next + self.config.max_batch - 1))
            if hi < pr.next and not empty_ok:
                break
            self._send_entries(peer, pr, pr.next - 1, self._slice(pr.next, hi), read_ctx)
            sent, read_ctx, empty_ok = True, 0, False
            if pr.state is _State.PROBE:
                pr.probe_sent = True
                break
            if hi < pr.next:
                break
            pr.next = hi + 1
            pr.inflight.append(hi)
        return sent

    def _batch_end(self, lo: int, hi: int) -> int:
        """The last index of a batch lo..hi cut to max_batch_bytes, so that a message stays
        far below the peer frame limit however large the entries are (one entry always goes)."""
        budget = self.config.max_batch_bytes
        for e in self._slice(lo, hi):
            budget -= len(e.data) + _ENTRY_OVERHEAD
            if budget < 0:
                return max(lo, e.index - 1)
        return hi

    def _send_entries(self, peer: str, pr: _Progress, prev: int, entries: list[Entry], read_ctx: int) -> None:
        prev_term = self.term_of(prev)
        assert prev_term is not None, "caller checked that prev is not compacted"
        self._send(
            AppendEntries(self.id, peer, self.term, prev, prev_term, entries, self.commit_index, read_ctx)
        )
        pr.commit_sent = max(pr.commit_sent, min(self.commit_index, prev + len(entries)))

    def _send_empty(self, peer: str, prev: int, read_ctx: int) -> None:
        """A heartbeat. If prev was compacted, index 0 works: every follower accepts it
        (its committed prefix matches) and answers with its commit index."""
        if self.term_of(prev) is None:
            prev = 0
            self._send(AppendEntries(self.id, peer, self.term, 0, 0, [], self.commit_index, read_ctx))
            return
        self._send_entries(peer, self._progress[peer], prev, [], read_ctx)

    def _send_snapshot(self, peer: str, pr: _Progress) -> None:
        """Start a transfer of our latest snapshot, in chunks (see :meth:`_send_chunks`)."""
        assert self._snapshot is not None
        pr.state = _State.SNAPSHOT
        pr.snapshot = self._snapshot
        pr.snapshot_index = self._snapshot.index
        pr.inflight.clear()
        pr.rewind_snapshot(0)
        pr.snap_rewound = -1
        self._send_chunks(peer, pr)

    def _newer_snapshot(self, pr: _Progress, offset: int) -> bool:
        """Whether a transfer that would start again at ``offset`` should rather start on our
        newest snapshot: only when nothing of the old one is kept (offset 0), so no confirmed
        byte is thrown away, and the follower gets the state it would otherwise replay."""
        return offset == 0 and self._snapshot is not None and self._snapshot.index > pr.snapshot_index

    def _send_chunks(self, peer: str, pr: _Progress) -> None:
        """Send chunks while fewer than ``snapshot_inflight`` are unacknowledged.

        The snapshot travels as the paper's InstallSnapshot chunks rather than as a stream
        beside the Raft messages: chunks are ordinary messages, so the simulated network can
        drop, reorder and duplicate them like any other, terms fence off a deposed leader's
        chunks, and the follower's answers carry both flow control (the window slides as
        chunks are confirmed, so one transfer never floods the link ahead of heartbeats and
        other traffic) and resumption (the answer names the offset wanted next)."""
        snap = pr.snapshot
        assert snap is not None
        size, chunk = len(snap.data), self.config.snapshot_chunk
        window_end = pr.snap_acked + self.config.snapshot_inflight * chunk
        while not pr.snap_done and pr.snap_sent < window_end:
            lo = pr.snap_sent
            hi = min(size, lo + chunk)
            pr.snap_sent, pr.snap_done = hi, hi == size
            self._send(
                InstallSnapshot(
                    self.id, peer, self.term, snap.index, snap.term, lo, snap.data[lo:hi], hi == size
                )
            )

    def _on_append_response(self, msg: AppendResponse) -> None:
        pr = self._progress[msg.src]
        pr.active = True
        if msg.read_ctx > pr.read_ack:
            pr.read_ack = msg.read_ctx
            self._release_reads()
        if msg.success:
            advanced = msg.match_index > pr.match
            if advanced:
                pr.match = msg.match_index
            if pr.state is _State.PROBE:
                pr.replicate()
            elif pr.state is _State.REPLICATE:
                pr.next = max(pr.next, pr.match + 1)
                while pr.inflight and pr.inflight[0] <= msg.match_index:
                    pr.inflight.popleft()
            elif pr.match >= pr.snapshot_index:
                pr.replicate()  # caught up some other way while the snapshot was out
            if advanced:
                self._maybe_commit()
        else:
            rejected = msg.match_index
            if (
                pr.state is _State.SNAPSHOT
                or (pr.state is _State.REPLICATE and rejected <= pr.match)
                or (pr.state is _State.PROBE and rejected != pr.next - 1)
            ):
                return  # stale: about an index we have since moved past
            # Skip the whole conflicting term at once (thesis 5.3 optimisation, as in etcd).
            guess = self._last_at_most(min(msg.hint_index, self.last_index), msg.hint_term)
            pr.probe(guess + 1)
        self._send_append(msg.src)

    def _on_snapshot_response(self, msg: SnapshotResponse) -> None:
        pr = self._progress[msg.src]
        pr.active = True
        if msg.match_index == 0:
            self._on_chunk_ack(msg.src, pr, msg)
            return
        advanced = msg.match_index > pr.match
        if advanced:
            pr.match = msg.match_index
        if pr.state is _State.SNAPSHOT and msg.match_index >= pr.snapshot_index:
            if msg.match_index == pr.snapshot_index:
                self.snapshots_sent += 1
            pr.replicate()
        if advanced:
            self._maybe_commit()
        self._send_append(msg.src)

    def _on_chunk_ack(self, peer: str, pr: _Progress, msg: SnapshotResponse) -> None:
        """The follower holds ``msg.offset`` bytes of the transfer: slide the window on, go
        back to a hole, or start over if it holds nothing (it restarted), with our newest
        snapshot then."""
        if pr.state is not _State.SNAPSHOT or msg.snap_index != pr.snapshot_index:
            return  # about another transfer
        assert pr.snapshot is not None
        offset = min(msg.offset, len(pr.snapshot.data))
        if offset > pr.snap_acked:
            pr.snap_acked = offset
            pr.snapshot_wait = 0
            if offset > pr.snap_sent:  # it had more than we thought: skip ahead
                pr.rewind_snapshot(offset)
        elif offset == 0 and self._newer_snapshot(pr, 0):
            self._send_snapshot(peer, pr)  # it holds nothing of this one: the newest instead
            return
        elif offset == 0 and pr.snap_acked > 0:
            pr.rewind_snapshot(0)
            pr.snap_rewound = 0
        elif offset == pr.snap_acked < pr.snap_sent and pr.snap_rewound != offset:
            # The same answer again while later chunks are out: the follower skipped one
            # after a hole (lost or reordered). Go back to the hole, once per hole.
            pr.rewind_snapshot(offset)
            pr.snap_rewound = offset
        else:
            return  # a late answer about chunks confirmed since, or a hole already resent
        self._send_chunks(peer, pr)

    def _maybe_commit(self) -> None:
        """Commit the highest index a majority holds, but only an entry of our own term
        (figure 8): earlier ones are committed with it."""
        matches = sorted([self._persisted, *(pr.match for pr in self._progress.values())], reverse=True)
        n = matches[self._quorum - 1]
        if n <= self.commit_index:
            return
        if self.term_of(n) != self.term and COMMIT_PREVIOUS_TERM not in self.config.bugs:
            return
        self.commit_index = n
        self._bcast_pending = True
        if self.term_of(n) == self.term:
            for r in self._reads:
                if r.index is None:
                    r.index = n
            self._release_reads()

    def _release_reads(self) -> None:
        """Hand out reads that a quorum confirmed and that have an index to wait for."""
        if not self._reads:
            return
        if self._others:
            acks = sorted((pr.read_ack for pr in self._progress.values()), reverse=True)
            confirmed = acks[self._quorum - 2]  # we count ourselves as one of the quorum
        else:
            confirmed = self._reads[-1].ctx
        while self._reads and self._reads[0].index is not None and self._reads[0].ctx <= confirmed:
            r = self._reads.popleft()
            self._read_states.append(ReadState(r.ctx, r.index))
