"""etcd 3.4 as a system under test: real ``etcd`` members, driven over the v3 API's JSON gateway.

Why the JSON gateway with ``httpx``: etcd 3.4 serves the v3 KV API as JSON over HTTP on its
client port (``/v3/kv/range``, ``/v3/kv/put``, ``/v3/kv/txn``), the same RPCs as gRPC. httpx is
a maintained asyncio HTTP client with no native code; the gRPC clients (``aetcd``, ``etcd3``)
pull in grpcio and generated protobuf modules pinned to old protobuf releases (``etcd3`` has not
been released since 2020), which buys nothing the gateway does not give.

What each operation is. A read is a range on one key, ``serializable`` when the option
``reads`` says so: then the member answers from its local state without asking the leader,
which etcd documents as possibly stale; linearizable reads (the default) go through the
leader's read index. A write is a put. A compare-and-set is a transaction comparing the
key's value with the expected one and putting the new value only if they are equal; a
comparison that fails is a definite observation (``ok [expected, new, False]``). An append
(kv workload) reads the key, then puts old+suffix in a transaction guarded by the key's
mod_revision, retried while another write got in between.

How failures are classified. A request that never reached the member (connection refused)
certainly did not happen: ``fail``. Any other failure of a write (timeout, reset, an error
such as "request timed out" or "leader changed") may have been proposed and committed: ``info``.
A read that failed had no effect either way: ``fail``.

Networks. Every worker's client talks to one member (the worker's), never failing over,
as in Jepsen's etcd test, so a read served by a partitioned member shows as such. Members
dial the peer URLs each member advertises, one URL per member shared by all its peers,
so a proxy in front of a member cannot cut one pair and not another: partitions and link
faults need the netns network (root). Kill and pause need no network at all.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from raftchat.config import ClusterConfig
from raftchat.localcluster import claimed_leader
from systems.base import SystemBase, SystemUnavailable
from systems.processes import ProcessCluster
from workloads import options as opts
from workloads.base import Completion, Invocation, Workload

STATUS_TIMEOUT = 0.5


@dataclass
class EtcdOptions:
    reads: str = opts.option(
        "linearizable",
        "linearizable: reads go through the leader's read index; serializable: a member answers "
        "from its own state (may be stale)",
        choices=("linearizable", "serializable"),
    )
    heartbeat_ms: int = opts.option(100, "etcd's --heartbeat-interval", minimum=10)
    election_ms: int = opts.option(1000, "etcd's --election-timeout", minimum=50)

    def validate(self) -> None:
        if self.election_ms < 5 * self.heartbeat_ms:
            raise ValueError(
                "system 'etcd': option 'election_ms' should be at least 5 times 'heartbeat_ms' "
                f"(etcd's own rule), got {self.election_ms} and {self.heartbeat_ms}"
            )


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _url(hostport: tuple[str, int]) -> str:
    return f"http://{hostport[0]}:{hostport[1]}"


def post_sync(address: tuple[str, int], path: str, body: dict, timeout: float = STATUS_TIMEOUT) -> Any:
    """One gateway call from a thread (status, readiness); None if it got no JSON answer."""
    try:
        reply = httpx.post(f"{_url(address)}{path}", json=body, timeout=timeout)
        return reply.json() if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


class EtcdCluster(ProcessCluster):
    def __init__(
        self,
        data_dir: Path,
        config: ClusterConfig,
        command_prefix: Callable[[str], list[str]] | None,
        options: EtcdOptions,
    ) -> None:
        super().__init__(data_dir, config, command_prefix)
        self.options = options

    def node_command(self, node_id: str) -> list[str]:
        node = self.config.node(node_id)
        peer, client = _url(node.peer_hostport), _url(node.client_hostport)
        initial = ",".join(f"{n.id}={_url(n.peer_hostport)}" for n in self.config.nodes)
        return [
            "etcd",
            f"--name={node_id}",
            f"--data-dir={self.node_dir(node_id) / 'data'}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--initial-cluster={initial}",
            "--initial-cluster-state=new",  # ignored on a restart: the data directory has the member
            f"--initial-cluster-token={self.config.cluster_id}",
            f"--heartbeat-interval={self.options.heartbeat_ms}",
            f"--election-timeout={self.options.election_ms}",
            "--logger=zap",
            "--log-outputs=stderr",
        ]

    def status(self, node_id: str) -> dict | None:
        """The member's own view: its member id, term, and the leader it follows ("0": none)."""
        reply = post_sync(self.config.node(node_id).client_hostport, "/v3/maintenance/status", {})
        if not isinstance(reply, dict) or "header" not in reply:
            return None
        header = reply["header"]
        return {
            "node": node_id,
            "member_id": header.get("member_id"),
            "term": int(header.get("raft_term", 0)),
            "leader_id": reply.get("leader", "0"),
            "raft_index": int(reply.get("raftIndex", 0)),
            "role": "leader" if reply.get("leader") == header.get("member_id") else "follower",
        }

    def statuses(self) -> dict[str, dict | None]:
        return {node_id: self.status(node_id) for node_id in self.ids}

    def leader(self) -> str | None:
        """The member that leads the highest term any member claims leadership of."""
        return claimed_leader(self.statuses().values())

    def _agreed_leader(self) -> str | None:
        statuses = self.statuses()
        if any(s is None or s["leader_id"] in ("0", None) for s in statuses.values()):
            return None
        leaders = {s["leader_id"] for s in statuses.values() if s}
        by_member = {s["member_id"]: node for node, s in statuses.items() if s}
        if len(leaders) != 1 or (leader := by_member.get(next(iter(leaders)))) is None:
            return None
        return f"leader {leader}"

    def wait_ready(self, timeout: float) -> str:
        """Every member up and following the same leader."""
        return self.wait_until(self._agreed_leader, timeout, "the etcd members did not agree on a leader")


