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
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from checker.infer_kv import kv_linearization
from checker.linearizable import PartitionResult
from checker.model import Model, Operation
from checker.models.cas_register import swapped as _swapped
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
    if model.name == "chat":
        from checker.infer_chat import infer_chat  # it builds on this module's pieces

        return infer_chat(model, ops)
    if model.name == "kv" and model.initial == "":
        proof = kv_linearization(ops)  # a sorted order, proven: most keys need no clusters
        if proof is not None:
            return Inferred(PartitionResult(True, proof, longest=proof, state=None, explored=0))
    ops = [op for op in ops if op.ret is not None or not model.read_only(op)]
    if not ops:
        return Inferred(PartitionResult(True, [], explored=0))
    fs = {op.f for op in ops}
    if model.name in ("register", "cas-register"):
        if fs <= {"read", "write"}:
            return _attempt(model, ops, _register_clusters)
        if model.name == "cas-register" and fs <= {"read", "write", "cas"}:
            return _attempt(model, ops, _cas_clusters)
        return None
    if model.name == "kv" and fs <= {"get", "put", "append"}:
        if model.initial != "":
            return None
        return _attempt(model, ops, _kv_clusters)
    return None


class _Undecided(Exception):
    """The history does not reveal enough here: the general search must decide."""


class _Refuted(Exception):
    """Found while building clusters: a violation, with its explanation."""

    def __init__(self, found: Inferred) -> None:
        self.found = found


def _attempt(model: Model, ops: list[Operation], build: Callable) -> Inferred | None:
    """Build the clusters with ``build`` and decide them. A builder may also return
    (clusters, loose): read-only operations that fit in more than one place (failed
    compare-and-sets); they are left out to find a violation (a sub-history without them
    that fails proves the whole fails) and fitted in afterwards for a linearization."""
    try:
        built = build(model, ops)
    except _Undecided:
        return None
    except _Refuted as refuted:
        return refuted.found
    clusters, loose = built if isinstance(built, tuple) else (built, [])
    return _decide(model, ops, clusters, loose)


@dataclass
class _Cluster:
    """A write and what follows it up to the next write: one stretch of any linearization.

    ``head`` is the write (None: the initial value); ``members`` the operations that
    must follow it in the stretch, by level (reads of the state after j appends at 2j+1,
    the (j+1)-th append at 2j+2).
    """

    head: Operation | None
    members: list[tuple[int, Operation]] = field(default_factory=list)
    first_ret: float = INF  # the earliest return among its ops
    last_call: float = -INF  # the latest call among its ops
    spelled_by: Operation | None = None  # the read that shows every append of the stretch
    _order: list[Operation] | None = None  # ops(), once the members are all known

    def ops(self) -> list[Operation]:
        """Its operations in their one possible order (ties of level by call)."""
        if self._order is None:
            # (level, call, id, position): a key that never ties, so ops are never compared
            keyed = sorted([(lv, op.call, op.id, k, op) for k, (lv, op) in enumerate(self.members)])
            self.members = [(entry[0], entry[4]) for entry in keyed]
            inner = [entry[4] for entry in keyed]
            self._order = inner if self.head is None else [self.head, *inner]
        return self._order

    def __post_init__(self) -> None:
        if self.head is None:
            self.first_ret = -INF  # the initial value comes before everything
        else:
            self._time(self.head)

    def add(self, level: int, op: Operation) -> None:
        self.members.append((level, op))
        ret, call = op.ret, op.call  # _time, inlined: this runs once per operation
        if ret is not None and ret < self.first_ret:
            self.first_ret = ret
        if call > self.last_call:
            self.last_call = call

    def _time(self, op: Operation) -> None:
        """Keep the times that order the cluster against the others."""
        if op.ret is not None and op.ret < self.first_ret:
            self.first_ret = op.ret
        if op.call > self.last_call:
            self.last_call = op.call

    def support(self, level: int) -> list[Operation]:
        """What an op of this level needs to be explained: the head, the appends before it,
        and the read that ties those appends to this stretch (without it, a sub-history
        could place them before the head, where the head's put hides them)."""
        head = [] if self.head is None else [self.head]
        appends = [op for lv, op in self.members if lv < level and lv % 2 == 0]
        spelled = [self.spelled_by] if appends and self.spelled_by is not None else []
        return head + appends + spelled


