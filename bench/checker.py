"""How fast the linearizability checker is, on the external corpus and a large chat history.

    python bench/checker.py                  # the corpus, then a generated 100,000-op chat history
    python bench/checker.py --corpus-only
    python bench/checker.py --chat-ops 20000 --groups 20

Times cover checking only (reading and parsing excluded); each corpus file's time is the
best of ``--repeat`` runs, since single files take about a millisecond. Peak memory is
measured in a separate run under tracemalloc (which slows Python down, so it never
overlaps the timed run): the peak of Python allocations during the check, history excluded.

The chat history comes from simulating a correct concurrent object: closed-loop clients
over independent user groups whose operations overlap at random, each taking effect
atomically at a random instant between its invocation and its completion on a real
``raftchat.chat.ChatMachine`` per group. Some operations end ``info`` (timed out) and took
effect or not, at random. Such a history is linearizable by construction.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from checker import check  # noqa: E402
from checker.models import get_model  # noqa: E402
from histories import Op, read_history  # noqa: E402
from raftchat.chat import ChatMachine  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"


def expected_verdicts(corpus: Path) -> dict[Path, bool]:
    """Every corpus file with its verdict: expected.csv files, knossos good/ and bad/."""
    verdicts: dict[Path, bool] = {}
    for table in sorted(corpus.glob("*/expected.csv")):
        with table.open(newline="") as f:
            for row in csv.DictReader(f):
                verdicts[table.parent / row["file"]] = row["expected"] == "linearizable"
    for kind, valid in (("good", True), ("bad", False)):
        for path in sorted(corpus.glob(f"knossos-cas-register/{kind}/*.edn")):
            verdicts[path] = valid
    return verdicts


def measure(run: Callable[[], Any], repeat: int = 1, memory: bool = True) -> tuple[Any, float, int]:
    """(result, best time in s, tracemalloc peak in bytes or -1)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    peak = -1
    if memory:
        tracemalloc.start()
        run()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, best, peak


def bench_corpus(corpus: Path, repeat: int) -> bool:
    if not corpus.is_dir():
        print(f"corpus skipped: {corpus} not found")
        return True
    print(f"{'file':<48} {'ops':>5} {'verdict':<10} {'expected':<10} {'ms':>8} {'peak KiB':>9}")
    totals: dict[str, list[float]] = {}
    agree = 0
    verdicts = expected_verdicts(corpus)
    for path, want in verdicts.items():
        history = read_history(path)
        model = get_model(history.model_hint, history.initial_hint)
        result, seconds, peak = measure(lambda h=history, m=model: check(h.ops, m, shrink=False), repeat)
        agree += result.valid == want
        folder = path.parent.name if path.parent.name not in ("good", "bad") else path.parent.parent.name
        total = totals.setdefault(folder, [0, 0.0, 0])
        total[0] += 1
        total[1] += seconds
        total[2] = max(total[2], peak)
        print(
            f"{str(path.relative_to(corpus)):<48} {len(result.ops):>5} {_verdict(result.valid):<10} "
            f"{_verdict(want):<10} {seconds * 1e3:>8.2f} {peak / 1024:>9.0f}"
            + ("" if result.valid == want else "   <-- DISAGREES")
        )
    print()
    for folder, (files, seconds, peak) in totals.items():
        print(f"{folder:<24} {files:>3} files  {seconds:.3f} s  max peak {peak / 1024:.0f} KiB")
    print(f"verdicts agreeing with the corpus: {agree}/{len(verdicts)}")
    return agree == len(verdicts)


