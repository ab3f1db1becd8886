"""The peer wire format: every AppendEntries entry is checked as it is decoded."""

from __future__ import annotations

import msgpack
import pytest

from raftchat.raft.messages import AppendEntries, DecodeError, Entry, decode, encode


def _append_with(entries: object) -> bytes:
    """An encoded AppendEntries whose entries field is ``entries``, as a peer could send it."""
    values = msgpack.unpackb(encode(AppendEntries("n1", "n2", 3, 4, 2, [], 4, 0)))
    values[6] = entries
    return msgpack.packb(values, use_bin_type=True)


def test_entries_round_trip() -> None:
    msg = AppendEntries("n1", "n2", 3, 4, 2, [Entry(5, 3, b"a"), Entry(6, 3, b"")], 4, 9)
    assert decode(encode(msg)) == msg


@pytest.mark.parametrize(
    "entries",
    [
        [[5, 3]],  # too short
        [[5, 3, b"a", 1]],  # too long
        [[True, 3, b"a"]],  # a bool is not an index
        [[5, -1, b"a"]],  # negative term
        [[5, 3, "a"]],  # text, not bytes
        [[5.0, 3, b"a"]],
        [{"index": 5}],
        {"5": [5, 3, b"a"]},
        [[5, 3, b"a"], [6, 3, None]],  # a bad entry after a good one
    ],
)
def test_a_malformed_entry_is_refused(entries: object) -> None:
    with pytest.raises(DecodeError, match="entries must be list"):
        decode(_append_with(entries))
