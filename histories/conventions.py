"""Each source's conventions, translated into the canonical values of ``histories.format``.

The same record means different things in different sources (see the corpus README), so
every reader names a dialect and this module alone knows what each one means:

``canonical``
    Values are taken as they are (our jsonl, and EDN that we wrote).
``knossos`` (Knossos' cas-register test data, and any Jepsen EDN history)
    ``fail`` = did not take place: kept as ``fail``, and checkers drop it. ``ok read nil``
    is a read whose result is unknown: it becomes ``info``. ``ok cas [a b]`` becomes
    ``[a, b, True]``. Only ops whose ``f`` is read, write or cas are touched.
``porcupine-etcd`` (Jepsen's etcd logs as Porcupine ships them)
    ``fail cas [a b]`` is etcd saying the compare failed, a definite observation: it
    becomes ``ok [a, b, False]``. Any failed read constrains nothing: ``info`` with value
    None. A failed write did not take place (stays ``fail``). ``info`` stays ``info``. A
    read of nil means the key was absent: value None, the register's initial value.
``porcupine-kv``
    ``:key K :value V`` becomes ``[K, V]``; a get's invocation becomes ``[K, None]``.

Independent keys (Jepsen's ``independent`` generator, in either register dialect): every
value is a tuple ``[key value]``. Such a history (:func:`independent_keys`) is translated
key by key: the dialect's rule reads the value inside the tuple and the key is put back
around the result, so ``ok read [k nil]`` becomes ``info [k, None]`` under Knossos' rules
and ``fail cas [k [a b]]`` becomes ``ok [k, [a, b, False]]`` under etcd's. Its model is the
keyed one (``checker.models.independent``).

In the register dialects a read's invocation value becomes None (Knossos ignores it), and
a bare keyword where a fail or info completion's value should be (``:timed-out``) is a
marker, not data: the value becomes None and the marker goes to ``error``. Nemesis ops
pass unchanged in every dialect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from histories.edncodec import Keyword, Symbol, dumps
from histories.format import NEMESIS, History, HistoryError, Op, RawOp, check_ops

DIALECTS = ("canonical", "knossos", "porcupine-etcd", "porcupine-kv")
REGISTER_FS = ("read", "write", "cas")

# A rule maps one client RawOp to (type, value, error).
Rule = Callable[[RawOp, str], tuple[str, Any, str | None]]


def translate(raws: list[RawOp], dialect: str, path: str, keyed: bool = False) -> tuple[list[Op], bool]:
    """The canonical ops, and whether their times were synthesised from the indexes.
    ``keyed``: the values are independent keys' ``[key value]`` tuples."""
    if dialect not in _RULES:
        raise ValueError(f"unknown dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    rule = _keyed(_RULES[dialect]) if keyed else _RULES[dialect]
    indexes = _consistent(raws, "index", path)
    times = _consistent(raws, "time", path)
    ops: list[Op] = []
    for i, raw in enumerate(raws):
        index = raw.index if indexes and raw.index is not None else i
        time = raw.time if times and raw.time is not None else index
        if raw.process == NEMESIS:
            type_, value, error = raw.type, plain(raw.value), raw.error
        else:
            type_, value, error = rule(raw, path)
        ops.append(Op(index, type_, raw.process, raw.f, value, time, raw.node, error))
    return ops, not times


def independent_keys(raws: list[RawOp]) -> bool:
    """Whether a register history holds independent keys: every client op a read, write or
    cas whose invocation and ``ok`` values are ``[key value]`` (a cas's value itself a pair),
    with at least one read. A single register's read is invoked with nil, so a history of
    one register is never taken for one of many."""
    reads = False
    for raw in raws:
        if raw.process == NEMESIS:
            continue
        if raw.f not in REGISTER_FS:
            return False
        if raw.type not in ("invoke", "ok"):
            continue  # fail and info completions may carry a marker instead of the tuple
        value = raw.value
        if not (isinstance(value, list) and len(value) == 2):
            return False
        if raw.f == "cas" and not (isinstance(value[1], list) and len(value[1]) in (2, 3)):
            return False
        reads = reads or raw.f == "read"
    return reads


def _keyed(rule: Rule) -> Rule:
    """``rule`` applied inside ``[key value]`` tuples; a value that is no tuple (a marker
    such as ``:timed-out`` on a completion) is read as it is."""

    def keyed(raw: RawOp, path: str) -> tuple[str, Any, str | None]:
        value = raw.value
        if not (isinstance(value, list) and len(value) == 2):
            return rule(raw, path)
        inner = replace(raw, value=value[1])
        type_, translated, error = rule(inner, path)
        return type_, [plain(value[0]), translated], error

    return keyed


def plain(value: Any) -> Any:
    """The value with EDN-only types made plain Python: keywords and symbols -> str."""
    kind = type(value)
    if kind is int or kind is str or value is None or kind is bool or kind is float:
        return value
    if kind is list or kind is tuple:
        return [plain(v) for v in value]
    if kind is Keyword or kind is Symbol:
        return str(value)
    if kind is dict:
        return {plain(k) if type(k) is not tuple else k: plain(v) for k, v in value.items()}
    return value


def _consistent(raws: list[RawOp], name: str, path: str) -> bool:
    """Whether every op has the field (True) or none does (False); an error otherwise."""
    present = [getattr(r, name) is not None for r in raws]
    if all(present):
        return bool(raws)
    if any(present):
        missing = raws[present.index(False)]
        raise HistoryError(path, missing.line, f"op has no :{name} while others have one")
    return False


def _marker(value: Any, error: str | None) -> tuple[Any, str | None]:
    """A keyword in a value's place is a marker (``:timed-out``): no value, and an error text."""
    if isinstance(value, Keyword):
        return None, error or str(value)
    return plain(value), error


def _pair(raw: RawOp, path: str) -> list[Any]:
    value = raw.value
    if isinstance(value, list) and len(value) == 2:
        return [plain(value[0]), plain(value[1])]
    raise HistoryError(path, raw.line, f"{raw.type} cas needs a value [expected new], got {dumps(value)}")


def _canonical(raw: RawOp, path: str) -> tuple[str, Any, str | None]:
    return raw.type, plain(raw.value), raw.error


def _knossos(raw: RawOp, path: str) -> tuple[str, Any, str | None]:
    t, f = raw.type, raw.f
    if f not in REGISTER_FS:
        return t, plain(raw.value), raw.error
    if t == "invoke":
        return t, (None if f == "read" else _pair(raw, path) if f == "cas" else plain(raw.value)), raw.error
    if t == "ok":
        if f == "read" and raw.value is None:
            return "info", None, raw.error  # Knossos: a nil read is a read whose result is unknown
        if f == "cas":
            value = raw.value
            if isinstance(value, list) and len(value) == 3 and isinstance(value[2], bool):
                return t, plain(value), raw.error  # already canonical (EDN that we wrote)
            return t, [*_pair(raw, path), True], raw.error
        return t, plain(raw.value), raw.error
    return (t, *_marker(raw.value, raw.error))


def _etcd(raw: RawOp, path: str) -> tuple[str, Any, str | None]:
    t, f = raw.type, raw.f
    if f not in REGISTER_FS:
        raise HistoryError(path, raw.line, f"unknown :f :{f} for an etcd register log (read, write or cas)")
    if t == "invoke":
        return t, (None if f == "read" else _pair(raw, path) if f == "cas" else plain(raw.value)), raw.error
    if t == "ok":
        return t, ([*_pair(raw, path), True] if f == "cas" else plain(raw.value)), raw.error
    if t == "fail" and f == "cas" and not isinstance(raw.value, Keyword):
        return "ok", [*_pair(raw, path), False], raw.error  # etcd: the compare failed
    if t == "fail" and f == "read":
        return (
            "info",
            None,
            raw.error or (str(raw.value) if isinstance(raw.value, Keyword) else "failed read"),
        )
    return (t, *_marker(raw.value, raw.error))


def _kv(raw: RawOp, path: str) -> tuple[str, Any, str | None]:
    if "key" not in raw.extra:
        raise HistoryError(path, raw.line, "kv op map has no :key")
    key = plain(raw.extra["key"])
    if raw.type == "invoke" and raw.f == "get":
        return raw.type, [key, None], raw.error
    value, error = (
        _marker(raw.value, raw.error) if raw.type in ("fail", "info") else (plain(raw.value), raw.error)
    )
    return raw.type, [key, value], error


_RULES: dict[str, Rule] = {
    "canonical": _canonical,
    "knossos": _knossos,
    "porcupine-etcd": _etcd,
    "porcupine-kv": _kv,
}


def to_knossos(ops: list[Op]) -> list[Op]:
    """Canonical cas-register ops in Knossos' conventions, e.g. to hand to Knossos with
    ``write_edn``: ``ok [a, b, True]`` -> ``ok [a b]``; ``ok [a, b, False]`` -> ``fail [a b]``
    (Knossos has no failed compare; fail, "did not happen", is the sound reading); an
    ``info`` read stays ``info``."""
    result: list[Op] = []
    for op in ops:
        value, type_ = op.value, op.type
        swapped = isinstance(value, list | tuple) and len(value) == 3
        if op.process != NEMESIS and op.f == "cas" and op.type == "ok" and swapped:
            type_ = "ok" if value[2] else "fail"
            value = [value[0], value[1]]
        result.append(Op(op.index, type_, op.process, op.f, value, op.time, op.node, op.error))
    return result


def assemble(
    raws: list[RawOp], path: str, format: str, dialect: str, model_hint: str | None, initial_hint: Any
) -> History:
    """Translate ``raws`` with ``dialect``, check indexes and pairing, and wrap the result. A
    register history of independent keys gets the keyed model (``independent-<model>``)."""
    keyed = model_hint in ("register", "cas-register") and independent_keys(raws)
    if keyed:
        model_hint = f"independent-{model_hint}"
    ops, synthetic = translate(raws, dialect, path, keyed)
    check_ops(ops, [r.line for r in raws], path)
    return History(ops, format, model_hint, initial_hint, path, dialect, synthetic)
