"""The systems bench.throughput compares: how to start each one, load its data, and open sessions.

Every system gets the same data before its cells run: ``accounts`` sender accounts
(``s0``..) and as many reader accounts (``r0``..) holding INBOX_PRELOAD messages each,
and every session sends to the next sender's inbox and fetches its own reader's inbox.
All load goes to the current leader, so no system pays a forwarding hop the others skip.

start() and stop() are synchronous and must run on the main thread (children are tied to
the lifetime of the thread that starts them); prepare() and open_session() run on the
benchmark's event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from bench import child_env, module_command
from bench.loadgen import (
    INBOX_PRELOAD,
    EtcdChatSession,
    FramedChatSession,
    FramedConn,
    HttpConn,
    Session,
    b64,
    inbox_prefix,
    message_text,
    password_of,
    reader_name,
    sender_name,
    spawn,
    stop_processes,
)
from raftchat.localcluster import free_ports

HOST = "127.0.0.1"


class SystemUnavailable(Exception):
    """This system cannot be benchmarked here (not installed, or it would not start); the text says why."""


class System:
    """Base class: one cluster of one system, started for one node count."""

    name = "?"

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.procs: list[subprocess.Popen] = []
        self.leader_pid: int | None = None

    def start(self, nodes: int) -> None:
        raise NotImplementedError

    async def prepare(self, accounts: int) -> None:
        raise NotImplementedError

    async def open_session(self, index: int, accounts: int) -> Session:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        stop_processes(self.procs)
        self.procs = []

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]

    def check_alive(self) -> None:
        dead = [p for p in self.procs if p.poll() is not None]
        if dead:
            raise SystemUnavailable(
                f"{self.name}: {len(dead)} process(es) exited (codes {[p.returncode for p in dead]}); "
                f"see the logs under {self.work_dir}"
            )


async def _gather_limited(coros: list, limit: int = 16) -> list:
    """Run setup requests a few at a time: faster than one by one, gentle on a just-started cluster."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


# --------------------------------------------------------------------------- raftchat


class RaftchatClientSession:
    """A benchmark client that uses raftchat's own Client (leader finding, retries, dedup)."""

    def __init__(self, client: Any, index: int, accounts: int) -> None:
        self.client = client
        self.index = index
        self.sender = sender_name(index)
        self.to = sender_name((index + 1) % accounts)
        self.reader_user = reader_name(index)

    async def send(self, n: int) -> None:
        result = await self.client.call(
            "send_message",
            sender=self.sender,
            to=self.to,
            text=message_text(self.index, n),
            password=password_of(self.sender),
        )
        if result.status != "ok":
            raise RuntimeError(f"send_message: {result.status}: {result.error}")

    async def fetch(self) -> None:
        result = await self.client.call(
            "fetch_messages", user=self.reader_user, from_index=1, password=password_of(self.reader_user)
        )
        if result.status != "ok":
            raise RuntimeError(f"fetch_messages: {result.status}: {result.error}")
        if len(result.value or ()) != INBOX_PRELOAD:
            raise RuntimeError(f"fetch_messages returned {len(result.value or ())} messages")

    async def close(self) -> None:
        await self.client.close()


