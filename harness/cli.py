"""The ``harness`` command: one subcommand per job (check now; running tests later)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from harness import check

EXIT_USAGE = check.EXIT_BAD_INPUT  # a usage error is bad input too: 2 already means "unknown"


class ArgumentParser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error, which here would read as an "unknown" verdict."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="harness", description="Jepsen-style verification of raftchat.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    checking = commands.add_parser(
        "check",
        help="check a history for linearizability",
        description="Check a history for linearizability. Exit code: 0 linearizable, "
        "1 not linearizable, 2 unknown (time limit), 3 bad input or usage.",
    )
    check.add_arguments(checking)
    checking.set_defaults(run=check.run)
    _add_run(commands)
    _add_cleanup(commands)
    _add_serve(commands)
    return parser


def _add_run(commands: argparse._SubParsersAction) -> None:
    from harness import run_cmd

    running = commands.add_parser(
        "run",
        help="run a verification of raftchat",
        description="Start a cluster, drive concurrent clients (and faults), record the history, "
        "check it and store the results. Exit code: 0 valid, 1 invalid, 2 unknown, 3 error.",
    )
    run_cmd.add_arguments(running)
    running.set_defaults(run=run_cmd.run)


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


def _add_cleanup(commands: argparse._SubParsersAction) -> None:
    cleaning = commands.add_parser(
        "cleanup",
        help="remove what a crashed run left behind",
        description="Remove network namespaces, links, proxy processes and state files that a run "
        "which died without its teardown left behind (found by their per-run tag).",
    )
    cleaning.add_argument("--tag", help="only this run's leftovers (default: every finished run's)")
    cleaning.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    cleaning.set_defaults(run=_cleanup)


def _cleanup(args: argparse.Namespace) -> int:
    from nemesis import cleanup

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
