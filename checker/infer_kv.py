"""A kv key's linearization found by sorting, and proven, before any cluster is built.

``checker.infer`` decides a key of puts, appends and gets by building one cluster per
put (the stretch it starts), checking each against real time and ordering them; all of
that keeps what a violation's explanation needs. When the key is linearizable (almost
every key of a real history) a cheaper road gives the same order:

* The distinct values the gets saw, sorted as strings, fall into runs of prefixes: the
  states of one put's stretch (they all start with its token) are prefixes of its
  longest state, and in sorted order a string between a prefix and its extension starts
  with that prefix, so a stretch's states are contiguous. The longest state of a run,
  cut into written tokens, spells its head (a put, or an append of the initial stretch)
  and its appends in order; each get goes after the appends its value holds.
* Stretches are ordered by ``(min(first return, last call), last call > first return)``
  over their operations. Stretch C must precede D when C's earliest return is before
  D's latest call; whenever these constraints have no cycle, that key puts every C
  before its D (for a constraint C -> D without D -> C: min(C) <= C's last call <= D's
  first return, and min(C) <= C's first return < D's last call, so min(C) <= min(D),
  with equality only when min(C) is C's last call and min(D) is D's first return,
  which the second element orders). A completed write nobody saw is a stretch alone;
  a crashed one nobody saw never happened.

Nothing of this is trusted: the order is a linearization only if every operation returns
no earlier than the latest call before it (checked inside each stretch as it is built,
and across stretches by their earliest returns and latest calls), each write is placed
once and every completed one is placed. Every get then has its value by construction,
with no replay: a stretch runs alone, from its put (or, first of all, from ``""``), and
each get comes right after the writes its value was cut into, whose inputs (the keys
they were found by) are exactly those pieces, and the gets of one value are the ones a
table of the values read holds under it.
Anything else (a violation, values that repeat, inputs of other shapes) returns None and
``checker.infer``'s clusters decide, with their explanations.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from checker.model import Operation

INF = float("inf")


def kv_linearization(ops: list[Operation]) -> list[int] | None:
    """The ids of ``ops`` (one key's, initial value ``""``) in a proven linearization, or
    None when this road finds none (not a verdict: the clusters decide)."""
    try:
        return _linearization(ops)
    except (TypeError, AttributeError, IndexError, KeyError):
        return None  # an input or output of another shape than [key, string]


def _linearization(ops: list[Operation]) -> list[int] | None:
    writes: dict[str, Operation] = {}  # token -> its put or append
    readers: dict[str, list[Operation]] = {}  # a value read -> the completed gets that read it, by call
    for op in ops:
        f = op.f
        if f == "get":
            if op.ret is not None:
                value = op.output[1]
                found = readers.get(value)
                if found is None:
                    readers[value] = [op]
                else:
                    found.append(op)
        elif f == "append" or f == "put":
            token = op.input[1]
            if token in writes:
                return None
            writes[token] = op
        else:
            return None
    if "" in writes:
        return None
    values = sorted(readers)
    initial: list[Operation] = readers[""] if values and values[0] == "" else []
    if initial:
        del values[0]
    keyed: list[_Entry] = []
    every: list[Operation] = []  # the writes the values spell, each run's in order
    heads = 0  # runs that start with a put
    cut = _cutter(writes)
    initial_run = False
    start, n_values = 0, len(values)
    while start < n_values:  # one run of prefixes at a time
        end, last = start + 1, values[start]
        while end < n_values and values[end].startswith(last):
            last = values[end]
            end += 1
        # The stretch in its order, checked against real time as it grows: every op
        # returns no earlier than the latest call before it in the stretch (last_call).
        stretch: list[Operation] = []
        spelled: list[Operation] = []
        first_ret, last_call, size = INF, -INF, 0
        for value in values[start:end]:  # each extends the one before
            piece, size = value[size:], len(value)
            op = writes.get(piece)
            more = [op] if op is not None else cut(piece)
            for op in more:
                ret = op.ret
                if ret is not None:
                    if ret < last_call:
                        return None
                    if ret < first_ret:
                        first_ret = ret
                if op.call > last_call:
                    last_call = op.call
            spelled += more
            stretch += more
            got = readers[value]
            for op in got:  # in call order
                ret = op.ret
                if ret < last_call:
                    return None
                if ret < first_ret:
                    first_ret = ret
                if op.call > last_call:
                    last_call = op.call
            stretch += got
        every += spelled
        if spelled[0].f == "put":
            heads += 1
            if last_call <= first_ret:
                keyed.append((last_call, 0, len(keyed), stretch, first_ret, last_call))
            else:
                keyed.append((first_ret, 1, len(keyed), stretch, first_ret, last_call))
        elif initial_run:
            return None  # two runs of the initial stretch: its states are not one chain
        else:
            initial_run = True
            initial = initial + stretch
        start = end
    placed = {op.id for op in every}
    if len(placed) < len(every) or [op.f for op in every].count("put") != heads:
        return None  # a write spelled twice, or a put after a state's first token
    if initial:
        first_ret, last_call = _in_time(initial)
        if first_ret is None:
            return None
        keyed.append((-INF, 0, -1, initial, first_ret, last_call))  # before every put
    if len(placed) < len(writes):
        for op in writes.values():  # completed writes nobody saw: each alone
            if op.ret is not None and op.id not in placed:
                keyed.append((op.call, 0, len(keyed), [op], op.ret, op.call))
    keyed.sort()
    return _proven(keyed)


# A stretch to order: (key, tie, position, its operations, their earliest return, their
# latest call). Positions differ, so the operations are never compared.
_Entry = tuple[float, int, int, list[Operation], float, float]


def _in_time(stretch: list[Operation]) -> tuple[float | None, float]:
    """(earliest return, latest call) of ``stretch`` if in its order every op returns no
    earlier than the latest call before it, else (None, latest call)."""
    first_ret, last_call = INF, -INF
    for op in stretch:
        ret = op.ret
        if ret is not None:
            if ret < last_call:
                return None, last_call
            if ret < first_ret:
                first_ret = ret
        if op.call > last_call:
            last_call = op.call
    return first_ret, last_call


def _cutter(writes: dict[str, Operation]) -> Callable[[str], list[Operation]]:
    """What cuts a value into the writes it is made of, left to right (KeyError where no
    token fits). Tokens that all end with one character found nowhere else in them (a
    workload's ``"a3.17;"``, the generator's ``"x17."``) are cut where it occurs; others
    by trying each token length in turn (``_chain``)."""
    ends = {token[-1] for token in writes}
    if len(ends) == 1:
        (mark,) = ends
        if "".join(writes).count(mark) == len(writes):
            tokens = _delimited(mark).findall

            def cut(value: str) -> list[Operation]:
                if value[-1] != mark:
                    raise KeyError(value)  # the tail after the last mark is no token
                return [writes[token] for token in tokens(value)]

            return cut
    lengths = sorted({*map(len, writes)}, reverse=True)  # numbered tokens: the longest are the most
    return lambda value: _chain(value, lengths, writes)


@lru_cache(maxsize=16)
def _delimited(mark: str) -> re.Pattern[str]:
    """Runs of characters up to and including ``mark``: the tokens of a value, when every
    token ends with ``mark`` and holds it nowhere else."""
    mark = re.escape(mark)
    return re.compile(f"[^{mark}]*{mark}")


def _chain(value: str, lengths: list[int], writes: dict[str, Operation]) -> list[Operation]:
    """The writes ``value`` is made of, left to right (KeyError where no token fits). At
    each place the first of ``lengths`` that fits is taken: with tokens none of which is a
    prefix of another only one can, and otherwise a wrong cut only fails the proof."""
    if len(lengths) == 1:
        size = lengths[0]
        return [writes[value[pos : pos + size]] for pos in range(0, len(value), size)]
    found, pos, total = [], 0, len(value)
    while pos < total:
        for size in lengths:
            op = writes.get(value[pos : pos + size])
            if op is not None:
                break
        else:
            raise KeyError(value)
        found.append(op)
        pos += size
    return found


def _proven(keyed: list[_Entry]) -> list[int] | None:
    """The ids of the stretches' operations, in turn, if that order respects real time:
    nothing returned before an operation placed earlier was called. Each stretch was
    checked inside as it was built; across stretches, one's earliest return against the
    latest call of those before it says the same for all its operations."""
    latest_call = -INF
    for entry in keyed:
        if entry[4] < latest_call:
            return None
        if entry[5] > latest_call:
            latest_call = entry[5]
    return [op.id for entry in keyed for op in entry[3]]
