"""A pytest plugin: the ``harness_run`` fixture runs a verification from a test and gates on it.

Registered as the ``pytest11`` entry point ``harness``, so any project with the harness installed
can write ``assert harness_run(nodes=3, time_limit=5).valid is True``. When a run is not valid
the test report names its stored directory (a ``harness runs`` section and a user property, which
JUnit XML carries), because the history, logs and plots there are what explains the failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

RUNS_KEY = pytest.StashKey[list[Any]]()
PROPERTY = "harness_run_dir"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "raftchat verification harness")
    group.addoption(
        "--harness-store",
        metavar="DIR",
        default=None,
        help="keep runs made by the harness_run fixture in DIR (default: each test's tmp_path/store)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "harness: a test that makes verification runs with harness_run")


@pytest.fixture
def harness_store(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where ``harness_run`` stores runs: ``--harness-store`` (relative to where pytest was started)."""
    chosen = request.config.getoption("harness_store")
    if chosen:
        return Path(request.config.invocation_params.dir, chosen).resolve()
    return tmp_path / "store"


@pytest.fixture
def harness_run(request: pytest.FixtureRequest, harness_store: Path) -> Iterator[Callable[..., Any]]:
    """``run(plan=None, **overrides)``: one run via ``harness.runner.run_plan``; returns its outcome
    (``.valid``, ``.exit_code``, ``.run_dir``, ``.results``). The runner is imported on first use so
    this plugin loads, and other tests run, even when the runner cannot be imported."""
    runs: list[Any] = request.node.stash.setdefault(RUNS_KEY, [])

    def run(plan: Any = None, **overrides: Any) -> Any:
        from harness.runner import run_plan

        outcome = run_plan(plan, overrides, store_root=harness_store, progress=False)
        runs.append(outcome)
        if outcome.valid is not True or outcome.exit_code != 0:
            request.node.user_properties.append((PROPERTY, str(outcome.run_dir)))
        return outcome

    yield run


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Name the runs in the report: always when one was not valid, and for every run of a failed test."""
    report = yield
    runs = item.stash.get(RUNS_KEY, None)
    if runs and report.when == "call":
        bad = [r for r in runs if r.valid is not True or r.exit_code != 0]
        if bad or report.failed:
            report.sections.append(("harness runs", "\n".join(_describe(r) for r in runs)))
    return report


def _describe(outcome: Any) -> str:
    verdict = {True: "valid", False: "INVALID"}.get(outcome.valid, str(outcome.valid))
    line = f"{verdict} (exit {outcome.exit_code}): {outcome.run_dir}"
    error = (getattr(outcome, "results", None) or {}).get("error")
    return f"{line}\n    error: {error}" if error else line
