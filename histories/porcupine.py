"""Porcupine's test data: Jepsen's etcd logs, and its kv histories.

etcd: one ``INFO  jepsen.util - PROCESS<TAB>:TYPE<TAB>:F<TAB>VALUE`` line per record (any
text before ``INFO``, such as a timestamp, is allowed); VALUE is EDN: ``nil``, an
integer, ``[a b]`` or a marker such as ``:timed-out``. kv: one EDN map per line with
``:key``. Both are cas-register / kv histories; see conventions.py for what they mean.
"""

from __future__ import annotations

import re
from pathlib import Path

from histories.assemble import assemble
from histories.edn import parse_edn
from histories.edncodec import EdnError, parse_value
from histories.history import History
from histories.op import NEMESIS, TYPES, HistoryError
from histories.raw import RawOp
from histories.textio import read_text

ETCD_LINE = re.compile(r"(?:.*\s)?INFO\s+jepsen\.util\s+-\s+([^\t]+)\t([^\t]*)\t([^\t]*)\t(.*)")
_INT = re.compile(r"-?\d+")
_NAME = re.compile(r":[\w.*+!?<>=-]+")


def parse_etcd_log(text: str, path: str) -> list[RawOp]:
    """The records of a Jepsen etcd log; every non-blank line must be one."""
    raws: list[RawOp] = []
    values: dict[str, object] = {}  # the same few values recur: parse each once (read-only)
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        m = ETCD_LINE.fullmatch(line.rstrip("\r"))
        if m is None:
            shown = line if len(line) <= 60 else line[:60] + "..."
            raise HistoryError(
                path,
                number,
                f"not a Jepsen log record ('INFO  jepsen.util - P<TAB>:type<TAB>:f<TAB>value'): {shown!r}",
            )
        process_text, type_text, f_text, value_text = (g.strip() for g in m.groups())
        if _INT.fullmatch(process_text):
            process: int | str = int(process_text)
        elif process_text == f":{NEMESIS}":
            process = NEMESIS
        else:
            raise HistoryError(
                path, number, f"bad process {process_text!r} (expected an integer or :{NEMESIS})"
            )
        if not _NAME.fullmatch(type_text) or type_text[1:] not in TYPES:
            raise HistoryError(
                path, number, f"unknown type {type_text!r} (expected :invoke, :ok, :fail or :info)"
            )
        if not _NAME.fullmatch(f_text):
            raise HistoryError(path, number, f"bad f {f_text!r} (expected a keyword such as :read)")
        if value_text not in values:
            values[value_text] = _value(value_text, path, number)
        raws.append(RawOp(number, type_text[1:], process, f_text[1:], values[value_text]))
    if not raws:
        raise HistoryError(path, None, "no records")
    return raws


def _value(text: str, path: str, line: int) -> object:
    if text == "nil":
        return None
    if _INT.fullmatch(text):
        return int(text)
    try:
        return parse_value(text)
    except EdnError as exc:
        raise HistoryError(path, line, f"bad value {text!r}: {exc.what}") from None


def etcd_history(text: str, path: str) -> History:
    """A cas-register history on one key that starts absent (None)."""
    return assemble(
        parse_etcd_log(text, path), path, "porcupine-etcd", "porcupine-etcd", "cas-register", None
    )


def kv_history(text: str, path: str) -> History:
    """A kv history: every key starts as ""."""
    return assemble(parse_edn(text, path), path, "porcupine-kv", "porcupine-kv", "kv", "")


def read_porcupine_etcd(path: str | Path) -> History:
    """``read_history(path, "porcupine-etcd")``."""
    return etcd_history(read_text(path), str(path))


def read_porcupine_kv(path: str | Path) -> History:
    """``read_history(path, "porcupine-kv")``."""
    return kv_history(read_text(path), str(path))
