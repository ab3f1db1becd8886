"""The opt-in tracemalloc reports a node writes into its data directory (RAFTCHAT_TRACEMALLOC)."""

from __future__ import annotations

import os
import subprocess
import tracemalloc

import pytest
from support import wait_until

from raftchat import memtrace
from raftchat.localcluster import LocalCluster


@pytest.fixture
def tracer(tmp_path):
    was_tracing = tracemalloc.is_tracing()
    yield memtrace.MemoryTracer(tmp_path)
    if not was_tracing:
        tracemalloc.stop()


def test_the_report_names_what_grew_since_the_first(tracer) -> None:
    tracer.report()
    hoard = [bytearray(1000) for _ in range(2000)]  # about 2 MB held by one line
    text = tracer.report()
    assert text == tracer.path.read_text()
    first = text.splitlines()[0]
    assert "traced=" in first and "rss=" in first
    grew = text.split("grew most since the first report")[1]
    top = grew.split("KiB, ")[1].split(" KiB")[0]  # the first entry: the site that grew most
    assert "test_memtrace.py" in top, grew[:2000]
    assert tracer.traced() > 2_000_000
    del hoard


@pytest.mark.parametrize("value", ["soon", "-5", "nan"])
def test_a_bad_interval_is_refused_naming_the_variable(monkeypatch, value: str) -> None:
    monkeypatch.setenv(memtrace.ENV, value)
    with pytest.raises(ValueError, match=memtrace.ENV):
        memtrace.interval_from_env()


@pytest.mark.parametrize(("value", "seconds"), [("", None), ("0", None), ("30", 30.0), ("0.5", 0.5)])
def test_the_interval_comes_from_the_environment(monkeypatch, value: str, seconds) -> None:
    monkeypatch.setenv(memtrace.ENV, value)
    assert memtrace.interval_from_env() == seconds


@pytest.mark.cluster
def test_a_node_started_with_tracing_reports_into_its_data_dir(make_cluster, monkeypatch) -> None:
    monkeypatch.setenv(memtrace.ENV, "0.5")  # the node processes inherit it
    cluster = make_cluster(1)
    report = cluster.data_dir / "n1" / memtrace.REPORT
    wait_until("the first tracemalloc report", report.exists, timeout=15)
    assert "traced=" in report.read_text()
    status = wait_until("a status with the traced total", lambda: (cluster.status("n1") or {}).get("traced"))
    assert status > 0


@pytest.mark.cluster
def test_a_node_refuses_a_bad_tracing_interval(tmp_path) -> None:
    cluster = LocalCluster(tmp_path / "c", 1)
    env = {**os.environ, memtrace.ENV: "often"}
    done = subprocess.run(cluster.command("n1"), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{memtrace.ENV}='often'" in done.stderr
