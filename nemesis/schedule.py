"""The nemesis schedule: every ``interval`` seconds start a random fault, then stop it.

One fault is active at a time and every start and stop goes into the history as a
``process="nemesis", type="info"`` event whose value says exactly what was done (which pairs
were cut, which pids were killed...), so a failing run can be explained and replayed.
Faults are chosen with the run's seeded ``random.Random``, so the sequence of faults and of
their targets repeats with the seed (the leader they hit depends on the cluster).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nemesis import garbage, shapes
from nemesis.crash_voters import crash_voters
from nemesis.net.base import Network
from nemesis.process import PROCESS_THREAD, Cluster, ProcessFaults, random_minority

FAULTS: dict[str, str] = {
    "partition": "a network partition of a random shape each time (halves, one, leader, ring, bridge)",
    "partition-halves": "split the nodes into two halves (a majority and a minority)",
    "partition-one": "isolate one random node",
    "partition-leader": "isolate the current leader",
    "partition-ring": "majorities ring: every node sees a majority, no two the same one",
    "partition-bridge": "two halves that only talk through one bridge node",
    "kill": "kill -9 a random minority of nodes, restart them at the stop",
    "kill-leader": "kill -9 the current leader, restart it at the stop",
    "kill-all": "kill -9 every node, restart them all at the stop",
    "pause": "SIGSTOP a random minority of nodes, SIGCONT them at the stop",
    "pause-leader": "SIGSTOP the current leader, SIGCONT it at the stop",
    "delay": "delay traffic to and from a random minority or all nodes by 50-200 ms",
    "loss": "drop 20% of the traffic to and from a random minority or all nodes",
    "garbage": "throw malformed input at every node's client and peer ports (see nemesis/garbage.py)",
    "crash-voters": "voters crash right after electing a leader, which is paused while the rest elect "
    "another (see nemesis/crash_voters.py)",
}

PARTITION_SHAPES = {
    "partition-halves": "halves",
    "partition-one": "one",
    "partition-leader": "leader",
    "partition-ring": "ring",
    "partition-bridge": "bridge",
}
PARTITIONS = frozenset({"partition", *PARTITION_SHAPES})
NETWORK_FAULTS = PARTITIONS | {"delay", "loss", "crash-voters"}  # need a network to cut
FAILPOINT_FAULTS = frozenset({"crash-voters"})  # need nodes started with failpoints allowed
KILLS = frozenset({"kill", "kill-leader", "kill-all"})
PAUSES = frozenset({"pause", "pause-leader"})

DELAY_MS = (50, 200)  # drawn uniformly, in whole ms; jitter is a fifth of it
LOSS = 0.2
LEADER_WAIT = 3.0  # at most this long to find a leader to hit (an election after kill-all takes ~1 s)

Record = Callable[[str, Any, str, Any], None]


@dataclass
class Active:
    """The fault in effect: what to undo at the stop, and what its start recorded."""

    name: str
    # "partition", "kill", "pause", "slow", "script", "garbage", or "none" when nothing could be done
    kind: str
    value: dict[str, Any] = field(default_factory=dict)


class Nemesis:
    """Starts and stops faults on a cluster, recording each step in the history."""

    def __init__(
        self,
        cluster: Cluster,
        network: Network | None,
        faults: list[str],
        interval: float,
        rng: random.Random,
        record: Record,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown fault(s) {', '.join(unknown)} (known: {', '.join(FAULTS)})")
        if not faults:
            raise ValueError("a nemesis needs at least one fault")
        needs_network = sorted(set(faults) & NETWORK_FAULTS)
        if needs_network and network is None:
            raise ValueError(f"fault(s) {', '.join(needs_network)} need a network mechanism (netns or proxy)")
        netem = getattr(network, "netem_available", None)  # netns: delay needs the kernel's netem
        if "delay" in faults and netem is not None and not netem():
            raise ValueError(
                f"the 'delay' fault cannot run on the {network.name} network here: the kernel lacks the "
                "netem qdisc (the proxy network emulates delay)"
            )
        if interval <= 0:
            raise ValueError(f"the nemesis interval must be positive, got {interval!r}")
        self.cluster = cluster
        self.network = network
        self.faults = list(faults)
        self.interval = interval
        self.rng = rng
        self.record = record
        self.on_state = on_state
        self.leader_wait = LEADER_WAIT
        self.processes = ProcessFaults(cluster)
        self.active: Active | None = None
        self.thrower: garbage.Thrower | None = None
        if "garbage" in faults:
            garbage.targets_of(cluster)  # refuse now a cluster whose ports are unknown
        self._lock = asyncio.Lock()  # start, stop and heal_all never interleave

    # ------------------------------------------------------------------ schedule

    async def run(self, stop: asyncio.Event) -> None:
        """Alternate quiet and faulty intervals until ``stop`` is set; the last fault is stopped."""
        try:
            while not await self._wait(stop):
                await self.start_fault(self.rng.choice(self.faults))
                if await self._wait(stop):
                    break
                await self.stop_fault()
        finally:
            await self.stop_fault()

    async def _wait(self, stop: asyncio.Event) -> bool:
        """Sleep one interval; True if ``stop`` was set meanwhile."""
        try:
            await asyncio.wait_for(stop.wait(), self.interval)
        except TimeoutError:
            return False
        return True

    def _state(self, text: str) -> None:
        if self.on_state is not None:
            self.on_state(text)

    # ------------------------------------------------------------------ start

    async def start_fault(self, name: str) -> dict[str, Any]:
        """Start one fault (stopping any active one first); returns the value recorded."""
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}")
        async with self._lock:
            await self._stop_active()
            try:
                value = await self._start(name)
            except Exception as exc:  # recorded half-done; the stop still undoes whatever took effect
                value = {**(self.active.value if self.active else {"fault": name}), "error": repr(exc)}
                self.record("info", "nemesis", "start", value)
                raise
            self.record("info", "nemesis", "start", value)
            self._state(name if name != "partition" else f"partition: {value.get('shape', '?')}")
            return value

    async def _start(self, name: str) -> dict[str, Any]:
        nodes = list(self.cluster.ids)
        value: dict[str, Any] = {"fault": name}
        self.active = Active(name, "none", value)
        shape = None
        if name in PARTITIONS:
            shape = PARTITION_SHAPES.get(name) or self.rng.choice(shapes.SHAPES)
            value["shape"] = shape
        leader = None
        if name in ("kill-leader", "pause-leader", "crash-voters") or shape == "leader":
            leader = value["leader"] = await self._leader()
            if leader is None:
                value.update(action="none", nodes=[], note="no leader found: nothing done")
                return value
        if name == "crash-voters":
            self.active.kind = "script"
            value["action"] = "script"
            args = (self.cluster, self.network, self.processes, self.rng, leader, self._in_process_thread)
            await crash_voters(*args, value)
        elif shape is not None:
            cut = shapes.make_cut(shape, nodes, self.rng, leader)
            self.active.kind = "partition"
            await asyncio.to_thread(self.network.cut, set(cut))
            value.update(action="cut", **shapes.describe(nodes, cut))
            if shape == "bridge" and (middle := shapes.bridge_node(nodes, cut)) is not None:
                value["bridge"] = middle
        elif name == "garbage":
            self.active.kind = "garbage"
            targets = garbage.targets_of(self.cluster)
            self.thrower = garbage.Thrower(targets, nodes, random.Random(self.rng.random()))
            self.thrower.start()
            value.update(action="garbage", nodes=nodes, rate=self.thrower.rate)
        elif name in KILLS or name in PAUSES:
            if leader is not None:
                targets = [leader]
            elif name == "kill-all":
                targets = nodes
            else:
                targets = random_minority(nodes, self.rng)
            self.active.kind = "kill" if name in KILLS else "pause"
            act = self.processes.kill if name in KILLS else self.processes.pause
            value.update(action=self.active.kind, **await self._in_process_thread(act, targets))
        else:  # delay, loss
            targets = nodes if self.rng.random() < 0.5 else random_minority(nodes, self.rng)
            if name == "delay":
                delay = self.rng.randint(*DELAY_MS)
                link = {"delay_ms": delay, "jitter_ms": delay // 5}
            else:
                link = {"loss": LOSS}
            self.active.kind = "slow"
            await asyncio.to_thread(self.network.slow, targets, **link)
            value.update(action="slow", nodes=targets, **link)
        return value

    async def _in_process_thread(self, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        """Run a process fault off the event loop, in the thread that outlives it (see process.py)."""
        return await asyncio.get_running_loop().run_in_executor(PROCESS_THREAD, fn, *args)

    async def _leader(self) -> str | None:
        """The current leader, waiting a little for one (an election may be under way)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.leader_wait
        while True:
            leader = await asyncio.to_thread(self.cluster.leader)
            if leader is not None or loop.time() >= deadline:
                return leader
            await asyncio.sleep(0.1)

    # ------------------------------------------------------------------ stop and heal

    async def stop_fault(self) -> dict[str, Any] | None:
        """Undo the active fault, if any; returns the value recorded."""
        async with self._lock:
            return await self._stop_active()

    async def _stop_active(self) -> dict[str, Any] | None:
        active = self.active
        if active is None:
            return None
        value: dict[str, Any] = {"fault": active.name}
        if "shape" in active.value:
            value["shape"] = active.value["shape"]
        if active.kind == "partition":
            await asyncio.to_thread(self.network.heal)
            value.update(action="heal", cut=active.value.get("cut", []))
        elif active.kind == "kill":
            value.update(action="restart", **await self._in_process_thread(self.processes.restart))
        elif active.kind == "pause":
            value.update(action="resume", **await self._in_process_thread(self.processes.resume))
        elif active.kind == "slow":
            await asyncio.to_thread(self.network.clear_slow)
            value.update(action="clear", nodes=active.value.get("nodes", []))
        elif active.kind == "garbage" and self.thrower is not None:
            value.update(action="stop", **await self.thrower.stop())
            self.thrower = None
        elif active.kind == "script":
            await asyncio.to_thread(self.network.heal)
            healed = await self._in_process_thread(self.processes.heal)
            restarted, resumed = healed["restarted"]["nodes"], healed["resumed"]["nodes"]
            value.update(action="heal", restarted=restarted, resumed=resumed)
        else:
            value["action"] = "none"
        self.active = None
        self.record("info", "nemesis", "stop", value)
        self._state("none")
        return value

    async def heal_all(self) -> dict[str, Any]:
        """Stop the active fault, then undo everything still in effect: partitions, link faults,
        kills and pauses. Every step is attempted; the first error is raised after recording."""
        async with self._lock:
            errors: list[BaseException] = []
            try:
                await self._stop_active()
            except Exception as exc:
                errors.append(exc)
                self.active = None
            value: dict[str, Any] = {"fault": "heal-all", "action": "heal"}
            if self.network is not None:
                value["network"] = "healed"
                for step in (self.network.heal, self.network.clear_slow):
                    try:
                        await asyncio.to_thread(step)
                    except Exception as exc:
                        errors.append(exc)
                        value["network"] = "failed"
            try:
                healed = await self._in_process_thread(self.processes.heal)
                value["restarted"] = healed["restarted"]["nodes"]
                value["resumed"] = healed["resumed"]["nodes"]
                value["pids"] = {**healed["resumed"]["pids"], **healed["restarted"]["pids"]}
            except Exception as exc:
                errors.append(exc)
            if errors:
                value["errors"] = [f"{type(e).__name__}: {e}" for e in errors]
            self.record("info", "nemesis", "heal", value)
            self._state("none")
            if errors:
                raise errors[0]
            return value
