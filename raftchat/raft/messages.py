"""Messages and records exchanged by the Raft core.

Everything here is plain data: the core consumes and produces these values, and the
runtime (``raftchat.node``) moves them between processes with :func:`encode` and
:func:`decode`. Keeping them as dataclasses makes simulated tests easy to read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import NamedTuple

import msgpack


class Entry(NamedTuple):
    """One log entry. ``data`` is an opaque command; ``b""`` is a leader's no-op.

    A named tuple rather than a frozen dataclass: every node builds one per entry it
    receives or loads, and a tuple is built several times faster and is encoded as is."""

    index: int
    term: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A state-machine image covering every entry up to ``index`` (whose term is ``term``)."""

    index: int
    term: int
    data: bytes


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on disk before a node may answer anything that depends on it."""

    term: int = 0
    voted_for: str | None = None
    commit: int = 0


@dataclass(slots=True)
class RequestVote:
    src: str
    dst: str
    term: int
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False


@dataclass(slots=True)
class VoteResponse:
    src: str
    dst: str
    term: int
    granted: bool
    pre_vote: bool = False


@dataclass(slots=True)
class AppendEntries:
    """Replication and heartbeat. ``read_ctx`` > 0 asks followers to confirm leadership
    for the ReadIndex requests numbered up to it."""

    src: str
    dst: str
    term: int
    prev_index: int
    prev_term: int
    entries: list[Entry] = field(default_factory=list)
    commit: int = 0
    read_ctx: int = 0


@dataclass(slots=True)
class AppendResponse:
    """``match_index`` is the follower's last matching index on success. On a rejection,
    ``hint_index``/``hint_term`` let the leader skip a whole conflicting term at once."""

    src: str
    dst: str
    term: int
    success: bool
    match_index: int = 0
    hint_index: int = 0
    hint_term: int = 0
    read_ctx: int = 0


@dataclass(slots=True)
class InstallSnapshot:
    """One chunk of the leader's snapshot (the Raft paper's InstallSnapshot with offset and
    done): ``data`` holds the snapshot's bytes from ``offset`` on, and ``done`` marks the last
    chunk. ``snap_index``/``snap_term`` name the snapshot, so with ``term`` (one leader per
    term) they identify one transfer: a chunk of another transfer never mixes into this one."""

    src: str
    dst: str
    term: int
    snap_index: int
    snap_term: int
    offset: int
    data: bytes
    done: bool


@dataclass(slots=True)
class SnapshotResponse:
    """``match_index`` > 0: the follower's log now covers everything up to it (the snapshot is
    installed and durable, or the follower had committed that far already). ``match_index`` 0
    acknowledges chunks: the follower holds the first ``offset`` bytes of snapshot
    ``snap_index`` and wants the chunk at ``offset`` next (0 after a restart or a mix-up)."""

    src: str
    dst: str
    term: int
    match_index: int
    snap_index: int = 0
    offset: int = 0


Message = RequestVote | VoteResponse | AppendEntries | AppendResponse | InstallSnapshot | SnapshotResponse

_KINDS: list[type] = [
    RequestVote,
    VoteResponse,
    AppendEntries,
    AppendResponse,
    InstallSnapshot,
    SnapshotResponse,
]
_CODE = {cls: i for i, cls in enumerate(_KINDS)}
_FIELDS = {cls: [f.name for f in fields(cls)] for cls in _KINDS}


def encode(msg: Message) -> bytes:
    """Serialise a message as a compact msgpack array: [kind, field values...]."""
    cls = type(msg)
    values: list = [_CODE[cls]]
    for name in _FIELDS[cls]:
        value = getattr(msg, name)
        values.append(value)  # entries are tuples: packed as [index, term, data] arrays
    return msgpack.packb(values, use_bin_type=True)


class DecodeError(ValueError):
    """A peer sent bytes that are not a Raft message."""


def decode(data: bytes) -> Message:
    try:
        values = msgpack.unpackb(data, raw=False)
        cls = _KINDS[values[0]]
        names = _FIELDS[cls]
        if len(values) != len(names) + 1:
            raise DecodeError(f"{cls.__name__}: expected {len(names)} fields, got {len(values) - 1}")
        args = values[1:]
        for i, (name, kind, value) in enumerate(zip(names, _KIND_OF[cls], args, strict=True)):
            # Exact type tests first (a bool is an int subclass, so it never passes as one).
            if kind is int:
                if type(value) is not int or value < 0:
                    _check_field(cls, name, value)  # raises, naming the field
            elif kind is list:
                args[i] = _entries(value)
            elif type(value) is not kind:
                _check_field(cls, name, value)
        return cls(*args)
    except DecodeError:
        raise
    except Exception as exc:  # msgpack, index and type errors all mean the same thing here
        raise DecodeError(f"malformed raft message: {exc!r}") from exc


_SIMPLE = {"str": str, "bool": bool, "bytes": bytes}


_new_entry = tuple.__new__


def _entries(value: object) -> list[Entry]:
    """The entries of an AppendEntries, each checked as it is built: ``[index, term, data]``
    with non-negative integers (not bools) and bytes. One pass with exact type tests, since
    a follower decodes every entry the leader sends."""
    if type(value) is not list:
        raise DecodeError(f"AppendEntries: entries must be list[Entry], got {value!r:.60}")
    entries = []
    append = entries.append
    for e in value:
        if type(e) is not list or len(e) != 3:
            raise DecodeError(f"AppendEntries: entries must be list[Entry], got an entry {e!r:.60}")
        index, term, data = e
        if type(index) is not int or type(term) is not int or type(data) is not bytes or min(index, term) < 0:
            raise DecodeError(f"AppendEntries: entries must be list[Entry], got an entry {e!r:.60}")
        append(_new_entry(Entry, e))
    return entries


def _check_field(cls: type, name: str, value: object) -> None:
    """Every field has the type the core expects: a peer's bad value must not reach it."""
    kind = _TYPES[cls][name]
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    elif kind == "list[Entry]":
        ok = isinstance(value, list) and all(
            isinstance(e, list | tuple)
            and len(e) == 3
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in e[:2])
            and isinstance(e[2], bytes)
            for e in value
        )
    else:
        ok = isinstance(value, _SIMPLE[kind]) and (kind == "bool" or not isinstance(value, bool))
    if not ok:
        raise DecodeError(f"{cls.__name__}: {name} must be {kind}, got {value!r:.60}")


_TYPES = {cls: {f.name: f.type for f in fields(cls)} for cls in _KINDS}
_KIND_OF = {
    cls: [{"int": int, "list[Entry]": list, **_SIMPLE}[_TYPES[cls][name]] for name in _FIELDS[cls]]
    for cls in _KINDS
}
