"""Porcupine's test data: Jepsen's etcd logs, and its kv histories.

etcd: Jepsen's log, one ``INFO  jepsen.util - PROCESS<TAB>:TYPE<TAB>:F<TAB>VALUE`` line per
record, as every Jepsen version prints it in its own way (``parse_etcd_log``); VALUE is
EDN: ``nil``, an integer, ``[a b]`` or a marker such as ``:timed-out``. kv: one EDN map per line with
``:key``. Both are cas-register / kv histories; see conventions.py for what they mean.
"""

from __future__ import annotations

import re

from histories.conventions import assemble
from histories.edn import parse_edn
from histories.edncodec import EdnError, Keyword, dumps, parse_value, read_elements
from histories.format import NEMESIS, TYPES, History, HistoryError, RawOp

# Where a record starts: the logger's name, then "-", ":" or nothing, then whitespace. What
# comes before it varies with the Jepsen version and its logging setup (timestamps such as
# "2017-03-07 11:32:05,123{GMT}" or "[2021-02-23 10:31:11,243]", a level, a thread name
# such as "[jepsen worker 3]" or "jepsen worker 3 -") and is ignored.
RECORD_START = re.compile(r"(?<![\w.])jepsen\.util(?:\s*[-:])?\s+")
# A line that starts a log event of another logger: a level word as its own field.
LOG_EVENT = re.compile(r"(?:^|[\s\[])(?:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL)(?=[\s\]])")
_SHAPE = "'[prefix] jepsen.util - PROCESS :type :f VALUE [ERROR]', fields separated by whitespace"
_INT = re.compile(r"-?\d+")
_NAME = re.compile(r":[\w.*+!?<>=-]+")


def parse_etcd_log(text: str, path: str) -> tuple[list[RawOp], list[str]]:
    """The records of a Jepsen log, and warnings about the lines skipped.

    Every ``jepsen.util`` line must be a record. Events of other loggers (a line with a
    level such as ``INFO`` or ``WARN``) and the lines that continue them (stack traces)
    are skipped; any other line is an error, so a file that is not a Jepsen log is not
    read as an empty one. CRLF endings and trailing blanks are fine.
    """
    raws: list[RawOp] = []
    values: dict[str, tuple[object, str | None]] = {}  # the same few values recur: parse once
    skipped: list[int] = []
    in_other_event = False
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip()
        if not line:
            continue
        start = RECORD_START.search(line)
        if start is None:
            if LOG_EVENT.search(line) or in_other_event:
                in_other_event = True
                skipped.append(number)
                continue
            raise HistoryError(path, number, f"not a Jepsen log record ({_SHAPE}): {_clip(line)!r}")
        in_other_event = False
        fields = line[start.end() :].split(None, 3)
        if len(fields) < 4:
            names = ("process", "type", "f", "value")[len(fields) :]
            raise HistoryError(
                path, number, f"not a Jepsen log record ({_SHAPE}): no {', '.join(names)} in {_clip(line)!r}"
            )
        process_text, type_text, f_text, rest = fields
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
        if rest not in values:
            values[rest] = _value(rest, path, number)
        value, error = values[rest]
        raws.append(RawOp(number, type_text[1:], process, f_text[1:], value, error=error))
    if not raws:
        raise HistoryError(path, None, "no jepsen.util records")
    warnings = []
    if skipped:
        warnings.append(
            f"{path}: skipped {len(skipped)} line(s) of other loggers (first at line {skipped[0]})"
        )
    return raws, warnings


def _clip(line: str, limit: int = 60) -> str:
    return line if len(line) <= limit else line[:limit] + "..."


def _value(text: str, path: str, line: int) -> tuple[object, str | None]:
    """The value field, and the error field some Jepsen versions print after it
    (``:conn-closed``, ``[:crash "..."]``) as text."""
    if text == "nil":
        return None, None
    if _INT.fullmatch(text):
        return int(text), None
    try:
        return parse_value(text), None
    except EdnError as exc:
        try:
            forms = [value for value, _ in read_elements(f"[{text}]")]
        except EdnError:
            raise HistoryError(path, line, f"bad value {text!r}: {exc.what}") from None
    if len(forms) != 2:
        raise HistoryError(
            path,
            line,
            f"expected a value and at most an error after :f, found {len(forms)} EDN forms in {text!r}",
        )
    value, error = forms
    return value, (str(error) if isinstance(error, Keyword) else dumps(error))


def etcd_history(text: str, path: str) -> History:
    """A cas-register history on one key that starts absent (None)."""
    raws, warnings = parse_etcd_log(text, path)
    history = assemble(raws, path, "porcupine-etcd", "porcupine-etcd", "cas-register", None)
    history.warnings.extend(warnings)
    return history


def kv_history(text: str, path: str) -> History:
    """A kv history: every key starts as ""."""
    return assemble(parse_edn(text, path), path, "porcupine-kv", "porcupine-kv", "kv", "")
