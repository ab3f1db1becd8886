"""Throughput and latency of raftchat under closed-loop load, next to PySyncObj and etcd on the same machine.

For each node count, each system runs every (clients, op) cell: N closed-loop clients
(one outstanding request each) for a warm-up and then a fixed measured window, all
against the leader. The same load generator (bench/loadgen.py) drives every system, and
its own ceiling is measured first against a server that answers at once.

    python -m bench.throughput                     # the full matrix (a few minutes)
    python -m bench.throughput --nodes 3 --clients 1,32 --ops send --duration 3

See bench/README.md for what is compared and why it is fair.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.contenders import (
    EtcdSystem,
    NullServer,
    PySyncObjSystem,
    RaftchatSystem,
    System,
    SystemUnavailable,
)
from bench.loadgen import (
    CellResult,
    cpu_times,
    fmt_ms,
    machine_busy,
    quiet_check_line,
    raise_on_signals,
    run_cell,
    spawn,
)

SYSTEMS = ("raftchat", "pysyncobj", "etcd")
OPS = ("send", "fetch")
FOREIGN_LIMIT = 0.10  # more CPU than this used by other processes during a cell makes it suspect
ETCD_REFERENCE = "etcd 3.4 on this machine class: ~2,200 writes/s at 32 clients, p99 73 ms"


@dataclass
class Cell:
    system: str
    nodes: int
    clients: int
    op: str
    result: CellResult
    loadgen_cpu: float  # fraction of one core used by this process during the cell
    leader_cpu: float  # fraction of one core used by the leader process
    others_cpu: float  # fraction of one core used by all other cluster processes together
    foreign_cpu: float  # fraction of the machine used by processes outside this benchmark

    @property
    def disturbed(self) -> bool:
        return self.foreign_cpu > FOREIGN_LIMIT


def _csv_ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("values must be positive integers")
    return values


def _csv_choice(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [x.strip() for x in text.split(",") if x.strip()]
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}; got {text!r}")
        return values

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=_csv_ints, default=[3, 5], help="cluster sizes (default 3,5)")
    parser.add_argument(
        "--clients", type=_csv_ints, default=[1, 8, 32], help="concurrent clients (default 1,8,32)"
    )
    parser.add_argument("--ops", type=_csv_choice(OPS), default=list(OPS), help="send,fetch (default both)")
    parser.add_argument(
        "--systems", type=_csv_choice(SYSTEMS), default=list(SYSTEMS), help="default: all three"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell (default 5)")
    parser.add_argument(
        "--warmup", type=float, default=1.5, help="unmeasured seconds before each cell (default 1.5)"
    )
    parser.add_argument(
        "--raftchat-client",
        choices=["real", "raw"],
        default="real",
        help="real: raftchat.client.Client (default); raw: the same framed-msgpack client PySyncObj gets",
    )
    parser.add_argument("--pysyncobj-fsync", choices=["batch", "none"], default="batch")
    parser.add_argument("--pysyncobj-append-batch", choices=["on", "off"], default="off")
    parser.add_argument(
        "--skip-ceiling", action="store_true", help="do not measure the load generator's ceiling"
    )
    parser.add_argument(
        "--profile-dir",
        help="py-spy record each raftchat leader (NAME.txt) and one follower (NAME-follower.txt) "
        "during its cells into this folder",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile-dir: sample only threads holding the GIL (CPU, not time blocked in fsync)",
    )
    parser.add_argument(
        "--work-dir", help="where clusters keep their data (default: a new folder under /tmp)"
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the data and logs afterwards")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0:
        parser.error("--duration must be positive and --warmup not negative")
    return args


# --------------------------------------------------------------------------- CPU accounting


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _cpu_snapshot(system: System) -> tuple[float, float, float, float, float]:
    """(wall, own CPU, leader CPU, other nodes' CPU, machine busy CPU) in seconds."""
    try:
        total, idle = cpu_times()
        machine = (total - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        machine = float("nan")
    own = time.process_time()
    leader = _proc_cpu(system.leader_pid) if system.leader_pid else 0.0
    others = sum(_proc_cpu(pid) for pid in system.pids() if pid != system.leader_pid)
    return time.perf_counter(), own, leader, others, machine


# --------------------------------------------------------------------------- running cells


async def run_system(system: System, args: argparse.Namespace, nodes: int, cells: list[Cell]) -> None:
    accounts = max(args.clients)
    await system.prepare(accounts)
    for clients in args.clients:
        for op in args.ops:
            system.check_alive()
            profiler = _start_profiler(system, args, nodes, clients, op)
            before = _cpu_snapshot(system)
            result = await run_cell(
                lambda i: system.open_session(i, accounts), op, clients, args.warmup, args.duration
            )
            after = _cpu_snapshot(system)
            if profiler is not None:
                await asyncio.to_thread(profiler.wait)
            elapsed = after[0] - before[0]
            used = [(a - b) / elapsed for a, b in zip(after[1:], before[1:], strict=True)]
            foreign = max(0.0, used[3] - used[0] - used[1] - used[2]) / (os.cpu_count() or 1)
            cell = Cell(system.name, nodes, clients, op, result, used[0], used[1], used[2], foreign)
            cells.append(cell)
            print(_cell_line(cell), flush=True)


def _start_profiler(
    system: System, args: argparse.Namespace, nodes: int, clients: int, op: str
) -> subprocess.Popen | None:
    if not args.profile_dir or system.name != "raftchat" or not system.leader_pid:
        return None
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        print("  (no py-spy on PATH: not profiling; pip install py-spy)", flush=True)
        return None
    out_dir = Path(args.profile_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"raftchat-{nodes}n-{clients}c-{op}"
    # The leader and one follower (what a follower spends per entry, every other node spends too).
    followers = [pid for pid in system.pids() if pid != system.leader_pid][:1]
    commands = []
    for pid, suffix in [(system.leader_pid, ""), *((pid, "-follower") for pid in followers)]:
        cmd = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, int(args.duration)))]
        cmd += ["--rate", "200", "--format", "raw", "--output", f"{base}{suffix}.txt", "--nonblocking"]
        if args.profile_gil:
            cmd.append("--gil")  # CPU only: not a thread blocked in fdatasync or idle
        commands.append(" ".join(cmd))
    # Start sampling when the measured window starts: sleep through the warm-up inside the child.
    shell = f"sleep {args.warmup:.3f}; " + " & ".join(commands) + " & wait"
    return spawn(["/bin/sh", "-c", shell], out_dir / "py-spy.log")


