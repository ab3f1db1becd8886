"""Systems under test: raftchat and databases other people wrote, behind one interface.

``make_system(name, options)`` builds one from a plan's ``system`` and ``system_options`` and
rejects an unknown system or option before anything runs; ``SYSTEMS[name]`` is the class. A
system's module is imported only when it is chosen, so a client library that one system needs
never stops another from running.
"""

from __future__ import annotations

import importlib
from typing import Any

from systems.base import SystemStartError, SystemUnavailable

# name -> "module:Class"
SYSTEMS: dict[str, str] = {
    "raftchat": "systems.raftchat:RaftchatSystem",
    "etcd": "systems.etcd:EtcdSystem",
    "zookeeper": "systems.zookeeper:ZooKeeperSystem",
    "redis": "systems.redis:RedisSystem",
}

__all__ = ["SYSTEMS", "SystemStartError", "SystemUnavailable", "make_system", "system_class"]


def system_class(name: str) -> type:
    if not isinstance(name, str) or name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r}; known systems: {', '.join(SYSTEMS)}")
    module, _, cls = SYSTEMS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def make_system(name: str, options: dict[str, Any] | None = None) -> Any:
    """The system ``name`` with these options; ValueError naming what is wrong."""
    return system_class(name)(options)
