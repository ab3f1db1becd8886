"""The plug-in interface between the Raft layer and an application.

A state machine sees operations as plain dicts ``{"op": name, **args}`` and answers
with a :class:`Result`. It must be deterministic: the same sequence of ``apply`` calls
gives the same state and results on every node. Raft itself never looks inside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Result:
    """``status`` is "ok" or a machine-readable error code; ``value`` the payload."""

    status: str
    value: Any = None
    error: str = ""  # human-readable explanation for non-ok statuses

    def to_wire(self) -> dict[str, Any]:
        return {"status": self.status, "value": self.value, "error": self.error}


class InvalidRequest(ValueError):
    """A request that can never succeed (unknown op, wrong argument types); never enters the log."""


@dataclass(frozen=True, slots=True)
class OpSpec:
    """Declares one operation: its argument names with types, and whether it only reads."""

    args: dict[str, type | tuple[type, ...]] = field(default_factory=dict)
    read_only: bool = False


class StateMachine(Protocol):
    name: str
    ops: dict[str, OpSpec]  # every operation this machine understands

    def apply(self, op: dict[str, Any]) -> Result:
        """Apply a validated write (or read) op; reads must not change state."""

    def snapshot(self) -> bytes:
        """Serialise the whole state, deterministically."""

    def restore(self, data: bytes) -> None:
        """Replace the whole state with one produced by :meth:`snapshot`."""


def validate(machine: StateMachine, request: Any) -> dict[str, Any]:
    """Check an op dict against the machine's declared ops; returns a clean copy.

    Raises InvalidRequest naming what is wrong, so a client gets a clear error and the
    log never holds a command that some node could choke on.
    """
    if not isinstance(request, dict):
        raise InvalidRequest(f"operation must be a map, got {type(request).__name__}")
    name = request.get("op")
    spec = machine.ops.get(name) if isinstance(name, str) else None
    if spec is None:
        known = ", ".join(sorted(machine.ops))
        raise InvalidRequest(
            f"unknown operation {name!r} for the {machine.name} state machine (known: {known})"
        )
    clean: dict[str, Any] = {"op": name}
    for arg, kind in spec.args.items():
        if arg not in request:
            raise InvalidRequest(f"{name}: missing argument {arg!r}")
        value = request[arg]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise InvalidRequest(f"{name}: argument {arg!r} must be {_type_name(kind)}, got bool")
        if not isinstance(value, kind):
            raise InvalidRequest(
                f"{name}: argument {arg!r} must be {_type_name(kind)}, got {type(value).__name__}"
            )
        clean[arg] = value
    if len(request) != len(clean):  # every key of clean is in request: the rest are extra
        extra = set(request) - set(spec.args) - {"op"}
        raise InvalidRequest(f"{name}: unexpected argument(s) {', '.join(sorted(map(str, extra)))}")
    return clean


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("nil" if k is type(None) else k.__name__ for k in kinds)
