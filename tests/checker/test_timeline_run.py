"""The timeline of a real failing run, in headless Chromium: a register run of nodes with
the ``stale-read`` bug under partitions, as ``harness run --bug stale-read`` stores it.

The page must show which node served the stale read in the minimal anomaly, draw every
operation in the whole-run view, and give the times results.json gives. Screenshots of the
whole page go to $TEST_ARTIFACTS (default tests/artifacts/) for a person to look at.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
from support import ARTIFACTS, CHROMIUM, needs_chromium
from test_html_view import FLAGS, Elements, chromium, rendered

from harness.runner import run_plan
from histories import read_history

pytestmark = [needs_chromium, pytest.mark.cluster]
PLAN = {
    "nodes": 3,
    "time_limit": 6,
    "workload": "register",
    "concurrency": 6,
    "rate": 80,
    "nemesis": ["partition-one", "partition-halves"],
    "nemesis_interval": 1,
    "net": "proxy",
    "recovery": 0.5,
    "bug": "stale-read",
}


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stored run the checker found not linearizable (a few tries: a fault may miss the bug)."""
    store = tmp_path_factory.mktemp("timeline") / "store"
    for seed in range(1, 4):
        outcome = run_plan(None, {**PLAN, "seed": seed}, store, progress=False)
        if outcome.valid is False:
            return outcome.run_dir
    pytest.fail("three runs with the stale-read bug were all judged linearizable")


def full_page_screenshot(page: Path, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / name
    png.unlink(missing_ok=True)
    chromium(page, "--window-size=1400,2400", f"--screenshot={png}")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (1400, 2400)
    return png


def test_the_failing_runs_timeline(failing_run: Path) -> None:
    page = failing_run / "timeline.html"
    results = json.loads((failing_run / "results.json").read_text())
    failure = results["checker"]["failure"]
    records = read_history(failing_run / "history.jsonl").ops
    history = {op.index: op for op in records}
    answered = {}  # invoke index -> the node its ok completion names (the node that answered)
    for k, op in enumerate(records):
        if op.type == "invoke":
            done = next(r for r in records[k + 1 :] if r.process == op.process)
            answered[op.index] = done.node if done.type == "ok" else op.node
    dom = rendered(page)
    text = page.read_text(encoding="utf-8")

    # The minimal anomaly names the node of every op, the stale read's included, by history index.
    minimal = {op["index"]: op for op in failure["minimal_history"]}
    stuck_ids = {s["op"] for s in failure["minimal_stuck"]}
    rows = re.findall(
        r'<tr class="([^"]*)" data-op="(\d+)" data-index="(\d+)" data-call="(\d+)" data-ret="(\d*)">'
        r"<td>(\d+)</td><td>.*?</td><td class=\"node\">([^<]*)</td>.*?<td>([^<]*) → ([^<]*)</td>",
        text,
    )
    assert len(rows) == len(minimal) >= 2
    for cls, op_id, index, call, ret, shown, node, called, returned in rows:
        op = minimal[int(index)]
        assert int(shown) == int(index) == op["index"] and history[op["index"]].type == "invoke"
        assert node == op["node"] == answered[op["index"]] and node.startswith("n")
        if int(op_id) in stuck_ids:
            assert cls == "r-stuck"
        # One clock: the page's times are results.json's, in seconds since the start of the test.
        assert int(call) == op["call"] and called == f"{op['call_s']:.6f} s"
        assert ret and int(ret) == op["ret"] and returned == f"{op['ret_s']:.6f} s"
    assert any(int(op_id) in stuck_ids for _, op_id, *_ in rows)
    # The bug serves stale reads and nothing else: without a read the writes and cas, ordered by
    # the log, are linearizable, so the minimal anomaly holds a read (stuck, or the reason a later
    # cas is stuck).
    assert any(history[int(index)].f == "read" for _, _, index, *_ in rows)

    # The whole run draws every operation, against the faults, the failing group marked.
    whole = dom.by_id["whole-summary"]
    ops = results["checker"]["ops"]
    assert int(whole["data-bars"]) == int(whole["data-drawn"]) == ops
    assert int(whole["data-groups"]) == results["checker"]["partitions"]
    assert int(whole["data-failing-ops"]) == failure["partition_ops"]
    assert int(whole["data-fault-bands"]) == int(whole["data-faults"]) == len(results["stats"]["nemesis"]) > 0
    assert int(dom.by_id["whole-run"]["data-failing"]) == 1

    # The faults table is on the same clock as results.json.
    starts = re.findall(r'<tr class="fault-row" data-fault="\d+"><td>.*?</td><td>([^<]*)</td>', text)
    expected = sorted(results["stats"]["nemesis"], key=lambda f: f["start"])
    assert [s.split(" (")[0] for s in starts] == [f"{f['start']:.6f} s" for f in expected]

    # Groups, not partitions, for what the checker split; links to the run's other files.
    assert "checked group" in text and "failing partition" not in text.lower()
    for href in ("latency.png", "throughput.png", "plan.yaml", "results.json", "logs/"):
        assert f'href="{href}"' in text and (failing_run / href.rstrip("/")).exists()
    full_page_screenshot(page, "timeline_failing_run.png")


def open_at(page: Path, fragment: str, shot: str) -> Elements:
    """The page's DOM after its script ran with ``#fragment`` in the address, and a screenshot."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = f"{page.as_uri()}#{fragment}"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        base = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}"]
        dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=180)
        window = ["--window-size=1400,2400", f"--screenshot={ARTIFACTS / shot}"]
        subprocess.run([*base, *window, url], capture_output=True, timeout=180, check=True)
    elements = Elements()
    elements.feed(dom.stdout)
    assert "data-rendered" in dom.stdout, "the page's script did not finish"
    return elements


def test_lanes_grouped_by_node(failing_run: Path) -> None:
    """``#lanes=node`` (the "lanes by node" box) orders every timeline's lanes by node."""
    elements = open_at(failing_run / "timeline.html", "lanes=node", "timeline_lanes_by_node.png")
    for summary in ("whole-summary", "view-summary", "minimal-summary"):
        found = elements.by_id[summary]
        assert found["data-by-node"] == "true", summary
        order = found["data-node-order"].split()
        assert order == sorted(order), (summary, order)
        if summary != "minimal-summary":  # a minimal anomaly may touch the lanes of one node only
            assert len(set(order)) >= 2, (summary, order)


def test_an_op_opens_with_its_partial_linearization(failing_run: Path) -> None:
    """``#op=N`` selects the op with history index N and draws its longest partial linearization."""
    failure = json.loads((failing_run / "results.json").read_text())["checker"]["failure"]
    stuck = {s["op"] for s in failure["minimal_stuck"]}
    placed = next(op for op in failure["minimal_history"] if op["id"] not in stuck)
    elements = open_at(failing_run / "timeline.html", f"op={placed['index']}", "timeline_partial.png")
    view = elements.by_id["view-summary"]
    assert view["data-selected"] == str(placed["index"])
    assert int(view["data-partial"]) >= 1  # it is in some linearizable prefix of its group
