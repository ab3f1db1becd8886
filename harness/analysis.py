"""After a run: check the stored history and write what a person looks at.

Also used to re-check a stored run: everything here reads only the run's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from checker import check
from checker.html import write_html
from checker.models import get_model
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


def analyse(run_dir: Path, model_name: str, timeout: float, results: dict[str, Any], progress: Any) -> Any:
    """Check history.jsonl, write timeline.html, plots and statistics into ``results``.

    Returns the verdict (True, False, "unknown") or None when the history is unreadable.
    """
    from harness import plots, stats

    path = run_dir / "history.jsonl"
    try:
        history = read_history(path, "jsonl", allow_truncated_tail=True)
    except HistoryError as exc:
        results["checker"] = None
        results["stats"] = {}
        results["error"] = results.get("error") or f"history unreadable: {exc}"
        return None
    ops = history.ops
    results["stats"] = stats.compute(ops)
    try:
        plots.write_plots(run_dir, ops)
    except Exception as exc:  # a plot is a convenience: never lose the verdict over it
        progress.line(f"plots not written: {exc}")
    model = get_model(model_name)
    progress.line(f"checking {len(ops)} records with the {model_name} model ...")
    result = check(ops, model, timeout=timeout)
    results["valid"] = result.valid
    results["checker"] = result.to_json()
    write_html(
        run_dir / "timeline.html",
        result,
        model,
        title=run_title(results, run_dir.name),
        faults=results["stats"].get("nemesis") or [],
    )
    return result.valid