def _register_clusters(model: Model, ops: list[Operation]) -> list[_Cluster]:
    """One cluster per written value (writes must be distinct, and differ from the
    initial value); a crashed write nobody read is left out (it never happened)."""
    start = freeze(model.initial)
    by_value: dict[Any, _Cluster] = {start: _Cluster(None)}
    for op in ops:
        if op.f == "write":
            value = freeze(op.input)
            if not _hashable(value) or value in by_value:
                raise _Undecided
            by_value[value] = _Cluster(op)
    for op in ops:
        if op.f == "read":
            value = freeze(op.output)
            cluster = by_value.get(value) if _hashable(value) else None
            if cluster is None:  # a value nobody wrote
                raise _Refuted(_violation(model, ops, [], [op], [op]))
            cluster.add(1, op)
    return [c for c in by_value.values() if c.members or c.head is None or c.head.ret is not None]


def _kv_clusters(model: Model, ops: list[Operation]) -> list[_Cluster]:
    """One cluster per put (and one for the initial ``""``) with the appends and reads of
    the states it started; written tokens must be unique and none a prefix of another."""
    token_of: dict[str, Operation] = {}
    gets: list[Operation] = []
    for op in ops:
        if op.f == "get":
            gets.append(op)
            continue
        arg = op.input
        token = arg[1] if type(arg) in (list, tuple) and len(arg) > 1 else None
        if type(token) is not str or not token or token in token_of:
            raise _Undecided
        token_of[token] = op
    if not _prefix_free(sorted(token_of)):
        raise _Undecided
    lengths = sorted({len(t) for t in token_of})
    one_length = lengths[0] if len(lengths) == 1 else 0  # the common case: no search for a token
    initial = _Cluster(None)
    epochs: dict[int, tuple[_Cluster, list[tuple[Operation, str]]]] = {-1: (initial, [])}
    for op in gets:
        out = op.output
        plain = type(out) in (list, tuple) and len(out) > 1 and type(out[1]) is str
        value = out[1] if plain else _kv_read(op)
        if type(value) is not str:
            raise _Undecided
        if not value:
            first = None
        elif one_length:
            first = value[:one_length]
            first = first if first in token_of else None
        else:
            first = _token_at(value, 0, lengths, token_of)
        if value and first is None:
            raise _Refuted(_violation(model, ops, [], [op], [op]))  # no state reads like that
        head = token_of[first] if first is not None and token_of[first].f == "put" else None
        key = -1 if head is None else head.id
        if key not in epochs:
            epochs[key] = (_Cluster(head), [])
        epochs[key][1].append((op, value))
    placed: dict[int, _Cluster] = {}  # append id -> the epoch it was seen in
    for cluster, reads in epochs.values():
        _kv_epoch(model, ops, cluster, reads, lengths, token_of, placed)
    clusters = [cluster for cluster, _ in epochs.values()]
    for op in ops:  # completed writes nobody saw: alone, between two stretches
        if op.f != "get" and op.id not in placed and op.id not in epochs and op.ret is not None:
            clusters.append(_Cluster(op))
    return clusters


