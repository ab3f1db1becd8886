"""A node's storage writes on a thread of their own, so that the event loop never waits for
an fsync.

One write is in flight at a time and writes reach the disk in the order they were handed
over. Saves handed over while one is in flight are merged into the next write (group commit:
one record, one ``fdatasync``). Each save carries callbacks that run on the event loop once
it and every earlier write are durable; that is where a node sends what must not leave
before its disk holds it (a follower's acknowledgement, a vote). A failed save stops all
further writes and is reported once through ``on_failure``: after it, nothing written later
may be announced as durable.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from raftchat.raft.messages import Entry, HardState, Snapshot
from raftchat.storage import Storage


@dataclass(slots=True)
class _Write:
    """One queued write: a save of Raft state, or a call (``fn``) that must come in order."""

    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    fn: Callable[[], Any] | None = None
    future: asyncio.Future | None = None  # a call's result
    callbacks: list[Callable[[], None]] = field(default_factory=list)

    def merge(self, hard_state: HardState | None, entries: list[Entry]) -> None:
        """Take a later save into this one: entries from index i replace ours from i on."""
        if hard_state is not None:
            self.hard_state = hard_state
        if entries:
            keep = entries[0].index - self.entries[0].index if self.entries else 0
            self.entries = self.entries[: max(keep, 0)] + entries


class Writer:
    """Runs ``storage``'s writes on one thread, in order, one at a time (see the module doc)."""

    def __init__(self, storage: Storage, on_failure: Callable[[BaseException], None]) -> None:
        self._storage = storage
        self._on_failure = on_failure
        # One thread of our own, fed through a queue, that reports each write back with one
        # call_soon_threadsafe: cheaper per write than an executor's two futures chained.
        self._inbox: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[_Write] = deque()  # the first is in flight while _busy
        self._busy = False
        self._failed = False
        # Cleared, it holds the next write back before it touches the disk (a failpoint that
        # makes a slow disk: nothing that waits for durability may leave meanwhile).
        self.gate = threading.Event()
        self.gate.set()

    def save(
        self,
        hard_state: HardState | None,
        entries: list[Entry],
        snapshot: Snapshot | None,
        callback: Callable[[], None],
    ) -> None:
        """Queue one Ready's state; ``callback`` runs once it is durable."""
        tail = self._queue[-1] if self._queue else None
        if (
            tail is not None
            and not (self._busy and len(self._queue) == 1)
            and tail.fn is None
            and tail.snapshot is None
            and snapshot is None
        ):
            tail.merge(hard_state, entries)
        else:
            tail = _Write(hard_state, list(entries), snapshot)
            self._queue.append(tail)
        tail.callbacks.append(callback)
        self._start()

    def save_now(self, hard_state: HardState | None, entries: list[Entry]) -> bool:
        """Write on the calling thread if nothing is queued or in flight (and the gate is
        open): True once it is durable. False: nothing was done; :meth:`save` it instead.
        A failed write raises here, and stops every later one as a failed :meth:`save` does.

        For a node whose next step waits for the disk anyway (a follower acknowledges only
        durable entries): two thread hand-offs cost it more than the loop's pause."""
        if self._busy or self._queue or self._failed or not self.gate.is_set():
            return False
        try:
            self._storage.save(hard_state, entries, None)
        except BaseException:
            self._failed = True
            raise
        return True

    def then(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once everything queued so far is durable: now, if nothing is."""
        if self._queue:
            self._queue[-1].callbacks.append(callback)
        elif not self._failed:
            callback()

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the writer's thread after the writes queued so far (a compaction
        rewrites the log, so it must not overlap a save); its exception is the caller's."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(fn=fn, future=future))
        self._start()
        return await future

    async def close(self) -> None:
        """Let the write in flight finish (a held-back one goes ahead), then stop the thread."""
        self.gate.set()
        self._failed = True  # no more writes start, no more callbacks run
        for _ in range(100_000):
            if not self._busy:
                break
            await asyncio.sleep(0.001)
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join()

    def _start(self) -> None:
        if self._busy or self._failed or not self._queue:
            return
        self._busy = True
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._serve, name="raftchat-writer", daemon=True)
            self._thread.start()
        self._inbox.put(self._queue[0])

    def _serve(self) -> None:
        """The writer thread: each write handed over, in order, then its outcome to the loop."""
        assert self._loop is not None
        while (write := self._inbox.get()) is not None:
            try:
                result, exc = self._run(write), None
            except BaseException as error:  # reported on the loop, as a failed write
                result, exc = None, error
            try:
                self._loop.call_soon_threadsafe(self._done, result, exc)
            except RuntimeError:
                return  # the loop is closed: the node is gone without closing us

    def _run(self, write: _Write) -> Any:
        self.gate.wait()
        if write.fn is not None:
            return write.fn()
        self._storage.save(write.hard_state, write.entries, write.snapshot)
        return None

    def _done(self, result: Any, exc: BaseException | None) -> None:
        self._busy = False
        write = self._queue.popleft()
        if write.future is not None:
            if not write.future.done():
                if exc is None:
                    write.future.set_result(result)
                else:
                    write.future.set_exception(exc)
            exc = None
        if self._failed:
            return  # closing, or an earlier write failed
        if exc is not None:
            self._failed = True
            self._on_failure(exc)
            return
        self._start()  # the next write goes to the disk before we act on this one
        for callback in write.callbacks:
            callback()
