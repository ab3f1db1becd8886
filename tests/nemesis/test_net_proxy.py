"""The TCP-proxy network: cuts and link faults checked by real TCP traffic, then on a real cluster.

Five echo servers stand in for the nodes' peer ports, so "can n1 reach n2" is answered by
sending bytes through n1's route to n2 and waiting for them to come back.
"""

from __future__ import annotations

import random
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from nemesis.net.proxy import ProxyNetwork, leftover_pids
from raftchat.config import ClusterConfig, NodeAddr
from raftchat.localcluster import LocalCluster

pytestmark = pytest.mark.cluster  # every test here starts node or proxy processes

T = TypeVar("T")
IDS = ["n1", "n2", "n3", "n4", "n5"]
ALL_PAIRS = {(a, b) for a in IDS for b in IDS if a != b}


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while data := sock.recv(65536):
                sock.sendall(data)
        except OSError:
            pass


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo_config() -> Iterator[ClusterConfig]:
    """Five loopback echo servers as the nodes' peer addresses (clients are never proxied)."""
    servers = [_EchoServer(("127.0.0.1", 0), _Echo) for _ in IDS]
    for server in servers:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    clients = [socket.socket() for _ in IDS]  # bound, never listening: the ports stay ours
    for sock in clients:
        sock.bind(("127.0.0.1", 0))
    nodes = [
        NodeAddr(node, f"127.0.0.1:{srv.server_address[1]}", f"127.0.0.1:{sock.getsockname()[1]}")
        for node, srv, sock in zip(IDS, servers, clients, strict=True)
    ]
    yield ClusterConfig(cluster_id=uuid.uuid4().hex, nodes=nodes)
    for server in servers:
        server.shutdown()
        server.server_close()
    for sock in clients:
        sock.close()


@pytest.fixture
def net(tmp_path, echo_config) -> Iterator[ProxyNetwork]:
    network = ProxyNetwork(workdir=tmp_path)
    network.setup(echo_config)
    try:
        yield network
    finally:
        network.teardown()
        network.teardown()  # idempotent
    assert not leftover_pids(network.tag)


def reachable(net: ProxyNetwork, timeout: float = 0.4) -> set[tuple[str, str]]:
    """Every ordered pair whose probe gets its bytes back, probed in parallel."""
    pairs = sorted(ALL_PAIRS)
    with ThreadPoolExecutor(len(pairs)) as pool:
        ok = list(pool.map(lambda p: net.probe(p[0], p[1], timeout), pairs))
    return {pair for pair, good in zip(pairs, ok, strict=True) if good}


def expected(cut: set[frozenset[str]]) -> set[tuple[str, str]]:
    return {(a, b) for a, b in ALL_PAIRS if frozenset((a, b)) not in cut}


def halves(left: list[str]) -> set[frozenset[str]]:
    return {frozenset((a, b)) for a in left for b in IDS if b not in left}


