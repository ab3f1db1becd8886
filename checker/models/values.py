"""Helpers shared by models: hashable copies of JSON-ish values, short descriptions."""

from __future__ import annotations

from typing import Any


def freeze(value: Any) -> Any:
    """A hashable equal-meaning copy: lists become tuples, dicts sorted item tuples.

    Model states must be hashable (the search memoizes them), and JSON readers give lists.
    """
    kind = type(value)
    if kind is str or kind is int or value is None:  # the common leaves, decided fast
        return value
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        return tuple([freeze(v) for v in value])
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    return value


def show(value: Any) -> str:
    """Values as a person writes them: nil for None, lists without quotes noise."""
    if value is None:
        return "nil"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)
