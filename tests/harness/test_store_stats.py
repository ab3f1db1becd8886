"""The run store (directories, ``latest``, listing, atomic results) and a run's statistics.

``synthetic_ops`` and ``store_run`` also serve the plot, JUnit and serve tests: a register history
from the project's generator (``histories.synth``), linearizable by construction, with optional
faults that slow and fail operations while they are in force.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness import stats, store
from histories.format import NEMESIS, Op
from histories.jsonl import write_jsonl
from histories.synth import generate

S, MS = 1_000_000_000, 1_000_000
T0 = datetime(2026, 11, 26, 23, 5, 12, tzinfo=UTC)


# ------------------------------------------------------------------------------------ helpers


def synthetic_ops(
    n_ops: int = 300,
    concurrency: int = 5,
    seed: int = 1,
    faults: list[tuple[str, float, float | None]] | None = None,
    corrupt: bool = False,
) -> list[Op]:
    """A register history from the shared generator (``histories.synth``) at a run's time scale
    (a few ms per operation, up to 30 ms idle between a client's operations); ``faults`` are
    (name, start s, stop s or None), while which operations slow down, fail or time out;
    ``corrupt`` plants a stale read, so the history is not linearizable."""
    return generate(
        "register",
        clients=concurrency,
        ops=n_ops,
        latency_ns=3 * MS,
        gap_ns=30 * MS,
        faults=faults or (),
        anomaly="stale-read" if corrupt else None,
        seed=seed,
    )


def store_run(
    store_root: Path,
    test: str,
    ops: list[Op] | None,
    *,
    minutes: int = 0,
    valid: bool | str = True,
    nemesis: list[str] | None = None,
    plots: bool = False,
    timeline: bool = False,
) -> Path:
    """A stored run as the runner leaves it; ``valid`` None leaves it incomplete (no results)."""
    run_dir = store.new_run_dir(store_root, test, T0 + timedelta(minutes=minutes))
    (run_dir / store.PLAN).write_text(f"name: {test}\nworkload: register\n")
    (run_dir / store.LOGS).mkdir()
    (run_dir / store.LOGS / "n1.log").write_text("n1 became leader in term 1\n")
    if ops is not None:
        write_jsonl(run_dir / store.HISTORY, ops)
    if plots and ops is not None:
        from harness.plots import write_plots

        write_plots(run_dir, ops)
    checker = None
    if timeline and ops is not None:
        from checker import check, get_model
        from checker.html import write_html

        result = check(ops, "register")
        write_html(run_dir / store.TIMELINE, result, get_model("register"), title=test)
        checker = result.to_json()
        valid = result.valid
    if valid is None:
        return run_dir
    code = {True: 0, False: 1, "unknown": 2}.get(valid, 3)
    computed = stats.compute(ops or [])
    store.write_results(
        run_dir,
        {
            "test": test,
            "started": (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration_s": computed["duration_s"] + 4.0,
            "valid": valid,
            "exit_code": code,
            "workload": "register",
            "nodes": 3,
            "concurrency": 5,
            "nemesis": nemesis or [],
            "bug": None,
            "checker": checker,
            "stats": computed,
            "error": "Timeout: cluster did not answer" if code == 3 else None,
        },
    )
    return run_dir


def op(index: int, type_: str, process: int | str, f: str, value: Any, seconds: float) -> Op:
    return Op(index, type_, process, f, value, round(seconds * S))


# -------------------------------------------------------------------------------------- stats


def small_history() -> list[Op]:
    """Worked by hand in the tests below."""
    return [
        op(0, "invoke", 0, "write", 1, 0.1),
        op(1, "invoke", 1, "read", None, 0.2),
        op(2, "ok", 0, "write", 1, 0.3),  # write: 200 ms, ok, completes in second 0
        op(3, "info", NEMESIS, "start", {"fault": "partition", "groups": [["n1"], ["n2", "n3"]]}, 0.5),
        op(4, "fail", 1, "read", None, 1.2),  # read: 1000 ms, fail, second 1
        op(5, "invoke", 0, "cas", [1, 2], 1.5),
        op(6, "info", 0, "cas", [1, 2], 1.9),  # cas: 400 ms, info, second 1
        op(7, "invoke", 1, "read", None, 2.6),
        op(8, "info", NEMESIS, "stop", {"fault": "partition"}, 3.0),
        op(9, "ok", 1, "read", 1, 3.1),  # read: 500 ms, ok, second 3 (second 2: nothing completes)
        op(10, "invoke", 2, "write", 5, 3.2),  # never completes: open
        op(11, "info", NEMESIS, "start", {"fault": "kill", "node": "n2"}, 3.3),  # never stopped
    ]


def test_counts_and_availability() -> None:
    result = stats.compute(small_history())
    assert result["totals"] == {"invoke": 5, "ok": 2, "fail": 1, "info": 1, "open": 1}
    assert result["client_ops"] == 5
    assert result["by_f"] == {
        "cas": {"invoke": 1, "ok": 0, "fail": 0, "info": 1, "open": 0},
        "read": {"invoke": 2, "ok": 1, "fail": 1, "info": 0, "open": 0},
        "write": {"invoke": 2, "ok": 1, "fail": 0, "info": 0, "open": 1},
    }
    assert result["availability"] == 0.5  # 2 ok of 4 completed; the open write does not count
    assert result["duration_s"] == 3.3
    assert result["unmatched_completions"] == 0


def test_availability_over_time_by_completion_second() -> None:
    result = stats.compute(small_history())
    assert result["availability_over_time"] == [[0, 1.0, 1], [1, 0.0, 2], [2, None, 0], [3, 1.0, 1]]


def test_latency_quantiles_per_f() -> None:
    result = stats.compute(small_history())
    ok, all_ = result["latency_ms"]["ok"], result["latency_ms"]["all"]
    assert ok == {
        "read": {"count": 1, "p50": 500.0, "p95": 500.0, "p99": 500.0, "max": 500.0},
        "write": {"count": 1, "p50": 200.0, "p95": 200.0, "p99": 200.0, "max": 200.0},
    }
    assert all_["read"] == {"count": 2, "p50": 500.0, "p95": 1000.0, "p99": 1000.0, "max": 1000.0}
    assert all_["cas"]["max"] == 400.0
    assert "cas" not in ok  # no ok cas: no ok quantiles
    assert result["latency_ms_overall"]["ok"] == {
        "count": 2,
        "p50": 200.0,
        "p95": 500.0,
        "p99": 500.0,
        "max": 500.0,
    }


def test_quantiles_nearest_rank() -> None:
    q = stats.quantiles([float(x) for x in range(100, 0, -1)])
    assert q == {"count": 100, "p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert stats.quantiles([]) is None


def test_nemesis_intervals() -> None:
    result = stats.compute(small_history())
    partition = {"fault": "partition", "groups": [["n1"], ["n2", "n3"]]}
    assert result["nemesis"] == [
        {"fault": "partition", "start": 0.5, "stop": 3.0, "value": partition},
        {"fault": "kill", "start": 3.3, "stop": None, "value": {"fault": "kill", "node": "n2"}},
    ]


def test_nemesis_pairs_same_fault_in_order_and_ignores_invokes() -> None:
    history = [
        op(0, "info", NEMESIS, "start", {"fault": "pause", "node": "n1"}, 1),
        op(1, "invoke", NEMESIS, "start", {"fault": "kill"}, 1.5),  # an invoke is not the event
        op(2, "info", NEMESIS, "start", {"fault": "kill"}, 2),
        op(3, "info", NEMESIS, "start", {"fault": "pause", "node": "n2"}, 3),
        op(4, "info", NEMESIS, "stop", {"fault": "pause"}, 4),
        op(5, "info", NEMESIS, "stop", {"fault": "kill"}, 5),
        op(6, "info", NEMESIS, "stop", {"fault": "pause"}, 6),
        op(7, "info", NEMESIS, "stop", {"fault": "clock"}, 7),  # never started (as far as we know)
    ]
    got = [
        (i["fault"], i["start"], i["stop"], i.get("start_unknown", False))
        for i in stats.compute(history)["nemesis"]
    ]
    assert got == [
        ("clock", 0.0, 7.0, True),
        ("pause", 1.0, 4.0, False),
        ("kill", 2.0, 5.0, False),
        ("pause", 3.0, 6.0, False),
    ]  # fmt: skip
    assert stats.compute(history)["client_ops"] == 0


def test_empty_history_and_unmatched_completions() -> None:
    empty = stats.compute([])
    assert empty["availability"] is None
    assert empty["availability_over_time"] == []
    assert empty["latency_ms_overall"] == {"ok": None, "all": None}
    assert empty["duration_s"] == 0
    stray = stats.compute([op(0, "ok", 3, "read", 1, 0.5)])
    assert stray["unmatched_completions"] == 1 and stray["client_ops"] == 0
    json.dumps(empty), json.dumps(stray)  # what results.json will hold


# -------------------------------------------------------------------------------------- store


def test_new_run_dir_and_latest(tmp_path: Path) -> None:
    root = tmp_path / "store"
    first = store.new_run_dir(root, "reg", T0)
    assert first == root / "reg" / "20261126T230512" and first.is_dir()
    assert os.readlink(root / "latest") == os.path.join("reg", "20261126T230512")  # relative: store can move
    second = store.new_run_dir(root, "reg", T0)  # same second: a new directory all the same
    third = store.new_run_dir(root, "reg", T0)
    assert (second.name, third.name) == ("20261126T230512-2", "20261126T230512-3")
    assert (root / "latest").resolve() == third.resolve()
    other = store.new_run_dir(root, "chat", T0 + timedelta(hours=1))
    assert (root / "latest").resolve() == other.resolve()
    assert sorted(p.name for p in root.iterdir()) == ["chat", "latest", "reg"]  # no temp links left over


def test_new_run_dir_converts_to_utc_and_refuses_bad_names(tmp_path: Path) -> None:
    from datetime import timezone

    local = datetime(2026, 11, 27, 1, 5, 12, tzinfo=timezone(timedelta(hours=2)))
    assert store.new_run_dir(tmp_path, "t", local).name == "20261126T230512"
    for bad in ("", "latest", ".hidden", "a/b", "..", "a\\b", " padded"):
        with pytest.raises(store.StoreError):
            store.new_run_dir(tmp_path, bad, T0)


def test_write_results_atomically(tmp_path: Path) -> None:
    data = {"test": "t", "valid": True, "stats": {"client_ops": 3}}
    path = store.write_results(tmp_path, data)
    assert json.loads(path.read_text()) == data
    store.write_results(tmp_path, {**data, "valid": False})
    assert json.loads(path.read_text())["valid"] is False
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left
    with pytest.raises(TypeError):
        store.write_results(tmp_path, {"bad": object()})
    assert json.loads(path.read_text())["valid"] is False  # a failed write leaves the old results
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_list_runs_newest_first_with_incomplete_runs(tmp_path: Path) -> None:
    root = tmp_path / "store"
    ops = synthetic_ops(n_ops=40, seed=3)
    oldest = store_run(root, "reg", ops, minutes=0, valid=True)
    broken = store_run(root, "chat", ops, minutes=5, valid=False, nemesis=["partition", "kill"])
    interrupted = store_run(root, "reg", ops, minutes=10, valid=None)  # no results.json
    garbled = store.new_run_dir(root, "reg", T0 + timedelta(minutes=20))
    (garbled / store.RESULTS).write_text('{"test": "reg", "valid": tr')  # torn by a crash mid-write
    (root / ".latest.99.0").symlink_to("reg")  # a temp link left by a crash: not a test
    runs = store.list_runs(root)
    assert [r.path for r in runs] == [garbled, interrupted, broken, oldest]
    assert [r.valid for r in runs] == ["incomplete", "incomplete", False, True]
    assert [r.verdict for r in runs] == ["incomplete", "incomplete", "invalid", "valid"]
    assert runs[1].ops == 40  # counted from the history the run left
    assert runs[1].started == T0 + timedelta(minutes=10)
    assert runs[1].availability is None and runs[1].duration is None
    assert runs[2].test == "chat" and runs[2].nemesis == ["partition", "kill"]
    assert runs[2].workload == "register" and runs[2].exit_code == 1
    assert runs[3].ops == 40 and runs[3].availability == 1.0
    assert runs[3].duration == pytest.approx(stats.compute(ops)["duration_s"] + 4.0)
    assert store.list_runs(tmp_path / "nothing here") == []


def test_count_invocations_across_read_chunks(tmp_path: Path) -> None:
    ops = synthetic_ops(n_ops=30_000, seed=5)  # several MB: the mark straddles chunk boundaries
    write_jsonl(tmp_path / "h.jsonl", ops)
    assert store._count_invocations(tmp_path / "h.jsonl") == 30_000


def test_nightly_summary_folders_are_not_listed_as_runs(tmp_path: Path) -> None:
    run = store_run(tmp_path, "nightly-chat-n3", synthetic_ops())
    summary = tmp_path / "nightly-summary" / "20261126T230000"
    summary.mkdir(parents=True)
    (summary / "summary.json").write_text("{}")
    assert [s.path for s in store.list_runs(tmp_path)] == [run]
