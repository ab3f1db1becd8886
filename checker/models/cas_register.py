"""A register with compare-and-set, as Jepsen's cas-register workloads use it.

``cas`` has input ``[expected, new]`` and, when it completed, output ``[expected, new,
swapped]``. swapped true: the register held ``expected`` and now holds ``new``. swapped
false is a compare that failed: a definite observation that the register did not hold
``expected`` at that moment (it is unchanged). An ok output of only ``[expected, new]``
means it swapped. With an unknown outcome a cas swaps if, and only if, the value matches.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from checker.fit import ANY, BOOL, Signature, sequence
from checker.model import Operation
from checker.models.register import RegisterModel
from checker.models.values import freeze, show


class CasRegisterModel(RegisterModel):
    name = "cas-register"
    OPERATIONS = {
        **RegisterModel.OPERATIONS,
        "cas": Signature(sequence(ANY, ANY), sequence(ANY, ANY, BOOL, optional=1)),
    }

    def __init__(self, initial: Any = None) -> None:
        super().__init__(initial)

    def step_fn(self, op: Operation) -> Callable[[Hashable], tuple[bool, Hashable]]:
        if op.f != "cas":
            return super().step_fn(op)
        expected, new = freeze(op.input[0]), freeze(op.input[1])
        if op.ret is None:
            return lambda state: (True, new if state == expected else state)
        if swapped(op):
            return lambda state: (state == expected, new)
        return lambda state: (state != expected, state)

    def read_only(self, op: Operation) -> bool:
        """Reads, compares that failed, and swaps of a value for itself change nothing."""
        if op.f == "cas" and op.ret is not None:
            return not swapped(op) or freeze(op.input[0]) == freeze(op.input[1])
        return op.f == "read"

    def describe_op(self, op: Operation) -> str:
        if op.f != "cas":
            return super().describe_op(op)
        outcome = "?" if op.ret is None else ("ok" if swapped(op) else "failed")
        return f"cas({show(op.input[0])}, {show(op.input[1])}) -> {outcome}"

    def expected(self, state: Hashable, op: Operation) -> str:
        if op.f != "cas":
            return super().expected(state, op)
        if state == freeze(op.input[0]):
            return f"ok (the value was {show(state)})"
        return f"failed (the value was {show(state)})"


def swapped(op: Operation) -> bool:
    """Did a compare-and-set that completed (``[expected, new, swapped]``) swap?"""
    out = op.output
    return bool(out[2]) if isinstance(out, list | tuple) and len(out) > 2 else True
