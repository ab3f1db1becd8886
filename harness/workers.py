"""Client workers: Jepsen's processes.

A worker has one operation in flight at a time. When an operation ends ``info`` (it may
or may not have happened, and may still happen) the worker carries on under a new
process number, so that the history never shows one process with two operations open.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from harness.recorder import Recorder
from workloads.base import Invocation, Workload


class Workers:
    """``clients`` are the system's (``systems.base.Client``): one per worker, each doing its own I/O."""

    def __init__(
        self, workload: Workload, clients: list[Any], recorder: Recorder, rate: float, seed: int
    ) -> None:
        self.workload = workload
        self.clients = clients
        self.recorder = recorder
        self.concurrency = len(clients)
        self.mean_gap = self.concurrency / rate if rate > 0 else 0.0  # per worker, to reach ``rate`` overall
        self.seed = seed
        self.processes = list(range(self.concurrency))

    async def load(self, seconds: float) -> None:
        """Generate operations on every worker until ``seconds`` have passed."""
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(self._generate(w, deadline) for w in range(self.concurrency)))

    async def final_reads(self) -> None:
        await asyncio.gather(*(self._final_reads(w) for w in range(self.concurrency)))

    async def _generate(self, w: int, deadline: float) -> None:
        rng = random.Random(f"{self.seed}-{w}")
        while time.monotonic() < deadline:
            if self.mean_gap:
                pause = min(rng.expovariate(1 / self.mean_gap), max(0.0, deadline - time.monotonic()))
                await asyncio.sleep(pause)
                if time.monotonic() >= deadline:
                    break
            await self.perform(w, self.workload.next_op(w, rng))

    async def _final_reads(self, w: int) -> None:
        for inv in self.workload.final_reads(w):
            await self.perform(w, inv)

    async def perform(self, w: int, inv: Invocation) -> None:
        client = self.clients[w]
        process, node = self.processes[w], getattr(client, "node", None)
        self.recorder.record("invoke", process, inv.f, inv.value, node=node)
        done = await client.invoke(inv)
        # An answer came from the node the client now takes for the leader (it may have been
        # redirected there): that node served the op. Without one, the node it was sent to.
        served = getattr(client, "served", None) if done.type == "ok" else None
        self.recorder.record(done.type, process, inv.f, done.value, node=served or node, error=done.error)
        if done.type == "info":
            self.processes[w] += self.concurrency
