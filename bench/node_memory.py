"""Node memory over a long run: does a raftchat node's resident memory stay flat under load?

A local cluster (3 nodes, frequent compaction) takes a steady chat load for ``--duration``
seconds: closed-loop clients create accounts (each new password costs the leader one scrypt
derivation, as the harness's chat workload does with every group of users), send messages
of ``--text-size`` characters, fetch inboxes and delete the accounts they are done with, so the
replicated state stays the same size all run long (``--grow`` keeps them: the state grows).
Every ``--pause-every`` seconds one follower is stopped (SIGSTOP) for ``--pause-for`` seconds, so
that it falls behind the leader's snapshot and catches up through InstallSnapshot, the way a
killed or cut-off node does in a soak run, while keeping its process (a kill would reset the
very memory being measured).

Every ``--interval`` seconds it prints each node's RSS (from /proc), the operations so far and the
size of the newest snapshot (the replicated state); with ``--trace`` the nodes also run
tracemalloc (``RAFTCHAT_TRACEMALLOC``, see raftchat.memtrace), and each sample shows the live
Python allocations and malloc's free-but-kept bytes beside the RSS: RSS climbing while the traced
total stays flat is the allocator, not a leak of objects. ``--untuned`` starts the nodes with
``RAFTCHAT_MALLOC_TUNING=0`` (glibc's dynamic thresholds, see raftchat.allocator), for before/after.

    python -m bench.node_memory                           # 5 minutes, the allocator tuned
    python -m bench.node_memory --untuned                 # the same with glibc's defaults
    python -m bench.node_memory --duration 600 --trace    # with tracemalloc reports in the data dirs
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import machine_busy, password_of, quiet_check_line, raise_on_signals
from raftchat import allocator, memtrace
from raftchat.client import Client, OperationError
from raftchat.localcluster import LocalCluster, loopback_config, node_status
from raftchat.memtrace import status_bytes

MIB = 1 << 20
DONE = ("ok", "user_exists", "index_past_end")  # answers of operations that ran (a fetch may find none)
STATUS_TIMEOUT = 2.0  # a node of a busy machine answers its status late; a missed sample shows as -


@dataclass
class Load:
    ops: int = 0
    failed: int = 0
    stop: bool = False
    errors: list[str] = field(default_factory=list)

    def failure(self, why: str) -> None:
        self.failed += 1
        if len(self.errors) < 10:
            self.errors.append(why)


@dataclass
class Sample:
    t: float
    ops: int
    state: int  # bytes of the newest snapshot file of any node
    rss: dict[str, int | None]
    traced: dict[str, int | None]
    kept: dict[str, int | None]  # malloc's free-but-kept bytes (with --trace)
    snapshots: dict[str, tuple[int, int]]  # node -> (taken, installed)


async def client_loop(index: int, cluster: LocalCluster, args: argparse.Namespace, load: Load) -> None:
    """Closed loop: a new pair of accounts every ``ops_per_user`` operations (the previous pair
    deleted, unless ``--grow``), and sends and fetches between them."""
    client = Client(cluster.config, timeout=10.0)
    rng = random.Random(index)
    text = "x" * args.text_size
    users: list[str] = []
    try:
        for generation in itertools.count():
            if load.stop:
                return
            if not args.grow:  # a steady state: the previous accounts and their inboxes go
                for user in users:
                    await call(client, load, "delete_account", user=user, password=password_of(user))
            users = [f"c{index}g{generation}u{k}" for k in range(2)]
            for user in users:
                await call(client, load, "create_account", user=user, password=password_of(user))
            for n in range(args.ops_per_user):
                if load.stop:
                    return
                sender, to = users[n % 2], users[(n + 1) % 2]
                if rng.random() < args.fetch_share:
                    inbox = {"user": to, "from_index": 1, "password": password_of(to)}
                    await call(client, load, "fetch_messages", **inbox)
                else:
                    await call(
                        client,
                        load,
                        "send_message",
                        sender=sender,
                        to=to,
                        text=f"{n} {text}",
                        password=password_of(sender),
                    )
    finally:
        await client.close()


async def call(client: Client, load: Load, op: str, **args: object) -> None:
    try:
        result = await client.call(op, **args)
    except OperationError as exc:
        load.failure(f"{op}: {exc}")
        await asyncio.sleep(0.05)
        return
    if result.status not in DONE:
        load.failure(f"{op}: {result.status}: {result.error}")
        return
    load.ops += 1


def newest_snapshot_bytes(cluster: LocalCluster) -> int:
    files = [p for node in cluster.ids for p in (cluster.data_dir / node).glob("snapshot-*.bin")]
    sizes = []
    for path in files:
        try:
            sizes.append(path.stat().st_size)
        except FileNotFoundError:
            pass  # replaced by a newer one meanwhile
    return max(sizes, default=0)


def sample(cluster: LocalCluster, started: float, load: Load) -> Sample:
    statuses = {n.id: node_status(n.client, STATUS_TIMEOUT) for n in cluster.config.nodes}
    pids = {node: proc.pid for node, proc in cluster.procs.items()}
    traced, kept, snaps = {}, {}, {}
    for node in cluster.ids:
        status = statuses.get(node) or {}
        traced[node] = status.get("traced")
        kept[node] = (status.get("malloc") or {}).get("free")
        counts = status.get("snapshots") or {}
        snaps[node] = (counts.get("taken", 0), counts.get("installed", 0))
    return Sample(
        time.monotonic() - started,
        load.ops,
        newest_snapshot_bytes(cluster),
        {node: status_bytes(pid) for node, pid in pids.items()},
        traced,
        kept,
        snaps,
    )


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.1f}"


def header(ids: list[str], trace: bool) -> str:
    cols = "".join(f" {n + ' RSS':>8}" + (f" {n + ' py':>7} {n + ' kept':>8}" if trace else "") for n in ids)
    return f"{'t (s)':>6} {'ops':>8} {'ops/s':>6} {'state MiB':>9}{cols}  snapshots taken/installed"


def line(s: Sample, prev: Sample | None, ids: list[str], trace: bool) -> str:
    rate = (s.ops - prev.ops) / (s.t - prev.t) if prev and s.t > prev.t else 0.0
    cols = "".join(
        f" {mib(s.rss.get(n)):>8}" + (f" {mib(s.traced.get(n)):>7} {mib(s.kept.get(n)):>8}" if trace else "")
        for n in ids
    )
    snaps = " ".join(f"{n}:{t}/{i}" for n, (t, i) in s.snapshots.items())
    return f"{s.t:>6.0f} {s.ops:>8} {rate:>6.0f} {s.state / MIB:>9.2f}{cols}  {snaps}"


def pauser(cluster: LocalCluster, args: argparse.Namespace, stop: threading.Event) -> None:
    """Stop a follower now and then, so it needs the leader's snapshot when it resumes."""
    rng = random.Random(7)
    while not stop.wait(args.pause_every):
        leader = cluster.leader()
        followers = [n for n in cluster.ids if n != leader]
        if not followers:
            continue
        victim = rng.choice(followers)
        cluster.signal(victim, signal.SIGSTOP)
        try:
            stop.wait(args.pause_for)
        finally:
            cluster.signal(victim, signal.SIGCONT)


