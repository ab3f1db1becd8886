"""Summarise py-spy raw (collapsed-stack) profiles, such as ``throughput.py --profile-dir`` writes.

A flame graph needs a browser; this prints the hot spots as text, so a profile can be read
in a terminal or pasted into an issue:

    python -m bench.pyspy_summary /tmp/prof/raftchat-3n-32c-send.txt [--top 15]

"Self" is where samples were taken (the innermost frame); "inclusive" counts every frame
on the stack. py-spy samples threads that are running or in a syscall it does not treat
as idle, so time blocked in fsync shows up (in the frame that called it).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def summarise(path: Path, top: int) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if total == 0:
        return f"{path}: no samples"
    lines = [f"{path}: {total} samples", "  self:"]
    lines += [f"    {100 * c / total:5.1f}%  {frame}" for frame, c in own.most_common(top)]
    lines.append("  inclusive (below the frames that are on nearly every stack: main, the event loop):")
    ceiling = 0.95 * max(inclusive.values())
    shown = [(f, c) for f, c in inclusive.most_common() if c < ceiling][:top]
    lines += [f"    {100 * c / total:5.1f}%  {frame}" for frame, c in shown]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    for path in args.profiles:
        print(summarise(path, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
