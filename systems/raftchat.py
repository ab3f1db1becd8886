"""raftchat as a system under test: the project's own chat service, one node process per member.

Its nodes are ``python -m raftchat node`` (``raftchat.localcluster.LocalCluster``), started with
the plan's deliberate bug and with failpoints when a fault arms them. Its clients are
``raftchat.client.Client``, which find the leader, retry with the same sequence number and
say whether a failed write certainly did not happen; the workloads' own ``invoke`` turns a
raftchat answer into a completion. Both network mechanisms carry it: each node dials its
peers through ``ClusterConfig.routes``, so the proxy can sit on every link.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftchat.client import Client as RaftchatClient
from raftchat.config import ClusterConfig
from raftchat.localcluster import LocalCluster
from systems.base import SystemBase
from workloads.base import Completion, Invocation, Workload


@dataclass
class RaftchatOptions:
    """raftchat has no options of its own: its settings are the plan's (bug, timeouts)."""


class RaftchatCluster(LocalCluster):
    def wait_ready(self, timeout: float) -> str:
        return f"leader {self.wait_for_leader(timeout=timeout)}"


class WorkloadClient:
    """A raftchat client bound to one workload: the workload's ``invoke`` does the talking."""

    def __init__(self, client: RaftchatClient, workload: Workload) -> None:
        self.client = client
        self.workload = workload
        self.node = client.prefer

    @property
    def served(self) -> str | None:
        """The node the client now takes for the leader: the one that answered, after redirects."""
        return self.client.leader

    async def invoke(self, inv: Invocation) -> Completion:
        return await self.workload.invoke(self.client, inv)

    async def close(self) -> None:
        await self.client.close()


class RaftchatSystem(SystemBase):
    name = "raftchat"
    node_checks = True
    options_type = RaftchatOptions
    workloads = ("chat", "register", "kv")

    def check_installed(self) -> None:
        return None  # it is this package

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("raftchat")
        except PackageNotFoundError:
            return f"source (python {sys.version.split()[0]})"

    def cluster(
        self,
        data_dir: Path,
        config: ClusterConfig,
        command_prefix: Callable[[str], list[str]] | None,
        workload: Workload,
        plan: Any,
    ) -> RaftchatCluster:
        from nemesis import FAILPOINT_FAULTS

        return RaftchatCluster(
            data_dir,
            len(config.nodes),
            machine=workload.machine,
            bugs=(plan.bug,) if plan.bug else (),
            config=config,
            command_prefix=command_prefix,
            failpoints=bool(set(plan.nemesis) & FAILPOINT_FAULTS),
        )

    def client(self, cluster: Any, workload: Workload, worker: int, plan: Any) -> WorkloadClient:
        ids = cluster.ids
        client = RaftchatClient(
            cluster.config,
            prefer=ids[worker % len(ids)],
            timeout=plan.op_timeout,
            attempt_timeout=plan.attempt_timeout,
            client_id=f"w{worker}-{plan.seed}",
        )
        return WorkloadClient(client, workload)
