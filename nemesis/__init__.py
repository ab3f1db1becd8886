"""Fault injection: network partitions, link faults, crashes and pauses.

``Nemesis`` runs the schedule of the faults that ``FAULTS`` (the registry, ``faults.py``)
lists; ``choose_network`` picks how node-to-node traffic is cut (namespaces or proxies); the
partition shapes are pure functions of the node ids and a seeded ``random.Random``.
"""

from nemesis.faults import FAILPOINT_FAULTS, FAULTS, NETWORK_FAULTS, Fault
from nemesis.network import NetworkUnavailable, choose_network
from nemesis.process import ProcessFaults, process_state, random_minority
from nemesis.schedule import Nemesis
from nemesis.shapes import (
    ALL_SHAPES,
    SHAPES,
    bridge,
    components,
    describe,
    halves,
    isolate,
    isolate_follower,
    isolate_leader,
    isolate_random,
    majorities_ring,
    make_cut,
    reaches,
)

__all__ = [
    "ALL_SHAPES",
    "FAILPOINT_FAULTS",
    "FAULTS",
    "Fault",
    "NETWORK_FAULTS",
    "SHAPES",
    "Nemesis",
    "NetworkUnavailable",
    "ProcessFaults",
    "bridge",
    "choose_network",
    "components",
    "describe",
    "halves",
    "isolate",
    "isolate_follower",
    "isolate_leader",
    "isolate_random",
    "majorities_ring",
    "make_cut",
    "process_state",
    "random_minority",
    "reaches",
]
