"""The system interface: choosing a system, its options, and the errors of a bad setup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import plan as plans
from harness.run_cmd import system_options
from systems import SYSTEMS, SystemUnavailable, make_system


def _harness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_every_system_builds_with_its_defaults_and_names_its_workloads():
    for name in SYSTEMS:
        system = make_system(name, None)
        assert system.name == name and system.workloads
        assert system.describe_options().startswith(f"{name} system options:")


def test_plan_keys_system_and_system_options_are_validated():
    plan = plans.load({"system": "etcd", "workload": "register", "system_options": {"reads": "serializable"}})
    assert (plan.system, plan.name, plan.system_options) == ("etcd", "etcd", {"reads": "serializable"})
    assert plans.load({"system": "zookeeper"}).workload == "register"  # the system's first workload
    assert plans.load({}).workload == "chat" and plans.load({}).system == "raftchat"
    cases = [
        ({"system": "mongo"}, "'system' must be one of"),
        ({"system": "etcd", "workload": "register", "system_options": {"raeds": "x"}}, "'raeds'"),
        ({"system": "etcd", "workload": "register", "system_options": {"reads": "fast"}}, "must be one of"),
        ({"system": "etcd", "workload": "chat"}, "no client for the 'chat' workload"),
        ({"system": "etcd", "workload": "register", "bug": "stale-read"}, "deliberate bugs are raftchat's"),
        ({"system": "etcd", "workload": "register", "nemesis": ["crash-voters"]}, "failpoints"),
        ({"system": "etcd", "workload": "register", "net": "proxy"}, "the proxy network cannot carry etcd"),
        ({"system": "raftchat", "system_options": {"reads": "serializable"}}, "system 'raftchat'"),
    ]
    for data, complaint in cases:
        with pytest.raises(plans.PlanError) as caught:
            plans.load(data)
        assert complaint in str(caught.value), (data, str(caught.value))


def test_command_line_system_options_merge_into_the_plan_and_are_read_as_yaml():
    assert system_options(["reads=serializable", "heartbeat_ms=50"]) == {
        "reads": "serializable",
        "heartbeat_ms": 50,
    }
    with pytest.raises(plans.PlanError, match="KEY=VALUE"):
        system_options(["reads"])
    base = {"system": "etcd", "workload": "register", "system_options": {"heartbeat_ms": 50}}
    plan = plans.load(base, {"system_options": {"reads": "serializable"}})
    assert plan.system_options == {"heartbeat_ms": 50, "reads": "serializable"}


def test_an_unknown_system_option_on_the_command_line_is_an_error_naming_it(tmp_path):
    result = _harness("run", "--system", "etcd", "--workload", "register", "--system-option", "colour=blue",
                      "--store", str(tmp_path / "store"))  # fmt: skip
    assert result.returncode == 3
    assert "unknown option 'colour'" in result.stderr and "system 'etcd'" in result.stderr
    assert not (tmp_path / "store").exists()


def test_a_system_that_is_not_installed_names_its_package(tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare)}  # nothing on PATH: etcd cannot be found
    with pytest.raises(SystemUnavailable, match="apt-get install etcd-server"):
        saved = os.environ["PATH"]
        os.environ["PATH"] = str(bare)
        try:
            make_system("etcd").check_installed()
        finally:
            os.environ["PATH"] = saved
    store = str(tmp_path / "s")
    result = _harness("run", "--system", "etcd", "--workload", "register", "--store", store, env=env)
    assert result.returncode == 3, result.stderr
    assert "`etcd` is not installed" in result.stderr and "etcd-server" in result.stderr
    assert not Path(tmp_path / "s").exists(), "a setup that cannot run must not store a run"


def test_partitions_the_proxies_cannot_carry_are_refused_without_namespaces(tmp_path, monkeypatch):
    """Without root (simulated here: namespaces unavailable) the run is refused before it is stored."""
    from harness import runner

    monkeypatch.setattr(runner, "netns_available", lambda faults=(): (False, "network namespaces need root"))
    plan = {"system": "etcd", "nemesis": ["partition"], "net": "auto"}
    with pytest.raises(SystemUnavailable, match="proxy network cannot carry etcd") as caught:
        runner.run_plan(plan, store_root=tmp_path / "store", progress=False)
    assert "need root" in str(caught.value)
    assert not (tmp_path / "store").exists()
    runner.check_network(plans.load({"system": "etcd", "nemesis": ["kill", "pause"]}), make_system("etcd"))


def test_the_timeline_title_names_the_system_its_version_and_options():
    from harness.analysis import run_title

    etcd = {"test": "etcd", "system": "etcd", "system_version": "3.4.23", "system_options": {"reads": "x"}}
    assert run_title(etcd, "dir") == "etcd 3.4.23 (reads=x)"
    assert run_title({**etcd, "test": "nightly"}, "dir") == "nightly on etcd 3.4.23 (reads=x)"
    assert run_title({"test": "old"}, "dir") == "old"  # stored before systems were recorded


def test_system_selftest_usage_errors_and_the_met_column():
    from harness.system_selftest import CONFIGS, ConfigReport, Trial, table

    assert _harness("selftest", "--system", "mongo").returncode == 3
    bad = _harness("selftest", "--system", "etcd", "--configs", "two")
    assert bad.returncode == 3 and "--configs takes numbers" in bad.stderr
    valid_row, stale_row = CONFIGS["etcd"]
    report = ConfigReport("etcd", stale_row, [Trial(i, False, 1.0, "d", 10) for i in range(4)])
    report.trials.append(Trial(4, "unknown", None, "d", 10))
    assert (report.invalid, report.met) == (4, "yes")  # at least 4 of 5
    report.trials[0].valid = True
    assert report.met == "no"
    clean = ConfigReport("etcd", valid_row, [Trial(i, True, None, "d", 10) for i in range(5)])
    assert clean.met == "yes"
    assert "etcd, linearizable reads" in table([clean, report])


def test_the_leader_of_a_cluster_is_the_claim_of_the_highest_term():
    """One rule for every system's cluster: a node that did not answer counts for nothing, and of
    two nodes that both claim to lead (a deposed leader not yet told), the later term wins."""
    from raftchat.localcluster import claimed_leader

    def status(node: str, role: str, term: int) -> dict:
        return {"node": node, "role": role, "term": term}

    polled = [None, status("n1", "leader", 2), status("n2", "leader", 3), status("n3", "follower", 4)]
    assert claimed_leader(polled) == "n2"
    assert claimed_leader(reversed(polled)) == "n2"
    assert claimed_leader([status("n1", "follower", 1), None]) is None
    assert claimed_leader([]) is None
