"""Client sessions: exactly-once application of retried commands."""

from __future__ import annotations

import msgpack
import pytest

from raftchat.chat import ChatMachine
from raftchat.kv import KVMachine
from raftchat.sessions import (
    Applied,
    Command,
    CommandError,
    Replica,
    SnapshotMismatch,
    decode_command,
    encode_command,
)
from raftchat.statemachine import InvalidRequest, Result


def append(client: str, seq: int, value: str, ack: int = 0) -> bytes:
    return encode_command(client, seq, ack, {"op": "append", "key": "k", "value": value})


def current(replica: Replica) -> object:
    return replica.read({"op": "get", "key": "k"}).value


def test_command_round_trip() -> None:
    data = encode_command("c1", 3, 2, {"op": "get", "key": "x"})
    assert decode_command(data) == Command("c1", 3, 2, {"op": "get", "key": "x"})


@pytest.mark.parametrize(
    "values",
    [
        ["", 1, 0, {}],
        ["c", 0, 0, {}],
        ["c", 1, -1, {}],
        ["c", True, 0, {}],
        ["c", 1, 0, "op"],
        ["c", 1, 0],
    ],
)
def test_decode_rejects_malformed(values: list) -> None:
    with pytest.raises(CommandError):
        decode_command(msgpack.packb(values))


def test_encode_checks_too() -> None:
    with pytest.raises(InvalidRequest):  # the server answers such a client as a bad request
        encode_command("c", 0, 0, {"op": "get", "key": "k"})


def test_noop_entry() -> None:
    assert Replica(KVMachine()).apply(b"") is None


def test_duplicate_returns_original_and_applies_once() -> None:
    replica = Replica(KVMachine())
    first = replica.apply(append("c1", 1, "a"))
    assert first == Applied("c1", 1, Result("ok", "a"), duplicate=False)
    replica.apply(append("c2", 1, "b"))
    retry = replica.apply(append("c1", 1, "a"))
    assert retry == Applied("c1", 1, Result("ok", "a"), duplicate=True)  # not "ab" nor "aba"
    assert current(replica) == "ab"
    assert replica.apply(append("c1", 2, "c")) == Applied("c1", 2, Result("ok", "abc"))


def test_no_dedup_bug_applies_twice() -> None:
    replica = Replica(KVMachine(), bugs=frozenset({"no-dedup"}))
    replica.apply(append("c1", 1, "a"))
    retry = replica.apply(append("c1", 1, "a"))
    assert retry is not None and not retry.duplicate
    assert retry.result == Result("ok", "aa")
    assert current(replica) == "aa"


def test_ack_prunes_and_makes_old_seqs_stale() -> None:
    replica = Replica(KVMachine())
    for seq in (1, 2, 3):
        replica.apply(append("c1", seq, str(seq)))
    # seq 4 says the client has the responses to 1 and 2: they may be forgotten.
    replica.apply(append("c1", 4, "4", ack=2))
    assert replica._sessions["c1"].responses.keys() == {3, 4}
    stale = replica.apply(append("c1", 2, "2"))
    assert stale is not None
    assert stale.result.status == "stale_request" and stale.result.error
    assert not stale.duplicate
    assert current(replica) == "1234"  # the stale retry was not applied
    # Seq 3 was not acknowledged, so its retry still replays the original answer.
    replica3 = replica.apply(append("c1", 3, "3", ack=2))
    assert replica3 == Applied("c1", 3, Result("ok", "123"), duplicate=True)
    # An older ack on a later command never un-forgets anything.
    replica.apply(append("c1", 5, "5", ack=1))
    assert replica._sessions["c1"].responses.keys() == {3, 4, 5}


def test_responses_per_client_are_bounded() -> None:
    replica = Replica(KVMachine(), max_responses=3)
    for seq in range(1, 6):
        replica.apply(append("c1", seq, "x"))
    assert replica._sessions["c1"].responses.keys() == {3, 4, 5}
    assert replica.apply(append("c1", 2, "x")).result.status == "stale_request"
    assert replica.apply(append("c1", 4, "x")).duplicate


def test_eviction_is_lru_by_apply_order_and_deterministic() -> None:
    def history(replica: Replica) -> list:
        results = []
        for data in (append("a", 1, "a"), append("b", 1, "b"), append("c", 1, "c")):
            results.append(replica.apply(data))
        results.append(replica.apply(append("a", 2, "a")))  # "a" is now the most recent
        results.append(replica.apply(append("d", 1, "d")))  # evicts "b", the least recent
        return results

    one, two = Replica(KVMachine(), max_sessions=3), Replica(KVMachine(), max_sessions=3)
    assert history(one) == history(two)
    assert one.snapshot() == two.snapshot()
    assert list(one._sessions) == ["c", "a", "d"]
    assert one.apply(append("a", 2, "a")).duplicate  # a retry counts as use, too
    assert list(one._sessions) == ["c", "d", "a"]
    # The documented limitation: an evicted client's retry is applied again.
    again = one.apply(append("b", 1, "b"))
    assert again is not None and not again.duplicate
    assert list(one._sessions) == ["d", "a", "b"]


