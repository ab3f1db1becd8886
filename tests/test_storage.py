"""Durable Raft state in SQLite: real files, reopened the way a restarted node would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from raftchat.raft.messages import Entry, HardState, Snapshot
from raftchat.storage import Storage, StorageError, checksum

CLUSTER, NODE = "cluster-a", "n1"


def entries(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(i, term, f"cmd{i}".encode()) for i in range(first, last + 1)]


def reopen(path: Path, bugs: frozenset[str] = frozenset()) -> tuple[HardState, Snapshot | None, list[Entry]]:
    storage = Storage.open(path, CLUSTER, NODE, bugs)
    try:
        return storage.load()
    finally:
        storage.close()


def write(path: Path, *saves: tuple, bugs: frozenset[str] = frozenset()) -> None:
    storage = Storage.open(path, CLUSTER, NODE, bugs)
    for args in saves:
        storage.save(*args)
    storage.close()


def test_fresh_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "deep" / "n1"
    storage = Storage.open(data_dir, CLUSTER, NODE)
    assert storage.path == data_dir / "raft.db"
    assert storage.load() == (HardState(), None, [])
    storage.close()
    assert reopen(data_dir) == (HardState(), None, [])


def test_round_trip_across_reopen(tmp_path: Path) -> None:
    log = entries(1, 3) + [Entry(4, 2, b""), Entry(5, 2, bytes(range(256)))]
    write(tmp_path, (HardState(2, "n3", 4), log))
    assert reopen(tmp_path) == (HardState(2, "n3", 4), None, log)
    write(tmp_path, (HardState(3, None, 5), []))  # hard state alone
    assert reopen(tmp_path) == (HardState(3, None, 5), None, log)
    write(tmp_path, (None, entries(6, 7, term=3)))  # entries alone leave the hard state be
    assert reopen(tmp_path) == (HardState(3, None, 5), None, log + entries(6, 7, term=3))


def test_conflicting_entries_truncate_the_tail(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1, "n1", 0), entries(1, 5)))
    write(tmp_path, (HardState(2, "n2", 0), entries(3, 4, term=2)))
    _, _, log = reopen(tmp_path)
    assert log == entries(1, 2) + entries(3, 4, term=2)  # old entry 5 is gone too


def test_entries_must_not_leave_a_gap(tmp_path: Path) -> None:
    storage = Storage.open(tmp_path, CLUSTER, NODE)
    storage.save(HardState(1), entries(1, 2))
    with pytest.raises(ValueError, match="gap"):
        storage.save(HardState(9), entries(4, 5))
    with pytest.raises(ValueError, match="consecutive"):
        storage.save(None, [Entry(3, 1, b""), Entry(5, 1, b"")])
    assert storage.load() == (HardState(1), None, entries(1, 2))  # the failed saves changed nothing
    storage.close()


def test_compact(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1, "n1", 8), entries(1, 10)))
    storage = Storage.open(tmp_path, CLUSTER, NODE)
    storage.compact(Snapshot(6, 1, b"state@6"))
    storage.compact(Snapshot(4, 1, b"older"))  # an older snapshot never replaces a newer one
    storage.save(None, entries(11, 12))
    storage.close()
    hard, snapshot, log = reopen(tmp_path)
    assert hard == HardState(1, "n1", 8)
    assert snapshot == Snapshot(6, 1, b"state@6")
    assert log == entries(7, 12)


def test_installed_snapshot_keeps_matching_suffix(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1), entries(1, 10)))
    write(tmp_path, (HardState(2, None, 5), [], Snapshot(5, 1, b"s5")))
    assert reopen(tmp_path) == (HardState(2, None, 5), Snapshot(5, 1, b"s5"), entries(6, 10))


def test_installed_snapshot_discards_conflicting_log(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1), entries(1, 10)))
    write(tmp_path, (HardState(3, None, 7), [], Snapshot(7, 3, b"s7")))  # term 3 != our term 1 at 7
    assert reopen(tmp_path) == (HardState(3, None, 7), Snapshot(7, 3, b"s7"), [])
    # Beyond the end of our log: nothing to keep either.
    write(tmp_path, (HardState(3, None, 20), [], Snapshot(20, 3, b"s20")), (None, entries(21, 22, term=3)))
    assert reopen(tmp_path) == (HardState(3, None, 20), Snapshot(20, 3, b"s20"), entries(21, 22, term=3))


def test_snapshot_and_entries_in_one_save(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1), entries(1, 3)))
    write(tmp_path, (HardState(2, "n2", 9), entries(10, 12, term=2), Snapshot(9, 2, b"s9")))
    assert reopen(tmp_path) == (HardState(2, "n2", 9), Snapshot(9, 2, b"s9"), entries(10, 12, term=2))


def test_wrong_cluster_id(tmp_path: Path) -> None:
    write(tmp_path)
    with pytest.raises(StorageError) as info:
        Storage.open(tmp_path, "cluster-b", NODE)
    message = str(info.value)
    assert "cluster-a" in message and "cluster-b" in message and str(tmp_path / "raft.db") in message


def test_wrong_node_id(tmp_path: Path) -> None:
    write(tmp_path)
    with pytest.raises(StorageError) as info:
        Storage.open(tmp_path, CLUSTER, "n2")
    message = str(info.value)
    assert "'n1'" in message and "'n2'" in message and str(tmp_path / "raft.db") in message


@pytest.mark.parametrize("content", [b"", b"hello, this is not a database" * 100])
def test_garbage_instead_of_database(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "raft.db").write_bytes(content)
    with pytest.raises(StorageError, match="not a SQLite database"):
        Storage.open(tmp_path, CLUSTER, NODE)
    assert (tmp_path / "raft.db").read_bytes() == content  # never silently reset


def test_damaged_database_pages(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1), entries(1, 200)))
    path = tmp_path / "raft.db"
    raw = bytearray(path.read_bytes())
    raw[200 : len(raw)] = b"\xff" * (len(raw) - 200)  # keep the header, wreck the pages
    path.write_bytes(bytes(raw))
    with pytest.raises(StorageError, match=str(path)):
        Storage.open(tmp_path, CLUSTER, NODE)


def test_missing_table(tmp_path: Path) -> None:
    write(tmp_path)
    with sqlite3.connect(tmp_path / "raft.db") as conn:
        conn.execute("DROP TABLE snapshot")
    with pytest.raises(StorageError, match="missing table.*snapshot"):
        Storage.open(tmp_path, CLUSTER, NODE)


def test_other_sqlite_database(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "raft.db") as conn:
        conn.execute("CREATE TABLE photos (id INTEGER)")
    with pytest.raises(StorageError, match="not a raftchat database"):
        Storage.open(tmp_path, CLUSTER, NODE)


def test_flipped_byte_in_entry_fails_checksum(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1), entries(1, 5)))
    with sqlite3.connect(tmp_path / "raft.db") as conn:
        (data,) = conn.execute("SELECT data FROM log WHERE idx = 3").fetchone()
        flipped = bytes([data[0] ^ 0x01]) + data[1:]
        conn.execute("UPDATE log SET data = ? WHERE idx = 3", (flipped,))
    with pytest.raises(StorageError, match="log entry 3 fails its checksum"):
        Storage.open(tmp_path, CLUSTER, NODE)


def test_changed_term_fails_checksum(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1), entries(1, 5)))
    with sqlite3.connect(tmp_path / "raft.db") as conn:
        conn.execute("UPDATE log SET term = 9 WHERE idx = 4")
    with pytest.raises(StorageError, match="entry 4 fails its checksum"):
        Storage.open(tmp_path, CLUSTER, NODE)


def test_gap_in_log_is_detected(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1), entries(1, 5)))
    with sqlite3.connect(tmp_path / "raft.db") as conn:
        conn.execute("DELETE FROM log WHERE idx = 3")
    with pytest.raises(StorageError, match="jumps from index 2 to 4"):
        Storage.open(tmp_path, CLUSTER, NODE)


def test_corrupt_snapshot_is_detected(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1), entries(1, 5)))
    storage = Storage.open(tmp_path, CLUSTER, NODE)
    storage.compact(Snapshot(3, 1, b"snapshot bytes"))
    storage.close()
    [path] = tmp_path.glob("snapshot-*.bin")
    path.write_bytes(b"snapshot bytez")
    with pytest.raises(StorageError, match="snapshot at index 3 fails its checksum"):
        Storage.open(tmp_path, CLUSTER, NODE)
    path.write_bytes(b"snapshot")
    with pytest.raises(StorageError, match="has 8 bytes, not 14"):
        Storage.open(tmp_path, CLUSTER, NODE)
    path.unlink()
    with pytest.raises(StorageError, match="snapshot at index 3 cannot be read"):
        Storage.open(tmp_path, CLUSTER, NODE)


def test_snapshot_files_follow_the_stored_snapshot(tmp_path: Path) -> None:
    """One file per snapshot, the old one gone once the new one is recorded; a file that no
    row names (a crash between writing and recording it) is removed at open."""
    write(tmp_path, (HardState(1), entries(1, 9)))
    storage = Storage.open(tmp_path, CLUSTER, NODE)
    storage.compact(Snapshot(3, 1, b"s3"))
    storage.compact(Snapshot(6, 1, b"s6"))
    written = storage.write_snapshot(Snapshot(8, 1, b"s8"))  # then the node "crashes"
    storage.close()
    (tmp_path / (written.name + ".x1y2.tmp")).write_bytes(b"half")  # one that was being written
    assert written.exists()
    assert reopen(tmp_path)[1] == Snapshot(6, 1, b"s6")
    [kept] = tmp_path.glob("snapshot-*")
    assert kept.name.startswith("snapshot-00000000000000000006-1-") and kept.read_bytes() == b"s6"
    write(tmp_path, (HardState(2, None, 9), [], Snapshot(9, 2, b"s9")))  # installed from a leader
    [kept] = tmp_path.glob("snapshot-*")
    assert kept.name.startswith("snapshot-00000000000000000009-2-") and kept.read_bytes() == b"s9"


def test_format_1_moves_its_snapshot_into_a_file(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1, None, 4), entries(1, 5)))
    with sqlite3.connect(tmp_path / "raft.db") as conn:  # the layout format 1 wrote
        conn.execute("DROP TABLE snapshot")
        conn.execute(
            "CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 0), idx INTEGER NOT NULL, "
            "term INTEGER NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL)"
        )
        conn.execute("INSERT INTO snapshot VALUES (0, 3, 1, ?, ?)", (b"old s3", checksum(3, 1, b"old s3")))
        conn.execute("DELETE FROM log WHERE idx <= 3")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'format_version'")
    assert reopen(tmp_path) == (HardState(1, None, 4), Snapshot(3, 1, b"old s3"), entries(4, 5))
    with sqlite3.connect(tmp_path / "raft.db") as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone() == ("2",)
    assert reopen(tmp_path)[1] == Snapshot(3, 1, b"old s3")


def test_forget_vote_bug(tmp_path: Path) -> None:
    bugs = frozenset({"forget-vote"})
    write(tmp_path, (HardState(4, "n2", 1), entries(1, 2)), bugs=bugs)
    assert reopen(tmp_path, bugs) == (HardState(4, None, 1), None, entries(1, 2))
    write(tmp_path, (HardState(5, "n3", 1), []))  # without the bug the vote is kept
    assert reopen(tmp_path)[0] == HardState(5, "n3", 1)


def test_lose_unsynced_bug(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, (HardState(2, "n1", 10), entries(1, 12)))
    hard, _, log = reopen(tmp_path, frozenset({"lose-unsynced"}))
    assert log == entries(1, 7)
    assert hard == HardState(2, "n1", 7)  # commit clamped to the new last index
    assert "lose-unsynced" in capsys.readouterr().err
    assert reopen(tmp_path) == (HardState(2, "n1", 7), None, entries(1, 7))  # the loss is durable


def test_lose_unsynced_never_touches_the_snapshot(tmp_path: Path) -> None:
    write(tmp_path, (HardState(2, None, 8), entries(1, 10)))
    storage = Storage.open(tmp_path, CLUSTER, NODE)
    storage.compact(Snapshot(8, 1, b"s8"))
    storage.close()
    hard, snapshot, log = reopen(tmp_path, frozenset({"lose-unsynced"}))
    assert (hard.commit, snapshot, log) == (8, Snapshot(8, 1, b"s8"), [])
    assert reopen(tmp_path, frozenset({"lose-unsynced"}))[2] == []  # nothing left to lose


def test_usable_from_another_thread(tmp_path: Path) -> None:
    import threading

    storage = Storage.open(tmp_path, CLUSTER, NODE)
    thread = threading.Thread(target=storage.save, args=(HardState(1), entries(1, 3)))
    thread.start()
    thread.join()
    assert storage.load()[2] == entries(1, 3)
    storage.close()


def test_large_batch(tmp_path: Path) -> None:
    storage = Storage.open(tmp_path, CLUSTER, NODE)
    for start in range(1, 2001, 500):
        storage.save(HardState(1, None, start - 1), entries(start, start + 499))
    storage.close()
    hard, _, log = reopen(tmp_path)
    assert hard.commit == 1500 and [e.index for e in log] == list(range(1, 2001))
