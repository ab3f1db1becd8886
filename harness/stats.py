"""A run's numbers: what the clients did, how available and how fast the service was, when faults hit.

Computed once when a run ends and stored in ``results.json``, so listing and serving runs never
re-reads a history. Linearizability is the checker's job; these numbers explain the run around it
(e.g. availability dropping while a partition is in force).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from histories.format import NEMESIS, Op

OUTCOMES = ("ok", "fail", "info")
COUNTS = ("invoke", *OUTCOMES, "open")  # "open": invoked, never completed (the run ended first)
QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
NS_PER_S, NS_PER_MS = 1_000_000_000, 1_000_000


@dataclass(slots=True)
class Call:
    """One client operation: when it was invoked and completed (ns), and how it ended."""

    f: str
    start: int
    end: int | None  # None while open
    outcome: str  # "ok", "fail", "info" or "open"
    node: str | None = None  # the node the worker is bound to


@dataclass(slots=True)
class Interval:
    """A fault in force from ``start`` to ``stop`` (ns; ``stop`` None: never stopped)."""

    fault: str
    start: int
    stop: int | None
    value: Any
    start_known: bool = True  # False: a stop whose start the history does not have


def calls(ops: Iterable[Op]) -> tuple[list[Call], int]:
    """Pair client invocations with completions by process; also how many completions had no invoke.

    Calls come in invocation order; an invoke without a completion is an "open" call.
    """
    result: list[Call] = []
    pending: dict[int | str, Call] = {}
    unmatched = 0
    for op in ops:
        process = op.process
        if process == NEMESIS:
            continue
        if op.type == "invoke":
            call = Call(op.f, op.time, None, "open", op.node)
            pending[process] = call
            result.append(call)
            continue
        call = pending.pop(process, None)
        if call is None:
            unmatched += 1
            continue
        call.end = op.time
        call.outcome = op.type
    return result, unmatched


def nemesis_intervals(ops: Iterable[Op]) -> list[Interval]:
    """Fault intervals: each ``stop`` closes the earliest open ``start`` of the same fault.

    Only completions count (a nemesis that logs invoke and info would otherwise start twice); an
    event other than start/stop is an instant (start == stop).
    """
    intervals: list[Interval] = []
    open_by_fault: dict[str, list[Interval]] = {}
    for op in ops:
        if op.process != NEMESIS or op.type == "invoke":
            continue
        fault = fault_name(op)
        if op.f == "start":
            interval = Interval(fault, op.time, None, op.value)
            intervals.append(interval)
            open_by_fault.setdefault(fault, []).append(interval)
        elif op.f == "stop":
            waiting = open_by_fault.get(fault)
            if waiting:
                waiting.pop(0).stop = op.time
            else:
                intervals.append(Interval(fault, 0, op.time, op.value, start_known=False))
        else:
            intervals.append(Interval(fault, op.time, op.time, op.value))
    intervals.sort(key=lambda i: i.start)
    return intervals


def fault_name(op: Op) -> str:
    """The fault a nemesis event is about: ``value["fault"]`` by contract, else the best we can say."""
    value = op.value
    if isinstance(value, dict) and value.get("fault") is not None:
        return str(value["fault"])
    return op.f if op.f not in ("start", "stop") else "unknown"


def quantiles(latencies_ms: list[float]) -> dict[str, Any] | None:
    """Nearest-rank p50/p95/p99 and max of latencies in ms (None when there are none)."""
    if not latencies_ms:
        return None
    ordered = sorted(latencies_ms)
    n = len(ordered)
    result: dict[str, Any] = {"count": n}
    for name, q in QUANTILES:
        result[name] = round(ordered[max(0, math.ceil(q * n) - 1)], 3)
    result["max"] = round(ordered[-1], 3)
    return result


def compute(ops: list[Op]) -> dict[str, Any]:
    """The ``stats`` block of ``results.json``.

    Keys: ``duration_s``; ``client_ops`` (invocations); ``totals`` and ``by_f`` (counts of invoke,
    ok, fail, info, open); ``unmatched_completions``; ``availability`` (ok / completed, None if
    nothing completed); ``availability_over_time`` ([second, ok fraction or None, completed] per
    1 s bucket of completion time, from 0 to the last completion); ``latency_ms`` ({"ok": {f: q},
    "all": {f: q}}) and ``latency_ms_overall`` ({"ok": q, "all": q}) where q is {count, p50, p95,
    p99, max} in ms; ``nemesis`` ([{fault, start, stop, value}] in seconds, stop None if never).
    """
    client, unmatched = calls(ops)
    totals = dict.fromkeys(COUNTS, 0)
    by_f: dict[str, dict[str, int]] = {}
    ok_latency: dict[str, list[float]] = {}
    all_latency: dict[str, list[float]] = {}
    buckets_ok: dict[int, int] = {}
    buckets_done: dict[int, int] = {}
    by_node: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
    for call in client:
        counts = by_f.get(call.f)
        if counts is None:
            counts = by_f[call.f] = dict.fromkeys(COUNTS, 0)
        counts["invoke"] += 1
        counts[call.outcome] += 1
        if call.end is None:
            continue
        latency = (call.end - call.start) / NS_PER_MS
        all_latency.setdefault(call.f, []).append(latency)
        second = call.end // NS_PER_S
        node_ok, node_done = by_node.setdefault(call.node or "?", ({}, {}))
        buckets_done[second] = buckets_done.get(second, 0) + 1
        node_done[second] = node_done.get(second, 0) + 1
        if call.outcome == "ok":
            ok_latency.setdefault(call.f, []).append(latency)
            buckets_ok[second] = buckets_ok.get(second, 0) + 1
            node_ok[second] = node_ok.get(second, 0) + 1
    for counts in by_f.values():
        for key in COUNTS:
            totals[key] += counts[key]
    completed = totals["ok"] + totals["fail"] + totals["info"]
    return {
        "duration_s": round(max((op.time for op in ops), default=0) / NS_PER_S, 6),
        "client_ops": totals["invoke"],
        "totals": totals,
        "by_f": {f: by_f[f] for f in sorted(by_f)},
        "unmatched_completions": unmatched,
        "availability": round(totals["ok"] / completed, 6) if completed else None,
        "availability_over_time": _over_time(buckets_ok, buckets_done),
        "availability_by_node": {
            node: {
                "availability": round(sum(ok.values()) / sum(done.values()), 6),
                "over_time": _over_time(ok, done, seconds=max(buckets_done) + 1),
            }
            for node, (ok, done) in sorted(by_node.items())
        },
        "latency_ms": {
            "ok": {f: quantiles(ok_latency[f]) for f in sorted(ok_latency)},
            "all": {f: quantiles(all_latency[f]) for f in sorted(all_latency)},
        },
        "latency_ms_overall": {
            "ok": quantiles([x for f in ok_latency for x in ok_latency[f]]),
            "all": quantiles([x for f in all_latency for x in all_latency[f]]),
        },
        "nemesis": [interval_json(i) for i in nemesis_intervals(ops)],
    }


def _over_time(ok: dict[int, int], done: dict[int, int], seconds: int | None = None) -> list[list[Any]]:
    """Every second up to the last completion, empty ones included: a gap is news, not noise."""
    if not done:
        return []
    rows: list[list[Any]] = []
    for second in range(seconds if seconds is not None else max(done) + 1):
        count = done.get(second, 0)
        rows.append([second, round(ok.get(second, 0) / count, 6) if count else None, count])
    return rows


def interval_json(interval: Interval) -> dict[str, Any]:
    data: dict[str, Any] = {
        "fault": interval.fault,
        "start": round(interval.start / NS_PER_S, 6),
        "stop": None if interval.stop is None else round(interval.stop / NS_PER_S, 6),
        "value": interval.value,
    }
    if not interval.start_known:
        data["start_unknown"] = True  # stopped without a recorded start: in force from the beginning
    return data


# ------------------------------------------------------------------------------ the nodes


def read_samples(path: Any) -> list[dict[str, Any]]:
    """The node monitor's samples (``nodes.jsonl``); a torn last line is skipped."""
    samples = []
    try:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                try:
                    samples.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        return []
    return samples


