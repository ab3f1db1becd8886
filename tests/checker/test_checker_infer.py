"""The inference (``checker.infer``) against the general search and the brute force.

Histories come from random concurrent schedules (``histories.synth``) of a correct object
whose writes are unique, with many clients and crashed (info) operations; some get one read changed to a
state the object held at another time, or to a value nobody wrote. Wherever both the
inference and the general search decide, they must agree, and on small histories both
must agree with brute-force enumeration.
"""

from __future__ import annotations

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


def unique_history(kind: str, seed: int, n_ops: int, processes: int) -> list[Op]:
    """Records of a correct object with unique written values (see the module docstring),
    from ``histories.synth``: a sixth of the operations crash (``info``: took effect or not),
    a final read of every key, a coarse clock (ties are concurrent), and half the histories
    with one read changed (``perturb``). ``kind``: a register, or kv on two keys with appends,
    puts or both."""
    model, writes = {"kv-append": ("kv", "append"), "kv-put": ("kv", "put")}.get(kind, (kind, "both"))
    return generate(
        model,
        clients=processes,
        ops=n_ops,
        keys=2 if model == "kv" else 1,
        info_rate=0.15,
        kv_writes=writes,
        final_reads=True,
        perturb=0.5,
        resolution=25_000,  # a fortieth of the mean latency: about a sixth of the records tie
        seed=seed,
    )


def _model(kind: str) -> str:
    return kind if kind in ("register", "cas-register") else "kv"


SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    kind=st.sampled_from(UNIQUE_KINDS),
    seed=st.integers(0, 2**32 - 1),
    n_ops=st.integers(1, 40),
    processes=st.integers(1, 10),
)
def test_inference_agrees_with_the_general_search(kind: str, seed: int, n_ops: int, processes: int) -> None:
    ops = operations(unique_history(kind, seed, n_ops, processes))
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
    records = unique_history(kind, seed, n_ops, processes)
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
            ops = operations(unique_history(kind, seed, 30, 6))
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
    records = unique_history(kind, seed, n_ops, processes)
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
