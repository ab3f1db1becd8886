"""The ``crash-voters`` fault: give a forgotten vote the chance to elect a second leader.

A node that forgets its vote across a crash can vote twice in one term, but only if it
crashes in the instant between granting the vote and hearing from the leader it elected,
and another candidate asks it in that same term. Random kills almost never land there, so
this fault makes the instant happen, with nothing a correct Raft cannot survive:

1. Cut the cluster into a majority of followers (the *electors*) and the rest (the current
   leader among them). Arm the ``crash-after-vote`` failpoint on the electors: whoever of them
   campaigns first is elected by the others, which exit right after voting.
2. Pause the one elector left (the new leader) and connect the rest as a star around one
   follower from outside the electors (the *center*): the center is the only node that can
   reach a majority, so it is the one that campaigns, one term after its own, which is the
   term the crashed voters voted in. Restart the crashed voters. The paused leader stays cut
   off from the outside nodes only (what it sent them before pausing must not arrive), so
   when it resumes its fresh connections to the restarted voters answer at once.
   A correct voter remembers its vote and refuses, and the center wins a term later.
3. Heal the network and resume the paused leader. With the vote forgotten, two leaders of
   the same term now replicate to the same followers, and clients see two histories.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from itertools import combinations
from typing import Any

from nemesis import shapes
from nemesis.net.base import Network
from nemesis.process import Cluster, ProcessFaults

FAILPOINT = "crash-after-vote"
ELECTION_WAIT = 3.0  # seconds for each election of the script to happen
POLL = 0.005

InThread = Callable[..., Awaitable[dict[str, Any]]]


async def crash_voters(
    cluster: Cluster,
    network: Network,
    processes: ProcessFaults,
    rng: random.Random,
    leader: str,
    in_process_thread: InThread,
    value: dict[str, Any],
) -> None:
    """Run the script, filling ``value`` with what was done (it is recorded even on failure).
    Whatever is left cut, paused or down is undone by the fault's stop."""
    nodes = sorted(cluster.ids)
    followers = sorted(n for n in nodes if n != leader)
    rng.shuffle(followers)
    electors = sorted(followers[: shapes.majority(len(nodes))])
    outside = sorted(set(nodes) - set(electors))
    value.update(electors=electors, outside=outside)

    # 1. the electors elect one of themselves and the voters crash
    armed = [n for n in electors if await asyncio.to_thread(cluster.arm, n, FAILPOINT)]
    await asyncio.to_thread(network.cut, set(shapes.between(electors, outside)))
    value["armed"] = armed
    crashed = await _wait_for_exits(cluster, electors, len(electors) - 1)
    survivors = [n for n in electors if n not in crashed]
    for node in survivors:
        await asyncio.to_thread(cluster.arm, node, None)
    processes.crashed(crashed)
    value["crashed"] = crashed
    status = await asyncio.to_thread(cluster.status, survivors[0]) if len(survivors) == 1 else None
    if not status or status["role"] != "leader":
        value["note"] = "the electors did not elect a leader with crashing voters: nothing more done"
        await in_process_thread(processes.restart)
        return
    first = value["first_leader"] = {"node": survivors[0], "term": status["term"]}

    # 2. pause that leader; a star around one outside node elects a second one
    await in_process_thread(processes.pause, [first["node"]])
    center = rng.choice([n for n in outside if n != leader] or outside)
    spokes = [n for n in nodes if n not in (center, first["node"])]
    star = {shapes.pair(a, b) for a, b in combinations(spokes, 2)}
    await asyncio.to_thread(network.cut, star | shapes.between([first["node"]], outside))
    value["center"] = center
    value["restarted"] = (await in_process_thread(processes.restart))["nodes"]
    second = await _wait_for_leader(cluster, center, first["term"])
    value["second_leader"] = second and {"node": center, "term": second["term"]}
    if second and second["term"] == first["term"]:
        value["note"] = f"two leaders in term {first['term']}: {first['node']} and {center}"

    # 3. everyone meets again
    await asyncio.to_thread(network.heal)
    value["resumed"] = (await in_process_thread(processes.resume))["nodes"]


async def _wait_for_exits(cluster: Cluster, nodes: list[str], count: int) -> list[str]:
    """Nodes among ``nodes`` that exited, once ``count`` have (or the wait is over)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ELECTION_WAIT
    while True:
        gone = [n for n in nodes if not cluster.alive(n)]
        if len(gone) >= count or loop.time() >= deadline:
            return gone
        await asyncio.sleep(POLL)


async def _wait_for_leader(cluster: Cluster, node: str, term: int) -> dict[str, Any] | None:
    """``node``'s status once it leads in ``term`` or later (None if not within the wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ELECTION_WAIT
    while loop.time() < deadline:
        status = await asyncio.to_thread(cluster.status, node)
        if status and status["role"] == "leader" and status["term"] >= term:
            return status
        await asyncio.sleep(0.02)
    return None
