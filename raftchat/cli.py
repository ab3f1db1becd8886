"""The `raftchat` command: run a node, a local cluster, or a client."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time

from raftchat import config as cfg


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raftchat", description="A chat service replicated with Raft.")
    sub = parser.add_subparsers(dest="command", required=True)

    node = sub.add_parser("node", help="run one node in the foreground")
    node.add_argument("--id", required=True, help="this node's id in the cluster file")
    node.add_argument("--cluster", required=True, help="cluster.yaml listing every node's addresses")
    node.add_argument("--data-dir", required=True, help="where this node keeps its log and snapshots")
    node.add_argument("--state-machine", choices=["chat", "kv"], default="chat")
    node.add_argument(
        "--bug", action="append", default=[], metavar="NAME", help="enable a deliberate bug (self-test)"
    )
    node.add_argument("--seed", type=int, help="seed for election timeouts (default: random)")
    node.add_argument(
        "--failpoints",
        action="store_true",
        help="let a test harness arm crash points over the client port (testing only)",
    )

    cluster = sub.add_parser("cluster", help="run a local cluster on loopback in the foreground")
    cluster.add_argument("--nodes", type=int, default=5)
    cluster.add_argument("--data-dir", required=True, help="holds cluster.yaml and one folder per node")
    cluster.add_argument("--state-machine", choices=["chat", "kv"], default="chat")
    cluster.add_argument("--bug", action="append", default=[], metavar="NAME")
    cluster.add_argument(
        "--election-timeout-ms", type=int, help="for a new cluster (default 150: from [150, 300))"
    )
    cluster.add_argument("--heartbeat-ms", type=int, help="for a new cluster (default 50)")

    client = sub.add_parser("client", help="talk to a cluster (interactive, or one command with -c)")
    client.add_argument("--cluster", required=True, help="the cluster's cluster.yaml")
    client.add_argument(
        "-c", "--command", dest="one_command", help='run one command and exit, e.g. "send alice bob hi"'
    )
    client.add_argument(
        "--password-file",
        metavar="FILE",
        help="with -c: the account's password is this file's first line (or set RAFTCHAT_PASSWORD)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "node":
        return _run_node(args)
    if args.command == "cluster":
        return _run_cluster(args)
    from raftchat import shell

    return shell.run(args.cluster, args.one_command, password_file=args.password_file)


def _run_node(args: argparse.Namespace) -> int:
    from raftchat import allocator, memtrace
    from raftchat.bugs import ALL_BUGS
    from raftchat.node import Node, serve
    from raftchat.storage import StorageError

    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {args.id} %(levelname)s %(message)s", stream=sys.stderr
    )
    bugs = frozenset(args.bug)
    if bugs - ALL_BUGS:
        print(
            f"raftchat node: unknown --bug {sorted(bugs - ALL_BUGS)}; known: {sorted(ALL_BUGS)}",
            file=sys.stderr,
        )
        return 2
    allocator.tune()  # before the node allocates: see raftchat.allocator
    try:
        trace_every = memtrace.interval_from_env()
    except ValueError as exc:
        print(f"raftchat node: {exc}", file=sys.stderr)
        return 2
    try:
        config = cfg.load(args.cluster)
        node = Node(
            config,
            args.id,
            args.data_dir,
            args.state_machine,
            bugs,
            seed=args.seed,
            failpoints=args.failpoints,
            trace_every=trace_every,
        )
    except (cfg.ConfigError, StorageError) as exc:
        print(f"raftchat node: {exc}", file=sys.stderr)
        return 2
    if bugs:
        logging.getLogger("raftchat").warning(
            "%s: running with deliberate bugs: %s", args.id, ", ".join(sorted(bugs))
        )
    try:
        serve(node)
    except OSError as exc:
        print(f"raftchat node {args.id}: {exc}", file=sys.stderr)
        return 1
    if node.failure is not None:
        print(f"raftchat node {args.id}: stopped: {node.failure}", file=sys.stderr)
        return 1
    return 0


def _run_cluster(args: argparse.Namespace) -> int:
    from raftchat.localcluster import LocalCluster

    if args.nodes < 1:
        print("raftchat cluster: --nodes must be at least 1", file=sys.stderr)
        return 2
    try:
        cluster = LocalCluster(args.data_dir, args.nodes, args.state_machine, tuple(args.bug))
        tuning = {"election_timeout_ms": args.election_timeout_ms, "heartbeat_ms": args.heartbeat_ms}
        tuning = {key: value for key, value in tuning.items() if value is not None}
        if tuning:
            cluster.retune(**tuning)
    except cfg.ConfigError as exc:
        print(f"raftchat cluster: {exc}", file=sys.stderr)
        return 2
    stop = False

    def on_signal(signum, frame) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    cluster.start_all()
    try:
        print(f"cluster file: {cluster.config_path}", flush=True)
        for node in cluster.config.nodes:
            print(f"  {node.id}  clients: {node.client}  log: {cluster.log_path(node.id)}", flush=True)
        deadline = time.monotonic() + 15
        leader = None
        while not stop and leader is None and time.monotonic() < deadline:
            leader = cluster.leader()
            if leader is None:
                time.sleep(0.05)
        if leader:
            print(f"leader: {leader}", flush=True)
        print(f"try: raftchat client --cluster {cluster.config_path}", flush=True)
        print("Ctrl-C stops every node.", flush=True)
        reported: set[str] = set()
        while not stop:
            for node_id, proc in cluster.procs.items():
                if proc.poll() is not None and node_id not in reported:
                    reported.add(node_id)
                    print(
                        f"node {node_id} exited with code {proc.returncode}; see {cluster.log_path(node_id)}",
                        file=sys.stderr,
                        flush=True,
                    )
            if len(reported) == len(cluster.procs):
                print("every node has exited", file=sys.stderr)
                return 1
            time.sleep(0.2)
    finally:
        cluster.stop_all()
    print("cluster stopped", flush=True)
    return 0
