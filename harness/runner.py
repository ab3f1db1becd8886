"""One verification run, end to end, the way Jepsen runs a test.

cluster up -> workers generate load (and the nemesis injects faults) until the time
limit -> heal -> let the cluster recover -> final reads -> tear down -> check -> store.

The system under test (raftchat, etcd, ...) comes from ``systems``: it lays out and starts
the nodes and gives each worker its client; the runner knows nothing of any one system.
Everything started here is stopped in ``finally`` blocks, and node processes die with
the harness (see systems.processes), so an interrupted or crashed run leaves no
process behind. The history is written as it happens: even a killed run can be checked.

``STORE/latest`` moves to a run only once its set-up (network, cluster, a leader) worked:
a run that never started is stored as failed, with the reason, and leaves ``latest`` at
the last run that did start.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import plan as plans
from harness import store, verdicts
from harness.health import health_check
from harness.monitor import NodeMonitor
from harness.progress import Progress
from harness.recorder import Recorder
from harness.restart import restart_check
from harness.workers import Workers
from nemesis import NETWORK_FAULTS, Nemesis, NetworkUnavailable, choose_network
from nemesis.net.base import Network
from nemesis.network import netns_available
from nemesis.process import PROCESS_THREAD
from raftchat.localcluster import loopback_config
from raftchat.node import FAILPOINT_EXIT
from systems import SystemUnavailable, make_system
from systems.base import Cluster
from workloads import make_workload
from workloads.base import Workload

START_TIMEOUT = 60.0  # seconds for a cluster to serve; a JVM ensemble on a loaded machine is slow


@dataclass
class RunOutcome:
    valid: bool | str | None  # None when the run failed before it could be checked
    exit_code: int
    run_dir: Path
    results: dict[str, Any] = field(default_factory=dict)


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during a run."""


def run_plan(
    plan: plans.Plan | str | Path | dict | None = None,
    overrides: dict[str, Any] | None = None,
    store_root: str | Path = "store",
    progress: bool | None = None,
) -> RunOutcome:
    """Run a plan (a Plan, a YAML path, a mapping or None for the default) and store it."""

    resolved = plans.load(plan, overrides)
    system = make_system(resolved.system, resolved.system_options)
    remote = None
    if resolved.hosts:  # SSH hosts (remote/): every host connected and checked before anything is stored
        from remote.session import open_session

        remote = open_session(resolved, system)
    else:
        system.check_installed()  # before anything is stored: a setup that cannot run is not a run
        check_network(resolved, system)
    try:
        run_dir = store.new_run_dir(Path(store_root), resolved.name, latest=False)
        plans.dump(resolved, run_dir / store.PLAN)
        run = Run(resolved, run_dir, Progress(enabled=progress), store_root=Path(store_root), remote=remote)
    except BaseException:
        if remote is not None:
            remote.close()
        raise
    return run.execute()


def check_network(plan: plans.Plan, system: Any) -> None:
    """A system the proxies cannot carry needs namespaces for its network faults: refuse plainly."""
    if not set(plan.nemesis) & NETWORK_FAULTS or "proxy" in system.networks:
        return
    ok, reason = netns_available(plan.nemesis)
    if not ok:
        raise SystemUnavailable(
            f"faults {', '.join(sorted(set(plan.nemesis) & NETWORK_FAULTS))} need the netns network here "
            f"({reason}), and the proxy network cannot carry {system.name}: {system.proxy_refusal}"
        )