def nodes(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``node_stats`` block of ``results.json``: per node its memory, snapshots and how far it got.

    Snapshot counters are per process (they restart at zero with a node), so a node's totals add
    up the largest count each of its processes (by pid) reported. ``rss_mib`` is {first, peak, last}: a
    soak run's memory is flat when ``last`` stays near ``first``.
    """
    per_node: dict[str, dict[str, Any]] = {}
    counters: dict[str, dict[int, dict[str, int]]] = {}
    for sample in samples:
        node = sample.get("node")
        rss = sample.get("rss")
        if node is None or "wall_origin" in sample:
            continue
        row = per_node.setdefault(node, {"rss": [], "samples": 0, "unanswered": 0, "applied": None})
        row["samples"] += 1
        if isinstance(rss, int):
            row["rss"].append(rss)
        if node == "harness":
            continue
        if not sample.get("answered"):
            row["unanswered"] += 1
            continue
        row["applied"] = sample.get("applied")
        snaps = sample.get("snapshots")
        if isinstance(snaps, dict):
            mine = counters.setdefault(node, {}).setdefault(sample.get("pid") or 0, {})
            for key, value in snaps.items():
                if isinstance(value, int):
                    mine[key] = max(mine.get(key, 0), value)
    result: dict[str, Any] = {}
    for node, row in sorted(per_node.items()):
        rss = row["rss"]
        entry: dict[str, Any] = {
            "rss_mib": {
                "first": _mib(rss[0]) if rss else None,
                "peak": _mib(max(rss)) if rss else None,
                "last": _mib(rss[-1]) if rss else None,
            },
            "samples": row["samples"],
        }
        if node != "harness":
            totals: dict[str, int] = {}
            for process in counters.get(node, {}).values():
                for key, value in process.items():
                    totals[key] = totals.get(key, 0) + value
            entry.update({"snapshots": totals, "applied": row["applied"], "unanswered": row["unanswered"]})
        result[node] = entry
    return result


def _mib(value: int) -> float:
    return round(value / (1 << 20), 1)
