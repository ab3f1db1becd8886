"""Durable Raft state (term, vote, commit, log) in an append-only segment log; snapshots beside it.

Every flush is one record appended to the log and one ``fdatasync`` (``raftchat.wal``): the
new entries and, when it changed, the hard state, so a vote is durable exactly when the
entries written with it are, and a crash leaves either all of a :meth:`Storage.save` or
none of it. Replaying the records in order rebuilds the state: entries starting at index
``i`` replace whatever the log held from ``i`` on (the conflicting suffix a new leader
overwrote), and the last hard state written wins.

A snapshot's bytes live in a file of their own (``snapshot-<index>-<term>-<crc>.bin``,
fsynced before the log names it). Recording a snapshot rewrites the log as a new base
segment (identity, hard state, snapshot, the entries after it), after which the older
segments and the previous snapshot file are deleted: that is compaction. A file can be
written by a thread while the event loop keeps saving entries (:meth:`Storage.write_snapshot`).

Any inconsistency found at open is an error, never a silent reset, because a node that
forgets what it promised (its vote, its acknowledged entries) can break Raft's safety.
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack

from raftchat import wal
from raftchat.bugs import FORGET_VOTE, LOSE_UNSYNCED
from raftchat.raft.messages import Entry, HardState, Snapshot
from raftchat.wal import StorageError

__all__ = ["FORMAT_VERSION", "Storage", "StorageError", "checksum"]

# 3: an append-only segment log (2 kept the log in SQLite, raft.db, and snapshots in files;
# 1 kept snapshots in the database too).
FORMAT_VERSION = 3
OLD_DB_NAME = "raft.db"
_SNAPSHOT_GLOB = "snapshot-*.bin"
_LOST_ENTRIES = 5  # how many entries the "lose-unsynced" bug drops
_BASE, _BATCH = 0, 1  # record kinds: the state a base segment starts from; one flush


def checksum(index: int, term: int, data: bytes) -> int:
    """CRC32 over index, term and data, so a snapshot file renamed or retermed is caught too."""
    return zlib.crc32(data, zlib.crc32(struct.pack(">qq", index, term)))


@dataclass(frozen=True, slots=True)
class _SnapshotMeta:
    """What the log records of a snapshot: enough to find its file and verify it."""

    index: int
    term: int
    file: str
    size: int
    crc: int

    @classmethod
    def of(cls, snapshot: Snapshot) -> _SnapshotMeta:
        crc = checksum(snapshot.index, snapshot.term, snapshot.data)
        return cls(snapshot.index, snapshot.term, _snapshot_name(snapshot), len(snapshot.data), crc)


class Storage:
    """One node's durable state. Use from one thread at a time (any thread)."""

    def __init__(self, path: Path, cluster_id: str, node_id: str, bugs: frozenset[str]) -> None:
        self.path = path  # the data directory
        self.dir = path
        self.bugs = bugs
        self._ids = (cluster_id, node_id)
        self._log: wal.SegmentLog | None = None
        self._hard_state = HardState()
        self._snapshot: _SnapshotMeta | None = None
        self._entries: list[Entry] = []  # the log after the snapshot, as on disk
        self._snapshot_data: Snapshot | None = None  # read at open, handed out by the first load()

    @classmethod
    def open(
        cls,
        data_dir: str | Path,
        cluster_id: str,
        node_id: str,
        bugs: frozenset[str] = frozenset(),
        segment_bytes: int = wal.SEGMENT_BYTES,
    ) -> Storage:
        """Open (creating if absent) the log in ``data_dir`` and verify everything in it; a
        segment past ``segment_bytes`` is followed by a new one."""
        data_dir = Path(data_dir)
        try:
            fresh = not data_dir.exists()
            data_dir.mkdir(parents=True, exist_ok=True)
            if fresh:
                wal.fsync_dir(data_dir.parent)
            seqs = wal.segments(data_dir)
        except OSError as exc:
            raise StorageError(f"cannot use data directory {data_dir}: {exc.strerror}") from exc
        storage = cls(data_dir, cluster_id, node_id, bugs)
        if (data_dir / OLD_DB_NAME).exists():
            raise StorageError(
                f"{data_dir} holds {OLD_DB_NAME}, storage format 1 or 2 (SQLite), but this program "
                f"reads format {FORMAT_VERSION} (an append-only log). Run the raftchat version that "
                "wrote it, or move the directory away so the node rejoins empty and catches up from "
                "the leader (only safe if a majority of the cluster still holds the data)."
            )
        try:
            if not seqs:
                if any(data_dir.glob(_SNAPSHOT_GLOB)):
                    raise StorageError(
                        f"{data_dir} holds snapshot files but no log segments: the log was removed. "
                        "Restore it from a backup, or move the directory away."
                    )
                storage._log = wal.create(data_dir, FORMAT_VERSION, storage._base_body(), segment_bytes)
            else:
                storage._log, records = wal.open_log(data_dir, FORMAT_VERSION, segment_bytes)
                storage._replay(records)
                if storage._snapshot is not None:
                    storage._snapshot_data = storage._read_snapshot(storage._snapshot)
            storage._remove_other_snapshot_files()  # left by a crash before or after a compaction
            if LOSE_UNSYNCED in bugs:
                storage._lose_unsynced()
        except OSError as exc:
            storage.close()
            raise StorageError(f"{data_dir}: cannot read the log: {exc.strerror}") from exc
        except BaseException:
            storage.close()
            raise
        return storage

    # -- opening and verification -------------------------------------------------

    def _replay(self, records: Iterator[wal.Record]) -> None:
        """Rebuild the state from the records (a base, then flushes), checking each one."""
        for n, record in enumerate(records):
            try:
                kind, *fields = msgpack.unpackb(record.body)
                if kind == _BASE and n == 0:
                    self._apply_base(record, *fields)
                elif kind == _BATCH and n > 0:
                    hard, raw = fields
                    entries = [Entry(i, t, d) for i, t, d in raw]
                    problem = self._check_append(entries)
                    if problem:
                        raise wal.damaged(record.path, record.offset, problem)
                    if hard is not None:
                        self._hard_state = HardState(*hard)
                    self._put(entries)
                else:
                    raise wal.damaged(record.path, record.offset, f"an unexpected record of kind {kind!r}")
            except (ValueError, TypeError, msgpack.UnpackException) as exc:
                raise wal.damaged(record.path, record.offset, f"an undecodable record ({exc})") from exc

    def _apply_base(self, record: wal.Record, cluster_id, node_id, hard, snap, raw) -> None:
        for key, found, wanted in (
            ("cluster_id", cluster_id, self._ids[0]),
            ("node_id", node_id, self._ids[1]),
        ):
            if found != wanted:
                raise StorageError(
                    f"{record.path} belongs to {key} {found!r}, but this node was started with "
                    f"{key} {wanted!r}. Start it with {key} {found!r}, or use another data directory."
                )
        self._hard_state = HardState(*hard)
        self._snapshot = _SnapshotMeta(*snap) if snap is not None else None
        entries = [Entry(i, t, d) for i, t, d in raw]
        if entries and entries[0].index != self._snap_index + 1 or self._check_append(entries):
            raise wal.damaged(
                record.path, record.offset, "a base record whose entries do not follow its snapshot"
            )
        self._entries = entries

    def _read_snapshot(self, meta: _SnapshotMeta) -> Snapshot:
        path = self.dir / meta.file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise self._corrupt(
                f"the snapshot at index {meta.index} cannot be read from {path}: {exc.strerror}"
            ) from exc
        if len(data) != meta.size:
            raise self._corrupt(
                f"the snapshot at index {meta.index} in {path} has {len(data)} bytes, not {meta.size}"
            )
        if checksum(meta.index, meta.term, data) != meta.crc:
            raise self._corrupt(f"the snapshot at index {meta.index} fails its checksum")
        return Snapshot(meta.index, meta.term, data)

    def _remove_other_snapshot_files(self) -> None:
        """Delete snapshot files the log does not name (and unfinished ones)."""
        keep = self._snapshot.file if self._snapshot else None
        for path in [*self.dir.glob(_SNAPSHOT_GLOB), *self.dir.glob("snapshot-*.tmp")]:
            if path.name != keep:
                path.unlink(missing_ok=True)

    def _corrupt(self, what: str) -> StorageError:
        return StorageError(
            f"{self.path}: {what}. The file was damaged or edited. Restore it from a backup, or "
            "move the data directory away so the node rejoins empty and catches up from the leader "
            "(only safe if a majority of the cluster still holds the data)."
        )

    def _lose_unsynced(self) -> None:
        """Bug switch: behave as if the last fsyncs never reached the disk."""
        if not self._entries:
            return
        lost = self._entries[-_LOST_ENTRIES:]
        new_last = lost[0].index - 1
        hard = self._hard_state
        self._rewrite(
            HardState(hard.term, hard.voted_for, min(hard.commit, new_last)),
            self._snapshot,
            self._entries[: -len(lost)],
        )
        print(
            f"WARNING: bug 'lose-unsynced' dropped log entries {lost[0].index}..{lost[-1].index} "
            f"from {self.path}",
            file=sys.stderr,
        )

    # -- public API ---------------------------------------------------------------

    def load(self) -> tuple[HardState, Snapshot | None, list[Entry]]:
        """Everything saved: hard state, snapshot, and the entries after it in order."""
        snapshot, self._snapshot_data = self._snapshot_data, None
        if snapshot is None and self._snapshot is not None:
            snapshot = self._read_snapshot(self._snapshot)
        return self._hard_state, snapshot, list(self._entries)

    def save(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None = None
    ) -> None:
        """Persist one Ready: one record and one fdatasync (a snapshot's file first, and
        then a rewritten base segment); durable when it returns."""
        if hard_state is not None:
            voted_for = None if FORGET_VOTE in self.bugs else hard_state.voted_for
            hard_state = HardState(hard_state.term, voted_for, hard_state.commit)
        if snapshot is not None:
            self.write_snapshot(snapshot)
            meta, kept = _SnapshotMeta.of(snapshot), self._after_install(snapshot)
            problem = _check_follows(meta.index, kept, entries)
            if problem:
                raise ValueError(problem)
            if entries:
                kept = kept[: entries[0].index - meta.index - 1] + entries
            self._rewrite(hard_state or self._hard_state, meta, kept)
            return
        problem = self._check_append(entries)
        if problem:
            raise ValueError(problem)
        if not entries and hard_state is None:
            return
        hard = None if hard_state is None else (hard_state.term, hard_state.voted_for, hard_state.commit)
        body = msgpack.packb([_BATCH, hard, entries])
        self._log.append([body])
        if hard_state is not None:
            self._hard_state = hard_state
        self._put(entries)

    def write_snapshot(self, snapshot: Snapshot) -> Path:
        """Write a snapshot's bytes to its file and fsync it (file, then directory). Touches
        nothing else, so a thread may do it while another saves; :meth:`compact` or
        :meth:`save` then records it."""
        path = self.dir / _snapshot_name(snapshot)
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=path.name + ".", suffix=".tmp")
            with open(fd, "wb") as f:
                f.write(snapshot.data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            wal.fsync_dir(self.dir)
        except OSError as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise StorageError(f"cannot write snapshot file {path}: {exc.strerror}") from exc
        return path

    def compact(self, snapshot: Snapshot, written: bool = False) -> None:
        """Store a snapshot taken locally and drop the entries it covers; ``written`` says
        that :meth:`write_snapshot` already wrote its file.

        One no newer than the stored one is ignored (its file removed): it would only lose
        information.
        """
        if not written:
            self.write_snapshot(snapshot)
        meta = _SnapshotMeta.of(snapshot)
        if snapshot.index <= self._snap_index:
            if self._snapshot is None or meta.file != self._snapshot.file:
                (self.dir / meta.file).unlink(missing_ok=True)
            return
        self._rewrite(self._hard_state, meta, self._entries[snapshot.index - self._snap_index :])

    def close(self) -> None:
        if self._log is not None:
            self._log.close()

    # -- internals ----------------------------------------------------------------

    @property
    def _snap_index(self) -> int:
        return self._snapshot.index if self._snapshot else 0

    def _term_at(self, index: int) -> int | None:
        if self._snapshot is not None and index == self._snapshot.index:
            return self._snapshot.term
        offset = index - self._snap_index - 1
        return self._entries[offset].term if 0 <= offset < len(self._entries) else None

    def _after_install(self, snapshot: Snapshot) -> list[Entry]:
        """A snapshot from the leader. Entries after it survive only if the log agrees with
        it at its index (Raft's InstallSnapshot rule); otherwise the whole log goes."""
        if self._term_at(snapshot.index) == snapshot.term:
            return self._entries[max(0, snapshot.index - self._snap_index) :]
        return []

    def _check_append(self, entries: list[Entry]) -> str | None:
        return _check_follows(self._snap_index, self._entries, entries)

    def _put(self, entries: list[Entry]) -> None:
        """Entries from index i replace the log from i on (they were checked to leave no gap)."""
        if entries:
            del self._entries[entries[0].index - self._snap_index - 1 :]
            self._entries.extend(entries)

    def _rewrite(self, hard: HardState, snapshot: _SnapshotMeta | None, entries: list[Entry]) -> None:
        """Start the log afresh from this state; then the old snapshot file can go."""
        old = self._snapshot
        self._log.rewrite([self._base_body(hard, snapshot, entries)])
        self._hard_state, self._snapshot, self._entries = hard, snapshot, list(entries)
        self._snapshot_data = None
        if old is not None and (snapshot is None or old.file != snapshot.file):
            (self.dir / old.file).unlink(missing_ok=True)  # only once the log naming the new one is durable

    def _base_body(
        self, h: HardState | None = None, s: _SnapshotMeta | None = None, entries: list[Entry] = ()
    ) -> bytes:
        """The record a base segment starts with: identity and the whole state."""
        h = h or HardState()
        return msgpack.packb(
            [
                _BASE,
                *self._ids,
                (h.term, h.voted_for, h.commit),
                None if s is None else (s.index, s.term, s.file, s.size, s.crc),
                [(e.index, e.term, e.data) for e in entries],
            ]
        )


def _check_follows(snap_index: int, log: list[Entry], entries: list[Entry]) -> str | None:
    """Why ``entries`` cannot go after ``log`` (which follows a snapshot at ``snap_index``), or None."""
    if not entries:
        return None
    first = entries[0].index
    for offset, entry in enumerate(entries):
        if entry.index != first + offset:
            return f"entries must have consecutive indexes; got {entry.index} after {first + offset - 1}"
    last = snap_index + len(log)
    if not snap_index < first <= last + 1:
        return (
            f"cannot store entries from index {first}: the log covers {snap_index + 1}..{last} "
            "(entries must follow the snapshot and leave no gap)"
        )
    return None


def _snapshot_name(snapshot: Snapshot) -> str:
    """Named by index, term and checksum: two snapshots of different bytes never share a file."""
    crc = checksum(snapshot.index, snapshot.term, snapshot.data)
    return f"snapshot-{snapshot.index:020d}-{snapshot.term}-{crc:08x}.bin"
