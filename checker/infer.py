"""Deciding a partition from what its reads reveal, without searching.

Where every written value is unique, each read names the write it saw, and the order of
effects is no longer something to search for:

* **Append lists** (kv partitions of ``get`` and ``append``, as in Elle's list-append
  analysis): every state is the previous one plus a suffix, so the states reads saw must
  form a chain of prefixes, and the longest read spells the order of every append it
  contains. Each operation gets a *level*: state j's reads sit between the j-th and the
  (j+1)-th append; a completed append no read saw goes after everything (every read
  lacks it); a crashed one nobody saw never happened (dropping it only removes a
  constraint). The levels are forced, so the history is linearizable exactly when no
  operation of a higher level returned before one of a lower level was called.
* **Registers with distinct writes** (the polynomial case of Gibbons & Korach, "Testing
  shared memories"): a write and the reads that saw it form a cluster, which must occupy
  one stretch of the linearization, write first. A cluster C must precede D exactly when
  an operation of C returned before one of D was called, i.e. when C's earliest return
  is before D's latest call. The history is linearizable exactly when no read returned
  before its write was called and these constraints are acyclic; the reads of the
  initial value form a cluster whose write is at minus infinity. A crashed write nobody
  read never happened; one that was read took effect.

Soundness: a "linearizable" answer comes with a linearization that is checked against
real time and replayed through the model, so it is a proof; a violation is only claimed
by the rules above, each of which no linearization can escape. Anything else (values
that repeat, a string that does not split into appends one way only, operations the
rules do not cover) returns None, and the general search decides.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from checker.linearizable import PartitionResult
from checker.model import Model, Operation
from checker.models.values import freeze

INF = float("inf")


@dataclass
class Inferred:
    """A decided partition: a result like the search's, and for a violation a small
    sub-history that is still not linearizable (for shrinking and the report)."""

    result: PartitionResult
    witness: list[Operation] | None = None


def infer(model: Model, ops: list[Operation]) -> Inferred | None:
    """Decide ``ops`` (one partition) by inference, or None when the history does not
    reveal enough (the general search must decide)."""
    read_only = getattr(model, "read_only", None)
    ops = [op for op in ops if op.ret is not None or not (read_only and read_only(op))]
    if not ops:
        return Inferred(PartitionResult(True, [], explored=0))
    if model.name in ("register", "cas-register"):
        if all(op.f in ("read", "write") for op in ops):
            reads = [op for op in ops if op.f == "read"]
            writes = [(op, freeze(op.input)) for op in ops if op.f == "write"]
            return _register(model, ops, reads, writes, model.initial, lambda op: freeze(op.output))
        return None
    if model.name == "kv":
        fs = {op.f for op in ops}
        if fs <= {"get", "append"}:
            return _append_list(model, ops)
        if fs <= {"get", "put"}:
            reads = [op for op in ops if op.f == "get"]
            writes = [(op, freeze(op.input[1])) for op in ops if op.f == "put"]
            return _register(model, ops, reads, writes, model.initial, _kv_read)
    return None


def _kv_read(op: Operation) -> Any:
    out = op.output
    return freeze(out[1] if isinstance(out, list | tuple) else out)


# -- registers with distinct writes ---------------------------------------------------------


@dataclass
class _Cluster:
    write: Operation | None  # None: the initial value
    reads: list[Operation]
    first_ret: float = INF  # the earliest return among its ops
    last_call: float = -INF  # the latest call among its ops


def _register(
    model: Model,
    ops: list[Operation],
    reads: list[Operation],
    writes: list[tuple[Operation, Any]],
    initial: Any,
    read_value: Callable[[Operation], Any],
) -> Inferred | None:
    """Gibbons & Korach's clusters (see the module docstring)."""
    clusters: dict[Any, _Cluster] = {freeze(initial): _Cluster(None, [], -INF, -INF)}
    for op, value in writes:
        if value in clusters or not _hashable(value):
            return None  # a value written twice (or the initial one): reads do not name writes
        clusters[value] = _Cluster(op, [], INF if op.ret is None else op.ret, op.call)
    for op in reads:
        value = read_value(op)
        cluster = clusters.get(value) if _hashable(value) else None
        if cluster is None:
            return _violation(model, ops, [], [op], [op])  # a value nobody wrote
        if cluster.write is not None and op.ret < cluster.write.call:
            return _violation(model, ops, [], [op], [cluster.write, op])  # read before its write began
        cluster.reads.append(op)
        cluster.first_ret = min(cluster.first_ret, op.ret)
        cluster.last_call = max(cluster.last_call, op.call)
    live = [c for c in clusters.values() if c.reads or c.write is None or c.write.ret is not None]
    order, stuck = _cluster_order(live)
    linearization = [op for c in order for op in _cluster_ops(c)]
    if stuck:
        cycle = _cycle(stuck)
        witness = [op for c in cycle for op in _defining_ops(c)]
        candidates = [op for c in stuck for op in _cluster_ops(c)]
        return _violation(model, ops, linearization, candidates, witness)
    return _proven(model, linearization)


