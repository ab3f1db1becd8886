"""A key-value store with get, put and append (Porcupine's kv semantics).

Values are ``[key, value]`` (a get's invoke carries no value). Every key starts as
``initial`` (``""`` by default); ``append`` concatenates. Keys are independent, so the
history is split by key and each key is checked alone.

A state is a sorted tuple of ``(key, value)`` for the keys that differ from ``initial``:
one representation per store content, cheap to hash (within a partition it has at most
one entry).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from checker.fit import ANY, NIL, Shape, Signature, one_of, sequence
from checker.model import Model, Operation
from checker.models.values import freeze, show

_NO_KEY = object()


_TEXT = Shape("a string", lambda v: isinstance(v, str))


class KVModel(Model):
    name = "kv"
    OPERATIONS = {  # see checker.fit; a get's invoke may name only its key, or nothing
        "get": Signature(one_of(NIL, sequence(ANY, ANY, optional=1)), ANY),
        "put": Signature(sequence(ANY, ANY), ANY),
        "append": Signature(sequence(ANY, _TEXT), ANY),
    }

    def __init__(self, initial: Any = "") -> None:
        self.initial = "" if initial is None else freeze(initial)

    def init(self) -> Hashable:
        return ()

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        return self.step_fn(op)(state)

    def step_fn(self, op: Operation) -> Callable[[tuple], tuple[bool, tuple]]:
        """``step`` for one op, its key and values decoded once."""
        key, get, put = freeze(op_key(op)), self._get, self._set
        if op.f == "get":
            if op.ret is None:
                return lambda state: (True, state)
            out = op.output
            seen = freeze(out[1] if isinstance(out, list | tuple) else out)
            return lambda state: (get(state, key) == seen, state)
        if op.f == "put":
            value = freeze(op.input[1])
            return lambda state: (True, put(state, key, value))
        if op.f == "append":
            suffix = op.input[1]
            return lambda state: (True, put(state, key, get(state, key) + suffix))
        return lambda state: (False, state)

    def read_only(self, op: Operation) -> bool:
        return op.f == "get"

    def partition(self, ops: list[Operation]) -> list[list[Operation]]:
        by_key: dict[Any, list[Operation]] = {}
        for op in ops:
            value = op.input
            # The common case first (a string key in the invoke), with no calls.
            key = value[0] if type(value) is list and value and type(value[0]) is str else freeze(op_key(op))
            found = by_key.get(key)
            if found is None:
                by_key[key] = [op]
            else:
                found.append(op)
        return list(by_key.values())

    def describe_op(self, op: Operation) -> str:
        key = show(op_key(op))
        if op.f == "get":
            out = op.output
            value = out[1] if isinstance(out, list | tuple) else out
            return f"get({key}) -> {show(value) if op.ret is not None else '?'}"
        return f"{op.f}({key}, {show(op.input[1])})" + ("" if op.ret is not None else " -> ?")

    def describe_state(self, state: Hashable) -> str:
        if not state:
            return f"every key {show(self.initial)}"
        return ", ".join(f"{show(k)}={show(v)}" for k, v in state)

    def expected(self, state: Hashable, op: Operation) -> str:
        if op.f == "get":
            return show(self._get(state, freeze(op_key(op))))
        return "ok"

    def _get(self, state: tuple, key: Any) -> Any:
        for k, v in state:
            if k == key:
                return v
        return self.initial

    def _set(self, state: tuple, key: Any, value: Any) -> tuple:
        rest = [(k, v) for k, v in state if k != key]
        if value != self.initial:
            rest.append((key, value))
            rest.sort(key=lambda kv: repr(kv[0]))
        return tuple(rest)


def op_key(op: Operation) -> Any:
    """The key an op touches: from its input, or for a get invoked without one, its output."""
    for value in (op.input, op.output):
        if isinstance(value, list | tuple) and value:
            return value[0]
    return _NO_KEY
