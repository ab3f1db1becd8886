"""ZooKeeper 3.8 as a system under test: a real ensemble of ``QuorumPeerMain`` JVMs, driven by kazoo.

How it runs. Debian's ``zookeeper`` package ships the server jar (its manifest names every
dependency under /usr/share/java) but no per-node service we could use, so each node is
``java -cp zookeeper.jar:slf4j-simple.jar org.apache.zookeeper.server.quorum.QuorumPeerMain
zoo.cfg`` with its own ``zoo.cfg``, dataDir and ``myid``; slf4j-simple sends its log to stderr,
which is the node's log. The JVM gets a small heap and the serial collector: five of them
share two cores with the harness.

Why kazoo: the maintained ZooKeeper client for Python; its async calls complete from its own
thread, and ``_settle`` hands each result to the asyncio loop, so ten workers need no thread
each. Every worker's client is bound to one server (its only host), so a read shows which
member served it.

What each operation is. The register is one znode whose data is the JSON value; absent
reads as None. A read is ``get`` (option ``reads: plain``), or ``sync`` then ``get``
(``reads: sync``): plain reads are served from the member's own state, which ZooKeeper
documents as sequentially consistent, not linearizable. A write is ``set`` (``create`` if the
znode does not exist yet). A compare-and-set reads the value and version (after a sync in
sync mode); if the value is not the expected one it is ``ok [expected, new, False]``,
else ``set`` with that version: success is ``True``; a version conflict means the write did
not happen: ``fail``.

How failures are classified. A read that failed had no effect: ``fail``. A write that lost
its connection, timed out or saw its session expire may have been applied: ``info``;
a write refused before it was sent (the client closed) is ``fail``.

Networks. A server dials the one address each ``server.N`` line gives, the same for every
peer, so a proxy cannot cut one pair and not another: partitions need the netns network.
"""

from __future__ import annotations

import asyncio
import glob
import json
import logging
import re
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftchat.config import ClusterConfig
from raftchat.localcluster import claimed_leader, free_ports
from systems.base import SystemBase, SystemUnavailable
from systems.processes import ProcessCluster
from workloads import options as opts
from workloads.base import Completion, Invocation, Workload

