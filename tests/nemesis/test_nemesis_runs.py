"""`harness run` with faults: one run per fault kind against raftchat, and cleanup.

Each run must be linearizable, show its faults in the history, and leave nothing behind:
no node or proxy process, no namespace or link carrying its tag.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import netns_missing, processes_mentioning

from harness.runner import run_plan

pytestmark = pytest.mark.cluster  # every test here starts node or proxy processes

NETNS_WHY = netns_missing()
NETNS_OK = NETNS_WHY is None
needs_netns = pytest.mark.skipif(not NETNS_OK, reason=str(NETNS_WHY))


def _our_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout if NETNS_OK else ""
    return [line.split()[0] for line in out.splitlines() if line.startswith("rc-")]


def _nemesis_events(run_dir: Path) -> list[dict]:
    events = []
    for line in (run_dir / "history.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("process") == "nemesis":  # the first line is the metadata record
            events.append(record)
    return events


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault, net, workload",
    [
        pytest.param("partition", "netns", "chat", marks=needs_netns),
        ("partition", "proxy", "register"),
        ("kill", "auto", "chat"),
        ("pause", "auto", "kv"),
        ("delay,loss", "proxy", "register"),
    ],
)
def test_a_run_with_faults_is_valid_and_leaves_nothing(tmp_path, fault, net, workload):
    outcome = run_plan(
        None,
        {
            "nodes": 3,
            # Faults start at 2 and 6 s and stop at 4 and 8 s (the last one at the end, when
            # starting and stopping them is slow): two of each, as the test asks.
            "time_limit": 10,
            "nemesis": fault,
            "nemesis_interval": 2,
            "net": net,
            "workload": workload,
            "concurrency": 6,
            "recovery": 2,
        },
        store_root=tmp_path / "store",
        progress=False,
    )
    assert outcome.valid is True, outcome.results
    events = _nemesis_events(outcome.run_dir)
    starts = [e for e in events if e["f"] == "start"]
    stops = [e for e in events if e["f"] == "stop"]
    assert len(starts) >= 2 and len(stops) >= 2, events
    assert {e["value"]["fault"] for e in starts} <= set(fault.split(","))
    if fault == "partition":
        assert all(e["value"]["cut"] for e in starts), "a partition start must say which pairs were cut"
    if fault in ("kill", "pause"):
        assert all(e["value"]["nodes"] for e in starts), "a process fault must say which nodes it hit"
    assert outcome.results["stats"]["nemesis"], "the statistics must show when faults were active"
    assert not processes_mentioning(str(outcome.run_dir))
    network = outcome.results["network"]
    if fault in ("kill", "pause"):
        assert network is None, "process faults need no cuttable network"
    else:
        assert network["name"] == ("netns" if net == "netns" else "proxy")
    left = [ns for ns in _our_namespaces() if ns.startswith(f"rc-{network['tag']}-")] if network else []
    assert not left, f"namespaces outlived their run: {left}"


@pytest.mark.slow
@needs_netns
def test_harness_cleanup_after_a_killed_harness(tmp_path):
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "harness.cli", "run", "--nodes", "3", "--time-limit", "60", "--quiet"]
    cmd += ["--nemesis", "partition", "--nemesis-interval", "1", "--net", "netns", "--store", str(store)]
    before = set(_our_namespaces())
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 40
        started = False
        while time.monotonic() < deadline and not started:
            time.sleep(0.3)
            histories = list(store.glob("raftchat/*/history.jsonl"))
            started = bool(histories) and '"nemesis"' in histories[0].read_text()
        assert started, "the run never started a fault"
        assert set(_our_namespaces()) - before, "the run should have made namespaces"
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no teardown at all
        proc.wait()
    left = set(_our_namespaces()) - before
    assert left, "nothing left behind to clean up: the test proves nothing"
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "cleanup"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    # Only the killed run's own namespaces: a live run elsewhere on the machine keeps its own.
    assert not left & set(_our_namespaces()), result.stdout
    deadline = time.monotonic() + 10
    run_dir = next(store.glob("raftchat/*/"))
    while processes_mentioning(str(run_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)  # nodes die with the harness (PDEATHSIG); give the kernel a moment
    assert not processes_mentioning(str(run_dir))


def test_harness_cleanup_removes_a_leftover_proxy_without_root_or_iptables(tmp_path):
    """A proxy process whose run died (its parent gone) is found by its tag and removed."""
    from nemesis.net.netns import new_tag

    tag = new_tag()
    leftover = "import os, time; os.setsid(); time.sleep(300)"
    spawn = (
        "import subprocess as s, sys; "
        "print(s.Popen(sys.argv[1:], stdin=s.DEVNULL, stdout=s.DEVNULL, stderr=s.DEVNULL).pid)"
    )
    spawner = subprocess.run(  # the spawner exits at once: the proxy-like child is orphaned
        [
            sys.executable,
            "-c",
            spawn,
            sys.executable,
            "-c",
            leftover,
            "nemesis.proxyproc",
            "--tag",
            f"rc-{tag}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    pid = int(spawner.stdout.split()[0])
    try:
        listed = subprocess.run(
            [sys.executable, "-m", "harness.cli", "cleanup", "--tag", tag, "--dry-run"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0 and f"process {pid}" in listed.stdout, listed.stdout + listed.stderr
        removed = subprocess.run(
            [sys.executable, "-m", "harness.cli", "cleanup", "--tag", tag],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert removed.returncode == 0 and f"process {pid}" in removed.stdout, removed.stdout + removed.stderr
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # removed, then reaped by whoever adopted it
        assert not processes_mentioning(f"rc-{tag}")
    finally:
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
