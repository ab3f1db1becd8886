"""Partition scheduling and the memory bound: a hard partition never hides a violation,
undecided partitions are named, and the search stops at its memory bound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import run_harness

from checker import check, check_operations
from checker.memory import MIB, default_bound, machine_memory
from checker.prepare import operations
from harness.plan import PlanError, validate
from histories import Op, write_jsonl


def _records(rows: list[tuple]) -> list[Op]:
    """``(process, type, f, value)`` rows as records, in order, times = positions."""
    return [Op(i, t, p, f, v, i + 1) for i, (p, t, f, v) in enumerate(rows)]


def hard_kv_key(key: str, writers: int = 22) -> list[tuple]:
    """Many overlapping puts of repeated values and a read of a value never put: no
    inference applies (values repeat), and the search must try every subset."""
    rows = [(p, "invoke", "put", [key, str(p % (writers // 2))]) for p in range(writers)]
    rows += [(99, "invoke", "get", [key, None]), (99, "ok", "get", [key, "never"])]
    rows += [(p, "ok", "put", [key, str(p % (writers // 2))]) for p in range(writers)]
    return rows


def stale_kv_key(key: str) -> list[tuple]:
    """A plain stale read: 2 was put and acknowledged before the read of 1 began."""
    return [
        (200, "invoke", "put", [key, "1"]),
        (200, "ok", "put", [key, "1"]),
        (200, "invoke", "put", [key, "2"]),
        (200, "ok", "put", [key, "2"]),
        (201, "invoke", "get", [key, None]),
        (201, "ok", "get", [key, "1"]),
    ]


def valid_kv_key(key: str) -> list[tuple]:
    return [(300, "invoke", "put", [key, "1"]), (300, "ok", "put", [key, "1"])]


@pytest.mark.parametrize("inference", [True, False])
def test_a_hard_partition_does_not_hide_a_violation(inference: bool) -> None:
    ops = operations(_records(hard_kv_key("hard") + stale_kv_key("easy")))
    result = check_operations(ops, "kv", timeout=60, inference=inference)
    assert result.valid is False
    assert result.failure is not None and result.failure.partition == 1
    assert result.elapsed < 1.0  # the hard partition alone runs to the 60 s limit
    assert result.linearizations[0] is None and result.undecided == []


def test_unknown_names_the_undecided_partitions() -> None:
    ops = operations(_records(valid_kv_key("a") + hard_kv_key("hard") + valid_kv_key("b")))
    result = check_operations(ops, "kv", timeout=0.5)
    assert result.valid == "unknown"
    assert result.undecided == [1]
    assert "time limit of 0.5 s" in result.reason and "1 of 3 partitions undecided: 1" in result.reason
    assert result.linearizations[0] is not None and result.linearizations[2] is not None
    assert result.to_json()["undecided_partitions"] == [1]


def test_memory_bound_ends_unknown_with_the_reason() -> None:
    ops = operations(_records(valid_kv_key("a") + hard_kv_key("hard", writers=26)))
    result = check_operations(ops, "kv", timeout=60, max_memory=16 * MIB)
    assert result.valid == "unknown"
    assert result.reason.startswith("memory bound of 16 MiB reached in group 1")
    assert result.undecided == [1] and result.linearizations[0] is not None
    assert result.elapsed < 30


def test_default_bound_is_a_quarter_of_the_machine() -> None:
    total = machine_memory()
    assert total is None or default_bound() == total // 4


def test_cli_max_memory_and_undecided_partitions(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    write_jsonl(path, _records(valid_kv_key("a") + hard_kv_key("hard", writers=26)))
    run = run_harness("check", "--model", "kv", "--max-memory", "16", "--timeout", "60", path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "memory bound of 16 MiB reached in group 1" in run.stdout
    assert "undecided partitions: 1" in run.stdout
    run = run_harness("check", "--model", "kv", "--timeout", "0.3", "--json", path)
    assert run.returncode == 2, run.stdout + run.stderr
    data = json.loads(run.stdout)
    assert data["undecided_partitions"] == [1] and data["decided_by"] == {"inference": 1}


@pytest.mark.parametrize("value", ["0", "1.5"])
def test_cli_rejects_a_bad_memory_bound(tmp_path: Path, value: str) -> None:
    path = tmp_path / "h.jsonl"
    write_jsonl(path, _records(valid_kv_key("a")))
    run = run_harness("check", "--model", "kv", "--max-memory", value, path)
    assert run.returncode != 0 and run.returncode != 1
    assert "MiB" in run.stderr


def test_plan_key_checker_max_memory() -> None:
    assert validate({"checker_max_memory": 512}).checker_max_memory == 512
    assert validate({}).checker_max_memory is None
    for bad in (0, -1, "1G", 2.5, True):
        with pytest.raises(PlanError, match="checker_max_memory"):
            validate({"checker_max_memory": bad})


def test_check_passes_the_memory_bound_through() -> None:
    records = _records(valid_kv_key("a") + hard_kv_key("hard", writers=26))
    result = check(records, "kv", timeout=60, max_memory=16 * MIB)
    assert result.valid == "unknown" and "memory bound" in result.reason


@pytest.mark.parametrize(("model", "anomaly"), [("kv", None), ("kv", "lost-write"), ("chat", None)])
def test_worker_processes_give_the_same_verdicts(
    monkeypatch: pytest.MonkeyPatch, model: str, anomaly: str | None
) -> None:
    from checker import schedule
    from histories.synth import generate

    monkeypatch.setattr(schedule, "PARALLEL_MIN_OPS", 0)
    records = generate(model, clients=10, ops=1500, keys=8, info_rate=0.02, anomaly=anomaly, seed=5)
    ops = operations(records)
    alone = check_operations(ops, model, timeout=30, workers=1)
    together = check_operations(ops, model, timeout=30, workers=2)
    assert together.valid is alone.valid is (anomaly is None)
    if anomaly is None:
        assert together.linearizations == alone.linearizations
    else:
        assert together.failure is not None and together.failure.minimal


def test_workers_stop_at_a_hard_partition_and_the_turns_decide_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from checker import schedule

    monkeypatch.setattr(schedule, "PARALLEL_MIN_OPS", 0)
    monkeypatch.setattr(schedule, "_FIRST_PASS_BUDGET", 0.05)
    ops = operations(_records(hard_kv_key("hard") + stale_kv_key("easy") + valid_kv_key("ok")))
    result = check_operations(ops, "kv", timeout=60, workers=2)
    assert result.valid is False and result.failure is not None and result.failure.partition == 1


def test_what_the_first_pass_decided_stays_decided_when_time_runs_out_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from checker import schedule

    first_pass = schedule._parallel_first_pass

    def then_time_runs_out(model, parts, deadline, use_inference, workers):  # type: ignore[no-untyped-def]
        found = first_pass(model, parts, deadline, use_inference, workers)
        while time.perf_counter() <= deadline:  # the time limit is reached right after the pass
            time.sleep(0.01)
        return found

    monkeypatch.setattr(schedule, "PARALLEL_MIN_OPS", 0)
    monkeypatch.setattr(schedule, "_FIRST_PASS_BUDGET", 0.05)
    monkeypatch.setattr(schedule, "_parallel_first_pass", then_time_runs_out)
    ops = operations(_records(valid_kv_key("a") + hard_kv_key("hard") + valid_kv_key("b")))
    result = check_operations(ops, "kv", timeout=3, workers=2)
    assert result.valid == "unknown" and result.undecided == [1]
    assert result.linearizations[0] is not None and result.linearizations[2] is not None
