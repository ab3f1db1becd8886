"""Workloads: deterministic generation, names and options, and histories from real clusters
that the checker accepts, and rejects once corrupted (so the recorded values mean something)."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

import checker
import checker.models
from harness.recorder import Recorder
from harness.workers import Workers
from histories.format import Op
from histories.jsonl import read_jsonl
from raftchat import config as cfg
from raftchat.client import Client, OperationError
from raftchat.localcluster import LocalCluster
from raftchat.statemachine import Result
from systems.raftchat import WorkloadClient
from workloads import WORKLOADS, Completion, Invocation, Workload, make_workload
from workloads.chat import ChatWorkload

# -- generation ----------------------------------------------------------------------------

SMALL = {"chat": {"ops_per_group": 5}, "register": {}, "kv": {"keys": 4, "ops_per_key": 3}}


def generate(name: str, seed: int, workers: int = 5, count: int = 300) -> tuple[list, list]:
    """Invocations in a seeded interleaving of workers, then every worker's final reads."""
    workload = make_workload(name, SMALL[name], workers, seed)
    rngs = [random.Random(f"{seed}/{w}") for w in range(workers)]
    order = random.Random(seed)
    ops = []
    for _ in range(count):
        worker = order.randrange(workers)
        ops.append((worker, workload.next_op(worker, rngs[worker])))
    return ops, [workload.final_reads(w) for w in range(workers)]


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_generation_is_deterministic_for_a_seed(name: str) -> None:
    assert generate(name, 1) == generate(name, 1)
    assert generate(name, 1) != generate(name, 2)


def _users_of(inv: Invocation) -> list[str]:
    return [inv.value[k] for k in ("user", "sender", "to") if k in inv.value]


def test_chat_usernames_fit_and_wildcards_match_exactly_their_group() -> None:
    workload = make_workload("chat", {"ops_per_group": 3, "users_per_group": 12}, 20, 5)
    assert isinstance(workload, ChatWorkload)
    rng = random.Random(5)
    invs = [workload.next_op(w % 20, rng) for w in range(600)]
    invs += [inv for w in range(20) for inv in workload.final_reads(w)]
    group_of: dict[str, str] = {}
    for inv in invs:
        for user in _users_of(inv):
            assert group_of.setdefault(user, inv.value["group"]) == inv.value["group"]
    groups = {inv.value["group"] for inv in invs}
    assert {"g1", "g17", "g170"} <= groups  # the names that a sloppy wildcard would confuse
    for group in groups:
        group_of.update(dict.fromkeys(workload.users(group), group))
    assert max(len(u) for u in group_of) <= 20
    for group in groups:
        pattern = workload.wildcard(group)
        assert {u for u in group_of if fnmatchcase(u, pattern)} == set(workload.users(group))
    patterns = {inv.value["pattern"] for inv in invs if inv.f == "list_accounts"}
    assert patterns <= {workload.wildcard(g) for g in groups}


def test_chat_prefix_length_is_checked_against_the_username_limit() -> None:
    longest = make_workload("chat", {"prefix": "abcdefghijkl", "users_per_group": 10}, 1, 0)
    assert isinstance(longest, ChatWorkload)
    assert len(longest.users(longest.group_name(999_999))[-1]) == 20
    with pytest.raises(ValueError, match="exceed 20 characters"):
        make_workload("chat", {"prefix": "abcdefghijklm", "users_per_group": 10}, 1, 0)


def test_chat_teams_rotate_to_fresh_groups_and_share_the_final_reads() -> None:
    workload = make_workload("chat", {"workers_per_group": 2, "ops_per_group": 4}, 5, 0)
    rng = random.Random(0)
    team0 = [workload.next_op(w, rng).value["group"] for w in [0, 1] * 6]
    team1 = [workload.next_op(w, rng).value["group"] for w in [2, 3, 3]]
    team2 = [workload.next_op(4, rng).value["group"] for _ in range(9)]  # a team of one worker
    assert team0 == ["g0"] * 4 + ["g3"] * 4 + ["g6"] * 4 and team1 == ["g1"] * 3
    assert team2 == ["g2"] * 4 + ["g5"] * 4 + ["g8"]
    groups = {
        w: [r.value["group"] for r in workload.final_reads(w) if r.f == "list_accounts"] for w in range(5)
    }
    # Each group the team touched is read by exactly one of its workers, round-robin.
    assert groups == {0: ["g0", "g6"], 1: ["g3"], 2: ["g1"], 3: [], 4: ["g2", "g5", "g8"]}
    reads = workload.final_reads(0)
    fetched = [r.value["user"] for r in reads if r.f == "fetch_messages"]
    assert fetched == [f"g{g}u{i}" for g in (0, 6) for i in range(3)]
    assert {r.value["from_index"] for r in reads if r.f == "fetch_messages"} == {1}


