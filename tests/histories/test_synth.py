"""The history generator: well-formed Jepsen histories whose verdict is known by construction.

Small histories are judged by the brute-force checker of ``test_checker_props`` (every
real-time order tried), so the construction itself is tested, not only the checker's
agreement with it; larger many-client ones by ``checker.check``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import oracle
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from checker import check
from histories import read_history, write_jsonl
from histories.format import Op
from histories.synth import ANOMALIES, APPENDS, MODELS, generate
from raftchat.chat import ChatMachine

CASES = [(m, a) for m in MODELS for a in (None, *ANOMALIES) if a != "duplicate-append" or m in APPENDS]


def _keys(model: str, keys: int) -> int:
    return 1 if model in ("register", "cas-register") else keys


def _brute_force_verdict(model: str, records: list[Op]) -> bool:
    """The independent oracle's verdict (its own pairing and models, nothing of the checker's)."""
    return oracle.linearizable(records, model)


# -- the records are a Jepsen history ---------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_records_are_a_wellformed_history_with_replaced_processes(model: str) -> None:
    clients, n = 10, 400
    records = generate(model, clients=clients, ops=n, keys=_keys(model, 4), info_rate=0.3, seed=5)
    assert [r.index for r in records] == list(range(2 * n))
    assert all(a.time <= b.time for a, b in itertools.pairwise(records))
    open_ops: dict[Any, Op] = {}
    retired: set[Any] = set()
    infos = 0
    for r in records:
        assert r.process not in retired, "a process that got info must not be used again"
        if r.type == "invoke":
            assert r.process not in open_ops, "one operation in flight per process"
            assert len(open_ops) < clients
            open_ops[r.process] = r
            continue
        invoke = open_ops.pop(r.process)
        assert r.f == invoke.f and r.type in ("ok", "info")
        if r.type == "info":
            infos += 1
            assert r.value == invoke.value
            retired.add(r.process)
    assert not open_ops
    assert 0.2 * n < infos < 0.4 * n
    assert {p % clients for p in retired} <= set(range(clients))
    assert max(r.process for r in records) >= clients  # replacements got new numbers


def _shape(model: str, inv: Op, done: Op) -> None:
    if model == "kv":
        assert inv.f in ("get", "put", "append") and isinstance(inv.value, list) and len(inv.value) == 2
        key, value = inv.value
        assert key.startswith("k") and (value is None) == (inv.f == "get")
        if done.type == "ok":
            assert done.value[0] == key and isinstance(done.value[1], str)
    elif model == "chat":
        assert inv.value["group"].startswith("g")
        if done.type == "ok":
            assert set(done.value) == {"status", "value"}
    elif inv.f == "cas":
        assert model == "cas-register" and len(inv.value) == 2
        if done.type == "ok":
            assert done.value[:2] == inv.value and isinstance(done.value[2], bool)
    elif inv.f == "read":
        assert inv.value is None
    else:
        assert inv.f == "write" and done.value == inv.value


@pytest.mark.parametrize("model", MODELS)
def test_values_have_the_canonical_shapes(model: str) -> None:
    records = generate(model, clients=5, ops=300, keys=_keys(model, 3), info_rate=0.1, seed=2)
    by_process: dict[Any, Op] = {}
    fs = Counter()
    for r in records:
        if r.type == "invoke":
            by_process[r.process] = r
        else:
            _shape(model, by_process.pop(r.process), r)
            fs[r.f] += 1
    expected = {
        "register": {"read", "write"},
        "cas-register": {"read", "write", "cas"},
        "kv": {"get", "put", "append"},
        "chat": {"create_account", "check_account", "list_accounts", "send_message", "fetch_messages"},
    }[model]
    assert expected <= set(fs)


def test_cas_outcomes_are_observations_both_ways() -> None:
    records = generate("cas-register", clients=3, ops=500, seed=4)
    swapped = Counter(r.value[2] for r in records if r.type == "ok" and r.f == "cas")
    assert swapped[True] > 10 and swapped[False] > 10


def test_keys_spread_over_partitions() -> None:
    records = generate("kv", clients=10, ops=2000, keys=20, seed=1)
    keys = Counter(r.value[0] for r in records if r.type == "invoke")
    assert len(keys) == 20 and min(keys.values()) > 40
    chat = generate("chat", clients=10, ops=500, keys=7, seed=1)
    groups = {r.value["group"] for r in chat if r.type == "invoke"}
    assert groups == {f"g{i}" for i in range(7)}


def test_unique_writes_write_distinct_values_and_the_small_domain_repeats() -> None:
    def written(unique: bool) -> list[Any]:
        records = generate("kv", clients=4, ops=600, keys=2, unique_writes=unique, seed=3)
        return [r.value[1] for r in records if r.type == "invoke" and r.f != "get"]

    assert len(set(written(True))) == len(written(True))
    assert len(set(written(False))) <= 3
    texts = [
        r.value["text"]
        for r in generate("chat", clients=4, ops=600, seed=3)
        if r.type == "invoke" and r.f == "send_message"
    ]
    assert len(set(texts)) == len(texts) > 50


def test_deterministic_per_seed() -> None:
    def dump(seed: int) -> list[dict[str, Any]]:
        return [r.to_dict() for r in generate("chat", clients=7, ops=300, keys=2, info_rate=0.1, seed=seed)]

    assert dump(11) == dump(11)
    assert dump(11) != dump(12)
    again = generate("kv", clients=3, ops=9, anomaly="lost-write", seed=8)
    assert [r.to_dict() for r in again] == [
        r.to_dict() for r in generate("kv", clients=3, ops=9, anomaly="lost-write", seed=8)
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "queue"}, "unknown model 'queue'"),
        ({"model": "kv", "anomaly": "g2"}, "unknown anomaly 'g2'"),
        ({"model": "register", "anomaly": "duplicate-append"}, "needs an append"),
        ({"model": "register", "keys": 3}, "keys must be 1"),
        ({"model": "kv", "info_rate": 1.5}, "info_rate"),
        ({"model": "kv", "clients": 0}, "at least 1"),
        ({"model": "kv", "ops": 2, "anomaly": "stale-read"}, "no room"),
        ({"model": "kv", "fail_rate": -0.1}, "fail_rate"),
        ({"model": "kv", "info_rate": 0.6, "fail_rate": 0.6}, "more than 1"),
        ({"model": "kv", "wrong_password": 0.1}, "passwords are the chat model's"),
        ({"model": "kv", "resolution": -1}, "resolution"),
        ({"model": "kv", "kv_writes": "cas"}, "unknown kv_writes 'cas'"),
        ({"model": "register", "kv_writes": "put"}, "kv_writes is the kv model's"),
        ({"model": "kv", "kv_writes": "put", "anomaly": "duplicate-append"}, "needs an append"),
        ({"model": "kv", "perturb": 2.0}, "perturb must be between"),
        ({"model": "kv", "perturb": 0.5, "anomaly": "stale-read"}, "do not mix"),
        ({"model": "chat", "final_reads": True}, "not chat"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"clients": 2, "ops": 50, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(arguments.pop("model"), **arguments)


@pytest.mark.parametrize("wrong_password", [None, 0.3], ids=["no-passwords", "passwords"])
def test_one_client_chat_replays_exactly_on_the_service_state_machine(wrong_password: float | None) -> None:
    """The generator's chat answers are raftchat's: a sequential history replays on ChatMachine
    (a password as the key the node would derive from it, as the machine compares keys)."""
    records = generate("chat", clients=1, ops=3000, keys=3, wrong_password=wrong_password, seed=9)
    machines: dict[str, ChatMachine] = {}
    statuses = Counter()
    for invoke, done in zip(records[::2], records[1::2], strict=True):
        assert invoke.type == "invoke" and done.type == "ok" and invoke.process == done.process
        args = {k: v for k, v in invoke.value.items() if k not in ("group", "password")}
        if "password" in invoke.value:
            args["key"] = invoke.value["password"].encode()
        result = machines.setdefault(invoke.value["group"], ChatMachine()).apply({"op": invoke.f, **args})
        assert done.value == {"status": result.status, "value": result.value}, (invoke, done)
        statuses[result.status] += 1
    assert {"ok", "user_exists", "no_such_user", "index_past_end"} <= set(statuses)
    assert ("bad_password" in statuses) == (wrong_password is not None)


def test_a_runs_faults_failures_and_time_scale() -> None:
    """What the harness records of a run: ms latencies, the nemesis's records, operations that
    slow down, fail and time out while a fault is in force; still linearizable."""
    ms = 1_000_000
    faults = [("partition", 2.0, 4.0), ("kill", 5.0, None)]
    records = generate(
        "register", clients=5, ops=1500, latency_ns=3 * ms, gap_ns=30 * ms, faults=faults, seed=4
    )
    nemesis = [(r.f, r.value["fault"], r.time) for r in records if r.process == "nemesis"]
    assert nemesis == [
        ("start", "partition", 2 * 10**9),
        ("stop", "partition", 4 * 10**9),
        ("start", "kill", 5 * 10**9),
    ]
    assert [r.index for r in records] == list(range(len(records)))
    assert all(a.time <= b.time for a, b in zip(records, records[1:], strict=False))
    types = Counter(r.type for r in records if r.process != "nemesis")
    calls = oracle.pair(records)  # a failed op is no call: it never happened
    assert types["invoke"] == 1500 and types["fail"] > 0 and len(calls) == 1500 - types["fail"]
    during = [c for c in calls if 2 * 10**9 <= c.start < 4 * 10**9]
    before = [c for c in calls if c.start < 2 * 10**9]
    assert during and all(c.end is not None for c in before)  # no fault: every outcome known
    assert sum(c.end is None for c in during) > len(during) / 4  # timed out while partitioned
    slow = sorted(c.end - c.start for c in during if c.end is not None)
    assert slow and slow[len(slow) // 2] > 20 * ms  # FAULT_SLOWDOWN: slower by far than 3 ms
    assert check(records, "register").valid is True


@pytest.mark.parametrize("model", MODELS)
def test_failures_and_a_coarse_clock_keep_the_verdict(model: str) -> None:
    """``fail`` ends ops that never took effect; a coarse clock makes records tie (concurrent),
    and resolution 0 leaves the record order as the only clock; either way every anomaly stays
    one (its operations are apart on the rounded clock too)."""
    keys = _keys(model, 2)
    for resolution in (10**6, 0):
        records = generate(model, clients=4, ops=400, keys=keys, fail_rate=0.2, resolution=resolution, seed=6)
        assert 40 < sum(r.type == "fail" for r in records) < 120
        times = [r.time for r in records]
        if resolution:
            assert all(t % resolution == 0 for t in times) and len(set(times)) < len(times) / 2
        else:
            assert set(times) == {0}
        assert check(records, model, shrink=False).valid is True
        for anomaly in (a for m, a in CASES if m == model and a is not None):
            planted = generate(model, clients=4, ops=400, keys=keys, fail_rate=0.2, resolution=resolution,
                               anomaly=anomaly, seed=6)  # fmt: skip
            assert check(planted, model, shrink=False).valid is False, (anomaly, resolution)


def test_jsonl_round_trip(tmp_path) -> None:
    records = generate("chat", clients=5, ops=200, keys=2, info_rate=0.2, anomaly="lost-write", seed=1)
    path = tmp_path / "h.jsonl"
    write_jsonl(path, records)
    history = read_history(path)
    assert [op.to_dict() for op in history.ops] == [r.to_dict() for r in records]
    assert check(history.ops, "chat", timeout=10, shrink=False).valid is False


# -- verdicts known by construction ------------------------------------------------------


BRUTE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@BRUTE
@given(
    case=st.sampled_from(CASES),
    clients=st.integers(1, 4),
    n=st.integers(3, 7),
    info=st.sampled_from([0.0, 0.2]),
    unique=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_small_histories_agree_with_brute_force(
    case: tuple[str, str | None], clients: int, n: int, info: float, unique: bool, seed: int
) -> None:
    model, anomaly = case
    try:
        records = generate(
            model,
            clients=clients,
            ops=n,
            keys=_keys(model, 2),
            info_rate=info,
            anomaly=anomaly,
            unique_writes=unique,
            seed=seed,
        )
    except ValueError:
        assume(False)  # too few operations for this anomaly with this many clients
        return
    expected = anomaly is None
    assert _brute_force_verdict(model, records) is expected
    assert check(records, model, timeout=10, shrink=False).valid is expected


@pytest.mark.parametrize(("model", "anomaly"), CASES)
def test_every_anomaly_at_eight_operations_by_brute_force(model: str, anomaly: str | None) -> None:
    decided = 0
    for seed in range(4):
        records = generate(
            model, clients=3, ops=8, keys=_keys(model, 2), info_rate=0.15, anomaly=anomaly, seed=seed
        )
        assert _brute_force_verdict(model, records) is (anomaly is None)
        decided += 1
    assert decided == 4


# Many clients: sizes the checker decides in well under a second each (on an idle machine).
MANY = {
    "register": [(10, 300), (50, 300), (100, 300)],
    "cas-register": [(10, 150), (50, 40), (100, 40)],
    "kv": [(10, 300), (50, 300), (100, 200)],
    "chat": [(10, 300), (50, 150), (100, 100)],
}


@pytest.mark.parametrize(
    ("model", "clients", "n"), [(m, c, n) for m, sizes in MANY.items() for c, n in sizes]
)
def test_many_client_histories_have_their_constructed_verdict(model: str, clients: int, n: int) -> None:
    for anomaly in (None, *ANOMALIES):
        if anomaly == "duplicate-append" and model not in APPENDS:
            continue
        for info in (0.0, 0.1):
            records = generate(
                model,
                clients=clients,
                ops=n,
                keys=_keys(model, 3),
                info_rate=info,
                anomaly=anomaly,
                seed=clients,
            )
            result = check(records, model, timeout=30, shrink=False)
            assert result.valid is (anomaly is None), (anomaly, info, result.reason)


# -- the shapes the inference's property tests ask for -------------------------------------


@pytest.mark.parametrize("writes", ["put", "append"])
def test_kv_writes_of_one_kind(writes: str) -> None:
    """Put-only and append-only kv: every write is of that kind, the history linearizable, and
    an anomaly (made with that kind of write) a violation."""
    records = generate("kv", clients=5, ops=300, keys=2, info_rate=0.1, kv_writes=writes, seed=4)
    kinds = Counter(op.f for op in records if op.type == "invoke")
    assert set(kinds) == {"get", writes} and kinds[writes] > 50
    assert check(records, "kv", shrink=False).valid is True
    for anomaly in ("stale-read", "lost-write", "early-read"):
        bad = generate("kv", clients=3, ops=8, keys=2, kv_writes=writes, anomaly=anomaly, seed=1)
        assert {op.f for op in bad if op.type == "invoke"} <= {"get", writes}
        assert _brute_force_verdict("kv", bad) is False, anomaly


@pytest.mark.parametrize("model", ["register", "cas-register", "kv"])
def test_final_reads_read_every_key_after_the_rest(model: str) -> None:
    resolution = 25_000
    records = generate(
        model, clients=4, ops=60, keys=_keys(model, 3), info_rate=0.2, final_reads=True, resolution=resolution
    )
    plain = generate(model, clients=4, ops=60, keys=_keys(model, 3), info_rate=0.2, resolution=resolution)
    assert records[: len(plain)] == plain  # the same history, then the final reads
    finals = records[len(plain) :]
    assert len(finals) == 2 * _keys(model, 3)
    invokes = [op for op in finals if op.type == "invoke"]
    assert {op.f for op in invokes} == {"read" if model != "kv" else "get"}
    assert len({op.process for op in invokes}) == len(invokes)
    assert not {op.process for op in invokes} & {op.process for op in plain}
    assert {op.type for op in finals} == {"invoke", "ok"}
    assert min(op.time for op in finals) > max(op.time for op in plain)  # after, on the rounded clock too
    if model == "kv":
        assert sorted(op.value[0] for op in invokes) == ["k0", "k1", "k2"]
    assert check(records, model, shrink=False).valid is True


@pytest.mark.parametrize("model", ["register", "cas-register", "kv"])
def test_perturb_changes_one_answer_linearizable_or_not(model: str) -> None:
    """Each history with ``perturb=1`` is the one without but for one completed read (or cas),
    changed; some of those are still linearizable, some not, and the checker and the
    brute force agree on which."""
    verdicts = []
    for seed in range(12):
        args = {"clients": 3, "ops": 7, "keys": _keys(model, 2), "info_rate": 0.15, "seed": seed}
        plain, changed = generate(model, **args), generate(model, perturb=1.0, **args)
        different = [(a, b) for a, b in zip(plain, changed, strict=True) if a != b]
        if not different:  # no read completed, or the new value was the one it had
            continue
        assert len(different) == 1
        a, b = different[0]
        assert a.type == b.type == "ok" and a.f == b.f and a.f in ("read", "get", "cas")
        verdict = _brute_force_verdict(model, changed)
        assert check(changed, model, shrink=False).valid is verdict
        verdicts.append(verdict)
    assert True in verdicts and False in verdicts
