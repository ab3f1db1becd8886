"""Raw records -> a checked History: the steps every non-jsonl reader shares."""

from __future__ import annotations

from typing import Any

from histories.conventions import translate
from histories.history import History
from histories.raw import RawOp
from histories.validate import check_ops


def assemble(
    raws: list[RawOp], path: str, format: str, dialect: str, model_hint: str | None, initial_hint: Any
) -> History:
    """Translate ``raws`` with ``dialect``, check indexes and pairing, and wrap the result."""
    ops, synthetic = translate(raws, dialect, path)
    check_ops(ops, [r.line for r in raws], path)
    return History(ops, format, model_hint, initial_hint, path, dialect, synthetic)
