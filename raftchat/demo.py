"""A short end-to-end check of a local cluster: writes survive a leader crash.

Starts five node processes on loopback, sends messages while killing the leader with
SIGKILL, then reads every inbox back and checks that each acknowledged message is there
exactly once. Everything it starts is stopped when it ends.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time

from raftchat.client import Client, OperationError
from raftchat.localcluster import LocalCluster


async def _traffic(cluster: LocalCluster, seconds: float, kills: int) -> tuple[list[str], list[str], int]:
    client = Client(cluster.config, timeout=5)
    acked: list[str] = []
    unsure = 0
    try:
        for user in ("alice", "bob"):
            await client.call("create_account", user=user)
        deadline = time.monotonic() + seconds
        next_kill = time.monotonic() + seconds / (kills + 1)
        killed = 0
        i = 0
        while time.monotonic() < deadline:
            if killed < kills and time.monotonic() >= next_kill:
                leader = cluster.leader()
                if leader:
                    cluster.kill(leader)
                    killed += 1
                    print(f"  kill -9 leader {leader}", flush=True)
                next_kill += seconds / (kills + 1)
            text = f"message-{i}"
            i += 1
            try:
                result = await client.call("send_message", sender="alice", to="bob", text=text)
                if result.status == "ok":
                    acked.append(text)
            except OperationError as exc:
                unsure += 0 if exc.definite else 1
        inbox = (await client.call("fetch_messages", user="bob", from_index=1)).value or []
        return acked, [text for _sender, text in inbox], unsure
    finally:
        await client.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="raftchat-demo-") as tmp, LocalCluster(tmp, nodes=5) as cluster:
        cluster.start_all()
        leader = cluster.wait_for_leader(timeout=15)
        print(f"5 nodes up on loopback, leader {leader}", flush=True)
        started = time.monotonic()
        acked, inbox, unsure = asyncio.run(_traffic(cluster, seconds=6, kills=2))
        elapsed = time.monotonic() - started
        lost = [t for t in acked if t not in inbox]
        duplicated = len(inbox) - len(set(inbox))
        print(f"{len(acked)} messages acknowledged in {elapsed:.1f} s ({len(acked) / elapsed:.0f}/s)")
        print(f"{unsure} indeterminate, {len(lost)} lost, {duplicated} duplicated")
        ok = not lost and not duplicated
        print("OK: no acknowledged message lost or applied twice" if ok else "FAILED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