def test_bad_commands_are_deterministic_results() -> None:
    replica = Replica(ChatMachine())
    before = replica.snapshot()
    for garbage in (b"\xc1", b"\x01", msgpack.packb(["c", 1])):
        applied = replica.apply(garbage)
        assert applied is not None
        assert applied.result.status == "bad_command" and applied.result.error
        assert (applied.client, applied.seq) == ("", 0)
    unknown = replica.apply(encode_command("c", 1, 0, {"op": "format_disk"}))
    assert unknown == Applied("c", 1, unknown.result)
    assert unknown.result.status == "bad_command"
    wrong_type = replica.apply(encode_command("c", 2, 0, {"op": "create_account", "user": 5}))
    assert wrong_type.result.status == "bad_command"
    other = Replica(ChatMachine())
    other.restore(before)
    assert other.machine.snapshot() == replica.machine.snapshot()


def test_read() -> None:
    replica = Replica(ChatMachine())
    replica.apply(encode_command("c", 1, 0, {"op": "create_account", "user": "ann", "key": b"k"}))
    assert replica.read({"op": "check_account", "user": "ann"}) == Result("ok", True)
    with pytest.raises(InvalidRequest, match="changes state"):
        replica.read({"op": "create_account", "user": "bob", "key": b"k"})
    with pytest.raises(InvalidRequest):
        replica.read({"op": "check_account"})
    assert replica.read({"op": "check_account", "user": "bob"}).value is False


def test_snapshot_includes_sessions_and_applied_index() -> None:
    replica = Replica(KVMachine(), max_sessions=2)
    replica.apply(append("a", 1, "a"))
    replica.apply(append("b", 1, "b"))
    replica.apply(append("a", 2, "a", ack=1))
    replica.applied_index = 17
    copy = Replica(KVMachine(), max_sessions=2)
    copy.restore(replica.snapshot())
    assert copy.applied_index == 17
    assert copy.snapshot() == replica.snapshot()
    assert current(copy) == "aba"
    # The retry of b/1 is recognised by the restored node, with the original answer.
    assert copy.apply(append("b", 1, "b")) == Applied("b", 1, Result("ok", "ab"), duplicate=True)
    assert copy.apply(append("a", 1, "a")).result.status == "stale_request"
    # Eviction order survived too: on a fresh copy a new client evicts "b", the least recent.
    fresh = Replica(KVMachine(), max_sessions=2)
    fresh.restore(replica.snapshot())
    fresh.apply(append("c", 1, "c"))
    assert list(fresh._sessions) == ["a", "c"]


def test_a_checked_snapshot_restores_its_state_or_is_refused() -> None:
    replica = Replica(KVMachine())
    for seq, value in enumerate("abc", 1):
        replica.apply(append(f"c{seq}", seq, value))
    replica.applied_index = 3
    digest = replica.digest()
    assert replica.checked_snapshot() == replica.snapshot()
    assert replica.digest() == digest  # restored into the same state
    # A snapshot that leaves the sessions out would turn every retry after a restore into a
    # second apply: refused, naming what differs.
    broken = SessionlessSnapshots(KVMachine())
    broken.apply(append("c1", 1, "a"))
    broken.applied_index = 1
    with pytest.raises(SnapshotMismatch, match="snapshot at index 1 does not restore.*state digest differ"):
        broken.checked_snapshot()
    # Beyond the size limit the round trip is skipped (it would cost seconds of CPU).
    assert SessionlessSnapshots(KVMachine()).checked_snapshot(limit=0)


class SessionlessSnapshots(Replica):
    def snapshot(self) -> bytes:
        state = msgpack.unpackb(super().snapshot(), raw=False)
        state["sessions"] = []
        return msgpack.packb(state, use_bin_type=True)


def test_restore_rejects_other_machine_and_garbage() -> None:
    kv_snapshot = Replica(KVMachine()).snapshot()
    with pytest.raises(ValueError, match="kv"):
        Replica(ChatMachine()).restore(kv_snapshot)
    with pytest.raises(ValueError, match="corrupt"):
        Replica(KVMachine()).restore(b"\x00\x01")