class GatewayError(Exception):
    """An operation got no answer; ``sent`` is False only when the request certainly never arrived."""

    def __init__(self, message: str, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class EtcdClient:
    """One worker's client, bound to one member."""

    def __init__(self, node: str, address: tuple[str, int], options: EtcdOptions, timeout: float) -> None:
        self.node = node
        self.serializable = options.reads == "serializable"
        self.timeout = timeout  # for a whole operation: an append may take several round trips
        self.http = httpx.AsyncClient(base_url=_url(address), timeout=timeout)

    async def close(self) -> None:
        await self.http.aclose()

    async def _call(self, path: str, body: dict) -> dict:
        try:
            reply = await self.http.post(path, json=body)
        except httpx.ConnectError as exc:
            raise GatewayError(f"{type(exc).__name__}: {exc}", sent=False) from None
        except httpx.HTTPError as exc:
            raise GatewayError(f"{type(exc).__name__}: {exc}".rstrip(": "), sent=True) from None
        try:
            data = reply.json()
        except ValueError:
            raise GatewayError(f"HTTP {reply.status_code}: {reply.text[:200]}", sent=True) from None
        if reply.status_code != 200 or "error" in data:
            raise GatewayError(str(data.get("error") or data.get("message") or data), sent=True)
        return data

    async def get(self, key: str, serializable: bool | None = None) -> tuple[str | None, int]:
        """The key's value (None if absent) and its mod_revision (0 if absent)."""
        serializable = self.serializable if serializable is None else serializable
        data = await self._call("/v3/kv/range", {"key": _b64(key), "serializable": serializable})
        kvs = data.get("kvs") or []
        if not kvs:
            return None, 0
        return _unb64(kvs[0].get("value", "")), int(kvs[0].get("mod_revision", 0))

    async def put(self, key: str, value: str) -> None:
        await self._call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    async def txn_put(self, key: str, compare: dict, value: str) -> bool:
        """Put ``value`` if ``compare`` holds on ``key``; whether it held."""
        body = {
            "compare": [{"key": _b64(key), **compare}],
            "success": [{"requestPut": {"key": _b64(key), "value": _b64(value)}}],
        }
        return bool((await self._call("/v3/kv/txn", body)).get("succeeded"))

    async def invoke(self, inv: Invocation) -> Completion:
        try:
            return await asyncio.wait_for(self._invoke(inv), self.timeout)
        except GatewayError as exc:
            definite = not exc.sent or inv.f in ("read", "get")
            return Completion("fail" if definite else "info", inv.value, str(exc))
        except TimeoutError:
            definite = inv.f in ("read", "get")
            return Completion("fail" if definite else "info", inv.value, f"no answer in {self.timeout:g} s")

    async def _invoke(self, inv: Invocation) -> Completion:
        raise NotImplementedError


class RegisterClient(EtcdClient):
    def __init__(self, key: str, *args: Any) -> None:
        super().__init__(*args)
        self.key = key

    async def _invoke(self, inv: Invocation) -> Completion:
        if inv.f == "read":
            value, _ = await self.get(self.key)
            return Completion("ok", None if value is None else json.loads(value))
        if inv.f == "write":
            await self.put(self.key, json.dumps(inv.value))
            return Completion("ok", inv.value)
        expected, new = inv.value
        compare = {"target": "VALUE", "result": "EQUAL", "value": _b64(json.dumps(expected))}
        swapped = await self.txn_put(self.key, compare, json.dumps(new))
        return Completion("ok", [expected, new, swapped])


class KVClient(EtcdClient):
    async def _invoke(self, inv: Invocation) -> Completion:
        key, value = inv.value
        if inv.f == "get":
            current, _ = await self.get(key)
            return Completion("ok", [key, current or ""])
        if inv.f == "put":
            await self.put(key, value)
            return Completion("ok", inv.value)
        while True:  # append: read-modify-write, retried while another write got in between
            current, revision = await self.get(key, serializable=False)  # a stale one would only loop
            compare = {"target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}
            if await self.txn_put(key, compare, (current or "") + value):
                return Completion("ok", inv.value)
            await asyncio.sleep(0)


class EtcdSystem(SystemBase):
    name = "etcd"
    cluster_type = EtcdCluster
    options_type = EtcdOptions
    workloads = ("register", "kv")
    networks = ("netns",)
    proxy_refusal = (
        "etcd members dial the one peer URL each member advertises, so a proxy cannot cut one "
        "pair of members and not another; partitions and link faults of etcd need the netns "
        "network (run as root), while kill and pause need no network"
    )
    programs = {"etcd": "etcd-server"}

    def version(self) -> str:
        try:
            out = subprocess.run(["etcd", "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SystemUnavailable(f"system 'etcd': `etcd --version` failed: {exc}") from None
        match = re.search(r"etcd Version:\s*(\S+)", out)
        return match.group(1) if match else out.strip().splitlines()[0] if out.strip() else "unknown"

    def client(self, cluster: Any, workload: Workload, worker: int, plan: Any) -> EtcdClient:
        node = cluster.ids[worker % len(cluster.ids)]
        args = (node, cluster.config.node(node).client_hostport, self.options, plan.op_timeout)
        if workload.name == "register":
            return RegisterClient(workload.options.key, *args)
        return KVClient(*args)
