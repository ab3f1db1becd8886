"""A live node survives any bytes on either port, and keeps answering correctly.

Hypothesis throws malformed, truncated, oversized and well-formed-but-wrong frames at the
client and peer ports of a running 3-node cluster; after each, every node must still answer
its status, and at the end a write and a read must give the right answers and no node may
have logged a traceback. ``RAFTCHAT_FUZZ_EXAMPLES`` sets the number of inputs per port (a
few seconds' worth by default; the nightly sets thousands).

Also here: the bounds on connections (a flood from one address is refused past the cap,
and the node serves the rest) and on unread answers.
"""

from __future__ import annotations

import os
import socket
import struct
import time

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftchat import auth, limits
from raftchat.client import SyncClient
from raftchat.localcluster import LocalCluster
from raftchat.protocol import MAX_FRAME, frame, pack, recv_frame_sync

pytestmark = pytest.mark.cluster

EXAMPLES = int(os.environ.get("RAFTCHAT_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="RAFTCHAT_FUZZ_EXAMPLES" not in os.environ,  # the suite's inputs are the same every run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

OPS = ["create_account", "check_account", "list_accounts", "delete_account", "send_message", "fetch_messages"]
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.binary(max_size=40),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_ops = st.fixed_dictionaries(
    {"op": st.sampled_from(OPS) | st.text(max_size=10) | _values},
    optional={
        "user": _values,
        "sender": _values,
        "to": _values,
        "text": _values,
        "password": _values,
        "key": _values,
        "from_index": _values,
        "pattern": _values,
    },
)
_requests = st.fixed_dictionaries(
    {"id": _values},
    optional={
        "op": _ops | _values,
        "client": _values,
        "seq": _values,
        "ack": _values,
        "meta": _values,
        "name": _values,
    },
)


def _frames(payloads: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """A frame of ``payloads``, whole, cut short, or with a lying length header."""
    whole = payloads.map(frame)
    return st.one_of(
        whole,
        st.tuples(whole, st.integers(1, 64)).map(lambda t: t[0][: max(1, len(t[0]) - t[1])]),
        st.tuples(st.integers(0, 2**32 - 1), payloads).map(lambda t: struct.pack(">I", t[0]) + t[1]),
        st.just(struct.pack(">I", MAX_FRAME + 1)),
        st.just(struct.pack(">I", 2**32 - 1) + b"x" * 100),
    )


CLIENT_INPUTS = st.lists(
    st.one_of(
        st.binary(max_size=200),
        _frames(st.binary(max_size=200)),
        _frames(_requests.map(pack)),
        _frames(_values.map(pack)),
    ),
    min_size=1,
    max_size=5,
).map(b"".join)


def _peer_inputs(cluster_id: str) -> st.SearchStrategy[bytes]:
    hello = st.fixed_dictionaries(
        {
            "cluster": st.just(cluster_id) | _values,
            "from": st.sampled_from(["n2", "n3", "n1", "x"]) | _values,
        },
        optional={
            "to": st.just("n1") | _values,
            "nonce": st.binary(min_size=16, max_size=16) | _values,
            "proof": _values,
        },
    )
    raft = st.lists(_values, max_size=10).map(lambda v: msgpack.packb([2, *v], use_bin_type=True))
    return st.lists(
        st.one_of(
            st.binary(max_size=200), _frames(hello.map(pack)), _frames(raft), _frames(_values.map(pack))
        ),
        min_size=1,
        max_size=5,
    ).map(b"".join)


def _throw(address: tuple[str, int], data: bytes) -> None:
    """Send ``data`` on a new connection (see ``_send_and_drain``)."""
    with socket.create_connection(address, timeout=5) as sock:
        _send_and_drain(sock, data)


def _send_and_drain(sock: socket.socket, data: bytes) -> None:
    """Send ``data``, then read whatever comes back until the node hangs up or goes quiet."""
    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2)
        while sock.recv(65536):
            pass
    except (TimeoutError, ConnectionResetError, BrokenPipeError):
        pass


def _all_answer(cluster: LocalCluster) -> None:
    for node_id, status in cluster.statuses().items():
        assert status is not None and cluster.alive(node_id), f"{node_id} stopped answering"


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    cluster = LocalCluster(tmp_path_factory.mktemp("fuzz"), 3)
    try:
        cluster.start_all()
        cluster.wait_for_leader(timeout=15)
        yield cluster
    finally:
        cluster.stop_all()


def _still_correct(cluster: LocalCluster, tag: str) -> None:
    _all_answer(cluster)
    with SyncClient(cluster.config) as client:
        assert client.call("create_account", user=tag, password="p").status == "ok"
        assert client.call("send_message", sender=tag, to=tag, text="still here", password="p").value == 1
        assert client.call("fetch_messages", user=tag, from_index=1, password="p").value == [
            [tag, "still here"]
        ]
    for node_id in cluster.ids:
        text = cluster.log_path(node_id).read_text()
        assert "Traceback" not in text, text[-3000:]


@FUZZ
@given(data=CLIENT_INPUTS)
def test_any_bytes_on_the_client_port(fuzzed, data) -> None:
    _throw(fuzzed.config.nodes[0].client_hostport, data)
    _all_answer(fuzzed)


@FUZZ
@given(data=st.data())
def test_any_bytes_on_the_peer_port(fuzzed, data) -> None:
    before = fuzzed.status("n1")
    _throw(fuzzed.config.nodes[0].peer_hostport, data.draw(_peer_inputs(fuzzed.config.cluster_id)))
    after = fuzzed.status("n1")
    assert after is not None and after["term"] < before["term"] + 10, (before, after)


def _as_member(cluster: LocalCluster, data: bytes) -> None:
    """Pass the hello with the real secret as n2, then send ``data`` to n1's peer port."""
    secret = auth.load_secret(cluster.config.secret_file)
    with socket.create_connection(cluster.config.nodes[0].peer_hostport, timeout=5) as sock:
        nd = os.urandom(auth.NONCE_BYTES)
        sock.sendall(
            frame(pack({"cluster": cluster.config.cluster_id, "from": "n2", "to": "n1", "nonce": nd}))
        )
        challenge = msgpack.unpackb(recv_frame_sync(sock))
        proof = auth.proof(secret, "dialer", cluster.config.cluster_id, "n2", "n1", nd, challenge["nonce"])
        sock.sendall(frame(pack({"proof": proof})))
        _send_and_drain(sock, data)


# Raft messages of every kind with fields of any type; a member's garbage must not reach the core.
_RAFT_GARBAGE = st.lists(
    st.tuples(st.integers(0, 6), st.lists(_values, max_size=9)).map(
        lambda t: frame(msgpack.packb([t[0], *t[1]], use_bin_type=True))
    )
    | _frames(st.binary(max_size=100)),
    min_size=1,
    max_size=4,
).map(b"".join)


@FUZZ
@given(data=_RAFT_GARBAGE)
def test_malformed_raft_messages_from_a_member(fuzzed, data) -> None:
    _as_member(fuzzed, data)
    _all_answer(fuzzed)


def test_the_fuzzed_nodes_still_serve_correct_answers(fuzzed) -> None:
    _still_correct(fuzzed, "afterfuzz")


def test_a_connection_flood_from_one_address_is_bounded(fuzzed) -> None:
    address = fuzzed.config.nodes[0].client_hostport
    socks = []
    try:
        for _ in range(limits.MAX_PER_ADDRESS + 20):
            socks.append(socket.create_connection(address, timeout=5))
        # Past the cap the node closes at once: the newest connections see the end of stream.
        deadline = time.monotonic() + 10
        closed = 0
        for sock in socks[-10:]:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                closed += sock.recv(1) == b""
            except (TimeoutError, ConnectionResetError):
                pass
        assert closed == 10
        # Another address is not starved (127.0.0.2 is loopback too).
        with socket.create_connection(address, timeout=5, source_address=("127.0.0.2", 0)) as other:
            other.sendall(frame(pack({"id": 1, "meta": "status"})))
            assert msgpack.unpackb(recv_frame_sync(other))["status"] == "ok"
    finally:
        for sock in socks:
            sock.close()
    wait = time.monotonic() + 10
    while time.monotonic() < wait and fuzzed.status("n1") is None:
        time.sleep(0.1)
    _still_correct(fuzzed, "afterflood")
    assert "refused" in fuzzed.log_path("n1").read_text()


def test_a_client_that_never_reads_is_cut_off(fuzzed) -> None:
    """Pipelined requests whose answers are never read cost the node a bounded buffer."""
    address = fuzzed.config.nodes[0].client_hostport
    request = frame(pack({"id": 1, "op": {"op": "list_accounts", "pattern": "*"}}))
    status = frame(pack({"id": 2, "meta": "status"}))  # a few KiB of answer each
    with socket.create_connection(address, timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sent = 0
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                sock.sendall((status + request) * 200)
                sent += 400
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        assert time.monotonic() < deadline, f"the node took {sent} requests it could not answer"
    _still_correct(fuzzed, "afterslow")


def test_a_hello_that_never_finishes_is_dropped(fuzzed) -> None:
    with socket.create_connection(
        fuzzed.config.nodes[0].peer_hostport, timeout=auth.HELLO_TIMEOUT + 10
    ) as sock:
        sock.sendall(struct.pack(">I", 100) + b"x" * 10)  # a frame that never completes
        start = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - start < auth.HELLO_TIMEOUT + 5
