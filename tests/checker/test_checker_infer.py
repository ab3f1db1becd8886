"""The inference (``checker.infer``) against the general search and the brute force.

Histories come from random concurrent schedules of a correct object whose writes are
unique, with many clients and crashed (info) operations; some get one read changed to a
state the object held at another time, or to a value nobody wrote. Wherever both the
inference and the general search decide, they must agree, and on small histories both
must agree with brute-force enumeration.
"""

from __future__ import annotations

import random
from typing import Any

import oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker import check_operations
from checker.infer import infer
from checker.infer_kv import kv_linearization
from checker.models import get_model
from checker.prepare import operations
from histories.format import Op
from histories.synth import generate

UNIQUE_KINDS = ["register", "cas-register", "kv-append", "kv-put", "kv"]


def simulate_unique(rng: random.Random, kind: str, n_ops: int, processes: int) -> list[Op]:
    """Records of a correct object with unique written values (see the module docstring).

    Each op takes effect at one step between its invoke and completion; an ``info`` op
    took effect or not. ``kind``: register, or kv with appends, puts or both on two keys.
    """
    state: dict[Any, Any] = {}
    history_of: dict[Any, list[Any]] = {}  # key -> every state it had, for mutations
    records: list[Op] = []
    busy: dict[int, list[Any]] = {}  # process -> [f, value, result, applied]
    started, fresh, next_process, clock = 0, 0, processes, 0
    idle = list(range(processes))
    while started < n_ops or busy:
        clock += rng.choice([0, 1, 1, 2])
        if idle and started < n_ops and (not busy or rng.random() < 0.5):
            process = idle.pop(rng.randrange(len(idle)))
            fresh += 1
            f, value = _unique_op(rng, kind, fresh)
            busy[process] = [f, value, None, False]
            records.append(Op(len(records), "invoke", process, f, value, clock))
            started += 1
            continue
        process = rng.choice(list(busy))
        entry = busy[process]
        if not entry[3] and rng.random() < 0.6:
            entry[2], entry[3] = _apply(state, history_of, kind, entry[0], entry[1]), True
            continue
        del busy[process]
        f, value, result, applied = entry
        if rng.random() < 0.15:  # crashed: took effect or not
            records.append(Op(len(records), "info", process, f, value, clock))
            idle.append(next_process)
            next_process += 1
            continue
        if not applied:
            result = _apply(state, history_of, kind, f, value)
        records.append(Op(len(records), "ok", process, f, result, clock))
        idle.append(process)
    records.append(Op(len(records), "invoke", 999, *_read_op(kind, "a"), clock + 1))  # final reads
    records.append(Op(len(records), "ok", 999, _read_op(kind, "a")[0], _read(state, kind, "a"), clock + 2))
    _mutate(rng, kind, records, history_of)
    return records


def _register(kind: str) -> bool:
    return kind in ("register", "cas-register")


def _read_op(kind: str, key: str) -> tuple[str, Any]:
    return ("read", None) if _register(kind) else ("get", [key, None])


def _read(state: dict[Any, Any], kind: str, key: str) -> Any:
    return state.get(None) if _register(kind) else [key, state.get(key, "")]


def _unique_op(rng: random.Random, kind: str, fresh: int) -> tuple[str, Any]:
    key = rng.choice("ab")
    if rng.random() < 0.45:
        return _read_op(kind, key)
    if kind == "register" or (kind == "cas-register" and rng.random() < 0.4):
        return "write", fresh
    if kind == "cas-register":  # expects a recent value (filled in when invoked) or a random one
        return "cas", [rng.choice([None, fresh - 1, fresh - 2, fresh - 3]), fresh]
    f = {"kv-append": "append", "kv-put": "put"}.get(kind) or rng.choice(["put", "append", "append"])
    return f, [key, f"t{fresh}."]


def _apply(state: dict[Any, Any], history_of: dict[Any, list[Any]], kind: str, f: str, value: Any) -> Any:
    if f in ("read", "get"):
        return _read(state, kind, None if _register(kind) else value[0])
    if f == "cas":
        if state.get(None) != value[0]:
            return [value[0], value[1], False]
        state[None] = value[1]
        history_of.setdefault(None, []).append(value[1])
        return [value[0], value[1], True]
    key, arg = (None, value) if _register(kind) else value
    state[key] = state.get(key, "") + arg if f == "append" else arg
    history_of.setdefault(key, []).append(state[key])
    return value


