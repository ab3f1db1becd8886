"""The register workload: reads, writes and compare-and-sets on one key of the kv machine.

The classic Knossos test. Values come from a small range so that a cas sometimes finds
its expected value and sometimes not: a mismatch is a definite observation (the register
did not hold ``expected``), recorded as ``ok [expected, new, False]``, which constrains the
checker as much as a read does. The key starts absent, which reads as None: the
cas-register model's initial value.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from raftchat.client import Client, OperationError
from workloads import options as opts
from workloads.base import Completion, Invocation, OptionsWorkload, failed


@dataclass
class RegisterOptions:
    key: str = opts.option("register", "the kv key that holds the register; must not exist before the run")
    values: int = opts.option(
        5, "writes and cas draw from range(values): small, so cas often matches", minimum=1
    )
    weights: dict[str, float] = opts.option(
        {"read": 1.0, "write": 1.0, "cas": 1.0},
        "relative frequency of each operation; operations not named keep their default",
    )

    def validate(self) -> None:
        if not self.key:
            raise ValueError("workload 'register': option 'key' must not be empty")


class RegisterWorkload(OptionsWorkload):
    name = "register"
    model = "cas-register"
    options_type = RegisterOptions
    machine = "kv"

    def next_op(self, worker: int, rng: random.Random) -> Invocation:
        f = opts.pick(self.options.weights, rng)
        values = self.options.values
        if f == "read":
            return Invocation("read", None)
        if f == "write":
            return Invocation("write", rng.randrange(values))
        return Invocation("cas", [rng.randrange(values), rng.randrange(values)])

    def final_reads(self, worker: int) -> list[Invocation]:
        """One read per worker: each sees the register after the faults healed."""
        return [Invocation("read", None)]

    async def invoke(self, client: Client, inv: Invocation) -> Completion:
        key = self.options.key
        try:
            if inv.f == "read":
                result = await client.call("get", key=key)
            elif inv.f == "write":
                result = await client.call("put", key=key, value=inv.value)
            else:
                expected, new = inv.value
                result = await client.call("cas", key=key, expected=expected, new=new)
        except OperationError as exc:
            return failed(inv.value, exc)
        if inv.f == "cas" and result.status in ("ok", "cas_mismatch"):
            return Completion("ok", [*inv.value, result.status == "ok"])
        if result.status != "ok":
            # Not an answer the kv machine gives for this op: claim nothing about it.
            return Completion("info", inv.value, f"unexpected status {result.status}: {result.error}")
        return Completion("ok", result.value if inv.f == "read" else inv.value)
