"""A follower behind a snapshot of more than 20 MiB catches up through chunked InstallSnapshot.

Real node processes on loopback, killed with SIGKILL. The state grows with messages of
100 kB through the client library; ``snapshot_every`` is small, so the leader compacts
while it grows and a follower that was down can only catch up through the snapshot,
which is 20 times the peer frame limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
import time

import pytest
from support import wait_until

from raftchat import protocol
from raftchat.client import Client, OperationError
from raftchat.config import split_hostport
from raftchat.localcluster import LocalCluster, loopback_config

pytestmark = pytest.mark.cluster

TEXT = 100_000  # characters per message
USERS = 48  # recipients, so that no inbox (one fetch answer) nears the 1 MiB frame limit
GROWTH = 280  # messages while the follower is down: 28 MB of text, past 20 MiB in the snapshot
SNAPSHOT_EVERY = 40
BIG = 20 << 20
_INSTALLED = re.compile(r"installed snapshot at index (\d+) \((\d+) bytes\)")


def _cluster(tmp_path) -> LocalCluster:
    config = dataclasses.replace(loopback_config(3), snapshot_every=SNAPSHOT_EVERY, max_message=TEXT)
    return LocalCluster(tmp_path / "c", 3, config=config)


def _text(tag: str, i: int) -> str:
    head = f"{tag}-{i}:"
    return head + chr(ord("a") + i % 26) * (TEXT - len(head))


async def _setup(cluster: LocalCluster) -> None:
    client = Client(cluster.config, timeout=20)
    try:
        for u in range(USERS):
            assert (await client.call("create_account", password="pw", user=f"u{u}")).status == "ok"
    finally:
        await client.close()


async def _grow(cluster: LocalCluster, tag: str, count: int, writers: int = 4) -> dict[str, list[str]]:
    """Send ``count`` large messages with a few concurrent clients; the acknowledged ones by recipient."""
    acked: dict[str, list[str]] = {}

    async def writer(w: int) -> None:
        client = Client(cluster.config, timeout=30)
        try:
            for i in range(w, count, writers):
                to, text = f"u{i % USERS}", _text(tag, i)
                try:
                    result = await client.call("send_message", password="pw", sender="u0", to=to, text=text)
                except OperationError:
                    continue  # may or may not have happened: not counted as acknowledged
                assert result.status == "ok", result
                acked.setdefault(to, []).append(text)
        finally:
            await client.close()

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return acked


async def _check_state(cluster: LocalCluster, acked: dict[str, list[str]], node: str) -> None:
    """Every acknowledged message is in its inbox once, read from ``node`` (which must lead)."""
    client = Client(cluster.config, prefer=node, timeout=20)
    try:
        for u in range(USERS):
            result = await client.call("fetch_messages", password="pw", user=f"u{u}", from_index=1)
            assert result.status in ("ok", "index_past_end"), result
            texts = [text for _sender, text in result.value]
            assert len(texts) == len(set(texts)), f"u{u}: a message was applied twice"
            missing = set(acked.get(f"u{u}", [])) - set(texts)
            assert not missing, f"u{u}: {len(missing)} acknowledged message(s) lost"
        assert client.leader == node
    finally:
        await client.close()


def _merge(*parts: dict[str, list[str]]) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for part in parts:
        for user, texts in part.items():
            merged.setdefault(user, []).extend(texts)
    return merged


def _caught_up(cluster: LocalCluster, node: str) -> dict | None:
    leader = cluster.leader()
    if leader is None or leader == node:
        return None
    mine, theirs = cluster.status(node), cluster.status(leader)
    if mine and theirs and mine["leader"] == leader and mine["applied"] >= theirs["commit"]:
        return mine
    return None


def _from_snapshot(cluster: LocalCluster, node: str) -> dict | None:
    """The node's status once it has caught up and its installed snapshot is on its disk
    (the count goes up only when the write is durable, which may come after the apply)."""
    mine = _caught_up(cluster, node)
    return mine if mine is not None and mine["snapshots"]["installed"] >= 1 else None


def _snapshot_covers_the_state(cluster: LocalCluster) -> bool:
    """Whether the leader's latest snapshot is within one interval of what it applied: a
    snapshot is produced in the background, and under load the newest one can lag far behind
    (a follower would then get an old, smaller one and the rest as entries)."""
    leader = cluster.leader()
    status = cluster.status(leader) if leader else None
    return bool(status) and status["snapshot_index"] >= status["applied"] - SNAPSHOT_EVERY


def _installs(cluster: LocalCluster, node: str) -> list[tuple[int, int]]:
    """(index, bytes) of every snapshot the node's log says it installed from a leader."""
    text = cluster.log_path(node).read_text(errors="replace")
    return [(int(i), int(b)) for i, b in _INSTALLED.findall(text)]


