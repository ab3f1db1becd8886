"""Watching the nodes themselves while a run goes on, and after it: what clients cannot see.

A thread polls every node's status about once a second (Raft state, snapshot counters, the
applied-entry hash chain) and samples the memory of every node process and of the harness.
Each sample is a line of ``nodes.jsonl``. From the polls it finds, as they happen:

* divergence: two nodes whose chains differ at the same index applied different entries, or
  the same entries with different outcomes (caught even if the nodes never converge);
* unexpected exits: a node process that ended although nothing of the harness stopped it.

After the final reads :meth:`NodeMonitor.converge` waits until every node reports the same
applied index, chain head and state digest (the recovery check).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raftchat.localcluster import LocalCluster, node_status
from raftchat.memtrace import status_bytes

MAX_KNOWN = 50_000  # chain hashes remembered by index (about 3 million entries at one per 64)
MAX_REPORTED = 20  # divergences listed in the results; the count says if there were more
STATUS_TIMEOUT = 0.3  # a paused node must not stall the poll for long
# A digest costs a node a pass over its state (a second for tens of MiB on a loaded machine);
# the node keeps it, so a poll that timed out finds it ready at the next round.
DIGEST_TIMEOUT = 1.0
NS_PER_S = 1_000_000_000


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process, from /proc (None when it is gone)."""
    return status_bytes(pid)


