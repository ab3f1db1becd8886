"""The ``garbage`` fault: a misbehaving stranger throws malformed input at every node's ports.

Real services meet port scanners, clients of another version and half-written tools. While
the fault is on, a few connections at a time send inputs of every kind the node must refuse
cleanly, at a bounded rate, to the client and peer ports of every node; the workload runs
on meanwhile, so the history shows whether the nodes kept answering correctly, and the
node-health check fails the run if one crashed or logged a traceback. The stranger knows no
cluster secret: a node must refuse its peer hellos, never let them near Raft.

Inputs are drawn from the run's seeded ``random.Random``, so a night's garbage repeats with
its seed. Families (the same ones the port fuzz test draws with hypothesis):

- raw random bytes;
- length-prefixed frames (4-byte big-endian length, as raftchat frames) of random bytes,
  cut short, with a length header that lies, or announcing more than any limit;
- frames of well-formed msgpack of the wrong shape: random values, requests with fields of
  the wrong types, peer hellos for the wrong cluster or with a forged proof.
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
from dataclasses import dataclass, field
from typing import Any

import msgpack

RATE = 40.0  # inputs per second over all connections: enough to cover the families, no flood
CONNECTIONS = 2  # at once; a flood is the connection cap's business (raftchat/limits.py)
READ_TIMEOUT = 0.5  # seconds to read what a node answers before hanging up
_HEADER = struct.Struct(">I")
_OPS = (
    *("create_account", "check_account", "list_accounts", "delete_account", "send_message", "fetch_messages"),
    *("read", "write", "cas", "append"),
)
_FIELDS = ("user", "sender", "to", "text", "password", "key", "from_index", "pattern", "value")


def _scalar(rng: random.Random) -> Any:
    kind = rng.randrange(7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 1, 2**31, 2**63 - 1, -(2**63), 2**64 - 1, rng.randrange(-1000, 1000)])
    if kind == 3:
        return rng.choice([0.0, -0.0, float("nan"), float("inf"), rng.random() * 1e9])
    if kind == 4:
        ascii_or_not = [(32, 127), (0x80, 0x3000)]
        return "".join(chr(rng.randrange(*rng.choice(ascii_or_not))) for _ in range(rng.randrange(12)))
    if kind == 5:
        return rng.randbytes(rng.randrange(16))
    return "*" * rng.randrange(4)


def value(rng: random.Random, depth: int = 0) -> Any:
    """A random msgpack-able value: scalars, lists and maps nested a little."""
    kind = rng.randrange(10) if depth < 3 else 0
    if kind == 8:
        return [value(rng, depth + 1) for _ in range(rng.randrange(5))]
    if kind == 9:
        return {str(_scalar(rng)): value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return _scalar(rng)


def _request(rng: random.Random) -> dict[str, Any]:
    """A client request that looks right at a glance: known op names, fields of any type."""
    op: dict[str, Any] = {"op": rng.choice(_OPS) if rng.random() < 0.8 else value(rng)}
    for name in rng.sample(_FIELDS, rng.randrange(len(_FIELDS))):
        op[name] = value(rng)
    request: dict[str, Any] = {"id": value(rng) if rng.random() < 0.3 else rng.randrange(1 << 20), "op": op}
    for name in ("client", "seq", "ack", "meta"):
        if rng.random() < 0.3:
            request[name] = value(rng)
    return request


def _hello(rng: random.Random, node_ids: list[str]) -> dict[str, Any]:
    """A peer hello from a stranger: plausible names, no knowledge of the secret."""
    hello: dict[str, Any] = {
        "cluster": value(rng) if rng.random() < 0.5 else "raftchat",
        "from": rng.choice(node_ids) if rng.random() < 0.7 else value(rng),
        "to": rng.choice(node_ids) if rng.random() < 0.7 else value(rng),
        "nonce": os.urandom(16) if rng.random() < 0.7 else value(rng),
    }
    if rng.random() < 0.5:
        hello["proof"] = rng.randbytes(32)
    return hello


def _frame(payload: bytes, rng: random.Random) -> bytes:
    """``payload`` framed: whole, cut short, with a lying header, or announcing too much."""
    kind = rng.randrange(6)
    whole = _HEADER.pack(len(payload)) + payload
    if kind <= 2:
        return whole
    if kind == 3:
        return whole[: max(1, len(whole) - rng.randrange(1, 64))]
    if kind == 4:
        return _HEADER.pack(rng.randrange(1 << 32)) + payload
    return _HEADER.pack(rng.choice([(1 << 20) + 1, (1 << 32) - 1])) + rng.randbytes(rng.randrange(100))


def make_input(rng: random.Random, node_ids: list[str]) -> bytes:
    """One connection's worth of garbage: one to five pieces of the families above."""
    pieces = []
    for _ in range(rng.randrange(1, 6)):
        family = rng.randrange(6)
        if family == 0:
            pieces.append(rng.randbytes(rng.randrange(1, 200)))
        elif family == 1:
            pieces.append(_frame(rng.randbytes(rng.randrange(200)), rng))
        elif family == 2:
            pieces.append(_frame(msgpack.packb(value(rng), use_bin_type=True), rng))
        elif family == 3:
            pieces.append(_frame(msgpack.packb(_request(rng), use_bin_type=True), rng))
        elif family == 4:
            pieces.append(_frame(msgpack.packb(_hello(rng, node_ids), use_bin_type=True), rng))
        else:  # a Raft-looking message with fields of any type, as if the hello had passed
            message = [rng.randrange(8), *(value(rng) for _ in range(rng.randrange(9)))]
            pieces.append(_frame(msgpack.packb(message, use_bin_type=True), rng))
    return b"".join(pieces)