def _raw_write(cluster: LocalCluster, node: str, request: dict) -> dict:
    address = split_hostport(cluster.config.node(node).client)
    return protocol.request_sync(address, {"id": 1, **request}, timeout=10)


def _make_leader(cluster: LocalCluster, node: str) -> list[str]:
    """Pause leaders until ``node`` is elected; returns the paused nodes (one, at the end)."""
    paused: list[str] = []
    for _ in range(12):
        leader = wait_until("a leader", cluster.leader, timeout=20)
        if leader == node:
            return paused
        # An election can only go to ``node`` once its log is as long as the others': wait for
        # it to catch up with the leader (a 20 MiB install and its fsync take a while here).
        wait_until(
            f"{node} caught up",
            lambda lead=leader: (
                (mine := cluster.status(node)) is not None
                and (theirs := cluster.status(lead)) is not None
                and mine["last_index"] >= theirs["commit"]
            ),
            30,
        )
        # Resume the node paused last round and let it settle under this leader before the
        # next pause: resumed with its timer long expired, it would campaign at once and win
        # every race against ``node``, whose timer starts only when the leader goes quiet.
        for other in paused:
            cluster.signal(other, signal.SIGCONT)
            wait_until(
                f"{other} follows {leader}",
                lambda o=other, lead=leader: (s := cluster.status(o)) is not None and s["leader"] == lead,
                20,
            )
        if paused:
            time.sleep(0.5)  # past one election timeout: its next election timer starts afresh
            if cluster.leader() != leader:
                continue  # the resumed node's catch-up moved leadership; look again
        cluster.signal(leader, signal.SIGSTOP)
        paused = [leader]
        wait_until(
            "a new leader", lambda old=leader: cluster.leader() not in (None, old) and cluster.leader(), 20
        )
    raise AssertionError(f"{node} never won an election")


def _serves_without(cluster: LocalCluster, laggard: str, acked: dict[str, list[str]]) -> dict[str, list[str]]:
    """Kill the other follower: the leader and the laggard alone are a majority and must serve."""
    leader = cluster.leader()
    other = next(n for n in cluster.ids if n not in (laggard, leader))
    cluster.kill(other)
    more = asyncio.run(_grow(cluster, "after", 8, writers=2))
    assert sum(map(len, more.values())) == 8, "the leader and the caught-up follower did not serve"
    return more


def test_follower_catches_up_through_a_snapshot_of_20_mib(tmp_path):
    with _cluster(tmp_path) as cluster:
        cluster.start_all()
        leader = cluster.wait_for_leader(timeout=20)
        asyncio.run(_setup(cluster))
        laggard = next(n for n in cluster.ids if n != leader)
        cluster.kill(laggard)
        acked = asyncio.run(_grow(cluster, "grow", GROWTH))
        assert sum(map(len, acked.values())) >= GROWTH - 5
        wait_until("a snapshot of the grown state", lambda: _snapshot_covers_the_state(cluster), 60)
        started = time.monotonic()
        cluster.start(laggard)
        status = wait_until(f"{laggard} caught up", lambda: _from_snapshot(cluster, laggard), timeout=60)
        took = time.monotonic() - started
        assert status["snapshot_index"] > 0, status
        installs = _installs(cluster, laggard)
        assert installs and max(size for _i, size in installs) > BIG, installs
        leader_status = cluster.status(cluster.leader())
        assert leader_status["snapshots"]["sent"] >= 1 and leader_status["snapshots"]["taken"] >= 1
        print(f"\n{laggard} caught up in {took:.1f} s through snapshots {installs}")
        more = _serves_without(cluster, laggard, acked)
        asyncio.run(_check_state(cluster, _merge(acked, more), cluster.leader()))


