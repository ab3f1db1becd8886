"""Our own format: one JSON object per line (``Op.to_dict()``), appended as operations happen.

Values are already canonical. A writer that crashes mid-line leaves a partial last line:
the reader names it, and can skip it on request, so a crashed run's history is still
checkable. A first line that is a metadata record (``histories.format``) is not an operation:
readers skip it.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from histories.format import TYPES, HistoryError, Op, Validator, is_metadata
from histories.textio import iter_lines

REQUIRED = ("index", "type", "process", "f", "value", "time")
OPTIONAL = ("node", "error")
_REQUIRED = frozenset(REQUIRED)
_KNOWN = frozenset(REQUIRED + OPTIONAL)
_TYPES = {name: name for name in TYPES}  # the canonical string objects, shared by every op


class OpList(list[Op]):
    """The ops of a jsonl file, with ``warnings`` about what was skipped (a partial last line)."""

    def __init__(self, ops: Iterable[Op] = (), warnings: list[str] | None = None) -> None:
        super().__init__(ops)
        self.warnings: list[str] = warnings or []


def read_jsonl(path: str | Path, allow_truncated_tail: bool = False) -> OpList:
    """The ops of a jsonl history. A partial last line (no newline, not valid JSON) is an
    error, or with ``allow_truncated_tail`` is skipped and noted in ``warnings``. The file
    is read line by line: a million-operation history never sits in memory as text."""
    ops, warnings = parse_jsonl_lines(iter_lines(path), str(path), allow_truncated_tail)
    return OpList(ops, warnings)


def parse_jsonl(text: str, path: str, allow_truncated_tail: bool = False) -> tuple[list[Op], list[str]]:
    """Parse and check jsonl text; returns (ops, warnings)."""
    return parse_jsonl_lines(_split(text), path, allow_truncated_tail)


def _split(text: str) -> Iterator[str]:
    parts = text.split("\n")
    for part in parts[:-1]:
        yield part + "\n"
    if parts[-1]:
        yield parts[-1]


def parse_jsonl_lines(
    lines: Iterable[str], path: str, allow_truncated_tail: bool = False
) -> tuple[list[Op], list[str]]:
    """Parse and check jsonl lines (each with its newline; only the last may lack one)."""
    collecting = gc.isenabled()
    gc.disable()  # millions of new acyclic objects: the collector would only rescan them
    try:
        return _parse_lines(lines, path, allow_truncated_tail)
    finally:
        if collecting:
            gc.enable()


_BATCH = 4096  # lines parsed by one json.loads: faster, and the keys of their values are shared


def _parse_lines(lines: Iterable[str], path: str, allow_truncated_tail: bool) -> tuple[list[Op], list[str]]:
    warnings: list[str] = []
    ops = list(iter_jsonl_ops(lines, path, allow_truncated_tail, warnings))
    return ops, warnings


def iter_jsonl_ops(
    lines: Iterable[str], path: str, allow_truncated_tail: bool = False, warnings: list[str] | None = None
) -> Iterator[Op]:
    """The ops of jsonl lines one at a time, each checked (``histories.format.Validator``) as it
    comes: a consumer that keeps only what it needs (``checker.prepare.operations``) never
    holds the whole history. What was skipped goes to ``warnings``."""
    warnings = [] if warnings is None else warnings
    names: dict[str, str] = {}  # one string object per distinct f: a million records share a few
    share = _Sharer().share
    check = Validator(path).check
    batch: list[str] = []
    at: list[int] = []
    skipped_meta = False
    count = 0
    ended = False
    numbered = enumerate(lines, 1)
    while not ended:
        for number, line in numbered:
            if not line.strip():
                continue
            batch.append(line)
            at.append(number)
            if len(batch) == _BATCH:
                break
        else:
            ended = True
        for number, record in _records(batch, at, path, allow_truncated_tail, warnings):
            if record is _TRUNCATED:
                ended = True
                break
            if not count and not skipped_meta and is_metadata(record):
                skipped_meta = True  # the metadata record: first if anywhere, never an operation
                continue
            op = _op(record, path, number)
            op.type = _TYPES[op.type]
            op.f = names.setdefault(op.f, op.f)
            share(op)
            check(op, number)
            count += 1
            yield op
        batch.clear()
        at.clear()
    if not count:
        raise HistoryError(path, None, "no operations" + (" (only a truncated line)" if warnings else ""))


_TRUNCATED = object()
_OFF: dict[str, str] = {}  # a field whose strings keep changing: no longer shared


class _Sharer:
    """Makes equal parts of values one object, so that a million-op history takes less
    memory: a completion that repeats its invocation's value (an ``info``, a put's ``ok``)
    gets that very object, and the strings under one dict key or list position (kv keys,
    user and group names, statuses) are kept once each. A field stops being tracked once
    it has shown ``LIMIT`` distinct strings (unique message texts, written tokens).
    Equality here is exact (``1`` never stands in for ``true``); values are never mutated
    later, so sharing them is safe."""

    LIMIT = 4096
    ANSWERS = 1 << 16  # distinct small completion values kept (statuses, counts, short lists)

    def __init__(self) -> None:
        self.invoked: dict[Any, Any] = {}  # process -> value of its open invocation
        self.fields: dict[Any, dict[str, str]] = {}
        self.answers: dict[Any, Any] = {}  # _key(value) -> the one object for that answer

    def share(self, op: Op) -> None:
        value = op.value
        if op.type != "invoke":
            before = self.invoked.pop(op.process, _TRUNCATED)
            if value == before and _same(value, before):  # == first: fast in C, mostly False
                op.value = before
                return
            key = _key(value)
            if key is not None:
                found = self.answers.get(key)
                if found is not None:  # the same answer as an earlier completion's
                    op.value = found
                    return
                if len(self.answers) < self.ANSWERS:
                    self.answers[key] = value
        kind = type(value)
        if kind is dict:
            items: Iterable[tuple[Any, Any]] = value.items()
        elif kind is list:
            items = enumerate(value)
        else:
            items = ()
        fields = self.fields
        for field, item in items:
            if type(item) is str:
                table = fields.get(field)
                if table is None:
                    table = fields[field] = {}
                elif table is _OFF:
                    continue
                value[field] = table.setdefault(item, item)
                if len(table) > self.LIMIT:
                    fields[field] = _OFF
        if op.type == "invoke":
            self.invoked[op.process] = value


_SCALARS = (str, int, bool, type(None))  # no floats: 0.0 == -0.0, and sharing must be exact
_SMALL = 8  # items in a value worth sharing: answers repeat when they are short
_SHORT = 64  # characters of a string worth sharing (long ones are written values, unique)


def _key(value: Any) -> Any:
    """A hashable key that equals another's only for an identical JSON value (types
    included, so ``1`` and ``true`` differ), for small values of one level of dicts and
    lists of scalars; None for anything else (not worth a table entry)."""
    kind = type(value)
    if kind is dict:
        if len(value) > _SMALL:
            return None
        items = []
        for k, v in value.items():
            inner = type(v)
            if inner is list:
                if len(v) > _SMALL or not all(map(_scalar, v)):
                    return None
                items.append((k, list, tuple((type(x), x) for x in v)))
            elif _scalar(v):
                items.append((k, inner, v))
            else:
                return None
        return dict, tuple(items)
    if kind is list:
        if len(value) > _SMALL or not all(map(_scalar, value)):
            return None
        return list, tuple((type(x), x) for x in value)
    return None


def _scalar(x: Any) -> bool:
    kind = type(x)
    return kind in _SCALARS and (kind is not str or len(x) <= _SHORT)


def _same(a: Any, b: Any) -> bool:
    """Equal JSON values of the same types all the way down (``1 == True`` does not count)."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if kind is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _records(
    batch: list[str], at: list[int], path: str, allow_truncated_tail: bool, warnings: list[str]
) -> Iterator[tuple[int, Any]]:
    """(line number, decoded record) of each line: all at once when every line is one JSON
    object, else line by line, to name the line that is not."""
    whole = all(line.lstrip().startswith("{") and line.rstrip().endswith("}") for line in batch)
    if whole:
        try:
            records = json.loads("[" + ",".join(batch) + "]")
        except json.JSONDecodeError:
            records = None
        if records is not None and len(records) == len(batch) and all(type(r) is dict for r in records):
            yield from zip(at, records, strict=True)
            return
    for number, line in zip(at, batch, strict=True):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if not line.endswith("\n"):
                what = "truncated last line (no newline at the end: the writer stopped mid-record)"
                if not allow_truncated_tail:
                    skip = "; skip it with --allow-truncated-tail (allow_truncated_tail=True)"
                    raise HistoryError(path, number, what + skip) from None
                warnings.append(f"{path}:{number}: skipped a {what}")
                yield number, _TRUNCATED
                return
            raise HistoryError(path, number, f"not valid JSON: {exc.msg} at column {exc.colno}") from None
        yield number, record


