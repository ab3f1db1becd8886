"""Who led when, and what a minimal anomaly straddled.

A stale read or a lost write is usually explained by a change of leader (or primary) in the
middle of it: the read was served by a member that had not yet heard of the new leader's
writes, or the write was acknowledged by a primary that was then replaced. The node monitor
samples every node's role and term (``nodes.jsonl``); from those samples this module derives
the leader changes of the run, and for the checker's minimal anomaly which member served each
of its operations and which leader changes fell inside its time window. The answer goes into
``results.json`` (``anomaly_context``) and the summary, for every system alike.
"""

from __future__ import annotations

from typing import Any

LEADER_ROLES = frozenset({"leader", "master", "primary"})


def leader_changes(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each time the leader changed: ``{t, leader, term, previous}``, in time order.

    A node becomes the leader when it first reports itself leader (or primary) in a term no
    lower than the current leader's: a deposed leader that goes on thinking it leads, in its
    old term or (for systems without terms, such as a Redis primary cut off by a failover) in
    the same one, does not take it back. The leader is gone when its own sample says it no
    longer leads.
    """
    changes: list[dict[str, Any]] = []
    current: str | None = None
    term: Any = None
    leading: set[str] = set()  # nodes whose last sample said they lead
    for sample in sorted((s for s in samples if "role" in s and "t" in s), key=lambda s: s["t"]):
        node, sample_term = sample.get("node"), sample.get("term")
        if sample.get("role") in LEADER_ROLES:
            new = node not in leading
            leading.add(node)
            if node == current:
                term = sample_term
            elif new and (current is None or _at_least(sample_term, term)):
                changes.append({"t": sample["t"], "leader": node, "term": sample_term, "previous": current})
                current, term = node, sample_term
        else:
            leading.discard(node)
            if node == current:
                changes.append({"t": sample["t"], "leader": None, "term": sample_term, "previous": current})
                current = None
    return changes


def _at_least(a: Any, b: Any) -> bool:
    try:
        return a >= b
    except TypeError:
        return True


def claiming(samples: list[dict[str, Any]], start: float, end: float) -> list[str]:
    """Nodes that said they lead at some point of [start, end] (by their last sample before
    ``start`` or any sample inside): two of them at once is a split brain."""
    last: dict[str, bool] = {}
    claimed: set[str] = set()
    for sample in sorted((s for s in samples if "role" in s and "t" in s), key=lambda s: s["t"]):
        if sample["t"] > end:
            break
        leads = sample.get("role") in LEADER_ROLES
        last[sample["node"]] = leads
        if sample["t"] >= start and leads:
            claimed.add(sample["node"])
    return sorted(claimed | {node for node, leads in last.items() if leads})


def anomaly_context(failure: dict[str, Any] | None, samples: list[dict[str, Any]]) -> dict[str, Any] | None:
    """For the checker's minimal anomaly: the members that served its operations, the leader in
    force when it began, the leader changes inside its window (earliest call to latest return)
    and the nodes that claimed to lead during it. None when there is no anomaly to explain."""
    ops = (failure or {}).get("minimal_history") or []
    if not ops:
        return None
    changes = leader_changes(samples)
    start = min(op["call_s"] for op in ops)
    ends = [op["ret_s"] for op in ops if op.get("ret_s") is not None]
    end = max(ends) if ends else max(op["call_s"] for op in ops)
    before = [c for c in changes if c["t"] <= start]
    inside = [c for c in changes if start < c["t"] <= end]
    return {
        "window_s": [round(start, 3), round(end, 3)],
        "served_by": [
            {"index": op.get("index"), "f": op.get("f"), "node": op.get("node"), "process": op.get("process")}
            for op in ops
        ],
        "leader_at_start": before[-1]["leader"] if before else None,
        "leader_changes": inside,
        "straddles_leader_change": bool(inside),
        "claiming_leadership": claiming(samples, start, end),
    }


def describe(context: dict[str, Any] | None) -> str | None:
    """One line for the summary: who served the anomaly and which leader change it straddled."""
    if not context:
        return None
    served = sorted({s["node"] for s in context["served_by"] if s.get("node")})
    start, end = context["window_s"]
    text = f"anomaly {start:.1f}-{end:.1f} s served by {', '.join(served) or 'unknown nodes'}"
    text += f"; leader at its start: {context['leader_at_start'] or 'none seen'}"
    if len(context.get("claiming_leadership") or []) > 1:
        text += f"; {' and '.join(context['claiming_leadership'])} all claimed to lead during it"
    if context["leader_changes"]:
        steps = ", ".join(
            f"{c['leader'] or 'no leader'} at {c['t']:.1f} s" for c in context["leader_changes"]
        )
        return f"{text}; it straddles leader change(s): {steps}"
    return f"{text}; no leader change inside it"
