"""Linearizability checking of histories against sequential models.

``check(ops, model)`` (``checker/verify.py``) is the entry point: pairing (``prepare``),
partitions decided by inference (``infer``) or search (``linearizable``, in turns by
``schedule``), a failure explained (``failure``) and shrunk (``shrink``). This module only
re-exports the public names.
"""

from checker.failure import explain, stuck_ops
from checker.models import get_model
from checker.result import CheckResult, Failure, Stuck
from checker.verify import check, check_operations

__all__ = [
    "check",
    "check_operations",
    "explain",
    "get_model",
    "stuck_ops",
    "CheckResult",
    "Failure",
    "Stuck",
]
