"""Durable Raft state in an append-only segment log: real files with real fsync, reopened the
way a restarted node would, torn and damaged the way disks and crashes do it."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import msgpack
import pytest

from raftchat import wal
from raftchat.raft.messages import Entry, HardState, Snapshot
from raftchat.storage import Storage, StorageError

CLUSTER, NODE = "cluster-a", "n1"


def entries(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(i, term, f"cmd{i}".encode()) for i in range(first, last + 1)]


def reopen(path: Path, bugs: frozenset[str] = frozenset()) -> tuple[HardState, Snapshot | None, list[Entry]]:
    storage = Storage.open(path, CLUSTER, NODE, bugs)
    try:
        return storage.load()
    finally:
        storage.close()


def write(path: Path, *saves: tuple, bugs: frozenset[str] = frozenset(), **kwargs) -> None:
    storage = Storage.open(path, CLUSTER, NODE, bugs, **kwargs)
    for args in saves:
        storage.save(*args)
    storage.close()


def test_fresh_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "deep" / "n1"
    storage = Storage.open(data_dir, CLUSTER, NODE)
    assert storage.path == data_dir and [p.name for p in data_dir.iterdir()] == [wal.segment_name(1)]
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
    assert (
        "cluster-a" in message and "cluster-b" in message and str(tmp_path / wal.segment_name(1)) in message
    )


def test_wrong_node_id(tmp_path: Path) -> None:
    write(tmp_path)
    with pytest.raises(StorageError) as info:
        Storage.open(tmp_path, CLUSTER, "n2")
    message = str(info.value)
    assert "'n1'" in message and "'n2'" in message and str(tmp_path / wal.segment_name(1)) in message


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


# -- the segment log: torn tails, damage, segments, old formats ---------------------------


def segment(path: Path, seq: int = 1) -> Path:
    return path / wal.segment_name(seq)


def test_each_save_is_one_record_after_the_base(tmp_path: Path) -> None:
    write(
        tmp_path, (HardState(1, "n1", 0), entries(1, 3)), (HardState(1, "n1", 3), []), (None, entries(4, 4))
    )
    log, records = wal.open_log(tmp_path, 3)
    log.close()
    offsets = [r.offset for r in records]
    assert offsets[0] == 16 and len(offsets) == 4  # the base, then one record per save


def test_torn_last_record_is_cut_at_every_offset(tmp_path: Path) -> None:
    """A crash mid-append leaves any prefix of the last record: each one is cut off at open,
    the state is the one before that save, and the log takes appends again afterwards."""
    good = tmp_path / "good"
    write(good, (HardState(1, "n1", 0), entries(1, 3)), (HardState(2, "n2", 2), entries(4, 5, term=2)))
    before = segment(good).stat().st_size
    write(good, (HardState(3, "n3", 5), entries(6, 8, term=3)))
    after = segment(good).stat().st_size
    expected = (HardState(2, "n2", 2), None, entries(1, 3) + entries(4, 5, term=2))
    raw = segment(good).read_bytes()
    for cut in range(before, after):
        torn = tmp_path / f"cut{cut}"
        shutil.copytree(good, torn)
        segment(torn).write_bytes(raw[:cut])
        assert reopen(torn) == expected, cut
        assert segment(torn).stat().st_size == before  # the torn bytes are gone from the disk
        write(torn, (None, entries(6, 6, term=4)))
        assert reopen(torn)[2] == expected[2] + entries(6, 6, term=4)
        shutil.rmtree(torn)
    assert reopen(good)[0] == HardState(3, "n3", 5)


@pytest.mark.parametrize("damage", ["zeros", "flipped"])
def test_a_written_but_unsynced_last_record_is_cut(tmp_path: Path, damage: str) -> None:
    """The file grew but the last record's bytes never made it (zeros), or made it partly."""
    write(tmp_path, (HardState(1), entries(1, 2)))
    before = segment(tmp_path).stat().st_size
    write(tmp_path, (HardState(1), entries(3, 4)))
    raw = bytearray(segment(tmp_path).read_bytes())
    if damage == "zeros":
        raw[before:] = bytes(len(raw) - before)
    else:
        raw[-1] ^= 0x40
    segment(tmp_path).write_bytes(bytes(raw))
    assert reopen(tmp_path) == (HardState(1), None, entries(1, 2))