def _mutate(rng: random.Random, kind: str, records: list[Op], history_of: dict[Any, list[Any]]) -> None:
    """Half the time, change one ok read to another state of its key, or to garbage."""
    reads = [op for op in records if op.type == "ok" and op.f in ("read", "get", "cas")]
    if not reads or rng.random() < 0.5:
        return
    op = rng.choice(reads)
    if op.f == "cas":
        op.value = [op.value[0], op.value[1], not op.value[2]]
        return
    key = None if _register(kind) else op.value[0]
    initial, garbage = (None, -1) if _register(kind) else ("", "zz")
    choices = [initial, *history_of.get(key, []), garbage]
    new = rng.choice(choices)
    op.value = new if _register(kind) else [key, new]


def _model(kind: str) -> str:
    return kind if _register(kind) else "kv"


SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    kind=st.sampled_from(UNIQUE_KINDS),
    seed=st.integers(0, 2**32 - 1),
    n_ops=st.integers(1, 40),
    processes=st.integers(1, 10),
)
def test_inference_agrees_with_the_general_search(kind: str, seed: int, n_ops: int, processes: int) -> None:
    ops = operations(simulate_unique(random.Random(seed), kind, n_ops, processes))
    model = _model(kind)
    inferred = check_operations(ops, model, timeout=5, shrink=False)
    searched = check_operations(ops, model, timeout=2, shrink=False, inference=False)
    if searched.valid != "unknown":
        assert inferred.valid is searched.valid
    if inferred.valid is True:
        assert all(lin is not None for lin in inferred.linearizations)


@SETTINGS
@given(
    kind=st.sampled_from(UNIQUE_KINDS),
    seed=st.integers(0, 2**32 - 1),
    n_ops=st.integers(1, 6),
    processes=st.integers(1, 6),
)
def test_inference_agrees_with_brute_force(kind: str, seed: int, n_ops: int, processes: int) -> None:
    """Against the independent oracle (its own pairing and models): a partition the inference
    finds violated makes the history violated; all partitions inferred valid make it valid."""
    records = simulate_unique(random.Random(seed), kind, n_ops, processes)
    model = get_model(_model(kind))
    found = [infer(model, part) for part in model.partition(operations(records))]
    decided = [f.result.valid for f in found if f is not None]
    truth = oracle.linearizable(records, _model(kind))
    if False in decided:
        assert truth is False
    elif decided and len(decided) == len(found):
        assert truth is True


def test_the_inference_decides_the_unique_valued_partitions() -> None:
    for kind in UNIQUE_KINDS:
        decided = 0
        for seed in range(30):
            ops = operations(simulate_unique(random.Random(seed), kind, 30, 6))
            model = get_model(_model(kind))
            decided += all(infer(model, part) is not None for part in model.partition(ops))
        assert decided >= 25, kind


def test_values_that_repeat_are_left_to_the_search() -> None:
    rows = [Op(0, "invoke", 0, "write", 1), Op(1, "invoke", 1, "write", 1)]
    rows += [Op(2, "ok", 0, "write", 1), Op(3, "ok", 1, "write", 1)]
    assert infer(get_model("register"), operations(rows)) is None
    result = check_operations(operations(rows), "register")
    assert result.valid is True and result.decided_by == ["search"]


def test_crash_heavy_generated_histories_are_decided_by_inference() -> None:
    for model, keys in (("kv", 5), ("register", 1)):
        history = generate(model, clients=50, ops=1500, keys=keys, info_rate=0.2, seed=7)
        result = check_operations(operations(history), model, timeout=20, shrink=False)
        assert result.valid is True
        assert set(result.decided_by) == {"inference"}


def test_every_generated_anomaly_is_found_and_explained() -> None:
    cases = [(m, a) for m in ("register", "kv") for a in ("stale-read", "lost-write", "early-read")]
    cases.append(("kv", "duplicate-append"))
    for model, anomaly in cases:
        for clients in (10, 100):
            keys = 4 if model == "kv" else 1
            history = generate(
                model, clients=clients, ops=800, keys=keys, info_rate=0.05, anomaly=anomaly, seed=3
            )
            result = check_operations(operations(history), model, timeout=20)
            assert result.valid is False, (model, anomaly, clients)
            failure = result.failure
            assert failure is not None and failure.stuck, (model, anomaly)
            assert failure.minimal and len(failure.minimal) < 40, (model, anomaly, failure.minimal)
            assert failure.minimal_stuck, (model, anomaly)


