"""``harness nightly``: matrix expansion, up-front validation, the shipped plan's budget, the exit code,
and one real (tiny) matrix through the command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from harness import cli, nightly
from harness.nightly import MatrixError, expand, overall_exit_code, parse_matrix
from harness.runner import RunOutcome

ROOT = Path(__file__).resolve().parents[2]
BUDGET_S = 40 * 60  # the matrix's 23 minutes and an 11-minute soak run


def _matrix(**extra: Any) -> dict[str, Any]:
    return {
        "name": "nightly",
        "base": {"time_limit": 60, "concurrency": 6},
        "matrix": {
            "workload": ["chat", "register", "kv"],
            "nemesis": [["partition"], ["kill"], ["pause"], ["partition", "kill"]],
            "nodes": [3, 5],
        },
        **extra,
    }


def _write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------- expansion


def test_expansion_is_the_cross_product_in_file_order_with_readable_names() -> None:
    combos = expand(parse_matrix(_matrix()))
    assert len(combos) == 3 * 4 * 2
    assert combos[0].name == "nightly-chat-partition-n3"
    assert combos[1].name == "nightly-chat-partition-n5"
    assert "nightly-kv-partition+kill-n5" in [c.name for c in combos]
    assert len({c.name for c in combos}) == len(combos)
    first = combos[0].plan
    assert first == {
        "time_limit": 60,
        "concurrency": 6,
        "workload": "chat",
        "nemesis": ["partition"],
        "nodes": 3,
        "name": "nightly-chat-partition-n3",
    }


def test_any_plan_key_can_be_an_axis_and_empty_values_get_names() -> None:
    combos = expand(
        parse_matrix(
            {"name": "x", "matrix": {"nemesis": [[]], "time_limit": [30, 60], "bug": [None, "stale-read"]}}
        )
    )
    assert [c.name for c in combos] == [
        "x-no-nemesis-t30-no-bug",
        "x-no-nemesis-t30-stale-read",
        "x-no-nemesis-t60-no-bug",
        "x-no-nemesis-t60-stale-read",
    ]


def test_exclude_removes_every_matching_combination() -> None:
    combos = expand(
        parse_matrix(
            _matrix(
                exclude=[{"workload": "kv", "nodes": 5}, {"nemesis": "partition,kill", "workload": "chat"}]
            )
        )
    )
    names = [c.name for c in combos]
    assert len(combos) == 24 - 4 - 2
    assert not any(n.startswith("nightly-kv-") and n.endswith("-n5") for n in names)
    assert "nightly-kv-kill-n3" in names
    assert not any(n.startswith("nightly-chat-partition+kill") for n in names)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"exclude": [{"nodes": 7}]}, "match no combination"),
        ({"exclude": [{"nodez": 5}]}, "'nodez' is not a matrix axis"),
        ({"exclude": [{}]}, "non-empty mapping"),
        ({"exclude": [{"nodes": 3}, {"nodes": 5}]}, "leaves no run"),
        ({"colour": "blue"}, "unknown top-level key(s) 'colour'"),
        ({"matrix": {"nodes": 3}}, "'nodes' must be a non-empty list"),
        ({"matrix": {"nodes": [3, 3]}}, "lists 3 twice"),
        ({"matrix": {"nodez": [3]}}, "'nodez' is not a plan key"),
        ({"base": {"nodes": 3}}, "both in 'base' and a 'matrix' axis"),
        ({"base": {"name": "other"}}, "must not set 'name'"),
    ],
)
def test_matrix_mistakes_are_errors_that_say_what(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(MatrixError) as caught:
        expand(parse_matrix(_matrix(**extra)))
    assert message in str(caught.value)


# ---------------------------------------------------------------------------------- validation


def test_invalid_combinations_exit_3_naming_them_before_anything_runs(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path / "m.yaml", {"matrix": {"workload": ["chat", "chess"], "nodes": [3, 0]}})
    store = tmp_path / "store"
    assert cli.main(["nightly", str(path), "--store", str(store)]) == 3
    err = capsys.readouterr().err
    assert "3 of 4 combination(s)" in err
    assert "nightly-chat-n0 (workload=chat nodes=0): 'nodes' must be an integer" in err
    assert "nightly-chess-n3 (workload=chess nodes=3): 'workload' must be one of" in err
    assert "nightly-chat-n3 " not in err
    assert not store.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("matrix: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "a matrix file is a mapping"),
        ("matrix: {nodes: [3]}\nbse: {}\n", "unknown top-level key(s) 'bse'"),
    ],
)
def test_bad_files_exit_3_with_a_clear_message(tmp_path: Path, capsys, text: str, message: str) -> None:
    path = _write(tmp_path / "m.yaml", text)
    assert cli.main(["nightly", str(path), "--dry-run"]) == 3
    assert message in capsys.readouterr().err


def test_shipped_plan_dry_run_fits_in_40_minutes_and_covers_the_matrix(capsys) -> None:
    assert cli.main(["nightly", str(ROOT / "plans" / "nightly.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    seconds = int(re.search(r"estimated time: .* \((\d+) s", out).group(1))
    assert 0 < seconds <= BUDGET_S
    combos = expand(nightly.load_matrix(ROOT / "plans" / "nightly.yaml"))
    assert len(out.splitlines()) == len(combos) + 2
    assert {c.axes["workload"] for c in combos} == {"chat", "register", "kv"}
    assert {c.axes["nodes"] for c in combos} == {3, 5}
    fault_sets = [set(c.axes["nemesis"]) for c in combos]
    for fault in ("partition", "kill", "pause"):
        assert {fault} in fault_sets
    assert any(len(s) > 1 for s in fault_sets)
    # Frequent compaction in every run, and one soak run of 10 minutes or more under kills and partitions.
    resolved = nightly.validate_all(combos)
    assert all(plan.raftchat["snapshot_every"] <= 100 for plan in resolved if plan.time_limit < 600)
    soaks = [p for p in resolved if p.time_limit >= 600]
    assert len(soaks) == 1 and {"kill", "partition"} <= set(soaks[0].nemesis) and soaks[0].rate == 0


def test_include_adds_single_runs_beside_the_cross_product() -> None:
    soak = {"name": "soak", "time_limit": 600, "workload": "chat", "rate": 0}
    combos = expand(parse_matrix(_matrix(include=[soak])))
    assert len(combos) == 3 * 4 * 2 + 1
    last = combos[-1]
    assert last.name == "nightly-soak"
    assert last.plan == {
        "time_limit": 600,
        "concurrency": 6,
        "workload": "chat",
        "rate": 0,
        "name": "nightly-soak",
    }
    assert last.axes == {"workload": "chat", "nemesis": "(default)", "nodes": "(default)"}
    for bad, message in [
        ([{"time_limit": 5}], "with a 'name'"),
        ([{"name": "x", "nodez": 3}], "'nodez' is not a plan key"),
        ({"name": "x"}, "'include' must be a list"),
        ([{"name": "chat-partition-n3"}], "has the name of another run"),
    ]:
        with pytest.raises(MatrixError, match=re.escape(message)):
            expand(parse_matrix(_matrix(include=bad)))


# ---------------------------------------------------------------------------------- exit code


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([0, 0, 0], 0),
        ([0, 1, 0], 1),
        ([2, 3, 1], 1),  # not linearizable outranks everything
        ([0, 3, 2], 3),  # an error outranks unknown: nothing was proved there either
        ([0, 2, 0], 2),
        ([0, 0, -9], 3),  # any code that is not a verdict is an error
        ([0, 6, 5, 3], 5),  # a node that failed by itself outranks one that did not recover
        ([2, 4, 6], 4),  # diverged replicas outrank the other node checks
        ([4, 1], 1),
    ],
)
def test_the_nights_exit_code(codes: list[int], expected: int) -> None:
    assert overall_exit_code(codes) == expected


def test_every_run_is_recorded_even_when_one_fails_to_start(tmp_path: Path, monkeypatch) -> None:
    """Synthetic outcomes: an invalid run, a run whose start raises, a valid one."""
    from harness import runner

    verdicts = iter([(False, 1), None, (True, 0)])

    def fake_run_plan(plan: dict, overrides: Any, store_root: Path, progress: Any) -> RunOutcome:
        nxt = next(verdicts)
        if nxt is None:
            raise OSError("no network for you")
        run_dir = Path(store_root) / plan["name"] / "r"
        run_dir.mkdir(parents=True)
        results = {"test": plan["name"], "valid": nxt[0], "exit_code": nxt[1], "stats": {"client_ops": 7}}
        return RunOutcome(nxt[0], nxt[1], run_dir, results)

    monkeypatch.setattr(runner, "run_plan", fake_run_plan)
    matrix = parse_matrix({"name": "syn", "matrix": {"nodes": [3, 4, 5]}})
    combos = expand(matrix)
    summary_dir, records, code = nightly.run_matrix(
        matrix, combos, nightly.validate_all(combos), tmp_path, False, "m.yaml"
    )
    assert code == 1
    assert [r.verdict for r in records] == ["invalid", "error", "valid"]
    summary = json.loads((summary_dir / "summary.json").read_text())
    assert summary["exit_code"] == 1 and summary["complete"] and summary["not_run"] == []
    assert summary["runs"][1]["error"] == "OSError: no network for you"
    assert summary["counts"] == {"invalid": 1, "error": 1, "valid": 1}


# ---------------------------------------------------------------------------------- a real matrix


@pytest.mark.cluster
def test_a_tiny_real_matrix_runs_and_links_its_runs(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "tiny.yaml",
        {
            "name": "tiny",
            "base": {"time_limit": 4, "concurrency": 3, "nemesis": [], "recovery": 1},
            "matrix": {"workload": ["register", "chat"], "nodes": [3]},
        },
    )
    store, junit = tmp_path / "store", tmp_path / "junit.xml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "nightly",
            str(path),
            "--store",
            str(store),
            "--junit",
            str(junit),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 2 and all("VALID" in line for line in lines)

    (summary_dir,) = (store / "tiny-summary").iterdir()
    summary = json.loads((summary_dir / "summary.json").read_text())
    assert summary["exit_code"] == 0 and summary["runs_done"] == 2
    assert [r["name"] for r in summary["runs"]] == ["tiny-register-n3", "tiny-chat-n3"]
    for run in summary["runs"]:
        assert run["valid"] is True and run["exit_code"] == 0 and run["ops"] > 0
        assert run["availability"] > 0.5 and run["duration_s"] > 4
        assert (
            run["plan"]["workload"] in ("register", "chat") and Path(run["run_dir"], "results.json").exists()
        )
    assert (store / "latest").resolve().parent.name == "tiny-chat-n3"  # the summary leaves latest alone

    page = (summary_dir / "summary.html").read_text()
    hrefs = re.findall(r"href='([^']+)'", page)
    targets = [(summary_dir / unquote(h)).resolve() for h in hrefs if not h.startswith("data:")]
    assert sum(t.name == "timeline.html" for t in targets) == 2
    assert {t for t in targets if t.is_dir()} == {Path(r["run_dir"]).resolve() for r in summary["runs"]}
    assert all(t.exists() for t in targets)
    assert page.count("data-verdict='valid'") >= 3  # the header badge and both rows

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "0" and suite.get("errors") == "0"


def test_the_summary_page_shows_values_as_text(tmp_path: Path) -> None:
    """An error message and a matrix file name from the night are escaped, never markup."""
    script = "<script>alert(1)</script>"
    combos = expand(parse_matrix({"name": "esc", "matrix": {"nodes": [3, 5]}}))
    record = nightly._record(combos[0], {"error": script}, None, 3, 1.0)
    meta = {"name": "esc", "matrix_file": script, "started": "2026-12-02T00:00:00Z", "estimate_s": 30.0}
    nightly.write_summary(tmp_path, meta, combos, [record], complete=False)
    page = (tmp_path / "summary.html").read_text()
    assert "<script" not in page
    assert f"<code>{'&lt;script&gt;alert(1)&lt;/script&gt;'}</code>" in page  # the matrix file
    assert "title='&lt;script&gt;alert(1)&lt;/script&gt;'" in page  # the run's error
    assert "<meta http-equiv='refresh' content='30'>" in page  # still going: the page reloads
    assert page.count("data-verdict='pending'") == 3  # the night's badge, its tally and the run not run
    assert "<tr class='run' data-run='esc-n3' data-verdict='error'>" in page
    nightly.write_summary(tmp_path, meta, combos, [record], complete=True, exit_code=3)
    assert "http-equiv" not in (tmp_path / "summary.html").read_text()
