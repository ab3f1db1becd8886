"""``harness nightly``: run a matrix of plans one after another and summarize the night in one place.

A matrix file names a prefix, plan keys shared by every run (``base``), the axes to cross
(``matrix``: any plan key, each with a list of values) and combinations to leave out (``exclude``).
Every combination is validated before the first run starts: a typo found at 3 a.m. after two
hours of runs would waste the night. The summary (``summary.json`` and a self-contained
``summary.html``) is rewritten after every run, so a nightly that dies still says what it found.

Exit code: 0 when every run is valid; otherwise the worst news wins, in this order:
1 if any run is not linearizable (the service is wrong), else 4, 5, 6 if replicas diverged, a
node failed by itself or did not recover (see harness.verdicts), else 3 if any run errored or
did not run (the harness proved nothing there), else 2 if any verdict is unknown.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from harness import plan as plans
from harness import store, verdicts
from harness.pages import duration, render
from harness.verdicts import EXIT_ERROR
from raftchat.config import read_yaml

OVERHEAD_S = 12.0  # per run, beyond its time limit: cluster start, recovery, final reads, checking
TOP_KEYS = ("name", "base", "matrix", "exclude", "include")
DEFAULT_NAME = "nightly"
SUMMARY_JSON, SUMMARY_HTML = "summary.json", "summary.html"
SUMMARY_SUFFIX = "-summary"
PLAN_KEYS = tuple(f.name for f in fields(plans.Plan))
VERDICT_WORDS = tuple(verdicts.VERDICTS.values())  # in the order counts are listed
# Short name parts for numeric axes: nightly-chat-partition-n3 rather than ...-nodes3.
_PREFIXES = {
    "nodes": "n",
    "concurrency": "c",
    "time_limit": "t",
    "rate": "r",
    "seed": "s",
    "nemesis_interval": "i",
    "recovery": "rec",
    "op_timeout": "ot",
    "attempt_timeout": "at",
    "checker_timeout": "ct",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+=-]+")


class MatrixError(ValueError):
    """The matrix file is unusable; the message names the key or the combination."""


@dataclass
class Matrix:
    name: str
    base: dict[str, Any]
    axes: dict[str, list[Any]]
    exclude: list[dict[str, Any]] = field(default_factory=list)
    include: list[dict[str, Any]] = field(default_factory=list)  # single runs beside the cross product


@dataclass
class Combination:
    """One run of the matrix: its name, its axis values, and the plan mapping ``run_plan`` gets."""

    name: str
    axes: dict[str, Any]
    plan: dict[str, Any]


@dataclass
class RunRecord:
    """What the summary keeps of a finished run."""

    name: str
    axes: dict[str, Any]
    plan: dict[str, Any]
    valid: bool | str | None
    exit_code: int
    ops: int | None
    availability: float | None
    run_dir: str | None
    duration_s: float
    seed: int | None = None
    error: str | None = None

    @property
    def verdict(self) -> str:
        return verdicts.verdict(self.exit_code)


# ---------------------------------------------------------------------------------- the matrix


def load_matrix(path: str | Path) -> Matrix:
    """Read and check a matrix file (not yet its combinations: see ``expand`` and ``validate_all``)."""
    data = read_yaml(path, "matrix file", MatrixError)
    try:
        return parse_matrix(data)
    except MatrixError as exc:
        raise MatrixError(f"{path}: {exc}") from None


def parse_matrix(data: Any) -> Matrix:
    """The matrix from a parsed YAML document; strict, since a typo here would silently skip runs."""
    if not isinstance(data, dict):
        raise MatrixError(f"a matrix file is a mapping with keys {', '.join(TOP_KEYS)}, got {_kind(data)}")
    unknown = sorted(map(str, set(data) - set(TOP_KEYS)))
    if unknown:
        raise MatrixError(
            f"unknown top-level key(s) {', '.join(map(repr, unknown))}; known: {', '.join(TOP_KEYS)}"
        )
    name = data.get("name", DEFAULT_NAME)
    if not isinstance(name, str):
        raise MatrixError(f"'name' must be a string (the prefix of every run's name), got {name!r}")
    try:
        store.check_test_name(name)
    except store.StoreError as exc:
        raise MatrixError(f"'name': {exc}") from None
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise MatrixError(f"'base' must be a mapping of plan keys, got {_kind(base)}")
    if "name" in base:
        raise MatrixError("'base' must not set 'name': run names come from the top-level 'name' and the axes")
    axes = data.get("matrix")
    if not isinstance(axes, dict) or not axes:
        raise MatrixError("'matrix' must be a non-empty mapping of plan keys to lists of values")
    for key, values in axes.items():
        if key == "name":
            raise MatrixError("'matrix' cannot have a 'name' axis: run names are made from the other axes")
        if key not in PLAN_KEYS:
            raise MatrixError(f"'matrix': {key!r} is not a plan key; known: {', '.join(PLAN_KEYS)}")
        if not isinstance(values, list) or not values:
            raise MatrixError(f"'matrix': {key!r} must be a non-empty list of values, got {values!r}")
        for i, value in enumerate(values):
            if any(_same(key, value, other) for other in values[:i]):
                raise MatrixError(f"'matrix': {key!r} lists {value!r} twice")
        if key in base:
            raise MatrixError(f"{key!r} is both in 'base' and a 'matrix' axis: keep it in one place")
    exclude = data.get("exclude") or []
    if not isinstance(exclude, list):
        raise MatrixError(f"'exclude' must be a list of mappings, got {_kind(exclude)}")
    for i, entry in enumerate(exclude):
        where = f"'exclude' entry {i + 1}"
        if not isinstance(entry, dict) or not entry:
            raise MatrixError(f"{where} must be a non-empty mapping of axis values, got {entry!r}")
        for key in entry:
            if key not in axes:
                raise MatrixError(f"{where}: {key!r} is not a matrix axis (axes: {', '.join(axes)})")
    include = data.get("include") or []
    if not isinstance(include, list):
        raise MatrixError(f"'include' must be a list of mappings, got {_kind(include)}")
    for i, entry in enumerate(include):
        where = f"'include' entry {i + 1}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise MatrixError(f"{where} must be a mapping of plan keys with a 'name' (the run's suffix)")
        for key in entry:
            if key not in PLAN_KEYS:
                raise MatrixError(f"{where}: {key!r} is not a plan key; known: {', '.join(PLAN_KEYS)}")
    return Matrix(name=name, base=dict(base), axes=dict(axes), exclude=list(exclude), include=list(include))


def expand(matrix: Matrix) -> list[Combination]:
    """The cross product of the axes, in file order, minus the excluded combinations."""
    keys = list(matrix.axes)
    used = [False] * len(matrix.exclude)
    combos: list[Combination] = []
    seen: dict[str, int] = {}
    for indexed in itertools.product(*(list(enumerate(matrix.axes[k])) for k in keys)):
        axes = {key: value for key, (_, value) in zip(keys, indexed, strict=True)}
        hits = [i for i, entry in enumerate(matrix.exclude) if _excludes(entry, axes)]
        for i in hits:
            used[i] = True
        if hits:
            continue
        name = "-".join(
            [matrix.name]
            + [_name_part(key, value, index) for key, (index, value) in zip(keys, indexed, strict=True)]
        )
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:  # only values that differ in characters a directory name cannot keep
            name = f"{name}-{seen[name]}"
        combos.append(Combination(name=name, axes=axes, plan={**matrix.base, **axes, "name": name}))
    unused = [i + 1 for i, hit in enumerate(used) if not hit]
    if unused:
        raise MatrixError(
            f"'exclude' entr{'y' if len(unused) == 1 else 'ies'} {', '.join(map(str, unused))} "
            "match no combination of the matrix (a typo?)"
        )
    if not combos:
        raise MatrixError("'exclude' leaves no run in the matrix")
    for entry in matrix.include:
        name = f"{matrix.name}-{_UNSAFE.sub('-', entry['name'])}"
        if any(combo.name == name for combo in combos):
            raise MatrixError(f"'include' entry {entry['name']!r} has the name of another run ({name})")
        plan = {**matrix.base, **entry, "name": name}
        axes = {key: plan.get(key, "(default)") for key in keys}
        combos.append(Combination(name=name, axes=axes, plan=plan))
    return combos


def validate_all(combos: list[Combination]) -> list[plans.Plan]:
    """Every combination as a Plan; one error listing every bad combination and its key."""
    resolved: list[plans.Plan] = []
    errors: list[str] = []
    for combo in combos:
        try:
            resolved.append(plans.validate(dict(combo.plan)))
        except plans.PlanError as exc:
            errors.append(f"  {combo.name} ({describe(combo.axes)}): {exc}")
    if errors:
        raise MatrixError(
            f"{len(errors)} of {len(combos)} combination(s) are not valid plans:\n" + "\n".join(errors)
        )
    return resolved


def estimate(resolved: list[plans.Plan]) -> float:
    """Seconds the matrix should take: each run's load plus a fixed allowance for the rest."""
    return sum(plan.time_limit + OVERHEAD_S for plan in resolved)