def _kv_epoch(
    model: Model,
    ops: list[Operation],
    cluster: _Cluster,
    reads: list[tuple[Operation, str]],
    lengths: list[int],
    token_of: dict[str, Operation],
    placed: dict[int, _Cluster],
) -> None:
    """Give the reads and appends of one epoch their levels: the longest read spells the
    appends in order, every other read must be a prefix of it ending between two appends.

    A state that is no such concatenation (with tokens prefix-free, splitting left to
    right is the only way), a put after the first token, an append twice or in two
    epochs: no linearization makes these, each a violation. Adds to ``placed``."""
    if not reads:
        return
    longest_read, longest = max(reads, key=lambda p: len(p[1]))
    tokens = _split(longest, lengths, token_of)
    skip = 0 if cluster.head is None else 1
    if tokens is None:
        raise _Refuted(_violation(model, ops, [], [longest_read], [longest_read]))
    chain = [token_of[t] for t in tokens[skip:]]
    if any(op.f != "append" for op in chain):
        raise _Undecided  # a put inside a state: leave the explaining to the search
    twice = next((placed[op.id] for op in chain if op.id in placed), None)
    if twice is not None or len({op.id for op in chain}) < len(chain):  # one append seen twice
        distinct = _unique(chain)
        support = [*cluster.support(0), *distinct]
        other = [] if twice is None else twice.support(INF)
        raise _Refuted(_violation(model, ops, support, [longest_read], [*other, *support, longest_read]))
    placed.update((op.id, cluster) for op in chain)
    cluster.spelled_by = longest_read
    ends = {end: count for count, end in enumerate(accumulate((len(t) for t in tokens), initial=0))}
    for k, op in enumerate(chain):
        cluster.add(2 * k + 2, op)
    for op, value in reads:
        if not longest.startswith(value):  # two states that are not one chain
            support = cluster.support(INF)
            raise _Refuted(_violation(model, ops, support, [op], [*support, longest_read, op]))
        count = ends.get(len(value))
        if count is None or count < skip:  # ends inside a token: no state reads like that
            raise _Refuted(_violation(model, ops, [], [op], [op]))
        cluster.add(2 * (count - skip) + 1, op)


def _token_at(value: str, pos: int, lengths: list[int], token_of: dict[str, Operation]) -> str | None:
    for length in lengths:
        token = value[pos : pos + length]
        if token in token_of:
            return token
    return None


def _prefix_free(values: list[str]) -> bool:
    """No value is a prefix of another (checked on neighbours in sorted order): then a
    concatenation splits into values in one way only, read left to right."""
    return all(not b.startswith(a) for a, b in zip(values, values[1:], strict=False))


def _split(value: str, lengths: list[int], token_of: dict[str, Operation]) -> list[str] | None:
    """``value`` as the sequence of written tokens it is made of, or None."""
    if len(lengths) == 1:  # tokens of one length: cut, then look each up once
        size = lengths[0]
        tokens = [value[pos : pos + size] for pos in range(0, len(value), size)]
        return tokens if all(token in token_of for token in tokens) else None
    tokens, pos = [], 0
    while pos < len(value):
        token = _token_at(value, pos, lengths, token_of)
        if token is None:
            return None
        tokens.append(token)
        pos += len(token)
    return tokens


def _decide(
    model: Model, ops: list[Operation], clusters: list[_Cluster], loose: list[Operation]
) -> Inferred | None:
    """Order the clusters (each must keep its inner order in real time), or find why not.

    The order is tried first: when it is a linearization (the common case) no cluster can
    break real time inside, so the clusters are looked at one by one only to explain why not.
    """
    order, stuck = _cluster_order(clusters)
    linearization = [op for c in order for op in c.ops()]
    if not stuck:
        if loose:
            fitted = _fit_failed_cas(linearization, loose, model.initial)
            found = None if fitted is None else _proven(model, fitted)
        else:
            found = _proven(model, linearization)
        if found is not None:
            return found
    for cluster in clusters:
        inner = cluster.ops()
        late, early = real_time_conflict(inner)
        if late is not None:
            levels = {op.id: lv for lv, op in cluster.members}
            upto = max(levels.get(late.id, 0), levels.get(early.id, 0))
            witness = _unique([*cluster.support(upto + 1), late, early])
            prefix = inner[: inner.index(late) + 1]
            prefix = [op for op in prefix if op is not early]
            return _violation(model, ops, prefix, [early], witness)
    if stuck:
        cycle = _cycle(stuck)
        witness = _unique([op for c in cycle for op in _defining_ops(c)])
        candidates = [op for c in stuck for op in c.ops()[:1]]
        return _violation(model, ops, linearization, candidates, witness)
    return None


