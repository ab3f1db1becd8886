"""The metadata record that opens a ``history.jsonl``: what the history is a history of.

A history file that names its workload, model and system can be checked without guessing a
model (``harness check FILE``). The record is the first line, an object with ``"meta":
"history"``; it has none of an operation's fields, so it can never be mistaken for one,
and every reader of the format skips it (``histories.jsonl``). Files without it (older
runs, other tools) read as before.
"""

from __future__ import annotations

import json
from typing import Any

MARK = "history"  # the value of the record's "meta" key
FIELDS = ("workload", "model", "system", "harness")  # what a harness-written record always has


def metadata_record(**fields: Any) -> dict[str, Any]:
    """A metadata record: ``{"meta": "history", **fields}`` (None values left out)."""
    return {"meta": MARK, **{k: v for k, v in fields.items() if v is not None}}


def is_metadata(record: Any) -> bool:
    return type(record) is dict and record.get("meta") == MARK


def first_metadata(text: str) -> dict[str, Any] | None:
    """The metadata record on the first non-blank line of jsonl ``text``, if it is one."""
    for line in text.split("\n", 8):  # a blank line or two before it at most
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return None
        return record if is_metadata(record) else None
    return None
