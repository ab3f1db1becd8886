"""A run whose set-up fails is stored as failed, with the reason, and never becomes ``latest``.

The failure is real: ``--net netns`` with a PATH that holds none of the tools namespaces
need (``ip``, ``iptables``), which is what a machine without them looks like.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness import store


def test_a_run_that_never_started_leaves_latest_where_it_was(tmp_path: Path) -> None:
    root = tmp_path / "store"
    earlier = store.new_run_dir(root, "raftchat")  # the last run that did start
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {**os.environ, "PATH": str(empty_bin)}
    args = ["run", "--net", "netns", "--nemesis", "partition", "--nodes", "3", "--time-limit", "2"]
    run = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args, "--store", str(root), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 3, run.stdout + run.stderr
    assert (root / store.LATEST).resolve() == earlier.resolve()
    failed = [d for d in store.run_dirs(root) if d != earlier]
    assert len(failed) == 1
    results = json.loads((failed[0] / store.RESULTS).read_text())
    assert results["setup_failed"] is True and results["exit_code"] == 3
    assert "never started" in results["error"] and "netns" in results["error"]
    assert store.summarize(failed[0]).verdict == store.FAILED
    assert "FAILED (the run never started)" in run.stdout and "netns" in run.stdout
    stored = next(line for line in run.stdout.splitlines() if line.startswith("stored in:"))
    listed = stored.partition("(")[2].rstrip(")")
    for name in filter(None, (n.strip() for n in listed.split(","))):
        assert (failed[0] / name.rstrip("/")).exists(), f"the summary lists {name}, which is not there"
    for name in (store.TIMELINE, store.LATENCY_PNG, store.THROUGHPUT_PNG):
        assert name not in stored and not (failed[0] / name).exists()
    assert "Traceback" not in run.stderr
