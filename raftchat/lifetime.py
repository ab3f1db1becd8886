"""Child processes that die with their parent, even when the parent is killed with SIGKILL,
and the node processes of a local cluster built on that."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn``: the kernel SIGKILLs the child when the thread that started it exits.

    PR_SET_PDEATHSIG survives exec, so it also holds through ``ip netns exec``; it fires on the
    *thread*'s exit, so start children with it only from a thread that lives as long as they
    should. Where prctl is missing (not Linux) the child simply does not get the guarantee.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class NodeProcesses:
    """The node processes of a local cluster, of raftchat or of any other system.

    Each node runs in a session of its own (a Ctrl-C at the terminal reaches only the
    harness, which then stops the nodes in order), with its output appended to its log, and
    dies with the thread that started it (:func:`die_with_parent`). Every pid this object
    kills or stops is remembered in ``expected_exits``: any other exit is the node's own doing.
    Subclasses say how a node is started: ``command``, ``log_path`` and optionally ``cwd``, ``env``.
    """

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen] = {}
        self.expected_exits: set[int] = set()

    @property
    def ids(self) -> list[str]:
        raise NotImplementedError

    def command(self, node_id: str) -> list[str]:
        raise NotImplementedError

    def log_path(self, node_id: str) -> Path:
        raise NotImplementedError

    def cwd(self, node_id: str) -> Path | None:
        return None

    def env(self, node_id: str) -> dict[str, str] | None:
        return None

    def start(self, node_id: str) -> subprocess.Popen:
        """Start one node process (if it is not running)."""
        proc = self.procs.get(node_id)
        if proc is not None and proc.poll() is None:
            return proc
        log_path = self.log_path(node_id)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                self.command(node_id),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.cwd(node_id),
                env=self.env(node_id),
                preexec_fn=die_with_parent,
                start_new_session=True,
            )
        self.procs[node_id] = proc
        return proc

    def start_all(self) -> None:
        for node_id in self.ids:
            self.start(node_id)

    def signal(self, node_id: str, sig: int) -> None:
        proc = self.procs.get(node_id)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, sig)

    def kill(self, node_id: str) -> None:
        """kill -9, and reap it."""
        proc = self.procs.get(node_id)
        if proc is not None and proc.poll() is None:
            self.expected_exits.add(proc.pid)
            proc.kill()
            proc.wait()

    def stop(self, node_id: str, timeout: float = 5.0) -> None:
        """SIGTERM (after a SIGCONT: a paused node cannot handle it), SIGKILL after ``timeout``."""
        proc = self.procs.get(node_id)
        if proc is None or proc.poll() is not None:
            return
        self._terminate(proc)
        self._reap(proc, time.monotonic() + timeout)

    def stop_all(self, timeout: float = 5.0) -> None:
        """Stop every node at once, each given until one shared deadline."""
        running = [proc for proc in self.procs.values() if proc.poll() is None]
        for proc in running:
            self._terminate(proc)
        deadline = time.monotonic() + timeout
        for proc in running:
            self._reap(proc, deadline)

    def alive(self, node_id: str) -> bool:
        proc = self.procs.get(node_id)
        return proc is not None and proc.poll() is None

    def _terminate(self, proc: subprocess.Popen) -> None:
        self.expected_exits.add(proc.pid)
        proc.send_signal(signal.SIGCONT)
        proc.terminate()

    @staticmethod
    def _reap(proc: subprocess.Popen, deadline: float) -> None:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
