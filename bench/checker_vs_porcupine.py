"""How fast the linearizability checker is: on the external corpus, side by side with
Porcupine on generated history classes, and at scale.

    python -m bench.checker_vs_porcupine                      # corpus, Porcupine comparison, scale rows
    python -m bench.checker_vs_porcupine --quick              # smaller classes and scale rows, a few minutes
    python -m bench.checker_vs_porcupine --only compare --models kv --clients 50,100 --info 0.05
    python -m bench.checker_vs_porcupine --only scale --scale-ops 200000

**Corpus**: every file of ``../shared/corpus`` with its expected verdict; times cover
checking only (best of ``--repeat``), peak memory in a separate tracemalloc run.

**Comparison**: for each class (model x clients x valid/one anomaly x info rate, and for
kv a few and many keys) a history from ``histories.synth`` is written as JSON lines and
checked twice, each in a child process: by this checker and by ``porcupine-check`` (the
reference in ``../shared/reference``, built with Go into a temporary folder, or taken from
``$PORCUPINE_CHECK`` or ``/tmp/porcupine-check``; skipped with a message when neither Go
nor a build is there). Times are the search only (reading the file excluded), both with
the same ``--timeout``; ``ratio`` is ours / Porcupine's; ``RSS`` is our child's peak
resident memory, history included. The anomaly of an invalid class cycles through the
kinds the model has (``--anomaly`` fixes one).

**Scale**: a chat history of ``--scale-ops`` operations with 1% info and a kv history of
as many over 1,000 keys: generation + writing time, reading time, check (search) time,
peak RSS of the checking process and of its largest forked worker (the first pass over
a big history; a worker shares the parent's pages until it touches them).

At the end the targets are checked (same verdict wherever Porcupine decides, never
unknown where it decides within 1 s, ratio at most 1.0; scale under 60 s and 1 GiB) and
every miss is listed. Exit status 1 when the corpus disagrees or a verdict contradicts a
history's construction.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import ROOT, child_env, module_command
from checker import check, check_operations
from checker.models import get_model
from checker.prepare import read_operations
from histories import read_history, write_jsonl
from histories.synth import ANOMALIES, APPENDS, generate
from raftchat.memtrace import status_bytes

SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"
REFERENCE = SHARED / "reference"
PREBUILT = Path("/tmp/porcupine-check")  # where the machine's setup leaves a build
MIB = 2**20


# -- corpus -------------------------------------------------------------------------------


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


def _verdict(valid: bool | str) -> str:
    return {True: "linear", False: "NOT"}.get(valid, "unknown")  # type: ignore[arg-type]


# -- one check in a child process -----------------------------------------------------------


@dataclass
class Outcome:
    """One checker's answer on one file; ``verdict`` is linear / NOT / unknown / error / skipped."""

    verdict: str
    seconds: float = float("nan")
    rss_mib: float = float("nan")
    undecided: int = 0
    partitions: int = 0
    note: str = ""
    read_s: float = float("nan")  # reading and pairing, before the search
    worker_rss_mib: float = 0.0  # the largest peak of a forked worker (first pass), if any


def child_check(model: str, path: str, timeout: float, repeat: int = 1) -> None:
    """Run in the child: read, then time the search alone (the best of ``repeat`` checks);
    print one JSON line."""
    start = time.perf_counter()
    ops = read_operations(path)  # a jsonl file streamed: records are not kept beside operations
    parsed = time.perf_counter()
    searched = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        result = check_operations(ops, model, timeout=timeout, shrink=False)
        searched = min(searched, time.perf_counter() - began)
        if result.valid not in (True, False):
            break  # an unknown took the time limit: not repeated
    peak = _peak_rss()
    print(
        json.dumps(
            {
                "verdict": _verdict(result.valid),
                "check_s": searched,
                "parse_s": parsed - start,
                "partitions": len(result.partition_ops),
                "undecided": len(getattr(result, "undecided", None) or ()),
                "reason": result.reason or "",
                "rss": peak,
                "worker_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
            }
        )
    )


def _peak_rss() -> int:
    """This process's peak resident memory in bytes: VmHWM, which starts afresh at exec.
    (``ru_maxrss`` does not: a child started from the benchmark, which holds a generated
    million-operation history, inherits the benchmark's size as its own peak.)"""
    peak = status_bytes(field="VmHWM")
    if peak is not None:
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def ours(model: str, path: Path, timeout: float, repeat: int = 1) -> Outcome:
    command = module_command(
        "checker_vs_porcupine", "--child-check", model, str(path), str(timeout), str(repeat)
    )
    data, error = _run_json(command, timeout * 2 + 120)
    if data is None:
        return Outcome("error", note=error)
    outcome = Outcome(
        data["verdict"],
        data["check_s"],
        data["rss"] / MIB,
        data["undecided"],
        data["partitions"],
        data["reason"],
        data["parse_s"],
    )
    outcome.worker_rss_mib = data.get("worker_rss", 0) / MIB
    return outcome


