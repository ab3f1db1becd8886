"""Real node processes on loopback: crashes, restarts, snapshots and bad input."""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct

import pytest
from support import wait_until

from raftchat import protocol
from raftchat.client import Client, OperationError, SyncClient
from raftchat.localcluster import LocalCluster, node_status
from raftchat.storage import Storage

pytestmark = pytest.mark.cluster  # every test here starts node or proxy processes


async def _send_many(client: Client, sender: str, to: str, prefix: str, count: int) -> list[str]:
    """Send ``count`` messages; return the texts the cluster acknowledged."""
    acked = []
    for i in range(count):
        text = f"{prefix}-{i}"
        try:
            result = await client.call("send_message", password="pw", sender=sender, to=to, text=text)
        except OperationError:
            continue
        assert result.status == "ok", result
        acked.append(text)
    return acked


async def _inbox(client: Client, user: str) -> list[str]:
    result = await client.call("fetch_messages", password="pw", user=user, from_index=1)
    assert result.status in ("ok", "index_past_end"), result
    return [text for _sender, text in result.value]


def _check_no_loss(acked: list[str], inbox: list[str]) -> None:
    assert len(inbox) == len(set(inbox)), "a message was applied twice"
    missing = [t for t in acked if t not in inbox]
    assert not missing, f"acknowledged messages lost: {missing[:5]}"


@pytest.mark.parametrize("nodes", [3, 5])
def test_leader_and_minority_crash_lose_nothing(make_cluster, nodes):
    cluster = make_cluster(nodes)
    minority = (nodes - 1) // 2

    async def scenario() -> None:
        client = Client(cluster.config, timeout=10)
        try:
            for user in ("alice", "bob"):
                assert (await client.call("create_account", password="pw", user=user)).status == "ok"
            acked = await _send_many(client, "alice", "bob", "before", 20)
            killed = []
            for round_ in range(minority):
                leader = await asyncio.to_thread(cluster.wait_for_leader, 15)
                cluster.kill(leader)  # kill -9
                killed.append(leader)
                acked += await _send_many(client, "alice", "bob", f"after-kill-{round_}", 20)
            assert len(killed) == minority
            assert len(acked) >= 20 * (minority + 1) - 2, "the cluster stopped serving after the crashes"
            _check_no_loss(acked, await _inbox(client, "bob"))
        finally:
            await client.close()

    asyncio.run(scenario())


def test_kill_9_of_every_node_during_writes_loses_no_acknowledged_write(make_cluster):
    """Each node's log is all that is left after a kill -9 of the whole cluster mid-write:
    every write acknowledged before the kill must be there after the restart, twice over
    (the second time on logs that were recovered and appended to since)."""
    cluster = make_cluster(3)

    async def write_until_killed(round_: int) -> list[str]:
        client = Client(cluster.config, timeout=10)
        acked: list[list[str]] = [[] for _ in range(4)]

        async def writer(i: int) -> None:
            for n in range(10_000):
                text = f"r{round_}-w{i}-{n}"
                result = await client.call("send_message", password="pw", sender="ann", to="ben", text=text)
                assert result.status == "ok", result
                acked[i].append(text)

        try:
            if round_ == 0:
                for user in ("ann", "ben"):
                    assert (await client.call("create_account", password="pw", user=user)).status == "ok"
            tasks = [asyncio.create_task(writer(i)) for i in range(4)]
            deadline = asyncio.get_running_loop().time() + 20
            while sum(map(len, acked)) < 150 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            for node in cluster.ids:  # writes still in flight: the kill lands mid-append somewhere
                cluster.kill(node)
            done = [list(a) for a in acked]  # what was acknowledged before every node was gone
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert sum(map(len, done)) >= 150, "the cluster stopped acknowledging before the kill"
            return [text for a in done for text in a]
        finally:
            await client.close()

    async def inbox() -> list[str]:
        client = Client(cluster.config, timeout=10)
        try:
            return await _inbox(client, "ben")
        finally:
            await client.close()

    acked: list[str] = []
    for round_ in range(2):
        acked += asyncio.run(write_until_killed(round_))
        cluster.start_all()
        cluster.wait_for_leader(timeout=15)
        _check_no_loss(acked, asyncio.run(inbox()))


