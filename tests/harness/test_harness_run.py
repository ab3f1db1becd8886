"""`harness run` end to end: real clusters, stored runs, re-checks, Ctrl-C, bad plans."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from support import harness_in_process, processes_mentioning

from harness import plan as plans


def _harness(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "workload, expected_model",
    [("chat", "chat"), ("register", "cas-register")],
)
def test_short_real_run_is_valid_and_stored(short_runs, workload, expected_model):
    """conftest's short run of the workload (8 s, 3 nodes, 150 ops/s, no faults), as stored."""
    run_dir = short_runs[workload]
    store = run_dir.parents[1]
    assert (store / "latest").resolve() == run_dir.resolve()
    for name in (
        "plan.yaml",
        "history.jsonl",
        "results.json",
        "timeline.html",
        "latency.png",
        "throughput.png",
    ):
        assert (run_dir / name).stat().st_size > 0, name
    assert sorted(p.name for p in (run_dir / "logs").iterdir()) == ["n1.log", "n2.log", "n3.log"]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["checker"]["model"] == expected_model
    # 8 s at 150 ops/s: some 1,200; a loaded 2-core machine serves about 50 a second
    assert results["stats"]["totals"]["ok"] > 200
    stored_plan = plans.load(run_dir / "plan.yaml")
    assert stored_plan.seed == results["seed"] and stored_plan.workload == workload
    # The stored run re-checks to the same verdict.
    again = _harness("check", str(run_dir), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["valid"] is True
    assert not processes_mentioning(str(run_dir))


@pytest.mark.cluster
def test_ctrl_c_leaves_a_checkable_prefix_and_no_process(tmp_path):
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "--nodes",
            "3",
            "--time-limit",
            "60",
            "--store",
            str(store),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        history = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = list(store.glob("raftchat/*/history.jsonl"))
            if found and found[0].stat().st_size > 20_000:
                history = found[0]
                break
            time.sleep(0.2)
        assert history is not None, "the run never started writing its history"
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, output
    assert "interrupted" in output
    run_dir = history.parent
    assert not processes_mentioning(str(run_dir)), "a node outlived the interrupted run"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["interrupted"] is True and results["valid"] is True
    checked = _harness("check", str(history), "--model", "chat")
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    "plan_text, complaint",
    [
        ("nodes: five\n", "'nodes' must be an integer"),
        ("nodes: 0\n", "'nodes' must be an integer of at least 1"),
        ("concurency: 3\n", "unknown key(s) 'concurency'"),
        ("workload: sql\n", "'workload' must be one of"),
        ("workload_options: {ops_per_grup: 3}\n", "ops_per_grup"),
        ("time_limit: -1\n", "'time_limit' must be a positive number"),
        ("nemesis: [meteor]\n", "unknown fault 'meteor'"),
        ("nodes: 1\nnemesis: [partition-follower]\n", "partition-follower needs at least 2 nodes"),
        ("bug: everything\n", "'bug' must be one of"),
        ("nodes: [1, 2\n", "not valid YAML"),
        ("- just\n- a list\n", "a plan is a mapping"),
    ],
)
def test_bad_plans_are_refused_with_a_clear_error(tmp_path, plan_text, complaint):
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text)
    result = harness_in_process("run", str(plan), "--store", str(tmp_path / "store"))
    assert result.returncode == 3
    assert complaint in result.stderr and str(plan) in result.stderr, result.stderr
    assert not (tmp_path / "store").exists(), "a refused plan must not start a run"


def test_partition_follower_is_a_plan_fault_like_the_other_shapes():
    plan = plans.load({"nodes": 3, "nemesis": "partition-follower,partition-leader"})
    assert plan.nemesis == ["partition-follower", "partition-leader"]
    with pytest.raises(plans.PlanError, match="'nemesis': unknown fault 'partition-followers'"):
        plans.load({"nemesis": ["partition-followers"]})


def test_command_line_overrides_the_plan_file(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: mine\nnodes: 7\nconcurrency: 4\n")
    resolved = plans.load(plan, {"nodes": 3, "seed": 42})
    assert (resolved.name, resolved.nodes, resolved.concurrency, resolved.seed) == ("mine", 3, 4, 42)
    with pytest.raises(plans.PlanError, match="'nodes'"):
        plans.load(plan, {"nodes": -2})


@pytest.mark.parametrize(
    "given, interval",
    [
        ({}, 5.0),  # the 60 s default run: a fault every 10 s, as always
        ({"time_limit": 30}, 2.5),  # six faults, not three
        ({"time_limit": 600}, 5.0),  # long runs keep 5 s faults
        ({"time_limit": 8}, 2.0),  # never shorter than an election and its catch-up
        ({"time_limit": 30, "nemesis_interval": 5}, 5.0),  # a plan's own interval stands
        ({"time_limit": 30, "nemesis_interval": None}, 2.5),  # an empty YAML value: the default
    ],
)
def test_the_nemesis_interval_fits_the_default_number_of_faults_into_a_run(given, interval):
    plan = plans.load(given)
    assert plan.nemesis_interval == interval
    if "nemesis_interval" not in given and 24 <= plan.time_limit <= 60:
        faults = int(plan.time_limit // (2 * plan.nemesis_interval))
        assert faults == plans.DEFAULT_FAULTS
    assert plans.load(plan.to_dict()).nemesis_interval == interval, "the stored plan replays"
