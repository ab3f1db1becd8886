"""Keep glibc's malloc from hoarding freed memory in a node that runs for hours.

A node's live Python objects stay near the size of its state (tracemalloc says so), yet its
resident memory climbed in long runs. The cause is glibc's *dynamic* mmap threshold: a block
of 128 KiB or more is first given its own mapping, but once such a block is freed, the
threshold rises to its size (up to 32 MiB) and the trim threshold to twice that. From then on
the node's large, short-lived buffers (scrypt's 4 MiB working area in every executor thread
that derives an account key, snapshot bytes read back from the forked child and received in
chunks, state digests, big read answers) come out of the heaps instead, and a heap hands
memory back only from its top, and only past the raised trim threshold: every thread's arena
keeps its 4 MiB, and the main heap keeps whatever its holes add up to.

Fixing the thresholds turns the dynamic adjustment off (mallopt(3)): blocks of 1 MiB and more
are always mapped and unmapped, and a heap is trimmed once 2 MiB are free at its top.
:func:`release` (``malloc_trim``) also hands back free pages inside the heaps; the node calls it
after a snapshot, when the biggest buffers have just been freed. Elsewhere (musl, macOS) both
do nothing. ``RAFTCHAT_MALLOC_TUNING=0`` leaves the allocator as it is (for comparisons, see
``bench/node_memory.py``); glibc's own ``MALLOC_*_`` variables win when set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from typing import Any

ENV = "RAFTCHAT_MALLOC_TUNING"
M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
# Blocks from 1 MiB up are mapped: scrypt's 4 MiB, snapshot bytes, big answers. Not lower: msgpack
# takes a 256 KiB buffer for every packb, and mapping that costs ~70 us per call instead of ~5.
MMAP_THRESHOLD = 1 << 20
TRIM_THRESHOLD = 2 << 20  # a heap keeps at most this much free at its top (not trimmed at every free)
RELEASE_EVERY = 5.0  # seconds between two trims
_GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def _libc() -> Any:
    """glibc, or None when this process runs on another C library."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()
_released_at = float("-inf")


def tune() -> bool:
    """Fix glibc's mmap and trim thresholds for this process; True if they were set."""
    if _LIBC is None or os.environ.get(ENV, "1").strip() == "0":
        return False
    if any(name in os.environ for name in _GLIBC_VARIABLES):
        return False  # the operator tuned malloc already
    ok = _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return _LIBC.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok


def release(min_interval: float = RELEASE_EVERY) -> bool:
    """Hand free heap pages back to the system (glibc's malloc_trim), at most once per
    ``min_interval`` seconds: a trim walks every free block, some milliseconds on a big heap.
    True if it trimmed; nothing happens elsewhere than on glibc."""
    global _released_at
    if _LIBC is None or os.environ.get(ENV, "1").strip() == "0":
        return False
    now = time.monotonic()
    if now - _released_at < min_interval:
        return False
    _released_at = now
    _LIBC.malloc_trim(0)
    return True


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def usage() -> dict[str, int] | None:
    """malloc's own account over all arenas (glibc 2.33+): bytes taken from the system in heaps
    (``heap``) and in mappings (``mapped``), bytes in use, and bytes free inside the heaps
    (``free``; after a trim, the pages of large free blocks are back with the system already)."""
    if _LIBC is None or not hasattr(_LIBC, "mallinfo2"):
        return None
    _LIBC.mallinfo2.restype = _MallInfo2
    info = _LIBC.mallinfo2()
    return {
        "heap": info.arena,
        "mapped": info.hblkhd,
        "in_use": info.uordblks + info.hblkhd,
        "free": info.fordblks,
    }