def test_checksum_failure_in_the_middle_is_an_error_naming_file_and_offset(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1), entries(1, 2)))
    middle = segment(tmp_path).stat().st_size
    write(tmp_path, (HardState(1), entries(3, 4)), (HardState(1), entries(5, 6)))
    raw = bytearray(segment(tmp_path).read_bytes())
    raw[middle + 12] ^= 0x01  # inside the record of entries 3..4, which has one after it
    segment(tmp_path).write_bytes(bytes(raw))
    with pytest.raises(
        StorageError, match=f"{segment(tmp_path)}: a record fails its checksum at offset {middle}"
    ):
        Storage.open(tmp_path, CLUSTER, NODE)
    assert segment(tmp_path).read_bytes() == raw  # nothing was cut or rewritten


@pytest.mark.parametrize(
    ("bit", "found"),
    [(0x80, "running past the end .* with intact records after it"), (0x01, "fails its checksum")],
)
def test_a_damaged_length_field_is_never_taken_for_a_torn_tail(tmp_path: Path, bit: int, found: str) -> None:
    """A flipped bit in a length makes a record seem to run past the end of the file (or end
    in the wrong place): the intact records after it show that it is damage, not a torn write."""
    write(tmp_path, (HardState(1), entries(1, 2)))
    middle = segment(tmp_path).stat().st_size
    write(tmp_path, (HardState(1), entries(3, 4)), (HardState(2), entries(5, 6)))
    raw = bytearray(segment(tmp_path).read_bytes())
    raw[middle + (0 if bit == 0x80 else 3)] ^= bit
    segment(tmp_path).write_bytes(bytes(raw))
    with pytest.raises(StorageError, match=f"{found} at offset {middle}"):
        Storage.open(tmp_path, CLUSTER, NODE)
    assert segment(tmp_path).read_bytes() == raw


def test_a_valid_record_that_leaves_a_gap_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1), entries(1, 2)))
    end = segment(tmp_path).stat().st_size
    with open(segment(tmp_path), "ab") as f:  # a well-formed record of entries 4..5: 3 is missing
        f.write(wal.frame(msgpack.packb([1, None, [(4, 1, b"a"), (5, 1, b"b")]])))
    with pytest.raises(StorageError, match=f"cannot store entries from index 4.*at offset {end}"):
        Storage.open(tmp_path, CLUSTER, NODE)
    with open(segment(tmp_path), "r+b") as f:
        f.truncate(end)
        f.seek(end)
        f.write(wal.frame(b"\xc1 not msgpack"))
    with pytest.raises(StorageError, match=f"undecodable record.*at offset {end}"):
        Storage.open(tmp_path, CLUSTER, NODE)


def test_segments_rotate_and_compaction_drops_them(tmp_path: Path) -> None:
    small = {"segment_bytes": 100}
    write(tmp_path, *[(HardState(1, None, i), entries(i, i)) for i in range(1, 41)], **small)
    seqs = wal.segments(tmp_path)
    assert len(seqs) > 5 and seqs == list(range(1, len(seqs) + 1))
    assert reopen(tmp_path) == (HardState(1, None, 40), None, entries(1, 40))
    storage = Storage.open(tmp_path, CLUSTER, NODE, **small)
    storage.compact(Snapshot(35, 1, b"s35"))
    storage.close()
    assert wal.segments(tmp_path) == [seqs[-1] + 1]  # one base: the entries after 35 copied into it
    assert reopen(tmp_path) == (HardState(1, None, 40), Snapshot(35, 1, b"s35"), entries(36, 40))


