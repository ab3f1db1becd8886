"""How long raftchat stops acknowledging writes when its leader is killed with SIGKILL.

A few closed-loop clients keep writing (send_message) through raftchat's own Client.
Each round kills the leader with kill -9 and measures the time from the kill to the
first write acknowledged after it by a surviving node; then restarts the killed node and
waits until it has caught up and leadership has been stable for a while before the
next round. The cluster runs with its default timing (cluster.yaml defaults).

    python -m bench.failover                 # 3 nodes, 20 rounds
    python -m bench.failover --nodes 5 --rounds 5
    python -m bench.failover --preload-mib 24 --snapshot-every 300 --down 3

``--preload-mib`` grows the chat state with large messages before the first round, and
``--snapshot-every`` compacts more often: a restarted node then catches up through a
snapshot many times the peer frame limit, as it does after hours of chat, even when the
machine is too busy for the writers to grow the state that far in the run itself.
``--down`` keeps the killed node down while the others write on, so that they compact
past its log and it must take the snapshot.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import (
    machine_busy,
    message_text,
    password_of,
    percentile,
    quiet_check_line,
    raise_on_signals,
    sender_name,
)
from raftchat.client import Client, OperationError
from raftchat.localcluster import LocalCluster, loopback_config

PRELOAD_TEXT = 100_000  # characters per preload message
_INSTALLED = re.compile(r"installed snapshot at index \d+ \((\d+) bytes\)")


@dataclass
class Round:
    number: int
    killed: str
    old_term: int
    new_leader: str | None = None
    elected: float | None = None  # seconds from the kill to the new leader's "became leader" log line
    failover: float | None = None  # seconds from the kill to the first acknowledged write
    rejoin: float | None = None  # seconds from the restart to caught up and stable
    failed_writes: int = 0  # writes that gave up (OperationError) during the round
    slowest_write: float = 0.0  # the longest single write that completed during the round


@dataclass
class Load:
    """Shared by the writer tasks: what the current round is waiting for."""

    kill_time: float | None = None
    killed: str | None = None
    first_ack: float | None = None
    first_ack_node: str | None = None
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    failed: int = 0
    slowest: float = 0.0
    writes: int = 0
    stop: bool = False
    errors: list[str] = field(default_factory=list)

    def arm(self, killed: str, kill_time: float) -> None:
        self.killed, self.kill_time = killed, kill_time
        self.first_ack = self.first_ack_node = None
        self.acked.clear()
        self.failed = 0
        self.slowest = 0.0


async def writer(index: int, clients: int, cluster: LocalCluster, load: Load) -> None:
    """One closed-loop client: send_message as fast as the cluster acknowledges."""
    client = Client(cluster.config, timeout=5.0)
    sender, to = sender_name(index), sender_name((index + 1) % clients)
    n = 0
    try:
        while not load.stop:
            n += 1
            started = time.perf_counter()
            try:
                result = await client.call(
                    "send_message",
                    sender=sender,
                    to=to,
                    text=message_text(index, n),
                    password=password_of(sender),
                )
            except OperationError as exc:
                load.failed += 1
                if len(load.errors) < 20:
                    load.errors.append(str(exc))
                continue
            now = time.perf_counter()
            if result.status != "ok":
                load.failed += 1
                if len(load.errors) < 20:
                    load.errors.append(f"{result.status}: {result.error}")
                await asyncio.sleep(0.01)
                continue
            load.writes += 1
            load.slowest = max(load.slowest, now - started)
            # Only an answer from a surviving node proves the cluster is writable again:
            # an answer the killed leader sent just before dying could still be in flight.
            if (
                load.kill_time is not None
                and load.first_ack is None
                and now > load.kill_time
                and client.leader not in (None, load.killed)
            ):
                load.first_ack, load.first_ack_node = now, client.leader
                load.acked.set()
    finally:
        await client.close()


async def preload(cluster: LocalCluster, size: int, writers: int = 4) -> None:
    """Grow the state by ``size`` bytes of message text before the rounds."""
    count = size // PRELOAD_TEXT + 1
    started = time.perf_counter()

    async def one(w: int) -> None:
        client = Client(cluster.config, timeout=30.0)
        try:
            for n in range(w, count, writers):
                text = f"preload {n} ".ljust(PRELOAD_TEXT, "p")
                result = await client.call(
                    "send_message",
                    sender=sender_name(0),
                    to=sender_name(0),
                    text=text,
                    password=password_of(sender_name(0)),
                )
                if result.status != "ok":
                    raise RuntimeError(f"preload write failed: {result.status}: {result.error}")
        finally:
            await client.close()

    await asyncio.gather(*(one(w) for w in range(writers)))
    took = time.perf_counter() - started
    print(f"  preloaded {count} messages of {PRELOAD_TEXT} characters in {took:.1f} s", flush=True)


def snapshot_installs(cluster: LocalCluster) -> list[int]:
    """Sizes of the snapshots that nodes installed from a leader, from their logs."""
    sizes = []
    for node_id in cluster.ids:
        try:
            text = cluster.log_path(node_id).read_text(errors="replace")
        except OSError:
            continue
        sizes += [int(size) for size in _INSTALLED.findall(text)]
    return sizes


async def statuses(cluster: LocalCluster) -> dict[str, dict | None]:
    """Node statuses, fetched in a thread so the writers' acknowledgements are never delayed."""
    return await asyncio.to_thread(cluster.statuses)