def _cell_line(cell: Cell) -> str:
    r = cell.result
    line = (
        f"  {cell.system:<9} {cell.nodes}n {cell.clients:>3}c {cell.op:<5} {r.ops_per_s:>9.0f} ops/s  "
        f"p50 {fmt_ms(r.p50):>6} ms  p99 {fmt_ms(r.p99):>6} ms  "
        f"cpu: loadgen {cell.loadgen_cpu:4.0%} leader {cell.leader_cpu:4.0%} others {cell.others_cpu:4.0%}"
        f" foreign {cell.foreign_cpu:4.0%}"
    )
    if cell.disturbed:
        line += "  (disturbed: other processes were busy)"
    if r.errors:
        line += f"  !! {r.error_summary()}"
    return line


async def measure_ceiling(null: NullServer, args: argparse.Namespace, kinds: list[str]) -> list[tuple]:
    """The load generator against a server that does nothing: the most any system could show here."""
    rows = []
    accounts = max(args.clients)
    duration = min(args.duration, 3.0)
    for kind in kinds:
        for clients in sorted({1, max(args.clients)}):
            for op in args.ops:
                before = time.process_time()
                result = await run_cell(
                    lambda i, kind=kind: null.open_session(kind, i, accounts), op, clients, 0.5, duration
                )
                cpu = (time.process_time() - before) / (duration + 0.5)
                rows.append((kind, clients, op, result, cpu))
                print(
                    f"  {kind:<24} {clients:>3}c {op:<5} {result.ops_per_s:>9.0f} ops/s"
                    f"  p50 {fmt_ms(result.p50):>6} ms  p99 {fmt_ms(result.p99):>6} ms"
                    f"  loadgen cpu {cpu:4.0%}" + (f"  !! {result.error_summary()}" if result.errors else ""),
                    flush=True,
                )
    return rows


# --------------------------------------------------------------------------- report