def _op(record: Any, path: str, line: int) -> Op:
    """The record as an Op; HistoryError naming the field that is wrong. The common case
    (a record with the six fields, all well typed) is one test."""
    if type(record) is dict and len(record) == len(REQUIRED):
        try:
            index, type_, process = record["index"], _TYPES[record["type"]], record["process"]
            f, time, value = record["f"], record["time"], record["value"]
        except (KeyError, TypeError):
            pass  # a field missing, or an unhashable type: the checks below say which
        else:
            if (
                type(index) is int
                and index >= 0
                and (type(process) is int or type(process) is str)
                and type(f) is str
                and f
                and type(time) is int
                and time >= 0
            ):
                return Op(index, type_, process, f, value, time)
    return _checked_op(record, path, line)


def _checked_op(record: Any, path: str, line: int) -> Op:
    if type(record) is not dict:
        raise HistoryError(path, line, f"expected a JSON object, found {type(record).__name__}")
    keys = record.keys()
    if not (_REQUIRED <= keys <= _KNOWN):
        missing = [k for k in REQUIRED if k not in record]
        if missing:
            raise HistoryError(path, line, f"missing field(s) {', '.join(missing)}")
        raise HistoryError(path, line, f"unknown field(s) {', '.join(sorted(keys - _KNOWN))}")
    index, type_, process, f, time = (record[k] for k in ("index", "type", "process", "f", "time"))
    node, error = record.get("node"), record.get("error")
    if type(index) is not int or index < 0:
        raise HistoryError(path, line, f"index must be a non-negative integer, not {index!r}")
    if type_ not in TYPES:
        raise HistoryError(path, line, f"unknown type {type_!r} (expected one of {', '.join(TYPES)})")
    if type(process) is not int and type(process) is not str:
        raise HistoryError(path, line, f"process must be an integer or a string, not {process!r}")
    if type(f) is not str or not f:
        raise HistoryError(path, line, f"f must be a non-empty string, not {f!r}")
    if type(time) is not int or time < 0:
        raise HistoryError(path, line, f"time must be a non-negative integer (ns), not {time!r}")
    if node is not None and type(node) is not str:
        raise HistoryError(path, line, f"node must be a string, not {node!r}")
    if error is not None and type(error) is not str:
        raise HistoryError(path, line, f"error must be a string, not {error!r}")
    return Op(index, type_, process, f, record["value"], time, node, error)


