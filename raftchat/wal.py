"""An append-only log of checksummed records in segment files: what a node writes on every flush.

A record is ``length (u32) | crc32 (u32) | body``, the CRC covering the length and the body.
An append is one ``os.write`` of the new records and one ``os.fdatasync``, so every record
reported durable is on the disk, and at most the last append can be incomplete after a crash.

Segment files are ``log-<seq>.seg``, each starting with a 16-byte header (magic, format,
kind). A *base* segment starts the log afresh (:meth:`SegmentLog.rewrite`, used for
compaction); the segments after it are *continuations*, made when the active one grows past
``segment_bytes`` (checked before an append, so a failure to make the next segment has
written nothing). Every segment is built under a temporary name, fsynced, renamed into
place and the directory fsynced, so a segment with its final name is always whole; segments
older than the newest base are leftovers of a compaction that crashed before removing them.

Recovery (:func:`open_log`): an incomplete or failing record at the very end of the last
segment, with no intact record anywhere after it, is a torn append (never acknowledged) and
is cut off. Any other failing record is damage to data that was reported durable: an error
naming the file and offset, never a silent loss.
"""

from __future__ import annotations

import os
import re
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"raftchatlog\x00"
_HEADER = struct.Struct(">12sBBxx")  # magic, format, kind
_FRAME = struct.Struct(">II")  # body length, crc32 of the length's bytes and the body
BASE, CONTINUATION = 1, 2
SEGMENT_BYTES = 16 << 20
_NAME = re.compile(r"log-(\d{20})\.seg")


class StorageError(Exception):
    """The data directory cannot be used as it is; the message says why and what to do."""


def frame(body: bytes) -> bytes:
    """One record as it goes to disk."""
    length = len(body).to_bytes(4, "big")
    return length + zlib.crc32(body, zlib.crc32(length)).to_bytes(4, "big") + body


def segment_name(seq: int) -> str:
    return f"log-{seq:020d}.seg"


def fsync_dir(path: Path) -> None:
    """Make a file's creation, rename or removal in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Record:
    """A record read back, with where it is (for error messages)."""

    body: bytes
    path: Path
    offset: int


def damaged(path: Path, offset: int, what: str) -> StorageError:
    return StorageError(
        f"{path}: {what} at offset {offset}. Records there were reported durable, so this is "
        "damage (disk, or an edit), not a crash mid-write. Restore the data directory from a "
        "backup, or move it away so the node rejoins empty and catches up from the leader "
        "(only safe if a majority of the cluster still holds the data)."
    )


def _records(path: Path, data: bytes, last: bool) -> tuple[list[Record], int]:
    """The records of one segment and where the valid ones end. Only in the ``last``
    segment may the final record be torn (incomplete, or failing its checksum with nothing
    after it); anywhere else a bad record is damage."""
    records, offset, end = [], _HEADER.size, len(data)
    while offset < end:
        torn = None
        if end - offset < _FRAME.size:
            torn = "an incomplete record header"
        else:
            length, crc = _FRAME.unpack_from(data, offset)
            stop = offset + _FRAME.size + length
            if stop > end:
                torn = f"a record of {length} bytes running past the end of the file ({end} bytes)"
            elif length == 0 and not data[offset:].strip(b"\x00"):
                torn = "zeros where a record should start"
            elif zlib.crc32(data[offset + 8 : stop], zlib.crc32(data[offset : offset + 4])) != crc:
                if stop != end:
                    raise damaged(path, offset, "a record fails its checksum")
                torn = "a last record failing its checksum"
        if torn is not None:
            if not last:
                raise damaged(path, offset, torn)
            if _intact_record_after(data, offset + 1):  # e.g. a flipped bit in a length field
                raise damaged(path, offset, f"{torn}, with intact records after it")
            return records, offset
        records.append(Record(data[offset + 8 : stop], path, offset))
        offset = stop
    return records, offset


def _intact_record_after(data: bytes, start: int) -> bool:
    """Whether a whole record with a good checksum starts anywhere from ``start`` on. After a
    torn append nothing can (only the last append can be incomplete); after damage to a
    record's header, the records written after it are still there."""
    end = len(data)
    for offset in range(start, end - _FRAME.size + 1):
        length, crc = _FRAME.unpack_from(data, offset)
        stop = offset + _FRAME.size + length
        if (
            length > 0
            and stop <= end
            and zlib.crc32(data[offset + 8 : stop], zlib.crc32(data[offset : offset + 4])) == crc
        ):
            return True
    return False