def test_follower_killed_mid_transfer_catches_up_and_restarts_from_the_snapshot(tmp_path):
    with _cluster(tmp_path) as cluster:
        cluster.start_all()
        leader = cluster.wait_for_leader(timeout=20)
        asyncio.run(_setup(cluster))
        # One write with a fixed (client, seq): a retry of it later must be answered from the
        # session table (carried in the snapshot), never applied a second time.
        probe = {
            "op": {"op": "send_message", "password": "pw", "sender": "u0", "to": "u1", "text": "probe-once"},
            "client": "probe",
            "seq": 1,
        }
        assert _raw_write(cluster, leader, probe)["status"] == "ok"
        laggard = next(n for n in cluster.ids if n != leader)
        cluster.kill(laggard)
        acked = asyncio.run(_grow(cluster, "grow", GROWTH))
        caught_mid_transfer = None
        for attempt in range(3):
            wait_until("a snapshot of the grown state", lambda: _snapshot_covers_the_state(cluster), 60)
            cluster.start(laggard)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and caught_mid_transfer is None:
                status = cluster.status(laggard)
                if status and status["snapshots"]["installed"]:
                    break  # too late: the whole transfer went through between two looks
                if status and status["snapshot_receiving"] > 0:
                    cluster.kill(laggard)
                    caught_mid_transfer = status["snapshot_receiving"]
                time.sleep(0.003)
            if caught_mid_transfer is not None:
                break
            # Try again: the laggard goes down, and new writes move the leader's snapshot on.
            cluster.kill(laggard)
            acked = _merge(acked, asyncio.run(_grow(cluster, f"retry{attempt}", 2 * SNAPSHOT_EVERY)))
        assert caught_mid_transfer is not None, "never saw the transfer under way"
        assert not _installs(cluster, laggard), "killed before the snapshot was installed"
        cluster.start(laggard)
        wait_until(f"{laggard} caught up", lambda: _from_snapshot(cluster, laggard), timeout=60)
        installs = _installs(cluster, laggard)
        assert installs and installs[-1][1] > BIG, installs
        print(f"\n{laggard} killed holding {caught_mid_transfer} bytes of the transfer; then {installs}")
        # Restart it from the snapshot it assembled from chunks: it must hold the whole state,
        # sessions included, as it shows by leading and answering.
        cluster.kill(laggard)
        cluster.start(laggard)
        wait_until(f"{laggard} caught up again", lambda: _caught_up(cluster, laggard), timeout=60)
        log_text = cluster.log_path(laggard).read_text(errors="replace")
        restored = [int(i) for i in re.findall(r"entries after snapshot (\d+)\)", log_text)][-1]
        assert restored >= installs[-1][0], "the restarted node did not start from its snapshot"
        paused = _make_leader(cluster, laggard)
        try:
            retry = _raw_write(cluster, laggard, probe)
            assert retry["status"] == "ok" and retry["node"] == laggard, retry
            asyncio.run(_check_state(cluster, acked, laggard))
            client_inbox = asyncio.run(_fetch(cluster, laggard, "u1"))
            assert client_inbox.count("probe-once") == 1, "a retried write was applied twice"
        finally:
            for node in paused:
                cluster.signal(node, signal.SIGCONT)
        more = _serves_without(cluster, laggard, acked)
        asyncio.run(_check_state(cluster, _merge(acked, more), cluster.leader()))


async def _fetch(cluster: LocalCluster, node: str, user: str) -> list[str]:
    client = Client(cluster.config, prefer=node, timeout=20)
    try:
        result = await client.call("fetch_messages", password="pw", user=user, from_index=1)
        return [text for _sender, text in result.value]
    finally:
        await client.close()