def overall_exit_code(codes: list[int]) -> int:
    """The night's exit code: the worst news (see :func:`harness.verdicts.worst`)."""
    return verdicts.worst(codes)


def describe(axes: dict[str, Any]) -> str:
    return " ".join(f"{key}={_show(value)}" for key, value in axes.items())


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _normal(key: str, value: Any) -> Any:
    """Values as the plan will read them: ``nemesis: partition,kill`` is the list [partition, kill]."""
    if key == "nemesis" and isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _same(key: str, a: Any, b: Any) -> bool:
    a, b = _normal(key, a), _normal(key, b)
    return type(a) is type(b) and a == b  # True is not 1, 3 is not 3.0: both would be typos


def _excludes(entry: dict[str, Any], axes: dict[str, Any]) -> bool:
    return all(_same(key, axes[key], value) for key, value in entry.items())


def _name_part(key: str, value: Any, index: int) -> str:
    """A short, directory-safe piece of a run name for one axis value."""
    value = _normal(key, value)
    if isinstance(value, bool):
        part = key if value else f"no-{key}"
    elif value is None or value == []:
        part = f"no-{key}"
    elif isinstance(value, int | float):
        part = f"{_PREFIXES.get(key, key)}{value:g}"
    elif isinstance(value, str):
        part = value
    elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        part = "+".join(map(str, value))
    else:  # a mapping (workload_options): its position in the axis
        part = f"{key}{index + 1}"
    return _UNSAFE.sub("_", part).strip("_") or f"{key}{index + 1}"


