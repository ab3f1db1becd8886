"""Redis 7 with Sentinel as a system under test: one primary, replicas, and a sentinel per node.

How it runs. Every node runs ``redis-server`` (n1 starts as the primary, the others as its
replicas) and, beside it in the same network namespace, ``redis-sentinel`` monitoring the
primary with a majority quorum. When the sentinels that can see each other agree the
primary is down, they elect one of them to promote a replica and repoint the rest; the old
primary is turned into a replica when it comes back, and what it acknowledged meanwhile is
thrown away. That is what Jepsen showed in 2013: replication is asynchronous, so a failover
loses acknowledged writes. The faults kill and pause ``redis-server`` only; the sentinels
are the monitors, and are cut off with their node by partitions.

Why redis-py: the maintained Redis client; its asyncio Sentinel support asks the sentinels
for the primary and reconnects to the new one after a failover, as an application would.
Worker w asks node w's sentinel first, so the workers on an isolated primary's side keep
being sent to it, the way clients near it would be. Retries are off: a retried
compare-and-set that already happened would report a failure it did not have.

What each operation is. The register is one key: GET, SET, and compare-and-set as a Lua
script that sets the new value only if GET returns the expected one (atomic on the primary).

How failures are classified. Refused by a replica (READONLY), no primary known, a connection
that could not be made: ``fail``. A write whose connection broke or timed out after it was
sent: ``info``. Failed reads: ``fail``.

Networks. Replicas and sentinels dial the addresses the primary and sentinels announce, the
same for every peer, so a proxy cannot cut one pair and not another: partitions need netns.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftchat.config import ClusterConfig
from systems.base import SystemBase, SystemUnavailable
from systems.processes import ProcessCluster
from workloads import options as opts
from workloads.base import Completion, Invocation, Workload

MASTER = "harness"  # the name the sentinels monitor the primary under
STATUS_TIMEOUT = 0.5
CAS_SCRIPT = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2]) return 1 "
    "else return 0 end"
)


@dataclass
class RedisOptions:
    down_after_ms: int = opts.option(
        1000, "sentinel's down-after-milliseconds: how long the primary may be silent", minimum=100
    )
    failover_timeout_ms: int = opts.option(3000, "sentinel's failover-timeout", minimum=500)


class SentinelProcesses(ProcessCluster):
    """One ``redis-sentinel`` per node, in the node's namespace, on the node's peer port."""

    def __init__(self, data_dir: Path, config: ClusterConfig, prefix: Any, options: RedisOptions) -> None:
        super().__init__(data_dir, config, prefix)
        primary_host, primary_port = config.nodes[0].client_hostport
        quorum = len(config.nodes) // 2 + 1
        for node in config.nodes:
            host, port = node.peer_hostport
            (self.node_dir(node.id) / "sentinel.conf").write_text(
                f"port {port}\nbind {host}\nprotected-mode no\ndir {self.node_dir(node.id)}\n"
                f"sentinel monitor {MASTER} {primary_host} {primary_port} {quorum}\n"
                f"sentinel down-after-milliseconds {MASTER} {options.down_after_ms}\n"
                f"sentinel failover-timeout {MASTER} {options.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {MASTER} 1\n"
            )

    def node_command(self, node_id: str) -> list[str]:
        return ["redis-sentinel", str(self.node_dir(node_id) / "sentinel.conf")]


def _command(address: tuple[str, int], *args: str) -> Any:
    """One command from a thread (status, readiness); None without an answer."""
    import redis

    try:
        with redis.Redis(
            host=address[0], port=address[1], socket_timeout=STATUS_TIMEOUT, decode_responses=True
        ) as conn:
            return conn.execute_command(*args)
    except (redis.RedisError, OSError):
        return None


class RedisCluster(ProcessCluster):
    def __init__(
        self,
        data_dir: Path,
        config: ClusterConfig,
        command_prefix: Callable[[str], list[str]] | None,
        options: RedisOptions,
    ) -> None:
        super().__init__(data_dir, config, command_prefix)
        self.sentinels = SentinelProcesses(self.data_dir / "sentinels", config, command_prefix, options)
        primary_host, primary_port = config.nodes[0].client_hostport
        for i, node in enumerate(config.nodes):
            host, port = node.client_hostport
            lines = [f"port {port}", f"bind {host}", "protected-mode no", f"dir {self.node_dir(node.id)}"]
            lines += ['save ""', "appendonly no"]  # as a cache is run: a restarted node resyncs
            if i > 0:
                lines.append(f"replicaof {primary_host} {primary_port}")
            (self.node_dir(node.id) / "redis.conf").write_text("\n".join(lines) + "\n")

    def node_command(self, node_id: str) -> list[str]:
        return ["redis-server", str(self.node_dir(node_id) / "redis.conf")]

    def start_all(self) -> None:
        super().start_all()
        self.sentinels.start_all()

    def stop_all(self, timeout: float = 5.0) -> None:
        self.sentinels.stop_all(timeout)
        super().stop_all(timeout)

    def status(self, node_id: str) -> dict | None:
        info = _command(self.config.node(node_id).client_hostport, "INFO", "replication")
        if not isinstance(info, dict):
            return None
        role = "leader" if info.get("role") == "master" else "follower"
        return {"node": node_id, "role": role, "replicas": int(info.get("connected_slaves", 0)), "term": 0}

    def _sentinel_view(self, node_id: str) -> str | None:
        """The node the sentinel of ``node_id`` names as the primary."""
        reply = _command(
            self.config.node(node_id).peer_hostport, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER
        )
        if not reply:
            return None
        by_address = {n.client_hostport: n.id for n in self.config.nodes}
        return by_address.get((reply[0], int(reply[1])))

    def leader(self) -> str | None:
        """The primary most sentinels name (the majority's view after a failover)."""
        views = [v for v in map(self._sentinel_view, self.ids) if v is not None]
        return max(set(views), key=views.count) if views else None

    def _ready(self) -> str | None:
        primary = self.status(self.ids[0])
        if not primary or primary["replicas"] != len(self.ids) - 1:
            return None
        for node_id in self.ids:
            master = _command(self.config.node(node_id).peer_hostport, "SENTINEL", "MASTER", MASTER)
            if isinstance(master, list):  # redis-py parses this reply into a mapping; raw, it is a list
                master = dict(zip(master[::2], master[1::2], strict=False))
            fields = master if isinstance(master, dict) else {}
            if int(fields.get("num-other-sentinels", -1)) != len(self.ids) - 1:
                return None
        return f"primary {self.ids[0]}, {len(self.ids)} sentinels"

    def wait_ready(self, timeout: float) -> str:
        """The primary has every replica, and every sentinel knows every other (so it can fail over)."""
        self.sentinels.check_running()
        return self.wait_until(self._ready, timeout, "the Redis replicas and sentinels did not come up")


class RedisClient:
    """One worker's client: the primary found through the sentinels, its own node's first."""

    def __init__(self, node: str, cluster: RedisCluster, key: str, timeout: float) -> None:
        from redis.asyncio.retry import Retry
        from redis.asyncio.sentinel import Sentinel
        from redis.backoff import NoBackoff

        self.node = node
        self.key = key
        ids = cluster.ids
        first = ids.index(node)
        sentinels = [cluster.config.node(n).peer_hostport for n in ids[first:] + ids[:first]]
        no_retry = Retry(NoBackoff(), 0)
        self.sentinel = Sentinel(
            sentinels, socket_timeout=timeout, sentinel_kwargs={"socket_timeout": STATUS_TIMEOUT}
        )
        self.primary = self.sentinel.master_for(
            MASTER,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=no_retry,
            decode_responses=True,
        )
        self._by_address = {tuple(n.client_hostport): n.id for n in cluster.config.nodes}

    @property
    def served(self) -> str | None:
        """The primary the last operation went to (as the sentinels named it), not the worker's
        own node: the one whose acknowledged write a failover may lose."""
        address = getattr(self.primary.connection_pool, "master_address", None)
        if not address:
            return None
        return self._by_address.get((address[0], int(address[1])))

    async def close(self) -> None:
        await self.primary.aclose()
        for conn in self.sentinel.sentinels:
            await conn.aclose()

    async def invoke(self, inv: Invocation) -> Completion:
        import redis.exceptions as rx
        from redis.asyncio.sentinel import MasterNotFoundError

        try:
            return await self._invoke(inv)
        except (rx.ReadOnlyError, MasterNotFoundError, rx.ResponseError) as exc:
            return Completion("fail", inv.value, f"{type(exc).__name__}: {exc}")
        except (rx.RedisError, OSError) as exc:
            connecting = isinstance(exc, rx.ConnectionError) and "connecting" in str(exc).lower()
            definite = inv.f == "read" or connecting
            return Completion("fail" if definite else "info", inv.value, f"{type(exc).__name__}: {exc}")

    async def _invoke(self, inv: Invocation) -> Completion:
        if inv.f == "read":
            value = await self.primary.get(self.key)
            return Completion("ok", None if value is None else json.loads(value))
        if inv.f == "write":
            await self.primary.set(self.key, json.dumps(inv.value))
            return Completion("ok", inv.value)
        expected, new = inv.value
        swapped = await self.primary.eval(CAS_SCRIPT, 1, self.key, json.dumps(expected), json.dumps(new))
        return Completion("ok", [expected, new, bool(swapped)])


class RedisSystem(SystemBase):
    name = "redis"
    cluster_type = RedisCluster
    options_type = RedisOptions
    workloads = ("register",)
    networks = ("netns",)
    proxy_refusal = (
        "replicas and sentinels dial the one address the primary and each sentinel announce, so a "
        "proxy cannot cut one pair of nodes and not another; partitions and link faults of Redis "
        "need the netns network (run as root), while kill and pause need no network"
    )
    programs = {"redis-server": "redis-server", "redis-sentinel": "redis-sentinel"}

    def check_installed(self) -> None:
        super().check_installed()
        try:
            import redis  # noqa: F401
        except ImportError:
            raise SystemUnavailable("system 'redis': the Python client redis (redis-py) is missing") from None

    def version(self) -> str:
        try:
            out = subprocess.run(
                ["redis-server", "--version"], capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SystemUnavailable(f"system 'redis': `redis-server --version` failed: {exc}") from None
        match = re.search(r"v=(\S+)", out)
        return match.group(1) if match else "unknown"

    def client(self, cluster: Any, workload: Workload, worker: int, plan: Any) -> RedisClient:
        node = cluster.ids[worker % len(cluster.ids)]
        return RedisClient(node, cluster, workload.options.key, plan.op_timeout)
