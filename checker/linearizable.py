"""The linearizability search for one partition: Wing & Gong's algorithm with Lowe's memo.

As in Porcupine: walk the operations in call order, try to linearize each one that may
go next (its call precedes the earliest return among the operations not yet
linearized), lift it out of the list when the model accepts it, and backtrack when the
earliest-returning operation can no longer be placed. A configuration is the set of
linearized operations (a Python int used as a bitset) with the model state; each is
explored once (the memo), which keeps the search tractable on realistic histories.

Real-time order uses closed intervals: ``a`` precedes ``b`` only if ``a.ret < b.call``;
an operation that returns at the very time another is called overlaps it (timestamps
that tie cannot order two clients; and a zero-duration operation overlaps itself).

What makes it fast in Python (50 etcd logs of Porcupine's test data: a plain port of
Porcupine's loop takes 2.25 s and visits 328,326 configurations; this search 0.012 s and
2,415; Porcupine itself, in Go, about 0.4 s):

* Model states are interned as small ints and every (operation, state) transition is
  computed once and cached, so the model's ``step`` runs only on the first visit; the
  memo is keyed by bitsets per state id, with no tuple of states to hash.
* Three candidate lists, walked in order: known-outcome read-only operations, other
  known-outcome operations, unknown-outcome operations. A read-only operation (see
  ``checker.models``) that fits the current state is placed at once without branching:
  a pure check can always move earlier, so the configuration with it is equivalent to
  the one without. Unknown outcomes come last: tried first, the same search takes 0.5 s.
* Unknown-outcome operations: their return is at +infinity, so they never block
  anything, and the search ends as soon as every known-outcome operation is placed
  (the rest never happened, or happened after everything). Read-only ones constrain
  nothing and are dropped up front. Identical ones (same ``f`` and input) are
  interchangeable, so only the earliest-called not-yet-placed one of each kind is tried.
  And a configuration is skipped when one with the same known operations and state but
  a subset of its unknown ones was seen (``_fresh``): this alone takes the etcd logs
  from 41,702 configurations to 2,670.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable, Generator, Hashable
from dataclasses import dataclass, field

from checker.model import Model, Operation
from checker.result import UNKNOWN

_CHECK_EVERY = 2048  # pushes between two looks at the clock
_GUIDED_PUSHES_PER_OP = 20  # the guided search's budget: it must stay cheap next to the full one


@dataclass
class PartitionResult:
    """The outcome of the search on one partition."""

    valid: bool | str  # True, False or "unknown" (time limit)
    linearization: list[int] | None  # op ids in linearization order, when valid
    longest: list[int] = field(default_factory=list)  # op ids of the deepest prefix reached
    state: Hashable = None  # model state after ``longest``
    candidates: list[Operation] = field(default_factory=list)  # ops that could go next there
    explored: int = 0  # configurations visited


def check_partition(model: Model, ops: list[Operation], deadline: float | None = None) -> PartitionResult:
    """Is this partition linearizable? ``deadline`` is a ``time.perf_counter()`` value.

    Runs ``partition_search`` to its end, or to the deadline ("unknown").
    """
    steps = partition_search(model, ops)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        if deadline is not None and time.perf_counter() > deadline:
            steps.close()
            return PartitionResult(UNKNOWN, None)


def partition_search(model: Model, ops: list[Operation]) -> Generator[int, None, PartitionResult]:
    """The search as a resumable generator: it yields every ``_CHECK_EVERY`` configurations
    (the value is the size of its memo, in entries) and returns the PartitionResult.

    A scheduler can so interleave many partitions in one process, stop at the first that
    fails, and drop the one whose memo grows past a memory bound.

    With unknown-outcome ops that matter, a guided search goes first: it places such an
    op only where it lets the earliest-returning op, which could not go, go. It is
    incomplete, so only its success counts (a linearization is a proof); otherwise, or
    past a small budget of configurations, the complete search decides. Guidance pays
    where an op that never took effect would, if placed, be contradicted only much later
    (the complete search then has to undo everything in between, which can take
    exponential time: on a generated 5,000-op chat partition with 57 unknown outcomes,
    0.1 to 0.2 s instead of a time-out).
    """
    ro = {op.id: model.read_only(op) for op in ops}
    ops = sorted((op for op in ops if op.ret is not None or not ro[op.id]), key=lambda o: (o.call, o.id))
    if any(op.ret is None for op in ops):
        guided = yield from _search(model, ops, ro, guided=True)
        if guided.valid is True:
            return guided
    return (yield from _search(model, ops, ro, guided=False))


def _search(
    model: Model, ops: list[Operation], ro: dict[int, bool], guided: bool
) -> Generator[int, None, PartitionResult]:
    """The search over ``ops`` (in call order). ``guided``: see check_partition."""
    n = len(ops)
    calls = [op.call for op in ops]
    ret_order = sorted((i for i in range(n) if ops[i].ret is not None), key=lambda i: (ops[i].ret, i))
    n_known = len(ret_order)
    # hi[r]: while ret_order[r] is the earliest-returning op left, ops [0, hi[r]) may go next.
    hi_of = [bisect_right(calls, ops[j].ret) for j in ret_order] + [n]

    # Linked lists over op indexes (= call order): 0 read-only known, 1 known, 2 unknown.
    heads, tails = [n, n + 2, n + 4], [n + 1, n + 3, n + 5]
    nxt, prv = [0] * (n + 6), [0] * (n + 6)
    seg_of = [0 if ro[op.id] else 1 if op.ret is not None else 2 for op in ops]
    for seg in range(3):
        last = heads[seg]
        for i in range(n):
            if seg_of[i] == seg:
                nxt[last], prv[i], last = i, last, i
        nxt[last], prv[tails[seg]] = tails[seg], last
    prev_same = _previous_identical(ops, seg_of)

    states: list[Hashable] = [model.init()]
    state_id: dict[Hashable, int] = {states[0]: 0}
    trans: list[dict[int, int]] = [{} for _ in range(n)]
    # A model may compile each op into a step closure (values decoded once): ``step_fn``.
    compile_op = model.step_fn
    steps: list = [None] * n  # compiled on first use: many ops are stepped once or never
    bit = [1 << i for i in range(n)]
    lin = bytearray(n)
    # The memo, per state id: with no unknown-outcome ops, the set of bitsets seen; else
    # known-op bitset -> the unknown-op bitsets seen with it (see _fresh).
    plain = all(seg < 2 for seg in seg_of)
    seen: list = [{0} if plain else {0: [0]}]

    def transition(i: int, sid: int) -> int:
        fn = steps[i]
        if fn is None:
            fn = steps[i] = compile_op(ops[i])
        ok, after = fn(states[sid])
        if not ok:
            return -1
        found = state_id.get(after)
        if found is None:
            found = state_id[after] = len(states)
            states.append(after)
            seen.append(set() if plain else {})
        return found

    known, unknown, sid, r, hi = 0, 0, 0, 0, hi_of[0]  # bitsets of linearized ops, state id, ...
    stack: list[tuple[int, int, int, int]] = []  # (op, its list, state id before, r before)
    # The deepest configuration so far: path (op indexes), state id, bitset, r. ``agree`` is
    # how much of that path the stack still shares, so recording a new depth copies only
    # what changed (a straight run to a valid linearization costs O(1) per push).
    best: tuple[list[int], int, int, int] = ([], 0, 0, 0)
    agree = 0
    pushes = 0
    limit = _GUIDED_PUSHES_PER_OP * n + _CHECK_EVERY if guided else float("inf")
    seg, i = 0, nxt[heads[0]]
    while n_known:
        if i < hi:
            if seg == 2 and prev_same[i] >= 0 and not lin[prev_same[i]]:
                i = nxt[i]
                continue
            ns = trans[i].get(sid)
            if ns is None:
                ns = trans[i][sid] = transition(i, sid)
            if ns < 0:
                i = nxt[i]
                continue
            if guided and seg == 2 and not _enables(ret_order[r], sid, ns, trans, transition):
                i = nxt[i]
                continue
            memo = seen[ns]
            if plain:
                fresh = (after := known | bit[i]) not in memo
                if fresh:
                    memo.add(after)
            elif seg == 2:
                fresh = _fresh(memo, known, unknown | bit[i])
            else:
                fresh = _fresh(memo, known | bit[i], unknown)
            if fresh:
                stack.append((i, seg, sid, r))
                sid, lin[i] = ns, 1
                if seg == 2:
                    unknown |= bit[i]
                else:
                    known |= bit[i]
                nxt[prv[i]], prv[nxt[i]] = nxt[i], prv[i]
                if i == ret_order[r]:
                    r += 1
                    while r < n_known and lin[ret_order[r]]:
                        r += 1
                    if r == n_known:
                        break
                    hi = hi_of[r]
                if len(stack) > len(best[0]):
                    path = best[0]
                    del path[agree:]
                    path.extend(f[0] for f in stack[agree:])
                    agree = len(stack)
                    best = (path, sid, known | unknown, r)
                pushes += 1
                if pushes % _CHECK_EVERY == 0:
                    if pushes > limit:
                        return _give_up(UNKNOWN, ops, best, states, hi_of, pushes)
                    yield pushes
                seg, i = 0, nxt[heads[0]]
                continue
            if seg != 0:
                i = nxt[i]
                continue
            # A fitting read-only op whose next configuration is known to fail: so does this one.
        elif seg < 2:
            seg += 1
            i = nxt[heads[seg]]
            continue
        while True:  # backtrack; a frame of list 0 was a forced move, so its parent failed too
            if not stack:
                return _give_up(False, ops, best, states, hi_of, pushes)
            i, seg, sid, r = stack.pop()
            if len(stack) < agree:
                agree = len(stack)
            if seg == 2:
                unknown ^= bit[i]
            else:
                known ^= bit[i]
            lin[i] = 0
            nxt[prv[i]] = prv[nxt[i]] = i
            if seg:
                break
        hi = hi_of[r]
        i = nxt[i]
    order = [ops[f[0]].id for f in stack]
    return PartitionResult(True, order, longest=order, state=states[sid], explored=pushes)


def _enables(
    blocking: int, before: int, after: int, trans: list[dict[int, int]], transition: Callable
) -> bool:
    """Does moving from state ``before`` to ``after`` let the ``blocking`` op go when it could not?"""
    if before == after:
        return False
    for sid in (before, after):
        ok = trans[blocking].get(sid)
        if ok is None:
            ok = trans[blocking][sid] = transition(blocking, sid)
        if (ok >= 0) != (sid == after):
            return False
    return True


def _fresh(memo: dict[int, list[int]], known: int, unknown: int) -> bool:
    """Record the configuration unless one seen before dominates it.

    Unknown-outcome ops never have to be linearized and never block another op, so with
    the same known ops linearized and the same state, a configuration that placed a
    subset of these unknown ops can do everything this one can: if it failed, this one
    fails; if it is still being explored, its search covers this one's completions
    (each has a strictly shorter completion, so induction on that length shows the
    search stays complete). On etcd's histories this cuts the configurations visited
    from 41,702 to 2,670.
    """
    masks = memo.get(known)
    if masks is None:
        memo[known] = [unknown]
        return True
    for m in masks:
        if m & unknown == m:
            return False
    masks.append(unknown)
    return True


def _previous_identical(ops: list[Operation], seg_of: list[int]) -> list[int]:
    """For each unknown-outcome op, the previous one (in call order) with the same f and input.

    Identical unknown-outcome ops are interchangeable once both are called, so the search
    places them in call order: only the earliest one not yet placed is a candidate.
    """
    last: dict[tuple[str, str], int] = {}
    prev = [-1] * len(ops)
    for i, op in enumerate(ops):
        if seg_of[i] == 2:
            key = (op.f, repr(op.input))
            prev[i] = last.get(key, -1)
            last[key] = i
    return prev


def _give_up(
    verdict: bool | str,
    ops: list[Operation],
    best: tuple[list[int], int, int, int],
    states: list[Hashable],
    hi_of: list[int],
    explored: int,
) -> PartitionResult:
    """The deepest configuration reached, with the ops that could have gone next there."""
    path, sid, linearized, r = best
    candidates = [op for i, op in enumerate(ops[: hi_of[r]]) if not linearized >> i & 1]
    return PartitionResult(verdict, None, [ops[i].id for i in path], states[sid], candidates, explored)
