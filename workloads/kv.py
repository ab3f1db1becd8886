"""The kv workload: get, put and append over many keys, each checked alone.

Appends make a key's history self-describing: every appended string is unique and
delimited (``a<worker>.<n>;``, puts ``p<worker>.<n>;``), so a read shows which appends
landed, in which order, and whether one was lost or applied twice. A key lives for
``ops_per_key`` operations and is then retired for a fresh one (Jepsen's independent
keys), which keeps every partition the checker searches to a few hundred operations.

The kv model starts every key at ``""`` and concatenates appends, and the server appends
to an absent key as to ``""``. Puts store strings, so appends always concatenate, and
nothing ever stores ``""`` or None: a get of an absent key (None) is recorded as ``""``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from raftchat.client import Client, OperationError
from workloads import options as opts
from workloads.base import Completion, Invocation, OptionsWorkload, failed


@dataclass
class KVOptions:
    keys: int = opts.option(20, "keys in use at once; each operation picks one at random", minimum=1)
    ops_per_key: int = opts.option(
        200,
        "operations on a key before it is retired for a fresh one; bounds each checked partition",
        minimum=1,
    )
    weights: dict[str, float] = opts.option(
        {"get": 2.0, "put": 1.0, "append": 3.0},
        "relative frequency of each operation; operations not named keep their default",
    )
    prefix: str = opts.option("k", "start of every key name; a new one lets a run reuse a cluster with data")


@dataclass
class _Slot:
    """One of the ``keys`` places a live key occupies; ``retired`` counts its past keys."""

    index: int
    retired: int = 0
    ops: int = 0


class KVWorkload(OptionsWorkload):
    name = "kv"
    model = "kv"
    options_type = KVOptions
    machine = "kv"

    def __init__(self, options: KVOptions, concurrency: int, seed: int) -> None:
        super().__init__(options, concurrency, seed)
        self._slots = [_Slot(i) for i in range(options.keys)]
        self._counters = [0] * concurrency  # per-worker, for unique values
        self._touched: dict[str, None] = {}  # keys in first-use order

    @property
    def touched(self) -> list[str]:
        return list(self._touched)

    def next_op(self, worker: int, rng: random.Random) -> Invocation:
        slot = self._slots[rng.randrange(len(self._slots))]
        if slot.ops >= self.options.ops_per_key:
            slot.retired, slot.ops = slot.retired + 1, 0
        slot.ops += 1
        key = f"{self.options.prefix}{slot.index + len(self._slots) * slot.retired}"
        self._touched.setdefault(key, None)
        f = opts.pick(self.options.weights, rng)
        if f == "get":
            return Invocation("get", [key, None])
        self._counters[worker] += 1
        return Invocation(f, [key, f"{f[0]}{worker}.{self._counters[worker]};"])

    def final_reads(self, worker: int) -> list[Invocation]:
        """Every key used in the run is read once: keys are dealt round-robin to workers
        (any worker may use any key, so no worker owns one)."""
        keys = self.touched[worker :: self.concurrency]
        return [Invocation("get", [key, None]) for key in keys]

    async def invoke(self, client: Client, inv: Invocation) -> Completion:
        key, value = inv.value
        try:
            if inv.f == "get":
                result = await client.call("get", key=key)
            else:
                result = await client.call(inv.f, key=key, value=value)
        except OperationError as exc:
            return failed(inv.value, exc)
        if result.status != "ok":
            # Not an answer the kv machine gives for these ops: claim nothing about it.
            return Completion("info", inv.value, f"unexpected status {result.status}: {result.error}")
        if inv.f == "get":
            return Completion("ok", [key, "" if result.value is None else result.value])
        return Completion("ok", inv.value)