def current_leader(sts: dict[str, dict | None]) -> tuple[str, dict] | None:
    best = None
    for node_id, status in sts.items():
        if status and status.get("role") == "leader" and (best is None or status["term"] > best[1]["term"]):
            best = (node_id, status)
    return best


async def wait_stable(
    cluster: LocalCluster, rejoining: str | None, stable_for: float, timeout: float
) -> float:
    """Wait until every node is up, the rejoining node has caught up, and the leader has not changed
    for ``stable_for`` seconds; returns how long it took."""
    started = time.perf_counter()
    deadline = started + timeout
    leader_since: tuple[str, int, float] | None = None
    while time.perf_counter() < deadline:
        sts = await statuses(cluster)
        found = current_leader(sts)
        ok = found is not None and all(s is not None for s in sts.values())
        if ok and found is not None:
            leader_id, lead = found
            if rejoining is not None:
                mine = sts[rejoining] or {}
                ok = (
                    mine.get("term") == lead["term"]
                    and mine.get("leader") == leader_id
                    and mine.get("applied", -1) >= lead["commit"] - 50  # within a few batches of the leader
                )
            key = (leader_id, lead["term"])
            if leader_since is None or leader_since[:2] != key:
                leader_since = (*key, time.perf_counter())
            if ok and time.perf_counter() - leader_since[2] >= stable_for:
                return time.perf_counter() - started
        await asyncio.sleep(0.05)
    raise TimeoutError(f"cluster not stable within {timeout:g} s; statuses: {await statuses(cluster)}")


async def run(args: argparse.Namespace, cluster: LocalCluster, rounds: list[Round]) -> None:
    """Run the rounds, appending each to ``rounds`` as it completes (so an interrupt keeps them)."""
    leader = cluster.wait_for_leader(timeout=20.0)
    setup = Client(cluster.config, prefer=leader, timeout=20.0)
    try:
        for i in range(args.clients):
            result = await setup.call(
                "create_account", user=sender_name(i), password=password_of(sender_name(i))
            )
            if result.status not in ("ok", "user_exists"):
                raise RuntimeError(f"create_account failed: {result.status}: {result.error}")
    finally:
        await setup.close()
    if args.preload_mib:
        await preload(cluster, args.preload_mib << 20)
    load = Load()
    tasks = [asyncio.create_task(writer(i, args.clients, cluster, load)) for i in range(args.clients)]
    try:
        await wait_stable(cluster, None, args.settle, timeout=30.0)
        for number in range(1, args.rounds + 1):
            found = current_leader(await statuses(cluster))
            if found is None:
                await wait_stable(cluster, None, args.settle, timeout=30.0)
                found = current_leader(await statuses(cluster))
                if found is None:
                    raise RuntimeError("no leader to kill")
            killed, status = found
            writes_before = load.writes
            await asyncio.sleep(0.2)  # make sure the load is flowing through this leader
            if load.writes == writes_before:
                print(
                    f"  warning: no writes were acknowledged in the 0.2 s before round {number}", flush=True
                )
            rnd = Round(number, killed, status["term"])
            kill_wall = time.time()
            kill_time = time.perf_counter()
            load.arm(killed, kill_time)
            cluster.kill(killed)  # SIGKILL, then reap: a few hundred microseconds
            try:
                await asyncio.wait_for(load.acked.wait(), args.round_timeout)
                rnd.failover = (load.first_ack or kill_time) - kill_time
                rnd.new_leader = load.first_ack_node
                if rnd.new_leader:
                    became = leader_since(cluster.log_path(rnd.new_leader), rnd.old_term)
                    rnd.elected = None if became is None else became - kill_wall
            except TimeoutError:
                print(f"  round {number}: no write acknowledged within {args.round_timeout:g} s", flush=True)
            rnd.failed_writes = load.failed
            if args.down:
                await asyncio.sleep(args.down)  # the survivors write (and compact) on meanwhile
            cluster.start(killed)  # on the main thread: the child's lifetime is tied to the starting thread
            rnd.rejoin = await wait_stable(cluster, killed, args.settle, timeout=60.0)
            rnd.slowest_write = load.slowest
            rounds.append(rnd)
            print(_round_line(rnd), flush=True)
    finally:
        load.stop = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if load.errors:
        print(f"  sample write errors: {load.errors[:3]}", flush=True)


_ROLE_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \S+ INFO \S+: term (\d+), leader, ")


