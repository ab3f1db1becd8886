"""``harness check``: read a history, check it against a model, and say the verdict.

The exit code carries the verdict so scripts and CI can branch on it without parsing. A
model that does not fit the history (``checker.fit``: operations or values it does not
know) is bad input, exit 3, never a verdict. The model is ``--model``, else the stored run's
plan, else what the file says (a harness history's metadata record, a format's hint).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import store
from harness.verdicts import EXIT_ERROR as EXIT_BAD_INPUT
from harness.verdicts import linearizability_code
from histories import FORMATS

WORKLOAD_MODELS = {"chat": "chat", "register": "cas-register", "kv": "kv"}  # plan.yaml workload -> model
MAX_LISTED = 8  # stuck or minimal ops printed before "... and N more"
MIB = 1 << 20
_UNSET = object()  # --initial not given: the history's own initial value applies


class BadInput(Exception):
    """Input the check cannot use; the message says which file and why."""


@dataclass
class Target:
    history: Path
    workload_model: str | None = None  # from a stored run's plan.yaml
    stored_run: bool = False  # a run directory: its history may end mid-line if the run crashed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path", metavar="PATH", help=f"a history file, or a stored run's directory ({store.HISTORY})"
    )
    parser.add_argument("--model", help="cas-register, register, kv or chat (default: what the history says)")
    parser.add_argument(
        "--format", choices=FORMATS, help="the file's format (default: detected from its content)"
    )
    parser.add_argument(
        "--initial",
        type=initial_value,
        default=_UNSET,
        help="the model's initial value: nil or a number (default: the history's, else nil)",
    )
    parser.add_argument(
        "--timeout", type=positive_seconds, metavar="S", help="give up after S seconds: unknown"
    )
    parser.add_argument(
        "--max-memory",
        type=positive_mib,
        metavar="MIB",
        help="memory the search may take, in MiB; past it the partition is undecided "
        "(default: a quarter of the machine's memory)",
    )
    parser.add_argument(
        "--workers",
        type=positive_count,
        metavar="N",
        help="processes for the first pass over a big history (default: one per core; 1: none)",
    )
    parser.add_argument(
        "--html", metavar="OUT.html", help="also write a page that shows the history and verdict"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of text")
    parser.add_argument(
        "--allow-truncated-tail",
        action="store_true",
        help="skip a partial last line (a crashed writer's) instead of refusing the file; "
        "a stored run's directory is always read this way",
    )


def initial_value(text: str) -> int | float | None:
    """``nil`` or a number: the values every register history in use starts from."""
    if text == "nil":
        return None
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if math.isfinite(value):
            return value
    raise argparse.ArgumentTypeError(f"expected nil or a number, not {text!r}")


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text!r}")
    return value


def positive_mib(text: str) -> int:
    return _at_least_one(text, "MiB")


def positive_count(text: str) -> int:
    return _at_least_one(text, "processes")


def _at_least_one(text: str, unit: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of {unit} of at least 1, not {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    """The command: returns the exit code."""
    from checker import check, get_model
    from checker.fit import explain, fitting_models
    from checker.models import MODELS
    from histories import HistoryError, read_history

    try:
        target = locate(Path(args.path))
        tolerant = args.allow_truncated_tail or target.stored_run
        history = read_history(str(target.history), format=args.format, allow_truncated_tail=tolerant)
        for warning in history.warnings:
            why = " (a stored run's history is read with --allow-truncated-tail)" if target.stored_run else ""
            print(f"harness check: note: {warning}{why}", file=sys.stderr)
        name = args.model or target.workload_model or history.model_hint
        if name is None:
            fits = fitting_models(history.ops, MODELS)
            raise BadInput(
                f"{target.history}: the history does not name its model: pass --model"
                + (f" (models that fit its operations: {', '.join(fits)})" if fits else " (no model fits it)")
            )
        initial = _initial_hint(history) if args.initial is _UNSET else args.initial
        model = get_model(name, initial)
        misfit = explain(history.ops, name, MODELS)
        if misfit:
            raise BadInput(f"{target.history}: {misfit.message()}")
    except (HistoryError, BadInput) as exc:
        return _fail(str(exc))
    except ValueError as exc:  # get_model: an unknown name
        return _fail(f"{args.path}: {exc}")
    except TypeError as exc:  # an initial value of the wrong kind for this model
        return _fail(f"{args.path}: model {name} cannot start from {args.initial!r}: {exc}")
    try:
        max_memory = None if args.max_memory is None else args.max_memory * MIB
        result = check(history.ops, model, timeout=args.timeout, max_memory=max_memory, workers=args.workers)
    except Exception as exc:  # values the model cannot read: bad input, never a verdict
        return _fail(f"{target.history}: cannot check with model {name}: {type(exc).__name__}: {exc}")
    if args.json:
        print(json.dumps(result.to_json(), default=repr))
    else:
        print(report(result, model, str(target.history)))
    if args.html:
        from checker.html import write_html
        from harness.stats import interval_json, nemesis_intervals

        faults = [interval_json(i) for i in nemesis_intervals(history.ops)]  # the history's own faults
        try:
            write_html(args.html, result, model, title=str(target.history), faults=faults)
        except OSError as exc:
            return _fail(f"{args.html}: cannot write: {exc.strerror or exc}")
        if not args.json:
            print(f"page: {args.html}")
    return linearizability_code(result.valid)


def locate(path: Path) -> Target:
    """A history file as is; a stored run's directory by its history and plan."""
    if not path.is_dir():
        return Target(path)
    history = path / store.HISTORY
    if not history.is_file():
        raise BadInput(f"{path}: a directory without {store.HISTORY}: not a stored run")
    return Target(history, _plan_model(path / store.PLAN), stored_run=True)


