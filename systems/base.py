"""The interface between the harness and a system under test, after Jepsen's DB and Client.

A **System** knows how to run one kind of database on this machine: whether it is installed
(and which Debian package to install if not), its version, how to lay out each node's
configuration and data directory, and which network mechanisms can carry its node-to-node
traffic. Its ``cluster`` is the running nodes: start, stop, kill -9, pause (SIGSTOP) and
resume (SIGCONT) one node, the path of its log, and waiting until the cluster serves. Its
``client`` performs one workload's operations against one node and classifies every failure
as ``fail`` (certainly did not happen: the checker drops it) or ``info`` (may have happened,
may still happen).

The harness keeps everything else: the plan, time, the history, faults and the checker.
A system never imports ``harness``; it gets the plan as a plain object.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from raftchat.config import ClusterConfig
from workloads import options as opts
from workloads.base import Completion, Invocation, Workload


class SystemUnavailable(RuntimeError):
    """The system cannot run here (not installed); the message names what to install."""


class SystemStartError(RuntimeError):
    """A node did not come up, or the cluster did not serve in time; the message has the log's tail."""


class Cluster(Protocol):
    """Running nodes. ``nemesis.process.Cluster`` is the part the faults use."""

    config: ClusterConfig
    procs: dict[str, Any]

    @property
    def ids(self) -> list[str]: ...

    def start_all(self) -> None: ...

    def start(self, node_id: str) -> Any: ...

    def stop_all(self) -> None: ...

    def kill(self, node_id: str) -> None: ...

    def signal(self, node_id: str, sig: int) -> None: ...

    def alive(self, node_id: str) -> bool: ...

    def log_path(self, node_id: str) -> Path: ...

    def leader(self) -> str | None: ...

    def status(self, node_id: str) -> dict | None: ...

    def arm(self, node_id: str, failpoint: str | None) -> bool: ...

    def wait_ready(self, timeout: float) -> str:
        """Block until the cluster serves; a line saying how (e.g. which node leads)."""


class Client(Protocol):
    """One worker's connection: performs operations, never raises for an operation failure."""

    node: str | None  # the node it talks to, recorded with each operation (None: any)

    async def invoke(self, inv: Invocation) -> Completion: ...

    async def close(self) -> None: ...


class System(Protocol):
    name: str
    workloads: tuple[str, ...]  # the workloads it has clients for
    networks: tuple[str, ...]  # network mechanisms ("netns", "proxy") that can cut its node traffic
    options: Any  # its parsed options (a dataclass)

    def check_installed(self) -> None:
        """Raise SystemUnavailable naming the missing Debian package."""

    def version(self) -> str: ...

    def cluster(
        self,
        data_dir: Path,
        config: ClusterConfig,
        command_prefix: Callable[[str], list[str]] | None,
        workload: Workload,
        plan: Any,
    ) -> Cluster:
        """Lay out every node's configuration and data under ``data_dir`` (started later)."""

    def client(self, cluster: Cluster, workload: Workload, worker: int, plan: Any) -> Client: ...


class SystemBase:
    """What the systems share: declared options, a proxy refusal, the installed check."""

    name: str
    options_type: type  # a dataclass of ``workloads.options.option`` fields
    workloads: tuple[str, ...] = ()
    networks: tuple[str, ...] = ("netns", "proxy")
    proxy_refusal = ""  # why the proxy network cannot carry it, when it cannot
    programs: dict[str, str] = {}  # executable -> the Debian package that has it
    # Whether its nodes answer raftchat's status request (applied index, hash chain, digest):
    # then the harness also checks convergence, node health and recovery (harness.monitor).
    node_checks = False

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = opts.parse(self.options_type, options, self.name, kind="system")

    @classmethod
    def describe_options(cls) -> str:
        return opts.describe(cls.options_type, cls.name, kind="system")

    def check_installed(self) -> None:
        for program, package in self.programs.items():
            if shutil.which(program) is None:
                raise SystemUnavailable(
                    f"system {self.name!r}: `{program}` is not installed; install it with "
                    f"`apt-get install {package}`"
                )

    # The cluster class of a system whose nodes are plain processes (systems.processes):
    # built as ``cluster_type(data_dir, config, command_prefix, options)``.
    cluster_type: Callable[..., Any] | None = None

    def cluster(
        self,
        data_dir: Path,
        config: ClusterConfig,
        command_prefix: Callable[[str], list[str]] | None,
        workload: Workload,
        plan: Any,
    ) -> Any:
        assert self.cluster_type is not None, f"system {self.name!r} names no cluster_type"
        return self.cluster_type(data_dir, config, command_prefix, self.options)

    def check_workload(self, workload: str) -> None:
        if workload not in self.workloads:
            raise ValueError(
                f"system {self.name!r} has no client for the {workload!r} workload "
                f"(it has: {', '.join(self.workloads)})"
            )


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a node's log, for an error message that says why it did not come up."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    tail = text.rstrip().splitlines()[-lines:]
    return "\n".join(f"  | {line}" for line in tail) or f"(log {path} is empty)"
