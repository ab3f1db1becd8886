"""What a sequential model is, and the operation record the search works on.

A model is a sequential specification: an initial state and a step function that says
whether an operation, with the result it returned, is possible from a state, and what
state follows. States must be hashable (the search memoizes them) and should be cheap
to compare. Adding a model is one file in ``checker/models/``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol


@dataclass(slots=True)
class Operation:
    """An invocation paired with its completion.

    ``ret`` is None when the outcome is unknown (``info``, or still open at the end): the
    operation may take effect at any time after ``call``, or never, and ``output`` is None.
    """

    id: int  # position among the history's operations, for reports
    process: Any
    f: str
    input: Any
    output: Any
    call: int  # ns
    ret: int | None  # ns; None = unknown outcome
    call_index: int = -1  # index of the invoke record in the history
    ret_index: int = -1  # index of the completion record, -1 if none
    node: str | None = None  # the node that served it, as the history says (for people, not the search)

    @property
    def known(self) -> bool:
        return self.ret is not None


class Model(Protocol):
    """A sequential specification. Models subclass this protocol, so that the optional hooks
    (``initial``, ``step_fn``, ``read_only``, ``partition``) have their defaults; callers
    use every hook directly, never through ``getattr``."""

    name: str
    # The operations the model accepts and the shapes of their values (``checker.fit``):
    # a history with anything else is refused before the search.
    OPERATIONS: dict[str, Any]
    # The value every register or key starts with, for models that have one: inference
    # (``checker.infer``) reads it; None for the others.
    initial: Any = None

    def init(self) -> Hashable:
        """The state before any operation."""
        ...

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        """Can ``op`` (with its observed output; None when unknown) happen in ``state``?
        Returns (possible, next state). For an op with an unknown outcome the output must
        be ignored."""
        ...

    def step_fn(self, op: Operation) -> Callable[[Hashable], tuple[bool, Hashable]]:
        """``step`` for one op as a closure over the states (the search calls it once per
        state, so a model may decode the op's values once here). Default: ``step``."""
        return partial(self.step, op=op)

    def read_only(self, op: Operation) -> bool:
        """True when linearizing ``op`` (with its observed output) never changes the state,
        whatever the state. The search uses it twice: such an op with an unknown outcome
        constrains nothing and is dropped, and one with a known outcome that fits the
        current state is placed at once without branching. Default: no op is."""
        return False

    def partition(self, ops: list[Operation]) -> list[list[Operation]]:
        """Split into independent sub-histories (P-compositionality). Default: [ops]."""
        return [ops]

    def describe_op(self, op: Operation) -> str:
        """Short text for reports, e.g. ``cas(1, 2) -> ok``."""
        ...

    def describe_state(self, state: Hashable) -> str:
        """Short text for reports."""
        ...

    def expected(self, state: Hashable, op: Operation) -> str:
        """What the model would have returned for ``op`` in ``state`` (for counterexamples)."""
        ...