def _plan_model(plan: Path) -> str | None:
    if not plan.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(plan.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BadInput(f"{plan}: unreadable plan: {exc}") from exc
    workload = data.get("workload") if isinstance(data, dict) else None
    return WORKLOAD_MODELS.get(workload) if isinstance(workload, str) else None


def _initial_hint(history: Any) -> Any:
    """The initial value the file states; it only means something with the file's model."""
    return history.initial_hint if history.model_hint is not None else None


def _fail(message: str) -> int:
    print(f"harness check: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def report(result: Any, model: Any, path: str) -> str:
    """A few lines: enough to act on without opening the page."""
    ops, parts = result.ops, result.partition_ops
    unknown = sum(1 for op in ops if op.ret is None)
    verdict = {True: "LINEARIZABLE", False: "NOT LINEARIZABLE"}.get(result.valid, "UNKNOWN")
    lines = [
        f"{verdict}: {path}" + (f" ({result.reason})" if result.reason else ""),
        f"  model {result.model} · {len(ops)} ops ({unknown} with unknown outcome) · "
        f"{len(parts)} partition{'s' if len(parts) != 1 else ''} · checked in {result.elapsed:.3f} s",
    ]
    if result.undecided:
        lines.append(f"  undecided partitions: {_ids(result.undecided)}")
    failure = result.failure
    if failure is None:
        return "\n".join(lines)
    by_id = {op.id: op for op in ops}
    lines.append(
        f"  failing partition {failure.partition} ({len(parts[failure.partition])} ops): longest "
        f"linearizable prefix {len(failure.longest)} ops, then the model state is {failure.state}"
    )
    lines.append("  none of these can go next:")
    lines += _listed(
        [
            f"    {_op(model, by_id, s.op)}: observed {s.observed}, expected {s.expected}"
            for s in failure.stuck
        ]
    )
    if failure.minimal is not None:
        stuck = {s.op: s for s in failure.minimal_stuck or []}
        size = len(failure.minimal)
        lines.append(f"  minimal anomaly: {size} op{'s' if size != 1 else ''} that cannot be linearized")
        lines += _listed(
            [
                f"    {_op(model, by_id, i)}"
                + (f"   <- stuck: expected {stuck[i].expected}" if i in stuck else "")
                for i in sorted(failure.minimal, key=lambda i: (by_id[i].call, i))
            ]
        )
    return "\n".join(lines)


def _ids(ids: list[int]) -> str:
    shown = ", ".join(map(str, ids[: MAX_LISTED * 4]))
    return shown + (f" and {len(ids) - MAX_LISTED * 4} more" if len(ids) > MAX_LISTED * 4 else "")


def _op(model: Any, by_id: dict[int, Any], op_id: int) -> str:
    """An op as the timeline numbers it: by its invocation's index in the history, with its node."""
    op = by_id[op_id]
    node = f", node {op.node}" if op.node else ""
    return f"op {op.call_index} (process {op.process}{node}): {model.describe_op(op)}"


def _listed(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LISTED:
        return lines
    return lines[:MAX_LISTED] + [f"    ... and {len(lines) - MAX_LISTED} more"]
