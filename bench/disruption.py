"""Does a follower that was cut off disturb a healthy leader when the partition heals?

A 3-node cluster talks through TCP proxies (nemesis.net.proxy). Each round cuts one follower
off from both others for ``--cut`` seconds (many election timeouts: its election timer keeps
firing and its pre-votes go unanswered), heals, and watches for ``--watch`` seconds whether
the leader keeps its term. With ``--idle`` (the default) no writes happen during the cut, so
the isolated node's log stays as long as everyone's and the others would vote for it on log
grounds: only pre-vote and leader stickiness stand between it and a new election. Writes
through raftchat's Client resume after the heal and each round reports the longest write.

    python -m bench.disruption                  # 10 rounds
    python -m bench.disruption --busy           # keep writing during the cut too
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench.loadgen import password_of
from nemesis.net.proxy import ProxyNetwork
from raftchat.client import Client, OperationError
from raftchat.config import ClusterConfig, NodeAddr
from raftchat.localcluster import LocalCluster, free_ports


def _config() -> ClusterConfig:
    ports = free_ports(6)
    return ClusterConfig(
        cluster_id=uuid.uuid4().hex,
        nodes=[
            NodeAddr(f"n{i + 1}", f"127.0.0.1:{ports[2 * i]}", f"127.0.0.1:{ports[2 * i + 1]}")
            for i in range(3)
        ],
    )


async def _write(client: Client, n: int) -> float:
    started = time.perf_counter()
    try:
        args = {"sender": "w", "to": "w", "text": f"m{n}", "password": password_of("w")}
        result = await client.call("send_message", **args)
        if result.status != "ok":
            return float("inf")
    except OperationError:
        return float("inf")
    return time.perf_counter() - started


async def run(args: argparse.Namespace, cluster: LocalCluster, net: ProxyNetwork) -> list[dict]:
    client = Client(cluster.config, timeout=10.0)
    await client.call("create_account", user="w", password=password_of("w"))
    rows = []
    n = 0
    try:
        for number in range(1, args.rounds + 1):
            leader = cluster.wait_for_leader(timeout=20.0)
            term = cluster.statuses()[leader]["term"]
            victim = next(i for i in cluster.ids if i != leader)
            others = [i for i in cluster.ids if i != victim]
            net.cut({frozenset((victim, o)) for o in others})
            deadline = time.monotonic() + args.cut
            while time.monotonic() < deadline:
                if args.busy:
                    n += 1
                    await _write(client, n)
                else:
                    await asyncio.sleep(0.05)
            net.heal()
            slowest, changes = 0.0, set()
            deadline = time.monotonic() + args.watch
            while time.monotonic() < deadline:
                n += 1
                slowest = max(slowest, await _write(client, n))
                for node, status in cluster.statuses().items():
                    if status and status["role"] == "leader" and (node, status["term"]) != (leader, term):
                        changes.add((node, status["term"]))
            final = cluster.statuses()[leader] or {}
            deposed = bool(changes) or final.get("role") != "leader" or final.get("term") != term
            rows.append({"round": number, "victim": victim, "deposed": deposed, "slowest": slowest})
            print(
                f"  round {number:2d}: cut {victim} from leader {leader} (term {term}) for {args.cut:g} s; "
                f"after the heal: leader {'DEPOSED' if deposed else 'kept'}"
                f" (term now {final.get('term')}), slowest write {slowest * 1000:.0f} ms",
                flush=True,
            )
    finally:
        await client.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--cut", type=float, default=2.0, help="seconds the follower is cut off")
    parser.add_argument("--watch", type=float, default=2.0, help="seconds watched after the heal")
    parser.add_argument("--busy", action="store_true", help="keep writing during the cut")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="raftchat-disruption-"))
    net = ProxyNetwork(workdir=work)
    cluster = None
    try:
        cluster = LocalCluster(work / "cluster", 3, config=net.setup(_config()))
        cluster.start_all()
        mode = "writes during the cut" if args.busy else "no writes during the cut (logs stay equal)"
        print(
            f"raftchat partition-heal disruption: 3 nodes through TCP proxies, {args.rounds} rounds, {mode}"
        )
        rows = asyncio.run(run(args, cluster, net))
    finally:
        if cluster is not None:
            cluster.stop_all()
        net.teardown()
    deposed = sum(r["deposed"] for r in rows)
    slow = [r["slowest"] * 1000 for r in rows]
    print(
        f"leader deposed after the heal in {deposed} of {len(rows)} rounds; "
        f"slowest write after a heal: median {statistics.median(slow):.0f} ms, max {max(slow):.0f} ms"
    )
    return 0 if deposed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
