"""Durable Raft state (term, vote, commit, log) in one SQLite file; snapshots beside it.

SQLite gives atomic multi-row transactions, so a crash leaves either all of a
``save()`` or none of it. Per-row CRCs catch what it cannot: bit rot and hand edits.
Any inconsistency found at open is an error, never a silent reset, because a node that
forgets what it promised (its vote, its acknowledged entries) can break Raft's safety.

A snapshot's bytes live in a file of their own (``snapshot-<index>-<term>-<crc>.bin``, fsynced
before the ``snapshot`` row that names it commits), not in the database: a state of tens
of MiB written into SQLite goes through its WAL twice and holds the write lock meanwhile,
which stalled a node for longer than an election timeout. A file can be written by a
thread while the event loop keeps saving entries (:meth:`Storage.write_snapshot`).
"""

from __future__ import annotations

import os
import sqlite3
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from raftchat.bugs import FORGET_VOTE, LOSE_UNSYNCED
from raftchat.raft.messages import Entry, HardState, Snapshot

FORMAT_VERSION = 2  # 2: snapshot bytes in their own file (1 kept them in the snapshot row)
DB_NAME = "raft.db"
_SNAPSHOT_GLOB = "snapshot-*.bin"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LOST_ENTRIES = 5  # how many entries the "lose-unsynced" bug drops