def test_an_inferred_violation_is_explained_like_a_searched_one() -> None:
    rows = [
        Op(0, "invoke", 0, "write", 1, 0),
        Op(1, "ok", 0, "write", 1, 1),
        Op(2, "invoke", 0, "write", 2, 2),
        Op(3, "ok", 0, "write", 2, 3),
        Op(4, "invoke", 1, "read", None, 4),
        Op(5, "ok", 1, "read", 1, 5),  # stale: 2 was written before the read began
    ]
    ops = operations(rows)
    by_inference = check_operations(ops, "register")
    by_search = check_operations(ops, "register", inference=False)
    assert by_inference.decided_by == ["inference"]
    for result in (by_inference, by_search):
        assert result.valid is False
    a, b = by_inference.failure, by_search.failure
    assert a is not None and b is not None
    assert (a.longest, a.state, [s.op for s in a.stuck]) == (b.longest, b.state, [s.op for s in b.stuck])
    assert sorted(a.minimal or []) == sorted(b.minimal or []) == [0, 1, 2]


# -- kv keys by one sort (checker.infer_kv) --------------------------------------------------


def _is_linearization(records: list[Op], part: list, ids: list[int]) -> bool:
    """Is ``ids`` an order of ``part`` with every completed op, in real time, that the
    oracle's own model accepts?"""
    calls = {call.invoke_index: call for call in oracle.pair(records)}
    by_id = {op.id: op for op in part}
    if len(set(ids)) != len(ids) or not {op.id for op in part if op.ret is not None} <= set(ids):
        return False
    order = [calls[by_id[i].call_index] for i in ids]
    in_time = all(
        later.end is None or later.end >= earlier.start
        for pos, earlier in enumerate(order)
        for later in order[pos + 1 :]
    )
    return in_time and oracle.accepts("kv", order)


@SETTINGS
@given(
    kind=st.sampled_from(["kv-append", "kv-put", "kv"]),
    seed=st.integers(0, 2**32 - 1),
    n_ops=st.integers(1, 40),
    processes=st.integers(1, 10),
)
def test_the_sorted_kv_order_is_a_linearization_whenever_given(
    kind: str, seed: int, n_ops: int, processes: int
) -> None:
    """Random histories, half with one read changed: an order is only ever returned for a
    key the general search finds linearizable, and it is a linearization by the oracle."""
    records = simulate_unique(random.Random(seed), kind, n_ops, processes)
    model = get_model("kv")
    for part in model.partition(operations(records)):
        ids = kv_linearization(part)
        if ids is None:
            continue
        assert _is_linearization(records, part, ids)
        searched = check_operations(part, "kv", timeout=2, shrink=False, inference=False)
        assert searched.valid in (True, "unknown")


def test_the_sorted_kv_order_decides_every_generated_valid_key() -> None:
    """The bench's kinds of history (crashes, puts, few and many keys, many clients): every
    key of a valid one is decided by the sort, and the order is a linearization."""
    for clients, keys, info in ((10, 2, 0.0), (10, 20, 0.05), (50, 20, 0.2), (100, 2, 0.2)):
        records = generate("kv", clients=clients, ops=600, keys=keys, info_rate=info, seed=clients + keys)
        model = get_model("kv")
        for part in model.partition(operations(records)):
            ids = kv_linearization(part)
            assert ids is not None, (clients, keys, info)
            assert _is_linearization(records, part, ids)


def test_the_sorted_kv_order_leaves_violations_and_odd_values_to_the_clusters() -> None:
    rows = [
        Op(0, "invoke", 0, "append", ["k", "a"], 0),
        Op(1, "ok", 0, "append", ["k", "a"], 1),
        Op(2, "invoke", 0, "append", ["k", "b"], 2),
        Op(3, "ok", 0, "append", ["k", "b"], 3),
        Op(4, "invoke", 1, "get", ["k", None], 4),
        Op(5, "ok", 1, "get", ["k", "a"], 5),  # stale: b was appended before the get began
    ]
    assert kv_linearization(operations(rows)) is None
    result = check_operations(operations(rows), "kv")
    assert result.valid is False and result.decided_by == ["inference"]
    rows[5] = Op(5, "ok", 1, "get", ["k", "ab"], 5)
    assert kv_linearization(operations(rows)) == [0, 1, 2]
    rows[5] = Op(5, "ok", 1, "get", ["k", 7], 5)  # not a string: no order, no crash
    assert kv_linearization(operations(rows)) is None


# -- chat groups ----------------------------------------------------------------------------


