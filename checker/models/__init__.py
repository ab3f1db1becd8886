"""The sequential models the checker knows, by name.

Every model subclasses the ``Model`` protocol (checker/model.py), which declares each hook
the checker calls (``step_fn``, ``read_only``, ``partition``, ``initial``, ...) with its
default.
"""

from __future__ import annotations

from typing import Any

from checker.model import Model
from checker.models.cas_register import CasRegisterModel
from checker.models.chat import ChatModel
from checker.models.independent import independent
from checker.models.kv import KVModel
from checker.models.register import RegisterModel

MODELS: dict[str, type] = {
    "register": RegisterModel,
    "cas-register": CasRegisterModel,
    "kv": KVModel,
    "chat": ChatModel,
    # Jepsen's independent keys: [key value] tuples, each key a register of its own.
    "independent-register": independent(RegisterModel),
    "independent-cas-register": independent(CasRegisterModel),
}


def get_model(name: str, initial: Any = None) -> Model:
    """A fresh model (models may keep caches, so one per check). ``initial`` None = default."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None
    return cls() if initial is None else cls(initial)
