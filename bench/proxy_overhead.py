"""What the TCP proxies of ``--net proxy`` cost a round trip, direct vs proxied.

Starts five loopback echo servers as the nodes' peer addresses, routes every pair through
the real proxy process (``nemesis.net.proxy.ProxyNetwork``), and times 64-byte round
trips on one connection each way. The target is an overhead under 2 ms at the median (a
heartbeat interval is 50 ms); the figure is printed, not asserted, because a loaded
machine moves it.

    python -m bench.proxy_overhead [--trips 1000]
"""

from __future__ import annotations

import argparse
import socket
import socketserver
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from nemesis.net.proxy import ProxyNetwork
from raftchat.config import ClusterConfig, NodeAddr

IDS = ["n1", "n2", "n3", "n4", "n5"]
TARGET_US = 2000


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True


def round_trip(sock: socket.socket, payload: bytes = b"x" * 64) -> float:
    start = time.perf_counter()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the echo connection closed")
        got += chunk
    return time.perf_counter() - start


def connection(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def percentiles(sock: socket.socket, trips: int) -> tuple[float, float]:
    for _ in range(50):
        round_trip(sock)
    times = sorted(round_trip(sock) for _ in range(trips))
    return statistics.median(times) * 1e6, times[int(0.99 * (len(times) - 1))] * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trips", type=int, default=1000, help="timed round trips per connection")
    args = parser.parse_args()
    servers = [_EchoServer(("127.0.0.1", 0), _Echo) for _ in IDS]
    for server in servers:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    # Client addresses are never proxied; the servers' own ports stand in for them.
    nodes = [
        NodeAddr(node, f"127.0.0.1:{srv.server_address[1]}", f"127.0.0.1:{srv.server_address[1]}")
        for node, srv in zip(IDS, servers, strict=True)
    ]
    config = ClusterConfig(cluster_id=uuid.uuid4().hex, nodes=nodes)
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as work:
        network = ProxyNetwork(workdir=Path(work))
        try:
            routed = network.setup(config)
            direct = connection(config.node("n2").peer_hostport)
            proxied = connection(routed.peer_address("n1", "n2"))
            direct_p50, direct_p99 = percentiles(direct, args.trips)
            proxied_p50, proxied_p99 = percentiles(proxied, args.trips)
            direct.close()
            proxied.close()
        finally:
            network.teardown()
            for server in servers:
                server.shutdown()
                server.server_close()
    overhead = proxied_p50 - direct_p50
    print(f"64-byte round trip over {args.trips} trips (microseconds)")
    print(f"  direct   p50 {direct_p50:8.0f}  p99 {direct_p99:8.0f}")
    print(f"  proxied  p50 {proxied_p50:8.0f}  p99 {proxied_p99:8.0f}")
    verdict = "within" if overhead < TARGET_US else "OVER"
    print(f"  overhead p50 {overhead:8.0f}  ({verdict} the {TARGET_US} us target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