def leader_since(log_path: Path, after_term: int) -> float | None:
    """When (wall clock) the node logged becoming leader in a term after ``after_term``.

    Best effort: it reads the node's own log line ("term N, leader, ..."), which has
    millisecond resolution; None if the line is not there in that form.
    """
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        match = _ROLE_LINE.match(line)
        if match and int(match.group(3)) > after_term:
            stamp = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
            return stamp + int(match.group(2)) / 1000
    return None


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _round_line(r: Round) -> str:
    return (
        f"  round {r.number:>2}: killed leader {r.killed} (term {r.old_term}) -> "
        f"new leader {r.new_leader or '?'} (elected after {_ms(r.elected)}); "
        f"failover {_ms(r.failover)}; rejoined+stable {_ms(r.rejoin)}; "
        f"failed writes {r.failed_writes}; slowest write {_ms(r.slowest_write)}"
    )


def summarize(rounds: list[Round]) -> None:
    times = [r.failover for r in rounds if r.failover is not None]
    missing = len(rounds) - len(times)
    print(
        f"\nFailover (kill -9 of the leader -> first write acknowledged by a surviving node), "
        f"{len(rounds)} rounds:"
    )
    if not times:
        print("  no round recovered")
        return
    print(
        f"  median {statistics.median(times) * 1000:.0f} ms, p99 {percentile(times, 99) * 1000:.0f} ms "
        f"(nearest rank: with fewer than 100 rounds this is the maximum), max {max(times) * 1000:.0f} ms, "
        f"min {min(times) * 1000:.0f} ms, mean {statistics.fmean(times) * 1000:.0f} ms"
        + (f"; {missing} round(s) never recovered" if missing else "")
    )
    elected = [r.elected for r in rounds if r.elected is not None]
    if elected:
        print(
            f"  of which election (kill -> new leader's log line): "
            f"median {statistics.median(elected) * 1000:.0f} ms, max {max(elected) * 1000:.0f} ms; "
            "the rest is committing the new term's first entry and the clients finding the new leader"
        )
    median_ok = statistics.median(times) <= 0.200
    p99_ok = percentile(times, 99) <= 0.400 and not missing
    print(
        f"  targets: median <= 200 ms {'met' if median_ok else 'MISSED'}; "
        f"p99 <= 400 ms {'met' if p99_ok else 'MISSED'}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3, help="cluster size (default 3)")
    parser.add_argument("--rounds", type=int, default=20, help="leader kills (default 20)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent writers (default 4)")
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds of unchanged leadership required between rounds"
    )
    parser.add_argument(
        "--round-timeout", type=float, default=30.0, help="give up on a round after this long"
    )
    parser.add_argument(
        "--preload-mib", type=int, default=0, help="MiB of message text written before the first round"
    )
    parser.add_argument(
        "--snapshot-every", type=int, help="entries between snapshots (default: the cluster default)"
    )
    parser.add_argument(
        "--down", type=float, default=0.0, help="seconds the killed leader stays down before its restart"
    )
    parser.add_argument(
        "--work-dir", help="where the cluster keeps its data (default: a new folder under /tmp)"
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the data and logs afterwards")
    args = parser.parse_args(argv)
    if args.nodes < 3:
        parser.error("--nodes must be at least 3: a smaller cluster cannot survive losing its leader")
    if args.rounds < 1 or args.clients < 1:
        parser.error("--rounds and --clients must be positive")
    if args.preload_mib < 0 or args.down < 0 or (args.snapshot_every is not None and args.snapshot_every < 1):
        parser.error("--preload-mib and --down must not be negative, --snapshot-every must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_on_signals()
    own_dir = args.work_dir is None
    root = Path(args.work_dir or tempfile.mkdtemp(prefix="raftchat-failover-")).resolve()
    config = loopback_config(args.nodes)
    if args.preload_mib:
        config = dataclasses.replace(config, max_message=PRELOAD_TEXT)
    if args.snapshot_every:
        config = dataclasses.replace(config, snapshot_every=args.snapshot_every)
    cluster = LocalCluster(root, args.nodes, machine="chat", config=config)
    print(
        f"raftchat failover benchmark: {args.nodes} nodes, {args.rounds} rounds, {args.clients} writers; "
        f"election timeout {config.election_timeout_ms}-{2 * config.election_timeout_ms} ms, "
        f"heartbeat {config.heartbeat_ms} ms, tick {config.tick_ms} ms, "
        f"snapshot every {config.snapshot_every} entries; data under {root}",
        flush=True,
    )
    print(quiet_check_line(machine_busy()), flush=True)
    rounds: list[Round] = []
    code = 0
    try:
        cluster.start_all()
        asyncio.run(run(args, cluster, rounds))
    except KeyboardInterrupt:
        print("\ninterrupted: cluster stopped", file=sys.stderr)
        code = 130
    except (TimeoutError, RuntimeError) as exc:
        print(f"\nfailover benchmark aborted: {exc}; node logs under {root}", file=sys.stderr)
        code = 1
    finally:
        cluster.stop_all()
        installs = snapshot_installs(cluster)
        if own_dir and not args.keep_data and code in (0, 130):  # keep the logs of a failed run
            shutil.rmtree(root, ignore_errors=True)
    if rounds:
        summarize(rounds)
    print(
        f"  snapshots installed from a leader: {len(installs)}"
        + (f", largest {max(installs) / (1 << 20):.1f} MiB" if installs else "")
    )
    print(quiet_check_line(machine_busy()).replace("before start", "after the run"))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
