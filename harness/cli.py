"""The ``harness`` command: one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import NoReturn

from harness import check, nightly, run_cmd

EXIT_USAGE = check.EXIT_BAD_INPUT  # a usage error is bad input too: 2 already means "unknown"


class ArgumentParser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error, which here would read as an "unknown" verdict."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="harness", description="Jepsen-style verification of raftchat.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_module(
        commands,
        check,
        "check",
        "check a history for linearizability",
        "Check a history for linearizability. Exit code: 0 linearizable, "
        "1 not linearizable, 2 unknown (time limit), 3 bad input or usage.",
    )
    _add_module(
        commands,
        run_cmd,
        "run",
        "run a verification of raftchat",
        "Start a cluster, drive concurrent clients (and faults), record the history, "
        "check it and the nodes, and store the results. Exit code: 0 valid, 1 not linearizable, "
        "2 unknown, 3 error, 4 replicas diverged, 5 a node failed by itself, 6 a node did not recover.",
    )
    _add_cleanup(commands)
    _add_selftest(commands)
    _add_serve(commands)
    _add_module(
        commands,
        nightly,
        "nightly",
        "run a matrix of plans and summarize them",
        "Run every combination of a matrix of plans, one after another, and write a summary "
        "(summary.json, summary.html) into the store. Exit code: 0 all valid, else the worst: 1 any "
        "not linearizable, 4 diverged, 5 node failed, 6 not recovered, 3 any error or bad matrix, "
        "2 any unknown.",
    )
    return parser


def _add_module(
    commands: argparse._SubParsersAction, module: ModuleType, name: str, help: str, description: str
) -> None:
    """A subcommand whose module brings its own ``add_arguments`` and ``run``."""
    parser = commands.add_parser(name, help=help, description=description)
    module.add_arguments(parser)
    parser.set_defaults(run=module.run)


def _add_serve(commands: argparse._SubParsersAction) -> None:
    serving = commands.add_parser(
        "serve",
        help="browse stored runs in a web browser",
        description="Serve the run store over HTTP: every run with its verdict, plots, timeline and files.",
    )
    serving.add_argument("--store", default="store", metavar="DIR", help="the run store (default: store)")
    serving.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free port)")
    serving.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serving.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.serve import serve

    try:
        serve(Path(args.store), args.host, args.port)
    except OSError as exc:  # the port is taken, or the address is not ours
        print(f"harness serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _add_selftest(commands: argparse._SubParsersAction) -> None:
    from harness.selftest import BUG_PLANS

    selftest = commands.add_parser(
        "selftest",
        help="measure how often the harness catches deliberate bugs in raftchat",
        description="For each bug, run its matching plan N times with the bug and N times without "
        "it; print detection rates, the time of the first anomaly and false alarms. Exit code 1 "
        "when a correct run was judged not linearizable or a bug was detected in fewer runs than "
        "--min-detections.",
    )
    selftest.add_argument("--runs", type=int, default=5, help="runs per bug, and as many correct runs")
    selftest.add_argument("--time-limit", type=float, default=60.0, help="seconds of load per run")
    selftest.add_argument(
        "--bugs",
        default=",".join(BUG_PLANS),
        help=f"comma-separated (default: all of {', '.join(BUG_PLANS)})",
    )
    selftest.add_argument(
        "--min-detections",
        type=int,
        default=None,
        metavar="N",
        help="fail when a bug is detected in fewer than N runs (default: 1 for every bug but "
        "those the README records as hidden in real runs)",
    )
    selftest.add_argument(
        "--nemesis",
        default=None,
        metavar="FAULTS",
        help="comma-separated faults for every bug instead of its own ('' for none)",
    )
    selftest.add_argument("--store", default="store")
    selftest.add_argument("--seed", type=int, default=1, help="seed of the first run; run i uses seed+i")
    selftest.add_argument("--out", default="selftest.json", help="where to write the JSON report")
    selftest.add_argument(
        "--system",
        default="raftchat",
        help="raftchat (its deliberate bugs; default), or etcd, zookeeper, redis: the configurations "
        "that must stay valid or show the system's documented weakness",
    )
    selftest.add_argument(
        "--configs", default="", help="with --system: only these configurations, by number (e.g. 2,3)"
    )
    selftest.set_defaults(run=_selftest)


def _selftest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness import plan as plans
    from harness.selftest import BUG_PLANS, run_selftest, table, undetected, write_json

    if args.system != "raftchat":
        return _system_selftest(args)
    bugs = [b.strip() for b in args.bugs.split(",") if b.strip()]
    unknown = [b for b in bugs if b not in BUG_PLANS]
    problem = None
    if unknown or not bugs:
        problem = f"unknown bug(s) {', '.join(unknown)}" if unknown else "--bugs names no bug"
    elif args.runs < 1 or args.time_limit <= 0:
        problem = "--runs and --time-limit must be positive"
    elif args.min_detections is not None and not 0 <= args.min_detections <= args.runs:
        problem = f"--min-detections must be between 0 and --runs ({args.runs})"
    if problem:
        print(f"harness selftest: {problem} (bugs: {', '.join(BUG_PLANS)})", file=sys.stderr)
        return EXIT_USAGE
    overrides = {}
    if args.nemesis is not None:
        overrides["nemesis"] = [f.strip() for f in args.nemesis.split(",") if f.strip()]
        try:
            plans.load(None, overrides)
        except plans.PlanError as exc:
            print(f"harness selftest: --nemesis: {exc}", file=sys.stderr)
            return EXIT_USAGE
    reports = run_selftest(
        bugs, args.runs, args.time_limit, Path(args.store), seed=args.seed, overrides=overrides
    )
    print(table(reports, args.runs))
    write_json(Path(args.out), reports, args.runs, args.time_limit)
    print(f"details: {args.out}; every run is kept under {args.store}/selftest-*")
    missed = undetected(reports, args.min_detections)
    alarms = [r.bug for r in reports if r.false_alarms]
    if missed:
        print(f"undetected: {', '.join(missed)}")
    if alarms:
        print(f"false alarms next to: {', '.join(alarms)}")
    return 1 if missed or alarms else 0


def _system_selftest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.system_selftest import CONFIGS, run_system_selftest, table, write_json
    from systems import SystemUnavailable, make_system

    if args.system not in CONFIGS or args.runs < 1 or args.time_limit <= 0:
        problem = (
            f"no self-test for system {args.system!r}"
            if args.system not in CONFIGS
            else "--runs and --time-limit must be positive"
        )
        print(f"harness selftest: {problem} (systems: raftchat, {', '.join(CONFIGS)})", file=sys.stderr)
        return EXIT_USAGE
    try:
        make_system(args.system).check_installed()
    except SystemUnavailable as exc:
        print(f"harness selftest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        only = [int(n) for n in args.configs.split(",") if n.strip()]
    except ValueError:
        print(f"harness selftest: --configs takes numbers, got {args.configs!r}", file=sys.stderr)
        return EXIT_USAGE
    store = Path(args.store)
    reports = run_system_selftest(args.system, args.runs, args.time_limit, store, seed=args.seed, only=only)
    print(table(reports))
    write_json(Path(args.out), reports, args.runs, args.time_limit)
    print(f"details: {args.out}; every run is kept under {args.store}/selftest-{args.system}-*")
    return 1 if any(r.met == "no" for r in reports) else 0


def _add_cleanup(commands: argparse._SubParsersAction) -> None:
    cleaning = commands.add_parser(
        "cleanup",
        help="remove what a crashed run left behind",
        description="Remove network namespaces, links, proxy processes and state files that a run "
        "which died without its teardown left behind (found by their per-run tag).",
    )
    cleaning.add_argument("--tag", help="only this run's leftovers (default: every finished run's)")
    cleaning.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    cleaning.add_argument(
        "--hosts",
        metavar="FILE",
        help="on these SSH hosts instead: what killed runs left (processes, rules, files)",
    )
    cleaning.set_defaults(run=_cleanup)


def _cleanup_hosts(args: argparse.Namespace) -> int:
    """``--hosts FILE``: every host's records of runs whose harness is gone, undone over SSH."""
    from remote.hosts import HostsError, load_hosts_file
    from remote.session import cleanup_hosts

    try:
        hosts = load_hosts_file(args.hosts)
    except HostsError as exc:
        print(f"harness cleanup: {exc}", file=sys.stderr)
        return EXIT_USAGE
    removed, failed = cleanup_hosts(hosts, args.tag, args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for item in removed:
        print(f"{verb} {item}")
    for error in failed:
        print(f"harness cleanup: {error}", file=sys.stderr)
    if not removed and not failed:
        print("nothing left behind on the hosts")
    return EXIT_USAGE if failed else 0


def _cleanup(args: argparse.Namespace) -> int:
    from nemesis import cleanup

    if args.hosts:
        return _cleanup_hosts(args)

    removed = cleanup.find_leftovers(args.tag) if args.dry_run else cleanup.cleanup(args.tag)
    verb = "would remove" if args.dry_run else "removed"
    for item in removed:
        print(f"{verb} {item}")
    if not removed:
        print("nothing left behind")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