@settings(SETTINGS, max_examples=120)
@given(
    seed=st.integers(0, 2**32 - 1),
    clients=st.sampled_from([1, 3, 10, 50]),
    n_ops=st.integers(1, 120),
    info=st.sampled_from([0.0, 0.05, 0.2]),
    anomaly=st.sampled_from([None, "stale-read", "lost-write", "duplicate-append", "early-read"]),
    unique=st.booleans(),
)
def test_chat_inference_agrees_with_the_general_search(
    seed: int, clients: int, n_ops: int, info: float, anomaly: str | None, unique: bool
) -> None:
    """Generated chat groups (creates, deletes, listings, sends, fetches; crashed ones;
    repeated texts unless ``unique``): an inferred group is one the search finds linearizable
    too, and the inferred order is a real linearization (the oracle's own model accepts it)."""
    try:
        records = generate(
            "chat",
            clients=clients,
            ops=n_ops,
            keys=2,
            info_rate=info,
            anomaly=anomaly,
            unique_writes=unique,
            seed=seed,
        )
    except ValueError:  # too short for the anomaly
        return
    model = get_model("chat")
    ops = operations(records)
    calls = {call.invoke_index: call for call in oracle.pair(records)}
    for part in model.partition(ops):
        inferred = infer(model, part)
        if inferred is None:
            continue
        assert inferred.result.valid is True  # the sweep only ever proves
        searched = check_operations(part, "chat", timeout=2, shrink=False, inference=False)
        assert searched.valid in (True, "unknown")
        by_id = {op.id: op for op in part}
        order = [calls[by_id[i].call_index] for i in inferred.result.linearization or []]
        assert {op.id for op in part if op.ret is not None} <= set(inferred.result.linearization or [])
        assert all(
            later.end is None or later.end >= earlier.start
            for pos, earlier in enumerate(order)
            for later in order[pos + 1 :]
        )
        assert oracle.accepts("chat", order)


@settings(SETTINGS, max_examples=150)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_ops=st.integers(1, 7),
    clients=st.integers(1, 5),
    anomaly=st.sampled_from([None, "lost-write", "stale-read"]),
)
def test_chat_inference_agrees_with_brute_force(
    seed: int, n_ops: int, clients: int, anomaly: str | None
) -> None:
    try:
        records = generate(
            "chat", clients=clients, ops=n_ops, keys=1, info_rate=0.2, anomaly=anomaly, seed=seed
        )
    except ValueError:
        return
    model = get_model("chat")
    found = [infer(model, part) for part in model.partition(operations(records))]
    if found and all(f is not None for f in found):
        assert oracle.linearizable(records, "chat") is True


def test_chat_groups_of_a_few_clients_are_decided_by_inference() -> None:
    """Groups with a few clients each, crashed sends among them: the sweep decides nearly all,
    an injected anomaly is left to the search, which finds it."""
    history = generate("chat", clients=40, ops=4000, keys=20, info_rate=0.02, seed=5)
    result = check_operations(operations(history), "chat", timeout=20, shrink=False)
    assert result.valid is True
    assert result.decided_by.count("inference") >= 18, result.decided_by
    bad = generate("chat", clients=40, ops=4000, keys=20, info_rate=0.02, anomaly="lost-write", seed=5)
    assert check_operations(operations(bad), "chat", timeout=20, shrink=False).valid is False


def test_a_crashed_send_is_placed_where_a_fetch_saw_its_text() -> None:
    rows = [
        Op(0, "invoke", 0, "create_account", {"user": "a", "group": 0}, 0),
        Op(1, "ok", 0, "create_account", {"status": "ok", "value": None}, 1),
        Op(2, "invoke", 1, "send_message", {"sender": "a", "to": "a", "text": "x", "group": 0}, 2),
        Op(3, "info", 1, "send_message", {"sender": "a", "to": "a", "text": "x", "group": 0}, 3),
        Op(4, "invoke", 0, "send_message", {"sender": "a", "to": "a", "text": "y", "group": 0}, 4),
        Op(5, "ok", 0, "send_message", {"status": "ok", "value": 2}, 5),
        Op(6, "invoke", 2, "fetch_messages", {"user": "a", "from_index": 1, "group": 0}, 6),
        Op(7, "ok", 2, "fetch_messages", {"status": "ok", "value": [["a", "x"], ["a", "y"]]}, 7),
    ]
    ops = operations(rows)
    inferred = infer(get_model("chat"), ops)
    assert inferred is not None and inferred.result.linearization == [0, 1, 2, 3]
    rows[5] = Op(5, "ok", 0, "send_message", {"status": "ok", "value": 1}, 5)  # then x cannot be first
    assert infer(get_model("chat"), operations(rows)) is None
    assert check_operations(operations(rows), "chat", shrink=False).valid is False
