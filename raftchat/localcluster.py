"""Run a cluster of node processes on loopback: used by `raftchat cluster` and the harness.

Each node is a real OS process with its data under ``DIR/<id>/`` and its stderr in
``DIR/<id>/node.log``. Children get SIGKILL from the kernel if this process dies, so
a crashed parent never leaves nodes behind.
"""

from __future__ import annotations

import dataclasses
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from raftchat import auth, protocol, tls
from raftchat import config as cfg
from raftchat.lifetime import NodeProcesses


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports that are free right now (held open together so they are distinct)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def loopback_config(nodes: int, tuning: dict[str, int] | None = None) -> cfg.ClusterConfig:
    """A new cluster of ``nodes`` nodes n1, n2, ... on free loopback ports, with optional
    timing and compaction settings (see :func:`raftchat.config.tuned`)."""
    ports = free_ports(2 * nodes)
    addrs = [
        cfg.NodeAddr(f"n{i + 1}", f"127.0.0.1:{ports[2 * i]}", f"127.0.0.1:{ports[2 * i + 1]}")
        for i in range(nodes)
    ]
    config = cfg.ClusterConfig(cluster_id=uuid.uuid4().hex, nodes=addrs)
    return cfg.tuned(config, tuning) if tuning else config


def meta_request(address: str, request: dict, timeout: float = 0.5, ssl_context: Any = None) -> Any:
    """Send one meta request (status, failpoint) to a node; its value, or None without an ok answer."""
    try:
        reply = protocol.request_sync(cfg.split_hostport(address), {"id": 1, **request}, timeout, ssl_context)
    except (OSError, ValueError):
        return None
    return reply.get("value") if isinstance(reply, dict) and reply.get("status") == "ok" else None


def node_status(address: str, timeout: float = 0.5, ssl_context: Any = None, **options: Any) -> dict | None:
    """Ask one node for its Raft status over the client protocol; None if it does not answer.
    ``options``: ``digest=True`` adds a state digest, ``since=N`` limits the chain checkpoints."""
    return meta_request(address, {"meta": "status", **options}, timeout, ssl_context)


def claimed_leader(statuses: Iterable[dict | None]) -> str | None:
    """The node that claims to lead the highest term among ``statuses`` (each ``{"node", "role",
    "term"}`` as a status poll gives it, or None for a node that did not answer), if any. Every
    system's cluster reports its leader this way."""
    best = None
    for status in statuses:
        if status and status["role"] == "leader" and (best is None or status["term"] > best["term"]):
            best = status
    return best["node"] if best else None


class LocalCluster(NodeProcesses):
    def __init__(
        self,
        data_dir: str | Path,
        nodes: int = 5,
        machine: str = "chat",
        bugs: tuple[str, ...] = (),
        config: cfg.ClusterConfig | None = None,
        command_prefix: Callable[[str], list[str]] | None = None,
        failpoints: bool = False,
    ) -> None:
        self.failpoints = failpoints  # start nodes with --failpoints, for nemeses that arm them
        super().__init__()
        self.data_dir = Path(data_dir).resolve()
        self.command_prefix = command_prefix  # e.g. run each node inside its network namespace
        self.machine = machine
        self.bugs = bugs
        self.config_path = self.data_dir / "cluster.yaml"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if config is not None:
            self.config = self._with_secret(config)
            cfg.dump(self.config, self.config_path)
        elif self.config_path.exists():
            self.config = cfg.load(self.config_path)
            if not self.config.secret_file:  # a cluster from before peers proved membership
                self.config = self._with_secret(self.config)
                cfg.dump(self.config, self.config_path)
            if len(self.config.nodes) != nodes:
                raise cfg.ConfigError(
                    f"{self.config_path} describes {len(self.config.nodes)} nodes, not {nodes}: "
                    "use the same --nodes to restart it, or another data directory"
                )
        else:
            self.config = self._with_secret(loopback_config(nodes))
            cfg.dump(self.config, self.config_path)

    def _with_secret(self, config: cfg.ClusterConfig) -> cfg.ClusterConfig:
        """``config`` naming a key file (mode 600, created here if new) that the peers share."""
        if not config.secret_file:
            config = dataclasses.replace(config, secret_file=str(self.data_dir / "cluster.key"))
        auth.create_secret(config.secret_file)
        return config

    def retune(self, **tuning: int) -> None:
        """Change timing settings in the cluster file (validated like a hand-written one)."""
        data = {**self.config.to_dict(), **tuning}
        self.config = cfg.parse(data, str(self.config_path))
        cfg.dump(self.config, self.config_path)

    @property
    def ids(self) -> list[str]:
        return self.config.ids

    def command(self, node_id: str) -> list[str]:
        prefix = self.command_prefix(node_id) if self.command_prefix else []
        cmd = [
            *prefix,
            sys.executable,
            "-m",
            "raftchat",
            "node",
            "--id",
            node_id,
            "--cluster",
            str(self.config_path),
        ]
        cmd += ["--data-dir", str(self.data_dir / node_id), "--state-machine", self.machine]
        for bug in self.bugs:
            cmd += ["--bug", bug]
        if self.failpoints:
            cmd.append("--failpoints")
        return cmd

    def log_path(self, node_id: str) -> Path:
        return self.data_dir / node_id / "node.log"

    @property
    def client_tls(self) -> Any:
        """The context a client of this cluster connects with (None without TLS)."""
        return tls.client(self.config.tls_files)

    def statuses(self) -> dict[str, dict | None]:
        context = self.client_tls
        return {n.id: node_status(n.client, ssl_context=context) for n in self.config.nodes}

    def status(self, node_id: str) -> dict | None:
        return node_status(self.config.node(node_id).client, ssl_context=self.client_tls)

    def arm(self, node_id: str, failpoint: str | None, timeout: float = 0.5) -> bool:
        """Arm a failpoint on one node (None disarms it); False if the node did not confirm."""
        request = {"meta": "failpoint", "name": failpoint}
        return meta_request(self.config.node(node_id).client, request, timeout, self.client_tls) is not None

    def leader(self) -> str | None:
        """The leader of the highest term that a node claims to be leader of, if any."""
        return claimed_leader(self.statuses().values())

    def wait_for_leader(self, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            time.sleep(0.05)
        raise TimeoutError(f"no leader elected within {timeout:.0f} s; see the logs under {self.data_dir}")

    def wait_until_serving(self, timeout: float = 10.0) -> None:
        """Wait until every node answers: a leader needs only a majority, and a slow start
        (a loaded machine) can leave one node still importing when the others have elected."""
        deadline = time.monotonic() + timeout
        while True:
            silent = [node_id for node_id, status in self.statuses().items() if status is None]
            if not silent:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{', '.join(silent)} not serving within {timeout:.0f} s; logs under {self.data_dir}"
                )
            time.sleep(0.05)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()
