"""What CI and people get from a run: the plots, the JUnit report, and the pytest plugin.

The plugin tests make real runs (a 3-node cluster on loopback, 5 s of load) through the
``harness_run`` fixture in a pytester subprocess, one valid and one with a deliberate bug.
"""

from __future__ import annotations

import importlib.metadata
import os
import struct
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from test_store_stats import T0, synthetic_ops

from checker import check
from harness import plots, stats, store
from harness.junit import outcome, write_junit
from histories.format import NEMESIS, Op

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]
FAULTS = [("partition", 3.0, 6.0), ("kill", 8.0, None)]


# -------------------------------------------------------------------------------------- plots


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header, after checking the signature and IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    assert data[-8:-4] == b"IEND", f"{path} is truncated"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("faults", [FAULTS, []], ids=["nemesis", "no-nemesis"])
def test_write_plots(tmp_path: Path, faults: list[Any]) -> None:
    run_dir = store.new_run_dir(tmp_path, "reg", T0)
    written = plots.write_plots(run_dir, synthetic_ops(n_ops=800, seed=4, faults=faults))
    assert written == [run_dir / "latency.png", run_dir / "throughput.png"]
    for path in written:
        width, height = png_size(path)
        assert (width, height) == (1320, 605)
        assert path.stat().st_size > 20_000  # points, bars and text, not a blank canvas


def test_faults_are_shaded_and_labelled() -> None:
    ops = synthetic_ops(n_ops=1500, seed=4, faults=FAULTS)
    client, _ = stats.calls(ops)
    intervals = stats.nemesis_intervals(ops)
    end = max(op.time for op in ops) / stats.NS_PER_S
    assert end > 9.0
    for figure in (
        plots._latency_figure(client, intervals, end, "reg"),
        plots._throughput_figure(client, intervals, end, "reg"),
    ):
        axes = figure.axes[0]
        texts = [t.get_text().strip() for t in axes.texts]
        assert texts == ["partition", "kill"]
        legend = [t.get_text() for t in axes.get_legend().get_texts()]
        assert "fault: partition" in legend and "fault: kill" in legend
        spans = [p for p in axes.patches if p.get_zorder() == 0]
        assert len(spans) == 2
        x0, x1 = spans[1].get_x(), spans[1].get_x() + spans[1].get_width()
        assert (x0, x1) == pytest.approx((8.0, end))  # never stopped: shaded to the end
        assert axes.get_xlabel() and axes.get_ylabel() and axes.get_title(loc="left")
    latency_axes = plots._latency_figure(client, intervals, end, "reg").axes[0]
    assert latency_axes.get_yscale() == "log"
    legend = [t.get_text() for t in latency_axes.get_legend().get_texts()]
    assert {"read", "write", "ok", "fail", "info"} <= set(legend)


def test_plots_of_an_empty_history(tmp_path: Path) -> None:
    for path in plots.write_plots(tmp_path, []):
        assert png_size(path) == (1320, 605)
    only_faults = [Op(0, "info", NEMESIS, "start", {"fault": "partition"}, 10**9)]
    for path in plots.write_plots(tmp_path, only_faults):
        assert png_size(path) == (1320, 605)


def test_plots_of_a_big_history_sample_the_scatter_and_say_so(tmp_path: Path) -> None:
    """(How fast they draw belongs to bench/records.py.)"""
    ops = synthetic_ops(n_ops=30_000, concurrency=20, seed=7, faults=[("partition", 30, 60)])
    written = plots.write_plots(tmp_path, ops)
    assert all(png_size(p) == (1320, 605) for p in written)
    client, _ = stats.calls(ops)
    title = plots._latency_figure(client, [], 100.0, "big").axes[0].get_title(loc="left")
    assert f"showing {plots.MAX_POINTS:,} of 30,000 ops" in title  # the sampling is said, not hidden