class NodeMonitor:
    def __init__(
        self,
        cluster: LocalCluster,
        now: Callable[[], int],
        path: Path,
        interval: float = 1.0,
        failpoint_exit: int | None = None,
        raft_status: bool = True,
    ) -> None:
        self.cluster = cluster
        # raftchat nodes answer the rich status (chain, digest, snapshots); another system's
        # cluster answers what its ``status`` gives (role, term), enough for who led when.
        self.raft_status = raft_status
        self.now = now  # the history's clock (ns since the start), so events line up with it
        self.interval = interval
        self.failpoint_exit = failpoint_exit  # an exit status that a failpoint fault asked for
        self._file = path.open("w", encoding="utf-8")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._known: dict[int, tuple[str, str]] = {}  # index -> (chain hash, node that reported it)
        self._since: dict[str, tuple[int, int]] = {}  # node -> (pid, newest checkpoint seen from it)
        self._pids: dict[str, int] = {}  # the process each node had at the last poll
        self._seen_exits: set[int] = set()
        self.divergences: list[dict[str, Any]] = []
        self.divergence_count = 0
        self.exits: list[dict[str, Any]] = []  # exits nothing of the harness caused
        self.failpoint_exits: list[dict[str, Any]] = []
        self.last: dict[str, dict[str, Any]] = {}  # each node's latest answer
        self.polls = 0
        self.wall_origin = time.time() - self.now() / NS_PER_S  # wall clock at history time 0
        self._write({"t": 0.0, "node": "harness", "wall_origin": self.wall_origin})

    # ------------------------------------------------------------------ polling

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="node-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._file.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.poll()
            except Exception as exc:  # a monitor that dies must not take the run with it
                self._write({"t": self._seconds(), "node": "harness", "monitor_error": repr(exc)})
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def poll(self, digest: bool = False) -> dict[str, dict[str, Any] | None]:
        """One round: every node's status and memory, the harness's memory, exits; returns the statuses."""
        self.check_exits()
        answers: dict[str, dict[str, Any] | None] = {}
        for node in self.cluster.config.nodes:
            proc = self.cluster.procs.get(node.id)
            seen = self._since.get(node.id)
            since = seen[1] if seen and proc is not None and seen[0] == proc.pid else -1
            options: dict[str, Any] = {"since": since}
            if digest:
                options["digest"] = True
            status = self._status(node, options)
            answers[node.id] = status
            self._record(node.id, status)
        self._write({"t": self._seconds(), "node": "harness", "rss": rss_bytes_self()})
        self.polls += 1
        return answers

    def _status(self, node: Any, options: dict[str, Any]) -> dict[str, Any] | None:
        if self.raft_status:
            timeout = DIGEST_TIMEOUT if options.get("digest") else STATUS_TIMEOUT
            return node_status(node.client, timeout, **options)
        try:
            return self.cluster.status(node.id)
        except Exception:  # a node that is down, paused or cut off
            return None

    def _record(self, node: str, status: dict[str, Any] | None) -> None:
        t = self._seconds()
        proc = self.cluster.procs.get(node)
        alive = proc is not None and proc.poll() is None
        sample: dict[str, Any] = {"t": t, "node": node, "up": alive, "answered": status is not None}
        if status is not None:
            pid = status.get("pid") or (proc.pid if proc else None)
            sample["pid"] = pid
            sample.update(
                {
                    key: status.get(key)
                    for key in ("role", "term", "leader", "commit", "applied", "snapshot_index", "snapshots")
                }
            )
            chain = status.get("chain") or {}
            sample["head"] = chain.get("head")
            if "digest" in status:
                sample["digest"] = status["digest"]
            self.last[node] = status
            self._compare(node, t, status.get("applied"), chain)
            newest = max((int(i) for i, _ in chain.get("checkpoints") or []), default=-1)
            if proc is not None and newest >= 0:
                self._since[node] = (proc.pid, newest)
        else:
            pid = proc.pid if alive and proc else None
        sample["rss"] = getattr(self.cluster, "rss", rss_bytes)(pid) if pid else None  # remote: not sampled
        self._write(sample)

    def _compare(self, node: str, t: float, applied: Any, chain: dict[str, Any]) -> None:
        """Check every hash a node reported against what other nodes reported at that index."""
        points = [(int(i), str(h)) for i, h in chain.get("checkpoints") or []]
        if chain.get("head") is not None and isinstance(applied, int):
            points.append((applied, str(chain["head"])))
        for index, digest in points:
            known = self._known.get(index)
            if known is None:
                self._known[index] = (digest, node)
                if len(self._known) > MAX_KNOWN:
                    self._known.pop(next(iter(self._known)))
            elif known[0] != digest:  # also one node against its own past: applied entries never change
                self._diverged(t, index, known[1], node, known[0], digest)

    def _diverged(self, t: float, index: int, first: str, second: str, a: str, b: str) -> None:
        self.divergence_count += 1
        if len(self.divergences) < MAX_REPORTED:
            self.divergences.append(
                {
                    "t": t,
                    "index": index,
                    "nodes": [first, second],
                    "hashes": [a[:16], b[:16]],
                    "what": (
                        f"{first} and {second} applied different entries or outcomes up to index {index}"
                        if first != second
                        else f"{first} applied the entries up to index {index} differently than before"
                    ),
                }
            )

    def check_exits(self) -> None:
        """Note node processes that ended without the harness stopping them, and restarts."""
        if not self.raft_status:  # other systems' exits are not judged (see harness.health)
            return
        t = self._seconds()
        for node, proc in list(self.cluster.procs.items()):
            if self._pids.get(node) != proc.pid:
                for event in self.exits:
                    if event["node"] == node and event["restarted"] is None:
                        event["restarted"] = t  # a fault's heal, or a person, started it again
                self._pids[node] = proc.pid
            code = proc.poll()
            if code is None or proc.pid in self._seen_exits or proc.pid in self.cluster.expected_exits:
                continue
            self._seen_exits.add(proc.pid)
            event = {"node": node, "pid": proc.pid, "returncode": code, "t": t, "restarted": None}
            if self.failpoint_exit is not None and code == self.failpoint_exit:
                self.failpoint_exits.append(event)  # the crash-voters fault asked for this one
            else:
                self.exits.append(event)

    # ------------------------------------------------------------------ recovery

    def converge(self, timeout: float) -> dict[str, Any]:
        """Wait until every node answers with the same applied index, chain head and state digest.

        Returns the recovery check's result. Equal applied indices with different digests are
        a divergence (recorded as one) and end the wait at once: that cannot heal.
        """
        started = time.monotonic()
        deadline = started + timeout
        answers: dict[str, dict[str, Any] | None] = {}
        while True:
            # A digest costs each node a pass over its state on its event loop: ask for it only
            # once the cheap answers (applied index, chain head) of the nodes that answered
            # agree, or a large state's digests, asked again and again, would stall the nodes
            # into elections.
            last_round = time.monotonic() + 2 * DIGEST_TIMEOUT >= deadline  # the verdict's table needs them
            answers = self.poll(digest=_heads_agree(answers) or last_round)
            rows = {
                node: None
                if s is None
                else (s.get("applied"), (s.get("chain") or {}).get("head"), s.get("digest"))
                for node, s in answers.items()
            }
            diverged = self._same_index_different_state(rows)
            if diverged:
                return {
                    "valid": None,
                    "converged": False,
                    "waited_s": round(time.monotonic() - started, 3),
                    "nodes": self._table(rows),
                    "note": "states differ at the same applied index",
                }
            values = set(rows.values())
            same = None not in values and len(values) == 1
            if same and next(iter(values))[2] is None and time.monotonic() < deadline:
                continue  # the same index and head everywhere: now the digests
            if same:
                return {
                    "valid": True,
                    "converged": True,
                    "waited_s": round(time.monotonic() - started, 3),
                    "applied": next(iter(values))[0],
                    "nodes": self._table(rows),
                }
            if time.monotonic() >= deadline:
                return self._not_recovered(rows, time.monotonic() - started)
            time.sleep(0.2)

    def _same_index_different_state(self, rows: dict[str, tuple | None]) -> bool:
        by_index: dict[Any, dict[tuple, str]] = {}
        found = False
        for node, row in rows.items():
            if row is None or row[2] is None:
                continue
            states = by_index.setdefault(row[0], {})
            state = (row[1], row[2])
            for other_state, other in states.items():
                if other_state != state:
                    found = True
                    self.divergence_count += 1
                    self.divergences.append(
                        {
                            "t": self._seconds(),
                            "index": row[0],
                            "nodes": [other, node],
                            "hashes": [str(other_state[1])[:16], str(state[1])[:16]],
                            "what": f"{other} and {node} hold different states at applied index {row[0]}",
                        }
                    )
            states.setdefault(state, node)
        return found

    def _not_recovered(self, rows: dict[str, tuple | None], waited: float) -> dict[str, Any]:
        applied = [row[0] for row in rows.values() if row is not None and isinstance(row[0], int)]
        top = max(applied, default=None)
        top_digests = {row[2] for row in rows.values() if row is not None and row[0] == top}
        behind = []
        for node, row in rows.items():
            if row is None:
                behind.append({"node": node, "what": "did not answer"})
            elif top is not None and row[0] != top:
                behind.append({"node": node, "what": f"applied {row[0]} of {top}", "applied": row[0]})
            elif len(top_digests) > 1 or row[2] is None:
                behind.append({"node": node, "what": f"state digest {str(row[2])[:16]}", "applied": row[0]})
        return {
            "valid": False,
            "converged": False,
            "waited_s": round(waited, 3),
            "highest_applied": top,
            "behind": behind,
            "nodes": self._table(rows),
        }

    @staticmethod
    def _table(rows: dict[str, tuple | None]) -> dict[str, Any]:
        return {
            node: None
            if row is None
            else {"applied": row[0], "head": str(row[1])[:16], "digest": str(row[2])[:16]}
            for node, row in rows.items()
        }

    # ------------------------------------------------------------------ findings

    def convergence_check(self) -> dict[str, Any]:
        return {
            "valid": not self.divergence_count,
            "divergences": list(self.divergences),
            "count": self.divergence_count,
            "compared_indices": len(self._known),
            "polls": self.polls,
        }

    def exit_events(self, end: float) -> list[dict[str, Any]]:
        """Unexpected exits, each with how long the node stayed down (to ``end`` if never restarted)."""
        events = []
        for event in self.exits:
            until = event["restarted"] if event["restarted"] is not None else end
            events.append({**event, "down_s": round(until - event["t"], 3)})
        return events

    def _seconds(self) -> float:
        return round(self.now() / NS_PER_S, 3)

    def _write(self, record: dict[str, Any]) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
                self._file.flush()


def rss_bytes_self() -> int | None:
    import os

    return rss_bytes(os.getpid())


def _heads_agree(answers: dict[str, dict[str, Any] | None]) -> bool:
    """The nodes that answered report one applied index and chain head (and some answered)."""
    heads = {(s.get("applied"), (s.get("chain") or {}).get("head")) for s in answers.values() if s}
    return len(heads) == 1
