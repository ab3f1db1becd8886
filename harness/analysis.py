"""After a run: check the stored history and write what a person looks at.

Also used to re-check a stored run: everything here reads only the run's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from checker import check
from checker.fit import explain
from checker.html import write_html
from checker.models import MODELS, get_model
from harness import store
from histories import HistoryError, read_history


def run_title(results: dict[str, Any], default: str) -> str:
    """The timeline's title: "nightly-3 on etcd 3.4.23 (reads=serializable)", or "etcd 3.4.23"
    when the test is named after its system; just the name for a run stored before systems."""
    test, system = results.get("test", default), results.get("system")
    if not system:
        return test
    options = ", ".join(f"{k}={v}" for k, v in (results.get("system_options") or {}).items())
    version = f" {results['system_version']}" if results.get("system_version") else ""
    where = f"{system}{version}" + (f" ({options})" if options else "")
    return where if test == system else f"{test} on {where}"


def analyse(
    run_dir: Path,
    model_name: str,
    timeout: float,
    results: dict[str, Any],
    progress: Any,
    node_checks: dict[str, dict[str, Any]] | None = None,
    max_memory_mib: int | None = None,
) -> Any:
    """Check history.jsonl, write timeline.html, plots and statistics into ``results``.
    ``max_memory_mib``: what the search may take (None: the checker's default).

    ``node_checks`` (convergence, health, recovery) are drawn on the timeline beside the faults.
    Returns the linearizability verdict (True, False, "unknown") or None when the history is
    unreadable; composing it with the node checks is :mod:`harness.verdicts`' job.
    """
    from harness import leaders, plots, stats

    samples = stats.read_samples(run_dir / store.NODES_JSONL)
    results["node_stats"] = stats.nodes(samples)
    path = run_dir / store.HISTORY
    try:
        history = read_history(path, "jsonl", allow_truncated_tail=True)
    except HistoryError as exc:
        results["checker"] = None
        results["stats"] = {}
        results["error"] = results.get("error") or f"history unreadable: {exc}"
        return None
    ops = history.ops
    for warning in history.warnings:  # a crashed writer's partial last line, skipped
        progress.line(f"note: {warning}")
    if history.warnings:
        results["history_warnings"] = list(history.warnings)
    results["stats"] = stats.compute(ops)
    events = node_events(node_checks or {})
    try:
        plots.write_plots(run_dir, ops, results.get("phases"), samples, events)
    except Exception as exc:  # a plot is a convenience: never lose the verdict over it
        progress.line(f"plots not written: {exc}")
    model = get_model(model_name)
    misfit = explain(ops, model_name, MODELS)
    if misfit:  # a workload whose records its own model cannot read: an error, not a verdict
        results["checker"] = None
        results["error"] = results.get("error") or misfit.message()
        return None
    progress.line(f"checking {len(ops)} records with the {model_name} model ...")
    max_memory = None if max_memory_mib is None else max_memory_mib << 20
    result = check(ops, model, timeout=timeout, max_memory=max_memory)
    results["linearizable"] = result.valid
    results["checker"] = result.to_json()
    results["leader_changes"] = len(leaders.leader_changes(samples))
    context = leaders.anomaly_context(results["checker"].get("failure"), samples)
    if context is not None:
        results["anomaly_context"] = context
    write_html(
        run_dir / store.TIMELINE,
        result,
        model,
        title=run_title(results, run_dir.name),
        faults=(results["stats"].get("nemesis") or []) + events,
        links=_links(run_dir),
    )
    return result.valid


def _links(run_dir: Path) -> list[tuple[str, str]]:
    """The run's other files, for the timeline's header: those there now, and results.json,
    which is written right after the page."""

    found = [
        (label, name)
        for label, name in (
            ("latency plot", store.LATENCY_PNG),
            ("throughput plot", store.THROUGHPUT_PNG),
            ("plan", store.PLAN),
            ("history", store.HISTORY),
        )
        if (run_dir / name).exists()
    ]
    found.append(("results", store.RESULTS))
    if (run_dir / store.LOGS).is_dir():
        found.append(("node logs", f"{store.LOGS}/"))
    return found


def node_events(checks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """What the node checks found, as timeline intervals: which node, what, when, for how long."""
    events: list[dict[str, Any]] = []
    health = checks.get("health") or {}
    for exit_ in health.get("unexpected_exits") or []:
        stop = exit_["t"] + exit_["down_s"]
        events.append(
            {
                "fault": f"{exit_['node']} exited by itself (status {exit_['returncode']})",
                "start": exit_["t"],
                "stop": stop,
                "value": exit_,
            }
        )
    for error in health.get("log_errors") or []:
        if error.get("t") is not None:
            events.append({"fault": f"{error['node']} logged an internal error", "start": error["t"],
                           "stop": error["t"], "value": error})  # fmt: skip
    for split in health.get("two_leaders") or []:
        if split.get("t") is not None:
            events.append({"fault": f"two leaders in term {split['term']}", "start": split["t"],
                           "stop": split["t"], "value": split})  # fmt: skip
    for divergence in (checks.get("convergence") or {}).get("divergences") or []:
        events.append({"fault": f"divergence: {' vs '.join(divergence['nodes'])}", "start": divergence["t"],
                       "stop": divergence["t"], "value": divergence})  # fmt: skip
    return events
