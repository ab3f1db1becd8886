"""Process faults: kill -9 and restart, SIGSTOP and SIGCONT.

Healing must undo exactly what the nemesis did (restart the nodes *it* killed, resume the
processes *it* paused), never touch a node that was down for another reason, so every fault
is tracked here until it is healed. The methods block (a kill reaps the process, a restart
spawns one): the scheduler runs them in ``PROCESS_THREAD``, never in ``asyncio.to_thread``.

Why a thread of its own: nodes are started with PR_SET_PDEATHSIG, which kills a child when
the *thread* that forked it exits, not the process. asyncio's default executor threads exit
when ``asyncio.run`` returns, which would SIGKILL every node restarted from them. This
executor's one thread lives until the interpreter exits.
"""

from __future__ import annotations

import random
import signal
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

PROCESS_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nemesis-process")


class Cluster(Protocol):
    """What the nemesis needs from a cluster (every system's cluster has it, see ``systems.base``)."""

    procs: dict[str, subprocess.Popen]

    @property
    def ids(self) -> list[str]: ...

    def start(self, node_id: str) -> subprocess.Popen: ...

    def kill(self, node_id: str) -> None: ...

    def signal(self, node_id: str, sig: int) -> None: ...

    def alive(self, node_id: str) -> bool: ...

    def leader(self) -> str | None: ...

    def status(self, node_id: str) -> dict | None: ...

    def arm(self, node_id: str, failpoint: str | None) -> bool: ...


def random_minority(nodes: Sequence[str], rng: random.Random) -> list[str]:
    """A random non-empty minority: 1 to (n-1)//2 nodes (one node when n <= 2)."""
    size = rng.randint(1, max(1, (len(nodes) - 1) // 2))
    return sorted(rng.sample(sorted(nodes), size))


def process_state(pid: int) -> str | None:
    """The kernel's state letter for a process (R, S, T for stopped, Z...), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ...": comm may contain spaces and parentheses, so split after the last ')'.
    return stat.rpartition(")")[2].split()[0]


@dataclass
class ProcessFaults:
    """Kills and pauses on one cluster, remembered until healed."""

    cluster: Cluster
    killed: dict[str, int] = field(default_factory=dict)  # node -> pid we killed, not yet restarted
    paused: dict[str, int] = field(default_factory=dict)  # node -> pid we stopped, not yet resumed

    def _pid(self, node: str) -> int | None:
        proc = self.cluster.procs.get(node)
        return proc.pid if proc is not None and self.cluster.alive(node) else None

    def kill(self, nodes: Sequence[str]) -> dict[str, Any]:
        """kill -9 these nodes (those running); returns {"nodes", "pids"} of what was killed."""
        done: dict[str, int] = {}
        for node in nodes:
            pid = self._pid(node)
            if pid is None:
                continue
            self.cluster.kill(node)
            self.paused.pop(node, None)  # a killed process is no longer ours to resume
            self.killed[node] = pid
            done[node] = pid
        return {"nodes": sorted(done), "pids": done}

    def crashed(self, nodes: Sequence[str]) -> None:
        """Nodes that exited on their own while a fault made them (a failpoint): ours to restart."""
        for node in nodes:
            proc = self.cluster.procs.get(node)
            if proc is not None and proc.poll() is not None:
                self.paused.pop(node, None)
                self.killed[node] = proc.pid

    def restart(self) -> dict[str, Any]:
        """Start again every node we killed; returns {"nodes", "pids"} with the new pids."""
        done: dict[str, int] = {}
        for node in sorted(self.killed):
            done[node] = self.cluster.start(node).pid
            del self.killed[node]
        return {"nodes": sorted(done), "pids": done}

    def pause(self, nodes: Sequence[str]) -> dict[str, Any]:
        """SIGSTOP these nodes (those running); returns {"nodes", "pids"} of what was paused."""
        done: dict[str, int] = {}
        for node in nodes:
            pid = self._pid(node)
            if pid is None or node in self.paused:
                continue
            self.cluster.signal(node, signal.SIGSTOP)
            self.paused[node] = pid
            done[node] = pid
        return {"nodes": sorted(done), "pids": done}

    def resume(self) -> dict[str, Any]:
        """SIGCONT every process we paused that is still the node's process."""
        done: dict[str, int] = {}
        for node, pid in sorted(self.paused.items()):
            if self._pid(node) == pid:
                self.cluster.signal(node, signal.SIGCONT)
                done[node] = pid
        self.paused.clear()
        return {"nodes": sorted(done), "pids": done}

    def heal(self) -> dict[str, Any]:
        """Undo every kill and pause still in effect."""
        return {"resumed": self.resume(), "restarted": self.restart()}
