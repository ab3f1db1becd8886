"""A deterministic simulated cluster of RaftCore nodes, with safety checks after every event.

Everything random comes from one seed, so a failing schedule replays exactly. Time moves in
steps; in each step every live node ticks (a few skip one: clocks drift) and the messages due
are delivered in random order. Each message gets a random delay (now and then a very long
one, so stale messages from old terms show up), may be dropped or duplicated, and partitions
cut links at delivery time. A crashed node loses everything but its :class:`Storage`, which
holds only what the node persisted from its Readys.

With ``async_writes`` a node hands each Ready's state to a simulated writer and goes on, as
raftchat's node does: the leader's AppendEntries leave at once, every other message when the
write and all before it complete (at random later times), and a crash loses the writes not
yet completed. Half of the random schedules run that way.

Two ways to drive it: :meth:`Sim.random_step` for random schedules, and the manual helpers
(:meth:`Sim.tick`, :meth:`Sim.deliver_all`, :meth:`Sim.partition`, ...) for scenarios, where
messages wait in the network until delivered explicitly.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack

from raftchat.raft.core import Config, RaftCore, Ready, Role
from raftchat.raft.messages import (
    AppendResponse,
    Entry,
    HardState,
    Message,
    Snapshot,
    SnapshotResponse,
    VoteResponse,
)

# Where a node may crash part-way through handling a Ready, as a real process could.
CRASH_POINTS = (
    "before persisting a Ready",
    "after persisting a Ready, before sending",
    "after sending, before applying",
)


class InvariantViolation(AssertionError):
    """A Raft safety property failed."""


class LivenessFailure(AssertionError):
    """The healed cluster did not elect a leader and commit within the time allowed."""


class Storage:
    """A node's disk: only what it persisted from Readys (or its own compactions) lives here."""

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []  # the entries after the snapshot

    @property
    def snap_index(self) -> int:
        return self.snapshot.index if self.snapshot else 0

    @property
    def last_index(self) -> int:
        return self.snap_index + len(self.entries)

    def entry(self, index: int) -> Entry | None:
        offset = index - self.snap_index - 1
        return self.entries[offset] if 0 <= offset < len(self.entries) else None

    def term_at(self, index: int) -> int | None:
        if index == self.snap_index:
            return self.snapshot.term if self.snapshot else 0
        e = self.entry(index)
        return e.term if e else None

    def install(self, snap: Snapshot) -> None:
        """Raft's InstallSnapshot rule, as raftchat's storage does it: keep the entries after
        the snapshot only if the log agrees with it at its index."""
        keep = self.term_at(snap.index) == snap.term
        self.entries = [e for e in self.entries if e.index > snap.index] if keep else []
        self.snapshot = snap

    def append(self, entries: list[Entry]) -> None:
        first = entries[0].index
        if not self.snap_index < first <= self.last_index + 1:
            raise InvariantViolation(f"Ready.entries from {first} leave a gap after {self.last_index}")
        del self.entries[first - self.snap_index - 1 :]
        self.entries.extend(entries)

    def compact(self, snap: Snapshot) -> None:
        self.entries = [e for e in self.entries if e.index > snap.index]
        self.snapshot = snap


@dataclass
class SimNode:
    id: str
    storage: Storage = field(default_factory=Storage)
    core: RaftCore | None = None  # None while crashed
    sm: list[bytes] = field(default_factory=list)  # applied commands; sm[i - 1] is entry i
    seen_commit: int = 0  # commit index already folded into the global committed map
    seen_term: int = 0
    incarnation: int = 0
    led_term: int = -1  # last term in which leader completeness was checked for this node
    # async_writes: Readys handed to the writer, oldest first, with the messages held for each
    writes: deque[tuple[Ready, list[Message]]] = field(default_factory=deque)
    submitted_vote: tuple[int, str | None] = (0, None)  # term and vote of the last write handed over


