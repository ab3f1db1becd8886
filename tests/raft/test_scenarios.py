"""Raft scenarios as data (``scenarios/*.txt``): each file's commands are replayed on the
simulator and the trace they print must equal the file. After a deliberate protocol change,
``pytest tests/raft --rewrite-scenarios`` rewrites the files; review the diff of traces."""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from interaction import ScenarioError, run_file

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
FILES = sorted(SCENARIOS.glob("*.txt"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path: Path, request: pytest.FixtureRequest) -> None:
    expected = path.read_text()
    actual = run_file(path)
    if actual == expected:
        return
    if request.config.getoption("rewrite_scenarios"):
        path.write_text(actual)
        return
    diff = difflib.unified_diff(
        expected.splitlines(keepends=True), actual.splitlines(keepends=True), str(path), "now"
    )
    pytest.fail(
        f"{path.name}: the trace differs from the file. If the change is intended, rewrite it with "
        f"`pytest tests/raft --rewrite-scenarios` and review the diff.\n{''.join(diff)}",
        pytrace=False,
    )


def test_there_are_scenarios() -> None:
    assert len(FILES) >= 2, f"scenario files went missing from {SCENARIOS}"


def _scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.txt"
    path.write_text(text)
    return path


def test_a_new_command_gets_its_output_and_the_file_keeps_its_comments(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "# one node\nadd-nodes 1\n\ncampaign n1\n----\nstale\n\nlog\n")
    text = run_file(path)
    assert text.startswith("# one node\nadd-nodes 1\n----\nn1: role=follower term=0")
    assert "campaign n1\n----\n[" in text and "stale" not in text
    assert text.endswith("log\n----\nn1: 1@1 (commit=1)\n")
    assert run_file(_scenario(tmp_path, text)) == text, "a rendered file renders to itself"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("add-nodes 3\nexplode n1\n", r"s.txt:2: explode n1: unknown command 'explode'"),
        ("add-nodes 3\ncrash n9\n", r"s.txt:2: crash n9: no node 'n9'"),
        ("add-nodes 3 electoin=3\n", r"unknown setting 'electoin'"),
        ("tick\n", r"no cluster yet"),
        ("add-nodes 3\ndeliver to=n2 color=red\n", r"s.txt:2: deliver to=n2 color=red: filters are"),
        ("add-nodes 3\nheal extra\n", r"heal: unexpected arguments extra"),
    ],
)
def test_a_malformed_scenario_names_the_line(tmp_path: Path, text: str, error: str) -> None:
    path = _scenario(tmp_path, text)
    with pytest.raises(ScenarioError, match=error):
        run_file(path)


def test_a_failed_assert_fails_whatever_the_mode(tmp_path: Path) -> None:
    """No rewrite can bless it: run_file raises instead of rendering."""
    path = _scenario(tmp_path, "add-nodes 3\ncampaign n1\nstabilize\nassert n1 role=leader term>=2\n")
    with pytest.raises(ScenarioError, match=r"s.txt:4: .*assertion failed: n1 term is 1, wanted >=2"):
        run_file(path)


def test_a_violation_fails_unless_announced_and_an_announced_one_must_happen(tmp_path: Path) -> None:
    """The same figure 8 schedule is safe with the correct core; the bug breaks it."""
    figure8 = (SCENARIOS / "figure8-commit-previous-term-bug.txt").read_text()
    unannounced = figure8.replace('expect-violation "leader completeness"', "status n1")
    with pytest.raises(ScenarioError, match="safety violated: InvariantViolation: leader completeness"):
        run_file(_scenario(tmp_path, unannounced))
    without_bug = figure8.replace("bugs=commit-previous-term", "")
    with pytest.raises(ScenarioError, match="assertion failed: n1 commit is 1, wanted =2"):
        run_file(_scenario(tmp_path, without_bug))
    without_asserts = re.sub(r"^assert .*$", "status", without_bug, flags=re.MULTILINE)
    with pytest.raises(ScenarioError, match="announced here never happened"):
        run_file(_scenario(tmp_path, without_asserts))


def test_traces_do_not_depend_on_hash_seeds() -> None:
    """String hashing differs between processes; the traces must not."""
    here = Path(__file__).resolve().parent
    path = SCENARIOS / "figure8.txt"
    outputs = {
        subprocess.run(
            [sys.executable, str(here / "interaction.py"), str(path)],
            env={**os.environ, "PYTHONPATH": str(here.parent), "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {path.read_text()}