def test_full_restart_keeps_state(make_cluster):
    cluster = make_cluster(3)

    async def write() -> list[str]:
        client = Client(cluster.config, timeout=10)
        try:
            await client.call("create_account", password="pw", user="carol")
            await client.call("create_account", password="pw", user="dave")
            return await _send_many(client, "carol", "dave", "msg", 30)
        finally:
            await client.close()

    acked = asyncio.run(write())
    cluster.stop_all()
    for node_id in cluster.ids:
        cluster.start(node_id)
    cluster.wait_for_leader(timeout=15)

    async def read() -> None:
        client = Client(cluster.config, timeout=10)
        try:
            assert (await client.call("check_account", user="carol")).value is True
            listed = await client.call("list_accounts", pattern="*")
            assert listed.value == ["carol", "dave"]
            inbox = await _inbox(client, "dave")
            _check_no_loss(acked, inbox)
            assert inbox == acked  # one client, sequential sends: the order is the send order
        finally:
            await client.close()

    asyncio.run(read())


def test_lagging_node_catches_up_through_snapshot(tmp_path):
    with LocalCluster(tmp_path / "c", 3) as cluster:
        cluster.retune(snapshot_every=40)
        cluster.start_all()
        leader = cluster.wait_for_leader(timeout=15)
        laggard = next(n for n in cluster.ids if n != leader)
        cluster.kill(laggard)

        async def write() -> list[str]:
            client = Client(cluster.config, timeout=10)
            try:
                await client.call("create_account", password="pw", user="erin")
                return await _send_many(client, "erin", "erin", "m", 200)
            finally:
                await client.close()

        acked = asyncio.run(write())
        assert len(acked) == 200
        cluster.start(laggard)

        def caught_up() -> dict | None:
            status = node_status(cluster.config.node(laggard).client)
            leader_now = cluster.leader()
            leading = leader_now and node_status(cluster.config.node(leader_now).client)
            return status if status and leading and status["applied"] >= leading["commit"] >= 200 else None

        status = wait_until("the laggard to catch up with the leader", caught_up, timeout=30)
        assert status["snapshot_index"] > 0, status
        assert "installed snapshot" in cluster.log_path(laggard).read_text()
        # The laggard can now stand in for a dead peer: stop another node and keep writing.
        # Whichever it is (the leader too, if leadership moved), two nodes with the laggard remain.
        others = [n for n in cluster.ids if n not in (laggard, cluster.wait_for_leader(15))]
        cluster.kill(others[0])

        async def still_serves() -> None:
            client = Client(cluster.config, timeout=10)
            try:
                more = await _send_many(client, "erin", "erin", "late", 5)
                assert len(more) == 5
                _check_no_loss(acked + more, await _inbox(client, "erin"))
            finally:
                await client.close()

        asyncio.run(still_serves())


def test_restart_after_snapshots_applies_nothing_twice(tmp_path):
    every = 25

    async def write(cluster: LocalCluster) -> list[str]:
        client = Client(cluster.config, timeout=10)
        try:
            await client.call("create_account", password="pw", user="gina")
            return await _send_many(client, "gina", "gina", "s", 120)
        finally:
            await client.close()

    async def read(cluster: LocalCluster) -> list[str]:
        client = Client(cluster.config, timeout=10)
        try:
            return await _inbox(client, "gina")
        finally:
            await client.close()

    def snapshots_done(cluster: LocalCluster) -> bool:
        """Every node applied what it knows and took every snapshot due (none left in progress)."""
        for node in cluster.ids:
            status = node_status(cluster.config.node(node).client)
            if not status or status["snapshot_index"] == 0 or status["applied"] < status["commit"]:
                return False
            if status["applied"] - status["snapshot_index"] >= every:
                return False
        return True

    with LocalCluster(tmp_path / "c", 3) as cluster:
        cluster.retune(snapshot_every=every)
        cluster.start_all()
        cluster.wait_for_leader(timeout=15)
        acked = asyncio.run(write(cluster))
        wait_until("the forked snapshots to finish", lambda: snapshots_done(cluster), timeout=30)
        cluster.stop_all()
        for node_id in cluster.ids:
            assert "snapshot at index" in cluster.log_path(node_id).read_text()
            cluster.start(node_id)
        cluster.wait_for_leader(timeout=15)
        assert asyncio.run(read(cluster)) == acked  # each message once, in order, none lost


def _raw_request(sock: socket.socket, payload: bytes) -> dict:
    sock.sendall(struct.pack(">I", len(payload)) + payload)
    size = struct.unpack(">I", _recv(sock, 4))[0]
    return protocol.unpack(_recv(sock, size))


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "node closed the connection"
        data += chunk
    return data


def _leader_answer(cluster: LocalCluster, payload: bytes) -> dict:
    """The answer of the node that leads when the request arrives (waiting out an election)."""

    def attempt() -> dict | None:
        leader = cluster.leader()
        if leader is None:
            return None
        with socket.create_connection(cluster.config.node(leader).client_hostport, timeout=5) as sock:
            reply = _raw_request(sock, payload)
        return None if reply["status"] == "not_leader" else reply

    return wait_until("a leader to answer", attempt, timeout=20)


