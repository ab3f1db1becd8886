"""raftchat nodes on SSH hosts: started, stopped, killed and paused over SSH by pid.

Each node runs under a small ``sh`` supervisor on its host (``setsid nohup``, so it outlives
the SSH channel that started it) that writes the node's pid before and its exit status after,
into the node's directory: that is how the harness tells a node that exited by itself from one
it killed, as it does locally with ``Popen``. Status, leader and failpoints go to the nodes'
client ports directly, as for a local cluster (those methods are ``LocalCluster``'s). Data and
logs stay on the host until the end, when they are copied into the stored run.
"""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath
from signal import SIGKILL, SIGTERM
from typing import Any

from raftchat import config as cfg
from raftchat.localcluster import LocalCluster
from remote.ssh import Connections, SshError, quote
from systems.base import SystemStartError

POLL_CACHE = 0.3  # seconds an exit check stays fresh: the monitor and the nemesis ask often
STOP_TIMEOUT = 5.0


class RemoteProcess:
    """A node process on a host, with the part of ``Popen`` the harness uses."""

    def __init__(self, cluster: RemoteCluster, node: str, pid: int) -> None:
        self.cluster = cluster
        self.node = node
        self.pid = pid
        self.returncode: int | None = None
        self._checked = 0.0

    def poll(self, fresh: bool = False) -> int | None:
        if self.returncode is None and (fresh or time.monotonic() - self._checked > POLL_CACHE):
            self._checked = time.monotonic()
            try:
                self.returncode = self.cluster.exit_status(self.node, self.pid)
            except SshError:
                pass  # cannot tell now: running, as far as we know
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll(fresh=True) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"node {self.node} (pid {self.pid})", timeout or 0)
            time.sleep(0.1)
        assert self.returncode is not None
        return self.returncode


