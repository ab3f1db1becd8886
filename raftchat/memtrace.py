"""Opt-in memory tracing of a node: what grows in its Python heap over a long run.

``RAFTCHAT_TRACEMALLOC=SECONDS`` in a node's environment starts :mod:`tracemalloc` when the node
starts and, every SECONDS (and on SIGUSR2), rewrites ``tracemalloc.txt`` in its data directory:
the traced total beside the process's resident memory (a traced total that stays flat while RSS
climbs means allocator fragmentation, not live objects), the top allocation sites, and the sites
that grew most since the first report. Tracing costs CPU and memory of its own, so it is off by
default; the node's status carries the traced total while it is on (``traced``).
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from raftchat import allocator

ENV = "RAFTCHAT_TRACEMALLOC"
REPORT = "tracemalloc.txt"
FRAMES = 8  # frames kept per allocation: enough to see who called the allocating helper
TOP = 25


def interval_from_env() -> float | None:
    """The report interval asked for in the environment; None when tracing is off.
    Raises ValueError naming the variable when it is set to something that is not a duration."""
    raw = os.environ.get(ENV, "").strip()
    if not raw or raw == "0":
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{ENV}={raw!r}: expected the seconds between reports, a number above 0")
    return seconds


def status_bytes(pid: int | str = "self", field: str = "VmRSS") -> int | None:
    """A memory figure of a process from /proc/PID/status (``VmRSS``, ``VmHWM``, ...), in
    bytes; None when the process is gone or there is no /proc. The one reader of that file
    for the node, the harness's monitor and the benchmarks."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_bytes() -> int | None:
    """This process's resident memory."""
    return status_bytes()


class MemoryTracer:
    """Writes periodic tracemalloc reports for one node into its data directory."""

    def __init__(self, data_dir: str | Path, frames: int = FRAMES) -> None:
        self.path = Path(data_dir) / REPORT
        self._started = time.monotonic()
        self._first: tracemalloc.Snapshot | None = None
        if not tracemalloc.is_tracing():
            tracemalloc.start(frames)

    @staticmethod
    def traced() -> int:
        """Bytes of Python allocations alive now (0 when tracing is off)."""
        return tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0

    def report(self) -> str:
        """Take a snapshot, write the report file (atomically) and return its text."""
        snapshot = tracemalloc.take_snapshot()  # unfiltered: filtering costs seconds on a big heap
        current, peak = tracemalloc.get_traced_memory()
        rss = rss_bytes()
        mib = 1 << 20
        lines = [
            f"t={time.monotonic() - self._started:.0f}s traced={current / mib:.1f}MiB "
            f"peak={peak / mib:.1f}MiB rss={'?' if rss is None else f'{rss / mib:.1f}MiB'} "
            f"tracemalloc_overhead={tracemalloc.get_tracemalloc_memory() / mib:.1f}MiB",
            f"malloc (all arenas, bytes): {allocator.usage()}",
            "",
            f"top {TOP} allocation sites (by line):",
        ]
        lines += [f"  {stat}" for stat in snapshot.statistics("lineno")[:TOP]]
        if self._first is None:
            self._first = snapshot
        else:
            lines += ["", f"grew most since the first report (by traceback, {FRAMES} frames):"]
            for stat in snapshot.compare_to(self._first, "traceback")[:10]:
                lines.append(f"  {stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks")
                lines += [f"      {line}" for line in stat.traceback.format(limit=FRAMES)]
        kinds = Counter(type(o).__name__ for o in gc.get_objects())
        lines += ["", "objects tracked by the collector, by type:"]
        lines += [f"  {count:>9} {name}" for name, count in kinds.most_common(15)]
        text = "\n".join(lines) + "\n"
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)
        return text
