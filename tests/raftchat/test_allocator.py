"""The node's allocator tuning: freed memory goes back to the system instead of staying with malloc.

Each case runs the node's own code paths that used to strand memory (account keys derived by
scrypt in the executor threads, snapshot bytes read back from a forked child) in a fresh Python
process, tuned or not, and reads malloc's account of the bytes it keeps free.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from raftchat import allocator

CHILD = r"""
import asyncio, json, sys
from raftchat import allocator
from raftchat.accounts import KeyDeriver
from raftchat.forked import ForkedBytes

tuned = allocator.tune()

async def main():
    keys = KeyDeriver("cluster", {"create_account": "user"})
    small = []
    for round in range(2):  # new accounts: one scrypt (4 MiB working area) each, in the executor
        ops = [{"op": "create_account", "user": f"u{round}-{i}", "password": "pw"} for i in range(8)]
        await asyncio.gather(*(keys.replace_password(op) for op in ops))
        for size in (3, 5, 4):  # snapshots of a few MiB, with small objects kept between them
            data = await ForkedBytes(lambda: bytes(size << 20)).result()
            small.append(bytes(200) + data[:8])
            del data
            allocator.release(0)
    usage = allocator.usage()  # while the executor's threads (and their arenas) still live
    print(json.dumps({"tuned": tuned, "free": usage["free"] if usage else None}))

asyncio.run(main())
"""

MIB = 1 << 20
pytestmark = pytest.mark.skipif(
    allocator.usage() is None, reason="not glibc 2.33+ (no mallopt/mallinfo2): nothing is tuned there"
)


def run_child(tuning: str) -> dict:
    env = {**os.environ, allocator.ENV: tuning}
    for name in allocator._GLIBC_VARIABLES:
        env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_tuned_node_keeps_little_freed_memory() -> None:
    tuned = run_child("1")
    assert tuned["tuned"] is True
    assert tuned["free"] < 4 * MIB, f"malloc keeps {tuned['free'] / MIB:.1f} MiB free with the tuning"


def test_glibc_defaults_keep_the_freed_buffers() -> None:
    """The same work with the tuning off strands several MiB: what the tuned case is measured against."""
    untuned = run_child("0")
    assert untuned["tuned"] is False
    assert untuned["free"] > 8 * MIB, f"only {untuned['free'] / MIB:.1f} MiB kept without the tuning"


def test_the_operators_own_malloc_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert allocator.tune() is False


def test_trims_are_spaced_out() -> None:
    if not allocator.release(0):
        pytest.skip(f"{allocator.ENV}=0 in this environment")
    assert allocator.release(3600) is False  # one just ran