def test_kv_retires_keys_and_reads_each_used_key_once() -> None:
    workload = make_workload("kv", {"keys": 2, "ops_per_key": 3, "prefix": "x"}, 3, 0)
    rng = random.Random(0)
    invs = [workload.next_op(w % 3, rng) for w in range(30)]
    per_key: dict[str, int] = {}
    for inv in invs:
        per_key[inv.value[0]] = per_key.get(inv.value[0], 0) + 1
    assert all(n <= 3 for n in per_key.values()) and len(per_key) >= 10
    reads = [inv.value[0] for w in range(3) for inv in workload.final_reads(w)]
    assert sorted(reads) == sorted(per_key)
    written = [inv.value[1] for inv in invs if inv.f != "get"]
    assert len(set(written)) == len(written)


# -- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("chat", {"ops_per_grup": 3}, "unknown option 'ops_per_grup'; known options: workers_per_group"),
        ("chat", {"ops_per_group": "150"}, "option 'ops_per_group' must be an integer, got '150'"),
        ("chat", {"ops_per_group": True}, "option 'ops_per_group' must be an integer"),
        ("chat", {"ops_per_group": 0}, "option 'ops_per_group' must be at least 1, got 0"),
        ("chat", {"fetch_from_start": 1.5}, "option 'fetch_from_start' must be at most 1.0"),
        ("chat", {"weights": {"send": 1}}, "unknown operation 'send'; operations: create_account"),
        ("chat", {"weights": {"send_message": -1}}, "weight of 'send_message' must be a number >= 0"),
        ("chat", {"weights": 3}, "option 'weights' must be a mapping of operation to weight"),
        ("chat", {"prefix": "g1"}, "option 'prefix' must be letters only"),
        ("register", {"weights": {"read": 0, "write": 0, "cas": 0}}, "at least one operation"),
        ("register", {"key": ""}, "option 'key' must not be empty"),
        ("register", {"values": 0}, "option 'values' must be at least 1"),
        ("kv", {"keys": 0}, "option 'keys' must be at least 1"),
        ("kv", ["keys"], "options must be a mapping"),
        ("bank", {}, "unknown workload 'bank'; known workloads: chat, register, kv"),
    ],
)
def test_bad_options_are_rejected_with_a_clear_message(name: str, options: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make_workload(name, options, 3, 0)


def test_bad_concurrency_is_rejected() -> None:
    with pytest.raises(ValueError, match="concurrency must be an integer of at least 1, got 0"):
        make_workload("kv", {}, 0, 0)


def test_options_merge_weights_and_describe_themselves() -> None:
    workload = make_workload("chat", {"weights": {"delete_account": 0}, "fetch_from_start": 1}, 3, 0)
    assert isinstance(workload, ChatWorkload)
    assert workload.options.weights["delete_account"] == 0 and workload.options.weights["send_message"] == 4
    assert workload.options.fetch_from_start == 1.0
    for name, cls in WORKLOADS.items():
        text = cls.describe_options()
        assert text.startswith(f"{name} workload options:") and "weights = {" in text
    assert "ops_per_group = 150" in ChatWorkload.describe_options()


# -- completions ---------------------------------------------------------------------------


@dataclass
class FakeClient:
    """Answers every call with one Result, or raises one OperationError; records the calls."""

    answer: Result | OperationError
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def call(self, op: str, **args: Any) -> Result:
        self.calls.append((op, args))
        if isinstance(self.answer, OperationError):
            raise self.answer
        return self.answer


CHAT_FETCH = Invocation("fetch_messages", {"user": "g0u1", "from_index": 4, "group": "g0"})
CHAT_SEND = Invocation("send_message", {"sender": "g0u0", "to": "g0u1", "text": "hi", "group": "g0"})
TIMEOUT = OperationError("timeout", "no answer within 5s", definite=False)
REFUSED = OperationError("unavailable", "cannot connect", definite=True)


@pytest.mark.parametrize(
    ("name", "inv", "answer", "expected"),
    [
        (
            "chat",
            CHAT_FETCH,
            Result("index_past_end", [], "g0u1 has 3 message(s)"),
            Completion("ok", {"status": "index_past_end", "value": []}),
        ),
        ("chat", CHAT_SEND, Result("ok", 3), Completion("ok", {"status": "ok", "value": 3})),
        (
            "chat",
            CHAT_SEND,
            Result("no_such_user"),
            Completion("ok", {"status": "no_such_user", "value": None}),
        ),
        ("chat", CHAT_SEND, TIMEOUT, Completion("info", CHAT_SEND.value, "timeout: no answer within 5s")),
        ("chat", CHAT_FETCH, REFUSED, Completion("fail", CHAT_FETCH.value, "unavailable: cannot connect")),
        ("register", Invocation("read", None), Result("ok", None), Completion("ok", None)),
        ("register", Invocation("read", None), Result("ok", 3), Completion("ok", 3)),
        ("register", Invocation("write", 4), Result("ok"), Completion("ok", 4)),
        ("register", Invocation("cas", [1, 2]), Result("ok"), Completion("ok", [1, 2, True])),
        ("register", Invocation("cas", [1, 2]), Result("cas_mismatch", 0), Completion("ok", [1, 2, False])),
        ("register", Invocation("cas", [1, 2]), TIMEOUT, Completion("info", [1, 2], str(TIMEOUT))),
        ("register", Invocation("write", 4), REFUSED, Completion("fail", 4, str(REFUSED))),
        ("kv", Invocation("get", ["k1", None]), Result("ok", None), Completion("ok", ["k1", ""])),
        ("kv", Invocation("get", ["k1", None]), Result("ok", "a0.1;"), Completion("ok", ["k1", "a0.1;"])),
        (
            "kv",
            Invocation("append", ["k1", "a0.2;"]),
            Result("ok", "a0.1;a0.2;"),
            Completion("ok", ["k1", "a0.2;"]),
        ),
        ("kv", Invocation("put", ["k1", "p0.3;"]), Result("ok"), Completion("ok", ["k1", "p0.3;"])),
        (
            "kv",
            Invocation("put", ["k1", "p0.3;"]),
            TIMEOUT,
            Completion("info", ["k1", "p0.3;"], str(TIMEOUT)),
        ),
    ],
)
def test_answers_map_to_canonical_completions(
    name: str, inv: Invocation, answer: Result | OperationError, expected: Completion
) -> None:
    workload = make_workload(name, {}, 1, 0)
    client = FakeClient(answer)
    assert asyncio.run(workload.invoke(client, inv)) == expected  # type: ignore[arg-type]
    op, args = client.calls[0]
    assert "group" not in args
    if name == "chat":
        assert (op, args) == (inv.f, {k: v for k, v in inv.value.items() if k != "group"})
    else:
        assert args["key"] == ("register" if name == "register" else inv.value[0])


# -- against real clusters -----------------------------------------------------------------


async def drive(
    workload: Workload, config: cfg.ClusterConfig, concurrency: int, seconds: float, seed: int, path: Path
) -> tuple[list[Op], int]:
    """Run the workload with the harness's own workers and recorder (history at ``path``) for
    ``seconds``, then their final reads; returns the history as read back from the file and
    the index of its first final-read record."""
    ids = config.ids
    clients = [
        WorkloadClient(Client(config, prefer=ids[w % len(ids)], timeout=3.0), workload)
        for w in range(concurrency)
    ]
    recorder = Recorder(path)
    try:
        workers = Workers(workload, clients, recorder, rate=0, seed=seed)
        await workers.load(seconds)
        final_start = len(read_jsonl(path))
        await workers.final_reads()
    finally:
        recorder.close()
        for client in clients:
            await client.close()
    return list(read_jsonl(path)), final_start


def pairs(ops: list[Op]) -> Iterator[tuple[Op, Op | None, int | None]]:
    """(invoke, completion, completion's position) for every operation."""
    open_: dict[Any, Op] = {}
    for i, op in enumerate(ops):
        if op.type == "invoke":
            open_[op.process] = op
        else:
            yield open_.pop(op.process), op, i
    for inv in open_.values():
        yield inv, None, None


def verdict(ops: list[Op], model: str) -> Any:
    return checker.check(ops, checker.models.get_model(model), timeout=20, shrink=False).valid


def drop_acknowledged(
    ops: list[Op], final_start: int, writes: dict[str, int], overwrites: dict[Any, list[float]], final: Any
) -> list[Op] | None:
    """A copy of ``ops`` in which one final read no longer shows one write it must show.

    ``writes`` maps each acknowledged write's unique token to its invocation time;
    ``overwrites`` maps a final read's subject to the end times of the operations that
    could erase earlier writes (deletes, puts; inf when unknown). Only a write invoked
    after all of those ended qualifies: no linearization can erase it before the final
    read, so a read without it is certainly wrong. ``final(invoke, completion)`` gives a
    final read's (subject, tokens, rebuild(token) -> value without it), or None.
    """
    for inv, done, i in pairs(ops):
        if done is None or i is None or i < final_start or done.type != "ok":
            continue
        found = final(inv, done)
        if found is None:
            continue
        subject, tokens, rebuild = found
        for token in tokens:
            if token in writes and all(end < writes[token] for end in overwrites.get(subject, [])):
                corrupted = list(ops)
                corrupted[i] = replace(done, value=rebuild(token))
                return corrupted
    return None


def test_chat_workload_history_checks_out(live_cluster, tmp_path) -> None:
    config = cfg.load(live_cluster)
    workload = make_workload("chat", {"prefix": "wlc", "ops_per_group": 100}, 6, 11)
    ops, final_start = asyncio.run(drive(workload, config, 6, 2.0, 11, tmp_path / "history.jsonl"))
    done = [p for p in pairs(ops) if p[1] is not None and p[1].type == "ok"]
    statuses = {(inv.f, c.value["status"]) for inv, c, _ in done if c is not None}
    assert ("send_message", "ok") in statuses and ("fetch_messages", "ok") in statuses
    assert len({inv.value["group"] for inv, _, _ in pairs(ops)}) >= 2  # teams moved on to fresh groups
    assert verdict(ops, workload.model) is True

    sends, deletes = {}, {}
    for inv, c, _ in pairs(ops):
        if inv.f == "send_message" and c is not None and c.type == "ok" and c.value["status"] == "ok":
            sends[inv.value["text"]] = inv.time
        if inv.f == "delete_account" and (c is None or c.type != "fail"):
            end = c.time if c is not None and c.type == "ok" else float("inf")
            deletes.setdefault(inv.value["user"], []).append(end)

    def final_fetch(inv: Op, done: Op) -> Any:
        if inv.f != "fetch_messages" or done.value["status"] != "ok":
            return None
        messages = done.value["value"]
        rebuild = lambda text: {"status": "ok", "value": [m for m in messages if m[1] != text]}  # noqa: E731
        return inv.value["user"], [m[1] for m in messages], rebuild

    lost = drop_acknowledged(ops, final_start, sends, deletes, final_fetch)
    assert lost is not None, "no final fetch showed an acknowledged message"
    assert verdict(lost, workload.model) is False

    duplicated = list(ops)
    i, done = next((i, c) for inv, c, i in pairs(ops) if i and i >= final_start and final_fetch(inv, c))
    messages = done.value["value"]
    duplicated[i] = replace(done, value={"status": "ok", "value": messages + messages[-1:]})
    assert verdict(duplicated, workload.model) is False


@pytest.fixture(scope="module")
def kv_cluster(tmp_path_factory) -> Iterator[cfg.ClusterConfig]:
    cluster = LocalCluster(tmp_path_factory.mktemp("kv"), 3, machine="kv")
    try:
        cluster.start_all()
        cluster.wait_for_leader(timeout=15)
        yield cluster.config
    finally:
        cluster.stop_all()


@pytest.mark.cluster
def test_register_workload_history_checks_out(kv_cluster: cfg.ClusterConfig, tmp_path: Path) -> None:
    workload = make_workload("register", {}, 4, 12)
    ops, final_start = asyncio.run(drive(workload, kv_cluster, 4, 2.0, 12, tmp_path / "history.jsonl"))
    outcomes = {
        (inv.f, tuple(c.value) if inv.f == "cas" else None)
        for inv, c, _ in pairs(ops)
        if c and c.type == "ok"
    }
    assert any(f == "cas" and v[2] for f, v in outcomes) and any(f == "cas" and not v[2] for f, v in outcomes)
    assert verdict(ops, workload.model) is True

    reads = [i for i in range(final_start, len(ops)) if ops[i].type == "ok"]
    assert len(reads) == 4
    corrupted = list(ops)
    corrupted[reads[-1]] = replace(ops[reads[-1]], value=99)  # a value nobody wrote
    assert verdict(corrupted, workload.model) is False


@pytest.mark.cluster
def test_kv_workload_history_checks_out(kv_cluster: cfg.ClusterConfig, tmp_path: Path) -> None:
    workload = make_workload("kv", {"keys": 8, "ops_per_key": 60, "prefix": "wkv"}, 5, 13)
    ops, final_start = asyncio.run(drive(workload, kv_cluster, 5, 2.0, 13, tmp_path / "history.jsonl"))
    assert verdict(ops, workload.model) is True

    appends, puts = {}, {}
    for inv, c, _ in pairs(ops):
        if inv.f == "append" and c is not None and c.type == "ok":
            appends[inv.value[1]] = inv.time
        if inv.f == "put" and (c is None or c.type != "fail"):
            end = c.time if c is not None and c.type == "ok" else float("inf")
            puts.setdefault(inv.value[0], []).append(end)

    def final_get(inv: Op, done: Op) -> Any:
        key, value = done.value
        tokens = [t + ";" for t in value.split(";") if t]
        return key, tokens, lambda token: [key, value.replace(token, "", 1)]

    lost = drop_acknowledged(ops, final_start, appends, puts, final_get)
    assert lost is not None, "no final get showed an acknowledged append"
    assert verdict(lost, workload.model) is False