class RaftchatSystem(System):
    """Real raftchat node processes from LocalCluster, fsync on (segment log, fdatasync per flush)."""

    name = "raftchat"

    def __init__(self, work_dir: Path, client_kind: str = "real") -> None:
        super().__init__(work_dir)
        self.client_kind = client_kind
        self.cluster: Any = None
        self.leader_id = ""
        self.leader_addr = ""

    def start(self, nodes: int) -> None:
        from raftchat.localcluster import LocalCluster

        self.cluster = LocalCluster(self.work_dir, nodes, machine="chat")
        self.cluster.start_all()
        self.procs = list(self.cluster.procs.values())
        try:
            self.leader_id = self.cluster.wait_for_leader(timeout=20.0)
        except TimeoutError as exc:
            raise SystemUnavailable(f"raftchat: {exc}") from exc
        self.leader_addr = self.cluster.config.node(self.leader_id).client
        self.leader_pid = self.cluster.procs[self.leader_id].pid

    def _client(self, prefer: str | None = None) -> Any:
        from raftchat.client import Client

        return Client(self.cluster.config, prefer=prefer, timeout=10.0)

    async def prepare(self, accounts: int) -> None:
        client = self._client(self.leader_id)
        try:
            # The first write can wait for the new leader to commit its no-op: allow for it.
            deadline = time.monotonic() + 20
            while True:
                try:
                    first = sender_name(0)
                    await _expect_ok(
                        client.call("create_account", user=first, password=password_of(first)),
                        {"user_exists"},
                    )
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            users = [sender_name(i) for i in range(1, accounts)] + [reader_name(i) for i in range(accounts)]
            await _gather_limited(
                [
                    _expect_ok(
                        client.call("create_account", user=u, password=password_of(u)), {"user_exists"}
                    )
                    for u in users
                ]
            )

            async def fill(i: int) -> None:
                user = reader_name(i)
                for n in range(INBOX_PRELOAD):
                    await _expect_ok(
                        client.call(
                            "send_message",
                            sender=user,
                            to=user,
                            text=message_text(i, n),
                            password=password_of(user),
                        )
                    )

            await _gather_limited([fill(i) for i in range(accounts)])
            if client.leader and client.leader != self.leader_id:
                raise SystemUnavailable(
                    f"raftchat: leadership moved from {self.leader_id} to {client.leader}"
                )
        finally:
            await client.close()

    async def open_session(self, index: int, accounts: int) -> Session:
        if self.client_kind == "raw":
            host, port = self.leader_addr.rsplit(":", 1)
            return await FramedChatSession.open(host, int(port), index, accounts)
        return RaftchatClientSession(self._client(self.leader_id), index, accounts)

    def describe(self) -> str:
        config = self.cluster.config
        return (
            f"raftchat: {len(config.nodes)} node processes (LocalCluster), segment log, fdatasync per flush, "
            f"election {config.election_timeout_ms}-{2 * config.election_timeout_ms} ms, heartbeat "
            f"{config.heartbeat_ms} ms; load to leader {self.leader_id} via "
            + ("raftchat.client.Client" if self.client_kind == "real" else "the raw framed-msgpack client")
        )

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop_all()
        super().stop()


async def _expect_ok(call: Any, tolerated: frozenset[str] | set[str] = frozenset()) -> Any:
    result = await call
    status = result.status if hasattr(result, "status") else result.get("status")
    if status != "ok" and status not in tolerated:
        error = result.error if hasattr(result, "error") else result.get("error")
        raise SystemUnavailable(f"setup request failed: {status}: {error}")
    return result


# --------------------------------------------------------------------------- PySyncObj


