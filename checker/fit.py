"""Does a model fit a history? Refusing a history before searching it, never judging it.

A model's step function rejects an operation it does not know, so checking a history with
the wrong model gives a verdict that means nothing: a chat model "linearizes" a register
history's reads of nil, a register model calls a cas history a violation. Each model
therefore declares, as the class attribute ``OPERATIONS``, the operations it accepts and
the shape of their values (:class:`Signature`); :func:`misfit` compares a history with that
declaration, and the check is a usage error while anything does not fit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from histories.format import NEMESIS, Op

EXAMPLES = 3  # records named per kind of misfit


@dataclass(frozen=True)
class Shape:
    """A kind of value: ``name`` for messages, ``test`` to tell whether a value is one."""

    name: str
    test: Callable[[Any], bool]

    def __call__(self, value: Any) -> bool:
        return self.test(value)


ANY = Shape("any value", lambda v: True)
NIL = Shape("nil", lambda v: v is None)
BOOL = Shape("true or false", lambda v: isinstance(v, bool))


def sequence(*items: Shape, optional: int = 0) -> Shape:
    """A list of ``len(items)`` values (the last ``optional`` of them may be left out)."""
    low = len(items) - optional
    name = "[" + ", ".join(i.name for i in items) + "]"

    def test(value: Any) -> bool:
        if not isinstance(value, list | tuple) or not low <= len(value) <= len(items):
            return False
        return all(shape(v) for shape, v in zip(items, value, strict=False))

    return Shape(name, test)


def one_of(*shapes: Shape) -> Shape:
    return Shape(" or ".join(s.name for s in shapes), lambda v: any(s(v) for s in shapes))


def mapping(*required: str, optional: Iterable[str] = ()) -> Shape:
    """An object with exactly the ``required`` keys, and maybe some ``optional`` ones."""
    allowed = set(required) | set(optional)
    name = "{" + ", ".join(required) + (", ..." if optional else "") + "}"

    def test(value: Any) -> bool:
        return isinstance(value, dict) and set(required) <= value.keys() <= allowed

    return Shape(name, test)


@dataclass(frozen=True)
class Signature:
    """What an operation's invocation carries (``input``) and what an ``ok`` returns (``output``)."""

    input: Shape = ANY
    output: Shape = ANY


@dataclass
class Misfit:
    """Why a history does not fit a model: operations it does not know, and values of the wrong shape."""

    model: str
    unknown: Counter[str] = field(default_factory=Counter)  # f -> how many records
    shapes: list[str] = field(default_factory=list)  # "record 12: cas input [1] is not [any, any]"
    fitting: list[str] = field(default_factory=list)  # the models that would fit (filled by ``explain``)

    def __bool__(self) -> bool:
        return bool(self.unknown or self.shapes)

    def message(self) -> str:
        parts = []
        if self.unknown:
            counts = self.unknown.most_common()
            known = ", ".join(f"{f} ({n} record{'s' if n != 1 else ''})" for f, n in counts)
            parts.append(f"operations model {self.model} does not know: {known}")
        if self.shapes:
            parts.append("values model " + self.model + " cannot read: " + "; ".join(self.shapes))
        fits = (
            f"models that fit this history: {', '.join(self.fitting)} (pass --model)"
            if self.fitting
            else "no model fits this history"
        )
        return f"the history does not fit model {self.model}: " + "; ".join(parts) + f"; {fits}"


def misfit(ops: Iterable[Op], name: str, operations: Mapping[str, Signature]) -> Misfit:
    """How the client records of ``ops`` do not fit a model declaring ``operations`` (falsy if they fit).

    Invocations are compared with an operation's input shape and ``ok`` completions with its
    output; ``fail`` and ``info`` completions carry no result, and nemesis records are events.
    """
    found = Misfit(name)
    bad: Counter[tuple[str, str]] = Counter()
    for op in ops:
        if op.process == NEMESIS:
            continue
        signature = operations.get(op.f)
        if signature is None:
            found.unknown[op.f] += 1
            continue
        if op.type == "invoke":
            shape, what = signature.input, "input"
        elif op.type == "ok":
            shape, what = signature.output, "output"
        else:
            continue
        if not shape(op.value) and bad[op.f, what] < EXAMPLES:
            bad[op.f, what] += 1
            found.shapes.append(f"record {op.index}: {op.f} {what} {_show(op.value)} is not {shape.name}")
    return found


def explain(ops: list[Op], name: str, models: Mapping[str, type]) -> Misfit:
    """``misfit`` for model ``name``, with ``fitting`` naming every model of ``models`` that fits."""
    found = misfit(ops, name, models[name].OPERATIONS)
    if found:
        found.fitting = [other for other, cls in models.items() if not misfit(ops, other, cls.OPERATIONS)]
    return found


def fitting_models(ops: list[Op], models: Mapping[str, type]) -> list[str]:
    """The names of the models whose declarations the history fits."""
    return [name for name, cls in models.items() if not misfit(ops, name, cls.OPERATIONS)]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