def connect(net: ProxyNetwork, src: str, dst: str) -> socket.socket:
    assert net.config is not None
    sock = socket.create_connection(net.config.peer_address(src, dst), timeout=2.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def round_trip(sock: socket.socket, payload: bytes = b"x" * 64) -> float:
    """Seconds for payload to come back over an echo connection."""
    start = time.perf_counter()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        got += chunk
    assert got == payload
    return time.perf_counter() - start


def test_setup_routes_every_pair_through_the_proxy(net: ProxyNetwork, echo_config: ClusterConfig) -> None:
    assert net.name == "proxy" and net.command_prefix("n1") == []
    assert net.config is not None
    assert net.config.nodes == echo_config.nodes  # clients and real peer addresses unchanged
    ports = set()
    for src, dst in ALL_PAIRS:
        host, port = net.config.peer_address(src, dst)
        assert host == "127.0.0.1" and port != echo_config.node(dst).peer_hostport[1]
        ports.add(port)
    assert len(ports) == len(ALL_PAIRS)  # one port per ordered pair
    assert leftover_pids(net.tag) == [net.pid]


def test_cuts_decide_who_reaches_whom(net: ProxyNetwork) -> None:
    assert reachable(net) == ALL_PAIRS

    rng = random.Random(7)
    left = rng.sample(IDS, 2)
    cut = halves(left)
    net.cut(cut)
    assert reachable(net) == expected(cut)

    isolate = halves(["n3"])
    net.cut(isolate)  # replaces the previous cut
    assert reachable(net) == expected(isolate)

    # majorities ring: n_i talks to its ring neighbours only, so each sees a different majority of 3
    ring = {frozenset((IDS[i], IDS[(i + 2) % 5])) for i in range(5)}
    net.cut(ring)
    got = reachable(net)
    assert got == expected(ring)
    views = {node: frozenset({node} | {b for a, b in got if a == node}) for node in IDS}
    assert all(len(view) == 3 for view in views.values()) and len(set(views.values())) == 5

    net.heal()
    assert reachable(net) == ALL_PAIRS


def test_cut_black_holes_established_connections_and_heal_resets_them(net: ProxyNetwork) -> None:
    cut_conn, other_conn = connect(net, "n1", "n2"), connect(net, "n1", "n3")
    round_trip(cut_conn)
    round_trip(other_conn)

    net.cut({frozenset(("n1", "n2"))})
    cut_conn.sendall(b"lost")
    cut_conn.settimeout(0.5)
    with pytest.raises(TimeoutError):
        cut_conn.recv(100)  # silence, not EOF or a reset: like a real partition
    round_trip(other_conn)  # other links are untouched

    net.heal()
    cut_conn.settimeout(2.0)
    try:
        assert cut_conn.recv(100) == b""
    except ConnectionResetError:
        pass  # the black-holed connection is reset, so the node reconnects with a clean stream
    round_trip(other_conn)
    with connect(net, "n1", "n2") as fresh:
        round_trip(fresh)
    cut_conn.close()
    other_conn.close()


def test_cut_drops_data_in_flight(net: ProxyNetwork) -> None:
    with connect(net, "n4", "n5") as sock:
        round_trip(sock)
        net.slow(["n5"], delay_ms=300)
        sock.sendall(b"in flight")
        net.cut({frozenset(("n4", "n5"))})  # while the chunk is held back by the delay
        net.clear_slow()
        sock.settimeout(0.8)
        with pytest.raises(TimeoutError):
            sock.recv(100)
    link = next(s for s in net.stats() if (s["src"], s["dst"]) == ("n4", "n5"))
    assert link["cut"] and link["dropped"] >= len(b"in flight")
    net.heal()
    assert net.probe("n4", "n5") and net.probe("n5", "n4")


def fastest(sock: socket.socket, tries: int = 5) -> float:
    """The best of a few round trips: what the link costs, without the machine's hiccups."""
    return min(round_trip(sock) for _ in range(tries))


def test_slow_adds_delay_and_loss_costs_a_retransmission(net: ProxyNetwork) -> None:
    """Delays show as lower bounds on round trips; an unslowed link stays below the added delay.

    (How fast the proxy is belongs to bench/proxy_overhead.py.)"""
    slow_conn, fast_conn = connect(net, "n1", "n2"), connect(net, "n1", "n3")
    net.slow(["n2"], delay_ms=100)
    assert round_trip(slow_conn) >= 0.19  # one-way delay, paid in each direction
    assert fastest(fast_conn) < 0.19  # n1-n3 does not touch n2
    with connect(net, "n2", "n4") as other:  # new connections from n2 are slowed too
        assert round_trip(other) >= 0.19

    net.slow(["n2"], delay_ms=0, loss=1.0)  # replaces n2's setting: every chunk is "retransmitted"
    assert round_trip(slow_conn) >= 0.39

    net.slow(["n2"], delay_ms=50, jitter_ms=20)
    rtts = [round_trip(slow_conn) for _ in range(3)]
    assert all(r >= 0.06 for r in rtts), rtts

    net.clear_slow()
    assert fastest(slow_conn) < 0.06, "the delay must be gone"
    slow_conn.close()
    fast_conn.close()


def test_bad_requests_are_refused(net: ProxyNetwork) -> None:
    with pytest.raises(ValueError):
        net.cut({frozenset(("n1", "n9"))})
    with pytest.raises(ValueError):
        net.cut({frozenset(("n1",))})
    with pytest.raises(ValueError):
        net.slow(["n1"], loss=2.0)
    with pytest.raises(ValueError):
        net.slow(["n1", "n9"], delay_ms=10)
    assert reachable(net) == ALL_PAIRS  # nothing was applied


def test_teardown_ends_the_proxy_process(tmp_path, echo_config: ClusterConfig) -> None:
    network = ProxyNetwork(tag="cafe01", workdir=tmp_path)
    network.setup(echo_config)
    pid = network.pid
    assert leftover_pids("cafe01") == [pid]
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert b"rc-cafe01" in f.read().split(b"\0")
    network.teardown()
    network.teardown()
    assert not leftover_pids("cafe01")
    with pytest.raises(RuntimeError):
        network.cut(set())
    with pytest.raises(ValueError):
        ProxyNetwork(tag="no-dashes")


def _wait(predicate: Callable[[], T], timeout: float, what: str, show: Callable[[], object] = str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} {show()}")


def test_real_cluster_elects_a_new_leader_when_the_leader_is_cut_off(tmp_path) -> None:
    net = ProxyNetwork(workdir=tmp_path)
    cluster = None
    try:
        base = LocalCluster(tmp_path / "cluster", 3).config  # the nodes' own addresses, routed below
        cluster = LocalCluster(tmp_path / "cluster", 3, config=net.setup(base))
        cluster.start_all()
        old = cluster.wait_for_leader(timeout=15)
        old_term = cluster.statuses()[old]["term"]

        def leader_traffic_proxied() -> bool:  # heartbeats and their answers go through the proxy
            return all(s["forwarded"] > 0 for s in net.stats() if old in (s["src"], s["dst"]))

        _wait(leader_traffic_proxied, 5, "the leader's traffic through the proxy", net.stats)

        others = [n for n in cluster.ids if n != old]
        net.cut({frozenset((old, other)) for other in others})

        def new_leader() -> str | None:
            statuses = cluster.statuses()
            leader = cluster.leader()
            if leader in others and statuses[leader]["term"] > old_term:
                return leader
            return None

        new = _wait(new_leader, 10, "a new leader among the majority")
        assert new != old

        net.heal()

        def settled() -> bool:
            statuses = cluster.statuses()
            leaders = [n for n, s in statuses.items() if s and s["role"] == "leader"]
            return len(leaders) == 1 and all(s and s["leader"] == leaders[0] for s in statuses.values())

        _wait(settled, 10, "one leader that every node follows after the heal")
        assert cluster.statuses()[old]["role"] == "follower"
    finally:
        if cluster is not None:
            cluster.stop_all()
        net.teardown()
    assert not leftover_pids(net.tag)