def random_config(rng: random.Random) -> Config:
    election = rng.randint(3, 8)
    return Config(
        election_ticks=election,
        heartbeat_ticks=rng.randint(1, max(1, election // 3)),
        max_batch=rng.choice([1, 2, 3, 64]),
        max_inflight=rng.choice([1, 2, 4, 64]),
        max_batch_bytes=rng.choice([1, 16, 1 << 20]),
        # Sim snapshots are a few hundred bytes: small chunks make transfers of many chunks.
        snapshot_chunk=rng.choice([8, 32, 1 << 20]),
        snapshot_inflight=rng.choice([1, 2, 4]),
        pre_vote=rng.random() < 0.75,
        check_quorum=rng.random() < 0.75,
    )


def _encode_sm(sm: list[bytes]) -> bytes:
    return msgpack.packb(sm, use_bin_type=True)


class Sim:
    """N RaftCore nodes, a faulty network, and the checker that watches them."""

    def __init__(
        self,
        seed: int,
        nodes: int | None = None,
        config: Config | None = None,
        *,
        drop: float | None = None,
        dup: float | None = None,
        max_delay: int | None = None,
        crash_in_ready: float | None = None,
        async_writes: bool = False,
    ) -> None:
        self.seed = seed
        self.async_writes = async_writes
        self.rng = random.Random(seed)
        n = nodes if nodes is not None else self.rng.choice([1, 3, 3, 3, 3, 5, 5, 5])
        self.config = config if config is not None else random_config(self.rng)
        self.drop = drop if drop is not None else self.rng.choice([0.0, 0.02, 0.1, 0.25])
        self.dup = dup if dup is not None else self.rng.choice([0.0, 0.05, 0.2])
        self.max_delay = max_delay if max_delay is not None else self.rng.choice([0, 1, 2])
        self.ids = [f"n{i}" for i in range(1, n + 1)]
        self.nodes = {i: SimNode(i) for i in self.ids}
        self.net: list[tuple[int, int, Message]] = []  # heap of (due time, send order, message)
        self.now = 0
        self.seq = 0
        self.group = dict.fromkeys(self.ids, 0)  # nodes talk only within their group
        self.trace: deque[str] = deque(maxlen=40)
        self.events = 0
        self.notice_crashes = True  # tell some peers of a crash through RaftCore.peer_gone
        # node -> CRASH_POINTS index: crash there while handling that node's next Ready (a failpoint)
        self.failpoints: dict[str, int] = {}
        self.sent: dict[str, int] = {}  # message kind -> count, for tests and stats
        self.next_ctx = 0
        self.next_cmd = 0
        # Checker state: facts about the whole history.
        self.leaders: dict[int, str] = {}  # term -> the node that led it
        self.committed: dict[int, Entry] = {}  # index -> the entry committed there
        self.max_committed = 0
        self.votes: dict[tuple[str, int], str] = {}  # (node, term) -> persisted vote
        # (index, term) -> (data, term of the entry before it): log matching in one map
        self.log_facts: dict[tuple[int, int], tuple[bytes, int | None]] = {}
        self.reads: dict[int, tuple[str, int, int]] = {}  # ctx -> (node, incarnation, min index)
        self.served: dict[int, int] = {}  # ctx -> index of each ReadState seen
        self.dropped: set[int] = set()
        # Event weights for random schedules: time step, propose, read, compact, crash,
        # restart, partition, heal. Fault rates vary per schedule, from calm to stormy.
        storm = self.rng.random()
        # The chance that a node crashes part-way through a Ready.
        self.crash_in_ready = crash_in_ready if crash_in_ready is not None else 0.002 * storm
        raw = [60, 12, 5, 3, 4 * storm, 5, 4 * storm, 3]
        self.weights = [sum(raw[: i + 1]) for i in range(len(raw))]
        self.weight_total = self.weights[-1]
        self.setup = (
            f"seed={seed} nodes={n} {self.config} drop={self.drop} dup={self.dup} "
            f"max_delay={self.max_delay} storm={storm:.2f} async_writes={async_writes}"
        )
        for i in self.ids:
            self.start(i)

    # ------------------------------------------------------------------ lifecycle

    def start(self, node_id: str) -> None:
        """Boot (or reboot) a node from its storage alone."""
        node = self.nodes[node_id]
        st = node.storage
        node.incarnation += 1
        node.core = RaftCore(
            node_id,
            self.ids,
            self.config,
            random.Random(self.rng.getrandbits(32)),
            st.hard_state,
            st.snapshot,
            list(st.entries),
        )
        node.sm = msgpack.unpackb(st.snapshot.data) if st.snapshot else []
        node.seen_commit = st.snap_index
        node.writes.clear()
        node.submitted_vote = (st.hard_state.term, st.hard_state.voted_for)
        if node.core.term < node.seen_term:
            self.fail(f"{node_id} restarted with term {node.core.term} < {node.seen_term} it had reached")
        self.note(f"start {node_id} term={node.core.term} commit={node.core.commit_index}")
        self.check()

    def crash(self, node_id: str, when: str = "") -> None:
        node = self.nodes[node_id]
        node.core = None
        node.writes.clear()  # never reached the disk
        node.seen_term = node.storage.hard_state.term  # a term not yet written is lost: fine, if unused
        self.reads = {c: r for c, r in self.reads.items() if r[0] != node_id}
        self.note("crash", node_id, when)
        # Some peers notice at once (their connection to it closed), as the runtime tells the core.
        for other in self.alive() if self.notice_crashes else ():
            if self.rng.random() < 0.5:
                other.core.peer_gone(node_id)
                self.process(other.id)

    def alive(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.core is not None]

    def core(self, node_id: str) -> RaftCore:
        core = self.nodes[node_id].core
        assert core is not None, f"{node_id} is down"
        return core

    # ------------------------------------------------------------------ inputs

    def tick(self, node_id: str, times: int = 1) -> None:
        for _ in range(times):
            if self.nodes[node_id].core is None:
                return  # crashed part-way through a Ready
            self.core(node_id).tick()
            self.process(node_id)
            self.check(node_id)

    def tick_all(self) -> None:
        for node in self.alive():
            self.tick(node.id)

    def propose(self, node_id: str, data: bytes | None = None) -> int | None:
        if data is None:
            self.next_cmd += 1
            data = f"c{self.next_cmd}".encode()
        index = self.core(node_id).propose(data)
        self.note(f"propose {node_id} {data!r} -> {index}")
        self.process(node_id)
        self.check()
        return index

    def read(self, node_id: str) -> int | None:
        """A ReadIndex request; it must be served at or after everything committed so far."""
        self.check()
        self.next_ctx += 1
        ctx = self.next_ctx
        node = self.nodes[node_id]
        # Record before the call: a single-node cluster confirms it immediately.
        self.reads[ctx] = (node_id, node.incarnation, self.max_committed)
        if not self.core(node_id).read_index(ctx):
            del self.reads[ctx]
            return None
        self.note(f"read {node_id} ctx={ctx} min={self.max_committed}")
        self.process(node_id)
        self.check()
        return ctx

    def compact(self, node_id: str) -> bool:
        """Snapshot the node's state machine at its applied index, as the runtime would."""
        node = self.nodes[node_id]
        core = self.core(node_id)
        applied = len(node.sm)
        if applied <= node.storage.snap_index or node.writes:
            return False  # (the runtime queues a compaction behind the writes; here it waits)
        term = core.term_of(applied)
        if term is None:
            self.fail(f"{node_id}: term_of({applied}) is None for an applied index")
        snap = Snapshot(applied, term, _encode_sm(node.sm))
        node.storage.compact(snap)
        core.compact(snap)
        self.note(f"compact {node_id} at {applied}")
        self.check()
        return True

    def partition(self, *groups: list[str]) -> None:
        """Split the cluster; nodes not named form one more group."""
        rest = set(self.ids)
        for g, members in enumerate(groups, start=1):
            for m in members:
                self.group[m] = g
                rest.discard(m)
        for m in rest:
            self.group[m] = 0
        self.note(f"partition {self.group}")

    def heal(self) -> None:
        self.group = dict.fromkeys(self.ids, 0)
        self.note("heal")

    # ------------------------------------------------------------------ network

    def send(self, msg: Message) -> None:
        if isinstance(msg, VoteResponse) and msg.granted and not msg.pre_vote:
            vote = self.votes.setdefault((msg.src, msg.term), msg.dst)
            if vote != msg.dst:
                self.fail(f"{msg.src} granted its vote in term {msg.term} to {vote} and to {msg.dst}")
        kind = type(msg).__name__
        self.sent[kind] = self.sent.get(kind, 0) + 1
        delay = self.rng.randint(0, self.max_delay) if self.max_delay else 0
        if delay and self.rng.random() < 0.03:
            delay = self.rng.randint(delay, 4 * self.config.election_ticks)  # a straggler from the past
        self.seq += 1
        heapq.heappush(self.net, (self.now + delay, self.seq, msg))

    def deliver(self, msg: Message) -> bool:
        """Hand one message to its destination if the link is up; True if delivered."""
        dst = self.nodes[msg.dst]
        if dst.core is None or self.group[msg.src] != self.group[msg.dst]:
            return False
        self.events += 1
        self.note("deliver", msg)
        dst.core.step(msg)
        self.process(msg.dst)
        self.check(msg.dst)
        return True

    def deliver_due(self) -> None:
        """Deliver everything due by now, in random order, with drops and duplicates."""
        rng = self.rng
        for _ in range(1000):  # zero-delay replies may be due at once; bounded by the log
            if not self.net or self.net[0][0] > self.now:
                return
            due = []
            while self.net and self.net[0][0] <= self.now:
                due.append(heapq.heappop(self.net)[2])
            rng.shuffle(due)
            for msg in due:
                if self.drop and rng.random() < self.drop:
                    self.note("drop", msg)
                    continue
                if self.dup and rng.random() < self.dup:
                    self.seq += 1
                    heapq.heappush(self.net, (self.now + rng.randint(0, self.max_delay + 2), self.seq, msg))
                self.deliver(msg)
        raise LivenessFailure("deliver_due: messages never stopped flowing")

    def time_step(self, drift: float = 0.0) -> None:
        """Time passes: every live node ticks (unless its clock lags), then due messages arrive."""
        self.now += 1
        for node in self.alive():
            if not drift or self.rng.random() >= drift:
                self.tick(node.id)
        if self.async_writes:
            # The disk answers within a tick or two: all that is queued (one group commit), or
            # a random part of it.
            for node in self.alive():
                n = len(node.writes)
                slow = self.crash_in_ready and self.rng.random() < 0.25  # (no faults: no slow disk)
                for _ in range(self.rng.randint(0, n) if slow else n):
                    if node.core is None or not node.writes:
                        break
                    self.complete_write(node)
        self.deliver_due()

    def deliver_all(
        self, keep: Callable[[Message], bool] | None = None, until: Callable[[], bool] | None = None
    ) -> None:
        """Deliver in send order, whenever due, until the network is empty (or ``until``
        holds); messages that ``keep`` rejects are dropped."""
        for _ in range(100_000):
            if not self.net:
                return
            msg = heapq.heappop(self.net)[2]
            if keep is None or keep(msg):
                self.deliver(msg)
            if until is not None and until():
                return
        raise LivenessFailure("deliver_all: messages never stopped flowing")

    # ------------------------------------------------------------------ Ready handling

    def process(self, node_id: str) -> None:
        """Drain a node's Readys in the contract order: persist, send, apply, advance. Now
        and then the node crashes part-way, at each point where a real process could."""
        node = self.nodes[node_id]
        core = node.core
        while core.has_ready():
            rd = core.ready()
            if self.async_writes:
                self.submit(node, rd)
                continue
            crash_at = self.failpoints.pop(node_id, -1)
            if crash_at < 0 and self.crash_in_ready and self.rng.random() < self.crash_in_ready:
                crash_at = self.rng.randrange(len(CRASH_POINTS))
            if crash_at == 0:
                self.crash(node_id, CRASH_POINTS[0])
                return
            self.persist(node, rd)
            for e in rd.committed:
                if (stored := node.storage.entry(e.index)) != e:
                    self.fail(f"{node.id} applies {e} before persisting it (stored: {stored})")
            self.check_claims(node, rd.messages)
            if crash_at == 1:
                self.crash(node_id, CRASH_POINTS[1])
                return
            for m in rd.messages:
                self.send(m)
            if crash_at == 2:
                self.crash(node_id, CRASH_POINTS[2])
                return
            self.apply(node, rd)
            core.advance(rd)

    def submit(self, node: SimNode, rd: Ready) -> None:
        """async_writes: hand the Ready to the writer; send what may go before it is durable."""
        core = node.core
        hs = rd.hard_state
        vote_changed = hs is not None and (hs.term, hs.voted_for) != node.submitted_vote
        if hs is not None:
            node.submitted_vote = (hs.term, hs.voted_for)
        early = not vote_changed and rd.snapshot is None and core.role is Role.LEADER
        if early:
            self.check_claims(node, rd.messages)
            for m in rd.messages:
                self.send(m)
        self.apply(node, rd)
        core.advance(rd, persisted=False)
        node.writes.append((rd, [] if early else rd.messages))

    def complete_write(self, node: SimNode) -> None:
        """async_writes: the oldest write reaches the disk; what waited for it is sent."""
        rd, held = node.writes.popleft()
        self.note("written", node.id, [e.index for e in rd.entries], rd.hard_state)
        self.persist(node, rd)
        if self.crash_in_ready and self.rng.random() < self.crash_in_ready:
            self.crash(node.id, "after a write, before sending what waited for it")
            return
        self.check_claims(node, held)
        for m in held:
            self.send(m)
        node.core.persisted(rd)
        self.process(node.id)
        self.check(node.id)

    def persist(self, node: SimNode, rd: Ready) -> None:
        st = node.storage
        if rd.snapshot is not None:
            st.install(rd.snapshot)
        if rd.entries:
            prev_term = st.term_at(rd.entries[0].index - 1)
            for e in rd.entries:
                if e.index <= st.last_index:
                    old = st.entry(e.index)
                    if old != e and old is not None and self.committed.get(e.index) == old:
                        self.fail(f"{node.id} overwrote committed {old} with {e}")
                fact = (e.data, prev_term)
                known = self.log_facts.setdefault((e.index, e.term), fact)
                if known != fact:
                    self.fail(f"log matching: {node.id} has {e} after term {prev_term}, elsewhere {known}")
                prev_term = e.term
            st.append(rd.entries)
        if rd.hard_state is not None:
            hs, old = rd.hard_state, st.hard_state
            if hs.term < old.term:
                self.fail(f"{node.id} persisted term {hs.term} after {old.term}")
            if hs.term == old.term and old.voted_for is not None and hs.voted_for != old.voted_for:
                self.fail(f"{node.id} changed its vote in term {hs.term}: {old.voted_for} -> {hs.voted_for}")
            if hs.voted_for is not None:
                vote = self.votes.setdefault((node.id, hs.term), hs.voted_for)
                if vote != hs.voted_for:
                    self.fail(f"{node.id} voted for {vote} and {hs.voted_for} in term {hs.term}")
            st.hard_state = hs

    def check_claims(self, node: SimNode, messages: list[Message]) -> None:
        """Votes and acknowledgements about to leave must be covered by what is on the node's disk."""
        st = node.storage
        for m in messages:
            if m.term > st.hard_state.term and not getattr(m, "pre_vote", False):
                self.fail(f"{node.id} sends {m} before persisting its term ({st.hard_state})")
            if isinstance(m, VoteResponse) and m.granted and not m.pre_vote:
                hs = st.hard_state
                if hs.term < m.term or (hs.term == m.term and hs.voted_for != m.dst):
                    self.fail(f"{node.id} grants its vote in term {m.term} before persisting it ({hs})")
            if isinstance(m, AppendResponse) and m.success and m.match_index > st.last_index:
                self.fail(f"{node.id} acknowledged {m.match_index} but persisted only {st.last_index}")
            if isinstance(m, SnapshotResponse) and m.match_index > st.last_index:
                self.fail(
                    f"{node.id} confirmed a snapshot at {m.match_index} but persisted only {st.last_index}"
                )

    def apply(self, node: SimNode, rd: Ready) -> None:
        if rd.snapshot is not None:
            snap = rd.snapshot
            sm = msgpack.unpackb(snap.data)
            if len(sm) != snap.index or snap.index <= len(node.sm):
                self.fail(
                    f"{node.id} got snapshot at {snap.index} covering {len(sm)}, applied {len(node.sm)}"
                )
            self.check_prefix(node.id, sm)
            node.sm = sm
        for e in rd.committed:
            if e.index != len(node.sm) + 1:
                self.fail(f"{node.id} applied {e.index} after {len(node.sm)}")
            self.record_commit(node.id, e)
            node.sm.append(e.data)
        for rs in rd.read_states:
            read = self.reads.pop(rs.ctx, None)
            if read is None or read[:2] != (node.id, node.incarnation):
                self.fail(f"{node.id} answered read {rs.ctx} it did not start (or twice)")
            if rs.index < read[2]:
                self.fail(f"stale read: ctx {rs.ctx} at {rs.index}, but {read[2]} was committed before it")
            if rs.index > node.core.commit_index:
                self.fail(f"read {rs.ctx} at {rs.index} beyond commit {node.core.commit_index}")
            self.served[rs.ctx] = rs.index
        for ctx in rd.dropped_reads:
            read = self.reads.pop(ctx, None)
            if read is None or read[:2] != (node.id, node.incarnation):
                self.fail(f"{node.id} dropped read {ctx} it did not start (or twice)")
            self.dropped.add(ctx)

    # ------------------------------------------------------------------ invariants

    def fail(self, why: str) -> None:
        raise InvariantViolation(why)

    def note(self, *event: object) -> None:
        """Remember an event for the failure report (formatted only if something fails)."""
        self.trace.append(event)

    def record_commit(self, node_id: str, e: Entry) -> None:
        known = self.committed.setdefault(e.index, e)
        if known != e:
            self.fail(f"state machine safety: {node_id} committed {e}, but {known} was committed there")
        if e.index > self.max_committed:
            self.max_committed = e.index

    def check_prefix(self, node_id: str, sm: list[bytes]) -> None:
        for i, data in enumerate(sm, start=1):
            known = self.committed.get(i)
            if known is None or known.data != data:
                self.fail(f"{node_id}: snapshot holds {data!r} at {i}, committed is {known}")

    def check(self, node_id: str | None = None) -> None:
        """Cheap invariants, run after every event on the node it touched (or on all)."""
        for node in self.nodes.values() if node_id is None else (self.nodes[node_id],):
            core = node.core
            if core is None:
                continue
            if core.term < node.seen_term:
                self.fail(f"{node.id} term went back from {node.seen_term} to {core.term}")
            node.seen_term = core.term
            if core.role is Role.LEADER:
                leader = self.leaders.setdefault(core.term, node.id)
                if leader != node.id:
                    self.fail(f"two leaders in term {core.term}: {leader} and {node.id}")
                if node.led_term != core.term:
                    node.led_term = core.term
                    self.check_leader_completeness(node)
            commit = core.commit_index
            if commit > core.last_index:
                self.fail(f"{node.id} commit {commit} beyond its log ({core.last_index})")
            if commit < node.seen_commit:
                self.fail(f"{node.id} commit went back from {node.seen_commit} to {commit}")
            if commit > node.seen_commit:
                for e in core.entries_from(node.seen_commit + 1):
                    if e.index > commit:
                        break
                    self.record_commit(node.id, e)
                node.seen_commit = commit

    def check_leader_completeness(self, node: SimNode) -> None:
        core = node.core
        log = core.entries_from(0)
        first = core.last_index - len(log) + 1
        if self.max_committed > core.last_index:
            self.fail(
                f"leader completeness: {node.id} leads term {core.term} with log to {core.last_index}, "
                f"but {self.max_committed} is committed"
            )
        for i in range(first, self.max_committed + 1):
            known = self.committed.get(i)
            if known is not None and log[i - first] != known:
                self.fail(
                    f"leader completeness: {node.id} leads term {core.term} with {log[i - first]}, "
                    f"but {known} is committed"
                )

    def check_deep(self) -> None:
        """Expensive cross-checks: the in-memory log and hard state match storage, and all
        logs agree wherever they hold the same (index, term)."""
        for node in self.alive():
            core, st = node.core, node.storage
            if core.has_ready() or node.writes:
                continue
            if core.last_index != st.last_index or core.entries_from(0) != st.entries:
                self.fail(f"{node.id}: in-memory log differs from what was persisted")
            if (core.term, core.voted_for, core.commit_index) != tuple(
                (st.hard_state.term, st.hard_state.voted_for, st.hard_state.commit)
            ):
                self.fail(f"{node.id}: term/vote/commit in memory differ from storage")
            for e in st.entries:
                if self.log_facts.get((e.index, e.term), (e.data,))[0] != e.data:
                    self.fail(f"log matching: {node.id} has {e}")
            self.check_prefix(node.id, node.sm)

    # ------------------------------------------------------------------ random schedules

    def random_step(self) -> None:
        """One random event: mostly time passing, sometimes clients and faults."""
        rng = self.rng
        r = rng.random() * self.weight_total
        alive = self.alive()
        w = self.weights
        if r < w[0]:
            self.time_step(drift=0.1)
        elif r < w[1]:
            leaders = [n.id for n in alive if n.core.role is Role.LEADER]
            target = rng.choice(leaders) if leaders and rng.random() < 0.9 else rng.choice(self.ids)
            for _ in range(rng.choice([1, 1, 1, 2, 5])):
                if self.nodes[target].core is not None:
                    self.propose(target)
        elif r < w[2]:
            leaders = [n.id for n in alive if n.core.role is Role.LEADER]
            if leaders:
                self.read(rng.choice(leaders))
        elif r < w[3]:
            if alive:
                self.compact(rng.choice(alive).id)
        elif r < w[4]:
            if alive:
                leaders = [n for n in alive if n.core.role is Role.LEADER]
                self.crash(rng.choice(leaders if leaders and rng.random() < 0.5 else alive).id)
        elif r < w[5]:
            down = [n.id for n in self.nodes.values() if n.core is None]
            if down:
                self.start(rng.choice(down))
        elif r < w[6]:
            ids = self.ids[:]
            rng.shuffle(ids)
            leaders = [n.id for n in alive if n.core.role is Role.LEADER]
            if leaders and rng.random() < 0.5:
                ids.remove(leaders[0])
                ids.insert(0, leaders[0])  # often cut the leader off with a minority
            self.partition(ids[: rng.randint(1, (len(ids) + 1) // 2)])
        else:
            self.heal()

    def run_random(self, events: int) -> None:
        for k in range(events):
            self.random_step()
            if k % 64 == 63:
                self.check_deep()
        self.check_deep()

    def check_liveness(self, max_rounds: int | None = None) -> int:
        """Heal everything, stop faults, and require a leader that commits a new entry on
        every node. Returns the rounds it took (one round = every node ticks once)."""
        for node in list(self.nodes.values()):
            if node.core is None:
                self.start(node.id)
        self.heal()
        self.drop = self.dup = self.crash_in_ready = 0.0
        marker: tuple[int, bytes] | None = None
        rounds = max_rounds if max_rounds is not None else self.liveness_rounds()
        for k in range(rounds):
            if marker and all(
                len(n.sm) >= marker[0] and n.sm[marker[0] - 1] == marker[1] for n in self.alive()
            ):
                self.check_deep()
                return k
            leaders = sorted((n.core.term, n.id) for n in self.alive() if n.core.role is Role.LEADER)
            if leaders and (marker is None or not self._marker_alive(marker)):
                data = f"live{k}".encode()
                index = self.propose(leaders[-1][1], data)
                marker = (index, data)
            self.time_step()
        raise LivenessFailure(f"no leader committed a new entry within {rounds} rounds after healing")

    def election_period(self) -> int:
        """Ticks an election attempt takes here: the election timeout, or the round trips the
        attempt needs when they are longer.

        Raft elects a leader promptly only while a round trip is well within the election
        timeout. A candidate's requests leave once its term and vote are written (a write is
        up to a tick with ``async_writes``: the disk answers at the next step), travel up to
        ``max_delay``, wait for the voter's write, and the grant travels back; the leader's
        first append then needs the same to be acknowledged before the voters' and the
        leader's own check-quorum timers run out. With election_ticks=3, max_delay=2 and
        async writes that is 2 * (2 + 1) = 6 ticks against timeouts of 3 to 5: an attempt
        succeeds only when its delays happen to be short, so such schedules need more
        attempts than the others, and a bound in election timeouts alone is too tight for
        them (and too loose for the rest, were it widened for them).
        """
        write = 1 if self.async_writes else 0
        return max(self.config.election_ticks, 2 * (self.max_delay + write))

    def liveness_rounds(self) -> int:
        """The rounds :meth:`check_liveness` allows: 60 election periods. Over schedules 0 to
        4999 the slowest needed 21 periods (85 rounds, election_ticks=3, max_delay=2)."""
        return 60 * self.election_period()

    def _marker_alive(self, marker: tuple[int, bytes]) -> bool:
        """Is the marker still in some current leader's log (so it may yet commit)?"""
        index, data = marker
        for n in self.alive():
            if n.core.role is Role.LEADER:
                ents = n.core.entries_from(index)
                if ents and ents[0].index == index and ents[0].data == data:
                    return True
        return False

    def describe(self) -> str:
        lines = [
            self.setup,
            f"events={self.events} committed={self.max_committed}",
        ]
        for node in self.nodes.values():
            c = node.core
            state = (
                "down"
                if c is None
                else f"{c.role.value} term={c.term} commit={c.commit_index} last={c.last_index}"
            )
            lines.append(f"  {node.id}: {state} applied={len(node.sm)}")
        lines.append("last events:")
        lines.extend("  " + " ".join(str(part) for part in e) for e in self.trace)
        return "\n".join(lines)


def run_schedule(seed: int, events: int | None = None) -> Sim:
    """One random schedule plus a liveness check; raises with the sim attached on failure."""
    sim = Sim(seed, async_writes=seed % 2 == 1)
    n_events = events if events is not None else sim.rng.randint(100, 250)
    try:
        sim.run_random(n_events)
        sim.check_liveness()
    except AssertionError as exc:
        exc.sim = sim  # type: ignore[attr-defined]
        raise
    return sim
