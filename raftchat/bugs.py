"""The deliberate bugs (``raftchat node --bug NAME``): one table that every layer reads.

A bug is switched on only for the harness's self-test, to prove that the checks catch it.
Each entry says where it lives (the layer that tests its switch), what it breaks, and the
plan overrides (workload, faults, pacing) that give it a chance to show in a real run;
``harness selftest`` runs that plan. The plans are plain data so that this module stays
free of harness imports (nodes never import the harness).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Layer = Literal["node", "raft", "sessions", "storage"]

STALE_READ = "stale-read"
LEADER_READ_WITHOUT_QUORUM = "leader-read-without-quorum"
NO_DEDUP = "no-dedup"
FORGET_VOTE = "forget-vote"
LOSE_UNSYNCED = "lose-unsynced"
COMMIT_PREVIOUS_TERM = "commit-previous-term"
SKIP_AFTER_RESTORE = "skip-after-restore"
SNAPSHOT_DROPS_LAST_KEY = "snapshot-drops-last-key"
ASSERT_AFTER_RESTORE = "assert-after-restore"


@dataclass(frozen=True)
class Bug:
    """One deliberate bug: its switch name, the layers that test the switch, what it breaks,
    and the self-test plan (overrides of the run plan) that exposes it."""

    name: str
    layers: tuple[Layer, ...]
    description: str
    selftest: dict[str, Any] = field(default_factory=dict)
    # Real runs do not show it (the simulated-network tests do): the self-test does not
    # count a miss against it by default.
    hidden_in_real_runs: bool = False


_TABLE = (
    Bug(
        STALE_READ,
        ("node",),
        # An isolated follower keeps answering with what it had.
        "followers answer reads from their own state",
        {"workload": "register", "nemesis": ["partition-one", "partition-halves"]},
    ),
    Bug(
        LEADER_READ_WITHOUT_QUORUM,
        ("node", "raft"),
        # Cut off from the others, it keeps answering reads while the majority elects another
        # leader and moves on.
        "a leader reads locally without confirming its leadership, and never steps down "
        "when it stops hearing from a quorum",
        {"workload": "register", "nemesis": ["partition-leader"], "nemesis_interval": 3},
    ),
    Bug(
        NO_DEDUP,
        ("sessions",),
        # Clients give up on an attempt after 50 ms (as client libraries with short deadlines
        # do) and retry the same request, here and at new leaders after the leader is paused
        # or killed: a correct server answers the retry from its session.
        "a retried write is applied twice",
        {
            "workload": "chat",
            "nemesis": ["pause-leader", "kill-leader"],
            "rate": 500,
            "concurrency": 20,
            "nemesis_interval": 3,
            "attempt_timeout": 0.05,
        },
    ),
    Bug(
        FORGET_VOTE,
        ("storage",),
        # Voters crash right after voting (a failpoint), come back, and are asked again in
        # the same term (see nemesis/crash_voters.py).
        "a restarted node forgets its vote and votes twice in a term",
        {"workload": "register", "nemesis": ["crash-voters"], "nemesis_interval": 3},
    ),
    Bug(
        LOSE_UNSYNCED,
        ("storage",),
        # Crash everyone at once.
        "a restarted node loses its last acknowledged log entries",
        {"workload": "chat", "nemesis": ["kill-all"], "nemesis_interval": 3},
    ),
    Bug(
        COMMIT_PREVIOUS_TERM,
        ("raft",),
        # Figure 8 needs a leader to crash with entries on a minority, again and again.
        "a leader commits an entry of an earlier term by counting replicas (figure 8)",
        {"workload": "register", "nemesis": ["kill-leader", "partition-leader"], "nemesis_interval": 2},
        hidden_in_real_runs=True,
    ),
    # Bugs that clients of a short run rarely see, caught by the node checks. Each strikes when
    # a node restores a snapshot: killed nodes restart from their own, and catch up by the
    # leader's InstallSnapshot when they missed more than the leader keeps (snapshot_every).
    Bug(
        SKIP_AFTER_RESTORE,
        ("sessions",),
        "a node loses the first entry it applies after a snapshot restore: its chain diverges",
        {"workload": "chat", "nemesis": ["kill"], "nemesis_interval": 3},
    ),
    Bug(
        SNAPSHOT_DROPS_LAST_KEY,
        ("sessions",),
        # A node restored from one holds another state, and answers the next operations on
        # that user differently.
        "snapshots lose the state's last key (the newest chat user, the last kv key)",
        {"workload": "chat", "nemesis": ["kill"], "nemesis_interval": 3},
    ),
    Bug(
        ASSERT_AFTER_RESTORE,
        ("sessions",),
        "a node fails an internal check on its first entry after a restore (a traceback in its log)",
        {"workload": "register", "nemesis": ["kill"], "nemesis_interval": 3},
    ),
)

BUGS: MappingProxyType[str, Bug] = MappingProxyType({bug.name: bug for bug in _TABLE})
ALL_BUGS: frozenset[str] = frozenset(BUGS)


def in_layer(layer: Layer) -> frozenset[str]:
    """The bug switches that ``layer`` tests."""
    return frozenset(bug.name for bug in _TABLE if layer in bug.layers)