def test_damage_in_a_full_segment_is_never_taken_for_a_torn_tail(tmp_path: Path) -> None:
    write(tmp_path, *[(HardState(1), entries(i, i)) for i in range(1, 21)], segment_bytes=100)
    first = segment(tmp_path, 1)
    raw = first.read_bytes()
    first.write_bytes(raw[:-3])  # its last record cut short: it was fsynced before segment 2 began
    with pytest.raises(StorageError, match=f"{first}: a record of .* running past the end.*at offset"):
        Storage.open(tmp_path, CLUSTER, NODE)
    first.write_bytes(raw)
    segment(tmp_path, 2).unlink()
    with pytest.raises(StorageError, match="log segment log-0+2.seg is missing"):
        Storage.open(tmp_path, CLUSTER, NODE)


def test_a_compaction_that_crashed_before_removing_old_segments(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1, "n1", 6), entries(1, 8)))
    old = segment(tmp_path).read_bytes()
    storage = Storage.open(tmp_path, CLUSTER, NODE)
    storage.compact(Snapshot(6, 1, b"s6"))
    storage.close()
    segment(tmp_path, 1).write_bytes(old)  # as if the crash came before the old one was unlinked
    (tmp_path / (wal.segment_name(3) + ".tmp")).write_bytes(b"half a base")  # and a later one half-built
    assert reopen(tmp_path) == (HardState(1, "n1", 6), Snapshot(6, 1, b"s6"), entries(7, 8))
    assert sorted(p.name for p in tmp_path.iterdir() if "log" in p.name) == [wal.segment_name(2)]


@pytest.mark.parametrize("content", [b"", b"hello, this is not a log segment" * 100])
def test_garbage_instead_of_a_segment(tmp_path: Path, content: bytes) -> None:
    segment(tmp_path).write_bytes(content)
    with pytest.raises(StorageError, match="is not a raftchat log segment"):
        Storage.open(tmp_path, CLUSTER, NODE)
    assert segment(tmp_path).read_bytes() == content  # never silently reset


def test_a_segment_of_another_format(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1), entries(1, 2)))
    raw = bytearray(segment(tmp_path).read_bytes())
    raw[12] = 9
    segment(tmp_path).write_bytes(bytes(raw))
    with pytest.raises(StorageError, match="storage format 9, but this program reads format 3"):
        Storage.open(tmp_path, CLUSTER, NODE)


def test_an_old_sqlite_data_directory_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "raft.db") as conn:  # what formats 1 and 2 wrote
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('format_version', '2')")
    before = (tmp_path / "raft.db").read_bytes()
    with pytest.raises(StorageError, match="holds raft.db, storage format 1 or 2.*reads format 3"):
        Storage.open(tmp_path, CLUSTER, NODE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raft.db"]
    assert (tmp_path / "raft.db").read_bytes() == before


def test_snapshot_files_without_a_log_are_refused(tmp_path: Path) -> None:
    write(tmp_path, (HardState(1), entries(1, 5)))
    storage = Storage.open(tmp_path, CLUSTER, NODE)
    storage.compact(Snapshot(3, 1, b"s3"))
    storage.close()
    for seq in wal.segments(tmp_path):
        segment(tmp_path, seq).unlink()
    with pytest.raises(StorageError, match="snapshot files but no log segments"):
        Storage.open(tmp_path, CLUSTER, NODE)


def test_a_failed_write_is_cut_back_and_stops_further_writes(tmp_path: Path) -> None:
    """A real failed write (the file-size limit, as a full disk would fail it): what part of
    the record reached the file is cut off again, and the log refuses writes until reopened."""
    import resource
    import signal

    storage = Storage.open(tmp_path, CLUSTER, NODE)
    storage.save(HardState(1), entries(1, 2))
    size = segment(tmp_path).stat().st_size
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, limits[1]))
        with pytest.raises(StorageError, match="write failed"):
            storage.save(HardState(2), [Entry(3, 1, b"x" * 1000)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert segment(tmp_path).stat().st_size == size
    with pytest.raises(StorageError, match="an earlier write failed"):
        storage.save(HardState(2), entries(3, 3))
    storage.close()
    assert reopen(tmp_path) == (HardState(1), None, entries(1, 2))
