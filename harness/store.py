"""The run store: ``STORE/<test>/<timestamp>/`` per run, and ``STORE/latest`` pointing at the newest.

Runs are kept as plain directories so a person can browse them with ``ls`` and ``harness serve``
alike; ``results.json`` is the one file that summarizes a run, so it is written atomically: a
reader sees either no results (the run is incomplete) or all of them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS, HISTORY, PLAN, TIMELINE = "results.json", "history.jsonl", "plan.yaml", "timeline.html"
LATENCY_PNG, THROUGHPUT_PNG, LOGS = "latency.png", "throughput.png", "logs"
NODES_PNG = "nodes.png"  # per-node availability, applied index and memory
NODES_JSONL = "nodes.jsonl"  # the node monitor's samples
LATEST = "latest"
INCOMPLETE = "incomplete"  # a run without (readable) results.json: interrupted or still going
FAILED = "failed"  # a run that never started (its set-up failed): results.json says why
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S"
_RUN_NAME = re.compile(r"^(\d{8}T\d{6})(?:-(\d+))?$")
_INVOKE_MARK = b'"type":"invoke"'  # how histories.jsonl writes an invocation (compact separators)


class StoreError(ValueError):
    """A test name that cannot be a store directory."""


@dataclass
class RunSummary:
    """One stored run as the listing shows it.

    ``valid`` is True, False, "unknown", "incomplete" or "failed" (set-up failed).
    """

    path: Path
    test: str
    started: datetime
    valid: bool | str
    ops: int | None
    availability: float | None
    duration: float | None
    workload: str | None
    nemesis: list[str]
    exit_code: int | None = None
    error: str | None = None
    bug: str | None = None  # the deliberate bug the nodes ran with (self-test), None: the correct build
    system: str | None = None  # the system under test ("raftchat")

    @property
    def verdict(self) -> str:
        """A word for the verdict, for pages and CSS classes."""
        from harness.verdicts import run_word

        return run_word(self.valid, self.exit_code)


def check_test_name(name: str) -> str:
    """Test names become directory names (and URL parts in ``serve``): refuse what would not stay one."""
    if (
        not name
        or name.startswith(".")
        or name == LATEST
        or any(c in name for c in "/\\\0")
        or name != name.strip()
    ):
        raise StoreError(f"{name!r} cannot be a test name in the store (a plain directory name is needed)")
    return name


def new_run_dir(
    store_root: Path, test_name: str, now: datetime | None = None, *, latest: bool = True
) -> Path:
    """Create ``STORE/<test>/<UTC timestamp>[-N]/`` and (with ``latest``) point ``STORE/latest`` at it.

    ``mkdir`` without ``exist_ok`` is what claims a name, so two runs started in the same second
    (even by two processes) get ``...-2``, ``...-3`` rather than sharing a directory.
    """
    check_test_name(test_name)
    now = now or datetime.now(UTC)
    stamp = (now.astimezone(UTC) if now.tzinfo else now).strftime(TIMESTAMP_FORMAT)
    test_dir = Path(store_root) / test_name
    test_dir.mkdir(parents=True, exist_ok=True)
    suffix = 1
    while True:
        run_dir = test_dir / (stamp if suffix == 1 else f"{stamp}-{suffix}")
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            suffix += 1
    if latest:
        point_latest(Path(store_root), run_dir)
    return run_dir


def point_latest(store_root: Path, run_dir: Path) -> None:
    """Replace ``latest`` with a relative symlink in one step: a reader never finds it missing."""
    target = os.path.relpath(run_dir, store_root)
    for attempt in range(100):
        temp = store_root / f".latest.{os.getpid()}.{attempt}"
        try:
            os.symlink(target, temp)
        except FileExistsError:
            continue
        try:
            os.replace(temp, store_root / LATEST)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return
    raise OSError(f"could not create a temporary symlink in {store_root}")


def write_results(run_dir: Path, results: dict[str, Any]) -> Path:
    """Write ``results.json`` atomically (see :func:`write_atomic`)."""
    final = Path(run_dir) / RESULTS
    write_atomic(final, json.dumps(results, indent=2) + "\n")
    return final


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (temp file, fsync, rename, fsync the
    directory): a reader sees the old file or the new one, never half of one."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open, not mkstemp: mkstemp's 0600 would hide the file from other users of a shared store
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # not every platform opens directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_results(run_dir: Path) -> dict[str, Any] | None:
    """The run's results, or None when there are none yet (or they cannot be read)."""
    try:
        data = json.loads((Path(run_dir) / RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_dirs(store_root: Path) -> list[Path]:
    """Every ``<test>/<run>`` directory in the store (not ``latest``, not hidden temp files, not
    the summary folders that ``harness nightly`` writes beside the runs)."""
    root = Path(store_root)
    if not root.is_dir():
        return []
    found: list[Path] = []
    for test_dir in root.iterdir():
        if test_dir.name.startswith(".") or test_dir.is_symlink() or not test_dir.is_dir():
            continue
        for run_dir in test_dir.iterdir():
            if run_dir.name.startswith(".") or run_dir.is_symlink() or not run_dir.is_dir():
                continue
            if not (run_dir / "summary.json").exists():
                found.append(run_dir)
    return found


def list_runs(store_root: Path) -> list[RunSummary]:
    """The stored runs, newest first (by the time in the directory name, which is when it began)."""
    summaries = [summarize(run_dir) for run_dir in run_dirs(store_root)]
    summaries.sort(key=lambda s: (s.started, _suffix(s.path.name), s.test), reverse=True)
    return summaries


def summarize(run_dir: Path) -> RunSummary:
    """A run's summary from its ``results.json``; without one, what the directory itself says."""
    run_dir = Path(run_dir)
    started = _name_time(run_dir.name)
    results = read_results(run_dir)
    if results is None:
        return RunSummary(
            path=run_dir,
            test=run_dir.parent.name,
            started=started or _mtime(run_dir),
            valid=INCOMPLETE,
            ops=_count_invocations(run_dir / HISTORY),
            availability=None,
            duration=None,
            workload=None,
            nemesis=[],
        )
    stats = results.get("stats") if isinstance(results.get("stats"), dict) else {}
    nemesis = results.get("nemesis")
    return RunSummary(
        path=run_dir,
        test=str(results.get("test") or run_dir.parent.name),
        started=started or _iso_time(results.get("started")) or _mtime(run_dir),
        valid=FAILED if results.get("setup_failed") else results.get("valid", "unknown"),
        ops=_number(stats.get("client_ops"), int),
        availability=_number(stats.get("availability"), float),
        duration=_number(results.get("duration_s"), float),
        workload=results.get("workload"),
        nemesis=[str(n) for n in nemesis] if isinstance(nemesis, list) else [],
        exit_code=_number(results.get("exit_code"), int),
        error=results.get("error"),
        bug=_text(results.get("bug")),
        system=_text(results.get("system")),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return kind(value)


def _suffix(name: str) -> int:
    match = _RUN_NAME.match(name)
    return int(match.group(2) or 1) if match else 0


def _name_time(name: str) -> datetime | None:
    match = _RUN_NAME.match(name)
    if not match:
        return None
    return datetime.strptime(match.group(1), TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def _iso_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _mtime(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return datetime.fromtimestamp(0, UTC)


def _count_invocations(history: Path) -> int | None:
    """How many ops an unfinished run invoked: a byte count, so listing stays fast for big histories."""
    try:
        with open(history, "rb") as data:
            total, tail = 0, b""
            while chunk := data.read(1 << 20):
                block = tail + chunk
                total += block.count(_INVOKE_MARK)
                tail = block[-(len(_INVOKE_MARK) - 1) :]  # too short to hold a whole mark: none counted twice
            return total
    except OSError:
        return None
