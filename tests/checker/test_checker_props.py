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
from raftchat.chat import ChatMachine

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
    if kind == "chat":
        return _random_chat_op(rng)
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


def _random_chat_op(rng: random.Random) -> tuple[str, Any]:
    """A chat op on one of two groups of two users, with the group named as the workload does."""
    group = rng.choice(["g1", "g2"])
    user, other = rng.sample([f"{group}u0", f"{group}u1"], 2)
    f = rng.choice(["create_account", "create_account", "send_message", "send_message"] + list(CHAT_READS))
    f = rng.choice([f, "delete_account"]) if rng.random() < 0.2 else f
    password = rng.choice("ppq")  # a second password: some ops are refused as bad_password
    args: dict[str, Any] = {
        "create_account": {"user": user, "password": password},
        "delete_account": {"user": user, "password": password},
        "check_account": {"user": user},
        "list_accounts": {"pattern": f"{group}u*"},
        "send_message": {"sender": user, "to": other, "text": rng.choice("xy"), "password": password},
        "fetch_messages": {"user": user, "from_index": rng.choice([1, 1, 2]), "password": password},
    }[f]
    return f, {**args, "group": group}


def _apply(state: dict[str, Any], kind: str, f: str, value: Any) -> Any:
    """Apply to the correct object; return the canonical completion value."""
    if kind == "chat":  # raftchat's own state machine is the correct object
        machine = state.setdefault("chat", ChatMachine())
        args = {k: v for k, v in value.items() if k not in ("group", "password")}
        if "password" in value:  # the node's scrypt step, stood in for: the machine compares keys
            args["key"] = value["password"].encode()
        result = machine.apply({"op": f, **args})
        return {"status": result.status, "value": result.value}
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
        op.value = [key, rng.choice([v for v in ["", "x", "y", "xy", "z"] if v != seen])]
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