_ENCODE = json.JSONEncoder(separators=(",", ":")).encode  # one encoder: dumps() builds one per call


def _line(op: Op) -> bytes:
    return _record(op.to_dict())


def _record(data: dict[str, Any]) -> bytes:
    return (_ENCODE(data) + "\n").encode("utf-8")


def write_jsonl(path: str | Path, ops: Iterable[Op], metadata: dict[str, Any] | None = None) -> None:
    """Write a whole history, replacing the file; ``metadata`` (a ``histories.format`` record) first."""
    with open(path, "wb") as out:
        if metadata is not None:
            out.write(_record(metadata))
        for op in ops:
            out.write(_line(op))


class JsonlWriter:
    """Appends ops as they happen, one flushed line each, so a crash leaves a readable prefix.

    Refuses a file that ends in a partial line: appending would bury it mid-file, where no
    reader could skip it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if _ends_mid_line(Path(path)):
            raise HistoryError(
                self.path, None, "ends with a partial line (a crashed writer?); will not append"
            )
        self._file = open(path, "ab")  # noqa: SIM115 - closed by close() / __exit__

    def write(self, op: Op) -> None:
        self._file.write(_line(op))
        self._file.flush()

    def write_metadata(self, metadata: dict[str, Any]) -> None:
        """The file's first line: a ``histories.format`` record. Refused once anything is written."""
        if self._file.tell():
            raise HistoryError(self.path, None, "metadata goes first: the file already has records")
        self._file.write(_record(metadata))
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as existing:
            existing.seek(0, 2)
            if existing.tell() == 0:
                return False
            existing.seek(-1, 2)
            return existing.read(1) != b"\n"
    except FileNotFoundError:
        return False