class Run:
    def __init__(
        self,
        plan: plans.Plan,
        run_dir: Path,
        progress: Progress,
        store_root: Path | None = None,
        remote: Any = None,
    ) -> None:
        self.plan = plan
        self.remote = remote  # a remote.session.Session when the nodes run on SSH hosts
        self.remote_report: dict[str, Any] | None = None
        self.run_dir = run_dir
        self.store_root = store_root  # where ``latest`` is pointed once the run has started
        self.progress = progress
        self.rng = random.Random(plan.seed)
        self.system = make_system(plan.system, plan.system_options)
        self.system_version: str | None = None
        self.workload: Workload = make_workload(
            plan.workload, plan.workload_options, plan.concurrency, plan.seed
        )
        self.started = time.time()
        self.error: str | None = None
        self.interrupted = False
        self.network_info: dict[str, str] | None = None
        self.setup_done = False  # network and cluster up with a leader: the run started
        self.phases: dict[str, float] = {}  # when the last phases began (s on the history's clock)
        self.monitor: NodeMonitor | None = None
        self.recovery: dict[str, Any] | None = None  # the recovery check, once the final reads are done
        self.node_checks: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ the run

    def execute(self) -> RunOutcome:
        recorder = Recorder(
            self.run_dir / store.HISTORY,
            system=self.plan.system,
            workload=self.plan.workload,
            model=self.workload.model,
            bug=self.plan.bug,
            test=self.plan.name,
        )
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        cluster: Cluster | None = None
        network = None
        try:
            for sig in previous:
                signal.signal(sig, self._on_signal)
            self.progress.line(f"run {self.run_dir}")
            if self.remote is None:
                self.system.check_installed()
            self.system_version = self.remote.version() if self.remote else self.system.version()
            network = self._network()
            self.network_info = {"name": network.name, "tag": network.tag} if network else None
            cluster = self._cluster(network)
            cluster.start_all()
            ready = cluster.wait_ready(timeout=START_TIMEOUT)
            self.setup_done = True
            if self.store_root is not None:
                store.point_latest(self.store_root, self.run_dir)
            faults = ", ".join(self.plan.nemesis) or "none"
            where = f" over the {network.name} network" if network else ""
            self.progress.line(
                f"{self.plan.nodes} {self.system.name} {self.system_version} nodes up{where}, {ready}; "
                f"{self.plan.workload} workload; faults: {faults}"
            )
            self.monitor = NodeMonitor(  # every system: roles and memory; raftchat: the node checks
                cluster,
                recorder.now,
                self.run_dir / store.NODES_JSONL,
                self.plan.status_interval,
                FAILPOINT_EXIT if getattr(cluster, "failpoints", False) else None,
                raft_status=self.system.node_checks,
            )
            self.monitor.start()
            asyncio.run(self._drive(cluster, network, recorder))
        except Interrupted:
            self.interrupted = True
            self.error = (
                "interrupted before the end of the run"
                if self.setup_done
                else "the run never started: interrupted during set-up"
            )
        except Exception as exc:  # anything: still tear down, store and report
            self.error = f"{type(exc).__name__}: {exc}"
            if self.setup_done:
                traceback.print_exc(file=sys.stderr)
            else:  # a set-up failure is explained by its message; the summary says it
                self.error = f"the run never started: {self.error}"
        finally:
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the teardown
            end = recorder.now() / 1e9
            recorder.close()
            if self.monitor is not None:
                self.monitor.stop()
                self.monitor.check_exits()  # a node that died by itself just before the end
            if cluster is not None:
                cluster.stop_all()
                self._keep_logs(cluster)
            if self.monitor is not None:
                self.monitor.close()
                if self.system.node_checks:
                    self._node_checks(end)
            if network is not None:
                network.teardown()
            if self.remote is not None:  # every host's processes, rules and run files: gone
                self._close_remote()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.progress.finish()
        return self._check_and_store()

    def _close_remote(self) -> None:
        try:
            self.remote.close()
        except Exception as exc:
            self.error = self.error or f"{type(exc).__name__}: {exc}"
        self.remote_report = self.remote.report()

    def _network(self) -> Network | None:
        """Node traffic goes through a cuttable network only when a fault needs one."""
        if self.remote is not None:  # on SSH hosts: their addresses, and iptables/tc there
            return self.remote.network()
        if not set(self.plan.nemesis) & NETWORK_FAULTS:
            return None
        if "proxy" in self.system.networks:
            return choose_network(self.plan.net, faults=self.plan.nemesis)
        try:  # the system's traffic cannot go through the proxies: namespaces or nothing
            return choose_network("netns", faults=self.plan.nemesis)
        except NetworkUnavailable as exc:
            raise SystemUnavailable(
                f"{exc.args[0].split(' (')[0]}, and the proxy network cannot carry "
                f"{self.system.name}: {self.system.proxy_refusal}"
            ) from None

    def _cluster(self, network: Network | None) -> Cluster:
        config = loopback_config(self.plan.nodes, self.plan.raftchat)
        if network is not None:
            config = network.setup(config)
        prefix = network.command_prefix if network is not None else None
        if self.remote is not None:
            return self.remote.cluster(config, self.workload, self.plan, self.run_dir / "cluster")
        return self.system.cluster(self.run_dir / "cluster", config, prefix, self.workload, self.plan)

    def _on_signal(self, signum: int, frame: Any) -> None:
        raise Interrupted()

    async def _drive(self, cluster: Cluster, network: Network | None, recorder: Recorder) -> None:
        """The load phase under asyncio; a signal cancels it and becomes Interrupted."""
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, main.cancel)
        try:
            await self._load_and_final_reads(cluster, network, recorder)
        except asyncio.CancelledError:
            raise Interrupted() from None
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
                signal.signal(sig, self._on_signal)

    async def _load_and_final_reads(
        self, cluster: Cluster, network: Network | None, recorder: Recorder
    ) -> None:
        plan = self.plan
        clients = [self.system.client(cluster, self.workload, w, plan) for w in range(plan.concurrency)]
        workers = Workers(self.workload, clients, recorder, plan.rate, plan.seed)
        ticker = asyncio.create_task(self.progress.run(recorder, plan.time_limit))
        nemesis = None
        if plan.nemesis:
            nemesis = Nemesis(
                cluster,
                network,
                plan.nemesis,
                plan.nemesis_interval,
                random.Random(f"{plan.seed}-nemesis"),
                recorder.record,
                on_state=self.progress.set_nemesis_state,
            )
        stop_faults = asyncio.Event()
        try:
            faults = asyncio.create_task(nemesis.run(stop_faults)) if nemesis else None
            try:
                await workers.load(plan.time_limit)
            finally:
                stop_faults.set()
                if faults is not None:
                    await faults
            self.phases["load_end"] = recorder.now() / 1e9
            if nemesis is not None:
                await nemesis.heal_all()  # every partition healed, every node running again
            self.progress.line(f"load done; {plan.recovery:g} s of recovery, then final reads")
            await asyncio.sleep(plan.recovery)
            self.phases["final_reads"] = recorder.now() / 1e9
            await workers.final_reads()
            self.phases["end"] = recorder.now() / 1e9
            if self.monitor is not None:
                self.monitor.stop()
            if self.monitor is not None and self.system.node_checks:  # the convergence wait polls alone
                self.progress.line(
                    f"final reads done; waiting up to {plan.converge_timeout:g} s for every node"
                )
                self.recovery = await asyncio.to_thread(self.monitor.converge, plan.converge_timeout)
                if plan.restart_check and self.recovery.get("converged"):
                    self.progress.line("converged; every node killed and restarted: the state must come back")
                    # In the nemesis's process thread: a node dies with the thread that started it.
                    restarted = await asyncio.get_running_loop().run_in_executor(
                        PROCESS_THREAD,
                        restart_check,
                        cluster,
                        self.monitor,
                        self.recovery,
                        plan.converge_timeout,
                    )
                    self.recovery["restart"] = restarted
                    if restarted["valid"] is False:
                        self.recovery.update(valid=False, note=restarted["note"])
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            for client in clients:
                await client.close()

    def _keep_logs(self, cluster: Cluster) -> None:
        logs = self.run_dir / store.LOGS
        logs.mkdir(exist_ok=True)
        for node_id in cluster.ids:
            source = cluster.log_path(node_id)
            if source.exists():
                shutil.copyfile(source, logs / f"{node_id}.log")

    # ------------------------------------------------------------------ verdict

    def _node_checks(self, end: float) -> None:
        """The checkers composed with linearizability: convergence, node health, recovery."""
        monitor = self.monitor
        assert monitor is not None
        recovery = self.recovery or {
            "valid": None,
            "note": "not reached: the run ended before the final reads",
        }
        self.node_checks = {
            "convergence": monitor.convergence_check(),
            # On SSH hosts the logs carry the hosts' clocks, which are never compared with ours.
            "health": health_check(
                monitor.exit_events(end),
                self.run_dir / store.LOGS,
                monitor.wall_origin if self.remote is None else None,
            ),
            "recovery": recovery,
        }
        self.node_checks["health"]["failpoint_exits"] = monitor.failpoint_exits

    def _check_and_store(self) -> RunOutcome:
        from harness.analysis import analyse

        results = {
            "test": self.plan.name,
            "system": self.plan.system,
            "system_version": self.system_version,
            "system_options": dict(self.plan.system_options),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "duration_s": round(time.time() - self.started, 3),
            "workload": self.plan.workload,
            "nodes": self.plan.nodes,
            "concurrency": self.plan.concurrency,
            "nemesis": list(self.plan.nemesis),
            "bug": self.plan.bug,
            "seed": self.plan.seed,
            "network": self.network_info,
            "interrupted": self.interrupted,
            "error": self.error,
            "setup_failed": not self.setup_done,
            "phases": {k: round(v, 6) for k, v in self.phases.items()},
        }
        if self.remote is not None:
            results["remote"] = self.remote_report
        if self.setup_done:
            linearizable = analyse(
                self.run_dir,
                self.workload.model,
                self.plan.checker_timeout,
                results,
                self.progress,
                self.node_checks,
                self.plan.checker_max_memory,
            )
        else:  # nothing ran: no history worth checking, no plots, no page
            linearizable, results["checker"], results["stats"] = None, None, {}
        checks = {"linearizable": {"valid": linearizable}, **self.node_checks}
        valid, code = verdicts.compose(checks, self.error)
        results["valid"] = valid
        results["verdict"] = verdicts.verdict(code)
        results["checks"] = {name: check.get("valid") for name, check in checks.items()}
        results.update(self.node_checks)
        results["exit_code"] = code

        store.write_results(self.run_dir, results)
        return RunOutcome(valid, code, self.run_dir, results)
