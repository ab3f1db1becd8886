"""The restart check: after the cluster converged, kill every node at once and start them
all again; the state they come back with must be the state they agreed on.

Faults during a run restart a minority at a time, and a restarted node is then repaired by
its live peers: state it failed to keep (a snapshot without part of the state, a log
replayed from the wrong place, an entry applied twice on restore) is soon overwritten or
hidden by what the others send. With every node down together there is no peer to repair
from: each node rebuilds from its own snapshot and log, so anything the disk does not
hold, or holds differently, shows as a different state digest, a lower applied index, or
nodes that no longer agree. kill -9 is used, not a clean stop: acknowledged state must
survive a crash, not only a shutdown.
"""

from __future__ import annotations

import time
from typing import Any

from harness.monitor import NodeMonitor
from systems.base import Cluster


def restart_check(
    cluster: Cluster, monitor: NodeMonitor, before: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Kill and restart every node, wait up to ``timeout`` for them to converge, and compare
    with ``before`` (the recovery check's converged result). Blocking: run it in
    ``nemesis.process.PROCESS_THREAD``, as every restart of a node is (see there why)."""
    started = time.monotonic()
    for node in cluster.ids:
        cluster.kill(node)
    for node in cluster.ids:
        cluster.start(node)
    deadline = time.monotonic() + timeout
    while True:
        # A node restarts at the commit index its disk last held (the commit index rides on
        # later writes), so the nodes can agree a little below where they were until a new
        # leader commits an entry of its term: wait for that, or for the time to run out.
        after = monitor.converge(max(0.5, deadline - time.monotonic()))
        if not after.get("converged") or _applied(after) >= _applied(before) or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    result: dict[str, Any] = {
        "valid": True,
        "applied_before": before.get("applied"),
        "applied_after": after.get("applied"),
        "waited_s": round(time.monotonic() - started, 3),  # from the kill to the last answer
        "nodes": after.get("nodes"),
    }
    problem = problem_after_restart(before, after)
    if problem is not None:
        result.update(valid=False, note=problem)
    return result


def problem_after_restart(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """What is wrong with the nodes' state after the restart (``after``, a convergence
    wait's result) against ``before``, or None."""
    if not after.get("converged"):
        if after.get("note"):
            return f"after every node was killed and restarted: {after['note']}"
        behind = "; ".join(f"{b['node']} {b['what']}" for b in after.get("behind") or [])
        return f"after every node was killed and restarted, they did not agree again: {behind}"
    applied_before, applied_after = before.get("applied"), after.get("applied")
    if isinstance(applied_before, int) and isinstance(applied_after, int) and applied_after < applied_before:
        return (
            f"every node came back at applied index {applied_after}, below the {applied_before} "
            "they had applied before the restart: committed entries were lost"
        )
    digest_before, digest_after = _digest(before), _digest(after)
    if digest_before != digest_after:
        return (
            f"the state after restarting every node (digest {digest_after}) is not the state they "
            f"agreed on before (digest {digest_before}): what the disks hold differs from what "
            "was applied"
        )
    return None


def _applied(converged: dict[str, Any]) -> int:
    applied = converged.get("applied")
    return applied if isinstance(applied, int) else -1


def _digest(converged: dict[str, Any]) -> str | None:
    """The one state digest of a converged result's nodes."""
    digests = {row.get("digest") for row in (converged.get("nodes") or {}).values() if row}
    return digests.pop() if len(digests) == 1 else None