# ---------------------------------------------------------------------------------- running


def run_matrix(
    matrix: Matrix,
    combos: list[Combination],
    resolved: list[plans.Plan],
    store_root: Path,
    progress: bool | None,
    source: str,
) -> tuple[Path, list[RunRecord], int]:
    """Run every combination in order; returns the summary folder, the records and the exit code."""
    from harness.runner import run_plan

    summary_dir = new_summary_dir(store_root, matrix.name)
    started = datetime.now(UTC)
    records: list[RunRecord] = []
    meta = {
        "name": matrix.name,
        "matrix_file": source,
        "started": _iso(started),
        "estimate_s": estimate(resolved),
    }
    write_summary(summary_dir, meta, combos, records, complete=False)
    width = len(str(len(combos)))
    try:
        for i, combo in enumerate(combos):
            begun = time.monotonic()
            try:
                outcome = run_plan(dict(combo.plan), None, store_root, progress)
                results, run_dir = outcome.results, str(outcome.run_dir)
                code = outcome.exit_code
            except Exception as exc:  # a run that could not even start: record it, go on with the rest
                results, run_dir, code = {"error": f"{type(exc).__name__}: {exc}"}, None, EXIT_ERROR
            record = _record(combo, results, run_dir, code, time.monotonic() - begun)
            records.append(record)
            write_summary(summary_dir, meta, combos, records, complete=False)
            print(f"[{i + 1:>{width}}/{len(combos)}] {_line(record)}", flush=True)
            if results.get("interrupted"):
                print("nightly: interrupted; the remaining runs are not run", file=sys.stderr)
                break
    except KeyboardInterrupt:
        print("\nnightly: interrupted; the remaining runs are not run", file=sys.stderr)
    code = overall_exit_code([r.exit_code for r in records] + [EXIT_ERROR] * (len(combos) - len(records)))
    write_summary(summary_dir, meta, combos, records, complete=True, exit_code=code)
    return summary_dir, records, code


