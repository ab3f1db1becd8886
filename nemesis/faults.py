"""The fault registry: every fault the nemesis can inject, in one table.

Each fault says what it does, what it needs (a network mechanism to cut, failpoints armed in
the nodes, the kernel's netem qdisc when the network is namespaces), how it starts and stops
(its ``action``: one starter and one stopper in ``Nemesis`` per action), whom it hits and how
the plots name its band. The schedule, the plan validator, the plots and the README's list of
faults all read this table (``tests/nemesis/test_nemesis_schedule.py`` holds the README to it).

No fault needs root by itself: the proxy network carries every network fault without it
(network namespaces, the faithful mechanism, need root; see ``nemesis/network.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

# How a fault starts and stops (the stop undoes the start):
#   partition: cut node pairs / heal;  kill: SIGKILL / restart;  pause: SIGSTOP / SIGCONT;
#   slow: delay or drop traffic / clear;  script: a scripted sequence / heal everything;
#   garbage: throw malformed input at every node's ports / stop throwing.
Action = Literal["partition", "kill", "pause", "slow", "script", "garbage"]
# Whom it hits: the current leader, a random minority, every node, a minority or every node
# (an even draw), or the nodes its partition shape separates.
Target = Literal["leader", "minority", "all", "minority-or-all", "shape"]
Need = Literal["network", "failpoints", "netem"]


@dataclass(frozen=True)
class Fault:
    """One fault: ``shape`` is a partition's fixed shape (None for one drawn each time)."""

    name: str
    description: str
    action: Action
    target: Target
    needs: frozenset[Need] = frozenset()
    shape: str | None = None
    link: Literal["delay", "loss"] | None = None  # a slow fault's link fault
    min_nodes: int = 1  # a smaller cluster has nothing for it to hit (the plan refuses it)

    def band(self, value: Any) -> str:
        """What the plots call its band: a partition of a drawn shape is ``partition (ring)``."""
        return _band(self.name, value)


_NET = frozenset({"network"})


def _partition(shape: str, description: str, min_nodes: int = 1) -> Fault:
    return Fault(f"partition-{shape}", description, "partition", "shape", _NET, shape, min_nodes=min_nodes)


_TABLE = (
    Fault(
        "partition",
        "a network partition of a random shape each time (halves, one, leader, ring, bridge)",
        "partition",
        "shape",
        _NET,
    ),
    _partition("halves", "split the nodes into two halves (a majority and a minority)"),
    _partition("one", "isolate one random node"),
    _partition("leader", "isolate the current leader"),
    _partition(
        "follower",
        "isolate one node that is not the current leader: it may serve stale reads until it "
        "notices, while the leader keeps its majority",
        min_nodes=2,
    ),
    _partition("ring", "majorities ring: every node sees a majority, no two the same one"),
    _partition("bridge", "two halves that only talk through one bridge node"),
    Fault("kill", "kill -9 a random minority of nodes, restart them at the stop", "kill", "minority"),
    Fault("kill-leader", "kill -9 the current leader, restart it at the stop", "kill", "leader"),
    Fault("kill-all", "kill -9 every node, restart them all at the stop", "kill", "all"),
    Fault("pause", "SIGSTOP a random minority of nodes, SIGCONT them at the stop", "pause", "minority"),
    Fault("pause-leader", "SIGSTOP the current leader, SIGCONT it at the stop", "pause", "leader"),
    Fault(
        "delay",
        "delay traffic to and from a random minority or all nodes by 50-200 ms",
        "slow",
        "minority-or-all",
        frozenset({"network", "netem"}),
        link="delay",
    ),
    Fault(
        "loss",
        "drop 20% of the traffic to and from a random minority or all nodes",
        "slow",
        "minority-or-all",
        _NET,
        link="loss",
    ),
    Fault(
        "garbage",
        "throw malformed input at every node's client and peer ports (see nemesis/garbage.py)",
        "garbage",
        "all",
    ),
    Fault(
        "crash-voters",
        "voters crash right after electing a leader, which is paused while the rest elect "
        "another (see nemesis/crash_voters.py)",
        "script",
        "leader",
        frozenset({"network", "failpoints"}),
    ),
)

FAULTS: MappingProxyType[str, Fault] = MappingProxyType({fault.name: fault for fault in _TABLE})


def needing(need: Need) -> frozenset[str]:
    """The faults that need ``need``."""
    return frozenset(name for name, fault in FAULTS.items() if need in fault.needs)


def with_action(*actions: Action) -> frozenset[str]:
    """The faults that start and stop by one of ``actions``."""
    return frozenset(name for name, fault in FAULTS.items() if fault.action in actions)


NETWORK_FAULTS = needing("network")  # need a network mechanism to cut
FAILPOINT_FAULTS = needing("failpoints")  # need nodes started with failpoints allowed
PARTITIONS = with_action("partition")
PARTITION_SHAPES = MappingProxyType({f.name: f.shape for f in _TABLE if f.shape is not None})
KILLS = with_action("kill")
PAUSES = with_action("pause")


def band_name(fault: str, value: Any) -> str:
    """How the plots name a fault's band; a name outside the table (an event the node checks
    marked) follows the same rule."""
    known = FAULTS.get(fault)
    return known.band(value) if known is not None else _band(fault, value)


def _band(name: str, value: Any) -> str:
    shape = value.get("shape") if isinstance(value, dict) else None
    return name if not shape or str(shape) in name else f"{name} ({shape})"
