"""JUnit XML for CI: one testcase per run, so Jenkins and GitLab show verdicts like test results.

An invalid history is a test *failure* (the service is wrong); an unknown verdict or a harness
error is a test *error* (nothing was proved either way) — the distinction CI systems already make.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import verdicts

SUITE = "harness"
MAX_STUCK = 8  # stuck ops listed in a failure before "... and N more"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")  # XML 1.0 forbids these


def write_junit(path: str | Path, results: list[dict[str, Any]]) -> None:
    """Write a JUnit report of runs: each entry is a ``results.json`` dict, optionally with a
    ``"run_dir"`` key (str) that the report then names so a person can find the evidence."""
    suite = ET.Element("testsuite", name=SUITE)
    failures = errors = 0
    total_time = 0.0
    for result in results:
        case, kind = _testcase(result)
        suite.append(case)
        failures += kind == "failure"
        errors += kind == "error"
        total_time += _seconds(result.get("duration_s"))
    suite.set("tests", str(len(results)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", "0")
    suite.set("time", f"{total_time:.3f}")
    suite.set("timestamp", _timestamp(results))
    root = ET.Element("testsuites", name=SUITE, tests=str(len(results)), failures=str(failures))
    root.set("errors", str(errors))
    root.set("time", f"{total_time:.3f}")
    root.append(suite)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


NODE_FAILURES = {  # failures the node checks found (see harness.verdicts)
    verdicts.EXIT_DIVERGED: "ReplicasDiverged",
    verdicts.EXIT_NODE_FAILED: "NodeFailed",
    verdicts.EXIT_NOT_RECOVERED: "NotRecovered",
}


def outcome(result: dict[str, Any]) -> str:
    """ "passed", "failure" (not linearizable, or a node check failed) or "error" (unknown, harness
    error, missing verdict)."""
    valid, code = result.get("valid"), result.get("exit_code")
    if valid is False or (code == 1 and valid is not True):
        return "failure"
    if valid is True and code in (0, None):
        return "passed"
    return "error"


def _testcase(result: dict[str, Any]) -> tuple[ET.Element, str]:
    workload = str(result.get("workload") or "unknown")
    case = ET.Element(
        "testcase",
        name=_clean(str(result.get("test") or "unnamed")),
        classname=_clean(f"harness.{workload}"),
        time=f"{_seconds(result.get('duration_s')):.3f}",
    )
    kind = outcome(result)
    where = f"run directory: {result['run_dir']}" if result.get("run_dir") else ""
    node_failure = NODE_FAILURES.get(result.get("exit_code"))
    if kind == "failure" and node_failure is not None:
        from harness.run_cmd import node_lines

        element = ET.SubElement(
            case, "failure", type=node_failure, message=verdicts.describe(result["exit_code"])
        )
        element.text = _clean("\n".join(filter(None, [*node_lines(result), where])))
    elif kind == "failure":
        element = ET.SubElement(
            case, "failure", type="NotLinearizable", message=_clean(_failure_message(result))
        )
        element.text = _clean("\n".join(filter(None, [_failure_details(result), where])))
    elif kind == "error":
        element = ET.SubElement(
            case, "error", type=_error_type(result), message=_clean(_error_message(result))
        )
        element.text = _clean("\n".join(filter(None, [_error_message(result), where])))
    out = ET.SubElement(case, "system-out")
    out.text = _clean("\n".join(filter(None, [_summary(result), where])))
    return case, kind


def _failure_message(result: dict[str, Any]) -> str:
    checker = result.get("checker") or {}
    failure = checker.get("failure") or {}
    stuck = failure.get("minimal_stuck") or failure.get("stuck") or []
    model = checker.get("model", "the model")
    return f"history is not linearizable ({model}): {len(stuck)} operation(s) could not be linearized next"


def _failure_details(result: dict[str, Any]) -> str:
    """The checker's stuck ops (of the shrunk history when there is one): what to look at first."""
    checker = result.get("checker") or {}
    failure = checker.get("failure")
    if not failure:
        return "the checker reported no details"
    minimal = bool(failure.get("minimal_stuck"))
    stuck = failure.get("minimal_stuck") or failure.get("stuck") or []
    lines = [
        f"partition {failure.get('partition')} ({failure.get('partition_ops')} ops); "
        f"longest linearizable prefix {len(failure.get('longest_prefix') or [])} ops; "
        f"state there: {failure.get('state')}",
        f"stuck operations{' (minimal history)' if minimal else ''}:",
    ]
    for item in stuck[:MAX_STUCK]:
        lines.append(
            f"  op {item.get('op')}: {item.get('description')} — "
            f"expected {item.get('expected')}, observed {item.get('observed')}"
        )
    if len(stuck) > MAX_STUCK:
        lines.append(f"  ... and {len(stuck) - MAX_STUCK} more")
    return "\n".join(lines)


def _error_type(result: dict[str, Any]) -> str:
    return "Unknown" if result.get("valid") == "unknown" and result.get("exit_code") != 3 else "HarnessError"


def _error_message(result: dict[str, Any]) -> str:
    checker = result.get("checker") or {}
    if result.get("error"):
        return f"harness error: {result['error']}"
    if result.get("valid") == "unknown":
        return f"verdict unknown: {checker.get('reason') or 'the checker could not decide'}"
    return f"no verdict (valid={result.get('valid')!r}, exit code {result.get('exit_code')!r})"


def _summary(result: dict[str, Any]) -> str:
    stats = result.get("stats") or {}
    parts = [
        f"valid={result.get('valid')!r} exit_code={result.get('exit_code')!r}",
        f"workload={result.get('workload')} nodes={result.get('nodes')} "
        f"concurrency={result.get('concurrency')} nemesis={','.join(result.get('nemesis') or []) or 'none'}",
    ]
    if result.get("bug"):
        parts.append(f"bug={result['bug']}")
    if stats:
        availability = stats.get("availability")
        shown = "n/a" if availability is None else f"{availability:.1%}"
        parts.append(f"ops={stats.get('client_ops')} availability={shown}")
    return "\n".join(parts)


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _timestamp(results: list[dict[str, Any]]) -> str:
    started = sorted(r["started"] for r in results if isinstance(r.get("started"), str))
    if started:
        try:
            return datetime.fromisoformat(started[0].replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:%M:%S")
        except ValueError:
            pass
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _clean(text: str) -> str:
    """ElementTree writes control characters as-is, which no XML parser accepts: drop them."""
    return _NOT_XML.sub("\ufffd", text)