JAVA_DIR = Path("/usr/share/java")
SERVER_JAR = JAVA_DIR / "zookeeper.jar"
LOG_JAR = JAVA_DIR / "slf4j-simple.jar"  # an slf4j binding; without one ZooKeeper logs nothing
MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
JVM_FLAGS = ["-Xms32m", "-Xmx192m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]
STATUS_TIMEOUT = 0.5
SESSION_TIMEOUT = 10.0


@dataclass
class ZooKeeperOptions:
    reads: str = opts.option(
        "plain",
        "plain: a member answers get from its own state (sequentially consistent); sync: a sync "
        "before each read brings the member up to the leader first",
        choices=("plain", "sync"),
    )
    tick_ms: int = opts.option(
        500, "ZooKeeper's tickTime; initLimit is 20 ticks and syncLimit 5 (a follower gives up after 5)", 50
    )


class ZooKeeperCluster(ProcessCluster):
    def __init__(
        self,
        data_dir: Path,
        config: ClusterConfig,
        command_prefix: Callable[[str], list[str]] | None,
        options: ZooKeeperOptions,
    ) -> None:
        super().__init__(data_dir, config, command_prefix)
        self.options = options
        self.election_ports = dict(zip(self.ids, free_ports(len(self.ids)), strict=True))
        for i, node_id in enumerate(self.ids):
            (self.node_dir(node_id) / "data").mkdir(exist_ok=True)
            (self.node_dir(node_id) / "data" / "myid").write_text(f"{i + 1}\n")
            (self.node_dir(node_id) / "zoo.cfg").write_text(self._zoo_cfg(node_id))

    def _zoo_cfg(self, node_id: str) -> str:
        host, port = self.config.node(node_id).client_hostport
        lines = [
            f"tickTime={self.options.tick_ms}",
            "initLimit=20",
            "syncLimit=5",
            f"dataDir={self.node_dir(node_id) / 'data'}",
            f"clientPort={port}",
            f"clientPortAddress={host}",
            "standaloneEnabled=false",
            "reconfigEnabled=false",
            "admin.enableServer=false",
            "4lw.commands.whitelist=srvr",  # the harness asks each member for its mode
            "autopurge.purgeInterval=0",
        ]
        for i, node in enumerate(self.config.nodes):
            peer_host, peer_port = node.peer_hostport
            lines.append(f"server.{i + 1}={peer_host}:{peer_port}:{self.election_ports[node.id]}")
        return "\n".join(lines) + "\n"

    def node_command(self, node_id: str) -> list[str]:
        classpath = f"{SERVER_JAR}:{LOG_JAR}"
        logging_flags = [
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
        ]
        return [
            "java",
            *JVM_FLAGS,
            *logging_flags,
            "-cp",
            classpath,
            MAIN,
            str(self.node_dir(node_id) / "zoo.cfg"),
        ]

    def status(self, node_id: str) -> dict | None:
        """The member's answer to ``srvr``: its mode (leader, follower) and epoch, None if not serving."""
        text = four_letter(self.config.node(node_id).client_hostport, b"srvr")
        mode = re.search(r"Mode: (\w+)", text or "")
        if mode is None:
            return None
        zxid = re.search(r"Zxid: 0x([0-9a-f]+)", text or "")
        epoch = int(zxid.group(1), 16) >> 32 if zxid else 0
        return {"node": node_id, "role": mode.group(1), "term": epoch}

    def leader(self) -> str | None:
        return claimed_leader(self.status(node_id) for node_id in self.ids)

    def _ready(self) -> str | None:
        roles = {node_id: (self.status(node_id) or {}).get("role") for node_id in self.ids}
        leaders = [n for n, role in roles.items() if role == "leader"]
        if len(leaders) == 1 and all(role in ("leader", "follower") for role in roles.values()):
            return f"leader {leaders[0]}"
        return None

    def wait_ready(self, timeout: float) -> str:
        """One leader, every other member following it."""
        return self.wait_until(self._ready, timeout, "the ZooKeeper ensemble did not form")


def four_letter(address: tuple[str, int], word: bytes, timeout: float = STATUS_TIMEOUT) -> str | None:
    """Send a four-letter command and read the answer to the end; None if the member did not answer."""
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(word)
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
    except OSError:
        return None
    return b"".join(chunks).decode(errors="replace")


def _settle(future: asyncio.Future, result: Any) -> None:
    if future.done():
        return
    try:
        future.set_result(result.get_nowait())
    except Exception as exc:  # kazoo's exception for this call: the caller classifies it
        future.set_exception(exc)


class ZooKeeperClient:
    """One worker's kazoo session on one member."""

    def __init__(
        self, node: str, address: tuple[str, int], path: str, options: ZooKeeperOptions, timeout: float
    ) -> None:
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry

        self.node = node
        self.path = path
        self.sync = options.reads == "sync"
        self.timeout = timeout
        quiet = logging.getLogger(f"kazoo.{node}")
        quiet.setLevel(logging.CRITICAL)  # connection churn under partitions is expected, not news
        retry = KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0)
        self.zk = KazooClient(
            hosts=f"{address[0]}:{address[1]}",
            timeout=SESSION_TIMEOUT,
            connection_retry=retry,
            randomize_hosts=False,
            logger=quiet,
        )
        self.zk.start_async()

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self.zk.stop()
        self.zk.close()

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        result = getattr(self.zk, method)(*args, **kwargs)
        result.rawlink(lambda r: loop.call_soon_threadsafe(_settle, future, r))
        return await future

    async def _read(self) -> tuple[Any, int]:
        """The register's value and znode version (None and -1 when the znode does not exist)."""
        from kazoo.exceptions import NoNodeError

        if self.sync:
            await self._call("sync_async", self.path)
        try:
            data, stat = await self._call("get_async", self.path)
        except NoNodeError:
            return None, -1
        return (json.loads(data) if data else None), stat.version

    async def _write(self, value: Any) -> None:
        from kazoo.exceptions import NodeExistsError, NoNodeError

        data = json.dumps(value).encode()
        try:
            await self._call("set_async", self.path, data)
        except NoNodeError:
            try:
                await self._call("create_async", self.path, data)
            except NodeExistsError:
                await self._call("set_async", self.path, data)

    async def invoke(self, inv: Invocation) -> Completion:
        from kazoo.exceptions import BadVersionError, ConnectionClosedError

        try:
            return await asyncio.wait_for(self._invoke(inv), self.timeout)
        except BadVersionError:
            return Completion("fail", inv.value, "version changed since the read: nothing written")
        except Exception as exc:  # kazoo's errors, or the timeout: the operation got no answer
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            definite = inv.f == "read" or isinstance(exc, ConnectionClosedError)
            return Completion("fail" if definite else "info", inv.value, error)

    async def _invoke(self, inv: Invocation) -> Completion:
        if inv.f == "read":
            value, _ = await self._read()
            return Completion("ok", value)
        if inv.f == "write":
            await self._write(inv.value)
            return Completion("ok", inv.value)
        expected, new = inv.value
        value, version = await self._read()
        if value != expected:
            return Completion("ok", [expected, new, False])
        await self._call("set_async", self.path, json.dumps(new).encode(), version=version)
        return Completion("ok", [expected, new, True])


class ZooKeeperSystem(SystemBase):
    name = "zookeeper"
    cluster_type = ZooKeeperCluster
    options_type = ZooKeeperOptions
    workloads = ("register",)
    networks = ("netns",)
    proxy_refusal = (
        "each ZooKeeper server dials the one quorum address its server.N line gives, so a proxy "
        "cannot cut one pair of servers and not another; partitions and link faults of ZooKeeper "
        "need the netns network (run as root), while kill and pause need no network"
    )
    programs = {"java": "default-jre-headless"}

    def check_installed(self) -> None:
        super().check_installed()
        for jar, package in ((SERVER_JAR, "zookeeper"), (LOG_JAR, "libslf4j-java")):
            if not jar.exists():
                raise SystemUnavailable(
                    f"system 'zookeeper': {jar} is missing; install it with `apt-get install {package}`"
                )
        try:
            import kazoo  # noqa: F401
        except ImportError:
            raise SystemUnavailable("system 'zookeeper': the Python client kazoo is missing") from None

    def version(self) -> str:
        versions = [
            re.search(r"zookeeper-(\d[\w.]*)\.jar$", p) for p in glob.glob(str(JAVA_DIR / "zookeeper-*.jar"))
        ]
        found = sorted(m.group(1) for m in versions if m)
        java = shutil.which("java") or "java"
        return (found[0] if found else "unknown") + f" (java {Path(java).resolve().parent.parent.name})"

    def client(self, cluster: Any, workload: Workload, worker: int, plan: Any) -> ZooKeeperClient:
        node = cluster.ids[worker % len(cluster.ids)]
        address = cluster.config.node(node).client_hostport
        path = "/" + workload.options.key
        return ZooKeeperClient(node, address, path, self.options, plan.op_timeout)
