"""Jepsen histories in EDN: format only (what each source's values mean is conventions.py's job).

Reads a file that is one EDN vector or list of op maps (Knossos' test data) or holds one
op map per line (Jepsen's ``history.edn``, Porcupine's kv data); Jepsen's
``#jepsen.history.Op{...}`` records are read as maps. edn_format parses (see edncodec.py).
Keywords become strings without the colon, extra keys are kept in ``RawOp.extra``, ``:error``
becomes text, and ``:index`` is assigned in order when absent. Writes one map per line, which
Jepsen and Knossos read.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from histories.conventions import translate
from histories.edncodec import EdnError, Keyword, dumps, is_name, read_elements
from histories.format import NEMESIS, TYPES, HistoryError, Op, RawOp, check_ops
from histories.textio import read_text

_FIELDS = frozenset(("index", "time", "type", "process", "f", "value", "node", "error"))


def parse_edn(text: str, path: str) -> list[RawOp]:
    """The op maps of an EDN history, with the line each starts on."""
    try:
        elements = read_elements(text)
    except EdnError as exc:
        raise HistoryError(path, exc.line, exc.what) from None
    return [_record(value, line, path) for value, line in elements]


def read_edn(path: str | Path) -> list[Op]:
    """The ops of an EDN history with values as written (no dialect), checked; for EDN we wrote."""
    name = str(path)
    raws = parse_edn(read_text(path), name)
    ops, _ = translate(raws, "canonical", name)
    check_ops(ops, [r.line for r in raws], name)
    return ops


def format_edn_op(op: Op) -> str:
    """One op as an EDN map: keywords for type and f, :process an integer or a keyword."""
    parts = [
        f":index {op.index}",
        f":time {op.time}",
        f":type :{op.type}",
        f":process {_name_or_value(op.process)}",
        f":f {_name_or_value(op.f)}",
        f":value {dumps(op.value)}",
    ]
    if op.node is not None:
        parts.append(f":node {dumps(op.node)}")
    if op.error is not None:
        parts.append(f":error {dumps(op.error)}")
    return "{" + ", ".join(parts) + "}"


def write_edn(path: str | Path, ops: Iterable[Op]) -> None:
    """Write ``ops`` one map per line (values as they are; see conventions.to_knossos)."""
    with open(path, "w", encoding="utf-8") as out:
        for op in ops:
            out.write(format_edn_op(op) + "\n")


def _name_or_value(value: int | str) -> str:
    return f":{value}" if isinstance(value, str) and is_name(value) else dumps(value)


def _record(value: Any, line: int, path: str) -> RawOp:
    if not isinstance(value, dict):
        raise HistoryError(path, line, f"expected an op map, found {_describe(value)}")
    fields = value  # Keyword keys are str: "type" finds :type
    missing = [f":{name}" for name in ("type", "process", "f") if name not in fields]
    if missing:
        raise HistoryError(path, line, f"op map has no {', '.join(missing)}")
    type_ = fields["type"]
    if not isinstance(type_, str) or type_ not in TYPES:
        raise HistoryError(
            path, line, f"unknown :type {dumps(type_)} (expected :invoke, :ok, :fail or :info)"
        )
    process = fields["process"]
    if isinstance(process, str):
        process = str(process)
    elif not isinstance(process, int) or isinstance(process, bool):
        raise HistoryError(path, line, f"bad :process {dumps(process)} (expected an integer or :{NEMESIS})")
    f = fields["f"]
    if not isinstance(f, str):
        raise HistoryError(path, line, f"bad :f {dumps(f)} (expected a keyword)")
    return RawOp(
        line=line,
        type=str(type_),
        process=process,
        f=str(f),
        value=fields.get("value"),
        index=_natural(fields.get("index"), "index", line, path),
        time=_natural(fields.get("time"), "time", line, path),
        node=_text(fields.get("node")),
        error=_text(fields.get("error")),
        extra={}
        if _FIELDS.issuperset(fields)
        else {str(k): v for k, v in fields.items() if k not in _FIELDS},
    )


def _natural(value: Any, name: str, line: int, path: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise HistoryError(path, line, f"bad :{name} {dumps(value)} (expected a non-negative integer)")


def _text(value: Any) -> str | None:
    """``:error`` and ``:node`` as text: strings and keywords by name, anything else as EDN."""
    if value is None or isinstance(value, str):
        return None if value is None else str(value)
    return dumps(value)


def _describe(value: Any) -> str:
    kinds = {list: "a vector or list", dict: "a map", Keyword: "a keyword", str: "a string"}
    text = dumps(value)
    return f"{kinds.get(type(value), type(value).__name__)} {text[:60]}{'...' if len(text) > 60 else ''}"
