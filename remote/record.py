"""The record each host keeps of what a run added there, and the script that undoes it.

A run lives in one directory per host, ``<dir>/<tag>/``, and its first file is
``record.jsonl``: a line naming the owner (control machine, pid, start time), then one line
per thing added outside that directory (an iptables chain, a qdisc on a device), appended by
the same shell command that adds it, before it exists. Node processes are found by their
command line, which holds the run's directory, so even one started in the instant before a
crash is found. Undoing is one script, used by every run's teardown and by ``harness cleanup
--hosts``: kill the run's processes, delete its chains and qdiscs, remove its directory.
"""

from __future__ import annotations

import json
import os
import re
import socket
from typing import Any

from remote.hosts import DEFAULT_DIR
from remote.ssh import quote

RECORD = "record.jsonl"
TAG_RE = re.compile(r"[a-z0-9]{6,12}")


def run_dir(base: str, tag: str) -> str:
    return f"{base}/{tag}"


def chain_names(tag: str) -> tuple[str, str]:
    """iptables chains (at most 28 characters): node cuts, then link loss."""
    return f"RC-{tag}-CUT", f"RC-{tag}-SLOW"


def owner() -> dict[str, Any]:
    from nemesis.net.netns import process_start

    return {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start(os.getpid())}


def owner_alive(line: dict[str, Any]) -> bool:
    """Whether the harness that wrote this record still runs here (then it is not a leftover)."""
    from nemesis.net.netns import process_start

    who = line.get("owner")
    if (
        not isinstance(who, dict)
        or who.get("host") != socket.gethostname()
        or not isinstance(who.get("pid"), int)
    ):
        return False
    return process_start(who["pid"]) == who.get("start")


def append(run: str, entry: dict[str, Any]) -> str:
    """A shell command appending one line to the run's record."""
    return f"printf '%s\\n' {quote(json.dumps(entry, sort_keys=True))} >> {quote(run + '/' + RECORD)}"


def begin(run: str, tag: str) -> str:
    """The run's first command on a host: its directory and the record's owner line."""
    return f"mkdir -p {quote(run)} && " + append(run, {"tag": tag, "owner": owner()})


def list_script(base: str) -> str:
    """Prints every run record under ``base``: a ``== path`` line, then the record's lines."""
    return (
        f"for f in {quote(base)}/*/{RECORD}; do "
        '[ -f "$f" ] || continue; echo "== $f"; cat "$f"; echo; done; exit 0'
    )


def parse_listing(text: str) -> dict[str, list[dict[str, Any]]]:
    """{run directory: its record lines} from :func:`list_script`'s output (bad lines skipped)."""
    runs: dict[str, list[dict[str, Any]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("== ") and line.endswith("/" + RECORD):
            current = line[3:].rsplit("/", 1)[0]
            runs[current] = []
        elif current is not None and line.strip():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                runs[current].append(item)
    return runs


# Kill every process whose command line names the run directory: the supervisors and the nodes.
# The script comes on stdin (``sh -s``), so its own command line does not contain the directory.
_KILL = r"""
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  [ "$pid" = "$$" ] && continue
  c=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) || continue
  case "$c" in
    *"$RUN/"*) kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null && echo "process $pid: $c" ;;
  esac
done
"""


def undo_script(run: str, lines: list[dict[str, Any]], base: str) -> str:
    """Shell (for ``sh -s``, as root) that removes everything the record names, then the directory.

    It prints one line per thing removed, and fails only if something is still there afterwards.
    """
    parts = [f"RUN={quote(run)}", _KILL]
    for item in lines:
        if isinstance(item.get("chain"), str):
            chain = quote(item["chain"])
            parts.append(
                f"if iptables -w -n -L {chain} >/dev/null 2>&1; then "
                f"while iptables -w -D INPUT -j {chain} 2>/dev/null; do :; done; "
                f"while iptables -w -D OUTPUT -j {chain} 2>/dev/null; do :; done; "
                f"iptables -w -F {chain} && iptables -w -X {chain} && echo 'iptables chain '{chain}; fi"
            )
        if isinstance(item.get("qdisc"), str):
            dev = quote(item["qdisc"])
            parts.append(f"tc qdisc del dev {dev} root 2>/dev/null && echo 'qdisc on '{dev}")
        if isinstance(item.get("link"), str):
            link = quote(item["link"])
            parts.append(f"ip link del {link} 2>/dev/null && echo 'link '{link}")
    parts.append(
        f'if [ -d "$RUN" ]; then rm -rf "$RUN" && echo "directory $RUN"; fi; '
        f"rmdir {quote(base)} 2>/dev/null; "
        + (f"rmdir {quote(DEFAULT_DIR)} 2>/dev/null; " if base.rsplit("/", 1)[0] == DEFAULT_DIR else "")
        + '[ ! -e "$RUN" ] || { echo "could not remove $RUN" >&2; exit 1; }'
    )
    return "\n".join(parts) + "\n"