_SNAPSHOT_TABLE = """CREATE TABLE snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    idx INTEGER NOT NULL,
    term INTEGER NOT NULL,
    file TEXT NOT NULL,
    size INTEGER NOT NULL,
    crc INTEGER NOT NULL
)"""
_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE hard_state (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    term INTEGER NOT NULL,
    voted_for TEXT,
    commit_index INTEGER NOT NULL
);
{_SNAPSHOT_TABLE};
CREATE TABLE log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL);
"""
_TABLES = ("meta", "hard_state", "snapshot", "log")


class StorageError(Exception):
    """The data directory cannot be used as it is; the message says why and what to do."""


def checksum(index: int, term: int, data: bytes) -> int:
    """CRC32 over index, term and data, so a row moved or retermed is caught too."""
    return zlib.crc32(data, zlib.crc32(struct.pack(">qq", index, term)))


@dataclass(slots=True)
class _State:
    hard_state: HardState
    snapshot: Snapshot | None
    entries: list[Entry]


class Storage:
    """One node's durable state. Use from one thread at a time (any thread)."""

    def __init__(self, path: Path, conn: sqlite3.Connection, bugs: frozenset[str]) -> None:
        self.path = path
        self.dir = path.parent
        self.bugs = bugs
        self._conn = conn
        self._verified: _State | None = None  # what open() read, handed out by the first load()
        self._replaced_snapshot: str | None = None  # file to delete once the transaction commits

    @classmethod
    def open(
        cls, data_dir: str | Path, cluster_id: str, node_id: str, bugs: frozenset[str] = frozenset()
    ) -> Storage:
        """Open (creating if absent) ``data_dir/raft.db`` and verify everything in it."""
        data_dir = Path(data_dir)
        path = data_dir / DB_NAME
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create data directory {data_dir}: {exc.strerror}") from exc
        if not path.exists():
            _create(path, cluster_id, node_id)
        _check_header(path)
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the database: {exc}") from exc
        storage = cls(path, conn, bugs)
        try:
            storage._configure()
            storage._check_meta(cluster_id, node_id)
            storage._verified = storage._read_all()  # verifies checksums and continuity
            storage._remove_other_snapshot_files()  # left by a crash before or after a compaction
            if LOSE_UNSYNCED in bugs:
                storage._lose_unsynced()
        except BaseException:
            conn.close()
            raise
        return storage

    # -- opening and verification -------------------------------------------------

    def _configure(self) -> None:
        with self._errors("cannot read the database"):
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            problems = [row[0] for row in self._conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise StorageError(
                    f"{self.path}: SQLite integrity check failed: {'; '.join(problems[:5])}. "
                    "The file is damaged; restore it from a backup, or move the data directory "
                    "away so the node rejoins empty and catches up from the leader."
                )
            tables = {
                row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        missing = [t for t in _TABLES if t not in tables]
        if missing:
            raise StorageError(
                f"{self.path}: missing table(s) {', '.join(missing)}; this is not a raftchat database "
                "or it is damaged. Move it away or point the node at another data directory."
            )

    def _check_meta(self, cluster_id: str, node_id: str) -> None:
        with self._errors("cannot read metadata"):
            meta = dict(self._conn.execute("SELECT key, value FROM meta"))
        version = meta.get("format_version")
        if version == "1":
            self._migrate_from_v1()
            version = str(FORMAT_VERSION)
        if version != str(FORMAT_VERSION):
            raise StorageError(
                f"{self.path}: storage format version {version!r}, but this program reads version "
                f"{FORMAT_VERSION}. Use the raftchat version that wrote it."
            )
        for key, wanted in (("cluster_id", cluster_id), ("node_id", node_id)):
            if meta.get(key) != wanted:
                raise StorageError(
                    f"{self.path} belongs to {key} {meta.get(key)!r}, but this node was started with "
                    f"{key} {wanted!r}. Start it with {key} {meta.get(key)!r}, or use another data directory."
                )

    def _migrate_from_v1(self) -> None:
        """Format 1 kept the snapshot's bytes in its row: move them to their file."""
        with self._errors("cannot migrate from storage format 1"):
            row = self._conn.execute("SELECT idx, term, data, crc FROM snapshot").fetchone()
            snapshot = None
            if row:
                index, term, data, crc = row
                if checksum(index, term, data) != crc:
                    raise self._corrupt(f"the snapshot at index {index} fails its checksum")
                snapshot = Snapshot(index, term, data)
                self.write_snapshot(snapshot)
            with self._transaction():
                self._conn.execute("DROP TABLE snapshot")
                self._conn.execute(_SNAPSHOT_TABLE)
                if snapshot is not None:
                    self._put_snapshot(snapshot)
                self._conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION),)
                )

    def _read_all(self) -> _State:
        with self._errors("cannot read the raft state"):
            row = self._conn.execute("SELECT term, voted_for, commit_index FROM hard_state").fetchone()
            snap_row = self._conn.execute("SELECT idx, term, file, size, crc FROM snapshot").fetchone()
            rows = self._conn.execute("SELECT idx, term, data, crc FROM log ORDER BY idx").fetchall()
        hard_state = HardState(*row) if row else HardState()
        snapshot = self._read_snapshot(*snap_row) if snap_row else None
        expected = (snapshot.index if snapshot else 0) + 1
        entries = []
        for index, term, data, crc in rows:
            if index != expected:
                raise self._corrupt(f"the log jumps from index {expected - 1} to {index}")
            if checksum(index, term, data) != crc:
                raise self._corrupt(f"log entry {index} fails its checksum")
            entries.append(Entry(index, term, data))
            expected += 1
        return _State(hard_state, snapshot, entries)

    def _read_snapshot(self, index: int, term: int, name: str, size: int, crc: int) -> Snapshot:
        path = self.dir / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise self._corrupt(
                f"the snapshot at index {index} cannot be read from {path}: {exc.strerror}"
            ) from exc
        if len(data) != size:
            raise self._corrupt(f"the snapshot at index {index} in {path} has {len(data)} bytes, not {size}")
        if checksum(index, term, data) != crc:
            raise self._corrupt(f"the snapshot at index {index} fails its checksum")
        return Snapshot(index, term, data)

    def _remove_other_snapshot_files(self) -> None:
        """Delete snapshot files the ``snapshot`` row does not name (and unfinished ones)."""
        with self._errors("cannot read the snapshot record"):
            row = self._conn.execute("SELECT file FROM snapshot").fetchone()
        keep = row[0] if row else None
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
        state = self._verified or self._read_all()
        if not state.entries:
            return
        lost = state.entries[-_LOST_ENTRIES:]
        new_last = lost[0].index - 1
        with self._transaction():
            self._conn.execute("DELETE FROM log WHERE idx >= ?", (lost[0].index,))
            self._conn.execute("UPDATE hard_state SET commit_index = MIN(commit_index, ?)", (new_last,))
        print(
            f"WARNING: bug 'lose-unsynced' dropped log entries {lost[0].index}..{lost[-1].index} "
            f"from {self.path}",
            file=sys.stderr,
        )

    # -- public API ---------------------------------------------------------------

    def load(self) -> tuple[HardState, Snapshot | None, list[Entry]]:
        """Everything saved: hard state, snapshot, and the entries after it in order."""
        state, self._verified = self._verified or self._read_all(), None
        return state.hard_state, state.snapshot, state.entries

    def save(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None = None
    ) -> None:
        """Persist one Ready in a single transaction (a snapshot's file first); durable
        (fsynced) when it returns."""
        if snapshot is not None:
            self.write_snapshot(snapshot)
        with self._transaction():
            if snapshot is not None:
                self._install_snapshot(snapshot)
            if entries:
                self._append(entries)
            if hard_state is not None:
                voted_for = None if FORGET_VOTE in self.bugs else hard_state.voted_for
                self._conn.execute(
                    "INSERT OR REPLACE INTO hard_state (id, term, voted_for, commit_index) "
                    "VALUES (0, ?, ?, ?)",
                    (hard_state.term, voted_for, hard_state.commit),
                )

    def write_snapshot(self, snapshot: Snapshot) -> Path:
        """Write a snapshot's bytes to its file and fsync it (file, then directory). Touches
        no SQLite state, so a thread may do it while another saves; :meth:`compact` or
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
            _fsync_dir(self.dir)
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
        name = _snapshot_name(snapshot)
        with self._transaction():
            current = self._conn.execute("SELECT idx, file FROM snapshot").fetchone()
            stale = bool(current and snapshot.index <= current[0])
            if not stale:
                self._put_snapshot(snapshot)
                self._conn.execute("DELETE FROM log WHERE idx <= ?", (snapshot.index,))
        if stale and name != current[1]:
            (self.dir / name).unlink(missing_ok=True)

    def close(self) -> None:
        self._conn.close()

    # -- internals ----------------------------------------------------------------

    def _install_snapshot(self, snapshot: Snapshot) -> None:
        """A snapshot from the leader. Entries after it survive only if the log agrees with
        it at its index (Raft's InstallSnapshot rule); otherwise the whole log goes."""
        known = self._conn.execute("SELECT term FROM log WHERE idx = ?", (snapshot.index,)).fetchone()
        if known is None:
            known = self._conn.execute(
                "SELECT term FROM snapshot WHERE idx = ?", (snapshot.index,)
            ).fetchone()
        if known is not None and known[0] == snapshot.term:
            self._conn.execute("DELETE FROM log WHERE idx <= ?", (snapshot.index,))
        else:
            self._conn.execute("DELETE FROM log")
        self._put_snapshot(snapshot)

    def _put_snapshot(self, snapshot: Snapshot) -> None:
        """Record a snapshot whose file is written; its predecessor's file goes after commit."""
        name = _snapshot_name(snapshot)
        old = self._conn.execute("SELECT file FROM snapshot").fetchone()
        self._conn.execute(
            "INSERT OR REPLACE INTO snapshot (id, idx, term, file, size, crc) VALUES (0, ?, ?, ?, ?, ?)",
            (
                snapshot.index,
                snapshot.term,
                name,
                len(snapshot.data),
                checksum(snapshot.index, snapshot.term, snapshot.data),
            ),
        )
        if old and old[0] != name:
            self._replaced_snapshot = old[0]

    def _append(self, entries: list[Entry]) -> None:
        first = entries[0].index
        for offset, entry in enumerate(entries):
            if entry.index != first + offset:
                raise ValueError(
                    f"entries must have consecutive indexes; got {entry.index} after {first + offset - 1}"
                )
        row = self._conn.execute("SELECT idx FROM snapshot").fetchone()
        snap_index = row[0] if row else 0
        last = self._conn.execute("SELECT MAX(idx) FROM log").fetchone()[0] or snap_index
        if not snap_index < first <= last + 1:
            raise ValueError(
                f"cannot store entries from index {first}: the log covers {snap_index + 1}..{last} "
                "(entries must follow the snapshot and leave no gap)"
            )
        self._conn.execute("DELETE FROM log WHERE idx >= ?", (first,))
        self._conn.executemany("INSERT INTO log (idx, term, data, crc) VALUES (?, ?, ?, ?)", _rows(entries))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._verified = None
        with self._errors("write failed"):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        if self._replaced_snapshot:
            self._replaced_snapshot, old = None, self._replaced_snapshot
            (self.dir / old).unlink(missing_ok=True)  # only once the row naming the new one is durable

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn SQLite's terse errors into ones that name the file."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StorageError(
                f"{self.path}: {doing}: {exc}. If the disk is full or read-only, fix that and restart; "
                "if the file is damaged, restore it from a backup or move the data directory away."
            ) from exc


