"""Operation generators and clients: what the harness's workers do against raftchat.

``make_workload(name, options, concurrency, seed)`` builds one from a plan's settings and
rejects bad options before anything runs; ``WORKLOADS[name].describe_options()`` lists
what each accepts.
"""

from __future__ import annotations

from typing import Any

from workloads.base import Completion, Invocation, Workload
from workloads.chat import ChatWorkload
from workloads.kv import KVWorkload
from workloads.register import RegisterWorkload

WORKLOADS: dict[str, type] = {
    "chat": ChatWorkload,
    "register": RegisterWorkload,
    "kv": KVWorkload,
}

__all__ = ["WORKLOADS", "Completion", "Invocation", "Workload", "make_workload"]


def make_workload(name: str, options: dict[str, Any] | None, concurrency: int, seed: int) -> Workload:
    """The workload ``name`` for ``concurrency`` workers; ValueError naming what is wrong."""
    cls = WORKLOADS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown workload {name!r}; known workloads: {', '.join(WORKLOADS)}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(
            f"workload {name!r}: concurrency must be an integer of at least 1, got {concurrency!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"workload {name!r}: seed must be an integer, got {seed!r}")
    return cls.from_options(options, concurrency, seed)
