"""Node processes of a system that is not raftchat: start, signal, kill -9 and stop them.

Each node is a real OS process with its data under ``DIR/<id>/`` and its output in
``DIR/<id>/node.log``. As raftchat's LocalCluster does, children get SIGKILL from the kernel
if the harness dies (PR_SET_PDEATHSIG survives exec, also through ``ip netns exec`` and the
Java launcher), so a crashed or ``kill -9``-ed harness leaves no node behind; inside network
namespaces the netns teardown and ``harness cleanup`` also kill whatever runs in them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from raftchat.config import ClusterConfig
from raftchat.lifetime import NodeProcesses
from systems.base import SystemStartError, log_tail


class ProcessCluster(NodeProcesses):
    """Subclasses give ``node_command`` (and ``env``), ``leader``, ``status`` and ``wait_ready``."""

    def __init__(
        self,
        data_dir: Path,
        config: ClusterConfig,
        command_prefix: Callable[[str], list[str]] | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = Path(data_dir).resolve()
        self.config = config
        self.command_prefix = command_prefix  # e.g. run each node inside its network namespace
        for node_id in self.ids:
            self.node_dir(node_id).mkdir(parents=True, exist_ok=True)

    @property
    def ids(self) -> list[str]:
        return self.config.ids

    def node_dir(self, node_id: str) -> Path:
        return self.data_dir / node_id

    def log_path(self, node_id: str) -> Path:
        return self.node_dir(node_id) / "node.log"

    def node_command(self, node_id: str) -> list[str]:
        raise NotImplementedError

    def env(self, node_id: str) -> dict[str, str] | None:
        return None

    def command(self, node_id: str) -> list[str]:
        prefix = self.command_prefix(node_id) if self.command_prefix else []
        return [*prefix, *self.node_command(node_id)]

    def cwd(self, node_id: str) -> Path:
        return self.node_dir(node_id)

    def arm(self, node_id: str, failpoint: str | None) -> bool:
        return False  # only raftchat has failpoints

    def check_running(self) -> None:
        """A node that exited while the cluster came up: its exit status and the tail of its log."""
        for node_id, proc in self.procs.items():
            if proc.poll() is not None:
                raise SystemStartError(
                    f"node {node_id} exited with status {proc.returncode} while starting; "
                    f"the end of {self.log_path(node_id)}:\n{log_tail(self.log_path(node_id))}"
                )

    def wait_until(self, ready: Callable[[], str | None], timeout: float, what: str) -> str:
        """Poll ``ready`` until it says something; nodes that die or a timeout raise with their logs."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            answer = ready()
            if answer is not None:
                return answer
            if time.monotonic() >= deadline:
                tails = "\n".join(f"{n}:\n{log_tail(self.log_path(n), 6)}" for n in self.ids)
                raise SystemStartError(f"{what} within {timeout:.0f} s; the end of each node's log:\n{tails}")
            time.sleep(0.2)
