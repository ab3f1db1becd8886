"""Property tests: histories recorded from random concurrent schedules of a correct object.

Such histories are linearizable by construction. With one read result changed, the
checker's verdict must equal that of an independent brute-force oracle (``oracle.py``):
its own pairing of records and its own models, every ordering of the operations
consistent with real time (each unknown-outcome op included or not) tried, on histories
small enough to enumerate.
"""

from __future__ import annotations

import random
from typing import Any

import oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker import check
from histories.format import Op
from histories.synth import generate

VALUES = [0, 1, 2, 3, 4]  # the generator's register domain without unique writes
TOKENS = ["", "a", "b", "c", "ab", "ba"]  # and some of its kv values


def simulate(rng: random.Random, kind: str, n_ops: int, processes: int, timed: bool = False) -> list[Op]:
    """Records of ``n_ops`` ops by ``processes`` clients of one correct object, from the
    project's generator (``histories.synth``): values from a small domain (most of the time),
    one or two keys or chat groups, some ops ending ``info`` (taking effect or not, even after
    the record) or ``fail`` (not taking effect), chat ops with passwords, some wrong. Without
    ``timed`` the records carry no times (their order is the clock); with it the clock is
    coarse, so records tie, to exercise equal-time overlap.
    """
    one_key = kind in ("register", "cas-register")
    return generate(
        kind,
        clients=processes,
        ops=n_ops,
        keys=1 if one_key else rng.choice([1, 2]),
        info_rate=0.12,
        fail_rate=0.05,
        unique_writes=rng.random() < 0.2,
        wrong_password=0.3 if kind == "chat" else None,
        resolution=rng.choice([10**5, 10**6]) if timed else 0,
        seed=rng.getrandbits(32),
    )


def _mutate_a_read(rng: random.Random, kind: str, records: list[Op]) -> bool:
    """Change one ok read's result to another value; False when there is no read."""
    reads = [op for op in records if op.type == "ok" and op.f in ("read", "get", *CHAT_READS)]
    if not reads:
        return False
    op = rng.choice(reads)
    if kind == "chat":
        invoke = next(r for r in reversed(records[: records.index(op)]) if r.process == op.process)
        op.value = _another_chat_answer(rng, op, invoke)
    elif kind == "kv":
        key, seen = op.value
        op.value = [key, rng.choice([v for v in [*TOKENS, seen + "a", seen[1:]] if v != seen])]
    else:
        op.value = rng.choice([v for v in [None, *VALUES] if v != op.value])
    return True


CHAT_READS = ("check_account", "list_accounts", "fetch_messages")


def _another_chat_answer(rng: random.Random, op: Op, invoke: Op) -> dict[str, Any]:
    """A different answer to a chat read: another status, or the value with one thing changed."""
    status, value = op.value["status"], op.value["value"]
    if status != "ok" or rng.random() < 0.2:
        return {"status": "no_such_user" if status == "ok" else "ok", "value": value or []}
    if op.f == "check_account":
        return {"status": "ok", "value": not value}
    if op.f == "list_accounts":  # one user more or less
        if value and rng.random() < 0.5:
            return {"status": "ok", "value": value[1:]}
        group = invoke.value["group"]
        missing = [u for u in (f"{group}u0", f"{group}u1") if u not in value] or [f"{group}u9"]
        return {"status": "ok", "value": sorted([*value, rng.choice(missing)])}
    messages = value or []
    if messages and rng.random() < 0.5:
        return {"status": "ok", "value": messages[1:] if rng.random() < 0.5 else messages[::-1]}
    return {"status": "ok", "value": [*messages, ["g1u0", "z"]]}


KINDS = st.sampled_from(["register", "cas-register", "kv", "chat"])
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(kind=KINDS, seed=st.integers(0, 2**32 - 1), n_ops=st.integers(1, 30), processes=st.integers(1, 5))
def test_histories_of_a_correct_object_are_linearizable(
    kind: str, seed: int, n_ops: int, processes: int
) -> None:
    rng = random.Random(seed)
    records = simulate(rng, kind, n_ops, processes, timed=rng.random() < 0.5)
    result = check(records, kind, shrink=False)
    assert result.valid is True
    assert all(lin is not None for lin in result.linearizations)


