"""Appends operations to history.jsonl as they happen.

Each record is flushed at once, so a harness that dies mid-run leaves a prefix that the
checker can read. Times are monotonic nanoseconds since the start of the run.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from histories import JsonlWriter
from histories.op import Op


class Recorder:
    def __init__(self, path: Path) -> None:
        self._writer = JsonlWriter(path)
        self._start = time.monotonic_ns()
        self._index = 0
        self.counts: Counter[str] = Counter()  # completions by type, for progress lines

    def now(self) -> int:
        return time.monotonic_ns() - self._start

    def record(
        self,
        type: str,
        process: int | str,
        f: str,
        value: Any,
        node: str | None = None,
        error: str | None = None,
    ) -> Op:
        op = Op(self._index, type, process, f, value, self.now(), node, error)
        self._index += 1
        self._writer.write(op)
        if type != "invoke" and process != "nemesis":
            self.counts[type] += 1
        return op

    def close(self) -> None:
        self._writer.close()