class SegmentLog:
    """The open log: appends go to the last segment. Use from one thread at a time."""

    def __init__(self, directory: Path, fmt: int, seq: int, size: int, segment_bytes: int) -> None:
        self.dir = directory
        self.format = fmt
        self.seq = seq  # the active (last) segment
        self.size = size  # bytes in it
        self.segment_bytes = segment_bytes
        self._fd = os.open(self.dir / segment_name(seq), os.O_WRONLY | os.O_APPEND)
        self._broken: str | None = None

    @property
    def path(self) -> Path:
        return self.dir / segment_name(self.seq)

    def append(self, bodies: list[bytes]) -> None:
        """Write records and fdatasync them: durable when this returns."""
        self._check()
        if self.size >= self.segment_bytes:  # before writing, so a failure here has written nothing
            self._switch(self._build(self.seq + 1, CONTINUATION, []))
        buf = b"".join(map(frame, bodies))
        try:
            view = memoryview(buf)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fdatasync(self._fd)
        except OSError as exc:
            self._fail(exc)
        self.size += len(buf)

    def rewrite(self, bodies: list[bytes]) -> None:
        """Start the log afresh from a new base segment holding ``bodies``; the older
        segments go once the new one is durable."""
        self._check()
        old = self.seq
        self._switch(self._build(self.seq + 1, BASE, bodies))
        for seq in range(old, 0, -1):
            path = self.dir / segment_name(seq)
            if not path.exists():
                break
            try:
                path.unlink()
            except OSError:
                break  # harmless: a segment older than the newest base is removed at open

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _build(self, seq: int, kind: int, bodies: list[bytes]) -> int:
        """Write a whole segment under a temporary name, fsync, rename, fsync the directory."""
        path = self.dir / segment_name(seq)
        tmp = path.with_name(path.name + ".tmp")
        data = _HEADER.pack(MAGIC, self.format, kind) + b"".join(map(frame, bodies))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            fsync_dir(self.dir)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write log segment {path}: {exc.strerror}") from exc
        return len(data)

    def _switch(self, size: int) -> None:
        os.close(self._fd)
        self.seq += 1
        self.size = size
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def _check(self) -> None:
        if self._broken:
            raise StorageError(f"{self.path}: an earlier write failed ({self._broken}); restart the node")

    def _fail(self, exc: OSError) -> None:
        """A failed write may have left part of a record, and after a failed fdatasync the
        kernel's view of the file is unknown: cut back to the last good size and refuse
        further writes (a restart rereads what is really on disk)."""
        self._broken = exc.strerror or str(exc)
        try:
            os.ftruncate(self._fd, self.size)
        except OSError:
            pass
        raise StorageError(
            f"{self.path}: write failed: {self._broken}. If the disk is full or read-only, fix that "
            "and restart the node."
        ) from exc


def create(directory: Path, fmt: int, base: bytes, segment_bytes: int = SEGMENT_BYTES) -> SegmentLog:
    """A new log whose first segment is a base holding one record."""
    tmp = directory / (segment_name(1) + ".tmp")
    data = _HEADER.pack(MAGIC, fmt, BASE) + frame(base)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / segment_name(1))
        fsync_dir(directory)
    except OSError as exc:
        raise StorageError(f"cannot create log in {directory}: {exc.strerror}") from exc
    return SegmentLog(directory, fmt, 1, len(data), segment_bytes)


def segments(directory: Path) -> list[int]:
    """The sequence numbers of the segment files present, in order."""
    found = []
    for path in directory.iterdir():
        if match := _NAME.fullmatch(path.name):
            found.append(int(match.group(1)))
    return sorted(found)


def open_log(
    directory: Path, fmt: int, segment_bytes: int = SEGMENT_BYTES
) -> tuple[SegmentLog, Iterator[Record]]:
    """Open an existing log: cut a torn tail off, drop segments older than the newest base,
    and return it with its records in order (the first is the base's). Raises
    :class:`StorageError` for anything else that is wrong, naming the file."""
    for leftover in directory.glob("log-*.seg.tmp"):
        leftover.unlink()
    seqs = segments(directory)
    headers = {}
    for seq in seqs:
        path = directory / segment_name(seq)
        with open(path, "rb") as f:
            header = f.read(_HEADER.size)
        if len(header) < _HEADER.size or header[:12] != MAGIC:
            raise StorageError(
                f"{path} is not a raftchat log segment (it does not start with the segment header). "
                "It may have been overwritten; restore the data directory from a backup or move it away."
            )
        _, version, kind = _HEADER.unpack(header)
        if version != fmt:
            raise StorageError(
                f"{path}: storage format {version}, but this program reads format {fmt}. "
                "Use the raftchat version that wrote it."
            )
        headers[seq] = kind
    bases = [seq for seq in seqs if headers[seq] == BASE]
    if not bases:
        raise StorageError(
            f"{directory}: no base log segment among {', '.join(map(segment_name, seqs))}: the start "
            "of the log is missing. Restore the data directory from a backup or move it away."
        )
    first = bases[-1]
    live = [seq for seq in seqs if seq >= first]
    if live != list(range(first, first + len(live))):
        gap = next(t for s, t in zip(live, range(first, first + len(live)), strict=True) if s != t)
        raise StorageError(
            f"{directory}: log segment {segment_name(gap)} is missing (have "
            f"{', '.join(map(segment_name, live))}). Restore the data directory from a backup."
        )
    records: list[Record] = []
    size = 0
    for seq in live:
        path = directory / segment_name(seq)
        data = path.read_bytes()
        found, size = _records(path, data, last=seq == live[-1])
        if size < len(data):
            print(
                f"WARNING: {path}: cut {len(data) - size} bytes of a torn last write at offset {size}",
                file=sys.stderr,
            )
            with open(path, "r+b") as f:
                f.truncate(size)
                os.fsync(f.fileno())
        records += found
    if not records or records[0].path.name != segment_name(first):
        raise StorageError(f"{directory / segment_name(first)}: the base segment holds no record")
    log = SegmentLog(directory, fmt, live[-1], size, segment_bytes)
    for seq in seqs:
        if seq < first:
            (directory / segment_name(seq)).unlink()  # left by a compaction that crashed
    return log, iter(records)