def porcupine(binary: Path | None, model: str, path: Path, timeout: float, repeat: int = 1) -> Outcome:
    """Porcupine's verdict and search time on ``path``: the best of ``repeat`` runs (a run
    that ends unknown is not repeated: its time is the time limit)."""
    if binary is None:
        return Outcome("skipped")
    command = [str(binary), "-model", model, "-timeout", f"{timeout:g}s", str(path)]
    best: Outcome | None = None
    for _ in range(repeat):
        data, error = _run_json(command, timeout * 2 + 120)
        if data is None:
            return Outcome("error", note=error)
        verdict = {"linearizable": "linear", "not-linearizable": "NOT"}.get(data.get("verdict"), "unknown")
        seconds = float(data.get("check_s", "nan"))
        if best is None or seconds < best.seconds:
            best = Outcome(verdict, seconds, partitions=int(data.get("partitions", 0)))
        if verdict == "unknown":
            break
    assert best is not None
    return best


def _run_json(command: list[str], limit: float) -> tuple[dict[str, Any] | None, str]:
    """The last stdout line of ``command`` as JSON, or (None, what went wrong)."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=limit, check=False, env=child_env()
        )
    except subprocess.TimeoutExpired:
        return None, f"killed after {limit:.0f} s"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"exit {done.returncode}: {tail[:120]}"
    return json.loads(lines[-1]), ""


# -- Porcupine --------------------------------------------------------------------------------


def find_porcupine(workdir: Path) -> tuple[Path | None, str]:
    """(the porcupine-check binary or None, how it was found or why it is absent)."""
    given = os.environ.get("PORCUPINE_CHECK")
    if given:
        if os.access(given, os.X_OK):
            return Path(given), f"$PORCUPINE_CHECK = {given}"
        return None, f"$PORCUPINE_CHECK = {given} is not an executable file"
    prebuilt = PREBUILT
    if prebuilt.is_file() and os.access(prebuilt, os.X_OK):
        return prebuilt, str(prebuilt)
    source = REFERENCE / "porcupine-check"
    if not (source / "main.go").is_file() or not (REFERENCE / "porcupine").is_dir():
        return None, f"no build at $PORCUPINE_CHECK or {prebuilt}, and no source in {REFERENCE}"
    go = shutil.which("go")
    if go is None:
        return (
            None,
            f"Go is not installed (apt-get install -y golang-go) and no build is at {prebuilt}",
        )
    copy = workdir / "reference"  # the shared folder may be read-only; go writes go.sum
    shutil.copytree(REFERENCE / "porcupine", copy / "porcupine")
    shutil.copytree(source, copy / "porcupine-check")
    binary = workdir / "porcupine-check"
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOCACHE": str(workdir / "gocache")}
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=copy / "porcupine-check",
        env=env,
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        return None, f"building porcupine-check failed: {built.stderr.strip()[-200:]}"
    return binary, f"built from {source}"


# -- the comparison -----------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    expected: bool  # the verdict by construction
    ours: Outcome
    theirs: Outcome
    misses: list[str] = field(default_factory=list)


def classes(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every class to compare, as keyword arguments for ``generate``."""
    out = []
    for model in args.models:
        kinds = [a for a in ANOMALIES if a != "duplicate-append" or model in APPENDS]
        key_counts = args.keys if model == "kv" else [1]
        turn = 0
        for keys in key_counts:
            for clients in args.clients:
                for info in args.info:
                    for valid in (True, False):
                        anomaly = None
                        if not valid:
                            anomaly = args.anomaly or kinds[turn % len(kinds)]
                            turn += 1
                        if anomaly == "duplicate-append" and model not in APPENDS:
                            continue
                        out.append(
                            {"model": model, "clients": clients, "ops": args.ops, "keys": keys}
                            | {"info_rate": info, "anomaly": anomaly, "unique_writes": not args.non_unique}
                        )
    return out


