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
from nemesis.faults import FAULTS, NETWORK_FAULTS, Fault
from nemesis.net.base import Network
from nemesis.process import PROCESS_THREAD, Cluster, ProcessFaults, random_minority

DELAY_MS = (50, 200)  # drawn uniformly, in whole ms; jitter is a fifth of it
LOSS = 0.2
LEADER_WAIT = 3.0  # at most this long to find a leader to hit (an election after kill-all takes ~1 s)
# The share of "kill" and "pause" faults whose random minority includes the leader, and of
# "halves" and "one" partitions that put it on the minority side. Drawn uniformly, a minority
# of 5 holds the leader 3 times in 10 (of 3: 1 in 3), yet a leader that dies, stalls or is cut
# off with entries nobody else has is what puts log repair, commit counting, elections between
# unequal logs and a new leader's first reads to work; followers alone rarely do.
LEADER_SHARE = 0.5
MINORITY_SHAPES = frozenset({"halves", "one"})  # clean cuts with a smaller side

Record = Callable[[str, Any, str, Any], None]


@dataclass
class Active:
    """The fault in effect: what to undo at the stop, and what its start recorded."""

    name: str
    kind: str  # the fault's action (faults.Action), or "none" when nothing could be done
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
        needs_netem = sorted(f for f in faults if "netem" in FAULTS[f].needs)
        if needs_netem and netem is not None and not netem():
            raise ValueError(
                f"the {', '.join(repr(f) for f in needs_netem)} fault cannot run on the {network.name} "
                "network here: the kernel lacks the netem qdisc (the proxy network emulates delay)"
            )
        if interval <= 0:
            raise ValueError(f"the nemesis interval must be positive, got {interval!r}")
        too_few = sorted(f for f in faults if len(cluster.ids) < FAULTS[f].min_nodes)
        if too_few:
            raise ValueError(
                f"fault(s) {', '.join(too_few)} need at least "
                f"{max(FAULTS[f].min_nodes for f in too_few)} nodes; the cluster has {len(cluster.ids)}"
            )
        self.cluster = cluster
        self.network = network
        self.faults = list(faults)
        self.interval = interval
        self.rng = rng
        self.record = record
        self.on_state = on_state
        self.leader_wait = LEADER_WAIT
        self.processes = ProcessFaults(cluster)
        # Its own stream, seeded from the run's without drawing from it, so every other draw
        # (faults, shapes, targets) is what the seed always gave.
        self.leader_rng = random.Random(repr(rng.getstate()))
        self.active: Active | None = None
        self.thrower: garbage.Thrower | None = None
        if any(FAULTS[f].action == "garbage" for f in faults):
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
        fault = FAULTS[name]
        nodes = list(self.cluster.ids)
        value: dict[str, Any] = {"fault": name}
        self.active = Active(name, "none", value)
        if fault.action == "partition":
            value["shape"] = fault.shape or self.rng.choice(shapes.SHAPES)
        leader = None
        if fault.target == "leader" or value.get("shape") in shapes.LEADER_SHAPES:
            leader = value["leader"] = await self._leader()
            if leader is None:
                value.update(action="none", nodes=[], note="no leader found: nothing done")
                return value
        self.active.kind = fault.action  # set first: the stop undoes a start that failed halfway
        starters = {
            "partition": self._start_partition,
            "kill": self._start_process_fault,
            "pause": self._start_process_fault,
            "slow": self._start_slow,
            "script": self._start_script,
            "garbage": self._start_garbage,
        }
        await starters[fault.action](fault, nodes, leader, value)
        return value

    async def _start_partition(self, fault: Fault, nodes: list[str], leader: str | None, value: dict) -> None:
        shape = value["shape"]
        cut = shapes.make_cut(shape, nodes, self.rng, leader)
        if shape in MINORITY_SHAPES and self.leader_rng.random() < LEADER_SHARE:
            leader = await self._leader()
            if leader is not None:
                value["leader"] = leader
                cut = shapes.leader_to_minority(nodes, cut, leader, self.leader_rng)
        await asyncio.to_thread(self.network.cut, set(cut))
        value.update(action="cut", **shapes.describe(nodes, cut))
        if shape == "bridge" and (middle := shapes.bridge_node(nodes, cut)) is not None:
            value["bridge"] = middle

    async def _start_process_fault(
        self, fault: Fault, nodes: list[str], leader: str | None, value: dict
    ) -> None:
        if leader is not None:
            targets = [leader]
        elif fault.target == "all":
            targets = nodes
        else:
            targets = random_minority(nodes, self.rng)
            if self.leader_rng.random() < LEADER_SHARE:
                targets = await self._with_leader(targets, value)
        act = self.processes.kill if fault.action == "kill" else self.processes.pause
        value.update(action=fault.action, **await self._in_process_thread(act, targets))

    async def _with_leader(self, targets: list[str], value: dict) -> list[str]:
        """The minority with the current leader in place of one of its nodes (if it lacks it)."""
        leader = await self._leader()
        if leader is None or leader in targets:
            return targets
        value["leader"] = leader
        swapped = list(targets)
        swapped[self.leader_rng.randrange(len(swapped))] = leader
        return sorted(swapped)

    async def _start_slow(self, fault: Fault, nodes: list[str], leader: str | None, value: dict) -> None:
        targets = nodes if self.rng.random() < 0.5 else random_minority(nodes, self.rng)
        if fault.link == "delay":
            delay = self.rng.randint(*DELAY_MS)
            link = {"delay_ms": delay, "jitter_ms": delay // 5}
        else:
            link = {"loss": LOSS}
        await asyncio.to_thread(self.network.slow, targets, **link)
        value.update(action="slow", nodes=targets, **link)

    async def _start_garbage(self, fault: Fault, nodes: list[str], leader: str | None, value: dict) -> None:
        targets = garbage.targets_of(self.cluster)
        self.thrower = garbage.Thrower(targets, nodes, random.Random(self.rng.random()))
        self.thrower.start()
        value.update(action="garbage", nodes=nodes, rate=self.thrower.rate)

    async def _start_script(self, fault: Fault, nodes: list[str], leader: str | None, value: dict) -> None:
        value["action"] = "script"
        args = (self.cluster, self.network, self.processes, self.rng, leader, self._in_process_thread)
        await crash_voters(*args, value)

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
        stoppers = {
            "partition": self._heal_partition,
            "kill": self._restart,
            "pause": self._resume,
            "slow": self._clear_slow,
            "script": self._heal_script,
            "garbage": self._stop_garbage,
        }
        stop = stoppers.get(active.kind)
        if stop is None:
            value["action"] = "none"
        else:
            await stop(active, value)
        self.active = None
        self.record("info", "nemesis", "stop", value)
        self._state("none")
        return value

    async def _heal_partition(self, active: Active, value: dict[str, Any]) -> None:
        await asyncio.to_thread(self.network.heal)
        value.update(action="heal", cut=active.value.get("cut", []))

    async def _restart(self, active: Active, value: dict[str, Any]) -> None:
        value.update(action="restart", **await self._in_process_thread(self.processes.restart))

    async def _resume(self, active: Active, value: dict[str, Any]) -> None:
        value.update(action="resume", **await self._in_process_thread(self.processes.resume))

    async def _clear_slow(self, active: Active, value: dict[str, Any]) -> None:
        await asyncio.to_thread(self.network.clear_slow)
        value.update(action="clear", nodes=active.value.get("nodes", []))

    async def _stop_garbage(self, active: Active, value: dict[str, Any]) -> None:
        if self.thrower is None:
            value["action"] = "none"
            return
        value.update(action="stop", **await self.thrower.stop())
        self.thrower = None

    async def _heal_script(self, active: Active, value: dict[str, Any]) -> None:
        await asyncio.to_thread(self.network.heal)
        healed = await self._in_process_thread(self.processes.heal)
        restarted, resumed = healed["restarted"]["nodes"], healed["resumed"]["nodes"]
        value.update(action="heal", restarted=restarted, resumed=resumed)

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
