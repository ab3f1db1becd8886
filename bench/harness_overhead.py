"""How many operations per second can the harness itself record?

Runs the harness's real worker loop and history recorder (flushed JSON lines) against a
trivial in-process client that answers at once, so the only cost measured is the
harness's own. Compare the figure with what raftchat serves: the harness must not be
the bottleneck of a run.

    python -m bench.harness_overhead [--seconds 5] [--concurrency 1,10,50]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from harness.recorder import Recorder
from harness.workers import Workers
from workloads.base import Completion, Invocation


class InstantWorkload:
    """Writes to one register; every operation succeeds immediately."""

    name, model, machine = "instant", "register", "kv"

    def next_op(self, worker: int, rng) -> Invocation:
        return Invocation("write", rng.randrange(5))

    def final_reads(self, worker: int) -> list[Invocation]:
        return []


class InstantClient:
    """A system's client that answers every operation at once."""

    node = None

    async def invoke(self, inv: Invocation) -> Completion:
        await asyncio.sleep(0)  # a real client always yields to the event loop at least once
        return Completion("ok", inv.value)


def measure(concurrency: int, seconds: float) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        recorder = Recorder(Path(tmp) / "history.jsonl")
        workers = Workers(InstantWorkload(), [InstantClient()] * concurrency, recorder, rate=0, seed=1)
        started = time.perf_counter()
        asyncio.run(workers.load(seconds))
        elapsed = time.perf_counter() - started
        recorder.close()
        return sum(recorder.counts.values()), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,10,50")
    args = parser.parse_args()
    print(f"{'workers':>8} {'ops':>9} {'ops/s':>9} {'records/s':>10}")
    for c in (int(x) for x in args.concurrency.split(",")):
        ops, elapsed = measure(c, args.seconds)
        print(f"{c:>8} {ops:>9} {ops / elapsed:>9.0f} {2 * ops / elapsed:>10.0f}")


if __name__ == "__main__":
    main()
