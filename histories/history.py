"""What a reader returns: the operations plus what the file says about how to check them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from histories.op import Op


@dataclass(slots=True)
class History:
    """A history read from ``path``.

    ``model_hint`` names the model the file was recorded for ("cas-register", "kv") when
    the format says so, and ``initial_hint`` the model's initial value (meaningful only
    with a model hint). ``dialect`` names the conventions that turned the file's values
    into canonical ones. ``synthetic_time`` is true when the file had no times and
    ``Op.time`` was set to the index: order is all it then carries. ``metadata`` is the
    file's own record of what it is (``histories.meta``), when it has one.
    """

    ops: list[Op]
    format: str
    model_hint: str | None
    initial_hint: Any
    path: str
    dialect: str = "canonical"
    synthetic_time: bool = False
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.ops)
