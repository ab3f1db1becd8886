"""The pieces of a large snapshot's journey inside one process: taken in a forked child,
chunked on the wire within the frame limit, stored and reloaded, restored with its sessions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from raftchat import protocol
from raftchat.chat import ChatMachine
from raftchat.forked import ForkedBytes
from raftchat.node import PEER_MESSAGE_BYTES
from raftchat.raft.messages import DecodeError, InstallSnapshot, Snapshot, SnapshotResponse, decode, encode
from raftchat.sessions import Replica, encode_command
from raftchat.storage import Storage

TEXT = 100_000
MESSAGES = 300  # 30 MB of text


def _big_replica() -> Replica:
    replica = Replica(ChatMachine(max_message=TEXT))
    seq = 0

    def run(client: str, op: dict) -> None:
        nonlocal seq
        seq += 1
        applied = replica.apply(encode_command(client, seq, 0, op))
        assert applied is not None and applied.result.status == "ok", applied

    for user in ("ann", "bob"):
        run("setup", {"op": "create_account", "user": user, "key": b"k"})
    for i in range(MESSAGES):
        text = f"{i:05d}" * (TEXT // 5)
        run("writer", {"op": "send_message", "sender": "ann", "to": "bob", "text": text, "key": b"k"})
    replica.applied_index = seq
    return replica


def test_a_30_mb_state_is_snapshotted_in_a_child_and_restored_with_its_sessions():
    replica = _big_replica()
    expected = replica.snapshot()
    assert len(expected) > 30_000_000

    async def take() -> bytes:
        child = ForkedBytes(replica.snapshot)
        # After the fork: the parent moves on, the child's bytes must not see it.
        replica.apply(
            encode_command(
                "late", 1, 0, {"op": "send_message", "sender": "bob", "to": "ann", "text": "x", "key": b"k"}
            )
        )
        return await child.result()

    data = asyncio.run(take())
    assert data == expected
    restored = Replica(ChatMachine(max_message=TEXT))
    restored.restore(data)
    assert restored.snapshot() == expected
    # The session table came along: a retry of an applied write is answered, not applied again.
    retry = encode_command(
        "writer", 3, 0, {"op": "send_message", "sender": "ann", "to": "bob", "text": "dup", "key": b"k"}
    )
    again = restored.apply(retry)
    assert again is not None and again.duplicate and again.result.status == "ok"
    inbox = restored.read({"op": "fetch_messages", "user": "bob", "from_index": 1, "key": b"k"}).value
    assert len(inbox) == MESSAGES and all(text != "dup" for _sender, text in inbox)


def test_a_large_installed_snapshot_survives_a_reopen(tmp_path: Path):
    data = bytes(range(256)) * (120 << 10)  # 30 MiB
    storage = Storage.open(tmp_path, "c", "n2")
    storage.save(None, [], Snapshot(5000, 3, data))  # as a follower installs one from its leader
    storage.close()
    storage = Storage.open(tmp_path, "c", "n2")
    try:
        _hard, snapshot, entries = storage.load()
    finally:
        storage.close()
    assert snapshot == Snapshot(5000, 3, data) and entries == []


def test_a_full_chunk_fits_well_within_the_frame_limit():
    chunk = InstallSnapshot("n1", "n2", 7, 10**12, 7, 10**9, b"\xff" * PEER_MESSAGE_BYTES, False)
    payload = encode(chunk)
    assert len(payload) < protocol.MAX_FRAME // 2
    assert decode(payload) == chunk
    ack = SnapshotResponse("n2", "n1", 7, 0, 10**12, 10**9)
    assert decode(encode(ack)) == ack


def test_a_chunk_whose_data_is_not_bytes_is_refused():
    payload = encode(InstallSnapshot("n1", "n2", 1, 5, 1, 0, b"abc", True))
    forged = payload.replace(b"\xc4\x03abc", b"\xa3abc")  # bin 8 of 3 bytes -> str of 3 chars
    assert forged != payload
    with pytest.raises(DecodeError, match="data must be bytes"):
        decode(forged)
