"""What the timeline page costs on a long history: ``harness check`` with and without ``--html``.

Runs ``harness check PATH`` and ``harness check PATH --html OUT`` as child processes, one
after the other, and prints each one's peak RSS (the kernel's figure for that child, from
``wait4``) and wall time, and the page's size. PATH is a history or a stored run's directory;
without one, a linearizable chat history of ``--ops`` operations (``histories.synth``, about a
hundred per group) is generated into a temporary folder. Target, printed beside the figure
(nothing is asserted): the page adds at most ~100 MiB to the check's own peak.

    python -m bench.timeline_memory [PATH] [--ops 96000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import ROOT, child_env
from histories import synth
from histories.format import metadata_record
from histories.jsonl import write_jsonl

PAGE_TARGET_MIB = 100


def measured(args: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of ``harness`` run with ``args``."""
    began = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args], stdout=subprocess.DEVNULL, env=child_env(), cwd=ROOT
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - began
    if child.returncode not in (0, 1, 2):  # 0-2 are verdicts; anything else is a failed run
        raise SystemExit(f"harness {' '.join(args)}: exit code {child.returncode}")
    return usage.ru_maxrss / 1024, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", help="a history or a stored run (default: a generated one)")
    parser.add_argument("--ops", type=int, default=96_000, help="operations of the generated history")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="timeline-memory-") as tmp:
        path = args.path
        if path is None:
            path = str(Path(tmp) / "history.jsonl")
            ops = synth.generate("chat", clients=10, ops=args.ops, keys=max(1, args.ops // 100), seed=1)
            write_jsonl(path, ops, metadata_record(model="chat"))
            del ops
            print(f"generated {args.ops} chat operations")
        page = Path(tmp) / "timeline.html"
        rss, wall = measured(["check", path])
        print(f"harness check            peak RSS {rss:7.0f} MiB  {wall:6.1f} s")
        page_rss, page_wall = measured(["check", path, "--html", str(page)])
        verdict = "ok" if page_rss - rss <= PAGE_TARGET_MIB else "OVER"
        print(
            f"harness check --html     peak RSS {page_rss:7.0f} MiB  {page_wall:6.1f} s  "
            f"page {page.stat().st_size:,} bytes  (target: page adds <= {PAGE_TARGET_MIB} MiB: {verdict})"
        )


if __name__ == "__main__":
    main()
