"""Appends operations to history.jsonl as they happen.

Each record is flushed at once, so a harness that dies mid-run leaves a prefix that the
checker can read. Times are monotonic nanoseconds since the start of the run. The first
line is a metadata record (``histories.format``): the workload, model, system and harness
version, so the file can be checked on its own.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from histories import JsonlWriter
from histories.format import Op, metadata_record

DEFAULT_SYSTEM = "raftchat"  # the system under test when the caller names none


def harness_version() -> str:
    """The installed package's version: which harness wrote a history."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("raftchat")
    except PackageNotFoundError:
        return "unknown"


class Recorder:
    def __init__(self, path: Path, system: str = DEFAULT_SYSTEM, **metadata: Any) -> None:
        """``metadata`` (workload, model, ...) opens the file, with the system and harness version."""
        self._writer = JsonlWriter(path)
        self._writer.write_metadata(metadata_record(**metadata, system=system, harness=harness_version()))
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