def _same_verdict(rng: random.Random, kind: str, n_ops: int, processes: int) -> None:
    records = simulate(rng, kind, n_ops, processes, timed=rng.random() < 0.5)
    _mutate_a_read(rng, kind, records)
    expected = oracle.linearizable(records, kind)
    assert check(records, kind, shrink=False).valid is expected, [r.to_dict() for r in records]


@SETTINGS
@given(kind=KINDS, seed=st.integers(0, 2**32 - 1), n_ops=st.integers(1, 8), processes=st.integers(1, 4))
def test_verdicts_match_the_oracle_on_small_histories(
    kind: str, seed: int, n_ops: int, processes: int
) -> None:
    _same_verdict(random.Random(seed), kind, n_ops, processes)


@settings(SETTINGS, max_examples=60)
@given(kind=KINDS, seed=st.integers(0, 2**32 - 1), n_ops=st.integers(4, 10), processes=st.integers(5, 10))
def test_verdicts_match_the_oracle_with_many_clients(
    kind: str, seed: int, n_ops: int, processes: int
) -> None:
    """Nearly every operation from its own client, so nearly all of them overlap."""
    _same_verdict(random.Random(seed), kind, n_ops, processes)


@SETTINGS
@given(kind=KINDS, seed=st.integers(0, 2**32 - 1), n_ops=st.integers(2, 7))
def test_linearization_found_is_a_real_witness(kind: str, seed: int, n_ops: int) -> None:
    """The returned order respects real time, includes every known op, and the object accepts it."""
    rng = random.Random(seed)
    records = simulate(rng, kind, n_ops, 3)
    result = check(records, kind, shrink=False)
    calls = {call.invoke_index: call for call in oracle.pair(records)}
    assert sorted(calls) == sorted(op.call_index for op in result.ops)
    for part, lin in zip(result.partition_ops, result.linearizations, strict=True):
        assert lin is not None
        placed = [result.ops[i].call_index for i in lin]
        in_part = {result.ops[i].call_index for i in part}
        assert {i for i in in_part if calls[i].end is not None} <= set(placed) <= in_part
        order = [calls[i] for i in placed]
        assert all(
            later.end is None or later.end >= earlier.start
            for pos, earlier in enumerate(order)
            for later in order[pos + 1 :]
        ), "the order puts an operation before one that finished before it began"
        assert oracle.accepts(kind, order)


def test_the_oracle_itself_on_known_anomalies() -> None:
    write_then_stale_read = [
        Op(0, "invoke", 0, "write", 1),
        Op(1, "ok", 0, "write", 1),
        Op(2, "invoke", 1, "read", None),
        Op(3, "ok", 1, "read", None),
    ]
    assert oracle.linearizable(write_then_stale_read, "register") is False
    assert oracle.linearizable(write_then_stale_read[:2], "register") is True
    # A failed write never happened; an info one may have: the read of 1 needs it to have.
    failed = [*write_then_stale_read[:1], Op(1, "fail", 0, "write", 1)]
    read_one = [Op(2, "invoke", 1, "read", None), Op(3, "ok", 1, "read", 1)]
    assert oracle.linearizable([*failed, *read_one], "register") is False
    assert oracle.linearizable([failed[0], Op(1, "info", 0, "write", 1), *read_one], "register") is True
    # A message sent and acknowledged must be in the inbox fetched afterwards.
    group = {"group": "g1"}
    chat = [
        Op(0, "invoke", 0, "create_account", {"user": "a", **group}),
        Op(1, "ok", 0, "create_account", {"status": "ok", "value": None}),
        Op(2, "invoke", 0, "send_message", {"sender": "a", "to": "a", "text": "hi", **group}),
        Op(3, "ok", 0, "send_message", {"status": "ok", "value": 1}),
        Op(4, "invoke", 1, "fetch_messages", {"user": "a", "from_index": 1, **group}),
    ]
    assert oracle.linearizable(
        [*chat, Op(5, "ok", 1, "fetch_messages", {"status": "ok", "value": [["a", "hi"]]})], "chat"
    )
    assert not oracle.linearizable(
        [*chat, Op(5, "ok", 1, "fetch_messages", {"status": "index_past_end", "value": []})], "chat"
    )
