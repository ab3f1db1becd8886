"""Reading any history: telling the format from the first meaningful line, and
``read_history``, the one entry point that picks the format's reader and its dialect."""

from __future__ import annotations

import re
from pathlib import Path

from histories.conventions import REGISTER_FS, assemble
from histories.edn import parse_edn
from histories.format import NEMESIS, History, HistoryError, first_metadata
from histories.jsonl import parse_jsonl_lines
from histories.porcupine import etcd_history, kv_history
from histories.textio import iter_lines, read_head, read_text

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


def read_history(
    path: str | Path, format: str | None = None, *, allow_truncated_tail: bool = False
) -> History:
    """Read ``path`` in ``format`` (detected from the content when None) into canonical ops.

    "jepsen-edn" is read with the Knossos dialect: ``fail`` = did not happen, ``ok read
    nil`` = result unknown (``info``); its model hint is "cas-register" (initial 0) when
    every client op is a read, write or cas. ``allow_truncated_tail`` applies to jsonl, whose
    model hint is the one its metadata record names (``histories.format``).
    """
    name = str(path)
    if format is not None and format not in FORMATS:
        raise HistoryError(name, None, f"unknown format {format!r}; known: {', '.join(FORMATS)}")
    format = format or detect_text(read_head(path), name)
    if format == "jsonl":  # our own histories can be large: read line by line
        ops, warnings = parse_jsonl_lines(iter_lines(path), name, allow_truncated_tail)
        meta = first_metadata(read_head(path))
        model = meta.get("model") if meta is not None else None
        return History(
            ops,
            "jsonl",
            model if isinstance(model, str) else None,
            None,
            name,
            "canonical",
            warnings=warnings,
            metadata=meta,
        )
    text = read_text(path)
    if format == "porcupine-etcd":
        return etcd_history(text, name)
    if format == "porcupine-kv":
        return kv_history(text, name)
    return jepsen_edn_history(text, name)


def jepsen_edn_history(text: str, path: str) -> History:
    """Knossos' dialect, for Knossos data and any Jepsen EDN history alike."""
    raws = parse_edn(text, path)
    register = all(r.f in REGISTER_FS for r in raws if r.process != NEMESIS)
    return assemble(
        raws, path, "jepsen-edn", "knossos", "cas-register" if register else None, 0 if register else None
    )
