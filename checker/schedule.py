"""Which partition to search next: all of them, in turns, until one fails.

Searching partitions one after another lets one hard partition hide an easy violation
in the next. Here every partition first gets the inference of ``checker.infer`` (linear
time, decides most partitions whose written values are unique); the rest get the
general search as resumable generators, run in turns of ``_CHECK_EVERY`` configurations
each. An easy partition finishes in its first turn, and a violation is found after at
most (partitions still open) x (its own search) work, whatever the others cost. The
first partition that fails ends the check.

Memory: the searches' memos are what grows. Between turns the process's resident memory
is compared with the bound; past it, the open search with the largest memo is dropped
(its partition stays undecided, the reason says so) and the others go on.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Generator
from dataclasses import dataclass, field

from checker import memory
from checker.infer import Inferred, infer
from checker.linearizable import PartitionResult, check_partition, partition_search
from checker.model import Model, Operation

_CONFIRM_BUDGET = 0.1  # seconds for the search to confirm (and explain) an inferred violation


@dataclass
class Schedule:
    """What the partitions came to. ``results[i]`` None: never decided (see ``undecided``)."""

    results: list[PartitionResult | None]
    failed: int | None = None  # the partition that is not linearizable
    witness: list[Operation] | None = None  # a sub-history of it that is still not linearizable
    undecided: dict[int, str] = field(default_factory=dict)  # partition -> why ("time", "memory")
    decided_by: list[str] = field(default_factory=list)  # per partition: "inference", "search" or ""
    memory_partition: int | None = None  # the first partition dropped at the memory bound


def run(
    model: Model,
    parts: list[list[Operation]],
    deadline: float | None,
    max_memory: int | None,
    use_inference: bool = True,
    workers: int | None = None,
) -> Schedule:
    """Decide ``parts`` (each a partition's operations) until one fails, time runs out
    (``deadline``, a ``perf_counter`` value) or memory does (``max_memory`` bytes of growth).

    ``workers``: processes for a first pass over big histories (None: one per core the
    process may use; 1: none). See ``_first_pass``."""
    out = Schedule(results=[None] * len(parts), decided_by=[""] * len(parts))
    searches: dict[int, Generator[int, None, PartitionResult]] = {}
    done_first = _parallel_first_pass(model, parts, deadline, use_inference, workers)
    timed_out = False
    for index, part in enumerate(parts):
        if index in done_first:
            how, result, witness = done_first[index]
            if how == "inference" and result.valid is False:
                confirmed = _confirm(model, Inferred(result, witness), deadline)
                if confirmed is None:
                    searches[index] = partition_search(model, part)
                    continue
                result = confirmed.result
            if _record(out, index, how, result, witness):
                return _abandon(out, searches, None)
            continue
        if timed_out or (deadline is not None and time.perf_counter() > deadline):
            timed_out = True  # what the first pass decided still counts; the rest is undecided
            out.undecided[index] = "time"
            continue
        inferred: Inferred | None = infer(model, part) if use_inference else None
        if inferred is not None and inferred.result.valid is False:
            inferred = _confirm(model, inferred, deadline)
        if inferred is not None:
            if _record(out, index, "inference", inferred.result, inferred.witness):
                return _abandon(out, searches, None)
            continue
        searches[index] = partition_search(model, part)
    if timed_out:
        return _abandon(out, searches, "time")
    sizes = dict.fromkeys(searches, 0)  # memo entries per open search, as last reported
    base = memory.resident() if searches else 0  # what the searches add is measured from here
    while searches:
        for index in list(searches):
            try:
                sizes[index] = next(searches[index])
            except StopIteration as done:
                del searches[index]
                if _record(out, index, "search", done.value, None):
                    return _abandon(out, searches, None)
                continue
            if deadline is not None and time.perf_counter() > deadline:
                return _abandon(out, searches, "time")
            if max_memory is not None and memory.resident() - base > max_memory:
                heaviest = max(searches, key=lambda i: sizes[i] * (len(parts[i]) // 8 + 100))
                searches.pop(heaviest).close()
                out.undecided[heaviest] = "memory"
                if out.memory_partition is None:
                    out.memory_partition = heaviest
    return out


def _record(
    out: Schedule, index: int, how: str, result: PartitionResult, witness: list[Operation] | None
) -> bool:
    """Note a decided partition; True when it is the failure that ends the check."""
    out.results[index], out.decided_by[index] = result, how
    if result.valid is False:
        out.failed, out.witness = index, witness
        return True
    return False


# -- the parallel first pass ----------------------------------------------------------------

PARALLEL_MIN_OPS = 50_000  # below this, starting processes costs more than it saves
_FIRST_PASS_BUDGET = 1.0  # seconds of search per partition in a worker; the rest comes after
_JOB: tuple[Model, list[list[Operation]], bool] | None = None  # what forked workers work on


def _parallel_first_pass(
    model: Model,
    parts: list[list[Operation]],
    deadline: float | None,
    use_inference: bool,
    workers: int | None,
) -> dict[int, tuple[str, PartitionResult, list[Operation] | None]]:
    """On a big history with many partitions, decide what is quick to decide in worker
    processes (forked, so they share the operations without copying them up front):
    inference, else a search of at most ``_FIRST_PASS_BUDGET``. Stops at the first
    failure. What stays undecided is left out of the answer, for the turns in this process.
    """
    global _JOB
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if workers < 2 or len(parts) < 2 or sum(map(len, parts)) < PARALLEL_MIN_OPS:
        return {}
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform: the turns alone
        return {}
    found: dict[int, tuple[str, PartitionResult, list[Operation] | None]] = {}
    _JOB = (model, parts, use_inference)
    try:
        with context.Pool(min(workers, len(parts))) as pool:
            chunk = max(1, len(parts) // (workers * 16))
            for index, how, result, witness in pool.imap_unordered(_first_pass, range(len(parts)), chunk):
                if result is not None:
                    found[index] = (how, result, witness)
                    if result.valid is False:
                        break
                if deadline is not None and time.perf_counter() > deadline:
                    break
    finally:
        _JOB = None
    return found


def _first_pass(index: int) -> tuple[int, str, PartitionResult | None, list[Operation] | None]:
    """In a worker: decide partition ``index`` quickly, or give it back undecided (None)."""
    assert _JOB is not None
    model, parts, use_inference = _JOB
    inferred = infer(model, parts[index]) if use_inference else None
    if inferred is not None:
        result, how, witness = inferred.result, "inference", inferred.witness
    else:
        result = check_partition(model, parts[index], time.perf_counter() + _FIRST_PASS_BUDGET)
        how, witness = "search", None
    if result.valid not in (True, False):
        return index, how, None, None
    result.state = None  # a model's state may refer to the worker's own tables (chat inboxes)
    return index, how, result, witness


def _confirm(model: Model, inferred: Inferred, deadline: float | None) -> Inferred | None:
    """Search the violation's witness (a small sub-history) for a second opinion.

    Its failure, when found in the budget, is the explanation (the search's deepest
    prefix and stuck operations, as for any failure). Were it linearizable, the inference
    would be wrong: None, and the partition gets the general search.
    """
    budget = time.perf_counter() + _CONFIRM_BUDGET
    limit = budget if deadline is None else min(budget, deadline)
    outcome = check_partition(model, inferred.witness or [], limit)
    if outcome.valid is True:
        return None
    return Inferred(outcome, inferred.witness) if outcome.valid is False else inferred


def _abandon(out: Schedule, searches: dict, why: str | None) -> Schedule:
    """Stop the open searches; their partitions stay undecided for ``why`` (None: a failure
    elsewhere made them moot, and they are simply unchecked)."""
    for index, steps in searches.items():
        if steps is not None:
            steps.close()
        if why is not None:
            out.undecided[index] = why
    return out