def _cluster_ops(cluster: _Cluster) -> list[Operation]:
    reads = sorted(cluster.reads, key=lambda op: (op.call, op.id))
    return reads if cluster.write is None else [cluster.write, *reads]


def _defining_ops(cluster: _Cluster) -> list[Operation]:
    """The write, and the reads that give the cluster its earliest return and latest call."""
    chosen = [] if cluster.write is None else [cluster.write]
    if cluster.reads:
        chosen.append(min(cluster.reads, key=lambda op: op.ret))
        chosen.append(max(cluster.reads, key=lambda op: op.call))
    return _unique(chosen)


def _cluster_order(clusters: list[_Cluster]) -> tuple[list[_Cluster], list[_Cluster]]:
    """A topological order of the clusters under "C before D when C.first_ret < D.last_call",
    and the clusters left when none can go first (then they hold a cycle).

    D can go first when no other remaining C has C.first_ret < D.last_call: with m1, m2 the
    two smallest first_ret of the remaining ones, that is D.last_call <= m1 for any D but
    the one holding m1, which needs D.last_call <= m2. Two heaps, lazy deletion: n log n.
    """
    by_ret = [(c.first_ret, k) for k, c in enumerate(clusters)]
    by_call = [(c.last_call, k) for k, c in enumerate(clusters)]
    heapq.heapify(by_ret)
    heapq.heapify(by_call)
    placed = [False] * len(clusters)
    order: list[_Cluster] = []

    def top(heap: list[tuple[float, int]]) -> tuple[float, int] | None:
        while heap and placed[heap[0][1]]:
            heapq.heappop(heap)
        return heap[0] if heap else None

    while len(order) < len(clusters):
        m1, holder = top(by_ret)  # type: ignore[misc]
        heapq.heappop(by_ret)
        second = top(by_ret)
        m2 = second[0] if second else INF
        heapq.heappush(by_ret, (m1, holder))
        choice = None
        if clusters[holder].last_call <= m2:
            choice = holder
        else:
            call, k = top(by_call)  # type: ignore[misc]
            if k == holder:  # the holder cannot go; look at the next-smallest call
                heapq.heappop(by_call)
                nxt = top(by_call)
                heapq.heappush(by_call, (call, k))
                if nxt is not None and nxt[0] <= m1:
                    choice = nxt[1]
            elif call <= m1:
                choice = k
        if choice is None:
            return order, [c for k, c in enumerate(clusters) if not placed[k]]
        placed[choice] = True
        order.append(clusters[choice])
    return order, []


def _cycle(stuck: list[_Cluster]) -> list[_Cluster]:
    """A cycle among clusters none of which can go first: follow, from each, the cluster
    that must precede it (the other one with the earliest return)."""
    by_ret = sorted(range(len(stuck)), key=lambda k: stuck[k].first_ret)

    def before(k: int) -> int:
        return by_ret[0] if by_ret[0] != k else by_ret[1]

    seen: dict[int, int] = {}
    k = 0
    while k not in seen:
        seen[k] = len(seen)
        k = before(k)
    start = seen[k]
    return [stuck[j] for j, pos in seen.items() if pos >= start]


# -- append lists ---------------------------------------------------------------------------


