"""Shared fixtures: real clusters of node processes on loopback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftchat import config as cfg
from raftchat.client import OperationError, SyncClient
from raftchat.localcluster import LocalCluster

# Fixtures that start real node processes: a test using one is marked ``cluster`` without
# saying so itself (``pytest -m "not cluster"`` leaves it out of the fast suite).
CLUSTER_FIXTURES = frozenset({"cluster", "make_cluster", "live_cluster", "short_runs"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rewrite-scenarios",
        action="store_true",
        help="rewrite the expected traces of tests/raft/scenarios/*.txt from what the code prints now",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture
def cluster(tmp_path) -> Iterator[LocalCluster]:
    """A running 3-node chat cluster with a leader, stopped after the test."""
    cluster = LocalCluster(tmp_path / "cluster", 3)
    try:
        cluster.start_all()
        cluster.wait_for_leader(timeout=15)
        cluster.wait_until_serving(timeout=15)
        yield cluster
    finally:
        cluster.stop_all()


@pytest.fixture
def make_cluster(tmp_path):
    """Factory for local clusters that are always stopped at the end of the test."""
    clusters: list[LocalCluster] = []

    def make(nodes: int = 3, **kwargs) -> LocalCluster:
        cluster = LocalCluster(tmp_path / f"cluster{len(clusters)}", nodes, **kwargs)
        clusters.append(cluster)
        cluster.start_all()
        cluster.wait_for_leader(timeout=15)
        cluster.wait_until_serving(timeout=15)
        return cluster

    yield make
    for cluster in clusters:
        cluster.stop_all()


def _has_leader(config: cfg.ClusterConfig) -> bool:
    try:
        with SyncClient(config, timeout=1.0, attempt_timeout=0.3) as client:
            return client.call("list_accounts", pattern="").status == "ok"
    except OperationError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def live_cluster(tmp_path_factory) -> Iterator[Path]:
    """A real 3-node cluster run by `raftchat cluster`, shared by the session; yields its cluster.yaml."""
    tmp = tmp_path_factory.mktemp("live")
    data_dir, out_path = tmp / "cluster", tmp / "cluster.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "raftchat", "cluster", "--nodes", "3", "--data-dir", str(data_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    path = data_dir / "cluster.yaml"
    deadline = time.monotonic() + 30
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"cluster exited with {proc.returncode}: {out_path.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no leader within 30 s: {out_path.read_text()}")
            try:
                if path.exists() and _has_leader(cfg.load(path)):
                    break
            except cfg.ConfigError:
                pass  # the file is still being written
            time.sleep(0.1)
        yield path
    finally:
        _stop(proc)


# One short fault-free harness run per workload, shared by the tests that only read facts of a
# stored valid run (its files, its history's model, the checker's refusals): each run starts a
# cluster and writes plots and a timeline, which costs more than the seconds of load.
SHORT_RUN = {"nodes": 3, "time_limit": 8, "concurrency": 6, "rate": 150, "recovery": 1, "nemesis": []}
SHORT_RUN_WORKLOADS = ("chat", "register", "kv")


@pytest.fixture(scope="session")
def short_runs(tmp_path_factory) -> dict[str, Path]:
    """workload -> the run directory of a valid stored run, each in a store of its own."""
    from harness.runner import run_plan

    runs = {}
    for workload in SHORT_RUN_WORKLOADS:
        store = tmp_path_factory.mktemp(f"short-{workload}") / "store"
        outcome = run_plan(None, {**SHORT_RUN, "workload": workload}, store, progress=False)
        assert outcome.valid is True and outcome.exit_code == 0, outcome.results
        runs[workload] = outcome.run_dir
    return runs
