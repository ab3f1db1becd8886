"""Find and remove what a crashed run left behind: namespaces, links, proxy processes, state files.

A run that dies without its teardown leaves namespaces (with their addresses) and maybe
processes; the next run, or a person, clears them by tag. Without a tag every run's
leftovers go, except those of runs whose owner still lives: a live netns run is known by
its state file, a live proxy by its parent (``harness`` still running).

``python -m nemesis.cleanup [--tag T] [--dry-run]`` for scripts; it prints what it removed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from nemesis.net import netns, proxy
from nemesis.net.netns import NetnsError, Resource

PROXY_TAG_RE = re.compile(r"(?:--tag=)?rc-([A-Za-z0-9]{1,8})")


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def proxy_processes(tag: str | None = None, skip_managed: bool = False) -> list[Resource]:
    """Proxy processes of this tag (any tag if None), found by their command line, never by name.

    ``skip_managed`` leaves out those whose parent still runs (and is not init): a live run's.
    """
    found = []
    for pid, args in proxy.proxy_processes():
        tags = [m.group(1) for arg in args if (m := PROXY_TAG_RE.fullmatch(arg))]
        if not tags or (tag is not None and tag not in tags):
            continue
        parent = _parent(pid)
        if skip_managed and parent is not None and parent > 1:
            continue
        cmdline = netns.read_cmdline(pid)
        if cmdline is not None:
            found.append(Resource("process", str(pid), tag or tags[0], cmdline))
    return found


def _leftovers(tag: str | None) -> list[Resource]:
    if tag is not None:
        netns.check_tag(tag)
    found = netns.resources(tag) if shutil.which("ip") else []
    if tag is None:
        live = {t for t in {r.tag for r in found} if t is not None and netns.owner_alive(t)}
        found = [r for r in found if r.tag not in live]
    return found + proxy_processes(tag, skip_managed=tag is None)


def find_leftovers(tag: str | None = None) -> list[str]:
    """What :func:`cleanup` would remove, described one per item; removes nothing."""
    return [r.describe() for r in _leftovers(tag)]


def cleanup(tag: str | None = None) -> list[str]:
    """Remove this tag's leftovers (every dead run's if None); return what was removed.

    Raises NetnsError naming whatever could not be removed (e.g. when not root).
    """
    return netns.remove(_leftovers(tag))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nemesis.cleanup", description=__doc__.splitlines()[0])
    parser.add_argument("--tag", help="only this run's leftovers (default: every run whose owner is gone)")
    parser.add_argument("--dry-run", action="store_true", help="list the leftovers, remove nothing")
    args = parser.parse_args(argv)
    try:
        items = find_leftovers(args.tag) if args.dry_run else cleanup(args.tag)
    except (NetnsError, ValueError) as exc:
        print(f"cleanup: {exc}", file=sys.stderr)
        return 1
    for item in items:
        print(item)
    return 0


if __name__ == "__main__":
    sys.exit(main())
