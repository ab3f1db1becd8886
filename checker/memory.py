"""How much memory the search may take, and how much it takes now.

A search over a hard partition memoizes configurations without end; on a machine that
also runs the system under test, the checker must stop before it takes the machine down.
The bound is on the growth of the process's resident memory while checking (what the
searches add), read from ``/proc/self/statm`` (Linux); elsewhere from ``getrusage``'s
peak, which only grows, so a bound reached there stays reached.
"""

from __future__ import annotations

import os
import resource
from functools import cache

MIB = 1 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@cache
def machine_memory() -> int | None:
    """Total physical memory in bytes, or None when the system does not say (read once: it
    does not change, and a small check should not pay for a file read)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_bound() -> int:
    """A quarter of the machine's memory (1 GiB when it cannot be read), in bytes."""
    total = machine_memory()
    return total // 4 if total else 1 << 30


def resident() -> int:
    """The process's resident memory now, in bytes (its peak where 'now' is not readable)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak * 1024 if os.uname().sysname != "Darwin" else peak


def peak_resident() -> int:
    """The process's peak resident memory so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * 1024 if os.uname().sysname != "Darwin" else peak
