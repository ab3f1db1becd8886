"""Produce bytes in a forked child, so the event loop keeps running meanwhile.

Serialising a large state machine takes a long time in Python (hundreds of ms for a
chat history of 100,000 messages), longer than an election timeout. A forked child sees
the state as it was at the fork (the kernel copies pages only when the parent writes
them, the way Redis takes its background snapshots), writes it into a pipe, and exits;
the parent reads the pipe without blocking and goes on serving.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable


class ChildFailed(RuntimeError):
    """The child could not produce its bytes."""


class Refused(ChildFailed):
    """Raised by ``produce`` in the child to refuse with a reason: the parent's ``result()``
    raises it again with the same text (any other exception in the child is a bare exit)."""


_REFUSED = 3  # the child's exit status when it refused; its pipe then carries the reason


class ForkedBytes:
    """Forks at construction, so the child sees the state exactly as it is at this call;
    ``await result()`` collects the bytes without blocking the event loop."""

    def __init__(self, produce: Callable[[], bytes]) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: no asyncio, no storage, just the bytes and out
            status = 1
            try:
                os.close(read_fd)
                try:
                    view, done = memoryview(produce()), 0
                except Refused as exc:
                    view, done = memoryview(str(exc).encode()), _REFUSED
                while view:
                    view = view[os.write(write_fd, view) :]
                status = done
            finally:
                os._exit(status)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.pid, self._fd = pid, read_fd

    async def result(self) -> bytes:
        loop = asyncio.get_running_loop()
        chunks: list[bytes] = []
        finished = loop.create_future()

        def readable() -> None:
            try:
                chunk = os.read(self._fd, 1 << 20)
            except BlockingIOError:
                return
            if chunk:
                chunks.append(chunk)
            elif not finished.done():
                finished.set_result(None)

        loop.add_reader(self._fd, readable)
        try:
            await finished
        finally:
            loop.remove_reader(self._fd)
            os.close(self._fd)
            _, status = os.waitpid(self.pid, 0)  # the pipe is closed: the child is exiting now
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == _REFUSED:
            raise Refused(b"".join(chunks).decode(errors="replace"))
        if status != 0:
            raise ChildFailed(f"snapshot child {self.pid} exited with status {status}")
        return b"".join(chunks)