def compare(args: argparse.Namespace, workdir: Path, binary: Path | None) -> list[Row]:
    header = (
        f"{'class':<44} {'ours s':>8} {'porc s':>8} {'ratio':>7} {'ours':<8} {'porc':<8} "
        f"{'undec':>5} {'RSS MiB':>8}"
    )
    print(
        f"\n{args.ops}-op histories, timeout {args.timeout:g} s for each checker, "
        f"best of {args.compare_repeat} checks each (of {args.compare_repeat + args.short_repeat} "
        f"where both take under {SHORT_S:g} s)\n{header}"
    )
    rows = []
    for n, spec in enumerate(classes(args)):
        name = (
            f"{spec['model']} c={spec['clients']} k={spec['keys']} info={spec['info_rate']:.0%} "
            f"{spec['anomaly'] or 'valid'}"
        )
        path = workdir / f"class{n}.jsonl"
        write_jsonl(path, generate(**spec, seed=args.seed + n))
        mine = ours(spec["model"], path, args.timeout, args.compare_repeat)
        theirs = porcupine(binary, spec["model"], path, args.timeout, args.compare_repeat)
        if _short(mine, theirs):  # a few ms either side: jitter decides a best of 5; take more
            mine = _faster(mine, ours(spec["model"], path, args.timeout, args.short_repeat))
            theirs = _faster(theirs, porcupine(binary, spec["model"], path, args.timeout, args.short_repeat))
        row = Row(name, spec["anomaly"] is None, mine, theirs)
        path.unlink()
        row.misses = _misses(row)
        rows.append(row)
        print(_format(row), flush=True)
    return rows


SHORT_S = 0.05  # a class both checkers decide under this gets ``--short-repeat`` more checks each


def _short(mine: Outcome, theirs: Outcome) -> bool:
    """Both decided, both quicker than ``SHORT_S``: times of a few ms, where one scheduler
    hiccup in five checks moves the ratio by half."""
    decided = mine.verdict in ("linear", "NOT") and theirs.verdict in ("linear", "NOT")
    return decided and max(mine.seconds, theirs.seconds) < SHORT_S


def _faster(first: Outcome, second: Outcome) -> Outcome:
    """The quicker of two measurements of one checker on one class; an error when the two
    verdicts differ (a checker that answers two ways is never shown with either)."""
    if second.verdict != first.verdict:
        changed = f"{first.verdict}, then {second.verdict}"
        return Outcome("error", note=f"verdict changed between checks: {changed}")
    return first if first.seconds <= second.seconds else second


def _misses(row: Row) -> list[str]:
    mine, theirs = row.ours, row.theirs
    misses = []
    if mine.verdict in ("linear", "NOT") and (mine.verdict == "linear") != row.expected:
        misses.append("WRONG verdict (contradicts the construction)")
    if mine.verdict == "error":
        misses.append(f"our checker failed: {mine.note}")
    if theirs.verdict in ("linear", "NOT"):
        if mine.verdict != theirs.verdict:
            misses.append(f"verdict differs from Porcupine's ({mine.verdict} vs {theirs.verdict})")
            if mine.verdict == "unknown" and theirs.seconds <= 1.0:
                misses.append("unknown where Porcupine decides within 1 s")
        if mine.seconds > theirs.seconds:  # strictly, as the target says: no floor for small times
            misses.append(f"ratio {mine.seconds / max(theirs.seconds, 1e-6):.2f} > 1.0")
    elif mine.verdict in ("linear", "NOT") and theirs.verdict == "unknown":
        pass  # decided where Porcupine gives up: the point of the exercise
    return misses


def _format(row: Row) -> str:
    mine, theirs = row.ours, row.theirs
    ratio = mine.seconds / theirs.seconds if theirs.seconds > 0 else float("nan")
    flag = "" if not row.misses else "   <-- " + "; ".join(row.misses)
    return (
        f"{row.name:<44} {mine.seconds:>8.3f} {theirs.seconds:>8.3f} {ratio:>7.2f} {mine.verdict:<8} "
        f"{theirs.verdict:<8} {mine.undecided:>5} {mine.rss_mib:>8.0f}{flag}"
    )


# -- scale -------------------------------------------------------------------------------------