def _record(
    combo: Combination, results: dict[str, Any], run_dir: str | None, code: int, took: float
) -> RunRecord:
    stats = results.get("stats") if isinstance(results.get("stats"), dict) else {}
    return RunRecord(
        name=combo.name,
        axes=combo.axes,
        plan=combo.plan,
        valid=results.get("valid"),
        exit_code=code,
        ops=stats.get("client_ops"),
        availability=stats.get("availability"),
        run_dir=run_dir,
        duration_s=round(took, 3),
        seed=results.get("seed"),
        error=results.get("error"),
    )


def _line(record: RunRecord) -> str:
    ops = "—" if record.ops is None else f"{record.ops:,}"
    availability = "—" if record.availability is None else f"{record.availability:.1%}"
    line = (
        f"{record.verdict.upper():<8} {record.name}  ops {ops}  availability {availability}  "
        f"{duration(record.duration_s)}  {record.run_dir or '(no run folder)'}"
    )
    return line + (f"  error: {record.error}" if record.error else "")


def new_summary_dir(store_root: Path, name: str) -> Path:
    """``STORE/<name>-summary/<UTC timestamp>[-N]/``, claimed like a run folder, leaving ``latest`` alone."""
    stamp = datetime.now(UTC).strftime(store.TIMESTAMP_FORMAT)
    parent = Path(store_root) / store.check_test_name(name + SUMMARY_SUFFIX)
    parent.mkdir(parents=True, exist_ok=True)
    for suffix in itertools.count(1):
        folder = parent / (stamp if suffix == 1 else f"{stamp}-{suffix}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------- the summary


def write_summary(
    summary_dir: Path,
    meta: dict[str, Any],
    combos: list[Combination],
    records: list[RunRecord],
    complete: bool,
    exit_code: int | None = None,
) -> None:
    """Both summary files, each replaced atomically: a reader never sees half of one."""
    done = {r.name for r in records}
    counts: dict[str, int] = {}
    for record in records:
        counts[record.verdict] = counts.get(record.verdict, 0) + 1
    data = {
        **meta,
        "finished": _iso(datetime.now(UTC)) if complete else None,
        "complete": complete,
        "exit_code": exit_code,
        "runs_planned": len(combos),
        "runs_done": len(records),
        "duration_s": round(sum(r.duration_s for r in records), 3),
        "counts": counts,
        "runs": [
            {
                "name": r.name,
                "axes": r.axes,
                "plan": r.plan,
                "seed": r.seed,
                "valid": r.valid,
                "verdict": r.verdict,
                "exit_code": r.exit_code,
                "ops": r.ops,
                "availability": r.availability,
                "run_dir": r.run_dir,
                "duration_s": r.duration_s,
                "error": r.error,
            }
            for r in records
        ],
        "not_run": [c.name for c in combos if c.name not in done],
    }
    store.write_atomic(summary_dir / SUMMARY_JSON, json.dumps(data, indent=2, default=str) + "\n")
    store.write_atomic(summary_dir / SUMMARY_HTML, summary_page(summary_dir, data, combos, records))


def summary_page(
    summary_dir: Path, data: dict[str, Any], combos: list[Combination], records: list[RunRecord]
) -> str:
    """A self-contained page (inline CSS, relative links) that works from disk and under ``harness serve``."""
    by_name = {r.name: r for r in records}
    axes = list(combos[0].axes) if combos else []
    counts = [(v, data["counts"][v], "") for v in VERDICT_WORDS if data["counts"].get(v)]
    pending = len(combos) - len(records)
    if pending:
        counts.append(("pending", pending, "" if data["complete"] else " to go"))
    facts = [
        f"{len(combos)} run(s)",
        f"started {data['started']}",
        f"took {duration(data['duration_s'])} (estimate {duration(data['estimate_s'])})",
        Markup("matrix <code>{}</code>").format(data["matrix_file"]),
    ]
    if data["exit_code"] is not None:
        facts.append(f"exit code {data['exit_code']}")
    rows = []
    for combo in combos:
        record = by_name.get(combo.name)
        rows.append(
            {
                "name": combo.name,
                "record": record,
                "axes": [_show(combo.axes[key]) for key in axes],
                "links": _links(summary_dir, record) if record is not None else [],
            }
        )
    return render(
        "nightly.html",
        title=f"{data['name']} · nightly summary",
        where=summary_dir.name,
        refresh=None if data["complete"] else 30,
        name=data["name"],
        overall="pending" if data["exit_code"] is None else verdicts.verdict(data["exit_code"]),
        facts=facts,
        counts=counts,
        headers=["#", "Run", "Verdict", *axes, "Ops", "Availability", "Duration", "Links"],
        numeric={"#", "Ops", "Duration"},
        rows=rows,
    )


def _links(summary_dir: Path, record: RunRecord) -> list[tuple[str, str]]:
    """Relative links, so the page works from disk, from a copy of the store and under ``harness serve``."""
    if not record.run_dir:
        return []
    run_dir = Path(record.run_dir)
    rel = os.path.relpath(run_dir.resolve(), summary_dir.resolve())
    href = "/".join(quote(part) for part in Path(rel).parts) + "/"
    links = [("folder", href)]
    if (run_dir / store.TIMELINE).exists():
        links.insert(0, ("timeline", href + store.TIMELINE))
    return links


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("matrix", metavar="MATRIX.yaml", help="the matrix of plans to run")
    parser.add_argument(
        "--store", default="store", metavar="DIR", help="where runs are kept (default: store)"
    )
    parser.add_argument("--junit", metavar="OUT.xml", help="also write a JUnit report with one case per run")
    parser.add_argument(
        "--dry-run", action="store_true", help="list the runs and the estimated time, run nothing"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines from inside each run")


def run(args: argparse.Namespace) -> int:
    try:
        matrix = load_matrix(args.matrix)
        combos = expand(matrix)
        resolved = validate_all(combos)
    except MatrixError as exc:
        print(f"harness nightly: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.dry_run:
        print(dry_run_listing(args.matrix, matrix, combos, resolved))
        return 0
    summary_dir, records, code = run_matrix(
        matrix, combos, resolved, Path(args.store), False if args.quiet else None, str(args.matrix)
    )
    if args.junit:
        from harness.junit import write_junit

        write_junit(Path(args.junit), [_junit_entry(r) for r in records])
    counts = ", ".join(
        f"{sum(r.verdict == v for r in records)} {v}"
        for v in VERDICT_WORDS
        if any(r.verdict == v for r in records)
    )
    not_run = len(combos) - len(records)
    print(
        f"nightly {matrix.name}: {len(records)} run(s): {counts or 'none'}"
        + (f", {not_run} not run" if not_run else "")
        + f"; {duration(sum(r.duration_s for r in records))}; exit code {code}"
    )
    print(f"summary: {summary_dir / SUMMARY_HTML}")
    return code


def _junit_entry(record: RunRecord) -> dict[str, Any]:
    """The run's results.json (what junit reads) with its folder; a run that never started gets a stub."""
    results = store.read_results(Path(record.run_dir)) if record.run_dir else None
    if results is None:
        results = {
            "test": record.name,
            "valid": record.valid,
            "exit_code": record.exit_code,
            "error": record.error,
        }
        results.setdefault("workload", record.plan.get("workload"))
    return {**results, "run_dir": record.run_dir} if record.run_dir else results


def dry_run_listing(
    source: str, matrix: Matrix, combos: list[Combination], resolved: list[plans.Plan]
) -> str:
    total = len(list(itertools.product(*matrix.axes.values())))
    width = max(len(c.name) for c in combos)
    lines = [
        f"{source}: {len(combos)} run(s) ({' × '.join(f'{len(v)} {k}' for k, v in matrix.axes.items())}"
        f" = {total}, {total - len(combos)} excluded)"
    ]
    for combo, plan in zip(combos, resolved, strict=True):
        lines.append(f"  {combo.name:<{width}}  {plan.time_limit:>5g} s  {describe(combo.axes)}")
    seconds = estimate(resolved)
    lines.append(
        f"estimated time: {duration(seconds)} ({seconds:.0f} s: "
        f"each run's time_limit + ~{OVERHEAD_S:g} s overhead)"
    )
    return "\n".join(lines)