async def drive(cluster: LocalCluster, args: argparse.Namespace) -> list[Sample]:
    load = Load()
    stop_pauser = threading.Event()
    pause_thread = None
    if args.pause_every > 0:
        pause_thread = threading.Thread(target=pauser, args=(cluster, args, stop_pauser), daemon=True)
        pause_thread.start()
    started = time.monotonic()
    clients = [asyncio.create_task(client_loop(i, cluster, args, load)) for i in range(args.clients)]
    samples: list[Sample] = []
    ids = cluster.ids
    print(header(ids, args.trace), flush=True)
    try:
        while True:
            s = await asyncio.to_thread(sample, cluster, started, load)
            print(line(s, samples[-1] if samples else None, ids, args.trace), flush=True)
            samples.append(s)
            if s.t >= args.duration:
                break
            await asyncio.sleep(max(0.0, min(args.interval, args.duration - s.t)))
    finally:
        load.stop = True
        stop_pauser.set()
        if pause_thread is not None:
            pause_thread.join()
        await asyncio.wait(clients, timeout=15)
        for task in clients:
            task.cancel()
    example = f" (e.g. {load.errors[0]})" if load.errors else ""
    print(f"operations: {load.ops} ok, {load.failed} failed{example}")
    return samples


def summary(samples: list[Sample], ids: list[str], warmup: float) -> list[str]:
    """RSS after the warm-up against the end, per node: what a soak's flat memory means."""
    after = [s for s in samples if s.t >= warmup] or samples
    first, last = after[0], samples[-1]
    minutes = max((last.t - first.t) / 60, 1e-9)
    state = f"state {mib(first.state)} -> {mib(last.state)} MiB"
    lines = [f"RSS from t={first.t:.0f} s to t={last.t:.0f} s ({state}):"]
    for node in ids:
        start, end = first.rss.get(node), last.rss.get(node)
        peak = max((s.rss.get(node) or 0) for s in samples)
        if start is None or end is None:
            lines.append(f"  {node}: not sampled")
            continue
        lines.append(
            f"  {node}: {start / MIB:.1f} -> {end / MIB:.1f} MiB (peak {peak / MIB:.1f}), "
            f"{(end - start) / MIB / minutes:+.2f} MiB/min"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--nodes", type=int, default=3)
    add("--clients", type=int, default=8)
    add("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    add("--interval", type=float, default=15.0, help="seconds between samples")
    add("--warmup", type=float, default=30.0, help="seconds before the summary's first sample")
    add("--snapshot-every", type=int, default=500, help="applied entries between snapshots")
    add("--text-size", type=int, default=300, help="characters per message")
    add("--ops-per-user", type=int, default=40, help="operations before new accounts")
    add("--grow", action="store_true", help="keep every account: the state grows all run long")
    add("--fetch-share", type=float, default=0.3, help="share of fetches among the ops")
    add("--pause-every", type=float, default=20.0, help="seconds between follower pauses (0: none)")
    add("--pause-for", type=float, default=4.0, help="seconds a paused follower stays stopped")
    add("--trace", action="store_true", help="run tracemalloc in the nodes (slower)")
    add("--untuned", action="store_true", help="leave glibc malloc's thresholds dynamic")
    add("--keep-data", action="store_true", help="keep the data folder (logs, tracemalloc.txt)")
    args = parser.parse_args()
    if args.nodes < 1 or args.clients < 1 or args.duration <= 0 or args.interval <= 0:
        parser.error("--nodes, --clients, --duration and --interval must be positive")

    raise_on_signals()
    print(quiet_check_line(machine_busy()), flush=True)
    os.environ[allocator.ENV] = "0" if args.untuned else "1"
    if args.trace:
        os.environ[memtrace.ENV] = str(max(5.0, args.interval))
    else:
        os.environ.pop(memtrace.ENV, None)
    print(
        f"{args.nodes} nodes, {args.clients} clients, {args.duration:.0f} s, "
        f"{'growing' if args.grow else 'steady'} state, "
        f"snapshot_every {args.snapshot_every}, texts of {args.text_size} characters, "
        f"a follower paused {args.pause_for:g} s every {args.pause_every:g} s; "
        f"malloc {'untuned (glibc defaults)' if args.untuned else 'tuned (raftchat.allocator)'}"
        + ("; tracemalloc on" if args.trace else ""),
        flush=True,
    )
    data = Path(tempfile.mkdtemp(prefix="raftchat-node-memory-"))
    try:
        config = loopback_config(args.nodes, {"snapshot_every": args.snapshot_every})
        with LocalCluster(data, args.nodes, config=config) as cluster:
            cluster.start_all()
            cluster.wait_for_leader(timeout=30)
            samples = asyncio.run(drive(cluster, args))
            for text in summary(samples, cluster.ids, args.warmup):
                print(text)
    finally:
        if args.keep_data:
            print(f"data kept in {data}")
        else:
            shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