def test_bad_input_gets_clear_errors_and_node_keeps_serving(make_cluster):
    """Bad frames are refused by whichever node gets them; a well-formed write goes to the leader."""
    cluster = make_cluster(3)
    host, port = cluster.config.node(cluster.ids[0]).client_hostport
    with socket.create_connection((host, port), timeout=5) as sock:
        reply = _raw_request(sock, b"\xc1\xff garbage")
        assert reply["status"] == "bad_request" and "msgpack" in reply["error"]
        reply = _raw_request(sock, protocol.pack([1, 2, 3]))
        assert reply["status"] == "bad_request" and "map" in reply["error"]
        reply = _raw_request(sock, protocol.pack({"id": 7, "op": {"op": "launch_rockets"}}))
        assert reply["id"] == 7 and reply["status"] == "bad_request" and "unknown operation" in reply["error"]
        reply = _raw_request(sock, protocol.pack({"id": 8, "op": {"op": "check_account", "user": 42}}))
        assert reply["status"] == "bad_request" and "'user'" in reply["error"]
        reply = _raw_request(
            sock, protocol.pack({"id": 9, "op": {"op": "create_account", "password": "pw", "user": "x"}})
        )
        assert reply["status"] == "bad_request" and "client" in reply["error"]
        request = {
            "id": 10,
            "op": {"op": "send_message", "password": "pw", "sender": "nobody", "to": "noone", "text": "hi"},
        }
        reply = _raw_request(sock, protocol.pack({**request, "client": "c1", "seq": 1}))
        if reply["status"] == "not_leader":  # this node does not lead (now): ask the leader
            reply = _leader_answer(cluster, protocol.pack({**request, "client": "c1", "seq": 1}))
        assert reply["status"] == "no_such_user" and "nobody" in reply["error"]
        # An oversized frame cannot be skipped: the node answers and closes this connection only.
        sock.sendall(struct.pack(">I", protocol.MAX_FRAME + 1))
        size = struct.unpack(">I", _recv(sock, 4))[0]
        reply = protocol.unpack(_recv(sock, size))
        assert reply["status"] == "bad_request" and "exceeds" in reply["error"]
    assert all(cluster.alive(n) for n in cluster.ids)

    async def still_serves() -> None:
        client = Client(cluster.config, timeout=10)
        try:
            assert (await client.call("create_account", password="pw", user="frank")).status == "ok"
            assert (await client.call("check_account", user="frank")).value is True
        finally:
            await client.close()

    asyncio.run(still_serves())


def test_data_dir_of_another_cluster_is_refused(make_cluster, tmp_path):
    cluster = make_cluster(3)
    cluster.stop_all()
    other = LocalCluster(tmp_path / "other", 3)
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "raftchat", "node", "--id", "n1", "--cluster", str(other.config_path)]
    cmd += ["--data-dir", str(cluster.data_dir / "n1")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "cluster" in proc.stderr and other.config.cluster_id in proc.stderr, proc.stderr


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux) to cap file sizes")
def test_a_node_whose_write_fails_stops_and_keeps_every_acknowledged_write(make_cluster):
    """A real failed write (the file-size limit fails it with EFBIG, as a full disk would):
    the writer thread reports it and the node stops with status 1, having acknowledged
    only writes that are on its disk."""
    limit = 256 * 1024  # the log grows past it after about a dozen writes; node.log stays below
    capped = ["prlimit", f"--fsize={limit}", "--"]
    cluster = make_cluster(1, machine="kv", command_prefix=lambda _node: capped)
    node = cluster.ids[0]
    acked = []
    with SyncClient(cluster.config, timeout=3) as client:
        for i in range(40):
            try:
                result = client.call("put", key=f"key-{i:03d}", value="x" * 20_000)
            except OperationError:
                break
            if result.status != "ok":
                break
            acked.append(f"key-{i:03d}".encode())
    assert 0 < len(acked) < 40, acked
    wait_until("the node to stop", lambda: not cluster.alive(node), timeout=20)
    assert cluster.procs[node].returncode == 1
    assert "a storage write failed, stopping" in cluster.log_path(node).read_text()
    storage = Storage.open(cluster.data_dir / node, cluster.config.cluster_id, node)
    try:
        stored = b"".join(e.data for e in storage.load()[2])
    finally:
        storage.close()
    assert all(key in stored for key in acked), "an acknowledged write is not on disk"