def test_sampling_keeps_rare_outcomes_whole() -> None:
    calls = [stats.Call("read", i, i + 1, "ok") for i in range(50_000)]
    calls += [stats.Call("write", i, i + 1, "fail") for i in range(30)]
    calls += [stats.Call("write", i, i + 1, "ok") for i in range(10_000)]
    shown = plots._sample(calls, 1_000)
    assert len(shown) <= 1_000
    assert sum(c.outcome == "fail" for c in shown) == 30
    reads = [c.start for c in shown if c.f == "read"]
    assert reads[0] < 1_000 and reads[-1] > 48_000  # thinned evenly over time, not truncated
    assert plots._sample(calls[:500], 1_000) == calls[:500]


# -------------------------------------------------------------------------------------- junit


def results_for(ops: list[Op], **fields: Any) -> dict[str, Any]:
    checked = check(ops, "register")
    data = {
        "test": "reg",
        "started": "2026-11-26T23:05:12Z",
        "duration_s": 12.5,
        "valid": checked.valid,
        "exit_code": {True: 0, False: 1}.get(checked.valid, 2),
        "workload": "register",
        "nodes": 3,
        "concurrency": 5,
        "nemesis": ["partition"],
        "bug": None,
        "checker": checked.to_json(),
        "stats": stats.compute(ops),
        "error": None,
    }
    return {**data, **fields}


def test_junit_report(tmp_path: Path) -> None:
    good = results_for(synthetic_ops(n_ops=200, seed=1), test="good", run_dir="/store/good/1")
    bad = results_for(synthetic_ops(n_ops=200, seed=2, corrupt=True), test="bad", run_dir="/store/bad/2")
    assert bad["valid"] is False and good["valid"] is True
    unknown = results_for(synthetic_ops(n_ops=50, seed=3), test="slow", valid="unknown", exit_code=2)
    unknown["checker"]["reason"] = "time limit of 10 s reached in partition 0"
    error = "ConnectionRefusedError: \x00\x1b[31mno cluster"  # control characters XML cannot hold
    broken = {"test": "crash", "workload": "chat", "valid": None, "exit_code": 3, "duration_s": 1.0,
              "error": error, "checker": None, "stats": {}}  # fmt: skip
    report = tmp_path / "junit.xml"
    write_junit(report, [good, bad, unknown, broken])

    root = ET.parse(report).getroot()  # parses: the control characters were dropped
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "harness"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "2")
    assert float(suite.get("time")) == pytest.approx(12.5 * 3 + 1.0)
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert list(cases) == ["good", "bad", "slow", "crash"]
    assert cases["good"].get("classname") == "harness.register"
    assert cases["crash"].get("classname") == "harness.chat"
    assert cases["good"].get("time") == "12.500"
    assert cases["good"].find("failure") is None and cases["good"].find("error") is None

    failure = cases["bad"].find("failure")
    assert failure is not None and cases["bad"].find("error") is None
    assert "not linearizable" in failure.get("message")
    stuck = bad["checker"]["failure"]["minimal_stuck"] or bad["checker"]["failure"]["stuck"]
    assert f"op {stuck[0]['op']}: {stuck[0]['description']}" in failure.text
    assert "run directory: /store/bad/2" in failure.text

    error = cases["slow"].find("error")
    assert error.get("type") == "Unknown" and "time limit of 10 s" in error.get("message")
    crash = cases["crash"].find("error")
    assert crash.get("type") == "HarnessError" and "ConnectionRefusedError" in crash.get("message")
    assert "availability=100.0%" in cases["good"].find("system-out").text


def test_outcome_classification() -> None:
    assert outcome({"valid": True, "exit_code": 0}) == "passed"
    assert outcome({"valid": False, "exit_code": 1}) == "failure"
    assert outcome({"valid": "unknown", "exit_code": 2}) == "error"
    assert outcome({"valid": True, "exit_code": 3}) == "error"  # a valid prefix of a broken run
    assert outcome({"valid": None, "exit_code": 3}) == "error"


# ------------------------------------------------------------------------------ pytest plugin


def plugin_args() -> list[str]:
    """Load the plugin by module unless the installed entry point already does (twice is an error)."""
    points = importlib.metadata.entry_points(group="pytest11")
    if any(ep.value == "harness.pytest_plugin" for ep in points):
        return []
    return ["-p", "harness.pytest_plugin"]


