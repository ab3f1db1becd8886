"""The netns network on the real kernel.

Connectivity is probed with real TCP connections between namespaces, because what matters
is what the kernel delivers, not which rules we think we installed. Then a real raftchat
cluster must move its leader to the majority side of a cut, and whatever a run creates
must be gone after its teardown, or after `cleanup` when the run crashed.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import netns_missing

from nemesis import cleanup
from nemesis.net import netns
from nemesis.net.netns import LinkFaultUnavailable, NetnsError, NetnsNetwork
from raftchat import config as cfg
from raftchat.localcluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
NODES = [f"n{i}" for i in range(1, 6)]

pytestmark = pytest.mark.cluster  # every test here starts node or proxy processes

# Echo on every given port of one address: peers and clients alike.
SERVER = """
import socket, sys, threading
def echo(conn):
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)
def serve(sock):
    while True:
        threading.Thread(target=echo, args=(sock.accept()[0],), daemon=True).start()
socks = [socket.create_server((sys.argv[1], int(port))) for port in sys.argv[2:]]
for sock in socks:
    threading.Thread(target=serve, args=(sock,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# Try every address at once; print {address: connected within 0.5 s}.
PROBE = """
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def reach(addr):
    host, port = addr.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
        return True
    except OSError:
        return False
with ThreadPoolExecutor(len(sys.argv) - 1) as pool:
    print(json.dumps(dict(zip(sys.argv[1:], pool.map(reach, sys.argv[1:])))))
"""

# One long-lived connection: for each timeout read on stdin, send a byte and report the echo.
CONVERSE = """
import socket, sys
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
print("connected", flush=True)
for line in sys.stdin:
    sock.settimeout(float(line))
    sock.sendall(b"x")
    try:
        print("ok" if sock.recv(1) else "closed", flush=True)
    except TimeoutError:
        print("timeout", flush=True)
"""


@pytest.fixture(scope="module", autouse=True)
def _need_netns() -> None:
    if reason := netns_missing():
        pytest.skip(reason)


def tag_remains(tag: str) -> list[str]:
    """Anything on the machine that still carries the tag, looked up independently of the module."""
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    found = [line for line in namespaces.splitlines() if line.startswith(f"rc-{tag}-")]
    found += [line for line in links.splitlines() if f"rcb{tag}" in line or f"rcv{tag}-" in line]
    return found + [str(p) for p in netns.STATE_DIR.glob(f"{tag}.json")]


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture(scope="module")
def five() -> Iterator[tuple[NetnsNetwork, cfg.ClusterConfig]]:
    """Five namespaces, each with an echo server on its node's peer and client ports (no raftchat)."""
    net = NetnsNetwork()
    servers = []
    try:
        config = net.setup(cfg.local_cluster(5, 7000))
        for node in config.nodes:
            host, peer_port = node.peer_hostport
            cmd = [*net.command_prefix(node.id), sys.executable, "-c", SERVER, host]
            proc = subprocess.Popen(
                [*cmd, str(peer_port), str(node.client_hostport[1])], stdout=subprocess.PIPE, text=True
            )
            servers.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield net, config
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
        net.teardown()
    assert tag_remains(net.tag) == []


@pytest.fixture
def net5(five) -> Iterator[tuple[NetnsNetwork, cfg.ClusterConfig]]:
    """The five namespaces, healed and without link faults again after each test."""
    yield five
    five[0].heal()
    five[0].clear_slow()


def reachable(net: NetnsNetwork, config: cfg.ClusterConfig) -> set[tuple[str, str]]:
    """(src, dst) for each node whose peer port src can connect to, probed from src's namespace."""
    procs = {}
    for node in config.nodes:
        targets = [n.peer for n in config.nodes if n.id != node.id]
        cmd = [*net.command_prefix(node.id), sys.executable, "-c", PROBE, *targets]
        procs[node.id] = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    owner = {n.peer: n.id for n in config.nodes}
    found = set()
    for src, proc in procs.items():
        out, _ = proc.communicate(timeout=15)
        found |= {(src, owner[addr]) for addr, ok in json.loads(out).items() if ok}
    return found


def allowed(pairs: set[frozenset[str]]) -> set[tuple[str, str]]:
    return {(a, b) for a in NODES for b in NODES if a != b and frozenset((a, b)) not in pairs}


def root_reaches_clients(config: cfg.ClusterConfig) -> bool:
    for node in config.nodes:
        try:
            socket.create_connection(node.client_hostport, timeout=1.0).close()
        except OSError:
            return False
    return True


def cross(side_a: list[str], side_b: list[str]) -> set[frozenset[str]]:
    return {frozenset((a, b)) for a in side_a for b in side_b}


_shuffled = random.Random(20240611).sample(NODES, len(NODES))
SHAPES = {
    "random-halves": cross(_shuffled[:2], _shuffled[2:]),
    "isolate-n3": cross(["n3"], ["n1", "n2", "n4", "n5"]),
    # Each node keeps its two ring neighbours, a majority with itself; the majorities all differ.
    "majorities-ring": {
        frozenset((NODES[i], NODES[j])) for i in range(5) for j in range(i + 1, 5) if j - i in (2, 3)
    },
    "bridge-n3": cross(["n1", "n2"], ["n4", "n5"]),
    "everyone-alone": cross(NODES, NODES) - {frozenset((n,)) for n in NODES},
}


def test_setup_gives_each_node_its_own_address_and_no_route_out(net5) -> None:
    net, config = net5
    assert net.subnet is not None and str(net.subnet).startswith("10.213.")
    assert len({n.peer_hostport[0] for n in config.nodes}) == 5
    for node in config.nodes:
        assert node.peer_hostport[0] == node.client_hostport[0] == net.ips[node.id]
        ns = net.namespace(node.id)
        routes = json.loads(
            subprocess.run(["ip", "-n", ns, "-j", "route"], capture_output=True, text=True).stdout
        )
        assert [r["dst"] for r in routes] == [str(net.subnet)]  # no default route
        forwarding = subprocess.run(
            netns.ns_exec(ns, "cat", "/proc/sys/net/ipv4/ip_forward"), capture_output=True, text=True
        )
        assert forwarding.stdout.strip() == "0"
    # Outside addresses fail at once, in the namespace's own routing: no packet is ever sent.
    probe = "import socket; socket.create_connection(('198.51.100.1', 9), timeout=2)"
    out = subprocess.run(
        [*net.command_prefix("n1"), sys.executable, "-c", probe], capture_output=True, text=True
    )
    assert "Network is unreachable" in out.stderr, out.stderr


def test_without_a_cut_all_reach_all(net5) -> None:
    net, config = net5
    assert reachable(net, config) == allowed(set())
    assert root_reaches_clients(config)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_cut_blocks_exactly_the_pairs_and_heal_restores(net5, shape: str) -> None:
    net, config = net5
    net.cut(SHAPES[shape])
    assert reachable(net, config) == allowed(SHAPES[shape])
    assert root_reaches_clients(config), "client traffic from the root namespace must never be cut"
    net.heal()
    assert reachable(net, config) == allowed(set())


def test_a_new_cut_replaces_the_previous_one(net5) -> None:
    net, config = net5
    net.cut(SHAPES["isolate-n3"])
    net.cut(SHAPES["bridge-n3"])
    assert reachable(net, config) == allowed(SHAPES["bridge-n3"])


def test_cut_rejects_unknown_nodes_and_bad_pairs(net5) -> None:
    net, _ = net5
    with pytest.raises(ValueError, match="unknown node"):
        net.cut({frozenset(("n1", "n9"))})
    with pytest.raises(ValueError, match="two distinct nodes"):
        net.cut({frozenset(("n1",))})


def test_an_established_connection_goes_silent_during_a_cut(net5) -> None:
    net, config = net5
    host, port = config.node("n2").peer_hostport
    proc = subprocess.Popen(
        [*net.command_prefix("n1"), sys.executable, "-c", CONVERSE, host, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def say(timeout: float) -> str:
        proc.stdin.write(f"{timeout}\n")
        proc.stdin.flush()
        return proc.stdout.readline().strip()

    try:
        assert proc.stdout.readline().strip() == "connected"
        assert say(2) == "ok"
        net.cut({frozenset(("n1", "n2"))})
        assert say(0.7) == "timeout"  # no reset, no error: silence, as in a real partition
        net.heal()
        assert say(8) == "ok"  # TCP retransmits what the cut swallowed
    finally:
        proc.kill()
        proc.wait()


def test_loss_of_one_drops_every_packet_of_the_slowed_node(net5) -> None:
    net, config = net5
    net.slow(["n1"], loss=1.0)
    assert reachable(net, config) == allowed(cross(["n1"], NODES[1:]))
    assert root_reaches_clients(config)
    net.clear_slow()
    assert reachable(net, config) == allowed(set())


def test_slow_settings_are_per_node_and_a_link_takes_the_worse_end(net5) -> None:
    net, config = net5
    net.slow(["n1"], loss=1.0)
    net.slow(["n2"], loss=1.0)
    assert reachable(net, config) == allowed(cross(["n1", "n2"], NODES))
    net.slow(["n1"], loss=0.0)  # n1's own setting goes; its link to n2 keeps n2's
    assert reachable(net, config) == allowed(cross(["n2"], NODES))


def test_delay_needs_netem(net5) -> None:
    net, config = net5
    if NetnsNetwork.netem_available():
        net.slow(["n1"], delay_ms=300)
        host, port = config.node("n2").peer_hostport
        timed = (
            "import socket, sys, time; t = time.monotonic(); "
            f"socket.create_connection(({host!r}, {port}), timeout=5).close(); print(time.monotonic() - t)"
        )
        out = subprocess.run([*net.command_prefix("n1"), sys.executable, "-c", timed], capture_output=True)
        assert float(out.stdout) >= 0.25
        return
    with pytest.raises(LinkFaultUnavailable, match="netem"):
        net.slow(["n1"], delay_ms=50, loss=1.0)
    assert isinstance(LinkFaultUnavailable(), NotImplementedError)
    assert reachable(net, config) == allowed(set()), "a refused slow must change nothing"


def test_delay_plumbing_classifies_only_node_traffic(net5) -> None:
    """netem is missing here, so the htb + u32 tree that would carry it is checked with a plain fifo."""
    net, config = net5
    ip = net.ips
    net._set_delays({"n1": {"pfifo limit 100": [ip["n2"], ip["n3"]], "pfifo limit 200": [ip["n4"]]}})
    ns = net.namespace("n1")
    qdiscs = subprocess.run(
        ["ip", "netns", "exec", ns, "tc", "qdisc", "show", "dev", "eth0"], capture_output=True
    )
    assert b"htb 1:" in qdiscs.stdout and qdiscs.stdout.count(b"pfifo") == 2, qdiscs.stdout
    filters = subprocess.run(
        ["ip", "netns", "exec", ns, "tc", "filter", "show", "dev", "eth0"], capture_output=True
    )
    assert filters.stdout.count(b"flowid 1:2") == 2 and filters.stdout.count(b"flowid 1:3") == 1
    assert reachable(net, config) == allowed(set())
    net.clear_slow()
    qdiscs = subprocess.run(
        ["ip", "netns", "exec", ns, "tc", "qdisc", "show", "dev", "eth0"], capture_output=True
    )
    assert b"htb" not in qdiscs.stdout


def test_a_real_cluster_elects_a_leader_on_the_majority_side(tmp_path) -> None:
    net = NetnsNetwork(tag=f"rc{random.randrange(100_000):05d}")  # the harness's tag format
    try:
        config = net.setup(cfg.local_cluster(3, 7400))
        with LocalCluster(tmp_path, 3, config=config, command_prefix=net.command_prefix) as cluster:
            cluster.start_all()
            old = cluster.wait_for_leader(timeout=15)
            majority = [n for n in cluster.ids if n != old]
            net.cut(cross([old], majority))
            assert wait_until(lambda: cluster.leader() in majority, 10), cluster.statuses()
            net.heal()

            def agreed() -> bool:
                statuses = list(cluster.statuses().values())
                leaders = {s["leader"] if s else None for s in statuses}
                return len(leaders) == 1 and None not in leaders

            assert wait_until(agreed, 10), cluster.statuses()
    finally:
        net.teardown()
    assert tag_remains(net.tag) == []


def test_teardown_is_idempotent_and_works_on_a_network_never_set_up() -> None:
    NetnsNetwork().teardown()
    net = NetnsNetwork()
    net.setup(cfg.local_cluster(2, 7600))
    assert tag_remains(net.tag)
    net.teardown()
    net.teardown()
    assert tag_remains(net.tag) == []


def test_a_setup_that_fails_halfway_removes_what_it_built(monkeypatch) -> None:
    net = NetnsNetwork()
    real_run = netns.run

    def failing(cmd: list[str], **kwargs):
        if cmd[:3] == ["ip", "netns", "add"] and cmd[3] == net.namespace("n3"):
            raise NetnsError("injected failure")
        return real_run(cmd, **kwargs)

    monkeypatch.setattr(netns, "run", failing)
    with pytest.raises(NetnsError, match="injected"):
        net.setup(cfg.local_cluster(4, 7700))
    monkeypatch.undo()
    assert tag_remains(net.tag) == []


CRASHER = """
import subprocess, sys, time
from nemesis.net.netns import NetnsNetwork
from raftchat import config as cfg
net = NetnsNetwork()
net.setup(cfg.local_cluster(3, 7800))
# A node that outlives us inside its namespace, and a proxy-like process marked with our tag.
node = subprocess.Popen(net.command_prefix("n1") + ["sleep", "300"], start_new_session=True)
proxy = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(300)", "nemesis.proxyproc", "--tag", "rc-" + net.tag],
    start_new_session=True,
)
def running(pid, what):
    try:
        return what in open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return False
deadline = time.monotonic() + 30
while not (running(node.pid, b"sleep") and running(proxy.pid, b"nemesis.proxyproc")):
    assert time.monotonic() < deadline, "the leftovers did not start"
    time.sleep(0.01)
print(net.tag, flush=True)
time.sleep(300)
"""


def test_cleanup_after_a_crashed_run_removes_everything() -> None:
    proc = subprocess.Popen([sys.executable, "-c", CRASHER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        tag = proc.stdout.readline().strip()
        assert tag, "the crashing run did not set up"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    try:
        before = cleanup.find_leftovers(tag)
        kinds = {item.split()[0] for item in before}
        assert kinds == {"namespace", "bridge", "veth", "process", "state"}, before
        assert any("sleep 300" in item and f"rc-{tag}-n1" in item for item in before)
        assert any("nemesis.proxyproc" in item for item in before)
        assert set(before) <= set(cleanup.find_leftovers()), "a dead run's leftovers are everyone's leftovers"
    finally:
        removed = cleanup.cleanup(tag)
    assert sorted(removed) == sorted(before)
    assert tag_remains(tag) == [] and cleanup.find_leftovers(tag) == []
    assert cleanup.cleanup(tag) == []


def test_cleanup_of_a_run_whose_owner_lives_needs_its_tag() -> None:
    net = NetnsNetwork()
    net.setup(cfg.local_cluster(2, 7900))
    tag = net.tag
    del net  # as if this run had lost track of it; its owner (this process) still runs
    assert not any(tag in item for item in cleanup.find_leftovers())
    listed = subprocess.run(
        [sys.executable, "-m", "nemesis.cleanup", "--tag", tag, "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert f"namespace rc-{tag}-n1" in listed.stdout and tag_remains(tag)
    removed = subprocess.run(
        [sys.executable, "-m", "nemesis.cleanup", "--tag", tag], cwd=ROOT, capture_output=True, text=True
    )
    assert removed.returncode == 0 and f"bridge rcb{tag}" in removed.stdout
    assert tag_remains(tag) == []
