"""The cluster file: who the nodes are, where they listen, and the tuning they share."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """The cluster file is missing, unreadable or wrong; the message says where."""


@dataclass(frozen=True)
class NodeAddr:
    id: str
    peer: str  # host:port for Raft traffic from other nodes
    client: str  # host:port for clients

    @property
    def peer_hostport(self) -> tuple[str, int]:
        return split_hostport(self.peer)

    @property
    def client_hostport(self) -> tuple[str, int]:
        return split_hostport(self.client)


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for TLS on both ports (see raftchat.tls)."""

    ca: str
    cert: str
    key: str


@dataclass
class ClusterConfig:
    cluster_id: str
    nodes: list[NodeAddr]
    tick_ms: int = 10
    election_timeout_ms: int = 150  # drawn from [this, 2 * this)
    heartbeat_ms: int = 50
    snapshot_every: int = 10_000  # entries applied between snapshots
    max_username: int = 20
    max_message: int = 500
    # Optional per-link overrides: routes[src][dst] = "host:port" that src dials to reach dst.
    # The TCP-proxy nemesis uses this to put itself between every pair of nodes.
    routes: dict[str, dict[str, str]] = field(default_factory=dict)
    # The key file whose contents every member proves it knows in the peer hello (raftchat.auth).
    # A relative path in a cluster file is relative to the file's folder.
    secret_file: str = ""
    # Optional TLS on both ports: {"ca": ..., "cert": ..., "key": ...}, paths as secret_file's.
    tls: dict[str, str] = field(default_factory=dict)

    @property
    def tls_files(self) -> TLSFiles | None:
        return TLSFiles(**self.tls) if self.tls else None

    def node(self, node_id: str) -> NodeAddr:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise ConfigError(f"node {node_id!r} is not in the cluster (nodes: {', '.join(self.ids)})")

    @property
    def ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def peer_address(self, src: str, dst: str) -> tuple[str, int]:
        route = self.routes.get(src, {}).get(dst)
        return split_hostport(route) if route else self.node(dst).peer_hostport

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.routes:
            del data["routes"]
        if not self.secret_file:
            del data["secret_file"]
        if not self.tls:
            del data["tls"]
        return data


def split_hostport(text: str) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"address {text!r} is not host:port")
    return host, int(port)


def local_cluster(n: int, base_port: int, cluster_id: str | None = None) -> ClusterConfig:
    """A cluster of ``n`` nodes on loopback: peers on base_port+i, clients on base_port+100+i."""
    nodes = [
        NodeAddr(f"n{i + 1}", f"127.0.0.1:{base_port + i}", f"127.0.0.1:{base_port + 100 + i}")
        for i in range(n)
    ]
    return ClusterConfig(cluster_id=cluster_id or uuid.uuid4().hex, nodes=nodes)


TUNING_FIELDS = (
    "tick_ms",
    "election_timeout_ms",
    "heartbeat_ms",
    "snapshot_every",
)  # a test plan may set these
_INT_FIELDS = (*TUNING_FIELDS, "max_username", "max_message")


def tuned(config: ClusterConfig, tuning: dict[str, int], where: str = "tuning") -> ClusterConfig:
    """``config`` with some of :data:`TUNING_FIELDS` changed, checked like a cluster file."""
    unknown = set(tuning) - set(TUNING_FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            f"known: {', '.join(TUNING_FIELDS)}"
        )
    return parse({**config.to_dict(), **tuning}, where)


def parse(data: Any, where: str = "cluster file") -> ClusterConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    known = {"cluster_id", "nodes", "routes", "secret_file", "tls", *_INT_FIELDS}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    if not isinstance(data.get("cluster_id"), str) or not data["cluster_id"]:
        raise ConfigError(f"{where}: 'cluster_id' must be a non-empty string")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise ConfigError(f"{where}: 'nodes' must be a non-empty list")
    nodes = []
    for i, item in enumerate(raw_nodes):
        if not isinstance(item, dict) or set(item) != {"id", "peer", "client"}:
            raise ConfigError(f"{where}: nodes[{i}] must have exactly the keys id, peer, client")
        node = NodeAddr(str(item["id"]), str(item["peer"]), str(item["client"]))
        node.peer_hostport, node.client_hostport  # noqa: B018 -- validates both addresses
        nodes.append(node)
    if len({n.id for n in nodes}) != len(nodes):
        raise ConfigError(f"{where}: node ids must be unique")
    kwargs: dict[str, Any] = {}
    for key in _INT_FIELDS:
        if key in data:
            value = data[key]
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{where}: {key!r} must be a positive integer, got {value!r}")
            kwargs[key] = value
    routes = data.get("routes") or {}
    if not isinstance(routes, dict) or not all(isinstance(v, dict) for v in routes.values()):
        raise ConfigError(f"{where}: 'routes' must map node id to a map of node id to host:port")
    secret_file = data.get("secret_file", "")
    if not isinstance(secret_file, str):
        raise ConfigError(f"{where}: 'secret_file' must be a path, got {secret_file!r}")
    tls = data.get("tls") or {}
    well_formed = isinstance(tls, dict) and set(tls) == {"ca", "cert", "key"}
    if tls and not (well_formed and all(isinstance(v, str) and v for v in tls.values())):
        raise ConfigError(f"{where}: 'tls' must map exactly ca, cert and key to file paths, got {tls!r}")
    config = ClusterConfig(
        cluster_id=data["cluster_id"], nodes=nodes, routes=routes, secret_file=secret_file, tls=tls, **kwargs
    )
    if config.heartbeat_ms >= config.election_timeout_ms:
        raise ConfigError(f"{where}: heartbeat_ms must be smaller than election_timeout_ms")
    return config


def loopback_defaults(tuning: dict[str, int]) -> ClusterConfig:
    """A one-node config with ``tuning`` applied: checks a tuning without a real cluster."""
    return tuned(ClusterConfig("check", [NodeAddr("n1", "127.0.0.1:1", "127.0.0.1:2")]), tuning, "tuning")


def read_yaml(path: str | Path, what: str, error: type[Exception]) -> Any:
    """Parse a YAML file that a person wrote; problems become ``error``, naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from exc


def load(path: str | Path) -> ClusterConfig:
    config = parse(read_yaml(path, "cluster file", ConfigError), str(path))
    folder = Path(path).resolve().parent
    if config.secret_file and not Path(config.secret_file).is_absolute():
        config.secret_file = str(folder / config.secret_file)
    config.tls = {k: str(folder / v) for k, v in config.tls.items()}  # an absolute v stays as it is
    return config


def dump(config: ClusterConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