def test_entry_point_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"]["harness"] == "harness.pytest_plugin"


def test_plugin_loads_without_a_runner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken runner fails only the tests that use it, with the import error."""
    monkeypatch.setitem(sys.modules, "harness.runner", None)  # "import harness.runner" now fails
    pytester.makepyfile(
        """
        def test_other():
            assert True

        def test_uses_harness(harness_run):
            harness_run(nodes=3)
        """
    )
    result = pytester.runpytest(*plugin_args())
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*ModuleNotFoundError*harness.runner*"])
    helped = pytester.runpytest(*plugin_args(), "--help")
    helped.stdout.fnmatch_lines(["*--harness-store=DIR*"])


@pytest.mark.cluster
def test_plugin_with_a_real_valid_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import json

        def test_register_is_linearizable(harness_run, tmp_path):
            outcome = harness_run(nodes=3, time_limit=5, workload="register", nemesis=[])
            assert outcome.valid is True and outcome.exit_code == 0
            assert outcome.run_dir.parent.parent == tmp_path / "store"
            assert json.loads((outcome.run_dir / "results.json").read_text())["valid"] is True
            assert outcome.results["stats"]["client_ops"] > 0
        """
    )
    result = pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(passed=1)


@pytest.mark.cluster
def test_plugin_reports_the_run_dir_of_an_invalid_run(pytester: pytest.Pytester) -> None:
    """A failing verdict names its stored run: in the failure output and in JUnit XML."""
    pytester.makepyfile(
        """
        def test_register_with_stale_reads(harness_run):
            plan = dict(nodes=3, time_limit=5, workload="register", nemesis=[], bug="stale-read")
            for attempt in range(3):  # the bug shows in nearly every run; retry the rare lucky one
                outcome = harness_run(**plan)
                if outcome.valid is not True:
                    break
            assert outcome.valid is True
        """
    )
    kept = pytester.path / "kept-runs"
    result = pytester.runpytest_subprocess(
        *plugin_args(), "--harness-store", "kept-runs", "--junitxml=report.xml", timeout=240
    )
    result.assert_outcomes(failed=1)
    runs = store.list_runs(kept)  # --harness-store (relative to where pytest ran) kept them there
    run_dir = runs[0].path  # the invalid one: the last made
    result.stdout.fnmatch_lines(["*harness runs*", *[f"*: {r.path}" for r in reversed(runs)]])
    result.stdout.fnmatch_lines([f"INVALID (exit 1): {run_dir}"])
    properties = ET.parse(pytester.path / "report.xml").getroot().iter("property")
    assert [(p.get("name"), p.get("value")) for p in properties] == [("harness_run_dir", str(run_dir))]
    assert store.read_results(run_dir)["valid"] is False
    assert os.path.exists(run_dir / "timeline.html")


def test_fault_bands_are_named_by_shape_and_phases_labelled() -> None:
    ops = synthetic_ops(n_ops=1500, seed=4, faults=[])
    end = max(op.time for op in ops) / stats.NS_PER_S
    shaped = [
        stats.Interval("partition", 1 * stats.NS_PER_S, 3 * stats.NS_PER_S, {"shape": "halves"}),
        stats.Interval("partition-ring", 4 * stats.NS_PER_S, 5 * stats.NS_PER_S, {"shape": "ring"}),
    ]
    phases = {"load_end": end - 3, "final_reads": end - 1, "end": end}
    client, _ = stats.calls(ops)
    for figure in (
        plots._latency_figure(client, shaped, end, "reg", phases),
        plots._throughput_figure(client, shaped, end, "reg", phases),
    ):
        axes = figure.axes[0]
        texts = [t.get_text().strip() for t in axes.texts]
        assert texts == ["partition (halves)", "partition-ring", "recovery", "final reads"]
        legend = [t.get_text() for t in axes.get_legend().get_texts()]
        assert "fault: partition (halves)" in legend and "phase: recovery" in legend
        assert "phase: final reads" in legend
    from support import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    plots._save(figure, ARTIFACTS / "plot_throughput_phases.png")  # for a person to look at
