"""The interface between the harness and a workload.

The harness owns time, processes and the history; a workload only says which operation
a worker does next, how to perform it with a raftchat client (other systems' clients, in
``systems``, perform the same operations their own way), and what to read at the end.
Values are in the canonical forms of ``histories/format.py`` so that the checker's models read
them without translation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from raftchat.client import Client, OperationError
from workloads import options as opts


@dataclass(slots=True)
class Invocation:
    f: str
    value: Any


@dataclass(slots=True)
class Completion:
    type: str  # "ok", "fail" (certainly did not happen) or "info" (may have happened)
    value: Any
    error: str | None = None


class Workload(Protocol):
    name: str  # "chat", "register", "kv"
    model: str  # the checker model for its histories
    machine: str  # the raftchat state machine it needs: "chat" or "kv"

    def next_op(self, worker: int, rng: random.Random) -> Invocation:
        """The next operation for worker ``worker`` (0..concurrency-1; stable when the
        worker's process number changes after an ``info``)."""

    def final_reads(self, worker: int) -> list[Invocation]:
        """Reads for the final phase, after faults healed: what this worker cares about."""

    async def invoke(self, client: Client, inv: Invocation) -> Completion:
        """Perform ``inv``; never raises for an operation failure (returns fail or info)."""


class OptionsWorkload:
    """What every workload shares: options parsed from a plan and checked before anything runs."""

    name: str
    options_type: type  # a dataclass of ``workloads.options.option`` fields

    def __init__(self, options: Any, concurrency: int, seed: int) -> None:
        if hasattr(options, "validate"):
            options.validate()
        self.options = options
        self.concurrency = concurrency
        self.seed = seed

    @classmethod
    def from_options(cls, options: dict[str, Any] | None, concurrency: int, seed: int) -> Any:
        return cls(opts.parse(cls.options_type, options, cls.name), concurrency, seed)

    @classmethod
    def describe_options(cls) -> str:
        return opts.describe(cls.options_type, cls.name)


def failed(value: Any, exc: OperationError) -> Completion:
    """The completion of a call that got no answer: ``fail`` only if it certainly had no
    effect (the checker then drops it), else ``info`` (it may have happened)."""
    return Completion("fail" if exc.definite else "info", value, str(exc))