@dataclass
class Thrower:
    """Throws garbage at ``targets`` (name -> (host, port)) until stopped; counts what happened."""

    targets: dict[str, tuple[str, int]]
    node_ids: list[str]
    rng: random.Random
    rate: float = RATE
    connections: int = CONNECTIONS
    sent: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # connection refused or reset at once
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _stopping: bool = False

    def start(self) -> None:
        self._stopping = False
        names = sorted(self.targets)
        self._tasks = [
            asyncio.create_task(self._loop(names, random.Random(self.rng.random())))
            for _ in range(self.connections)
        ]

    async def stop(self) -> dict[str, Any]:
        """Stop throwing; what was sent, per target, for the history."""
        self._stopping = True  # a cancellation that a timeout swallows must still end the loop
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        return {"inputs": sum(self.sent.values()), "sent": dict(self.sent), "refused": dict(self.refused)}

    async def _loop(self, names: list[str], rng: random.Random) -> None:
        pause = self.connections / self.rate
        while not self._stopping:
            name = rng.choice(names)
            data = make_input(rng, self.node_ids)
            if await _throw(self.targets[name], data):
                self.sent[name] = self.sent.get(name, 0) + 1
            else:
                self.refused[name] = self.refused.get(name, 0) + 1
            await asyncio.sleep(pause)


async def _throw(address: tuple[str, int], data: bytes) -> bool:
    """Send ``data`` on a fresh connection and read the answer for a moment; False if refused."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), READ_TIMEOUT * 4)
    except (OSError, TimeoutError):
        return False  # a node that is down, paused or cut off by another fault
    try:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
        writer.write_eof()
        deadline = asyncio.get_running_loop().time() + READ_TIMEOUT
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            if not await asyncio.wait_for(reader.read(65536), left):
                break
    except (OSError, TimeoutError):
        pass  # hung up on: what a node should do with garbage
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), READ_TIMEOUT)
        except (OSError, TimeoutError):
            pass
    return True


def targets_of(cluster: Any) -> dict[str, tuple[str, int]]:
    """Every port of every node of ``cluster``: ``n1/client`` and ``n1/peer``."""
    config = getattr(cluster, "config", None)
    if config is None or not hasattr(config, "nodes"):
        raise ValueError("the 'garbage' fault needs a cluster whose configuration lists its nodes' addresses")
    targets: dict[str, tuple[str, int]] = {}
    for node in config.nodes:
        targets[f"{node.id}/client"] = tuple(node.client_hostport)
        targets[f"{node.id}/peer"] = tuple(node.peer_hostport)
    return targets