def _snapshot_name(snapshot: Snapshot) -> str:
    """Named by index, term and checksum: two snapshots of different bytes never share a file."""
    crc = checksum(snapshot.index, snapshot.term, snapshot.data)
    return f"snapshot-{snapshot.index:020d}-{snapshot.term}-{crc:08x}.bin"


def _fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _rows(entries: Iterable[Entry]) -> Iterator[tuple[int, int, bytes, int]]:
    for e in entries:
        yield e.index, e.term, e.data, checksum(e.index, e.term, e.data)


def _check_header(path: Path) -> None:
    """SQLite happily 'opens' any file and fails later with a vague message; check first."""
    try:
        with open(path, "rb") as f:
            header = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror}") from exc
    if header != _SQLITE_MAGIC:
        raise StorageError(
            f"{path} is not a SQLite database (it does not start with the SQLite header). "
            "It may have been overwritten; restore it from a backup or move it away."
        )


def _create(path: Path, cluster_id: str, node_id: str) -> None:
    """Build the database under a temporary name and rename it into place, so a crash
    mid-creation never leaves a half-made raft.db that a later open would trust."""
    tmp = path.with_name(path.name + ".creating")
    for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
        leftover.unlink(missing_ok=True)
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("format_version", str(FORMAT_VERSION)), ("cluster_id", cluster_id), ("node_id", node_id)],
            )
            conn.execute("INSERT INTO hard_state (id, term, voted_for, commit_index) VALUES (0, 0, NULL, 0)")
            conn.execute("COMMIT")
        finally:
            conn.close()
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"cannot create {path}: {exc}") from exc
