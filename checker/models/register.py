"""A read/write register: the simplest sequential specification.

``read`` returns the current value (input None); ``write`` sets it. The register starts
at ``initial`` (None, i.e. nil, unless told otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from checker.fit import ANY, NIL, Signature
from checker.model import Model, Operation
from checker.models.values import freeze, show


class RegisterModel(Model):
    name = "register"
    OPERATIONS = {"read": Signature(NIL, ANY), "write": Signature(ANY, ANY)}  # see checker.fit

    def __init__(self, initial: Any = None) -> None:
        self.initial = freeze(initial)

    def init(self) -> Hashable:
        return self.initial

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        return self.step_fn(op)(state)

    def step_fn(self, op: Operation) -> Callable[[Hashable], tuple[bool, Hashable]]:
        """``step`` for one op, its values frozen once (the search calls it per state)."""
        if op.f == "read":
            if op.ret is None:
                return lambda state: (True, state)
            seen = freeze(op.output)
            return lambda state: (state == seen, state)
        if op.f == "write":
            value = freeze(op.input)
            return lambda state: (True, value)
        return lambda state: (False, state)  # an operation this register does not have

    def read_only(self, op: Operation) -> bool:
        """A read never changes the value: the search may place it greedily."""
        return op.f == "read"

    def partition(self, ops: list[Operation]) -> list[list[Operation]]:
        return [ops]

    def describe_op(self, op: Operation) -> str:
        if op.f == "read":
            return f"read() -> {show(op.output) if op.ret is not None else '?'}"
        return f"{op.f}({show(op.input)})" + ("" if op.ret is not None else " -> ?")

    def describe_state(self, state: Hashable) -> str:
        return show(state)

    def expected(self, state: Hashable, op: Operation) -> str:
        if op.f == "read":
            return show(state)
        if op.f == "write":
            return "ok"
        return f"no operation {op.f!r} on a register"
