"""A tiny key-value store: a second state machine that proves the plug-in interface is
generic, and a simple target for linearizability checks (cas gives definite outcomes)."""

from __future__ import annotations

from typing import Any

import msgpack

from raftchat.statemachine import InvalidRequest, OpSpec, Result

_FORMAT = 1
_VALUE = (str, int, type(None))
Value = str | int | None


class KVMachine:
    """Keys map to strings or integers. Storing ``None`` removes the key, because an
    absent key already reads as ``None``; keeping one representation per state keeps
    snapshots canonical."""

    name = "kv"
    ops: dict[str, OpSpec] = {
        "get": OpSpec({"key": str}, read_only=True),
        "put": OpSpec({"key": str, "value": _VALUE}),
        "append": OpSpec({"key": str, "value": str}),
        "cas": OpSpec({"key": str, "expected": _VALUE, "new": _VALUE}),
    }

    def __init__(self) -> None:
        self._data: dict[str, str | int] = {}

    def apply(self, op: dict[str, Any]) -> Result:
        """Dispatch a validated op (see :func:`raftchat.statemachine.validate`)."""
        name = op.get("op")
        if name not in self.ops:
            raise InvalidRequest(f"unknown operation {name!r} for the kv state machine")
        args = {k: v for k, v in op.items() if k != "op"}
        return getattr(self, f"_{name}")(**args)

    def _get(self, key: str) -> Result:
        return Result("ok", self._data.get(key))

    def _put(self, key: str, value: Value) -> Result:
        self._set(key, value)
        return Result("ok")

    def _append(self, key: str, value: str) -> Result:
        # An integer is appended to as its decimal text: deterministic, and never an error.
        new = str(self._data.get(key, "")) + value
        self._data[key] = new
        return Result("ok", new)

    def _cas(self, key: str, expected: Value, new: Value) -> Result:
        current = self._data.get(key)
        # Compare types too, so True can never match 1 even if an unvalidated op gets here.
        if current != expected or type(current) is not type(expected):
            return Result(
                "cas_mismatch", current, error=f"key {key!r} holds {current!r}, not the expected {expected!r}"
            )
        self._set(key, new)
        return Result("ok")

    def _set(self, key: str, value: Value) -> None:
        if value is None:
            self._data.pop(key, None)
        else:
            self._data[key] = value

    def snapshot(self) -> bytes:
        """Keys in sorted order, so equal states always give equal bytes."""
        data = {k: self._data[k] for k in sorted(self._data)}
        return msgpack.packb({"format": _FORMAT, "data": data}, use_bin_type=True)

    def restore(self, data: bytes) -> None:
        try:
            state = msgpack.unpackb(data, raw=False)
            if state["format"] != _FORMAT:
                raise ValueError(f"unsupported kv snapshot format {state['format']!r}")
            items = state["data"]
            if not all(isinstance(k, str) and isinstance(v, (str, int)) for k, v in items.items()):
                raise ValueError("keys must be strings and values strings or integers")
        except Exception as exc:
            raise ValueError(f"corrupt kv snapshot: {exc!r}") from exc
        self._data = dict(items)