def chat_history(
    n_ops: int = 100_000, groups: int = 100, clients: int = 5, info_rate: float = 0.01, seed: int = 1
) -> list[Op]:
    """A linearizable chat history of ``n_ops`` operations (see the module docstring)."""
    rng = random.Random(seed)
    machines = [ChatMachine() for _ in range(groups)]
    records: list[Op] = []
    events: list[tuple[int, int, str, int]] = []  # (time ns, seq, what, client)
    process = list(range(groups * clients))  # a client gets a new process number after info
    pending: dict[int, tuple[str, dict[str, Any], bool]] = {}  # client -> (f, args, ends info)
    results: dict[int, Any] = {}
    next_process, seq, started = groups * clients, 0, 0

    def schedule(at: int, what: str, client: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, seq, what, client))

    for client in range(groups * clients):
        schedule(rng.randrange(1_000_000), "invoke", client)
    while events:
        now, _, what, client = heapq.heappop(events)
        group = client // clients
        if what == "invoke":
            if started == n_ops:
                continue
            started += 1
            f, args = _chat_op(rng, group, machines[group])
            pending[client] = (f, args, rng.random() < info_rate)
            value = dict(args, group=group)
            records.append(Op(len(records), "invoke", process[client], f, value, now))
            schedule(now + rng.randrange(1, 2_000_000), "apply", client)
        elif what == "apply":
            f, args, info = pending[client]
            if not info or rng.random() < 0.5:  # an op that timed out took effect half the time
                results[client] = machines[group].apply({"op": f, **args})
            schedule(now + rng.randrange(1, 2_000_000), "complete", client)
        else:
            f, args, info = pending.pop(client)
            result = results.pop(client, None)
            if info:
                records.append(Op(len(records), "info", process[client], f, dict(args, group=group), now))
                process[client], next_process = next_process, next_process + 1
            else:
                value = {"status": result.status, "value": result.value}
                records.append(Op(len(records), "ok", process[client], f, value, now))
            schedule(now + rng.randrange(1, 500_000), "invoke", client)
    return records


def _chat_op(rng: random.Random, group: int, machine: ChatMachine) -> tuple[str, dict[str, Any]]:
    """A random operation of a client of ``group``, mostly sends and fetches between its users."""
    users = [f"g{group}-u{k}" for k in range(6)]
    user, other = rng.sample(users, 2)
    kind = rng.choices(
        ["send", "fetch", "create", "check", "list", "delete", "invalid"], [40, 25, 12, 8, 6, 3, 6]
    )[0]
    if kind == "send":
        return "send_message", {"sender": user, "to": other, "text": f"m{rng.randrange(10**6)}"}
    if kind == "fetch":
        count = len(machine._inboxes.get(user, ()))  # a client that roughly follows its inbox
        return "fetch_messages", {"user": user, "from_index": max(1, count - rng.randrange(4))}
    if kind == "create":
        return "create_account", {"user": user}
    if kind == "check":
        return "check_account", {"user": user}
    if kind == "list":
        return "list_accounts", {"pattern": rng.choice([f"g{group}-u*", f"g{group}-u[0-2]"])}
    if kind == "delete":
        return "delete_account", {"user": user}
    return rng.choice(
        [
            ("create_account", {"user": ""}),
            ("create_account", {"user": f"g{group}-" + "x" * 20}),
            ("send_message", {"sender": user, "to": other, "text": "y" * 501}),
            ("fetch_messages", {"user": user, "from_index": 0}),
            ("fetch_messages", {"user": user, "from_index": 10**6}),
        ]
    )


def bench_chat(n_ops: int, groups: int, memory: bool) -> bool:
    start = time.perf_counter()
    history = chat_history(n_ops, groups)
    generated = time.perf_counter() - start
    print(
        f"\nchat: {n_ops} ops over {groups} groups ({len(history)} records, generated in {generated:.1f} s)"
    )
    result, seconds, peak = measure(lambda: check(history, get_model("chat"), shrink=False), 1, memory)
    unknown = sum(op.ret is None for op in result.ops)
    print(
        f"chat: {_verdict(result.valid)}, {len(result.ops)} ops ({unknown} unknown outcome), "
        f"{len(result.partition_ops)} partitions, checked in {seconds:.2f} s"
        + (f", peak {peak / 2**20:.1f} MiB (tracemalloc)" if peak >= 0 else "")
    )
    return result.valid is True


def _verdict(valid: bool | str) -> str:
    return {True: "linear", False: "NOT"}.get(valid, "unknown")  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per corpus file (best is shown)")
    parser.add_argument("--corpus-only", action="store_true")
    parser.add_argument("--chat-only", action="store_true")
    parser.add_argument("--chat-ops", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    args = parser.parse_args()
    ok = True
    if not args.chat_only:
        ok = bench_corpus(args.corpus, args.repeat) and ok
    if not args.corpus_only:
        ok = bench_chat(args.chat_ops, args.groups, not args.no_memory) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