def _fit_failed_cas(order: list[Operation], loose: list[Operation], initial: Any) -> list[Operation] | None:
    """``order`` with each failed compare-and-set put where real time allows it and the
    value differs from the one it expected: the earliest such place. None if one has
    none here (another order of the clusters might have one: undecided)."""
    states, value = [freeze(initial)], freeze(initial)
    for op in order:
        if op.f == "write":
            value = freeze(op.input)
        elif op.f == "cas" and freeze(op.input[0]) == value:
            value = freeze(op.input[1])
        states.append(value)
    n = len(order)
    min_ret_after = [INF] * (n + 1)  # min ret of order[p:]
    for p in range(n - 1, -1, -1):
        ret = order[p].ret
        min_ret_after[p] = min(min_ret_after[p + 1], INF if ret is None else ret)
    max_call_before = [-INF] * (n + 1)  # max call of order[:p]
    for p in range(n):
        max_call_before[p + 1] = max(max_call_before[p], order[p].call)
    next_change = [n + 1] * (n + 1)  # the first q > p with another state than at p
    for p in range(n - 1, -1, -1):
        next_change[p] = p + 1 if states[p + 1] != states[p] else next_change[p + 1]
    slots: dict[int, list[Operation]] = {}
    finished: list[tuple[float, int]] = []  # (ret, place) of those placed, earliest return first
    floor = 0  # no earlier than any placed one that returned before this one's call
    for op in sorted(loose, key=lambda o: (o.call, o.id)):
        while finished and finished[0][0] < op.call:
            floor = max(floor, heapq.heappop(finished)[1])
        first = max(floor, bisect_left(min_ret_after, op.call))  # nothing after returned before
        last = bisect_right(max_call_before, op.ret) - 1  # nothing before was called after its return
        place = first if states[first] != freeze(op.input[0]) else next_change[first]
        if first > last or place > last:
            return None
        slots.setdefault(place, []).append(op)
        heapq.heappush(finished, (op.ret, place))
    fitted: list[Operation] = []
    for p in range(n + 1):
        fitted.extend(slots.get(p, ()))
        if p < n:
            fitted.append(order[p])
    return fitted


def _cas_clusters(model: Model, ops: list[Operation]) -> tuple[list[_Cluster], list[Operation]]:
    """Clusters for a register with compare-and-set, every value written once (by a write
    or a swap). A swap ends the stretch of the value it expected and starts its new
    value's: the clusters it joins form one chain, ordered like appends. A failed
    compare is loose (see ``_attempt``); a crashed swap whose value nobody saw is dropped."""
    start = freeze(model.initial)
    heads: dict[Any, Operation | None] = {start: None}
    reads: list[tuple[Operation, Any]] = []  # (op, the value it saw)
    swaps: list[Operation] = []
    loose: list[Operation] = []
    for op in ops:
        if op.f == "read":
            reads.append((op, freeze(op.output)))
            continue
        if op.f == "write":
            value = freeze(op.input)
        else:
            expected, value = freeze(op.input[0]), freeze(op.input[1])
            if op.ret is not None and not _swapped(op):
                loose.append(op)
                continue
            if expected == value:  # a swap of a value for itself: a read, if it happened
                if op.ret is not None:
                    reads.append((op, expected))
                continue
            swaps.append(op)
        if not _hashable(value) or value in heads:
            raise _Undecided
        heads[value] = op
    seen = {value for _, value in reads} | {freeze(op.input[0]) for op in swaps if op.ret is not None}
    crashed = [op for op in swaps if op.ret is None]
    while True:  # a crashed swap whose value was seen happened: so its expected value was there
        more = {freeze(op.input[0]) for op in crashed if freeze(op.input[1]) in seen} - seen
        if not more:
            break
        seen |= more
    for op in swaps:  # a crashed swap to a value nobody saw never happened
        if op.ret is None and freeze(op.input[1]) not in seen:
            del heads[freeze(op.input[1])]
    after: dict[Any, Operation] = {}  # value -> the swap that ended it
    for op in swaps:
        expected = freeze(op.input[0])
        if freeze(op.input[1]) not in heads:
            continue
        if expected not in heads or expected in after:  # swapped from a value nobody wrote, or twice
            raise _Undecided
        after[expected] = op
    readers: dict[Any, list[Operation]] = {}
    for op, value in reads:
        if not _hashable(value) or value not in heads:
            raise _Refuted(_violation(model, ops, [], [op], [op]))  # a value nobody wrote
        readers.setdefault(value, []).append(op)
    clusters, chained = [], 0
    for value, head in heads.items():
        if head is not None and head.f == "cas":
            continue  # inside the chain of the value it swapped from
        cluster, level = _Cluster(head), 0
        while True:
            chained += 1
            for op in readers.get(value, ()):
                cluster.add(level + 1, op)
            swap = after.get(value)
            if swap is None:
                break
            cluster.add(level + 2, swap)
            value, level = freeze(swap.input[1]), level + 2
        if cluster.members or head is None or head.ret is not None:
            clusters.append(cluster)
    if chained < len(heads):  # swaps in a ring that no write starts
        raise _Undecided
    return clusters, loose


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

    def smallest(heap: list[tuple[float, int]], but: int = -1) -> tuple[float, int] | None:
        """The smallest live entry, or the next one when it belongs to ``but``."""
        while heap and placed[heap[0][1]]:
            heapq.heappop(heap)
        if not heap or heap[0][1] != but:
            return heap[0] if heap else None
        held = heapq.heappop(heap)
        found = smallest(heap)
        heapq.heappush(heap, held)
        return found

    while len(order) < len(clusters):
        m1, holder = smallest(by_ret)  # type: ignore[misc]
        second = smallest(by_ret, but=holder)
        m2 = second[0] if second else INF
        choice = None
        if clusters[holder].last_call <= m2:
            choice = holder
        else:
            other = smallest(by_call, but=holder)
            if other is not None and other[0] <= m1:
                choice = other[1]
        if choice is None:
            return order, [c for k, c in enumerate(clusters) if not placed[k]]
        placed[choice] = True
        order.append(clusters[choice])
    return order, []


