"""One history record, with Jepsen's fields.

A history is a list of these in the order they happened. An operation appears twice:
once as ``invoke`` and once as its completion (``ok``, ``fail`` or ``info``), both from
the same ``process``; a process has at most one operation in flight.

Canonical values (every reader translates its format's conventions into these, so that a
model has one meaning whatever the file said):

* register / cas-register: ``read`` -> invoke ``None``, ok = the value read;
  ``write`` -> the value; ``cas`` -> invoke ``[expected, new]``, completion
  ``[expected, new, swapped]``: an ``ok`` with ``swapped`` false is a compare that failed,
  a definite observation that the register did not hold ``expected``. ``fail`` always
  means the operation did not take place. A read whose result is unknown is ``info``.
* kv: ``[key, value]`` for ``get``/``put``/``append`` (get's invoke value is ``None``).
* chat: invoke value = the operation's arguments plus ``"group"`` (the independent user
  group it touches); ok value = ``{"status": ..., "value": ...}`` as raftchat answered.
* ``process`` is ``"nemesis"`` for fault events (``f`` names the fault, ``value`` what was
  done); checkers skip those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TYPES = ("invoke", "ok", "fail", "info")
NEMESIS = "nemesis"


@dataclass(slots=True)
class Op:
    index: int
    type: str
    process: int | str
    f: str
    value: Any = None
    time: int = 0  # nanoseconds since the start of the test (monotonic)
    node: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "index": self.index,
            "type": self.type,
            "process": self.process,
            "f": self.f,
            "value": self.value,
            "time": self.time,
        }
        if self.node is not None:
            data["node"] = self.node
        if self.error is not None:
            data["error"] = self.error
        return data


class HistoryError(ValueError):
    """A history file that cannot be read; says which file, which line and what is wrong."""

    def __init__(self, path: str, line: int | None, what: str) -> None:
        self.path, self.line, self.what = path, line, what
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {what}")