def _ratio(a: CellResult | None, b: CellResult | None) -> str:
    if a is None or b is None or b.ops_per_s == 0:
        return "-"
    return f"{a.ops_per_s / b.ops_per_s:.2f}x"


def print_table(cells: list[Cell], systems: list[str], args: argparse.Namespace) -> None:
    by_key = {(c.system, c.nodes, c.clients, c.op): c.result for c in cells}
    disturbed = {(c.system, c.nodes, c.clients, c.op) for c in cells if c.disturbed}
    header = f"{'nodes':>5} {'clients':>7} {'op':<5}"
    for name in systems:
        header += f" | {name + ' ops/s':>15} {'p50 ms':>7} {'p99 ms':>7}"
        if name != "raftchat":
            header += f" {'rc/' + name[:4]:>8}"
    print(header)
    print("-" * len(header))
    for nodes in args.nodes:
        for clients in args.clients:
            for op in args.ops:
                line = f"{nodes:>5} {clients:>7} {op:<5}"
                ours = by_key.get(("raftchat", nodes, clients, op))
                for name in systems:
                    r = by_key.get((name, nodes, clients, op))
                    if r is None:
                        line += f" | {'-':>15} {'-':>7} {'-':>7}"
                    else:
                        key = (name, nodes, clients, op)
                        mark = "*" if r.errors else "?" if key in disturbed else " "
                        line += f" | {r.ops_per_s:>14.0f}{mark} {fmt_ms(r.p50):>7} {fmt_ms(r.p99):>7}"
                    if name != "raftchat":
                        line += f" {_ratio(ours, r):>8}"
                print(line)
    if any(c.result.errors for c in cells):
        print("* = the cell had errors (listed with the cell above)")
    if disturbed:
        print(
            f"? = processes outside this benchmark used more than {FOREIGN_LIMIT:.0%} of the machine during "
            "the cell: its figures are lower and noisier than on a quiet machine; rerun it"
        )
    if len(systems) > 1:
        print(
            "rc/xxxx = raftchat ops/s divided by that system's ops/s in the same cell (> 1: raftchat faster)"
        )


def print_targets(cells: list[Cell]) -> None:
    by_key = {(c.system, c.nodes, c.clients, c.op): c.result for c in cells}
    noisy = {(c.system, c.nodes, c.clients, c.op) for c in cells if c.disturbed}

    def caveat(*keys: tuple) -> str:
        return (
            " (a cell was disturbed by other processes: rerun on a quiet machine)"
            if noisy & set(keys)
            else ""
        )

    print("\nTargets (fsync on; against etcd in this run):")
    for nodes in sorted({c.nodes for c in cells}):
        print_node_targets(nodes, by_key, caveat)
    print(f"  (reference: {ETCD_REFERENCE})")


def print_node_targets(nodes: int, by_key: dict, caveat: Callable[..., str]) -> None:
    """At ``nodes`` nodes: 32-client send at least 1.5 times etcd's ops/s with a p99 no worse
    than etcd's, and a 1-client send p50 no worse than etcd's."""
    rc32, etcd32 = by_key.get(("raftchat", nodes, 32, "send")), by_key.get(("etcd", nodes, 32, "send"))
    keys32 = (("raftchat", nodes, 32, "send"), ("etcd", nodes, 32, "send"))
    if rc32 is not None and etcd32 is not None:
        ratio = rc32.ops_per_s / etcd32.ops_per_s if etcd32.ops_per_s else float("inf")
        met = ratio >= 1.5 and rc32.p99 <= etcd32.p99
        print(
            f"  {nodes}n 32-client send >= 1.5x etcd's ops/s, p99 <= etcd's: raftchat {rc32.ops_per_s:.0f} "
            f"ops/s ({ratio:.2f}x etcd's {etcd32.ops_per_s:.0f}), p99 {fmt_ms(rc32.p99)} vs "
            f"{fmt_ms(etcd32.p99)} ms -> {'met' if met else 'MISSED'}" + caveat(*keys32)
        )
    else:
        print(f"  {nodes}n 32-client send: needs raftchat and etcd cells (--clients 32 --ops send)")
    rc1, etcd1 = by_key.get(("raftchat", nodes, 1, "send")), by_key.get(("etcd", nodes, 1, "send"))
    keys1 = (("raftchat", nodes, 1, "send"), ("etcd", nodes, 1, "send"))
    if rc1 is not None and etcd1 is not None:
        met = rc1.p50 <= etcd1.p50
        print(
            f"  {nodes}n 1-client send p50 <= etcd's: raftchat {fmt_ms(rc1.p50)} vs {fmt_ms(etcd1.p50)} ms "
            f"-> {'met' if met else 'MISSED'}" + caveat(*keys1)
        )
    else:
        print(f"  {nodes}n 1-client send p50: needs raftchat and etcd cells (--clients 1 --ops send)")


