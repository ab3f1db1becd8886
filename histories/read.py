"""``read_history``: one entry point that picks the format's reader and its dialect."""

from __future__ import annotations

from pathlib import Path

from histories.assemble import assemble
from histories.conventions import REGISTER_FS
from histories.detect import FORMATS, detect_text
from histories.edn import parse_edn
from histories.history import History
from histories.jsonl import parse_jsonl_lines
from histories.meta import first_metadata
from histories.op import NEMESIS, HistoryError
from histories.porcupine import etcd_history, kv_history
from histories.textio import iter_lines, read_head, read_text


def read_history(
    path: str | Path, format: str | None = None, *, allow_truncated_tail: bool = False
) -> History:
    """Read ``path`` in ``format`` (detected from the content when None) into canonical ops.

    "jepsen-edn" is read with the Knossos dialect: ``fail`` = did not happen, ``ok read
    nil`` = result unknown (``info``); its model hint is "cas-register" (initial 0) when
    every client op is a read, write or cas. ``allow_truncated_tail`` applies to jsonl, whose
    model hint is the one its metadata record names (``histories.meta``).
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