def scale(args: argparse.Namespace, workdir: Path, binary: Path | None) -> list[str]:
    print(f"\nscale: {args.scale_ops} operations, 1% info, timeout {args.scale_timeout:g} s")
    print(
        f"{'history':<40} {'gen+write s':>11} {'read s':>7} {'check s':>8} {'verdict':<8} "
        f"{'RSS MiB':>8} {'worker':>7}  Porcupine"
    )
    misses = []
    runs = [
        ("chat", {"clients": args.scale_clients, "keys": args.scale_groups}),
        ("kv", {"clients": args.scale_clients, "keys": 1000}),
    ]
    for model, spec in runs:
        start = time.perf_counter()
        path = workdir / f"scale-{model}.jsonl"
        write_jsonl(path, generate(model, ops=args.scale_ops, info_rate=0.01, seed=args.seed, **spec))
        made = time.perf_counter() - start
        mine = ours(model, path, args.scale_timeout)
        theirs = porcupine(binary if model != "chat" else None, model, path, args.scale_timeout)
        path.unlink()
        name = f"{model} c={spec['clients']} keys/groups={spec['keys']}"
        problems = []
        if mine.verdict != "linear":
            problems.append(f"verdict {mine.verdict} {mine.note}".strip())
        if not mine.seconds < 60:
            problems.append("check took 60 s or more")
        if not mine.rss_mib < 1024:
            problems.append("peak RSS 1 GiB or more")
        other = "n/a (no chat model)" if model == "chat" else f"{theirs.verdict} {theirs.seconds:.2f} s"
        print(
            f"{name:<40} {made:>11.1f} {mine.read_s:>7.1f} {mine.seconds:>8.2f} {mine.verdict:<8} "
            f"{mine.rss_mib:>8.0f} {mine.worker_rss_mib:>7.0f}  {other}"
            + ("" if not problems else "   <-- " + "; ".join(problems)),
            flush=True,
        )
        misses += [f"scale {name}: {p}" for p in problems]
    return misses


# -- main ----------------------------------------------------------------------------------------


def _list(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    return lambda text: [kind(part) for part in text.split(",") if part]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", choices=("corpus", "compare", "scale"), action="append", help="run only these parts"
    )
    parser.add_argument(
        "--quick", action="store_true", help="300-op classes, 10 and 50 clients, 100,000-op scale"
    )
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per corpus file (best is shown)")
    parser.add_argument("--models", type=_list(str), default=["register", "cas-register", "kv"])
    parser.add_argument("--clients", type=_list(int), default=None, help="default 10,50,100")
    parser.add_argument("--info", type=_list(float), default=[0.0, 0.05, 0.2], help="info (crash) rates")
    parser.add_argument("--keys", type=_list(int), default=[2, 20], help="kv key counts: a few and many")
    parser.add_argument("--ops", type=int, default=None, help="operations per class (default 2000)")
    parser.add_argument("--anomaly", choices=ANOMALIES, help="the anomaly of every invalid class")
    parser.add_argument("--non-unique", action="store_true", help="written values from a small domain")
    parser.add_argument("--timeout", type=float, default=10.0, help="per checker and class, seconds")
    parser.add_argument(
        "--compare-repeat",
        type=int,
        default=5,
        help="checks per checker and class, the best time is shown (the same for both)",
    )
    parser.add_argument(
        "--short-repeat",
        type=int,
        default=25,
        help=f"more checks of each checker on a class both decide in under {SHORT_S:g} s",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale-ops", type=int, default=None, help="default 1,000,000")
    parser.add_argument("--scale-clients", type=int, default=100)
    parser.add_argument("--scale-groups", type=int, default=1000, help="chat groups in the scale history")
    parser.add_argument("--scale-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    args.clients = args.clients or ([10, 50] if args.quick else [10, 50, 100])
    args.ops = args.ops or (300 if args.quick else 2000)
    args.scale_ops = args.scale_ops or (100_000 if args.quick else 1_000_000)
    if args.quick:
        args.repeat = 1
    unknown = set(args.models) - {"register", "cas-register", "kv"}
    if unknown:
        parser.error(f"Porcupine compares register, cas-register and kv; not {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child-check"]:
        child_check(argv[1], argv[2], float(argv[3]), int(argv[4]) if len(argv) > 4 else 1)
        return 0
    args = parse_args(argv)
    parts = set(args.only or ("corpus", "compare", "scale"))
    ok, misses = True, []
    if "corpus" in parts:
        ok = bench_corpus(args.corpus, args.repeat)
    with tempfile.TemporaryDirectory(prefix="bench-checker-") as tmp:
        workdir = Path(tmp)
        binary = None
        if parts & {"compare", "scale"}:
            binary, how = find_porcupine(workdir)
            print(f"\nPorcupine: {how}" if binary else f"\ncomparison with Porcupine skipped: {how}")
        if "compare" in parts:
            rows = compare(args, workdir, binary)
            misses += [f"{row.name}: {m}" for row in rows for m in row.misses]
            ok = ok and not any("WRONG" in m for row in rows for m in row.misses)
        if "scale" in parts:
            misses += scale(args, workdir, binary)
    if parts & {"compare", "scale"}:
        print(f"\ntargets: {'all met' if not misses else f'{len(misses)} missed'}")
        for miss in misses:
            print(f"  {miss}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
