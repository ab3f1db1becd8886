"""Node processes of a system that is not raftchat: start, signal, kill -9 and stop them.

Each node is a real OS process with its data under ``DIR/<id>/`` and its output in
``DIR/<id>/node.log``. As raftchat's LocalCluster does, children get SIGKILL from the kernel
if the harness dies (PR_SET_PDEATHSIG survives exec, also through ``ip netns exec`` and the
Java launcher), so a crashed or ``kill -9``-ed harness leaves no node behind; inside network
namespaces the netns teardown and ``harness cleanup`` also kill whatever runs in them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from raftchat.config import ClusterConfig
from raftchat.lifetime import die_with_parent
from systems.base import SystemStartError, log_tail


class ProcessCluster:
    """Subclasses give ``node_command`` (and ``env``), ``leader``, ``status`` and ``wait_ready``."""

    def __init__(
        self,
        data_dir: Path,
        config: ClusterConfig,
        command_prefix: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.config = config
        self.command_prefix = command_prefix  # e.g. run each node inside its network namespace
        self.procs: dict[str, subprocess.Popen] = {}
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

    def start(self, node_id: str) -> subprocess.Popen:
        """Start one node process (if it is not running)."""
        proc = self.procs.get(node_id)
        if proc is not None and proc.poll() is None:
            return proc
        with open(self.log_path(node_id), "ab") as log:
            proc = subprocess.Popen(
                self.command(node_id),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.node_dir(node_id),
                env=self.env(node_id),
                preexec_fn=die_with_parent,
                start_new_session=True,  # a Ctrl-C reaches the harness only; it stops the nodes in order
            )
        self.procs[node_id] = proc
        return proc

    def start_all(self) -> None:
        for node_id in self.ids:
            self.start(node_id)

    def signal(self, node_id: str, sig: int) -> None:
        proc = self.procs.get(node_id)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, sig)

    def kill(self, node_id: str) -> None:
        """kill -9, and reap it."""
        proc = self.procs.get(node_id)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop_all(self, timeout: float = 5.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a paused node cannot handle SIGTERM
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def alive(self, node_id: str) -> bool:
        proc = self.procs.get(node_id)
        return proc is not None and proc.poll() is None

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