class RemoteNodes:
    """Node processes on SSH hosts, one per host; mixed in before a system's cluster class, whose
    ``leader``, ``status`` and ``wait_ready`` talk to the nodes' client ports from here."""

    def _init_remote(self, conns: Connections, runs: dict[str, str], config: cfg.ClusterConfig,
                     local_dir: Path, on_phase: Any) -> None:  # fmt: skip
        self.conns = conns
        self.runs = runs  # host (= node id) -> its run directory there
        self.data_dir = Path(local_dir).resolve()  # receives the nodes' directories at the end
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.command_prefix = None
        self.failpoints = False
        self.procs: dict[str, RemoteProcess] = {}
        self.expected_exits: set[int] = set()
        self.on_phase = on_phase or (lambda name: None)
        self.fetched = False

    @property
    def ids(self) -> list[str]:
        return self.config.ids

    # -- processes ---------------------------------------------------------------------------------

    def node_dir(self, node_id: str) -> PurePosixPath:  # type: ignore[override]
        return PurePosixPath(self.runs[node_id]) / node_id

    def remote_command(self, node_id: str) -> list[str]:
        raise NotImplementedError

    def _start_script(self, node_id: str) -> str:
        inner = (
            f'{quote(*self.remote_command(node_id))} & echo "$$ $!" > supervisor.pid.tmp && '
            "mv supervisor.pid.tmp supervisor.pid; wait $!; echo $? > supervisor.exit.tmp; "
            "mv supervisor.exit.tmp supervisor.exit"
        )
        return (
            f"set -e; mkdir -p {quote(self.node_dir(node_id))}; "
            f"cd {quote(self.node_dir(node_id))}; "
            "if [ -s supervisor.pid ] && [ ! -e supervisor.exit ]; then read s p < supervisor.pid; "
            'if [ -d /proc/$p ]; then echo "$p"; exit 0; fi; fi; '
            "rm -f supervisor.pid supervisor.exit; "
            f"nohup setsid sh -c {quote(inner)} >> node.log 2>&1 < /dev/null & "
            "i=0; while [ ! -s supervisor.pid ]; do i=$((i+1)); "
            '[ $i -lt 1000 ] || { echo "the supervisor wrote no pid" >&2; exit 1; }; sleep 0.01; done; '
            'read s p < supervisor.pid; echo "$p"'
        )

    async def _astart(self, node_id: str) -> RemoteProcess:
        out = await self.conns.arun(node_id, self._start_script(node_id), timeout=30)
        proc = RemoteProcess(self, node_id, int(out.stdout.split()[-1]))
        self.procs[node_id] = proc
        return proc

    def start(self, node_id: str) -> RemoteProcess:  # type: ignore[override]
        proc = self.procs.get(node_id)
        if proc is not None and proc.poll(fresh=True) is None:
            return proc
        return self.conns.call(self._astart(node_id))

    def start_all(self) -> None:
        _raise_first(self.conns.each(self.ids, self._astart))

    def exit_status(self, node_id: str, pid: int) -> int | None:
        """The node's exit status if it has ended (-9 if it vanished without its supervisor), else None."""
        d = quote(self.node_dir(node_id))
        out = self.conns.run(
            node_id,
            f"if [ -e {d}/supervisor.exit ]; then cat {d}/supervisor.exit; "
            f"elif [ -d /proc/{pid} ]; then echo running; else echo gone; fi",
            timeout=10,
        ).stdout.strip()
        if out == "running":
            return None
        if out == "gone" or not out.lstrip("-").isdigit():
            return -SIGKILL
        code = int(out)
        return -(code - 128) if code > 128 else code  # as Popen reports a signal's death

    def signal(self, node_id: str, sig: int) -> None:
        proc = self.procs.get(node_id)
        if proc is not None and proc.poll() is None:
            self.conns.run(node_id, f"kill -{int(sig)} {proc.pid}", timeout=10)

    def _stop_script(self, node_id: str, pid: int, first: int) -> str:
        """Send ``first`` (after SIGCONT: a paused node cannot handle SIGTERM), wait, then SIGKILL."""
        d = quote(self.node_dir(node_id))
        ticks = int(STOP_TIMEOUT / 0.05)
        return (
            f"kill -CONT {pid} 2>/dev/null; kill -{first} {pid} 2>/dev/null; i=0; "
            f"while [ ! -e {d}/supervisor.exit ] && [ -d /proc/{pid} ]; do i=$((i+1)); "
            f"[ $i -lt {ticks} ] || {{ kill -KILL {pid} 2>/dev/null; i=0; }}; sleep 0.05; done; "
            f"i=0; while [ ! -e {d}/supervisor.exit ] && [ $i -lt 40 ]; do i=$((i+1)); sleep 0.05; done; "
            f"cat {d}/supervisor.exit 2>/dev/null || echo gone"
        )

    async def _astop(self, node_id: str, first: int = SIGTERM) -> None:
        proc = self.procs.get(node_id)
        if proc is None or proc.returncode is not None:
            return
        self.expected_exits.add(proc.pid)
        out = await self.conns.arun(node_id, self._stop_script(node_id, proc.pid, int(first)), timeout=30)
        text = out.stdout.strip()
        code = int(text) if text.lstrip("-").isdigit() else 128 + SIGKILL
        proc.returncode = -(code - 128) if code > 128 else code

    def kill(self, node_id: str) -> None:
        """kill -9, and wait until its supervisor saw it end."""
        self.conns.call(self._astop(node_id, SIGKILL))

    def stop(self, node_id: str, timeout: float = STOP_TIMEOUT) -> None:
        self.conns.call(self._astop(node_id))

    def stop_all(self) -> None:
        """Stop every node, then copy each host's node directory (data and log) into ``local_dir``.

        Never raises: the runner's teardown must go on, and the session's undo kills what is left."""
        self.on_phase("teardown_start")
        for node, result in self.conns.each(self.ids, self._astop).items():
            if isinstance(result, BaseException):  # the session's undo kills it; the teardown goes on
                print(f"stopping node {node}: {result}", file=sys.stderr)
        self.fetch()

    def alive(self, node_id: str) -> bool:
        proc = self.procs.get(node_id)
        return proc is not None and proc.poll() is None

    def rss(self, pid: int) -> int | None:
        return None  # the memory of a process on another host is not sampled

    # -- logs --------------------------------------------------------------------------------------

    def log_path(self, node_id: str) -> Path:
        return self.data_dir / node_id / "node.log"

    def fetch(self) -> None:
        """Copy each node's directory from its host (once; a host that fails is skipped)."""
        if self.fetched:
            return

        async def get(host: str) -> None:
            run = self.runs[host]
            out = await self.conns.arun(
                host,
                f"cd {quote(run)} && [ -d {quote(host)} ] && tar -cf - {quote(host)} || true",
                binary=True,
            )
            if out.stdout:
                with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
                    tar.extractall(self.data_dir, filter="data")

        self.conns.each(self.ids, get)
        self.fetched = True

    def log_tail(self, node_id: str, lines: int = 12) -> str:
        try:
            out = self.conns.run(node_id, f"tail -n {lines} {quote(self.node_dir(node_id) + '/node.log')}")
        except SshError as exc:
            return f"  | (log unreadable: {exc})"
        return "\n".join(f"  | {line}" for line in out.stdout.rstrip().splitlines()) or "  | (empty log)"

    def check_running(self) -> None:
        for node_id, proc in self.procs.items():
            if proc.poll() is not None:
                raise SystemStartError(
                    f"node {node_id} exited with status {proc.returncode} while starting; the end of "
                    f"{self.node_dir(node_id)}/node.log on host {node_id}:\n{self.log_tail(node_id)}"
                )

    def wait_until(self, ready: Any, timeout: float, what: str) -> str:
        """Poll ``ready`` until it says something; nodes that die or a timeout raise with their logs."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            answer = ready()
            if answer is not None:
                self.on_phase("ready")
                return answer
            if time.monotonic() >= deadline:
                tails = "\n".join(f"{n}:\n{self.log_tail(n, 6)}" for n in self.ids)
                raise SystemStartError(f"{what} within {timeout:.0f} s; the end of each node's log:\n{tails}")
            time.sleep(0.2)


class RemoteCluster(RemoteNodes, LocalCluster):
    """One raftchat node per host; ``local_dir`` receives the nodes' data and logs at the end."""

    def __init__(
        self,
        conns: Connections,
        runs: dict[str, str],
        config: cfg.ClusterConfig,
        local_dir: Path,
        machine: str = "chat",
        bugs: tuple[str, ...] = (),
        failpoints: bool = False,
        on_phase: Any = None,
    ) -> None:
        self._init_remote(conns, runs, config, local_dir, on_phase)
        self.machine = machine
        self.bugs = bugs
        self.failpoints = failpoints
        self.config_path = self.data_dir / "cluster.yaml"  # the control machine's copy

    # -- set-up ------------------------------------------------------------------------------------

    def write_configs(self) -> None:
        """The cluster file and the shared key, on every host (paths of that host's run directory)."""
        from raftchat import auth

        key = self.data_dir / "cluster.key"
        auth.create_secret(str(key))
        secret = key.read_text()  # hex text
        cfg.dump(self.config, self.config_path)
        texts = {}
        for host, run in self.runs.items():
            remote = dataclasses.replace(self.config, secret_file=f"{run}/cluster.key")
            local = self.data_dir / f"cluster-{host}.yaml"
            cfg.dump(remote, local)
            texts[host] = local.read_text()
            local.unlink()

        async def write(host: str) -> None:
            run = self.runs[host]
            await self.conns.arun(host, f"umask 077 && cat > {quote(run + '/cluster.key')}", input=secret)
            await self.conns.arun(host, f"cat > {quote(run + '/cluster.yaml')}", input=texts[host])

        _raise_first(self.conns.each(self.runs, write))

    def remote_command(self, node_id: str) -> list[str]:
        run = self.runs[node_id]
        cmd = [f"{run}/venv/bin/python", "-m", "raftchat", "node", "--id", node_id]
        cmd += ["--cluster", f"{run}/cluster.yaml", "--data-dir", self.node_dir(node_id)]
        cmd += ["--state-machine", self.machine]
        for bug in self.bugs:
            cmd += ["--bug", bug]
        if self.failpoints:
            cmd.append("--failpoints")
        return cmd

    def wait_ready(self, timeout: float) -> str:
        return self.wait_until(self.leader_line, timeout, "no leader")

    def leader_line(self) -> str | None:
        leader = self.leader()
        return None if leader is None else f"leader {leader}"


def remote_process_cluster(
    cluster_type: type, options: Any, conns: Connections, runs: dict[str, str], config: cfg.ClusterConfig,
    local_dir: Path, on_phase: Any = None,
) -> Any:  # fmt: skip
    """A system's ``ProcessCluster`` (etcd's, ...) whose node commands run on the hosts instead."""

    def remote_command(self: Any, node_id: str) -> list[str]:
        return [str(word) for word in cluster_type.node_command(self, node_id)]

    cls = type(
        f"Remote{cluster_type.__name__}", (RemoteNodes, cluster_type), {"remote_command": remote_command}
    )
    cluster = cls.__new__(cls)  # not the local __init__: it makes the node directories here
    cluster._init_remote(conns, runs, config, local_dir, on_phase)
    cluster.options = options
    return cluster


def _raise_first(results: dict[str, Any]) -> None:
    errors = [r for r in results.values() if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
