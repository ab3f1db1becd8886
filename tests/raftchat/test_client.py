"""raftchat.client: retries, redirects and definiteness, against scripted fake nodes and a real cluster.

The fake nodes speak the real wire protocol but answer from a script, so each rule about
what a failure means (definite or not) is checked without waiting for a real election.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import wait_until

from raftchat import config as cfg
from raftchat import protocol
from raftchat.client import Client, OperationError, Outcome, SeqTracker, SyncClient
from raftchat.localcluster import node_status
from raftchat.protocol import STATUSES

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------- bookkeeping units


def test_outcome_stays_definite_while_nothing_was_accepted():
    outcome = Outcome(read_only=False)
    outcome.not_sent("refused")
    outcome.attempt_ended("not_leader", "n1 is not the leader")
    assert outcome.definite
    assert outcome.error().definite


def test_outcome_one_unanswered_attempt_makes_a_write_indefinite():
    outcome = Outcome(read_only=False)
    outcome.attempt_ended("not_leader", "n1 is not the leader")
    outcome.attempt_ended("timeout", "n2 did not answer")
    outcome.not_sent("refused")  # later certainty does not undo the earlier doubt
    assert not outcome.definite
    err = outcome.error("timeout", "gave up")
    assert (err.status, err.message, err.definite) == ("timeout", "gave up", False)


ATTEMPT_STATUSES = [s for s in STATUSES.values() if s.definite is not None]


@pytest.mark.parametrize("status", ATTEMPT_STATUSES, ids=lambda s: s.name)
def test_outcome_of_one_attempt_is_as_definite_as_its_status_says(status):
    outcome = Outcome(read_only=False)
    outcome.attempt_ended(status.name, status.meaning)
    assert outcome.definite is status.definite
    assert outcome.error().status == status.name


def test_outcome_reads_are_always_definite():
    outcome = Outcome(read_only=True)
    outcome.attempt_ended("uncertain", "lost leadership")
    assert outcome.definite


def test_seq_tracker_acks_only_a_settled_prefix():
    seqs = SeqTracker()
    a, b, c = seqs.allocate(), seqs.allocate(), seqs.allocate()
    assert (a, b, c) == (1, 2, 3)
    seqs.settle(b)
    assert seqs.ack == 0  # seq 1 is still in flight
    seqs.settle(a)
    assert seqs.ack == 2
    seqs.settle(c)
    seqs.settle(c)
    assert seqs.ack == 3


def test_client_rejects_bad_addresses_and_unknown_prefer():
    with pytest.raises(cfg.ConfigError):
        Client({"n1": "nonsense"})
    with pytest.raises(cfg.ConfigError):
        Client({"n1": "127.0.0.1:1"}, prefer="n9")
    with pytest.raises(cfg.ConfigError):
        Client({})


# ---------------------------------------------------------------------- scripted fake nodes

# A response, a list of responses (with ids) to send now, "close" to hang up, or None for silence.
Reply = dict[str, Any] | list[dict[str, Any]] | str | None


@dataclass
class FakeNode:
    """One node that answers each request with ``script(node, request)``."""

    id: str
    script: Callable[[FakeNode, dict[str, Any]], Reply]
    requests: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    server: asyncio.base_events.Server | None = None

    def answer(
        self, status: str, value: Any = None, leader: str | None = None, error: str = ""
    ) -> dict[str, Any]:
        return {
            "status": status,
            "value": value,
            "error": error,
            "node": self.id,
            "leader": leader,
            "leader_addr": None,
        }

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while (data := await protocol.read_frame(reader)) is not None:
                request = protocol.unpack(data)
                self.requests.append(request)
                reply = self.script(self, request)
                if reply == "close":
                    break
                if isinstance(reply, dict):
                    writer.write(protocol.frame(protocol.pack({**reply, "id": request["id"]})))
                for response in reply if isinstance(reply, list) else []:
                    writer.write(protocol.frame(protocol.pack(response)))
        except (OSError, protocol.FrameError):
            pass
        finally:
            writer.close()


class FakeCluster:
    """Fake nodes on a private event loop in a thread, so both Client and SyncClient can use them."""

    def __init__(self, scripts: dict[str, Callable[[FakeNode, dict[str, Any]], Reply]]) -> None:
        self.nodes = {node_id: FakeNode(node_id, script) for node_id, script in scripts.items()}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        for node in self.nodes.values():
            node.server = self._run(asyncio.start_server(node.serve, "127.0.0.1", 0))
            node.port = node.server.sockets[0].getsockname()[1]

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(5)

    @property
    def addrs(self) -> dict[str, str]:
        return {node.id: f"127.0.0.1:{node.port}" for node in self.nodes.values()}

    def stop(self) -> None:
        async def shutdown() -> None:
            for node in self.nodes.values():
                node.server.close()

        self._run(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def fake_cluster() -> Iterator[Callable[..., FakeCluster]]:
    made: list[FakeCluster] = []

    def make(**scripts: Callable[[FakeNode, dict[str, Any]], Reply]) -> FakeCluster:
        made.append(FakeCluster(scripts))
        return made[-1]

    yield make
    for cluster in made:
        cluster.stop()


@pytest.fixture
def dead_address() -> Iterator[Callable[[], str]]:
    """Addresses where nothing listens: each port stays bound (never listening) until the test
    ends, so connecting is refused at once and nothing else can take the port meanwhile."""
    held: list[socket.socket] = []

    def make() -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        held.append(sock)
        return f"127.0.0.1:{sock.getsockname()[1]}"

    yield make
    for sock in held:
        sock.close()


def leader_script(value: Any = "done") -> Callable[[FakeNode, dict[str, Any]], Reply]:
    return lambda node, req: node.answer("ok", value, leader=node.id)


def follower_script(leader: str | None) -> Callable[[FakeNode, dict[str, Any]], Reply]:
    return lambda node, req: node.answer("not_leader", leader=leader, error="not the leader")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def call_once(addrs: dict[str, str], op: str, *, prefer: str | None = None, **kwargs: Any) -> Any:
    timeout = kwargs.pop("timeout", 2.0)
    client = Client(addrs, prefer=prefer, timeout=timeout, attempt_timeout=kwargs.pop("attempt_timeout", 0.3))
    try:
        return client, await client.call(op, **kwargs)
    finally:
        await client.close()


def test_follows_the_leader_hint(fake_cluster):
    cluster = fake_cluster(n1=follower_script("n3"), n2=follower_script("n3"), n3=leader_script(7))
    client, result = run(
        call_once(cluster.addrs, "send_message", password="pw", prefer="n1", sender="a", to="b", text="hi")
    )
    assert (result.status, result.value) == ("ok", 7)
    assert client.leader == "n3"
    assert len(cluster.nodes["n1"].requests) == 1
    assert len(cluster.nodes["n2"].requests) == 0  # went straight to the hinted node


def test_tries_the_next_node_when_no_leader_is_known(fake_cluster):
    cluster = fake_cluster(n1=follower_script(None), n2=leader_script())
    client, result = run(call_once(cluster.addrs, "create_account", password="pw", prefer="n1", user="a"))
    assert result.status == "ok"
    assert client.leader == "n2"


def test_non_ok_statuses_are_returned_not_raised(fake_cluster):
    cluster = fake_cluster(n1=lambda node, req: node.answer("user_exists", error="user 'a' already exists"))
    _client, result = run(call_once(cluster.addrs, "create_account", password="pw", user="a"))
    assert (result.status, result.error) == ("user_exists", "user 'a' already exists")


def test_same_client_and_seq_on_every_retry_and_ack_sent(fake_cluster):
    answers = iter(["uncertain", "not_leader", "ok"])

    def flaky(node: FakeNode, req: dict[str, Any]) -> Reply:
        return node.answer(next(answers, "ok"), 1, leader=None)

    cluster = fake_cluster(n1=flaky)

    async def scenario() -> Client:
        client = Client(cluster.addrs, client_id="c1", timeout=3, attempt_timeout=0.5)
        assert (await client.call("create_account", password="pw", user="a")).status == "ok"
        assert (await client.call("create_account", password="pw", user="b")).status == "ok"
        await client.close()
        return client

    run(scenario())
    requests = cluster.nodes["n1"].requests
    assert [(r["client"], r["seq"], r["ack"]) for r in requests] == [("c1", 1, 0)] * 3 + [("c1", 2, 1)]
    assert len({r["id"] for r in requests}) == len(requests)  # every attempt has its own id


def test_reads_carry_no_session(fake_cluster):
    cluster = fake_cluster(n1=leader_script([]))
    run(call_once(cluster.addrs, "list_accounts", pattern="*"))
    (request,) = cluster.nodes["n1"].requests
    assert request["op"] == {"op": "list_accounts", "pattern": "*"}
    assert not {"client", "seq", "ack"} & set(request)


def test_write_refused_everywhere_is_definite(dead_address):
    addrs = {"n1": dead_address(), "n2": dead_address()}
    with pytest.raises(OperationError) as info:
        run(call_once(addrs, "create_account", password="pw", user="a", timeout=0.5))
    assert info.value.definite
    assert info.value.status == "timeout"
    assert "connection refused" in info.value.message


def test_an_attempt_cut_short_by_the_deadline_keeps_the_cause_before_it() -> None:
    """Under load the last attempt may only time out connecting; the refusal the attempts
    before it met is what the caller needs to read."""
    outcome = Outcome(read_only=False)
    assert outcome.cut_short("connecting to n2 took the whole attempt") == (
        "connecting to n2 took the whole attempt"
    )
    outcome.not_sent("cannot connect to n1 at 127.0.0.1:1: connection refused")
    outcome.not_sent(outcome.cut_short("cannot connect to n2 at 127.0.0.1:2: timed out"))
    error = outcome.error()
    assert error.definite and "timed out" in error.message and "connection refused" in error.message


def test_write_rejected_by_followers_only_is_definite(fake_cluster):
    cluster = fake_cluster(n1=follower_script(None), n2=follower_script(None))
    with pytest.raises(OperationError) as info:
        run(call_once(cluster.addrs, "create_account", password="pw", user="a", timeout=0.5))
    assert info.value.definite
    assert len(cluster.nodes["n1"].requests) > 1  # kept trying round-robin until the deadline


def test_unanswered_write_is_indefinite_but_unanswered_read_is_definite(fake_cluster):
    cluster = fake_cluster(n1=lambda node, req: None)
    with pytest.raises(OperationError) as info:
        run(
            call_once(cluster.addrs, "send_message", password="pw", sender="a", to="b", text="x", timeout=0.6)
        )
    assert not info.value.definite
    with pytest.raises(OperationError) as info:
        run(call_once(cluster.addrs, "fetch_messages", password="pw", user="a", from_index=1, timeout=0.6))
    assert info.value.definite


def test_connection_broken_after_sending_is_indefinite(fake_cluster):
    cluster = fake_cluster(n1=lambda node, req: "close", n2=follower_script(None))
    with pytest.raises(OperationError) as info:
        run(call_once(cluster.addrs, "delete_account", password="pw", prefer="n1", user="a", timeout=0.6))
    assert not info.value.definite


def test_uncertain_everywhere_is_indefinite(fake_cluster):
    cluster = fake_cluster(n1=lambda node, req: node.answer("uncertain"))
    with pytest.raises(OperationError) as info:
        run(
            call_once(
                cluster.addrs, "create_account", password="pw", user="a", timeout=2.0, attempt_timeout=1.0
            )
        )
    assert not info.value.definite
    assert info.value.status == "timeout"
    # Every answer the client got said "uncertain" (on a loaded machine the last attempt may
    # be cut by the deadline before its answer, so the message need not quote it).
    assert cluster.nodes["n1"].requests, "the node was never asked"


def test_bad_request_fails_at_once_and_definitely(fake_cluster):
    cluster = fake_cluster(n1=lambda node, req: node.answer("bad_request", error="unknown operation 'nope'"))
    with pytest.raises(OperationError) as info:
        run(call_once(cluster.addrs, "nope", timeout=5))
    assert len(cluster.nodes["n1"].requests) == 1, "a bad request is never retried"
    assert (info.value.status, info.value.definite) == ("bad_request", True)
    assert "unknown operation" in info.value.message
    assert len(cluster.nodes["n1"].requests) == 1


def test_concurrent_calls_share_one_connection_and_match_by_id(fake_cluster):
    held: list[dict[str, Any]] = []

    def reversed_echo(node: FakeNode, req: dict[str, Any]) -> Reply:
        held.append(req)
        if len(held) < 20:
            return None
        # Answer everything at once, last request first: only the ids can match them up.
        return [{**node.answer("ok", r["op"]["user"], leader=node.id), "id": r["id"]} for r in reversed(held)]

    cluster = fake_cluster(n1=reversed_echo)

    async def scenario() -> list[str]:
        client = Client(cluster.addrs, timeout=3)
        try:
            users = [f"u{i}" for i in range(20)]
            results = await asyncio.gather(*(client.call("check_account", user=u) for u in users))
            return [r.value for r in results], users
        finally:
            await client.close()

    values, users = run(scenario())
    assert values == users
    assert cluster.nodes["n1"].connections == 1


def test_broken_connection_is_reopened_on_next_use(fake_cluster):
    hang_up = {"next": True}

    def once_closing(node: FakeNode, req: dict[str, Any]) -> Reply:
        if hang_up["next"]:
            hang_up["next"] = False
            return "close"
        return node.answer("ok", True, leader=node.id)

    cluster = fake_cluster(n1=once_closing)
    _client, result = run(call_once(cluster.addrs, "check_account", user="a"))
    assert result.value is True
    assert cluster.nodes["n1"].connections == 2


def test_closing_the_client_ends_calls_in_progress(fake_cluster):
    cluster = fake_cluster(n1=lambda node, req: None)

    async def scenario() -> OperationError:
        # Timeouts far beyond the test's: only the close can end the call.
        client = Client(cluster.addrs, timeout=600, attempt_timeout=600)
        call = asyncio.create_task(client.call("create_account", password="pw", user="a"))
        await asyncio.to_thread(wait_until, "the request to arrive", lambda: cluster.nodes["n1"].requests)
        await client.close()
        with pytest.raises(OperationError) as info:
            await asyncio.wait_for(call, 60)
        return info.value

    error = run(scenario())
    assert (error.status, error.definite) == ("closed", False)  # it was sent before the close


def test_sync_client_keeps_its_loop_between_calls(fake_cluster):
    cluster = fake_cluster(n1=leader_script(3))
    with SyncClient(cluster.addrs, timeout=2) as client:
        assert client.call("send_message", password="pw", sender="a", to="b", text="x").value == 3
        assert client.call("send_message", password="pw", sender="a", to="b", text="y").value == 3
        assert client.leader == "n1"
    assert cluster.nodes["n1"].connections == 1
    assert [r["seq"] for r in cluster.nodes["n1"].requests] == [1, 2]


# ---------------------------------------------------------------------- a real cluster


def unique(prefix: str) -> str:
    """A fresh username (the cluster is shared by every test in the session)."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def raw_request(address: str, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """One request over a plain socket, to see exactly what a node answers."""
    return protocol.request_sync(cfg.split_hostport(address), request, timeout)


def test_live_chat_operations(live_cluster):
    config = cfg.load(live_cluster)
    alice, bob = unique("a"), unique("b")

    async def scenario() -> None:
        client = Client(config, timeout=10)
        try:
            assert (await client.call("create_account", password="pw", user=alice)).status == "ok"
            assert (await client.call("create_account", password="pw", user=bob)).status == "ok"
            assert (await client.call("create_account", password="pw", user=alice)).status == "user_exists"
            assert (await client.call("check_account", user=alice)).value is True
            assert (await client.call("check_account", user=unique("x"))).value is False
            first = await client.call("send_message", password="pw", sender=alice, to=bob, text="hello")
            second = await client.call("send_message", password="pw", sender=alice, to=bob, text="again")
            assert (first.status, first.value, second.value) == ("ok", 1, 2)
            fetched = await client.call("fetch_messages", password="pw", user=bob, from_index=1)
            assert fetched.status == "ok"
            assert fetched.value == [[alice, "hello"], [alice, "again"]]
            assert (await client.call("fetch_messages", password="pw", user=bob, from_index=2)).value == [
                [alice, "again"]
            ]
            past = await client.call("fetch_messages", password="pw", user=bob, from_index=3)
            assert (past.status, past.value) == ("index_past_end", [])
            listed = await client.call("list_accounts", pattern=alice[0] + "*")
            assert alice in listed.value and bob not in listed.value
            assert (await client.call("delete_account", password="pw", user=alice)).status == "ok"
            assert (await client.call("delete_account", password="pw", user=alice)).status == "no_such_user"
            assert (await client.call("check_account", user=alice)).value is False
            nobody = await client.call("send_message", password="pw", sender=alice, to=bob, text="ghost")
            assert nobody.status == "no_such_user"
            assert client.leader in config.ids
        finally:
            await client.close()

    run(scenario())


def test_live_concurrent_sends_are_all_applied_once(live_cluster):
    config = cfg.load(live_cluster)
    alice, bob = unique("a"), unique("b")

    async def scenario() -> None:
        client = Client(config, timeout=10)
        try:
            for user in (alice, bob):
                assert (await client.call("create_account", password="pw", user=user)).status == "ok"
            results = await asyncio.gather(
                *(
                    client.call("send_message", password="pw", sender=alice, to=bob, text=f"m{i}")
                    for i in range(30)
                )
            )
            assert sorted(r.value for r in results) == list(range(1, 31))
            inbox = await client.call("fetch_messages", password="pw", user=bob, from_index=1)
            assert sorted(text for _s, text in inbox.value) == sorted(f"m{i}" for i in range(30))
            assert client.seqs.ack == client.seqs.next_seq - 1  # every answered seq acknowledged
        finally:
            await client.close()

    run(scenario())


def _redirected(config: cfg.ClusterConfig) -> tuple[str, cfg.NodeAddr, dict[str, Any]] | None:
    """(leader, a follower, the follower's answer) once the follower names the leader we found.

    None while an election moves the leader between the two looks: the caller tries again."""
    with SyncClient(config, timeout=10) as probe:
        probe.call("list_accounts", pattern="")
        leader = probe.leader
    follower = next(node for node in config.nodes if node.id != leader)
    answer = raw_request(follower.client, {"id": 5, "op": {"op": "list_accounts", "pattern": "*"}})
    return (leader, follower, answer) if answer.get("leader") == leader else None


def test_live_redirect_from_a_follower(live_cluster):
    config = cfg.load(live_cluster)
    leader, follower, answer = wait_until("a follower that names the leader", lambda: _redirected(config))
    assert (answer["id"], answer["status"], answer["node"]) == (5, "not_leader", follower.id)
    assert answer["leader_addr"] == config.node(leader).client

    user = unique("r")
    with SyncClient(config, prefer=follower.id, timeout=10) as client:
        assert client.call("create_account", password="pw", user=user).status == "ok"
        # Redirected away from the follower it preferred, unless an election made that one leader.
        assert client.leader in config.ids
        assert client.leader != follower.id or (node_status(follower.client) or {}).get("role") == "leader"


def to_leader(config: cfg.ClusterConfig, request: dict[str, Any]) -> dict[str, Any]:
    """The answer of whichever node leads when the request arrives (a not_leader changes nothing)."""

    def attempt() -> dict[str, Any] | None:
        for node in config.nodes:
            try:
                answer = raw_request(node.client, request, timeout=2.0)
            except OSError:
                continue
            if answer["status"] != "not_leader":
                return answer
        return None

    return wait_until("a leader to answer", attempt, timeout=20)


def test_live_retry_with_the_same_seq_returns_the_same_answer(live_cluster):
    """Whichever node leads at each attempt: the session table is replicated with the log."""
    config = cfg.load(live_cluster)
    alice, bob = unique("a"), unique("b")
    with SyncClient(config, timeout=10) as client:
        for user in (alice, bob):
            assert client.call("create_account", password="pw", user=user).status == "ok"
    session = uuid.uuid4().hex
    send = {
        "op": {"op": "send_message", "password": "pw", "sender": alice, "to": bob, "text": "once"},
        "client": session,
        "ack": 0,
    }

    first = to_leader(config, {**send, "id": 1, "seq": 1})
    again = to_leader(config, {**send, "id": 2, "seq": 1})
    assert (first["status"], first["value"]) == ("ok", 1)
    assert (again["id"], again["status"], again["value"]) == (2, "ok", 1)
    other = to_leader(config, {**send, "id": 3, "seq": 2, "ack": 1})
    assert (other["status"], other["value"]) == ("ok", 2)
    stale = to_leader(config, {**send, "id": 4, "seq": 1, "ack": 1})
    assert stale["status"] == "stale_request"  # acknowledged, forgotten, and not applied again

    with SyncClient(config, timeout=10) as client:
        inbox = client.call("fetch_messages", password="pw", user=bob, from_index=1)
    assert inbox.value == [[alice, "once"], [alice, "once"]]  # seq 1 and seq 2, nothing more


def test_live_bad_request_is_definite(live_cluster):
    config = cfg.load(live_cluster)
    with SyncClient(config, timeout=10) as client, pytest.raises(OperationError) as info:
        client.call("create_account", password="pw", user=42)
    assert (info.value.status, info.value.definite) == ("bad_request", True)
