"""Independent keys: many registers in one history, each value tagged with its key.

Jepsen's ``independent`` generator runs a register workload on many keys at once and
writes every value as a tuple ``[key value]``: ``write [k 3]``, ``read [k nil]`` then
``ok read [k 3]``, ``cas [k [3 4]]``. Read as one register, such a history is nonsense (a
read of ``[x 1]`` after a write of ``[y 2]`` looks stale), so each key is checked alone
with the model the key's values follow. :func:`independent` makes that keyed model from a
single-register model: the history is split by key, and every hook strips the key before
it asks the inner model.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from checker.fit import ANY, Signature, sequence
from checker.model import Model, Operation
from checker.models.values import freeze, show

PREFIX = "independent-"


class IndependentModel(Model):
    """The keyed form of ``INNER`` (set by :func:`independent`); values are ``[key, value]``."""

    INNER: type[Model]

    def __init__(self, initial: Any = None) -> None:
        self.inner: Model = self.INNER() if initial is None else self.INNER(initial)
        self.initial = self.inner.initial

    def init(self) -> Hashable:
        return self.inner.init()

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        return self.inner.step(state, unkeyed(op))

    def step_fn(self, op: Operation) -> Callable[[Hashable], tuple[bool, Hashable]]:
        return self.inner.step_fn(unkeyed(op))

    def read_only(self, op: Operation) -> bool:
        return self.inner.read_only(unkeyed(op))

    def partition(self, ops: list[Operation]) -> list[list[Operation]]:
        by_key: dict[Any, list[Operation]] = {}
        for op in ops:
            by_key.setdefault(freeze(key_of(op)), []).append(op)
        return list(by_key.values())

    def describe_op(self, op: Operation) -> str:
        return f"{show(key_of(op))}: {self.inner.describe_op(unkeyed(op))}"

    def describe_state(self, state: Hashable) -> str:
        return self.inner.describe_state(state)

    def expected(self, state: Hashable, op: Operation) -> str:
        return self.inner.expected(state, unkeyed(op))


def independent(inner: type[Model]) -> type[Model]:
    """The keyed model over ``inner``: named ``independent-<inner>``, accepting the same
    operations with every invocation and ``ok`` value wrapped as ``[key, value]``."""
    operations = {
        f: Signature(sequence(ANY, sig.input), sequence(ANY, sig.output))
        for f, sig in inner.OPERATIONS.items()
    }
    return type(
        f"Independent{inner.__name__}",
        (IndependentModel,),
        {"INNER": inner, "name": PREFIX + inner.name, "OPERATIONS": operations, "__doc__": __doc__},
    )


def key_of(op: Operation) -> Any:
    """The key an operation touches, from its invocation (a completion may carry only a marker)."""
    value = op.input
    return value[0] if isinstance(value, list | tuple) and len(value) == 2 else None


def unkeyed(op: Operation) -> Operation:
    """``op`` as the inner model sees it: input and output without their key."""
    return Operation(
        op.id,
        op.process,
        op.f,
        _value(op.input),
        _value(op.output),
        op.call,
        op.ret,
        op.call_index,
        op.ret_index,
        op.node,
    )


def _value(value: Any) -> Any:
    return value[1] if isinstance(value, list | tuple) and len(value) == 2 else None