# --------------------------------------------------------------------------- main


def _has_pysyncobj() -> bool:
    try:
        return importlib.util.find_spec("pysyncobj") is not None
    except (ImportError, ValueError):
        return False


def make_system(name: str, work_dir: Path, args: argparse.Namespace) -> System:
    if name == "raftchat":
        return RaftchatSystem(work_dir, args.raftchat_client)
    if name == "pysyncobj":
        return PySyncObjSystem(work_dir, args.pysyncobj_fsync, args.pysyncobj_append_batch)
    return EtcdSystem(work_dir)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_on_signals()
    own_dir = args.work_dir is None
    root = Path(args.work_dir or tempfile.mkdtemp(prefix="raftchat-bench-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    cells: list[Cell] = []
    skipped: dict[str, str] = {}
    ran: list[str] = []
    print(
        f"raftchat throughput benchmark: nodes {args.nodes}, clients {args.clients}, ops {args.ops}, "
        f"{args.duration:g} s measured after {args.warmup:g} s warm-up per cell; "
        f"{os.cpu_count()} CPUs; data under {root}",
        flush=True,
    )
    print(quiet_check_line(machine_busy()), flush=True)
    try:
        if not args.skip_ceiling:
            print("\nLoad generator ceiling (null server in its own process, answers at once):", flush=True)
            kinds = []
            if "raftchat" in args.systems:
                kinds.append("raftchat.client.Client" if args.raftchat_client == "real" else "framed msgpack")
            if "pysyncobj" in args.systems and "framed msgpack" not in kinds and _has_pysyncobj():
                kinds.append("framed msgpack")
            if "etcd" in args.systems and EtcdSystem.binary() is not None:
                kinds.append("HTTP/JSON")
            null = NullServer(root)
            try:
                null.start()
                asyncio.run(measure_ceiling(null, args, kinds))
            finally:
                null.stop()
        for nodes in args.nodes:
            for name in args.systems:
                if name in skipped:
                    continue
                system = make_system(name, root / f"{name}-{nodes}n", args)
                print(f"\n{name}, {nodes} nodes: starting", flush=True)
                try:
                    system.start(nodes)
                    print(f"  {system.describe()}", flush=True)
                    asyncio.run(run_system(system, args, nodes, cells))
                    if name not in ran:
                        ran.append(name)
                except SystemUnavailable as exc:
                    print(f"  SKIPPED: {exc}", flush=True)
                    if name != "raftchat" and not any(c.system == name for c in cells):
                        skipped[name] = str(exc)
                except Exception as exc:  # one broken system must not cost the other systems' figures
                    print(f"  FAILED: {type(exc).__name__}: {exc}; logs under {system.work_dir}", flush=True)
                    args.keep_data = True
                finally:
                    system.stop()
    except KeyboardInterrupt:
        print("\ninterrupted: clusters stopped; partial results follow", file=sys.stderr)
    finally:
        if own_dir and not args.keep_data:
            shutil.rmtree(root, ignore_errors=True)
    print("\nResults (ops/s = completed ops per measured second; latencies are per op, closed loop):")
    shown = [s for s in SYSTEMS if s in args.systems and (s in ran or any(c.system == s for c in cells))]
    if cells:
        print_table(cells, shown or ["raftchat"], args)
    else:
        print("  no cell completed")
    for name in SYSTEMS[1:]:
        if name in args.systems and name in skipped:
            print(f"comparison with {name} skipped: {skipped[name]}")
        elif name not in args.systems:
            print(f"comparison with {name} skipped: not selected (--systems)")
    if "raftchat" in args.systems:
        print_targets(cells)
    print(quiet_check_line(machine_busy()).replace("before start", "after the run"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