class PySyncObjSystem(System):
    """PySyncObj node processes (bench/pysyncobj_node.py), journal file on, group msync before sending."""

    name = "pysyncobj"

    def __init__(self, work_dir: Path, fsync: str = "batch", append_batch: str = "off") -> None:
        super().__init__(work_dir)
        self.fsync = fsync
        self.append_batch = append_batch
        self.serve_ports: list[int] = []
        self.leader_port = 0
        self.version = "?"

    def start(self, nodes: int) -> None:
        try:
            import pysyncobj.version as version
        except ImportError as exc:
            raise SystemUnavailable(
                "pysyncobj is not installed (pip install pysyncobj, or pip install -e '.[bench]')"
            ) from exc
        self.version = getattr(version, "VERSION", "?")
        ports = free_ports(2 * nodes)
        peers = [f"{HOST}:{p}" for p in ports[:nodes]]
        self.serve_ports = ports[nodes:]
        env = child_env()
        for i in range(nodes):
            cmd = module_command("pysyncobj_node", "--index", str(i), "--peers", ",".join(peers))
            cmd += ["--serve-port", str(self.serve_ports[i]), "--data-dir", str(self.work_dir / f"p{i}")]
            cmd += ["--fsync", self.fsync, "--append-batch", self.append_batch]
            self.procs.append(spawn(cmd, self.work_dir / f"p{i}" / "node.log", env=env))
        leader = asyncio.run(self._find_leader(timeout=30.0))
        self.leader_port = self.serve_ports[leader]
        self.leader_pid = self.procs[leader].pid

    async def _find_leader(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            for i, port in enumerate(self.serve_ports):
                try:
                    conn = await asyncio.wait_for(FramedConn.open(HOST, port), 0.5)
                except (OSError, TimeoutError):
                    continue
                try:
                    answer = await asyncio.wait_for(conn.call({"meta": "status"}), 0.5)
                    if answer.get("value", {}).get("leader"):
                        return i
                except (OSError, TimeoutError, asyncio.IncompleteReadError):
                    pass
                finally:
                    await conn.close()
            await asyncio.sleep(0.1)
        raise SystemUnavailable(
            f"pysyncobj: no leader within {timeout:g} s; see the logs under {self.work_dir}"
        )

    async def prepare(self, accounts: int) -> None:
        conns = [await FramedConn.open(HOST, self.leader_port) for _ in range(16)]
        pool: asyncio.Queue[FramedConn] = asyncio.Queue()
        for conn in conns:
            pool.put_nowait(conn)

        async def call(op: dict[str, Any]) -> dict[str, Any]:
            conn = await pool.get()
            try:
                return await asyncio.wait_for(conn.call({"op": op}), 20.0)
            finally:
                pool.put_nowait(conn)

        try:
            users = [sender_name(i) for i in range(accounts)] + [reader_name(i) for i in range(accounts)]
            await asyncio.gather(
                *(_expect_ok(call({"op": "create_account", "user": u}), {"user_exists"}) for u in users)
            )

            async def fill(i: int) -> None:
                user = reader_name(i)
                for n in range(INBOX_PRELOAD):
                    op = {"op": "send_message", "sender": user, "to": user, "text": message_text(i, n)}
                    await _expect_ok(call(op))

            await asyncio.gather(*(fill(i) for i in range(accounts)))
        finally:
            for conn in conns:
                await conn.close()

    async def open_session(self, index: int, accounts: int) -> Session:
        return await FramedChatSession.open(HOST, self.leader_port, index, accounts)

    def describe(self) -> str:
        fsync = (
            "journal msync'd (MS_SYNC) when dirty before each send and at each tick's end: added by "
            "this benchmark, PySyncObj has no fsync option"
            if self.fsync == "batch"
            else "journal in mmap, never synced while running (stock PySyncObj)"
        )
        return (
            f"pysyncobj {self.version}: {len(self.procs)} node processes, SyncObjConf(journalFile, "
            f"fullDumpFile, appendEntriesUseBatch={self.append_batch == 'on'}, other options default); "
            f"{fsync}; reads replicated through the log; load to the leader over the raftchat wire protocol"
        )


# --------------------------------------------------------------------------- etcd


class EtcdSystem(System):
    """An etcd cluster on loopback, driven through its JSON gateway (v3 API over HTTP/1.1)."""

    name = "etcd"

    def __init__(self, work_dir: Path) -> None:
        super().__init__(work_dir)
        self.client_ports: list[int] = []
        self.leader_port = 0
        self.version = "?"

    @staticmethod
    def binary() -> str | None:
        return shutil.which("etcd")

    def start(self, nodes: int) -> None:
        binary = self.binary()
        if binary is None:
            raise SystemUnavailable("no `etcd` binary on PATH (Debian: apt-get install etcd-server)")
        try:
            out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
            self.version = out.split("\n")[0].replace("etcd Version:", "").strip() or "?"
        except (OSError, subprocess.TimeoutExpired):
            pass
        ports = free_ports(2 * nodes)
        self.client_ports = ports[:nodes]
        peer_ports = ports[nodes:]
        names = [f"e{i + 1}" for i in range(nodes)]
        initial = ",".join(f"{n}=http://{HOST}:{p}" for n, p in zip(names, peer_ports, strict=True))
        token = f"bench-{uuid.uuid4().hex[:12]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        for i, name in enumerate(names):
            client_url = f"http://{HOST}:{self.client_ports[i]}"
            peer_url = f"http://{HOST}:{peer_ports[i]}"
            cmd = [binary, "--name", name, "--data-dir", str(self.work_dir / name / "data")]
            cmd += ["--listen-client-urls", client_url, "--advertise-client-urls", client_url]
            cmd += ["--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url]
            cmd += [
                "--initial-cluster",
                initial,
                "--initial-cluster-token",
                token,
                "--initial-cluster-state",
                "new",
            ]
            cmd += ["--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"]
            self.procs.append(spawn(cmd, self.work_dir / name / "etcd.log", env=env))
        leader = asyncio.run(self._find_leader(timeout=30.0))
        self.leader_port = self.client_ports[leader]
        self.leader_pid = self.procs[leader].pid

    async def _find_leader(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            for i, port in enumerate(self.client_ports):
                try:
                    conn = await asyncio.wait_for(HttpConn.open(HOST, port), 0.5)
                except (OSError, TimeoutError):
                    continue
                try:
                    status = await asyncio.wait_for(conn.post_json("/v3/maintenance/status", {}), 1.0)
                    if status.get("leader") and status.get("leader") == status.get("header", {}).get(
                        "member_id"
                    ):
                        return i
                except (OSError, TimeoutError, RuntimeError, ValueError, asyncio.IncompleteReadError):
                    pass
                finally:
                    await conn.close()
            await asyncio.sleep(0.1)
        raise SystemUnavailable(f"etcd: no leader within {timeout:g} s; see the logs under {self.work_dir}")

    async def prepare(self, accounts: int) -> None:
        conns = [await HttpConn.open(HOST, self.leader_port) for _ in range(16)]
        pool: asyncio.Queue[HttpConn] = asyncio.Queue()
        for conn in conns:
            pool.put_nowait(conn)

        async def put(key: str, value: str) -> None:
            conn = await pool.get()
            try:
                await asyncio.wait_for(
                    conn.post_json("/v3/kv/put", {"key": b64(key), "value": b64(value)}), 20.0
                )
            finally:
                pool.put_nowait(conn)

        try:
            puts = []
            for i in range(accounts):
                user = reader_name(i)
                for n in range(INBOX_PRELOAD):
                    value = json.dumps([user, message_text(i, n)])
                    puts.append(put(f"{inbox_prefix(user)}{user}-preload-{n:012d}", value))
            await asyncio.gather(*puts)
        finally:
            for conn in conns:
                await conn.close()

    async def open_session(self, index: int, accounts: int) -> Session:
        return await EtcdChatSession.open(HOST, self.leader_port, index, accounts)

    def describe(self) -> str:
        return (
            f"etcd {self.version}: {len(self.procs)} members on loopback, default settings (WAL fsync on, "
            "heartbeat 100 ms, election 1000 ms); load to the leader through the JSON gateway, "
            "send = PUT /v3/kv/put, fetch = linearizable POST /v3/kv/range over the inbox prefix"
        )


# --------------------------------------------------------------------------- null server (loadgen ceiling)


class NullServer:
    """bench/nullserver.py in its own process: answers at once, in each protocol the benchmark speaks."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.proc: subprocess.Popen | None = None
        self.framed_port = 0
        self.http_port = 0

    def start(self) -> None:
        self.framed_port, self.http_port = free_ports(2)
        cmd = module_command("nullserver", str(self.framed_port), str(self.http_port))
        self.proc = spawn(cmd, self.work_dir / "nullserver.log", env=child_env())
        asyncio.run(self._wait_ready(10.0))

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                conn = await FramedConn.open(HOST, self.framed_port)
                await conn.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise SystemUnavailable("the null server did not start")

    async def open_session(self, kind: str, index: int, accounts: int) -> Session:
        if kind == "raftchat.client.Client":
            from raftchat.client import Client

            client = Client({"n1": f"{HOST}:{self.framed_port}"}, timeout=10.0)
            return RaftchatClientSession(client, index, accounts)
        if kind == "framed msgpack":
            return await FramedChatSession.open(HOST, self.framed_port, index, accounts)
        if kind == "HTTP/JSON":
            return await EtcdChatSession.open(HOST, self.http_port, index, accounts)
        raise ValueError(kind)

    def stop(self) -> None:
        if self.proc is not None:
            stop_processes([self.proc])
            self.proc = None