def _append_list(model: Model, ops: list[Operation]) -> Inferred | None:
    """kv ``get``/``append`` on one key, appends unique (see the module docstring)."""
    initial = getattr(model, "initial", "")
    appends = [op for op in ops if op.f == "append"]
    reads = [op for op in ops if op.f == "get"]
    by_suffix: dict[str, Operation] = {}
    for op in appends:
        suffix = op.input[1] if isinstance(op.input, list | tuple) and len(op.input) > 1 else None
        if not isinstance(suffix, str) or not suffix or suffix in by_suffix:
            return None
        by_suffix[suffix] = op
    if not isinstance(initial, str) or not _prefix_free(sorted(by_suffix)):
        return None
    seen: list[tuple[Operation, str]] = []
    for op in reads:
        value = _kv_read(op)
        if not isinstance(value, str) or not value.startswith(initial):
            return None
        seen.append((op, value[len(initial) :]))
    longest_read, longest = max(seen, key=lambda p: len(p[1]), default=(None, ""))
    tokens = _split(longest, by_suffix)
    if tokens is None:
        return None  # a value that is no sequence of appends: let the search explain it
    chain = [by_suffix[t] for t in tokens]
    if len({op.id for op in chain}) < len(chain):  # the same append seen twice
        distinct = _unique(chain)
        return _violation(model, ops, distinct, [longest_read], [*distinct, longest_read])
    ends = {0: 0}  # offset in the longest value -> number of appends before it
    offset = 0
    for count, token in enumerate(tokens, 1):
        offset += len(token)
        ends[offset] = count
    level = {op.id: 2 * k + 1 for k, op in enumerate(chain)}  # op id -> level; dropped ops have none
    for op, value in seen:
        if not longest.startswith(value):  # two states that are not one chain
            other = _split(value, by_suffix)
            if other is None:
                return None
            witness = _unique([*chain, *(by_suffix[t] for t in other), op, longest_read])
            return _violation(model, ops, [], [op], witness)
        count = ends.get(len(value))
        if count is None:
            return None
        level[op.id] = 2 * count
    top = 2 * len(chain) + 1
    for op in appends:
        if op.id not in level and op.ret is not None:
            level[op.id] = top  # completed, yet no read saw it: after every read
    placed = sorted((op for op in ops if op.id in level), key=lambda op: (level[op.id], op.call, op.id))
    late, early = _real_time_conflict(placed)
    if late is None:
        return _proven(model, placed)
    # ``early`` (lower level) was called after ``late`` (higher level) returned.
    upto = max(level[late.id], level[early.id])
    needed = [op for op in chain if level[op.id] <= upto] + [late]
    witness = _unique([*needed, late, early])
    prefix = [op for op in placed if level[op.id] <= level[late.id] and op is not early]
    return _violation(model, ops, prefix, [early], witness)


def _prefix_free(values: list[str]) -> bool:
    """No value is a prefix of another (checked on neighbours in sorted order): then a
    concatenation splits into values in one way only, read left to right."""
    return all(not b.startswith(a) for a, b in zip(values, values[1:], strict=False))


def _split(value: str, by_suffix: dict[str, Operation]) -> list[str] | None:
    """``value`` as the sequence of appended suffixes it is made of, or None."""
    lengths = sorted({len(s) for s in by_suffix})
    tokens, pos = [], 0
    while pos < len(value):
        for length in lengths:
            token = value[pos : pos + length]
            if token in by_suffix:
                tokens.append(token)
                pos += length
                break
        else:
            return None
    return tokens


# -- shared ---------------------------------------------------------------------------------


def _real_time_conflict(order: list[Operation]) -> tuple[Operation | None, Operation | None]:
    """A pair (late, early): ``late`` comes after ``early`` in ``order`` but returned before
    ``early`` was called; (None, None) when ``order`` respects real time."""
    best: Operation | None = None  # the op with the earliest return after the current position
    for op in reversed(order):
        if best is not None and best.ret < op.call:
            return best, op
        if op.ret is not None and (best is None or op.ret < best.ret):
            best = op
    return None, None


def _proven(model: Model, order: list[Operation]) -> Inferred | None:
    """A linearization, if it respects real time and the model accepts it (else None: the
    inference missed something, and the search decides)."""
    if _real_time_conflict(order)[0] is not None:
        return None
    state: Hashable = model.init()
    step = getattr(model, "step_fn", None)
    for op in order:
        ok, state = step(op)(state) if step else model.step(state, op)
        if not ok:
            return None
    ids = [op.id for op in order]
    return Inferred(PartitionResult(True, ids, longest=ids, state=state, explored=0))


def _violation(
    model: Model,
    ops: list[Operation],
    prefix: list[Operation],
    candidates: list[Operation],
    witness: list[Operation],
) -> Inferred:
    """A violation: ``prefix`` is an order that goes as far as it can, ``candidates`` the
    operations that cannot go next, ``witness`` a sub-history that is not linearizable."""
    state: Hashable = model.init()
    longest = []
    for op in prefix:
        ok, after = model.step(state, op)
        if not ok:
            break
        state = after
        longest.append(op.id)
    result = PartitionResult(False, None, longest, state, list(candidates), explored=0)
    return Inferred(result, sorted(witness, key=lambda op: (op.call, op.id)))


def _unique(ops: list[Operation]) -> list[Operation]:
    """``ops`` without repeats (operations are compared by id), in first-seen order."""
    return list({op.id: op for op in ops}.values())


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
