"""`harness run`: parse the options, run the plan, print a one-screen summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness import leaders, verdicts
from harness import plan as plans
from harness.runner import RunOutcome, run_plan
from harness.verdicts import EXIT_ERROR
from systems import SYSTEMS, SystemUnavailable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", nargs="?", help="a plan in YAML (default: the built-in plan)")
    parser.add_argument("--name", help="test name (the folder in the store; default: the system's name)")
    parser.add_argument("--system", help=f"the system under test: {', '.join(SYSTEMS)} (default: raftchat)")
    parser.add_argument(
        "--system-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a system option, e.g. reads=serializable (repeatable; the value is read as YAML)",
    )
    parser.add_argument("--nodes", type=int)
    parser.add_argument("--concurrency", type=int, help="client workers")
    parser.add_argument("--time-limit", type=float, help="seconds of load")
    parser.add_argument("--rate", type=float, help="operations per second over all workers (0: no limit)")
    parser.add_argument("--workload", help="chat, register or kv")
    parser.add_argument("--nemesis", help="comma-separated faults, or 'none'")
    parser.add_argument("--nemesis-interval", type=float, help="seconds between starting and stopping faults")
    parser.add_argument("--net", choices=["auto", "netns", "proxy"], help="how partitions are made")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--no-restart-check",
        action="store_true",
        help="skip killing and restarting every node at the end (the restart check)",
    )
    parser.add_argument("--bug", help="start every node with this deliberate bug")
    parser.add_argument("--hosts", metavar="FILE", help="run one node on each SSH host of this YAML file")
    parser.add_argument("--store", default="store", help="where runs are kept (default: ./store)")
    parser.add_argument("--junit", metavar="OUT.xml", help="also write a JUnit report")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def system_options(pairs: list[str]) -> dict[str, Any] | None:
    """``KEY=VALUE`` strings as a mapping; values are YAML scalars, so ``3`` is a number."""
    import yaml

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise plans.PlanError(f"--system-option {pair!r}: expected KEY=VALUE")
        try:
            options[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            options[key.strip()] = value
    return options or None


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    nemesis = args.nemesis
    if nemesis is not None:
        nemesis = [] if nemesis.strip().lower() in ("", "none") else nemesis
    return {
        "name": args.name,
        "system": getattr(args, "system", None),
        "system_options": system_options(getattr(args, "system_option", None) or []),
        "nodes": args.nodes,
        "concurrency": args.concurrency,
        "time_limit": args.time_limit,
        "rate": args.rate,
        "workload": args.workload,
        "nemesis": nemesis,
        "nemesis_interval": args.nemesis_interval,
        "restart_check": False if getattr(args, "no_restart_check", False) else None,
        "net": args.net,
        "seed": args.seed,
        "bug": args.bug,
        "hosts": getattr(args, "hosts", None),
    }


def run(args: argparse.Namespace) -> int:
    try:
        outcome = run_plan(args.plan, overrides_from(args), Path(args.store), progress=not args.quiet)
    except (plans.PlanError, SystemUnavailable) as exc:
        print(f"harness run: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(summary(outcome))
    if args.junit:
        from harness.junit import write_junit

        write_junit(Path(args.junit), [{**outcome.results, "run_dir": str(outcome.run_dir)}])
    return outcome.exit_code


def summary(outcome: RunOutcome) -> str:
    r = outcome.results
    verdict = {True: "VALID (linearizable, nodes healthy and converged)", "unknown": "UNKNOWN"}.get(
        outcome.valid, "FAILED (the run never started)" if r.get("setup_failed") else "ERROR (not checked)"
    )
    if outcome.valid is False:
        verdict = f"INVALID ({verdicts.describe(outcome.exit_code)})"
    stats = r.get("stats") or {}
    totals = stats.get("totals", {})
    lines = [
        "",
        f"verdict: {verdict}",
        f"system: {r.get('system', 'raftchat')} {r.get('system_version') or ''}".rstrip()
        + "".join(f"  {k}={v}" for k, v in (r.get("system_options") or {}).items()),
        f"test: {r.get('test')}  workload: {r.get('workload')}  nodes: {r.get('nodes')}  "
        f"nemesis: {', '.join(r.get('nemesis') or []) or 'none'}  bug: {r.get('bug') or 'none'}  "
        f"seed: {r.get('seed')}",
    ]
    if not r.get("setup_failed"):
        lines.append(
            f"operations: {stats.get('client_ops', 0)}: "
            + ", ".join(f"{totals.get(k, 0)} {k}" for k in ("ok", "fail", "info", "open"))
        )
    if "availability" in stats:
        lines.append(f"availability: {stats['availability']:.1%} of operations succeeded")
    checker = r.get("checker") or {}
    failure = checker.get("failure")
    if failure:
        lines.append(f"anomaly in group {failure['partition']}: {len(failure.get('minimal') or [])} ops")
        for stuck in failure.get("stuck", [])[:3]:
            lines.append(
                f"  {stuck['description']}: observed {stuck['observed']}, expected {stuck['expected']}"
            )
        if context := leaders.describe(r.get("anomaly_context")):
            lines.append(f"  {context}")
    if checker.get("reason"):
        lines.append(f"checker: {checker['reason']}")
    lines += node_lines(r)
    if r.get("remote"):  # SSH hosts (remote/)
        remote = r["remote"]
        left = "nothing left on them" if remote.get("clean") else "the error says what is left"
        lines.append(
            f"hosts: {', '.join(remote['hosts'])}; set up in {remote.get('setup_s')} s, "
            f"torn down in {remote.get('teardown_s')} s; {left}"
        )
    if r.get("error"):
        lines.append(f"error: {r['error']}")
    kept = stored_files(outcome.run_dir)
    lines.append(f"stored in: {outcome.run_dir}" + (f"  ({', '.join(kept)})" if kept else ""))
    if r.get("setup_failed"):
        lines.append("not made latest: the store's latest still points at the last run that started")
    return "\n".join(lines)


def stored_files(run_dir: Path) -> list[str]:
    """The files a person opens first, of those the run actually wrote."""
    from harness import store

    names = [store.TIMELINE, store.LATENCY_PNG, store.THROUGHPUT_PNG, store.NODES_PNG]
    found = [name for name in names if (run_dir / name).is_file()]
    logs = run_dir / store.LOGS
    if logs.is_dir() and any(logs.iterdir()):
        found.append(f"{store.LOGS}/")
    return found


def node_lines(r: dict[str, Any]) -> list[str]:
    """What the node checks found (which node, what, when, for how long), and the nodes' figures."""
    lines = []
    checks = r.get("checks") or {}
    convergence, health, recovery = (r.get(k) or {} for k in ("convergence", "health", "recovery"))
    for d in convergence.get("divergences", [])[:3]:
        lines.append(f"DIVERGED at {d['t']:.1f} s: {d['what']}")
    if convergence.get("count", 0) > 3:
        lines.append(f"  ... {convergence['count']} divergences in all")
    for e in health.get("unexpected_exits", []):
        lines.append(
            f"NODE FAILED: {e['node']} (pid {e['pid']}) exited by itself with status {e['returncode']} "
            f"at {e['t']:.1f} s; down {e['down_s']:.1f} s"
        )
    for e in health.get("log_errors", [])[:3]:
        when = f" at {e['t']:.1f} s" if e.get("t") is not None else ""
        lines.append(f"NODE FAILED: {e['node']} logged{when} (line {e['line']}): {e['text'][:120]}")
    for split in health.get("two_leaders", []):
        lines.append(f"NODE FAILED: two leaders in term {split['term']}: {', '.join(split['leaders'])}")
    restart = recovery.get("restart") or {}
    if checks.get("recovery") is False and restart.get("valid") is False:
        lines.append(f"NOT RECOVERED from a restart of every node: {restart.get('note')}")
    elif checks.get("recovery") is False:
        behind = "; ".join(f"{b['node']} {b['what']}" for b in recovery.get("behind", []))
        lines.append(
            f"NOT RECOVERED within {recovery.get('waited_s', 0):.1f} s after the final reads: {behind}"
        )
    elif recovery.get("converged"):
        lines.append(
            f"recovered: every node at applied index {recovery.get('applied')} with one state "
            f"digest after {recovery.get('waited_s', 0):.1f} s"
        )
        if restart.get("valid"):
            lines.append(
                f"restarted: every node killed and started again came back to the same state "
                f"(applied index {restart.get('applied_after')}) after {restart.get('waited_s', 0):.1f} s"
            )
    nodes = r.get("node_stats") or {}
    if nodes:
        parts = []
        for node, info in nodes.items():
            peak = (info.get("rss_mib") or {}).get("peak")
            snaps = info.get("snapshots") or {}
            taken = (
                f" snapshots {snaps.get('taken', 0)}/{snaps.get('installed', 0)}" if node != "harness" else ""
            )
            parts.append(f"{node} {'?' if peak is None else peak} MiB{taken}")  # ?: not sampled (SSH host)
        lines.append("peak memory (and snapshots taken/installed): " + ", ".join(parts))
    return lines
