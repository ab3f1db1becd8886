"""An operation as a file wrote it, before its dialect's conventions make it an Op."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RawOp:
    """Format-level fields; keeps its line (for errors) and any keys Op has no field for.

    ``value`` may still hold :class:`histories.edncodec.Keyword` markers such as
    ``:timed-out``, which only a dialect knows how to read.
    """

    line: int
    type: str
    process: int | str
    f: str
    value: Any = None
    index: int | None = None
    time: int | None = None
    node: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
