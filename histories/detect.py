"""Telling a history's format from its first meaningful line."""

from __future__ import annotations

import re
from pathlib import Path

from histories.op import HistoryError
from histories.textio import read_head

FORMATS = ("jsonl", "jepsen-edn", "porcupine-etcd", "porcupine-kv")
# A jepsen.util record anywhere in the line, whatever prefix this Jepsen version printed.
_ETCD = re.compile(r"(?<![\w.])jepsen\.util(?:\s*[-:])?\s+(?:-?\d+|:nemesis)\s+:(?:invoke|ok|fail|info)\s")
_LOG_EVENT = re.compile(r"(?:^|[\s\[])(?:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL)[\s\]].*\bjepsen\.")
_KV_KEY = re.compile(r"[\s,{]:key[\s,]")
_TRIED = (
    "tried jsonl (a JSON object per line), jepsen-edn (an EDN vector or list of op maps, or an "
    "op map per line), porcupine-etcd (a Jepsen log: '... jepsen.util - P :type :f value' "
    "lines), porcupine-kv (an EDN map with :key per line)"
)


def detect_format(path: str | Path) -> str:
    """One of FORMATS, from the file's content (Knossos files are "jepsen-edn")."""
    return detect_text(read_head(path), str(path))


def detect_text(text: str, path: str) -> str:
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(";"):
            continue  # EDN comments, as at the top of some Knossos files
        if _ETCD.search(stripped) or (_LOG_EVENT.search(stripped) and _ETCD.search(text)):
            return "porcupine-etcd"  # a record, or a Jepsen log whose records come later
        if stripped[0] in "[(":
            return "jepsen-edn"
        if stripped.startswith("{") and stripped[1:].lstrip().startswith(('"', "}")):
            return "jsonl"
        if stripped[0] in "{#":
            return "porcupine-kv" if _KV_KEY.search(stripped) else "jepsen-edn"
        shown = stripped if len(stripped) <= 40 else stripped[:40] + "..."
        raise HistoryError(path, number, f"cannot tell the format of {shown!r}: {_TRIED}")
    raise HistoryError(path, None, f"no content but comments: {_TRIED}")
