"""Declared workload options, checked before a run starts.

Options come from a plan file that a person wrote, so a misspelt name, a string where a
number belongs or a count of zero must stop the run at once with a message naming the
option and what it expects, instead of surfacing minutes later as a strange history.
Each workload declares its options as a dataclass whose fields carry a default and a
line of documentation (``option``); the default's type is the type the option accepts.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, TypeVar

T = TypeVar("T")


def option(
    default: Any,
    doc: str,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field with its documentation and bounds (or its only allowed values);
    dict defaults are copied per instance."""
    metadata = {"doc": doc, "min": minimum, "max": maximum, "choices": choices}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def parse(cls: type[T], options: Any, workload: str, kind: str = "workload") -> T:
    """An instance of the options dataclass ``cls`` from a plan's mapping, or ValueError.

    ``kind`` names what has the options in messages ("workload", or "system" for a system's)."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ValueError(
            f"{kind} {workload!r}: options must be a mapping of name to value, got {_shown(options)}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in options if k not in fields)
    if unknown:
        raise ValueError(
            f"{kind} {workload!r}: unknown option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)}; known options: {', '.join(fields)}"
        )
    defaults = cls()
    values = {}
    for name, value in options.items():
        owner = f"{kind} {workload!r}"
        values[name] = _check(owner, name, value, getattr(defaults, name), fields[name].metadata)
    return cls(**values)


def describe(cls: type, workload: str, kind: str = "workload") -> str:
    """One line per option: name, type, default and why one would change it."""
    defaults = cls()
    lines = [f"{workload} {kind} options:"]
    for f in dataclasses.fields(cls):
        default = getattr(defaults, f.name)
        lines.append(f"  {f.name} = {default!r}: {f.metadata['doc']}")
    return "\n".join(lines)


def _check(owner: str, name: str, value: Any, default: Any, meta: Any) -> Any:
    where = f"{owner}: option {name!r}"
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(f"{where} must be {_kind(default)}, got {_shown(value)}")
    if isinstance(default, dict):
        return _check_weights(where, value, default)
    if isinstance(default, float):
        value = float(value)
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ValueError(f"{where} must be one of {', '.join(choices)}, got {value!r}")
    low, high = meta.get("min"), meta.get("max")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if low is not None and value < low:
            raise ValueError(f"{where} must be at least {low}, got {value!r}")
        if high is not None and value > high:
            raise ValueError(f"{where} must be at most {high}, got {value!r}")
    return value


def _check_weights(where: str, value: dict, default: dict) -> dict[str, float]:
    """Weights name known operations with non-negative numbers; unnamed ones keep their default."""
    unknown = sorted(str(k) for k in value if k not in default)
    if unknown:
        raise ValueError(
            f"{where} names unknown operation{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)}; operations: {', '.join(default)}"
        )
    merged = dict(default)
    for op, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise ValueError(f"{where}: the weight of {op!r} must be a number >= 0, got {_shown(weight)}")
        merged[op] = float(weight)
    if not any(w > 0 for w in merged.values()):
        raise ValueError(f"{where}: at least one operation needs a weight above 0")
    return merged


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, dict):
        return "a mapping of operation to weight"
    return type(default).__name__


def _shown(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def pick(weights: dict[str, float], rng: random.Random) -> str:
    """One operation name, drawn with the given relative weights."""
    return rng.choices(list(weights), list(weights.values()))[0]