def _cycle(stuck: list[_Cluster]) -> list[_Cluster]:
    """A cycle among clusters none of which can go first: follow, from each, a cluster
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


def _kv_read(op: Operation) -> Any:
    out = op.output
    return freeze(out[1] if isinstance(out, list | tuple) else out)


def _defining_ops(cluster: _Cluster) -> list[Operation]:
    """The ops that give the cluster its earliest return and latest call, with what they need."""
    everyone = [(lv, op) for lv, op in cluster.members] + ([(0, cluster.head)] if cluster.head else [])
    chosen = []
    finished = [m for m in everyone if m[1].ret is not None]
    if finished:
        chosen.append(min(finished, key=lambda m: m[1].ret))
    chosen.append(max(everyone, key=lambda m: m[1].call))
    return [op for lv, op in chosen for op in [*cluster.support(lv), op]]


# -- shared ---------------------------------------------------------------------------------


def real_time_conflict(order: list[Operation]) -> tuple[Operation | None, Operation | None]:
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
    if real_time_conflict(order)[0] is not None:
        return None
    if model.name == "kv":  # the replay below, without a closure and a state tuple per op
        if not _kv_replays(order):
            return None
        ids = [op.id for op in order]
        return Inferred(PartitionResult(True, ids, longest=ids, state=None, explored=0))
    state: Hashable = model.init()
    for op in order:
        ok, state = model.step_fn(op)(state)
        if not ok:
            return None
    ids = [op.id for op in order]
    return Inferred(PartitionResult(True, ids, longest=ids, state=state, explored=0))


def _kv_replays(order: list[Operation]) -> bool:
    """Does one key's linearization give every get its value? ``KVModel``'s semantics for
    what ``_kv_clusters`` admits (string puts and appends, from ``""``), on a plain string:
    the proof costs a few operations per op. (The state of a valid result is not reported.)"""
    value = ""
    for op in order:
        f = op.f
        if f == "append":
            value += op.input[1]
        elif f == "put":
            value = op.input[1]
        elif op.ret is not None and _kv_read(op) != value:
            return False
    return True


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
