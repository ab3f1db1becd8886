"""Node health from the node logs, in the manner of Jepsen's log-pattern checkers.

A node that logs an internal error (a Python traceback, a failed assertion or invariant, a
fatal error or panic) has a bug even when its clients saw nothing wrong. The logs also say
who became leader in which term, and whom every follower took for the leader: two leaders
of one term, by anyone's account, break Raft's election safety.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

ERROR_PATTERNS = re.compile(
    r"Traceback \(most recent call last\)|AssertionError|\binvariant\b|\bfatal\b|\bpanic\b|\bCRITICAL\b",
    re.IGNORECASE,
)
# logging's default asctime, which raftchat node logs start with (local time).
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")
# "n1: term 5, follower, leader n3": each node logs the leader it knows of in each term.
_LEADER = re.compile(r"(\S+): term (\d+), [a-z-]+, leader (\S+)")
MAX_LISTED = 10  # log lines quoted per node; the count says if there were more


def log_time(line: str, wall_origin: float | None) -> float | None:
    """Seconds since the start of the history for a log line's timestamp, if it has one."""
    match = _STAMP.match(line)
    if match is None or wall_origin is None:
        return None
    wall = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + int(match.group(2)) / 1000
    return round(wall - wall_origin, 3)


def scan_logs(logs_dir: Path, wall_origin: float | None) -> dict[str, Any]:
    """Internal errors and leaders per term, from every ``<node>.log`` in ``logs_dir``."""
    errors: list[dict[str, Any]] = []
    error_count = 0
    leaders: dict[int, dict[str, float | None]] = {}
    last_time: float | None = None
    for path in sorted(Path(logs_dir).glob("*.log")):
        node = path.stem
        listed = 0
        with path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                stamp = log_time(line, wall_origin)
                last_time = stamp if stamp is not None else last_time
                if ERROR_PATTERNS.search(line):
                    error_count += 1
                    if listed < MAX_LISTED:
                        listed += 1
                        errors.append(
                            {"node": node, "line": number, "t": last_time, "text": line.strip()[:300]}
                        )
                leader = _LEADER.search(line)
                if leader and leader.group(3) != "None":
                    leaders.setdefault(int(leader.group(2)), {}).setdefault(leader.group(3), stamp)
    split = [
        {
            "term": term,
            "leaders": sorted(nodes),
            "t": min((t for t in nodes.values() if t is not None), default=None),
        }
        for term, nodes in sorted(leaders.items())
        if len(nodes) > 1
    ]
    return {
        "log_errors": errors,
        "log_error_count": error_count,
        "two_leaders": split,
        "terms_led": len(leaders),
    }


def health_check(exits: list[dict[str, Any]], logs_dir: Path, wall_origin: float | None) -> dict[str, Any]:
    """The node-health verdict: no unexpected exit, no internal error logged, one leader per term."""
    found = scan_logs(logs_dir, wall_origin)
    return {
        "valid": not exits and not found["log_error_count"] and not found["two_leaders"],
        "unexpected_exits": exits,
        **found,
    }
