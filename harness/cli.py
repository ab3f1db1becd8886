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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
