"""Property tests: histories recorded from random concurrent schedules of a correct object.

Such histories are linearizable by construction. With one read result changed, the
checker's verdict must equal a brute-force checker's: every ordering of the operations
consistent with real time (each unknown-outcome op included or not) tried against the
model, on histories small enough to enumerate.
"""

from __future__ import annotations

import random
from itertools import combinations, permutations
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker import check_operations
from checker.model import Model, Operation
from checker.models import get_model
from checker.prepare import operations
from histories.op import Op

VALUES = [0, 1, 2]


def simulate(rng: random.Random, kind: str, n_ops: int, processes: int, timed: bool = False) -> list[Op]:
    """Records of ``n_ops`` ops by ``processes`` clients of one correct object.

    Each op takes effect atomically at some step between its invoke and its completion;
    some end ``info`` (taking effect or not) or ``fail`` (not taking effect). With
    ``timed``, records get times that may tie, to exercise equal-time overlap.
    """
    state: dict[str, Any] = {}  # kv: key -> value; registers: key None
    records: list[Op] = []
    busy: dict[int, list[Any]] = {}  # process -> [f, invoke value, result or None, applied]
    started, clock, next_process = 0, 0, processes
    idle = list(range(processes))
    while started < n_ops or busy:
        choices = []
        if idle and started < n_ops:
            choices.append("invoke")
        choices += [p for p in busy]
        pick = rng.choice(choices)
        if timed:
            clock += rng.choice([0, 0, 1])
        if pick == "invoke":
            process = idle.pop(rng.randrange(len(idle)))
            f, value = _random_op(rng, kind)
            busy[process] = [f, value, None, False]
            records.append(Op(len(records), "invoke", process, f, value, clock))
            started += 1
            continue
        process = pick
        entry = busy[process]
        if not entry[3] and rng.random() < 0.6:  # take effect now
            entry[2], entry[3] = _apply(state, kind, entry[0], entry[1]), True
            continue
        if not entry[3] and rng.random() < 0.5:
            continue
        del busy[process]
        f, value, result, applied = entry
        roll = rng.random()
        if roll < 0.12:  # timed out: unknown outcome, whether applied or not
            records.append(Op(len(records), "info", process, f, value, clock))
            idle.append(next_process)
            next_process += 1
            continue
        if not applied:
            if roll < 0.3 and f != "read":
                records.append(Op(len(records), "fail", process, f, value, clock))
                idle.append(process)
                continue
            result = _apply(state, kind, f, value)
        records.append(Op(len(records), "ok", process, f, result, clock))
        idle.append(process)
    return records


def _random_op(rng: random.Random, kind: str) -> tuple[str, Any]:
    if kind == "kv":
        key = rng.choice("ab")
        f = rng.choice(["get", "put", "append"])
        return f, [key, None if f == "get" else rng.choice("xyz")]
    fs = ["read", "write"] + (["cas"] if kind == "cas-register" else [])
    f = rng.choice(fs)
    if f == "read":
        return f, None
    if f == "write":
        return f, rng.choice(VALUES)
    return f, [rng.choice(VALUES), rng.choice(VALUES)]


def _apply(state: dict[str, Any], kind: str, f: str, value: Any) -> Any:
    """Apply to the correct object; return the canonical completion value."""
    if kind == "kv":
        key, arg = value
        current = state.get(key, "")
        if f == "get":
            return [key, current]
        state[key] = arg if f == "put" else current + arg
        return [key, arg]
    current = state.get("r")
    if f == "read":
        return current
    if f == "write":
        state["r"] = value
        return value
    swapped = current == value[0]
    if swapped:
        state["r"] = value[1]
    return [value[0], value[1], swapped]


def brute_force(model: Model, ops: list[Operation]) -> bool:
    """Is there an order of (all known + some unknown) ops, consistent with real time, the model accepts?"""
    known = [op for op in ops if op.ret is not None]
    unknown = [op for op in ops if op.ret is None]
    for k in range(len(unknown) + 1):
        for extra in combinations(unknown, k):
            for order in permutations(known + list(extra)):
                if _respects_real_time(order) and _accepted(model, order):
                    return True
    return False


def _respects_real_time(order: tuple[Operation, ...]) -> bool:
    for a_pos, a in enumerate(order):
        for b in order[a_pos + 1 :]:
            if b.ret is not None and b.ret < a.call:  # b finished before a started, yet comes after
                return False
    return True


def _accepted(model: Model, order: tuple[Operation, ...]) -> bool:
    state = model.init()
    for op in order:
        ok, state = model.step(state, op)
        if not ok:
            return False
    return True


def _mutate_a_read(rng: random.Random, kind: str, records: list[Op]) -> bool:
    """Change one ok read's result to another value; False when there is no read."""
    reads = [op for op in records if op.type == "ok" and op.f in ("read", "get")]
    if not reads:
        return False
    op = rng.choice(reads)
    if kind == "kv":
        key, seen = op.value
        op.value = [key, rng.choice([v for v in ["", "x", "y", "xy", "z"] if v != seen])]
    else:
        op.value = rng.choice([v for v in [None, *VALUES] if v != op.value])
    return True


KINDS = st.sampled_from(["register", "cas-register", "kv"])
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(kind=KINDS, seed=st.integers(0, 2**32 - 1), n_ops=st.integers(1, 30), processes=st.integers(1, 5))
def test_histories_of_a_correct_object_are_linearizable(
    kind: str, seed: int, n_ops: int, processes: int
) -> None:
    rng = random.Random(seed)
    records = simulate(rng, kind, n_ops, processes, timed=rng.random() < 0.5)
    result = check_operations(operations(records), get_model(kind), shrink=False)
    assert result.valid is True
    assert all(lin is not None for lin in result.linearizations)


@SETTINGS
@given(kind=KINDS, seed=st.integers(0, 2**32 - 1), n_ops=st.integers(1, 7), processes=st.integers(1, 4))
def test_verdicts_match_brute_force_on_small_histories(
    kind: str, seed: int, n_ops: int, processes: int
) -> None:
    rng = random.Random(seed)
    records = simulate(rng, kind, n_ops, processes, timed=rng.random() < 0.5)
    _mutate_a_read(rng, kind, records)
    ops = operations(records)
    model = get_model(kind)
    expected = all(brute_force(model, part) for part in model.partition(ops))
    assert check_operations(ops, get_model(kind), shrink=False).valid is expected


@SETTINGS
@given(kind=KINDS, seed=st.integers(0, 2**32 - 1), n_ops=st.integers(2, 7))
def test_linearization_found_is_a_real_witness(kind: str, seed: int, n_ops: int) -> None:
    """The returned order respects real time, includes every known op, and the model accepts it."""
    rng = random.Random(seed)
    ops = operations(simulate(rng, kind, n_ops, 3))
    model = get_model(kind)
    result = check_operations(ops, model, shrink=False)
    by_id = {op.id: op for op in ops}
    for part, lin in zip(result.partition_ops, result.linearizations, strict=True):
        assert lin is not None
        order = tuple(by_id[i] for i in lin)
        assert {i for i in part if by_id[i].ret is not None} <= set(lin) <= set(part)
        assert _respects_real_time(order) and _accepted(get_model(kind), order)


def test_brute_force_itself_on_a_known_anomaly() -> None:
    ops = operations(
        [
            Op(0, "invoke", 0, "write", 1),
            Op(1, "ok", 0, "write", 1),
            Op(2, "invoke", 1, "read", None),
            Op(3, "ok", 1, "read", None),
        ]
    )
    assert brute_force(get_model("register"), ops) is False
    assert brute_force(get_model("register"), ops[:1]) is True
