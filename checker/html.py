"""A self-contained HTML page that shows a check's verdict, so a person can see why.

The text a person needs first (verdict, minimal anomaly, stuck operations, faults) is plain
HTML, so it reads even without scripts. The timelines are drawn by a script on canvas from
data embedded as JSON: no network, opens from a file, and only the visible time window and
lanes are drawn, so histories of tens of thousands of ops stay usable. The page's templates
(``static/timeline.html`` over the shell ``static/page.html``), style sheet and script are
files of this package rendered by :mod:`checker.page` into the one page written; Python builds
only the page's data: the JSON the script draws from (:func:`page_data`) and the values of the
static text (:func:`page_view`).

Operations are numbered by their invocation's index in the history, carry the node that
served them, and every time is on one clock: seconds since the start of the test, as in
the history, the faults table and ``results.json``. The whole run (every operation of
every checked group, against the faults, failing groups marked) is drawn next to the view
of one group. Checked groups are "groups" (a chat group, a kv key); "partition" is kept
for the network fault. Hovering an operation of a failing group shows the longest partial
linearization that includes it (``checker.partial``), as Porcupine does.

Faults (``faults=``: the nemesis intervals of a run, in seconds since the start of the test,
as ``harness.stats`` computes them) are listed in a static table and drawn as translucent
bands behind the bars of the main timeline and its overview, a colour per fault kind in the
order kinds first appear. In event order (the x axis gives every event the same width) a
band starts and stops between the same two events it does in real time, so which operations
ran during a fault stays visible. A history without timestamps is only ever in event order
and its clock is record positions, which seconds cannot be mapped onto: there the bands are
not drawn and the table says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from markupsafe import Markup

from checker.model import Model, Operation
from checker.page import asset, pages
from checker.partial import partial_linearizations
from checker.result import UNKNOWN, CheckResult, Failure, Stuck

STATE_CHARS = 300  # a described state longer than this is cut: it is shown in a tooltip
FAULT_LABEL_CHARS = 60
# (band, text) per fault kind, in the order kinds first appear: none of them is a colour the
# timeline already uses for a meaning (blue linearized, red stuck, amber unknown, grey other).
FAULT_COLOURS = (
    ("#7c3aed", "#5b21b6"),
    ("#0d9488", "#115e59"),
    ("#db2777", "#9d174d"),
    ("#ea580c", "#9a3412"),
    ("#65a30d", "#3f6212"),
    ("#0891b2", "#155e75"),
    ("#a16207", "#713f12"),
    ("#475569", "#1e293b"),
)


def render(
    result: CheckResult,
    model: Model,
    title: str = "",
    *,
    faults: list[dict[str, Any]] | None = None,
    links: list[tuple[str, str]] | None = None,
) -> str:
    """The whole page as one string (:func:`render_chunks` joined)."""
    return "".join(render_chunks(result, model, title, faults=faults, links=links))


def render_chunks(
    result: CheckResult,
    model: Model,
    title: str = "",
    *,
    faults: list[dict[str, Any]] | None = None,
    links: list[tuple[str, str]] | None = None,
) -> Iterator[str]:
    """The page in pieces of about an operation or a group each, made as they are asked for.

    The page of a long run is a hundred megabytes of JSON: built as one string (and then
    escaped, spliced into the template, encoded) it cost several copies of that at once.
    ``faults``: intervals when faults were in force, each ``{"fault": name, "start": s, "stop": s
    or None (until the end), "value": what was done}`` in seconds since the start of the history
    (the clock of the ops' times), as ``harness.stats.compute`` gives them under ``nemesis``.
    ``links``: ``(label, href)`` of the files beside the page (plots, logs, plan, results).
    """
    # Compiled (once per process) before the page's data exists: compiling takes a megabyte or
    # two for a moment, and then that is not on top of the data.
    template = pages().template("timeline.html")
    by_id = ops_by_id(result.ops)
    data = page_data(result, model, title, faults=faults, by_id=by_id)
    return template.generate(
        v=page_view(data, by_id, model, links or []),
        data=(Markup(chunk) for chunk in _json_chunks(data)),  # each chunk is safe in a <script>
        css=asset("timeline.css"),
        script=asset("timeline.js"),
    )


def write_html(
    path: str | Path,
    result: CheckResult,
    model: Model,
    title: str = "",
    *,
    faults: list[dict[str, Any]] | None = None,
    links: list[tuple[str, str]] | None = None,
) -> None:
    """The page written as it is made (:func:`render_chunks`), never whole in memory.

    Into a file beside ``path`` renamed over it once complete, so a failure half-way leaves the
    page that was there; a path that is not a file (``/dev/stdout``, a pipe) is written in place.
    """
    chunks = render_chunks(result, model, title, faults=faults, links=links)
    target = Path(path)
    if target.exists() and not target.is_file():
        with open(target, "w", encoding="utf-8") as out:
            out.writelines(chunks)
        return
    target = target.resolve()  # a link to the page: the file it names is replaced, not the link
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with open(part, "w", encoding="utf-8") as out:
            out.writelines(chunks)
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


# -- the data the page's script draws from -------------------------------------------------


class _Positions(Mapping[int, Operation]):
    """The operations of a check by id, where each id is the operation's position (as
    ``checker.prepare`` numbers them): the list itself, not a dict of a hundred thousand entries
    held while the page is written."""

    def __init__(self, ops: list[Operation]) -> None:
        self.ops = ops

    def __getitem__(self, op_id: int) -> Operation:
        if not 0 <= op_id < len(self.ops):
            raise KeyError(op_id)
        return self.ops[op_id]

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.ops)))


def ops_by_id(ops: list[Operation]) -> Mapping[int, Operation]:
    """``ops`` by their ids: by position when the ids are positions, else a dict."""
    if all(op.id == k for k, op in enumerate(ops)):
        return _Positions(ops)
    return {op.id: op for op in ops}


class Later:
    """A value of the page data made only when the page is written, and dropped once it is
    written: the model states of each group are never all in memory together."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class Items:
    """A list of the page data whose items are made one at a time as the page is written."""

    def __init__(self, count: int, make: Callable[[], Iterable[Any]]) -> None:
        self.count, self.make = count, make

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Any]:
        return iter(self.make())


def page_data(
    result: CheckResult,
    model: Model,
    title: str = "",
    *,
    faults: list[dict[str, Any]] | None = None,
    by_id: Mapping[int, Operation] | None = None,
) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready values (times in ns since the start of the test).

    The big parts (the ops, each group's states and partial linearizations) are :class:`Items`
    and :class:`Later`, made while :func:`_json_chunks` writes them; :func:`resolved` makes them all.
    """
    ops = result.ops
    start = 0  # one clock for the page, the faults and results.json: the history's own
    if by_id is None:
        by_id = ops_by_id(ops)
    failure = result.failure
    verdict = "unknown" if result.valid == UNKNOWN else ("linearizable" if result.valid else "violation")
    partitions = []
    for index, ids in enumerate(result.partition_ops):
        lin = result.linearizations[index] if index < len(result.linearizations) else None
        states: Later | None = None
        partials: Later | None = None
        if failure is not None and failure.partition == index:
            status = "failed"
            partials = Later(lambda ids=ids: partial_linearizations(model, _ops_of(by_id, ids)).to_json())
        elif lin is not None:
            status, states = "linearizable", Later(lambda lin=lin: _replay(model, by_id, lin))
        else:
            status = "unchecked"
        partitions.append(
            {
                "i": index,
                "ops": ids,
                "status": status,
                "lin": lin,
                "states": states,
                "label": _partition_label(_ops_of(by_id, ids)),
                "partials": partials,
            }
        )
    return {
        "title": title,
        "model": result.model,
        "verdict": verdict,
        "reason": result.reason,
        "elapsed": result.elapsed,
        "timed": _timed(ops),
        "start": start,
        "processes": len({str(op.process) for op in ops}),
        "nodes": sorted({op.node for op in ops if op.node}),
        "unknown": sum(1 for op in ops if op.ret is None),
        "ops": Items(len(ops), lambda: (_op_data(op, model, start) for op in ops)),
        "partitions": partitions,
        "failure": _failure_data(failure, model, by_id) if failure is not None else None,
        "faults": _faults_data(faults or [], start),
    }


def resolved(value: Any) -> Any:
    """``value`` with every :class:`Items` and :class:`Later` in it made: plain JSON values."""
    if isinstance(value, Later):
        return resolved(value.make())
    if isinstance(value, Items):
        return [resolved(item) for item in value]
    if isinstance(value, dict):
        return {key: resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolved(item) for item in value]
    return value


def _json_chunks(data: dict[str, Any]) -> Iterator[str]:
    """``data`` as JSON safe inside a <script> element, in chunks: one per top-level value and
    one per item of a top-level list (an op, a group with its states), each made and dropped in turn."""
    sep = "{"
    for key, value in data.items():
        yield f"{sep}{_script_json(key)}:"
        sep = ","
        if isinstance(value, list | Items):
            inner = "["
            for item in value:
                yield inner + _script_json(resolved(item))
                inner = ","
            yield "[]" if inner == "[" else "]"
        else:
            yield _script_json(resolved(value))
    yield "}"


def _faults_data(faults: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    """The fault intervals in start order, each with its times on the page's clock (ns after the
    first call: ``c``, ``r``, None for never stopped), a label, colours and a row (``lv``) of its
    own wherever intervals overlap."""
    rows = []
    for fault in faults:
        s0 = _seconds(fault.get("start"))
        s1 = _seconds(fault.get("stop"))
        s0 = 0.0 if s0 is None else s0
        if s1 is not None and s1 < s0:
            s1 = s0
        rows.append((s0, s1, str(fault.get("fault") or "unknown"), fault))
    rows.sort(key=lambda row: row[0])
    colours: dict[str, tuple[str, str]] = {}
    ends: list[float] = []  # per row of the label strip: where its last interval stops
    out = []
    for s0, s1, name, fault in rows:
        colour, ink = colours.setdefault(name, FAULT_COLOURS[len(colours) % len(FAULT_COLOURS)])
        level = next((k for k, end in enumerate(ends) if end <= s0), len(ends))
        if level == len(ends):
            ends.append(0.0)
        ends[level] = float("inf") if s1 is None else s1
        value = fault.get("value")
        out.append(
            {
                "fault": name,
                "label": _fault_label(name, value),
                "color": colour,
                "ink": ink,
                "s0": s0,
                "s1": s1,
                "su": bool(fault.get("start_unknown")),
                "c": round(s0 * 1e9) - start,
                "r": None if s1 is None else round(s1 * 1e9) - start,
                "v": _plain(value),
                "lv": level,
            }
        )
    return out


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _fault_label(name: str, value: Any) -> str:
    """The fault and what it hit, short: ``partition · halves · n1 n2 | n3 n4 n5``."""
    parts = [name]
    if isinstance(value, dict):
        shape = value.get("shape")
        if shape and name != f"partition-{shape}":
            parts.append(str(shape))
        nodes, components = value.get("nodes"), value.get("components")
        if isinstance(nodes, list) and nodes:
            parts.append(", ".join(map(str, nodes)))
        elif isinstance(components, list) and components:
            parts.append(
                " | ".join(" ".join(map(str, g)) if isinstance(g, list) else str(g) for g in components)
            )
        elif value.get("leader"):
            parts.append(f"leader {value['leader']}")
        if value.get("bridge"):
            parts.append(f"bridge {value['bridge']}")
        if value.get("delay_ms") is not None:
            parts.append(f"{value['delay_ms']} ms")
        if isinstance(value.get("loss"), int | float):
            parts.append(f"{value['loss']:.0%} loss")
        if value.get("error"):
            parts.append("error")
    label = " · ".join(parts)
    return label if len(label) <= FAULT_LABEL_CHARS else label[: FAULT_LABEL_CHARS - 1] + "…"


def _ops_of(by_id: Mapping[int, Operation], ids: list[int]) -> list[Operation]:
    return [by_id[i] for i in ids if i in by_id]


def _op_data(op: Operation, model: Model, start: int) -> dict[str, Any]:
    return {
        "id": op.id,
        "h": op.call_index,  # the number a person sees: the invocation's index in the history
        "n": op.node,
        "p": str(op.process),
        "f": op.f,
        "d": model.describe_op(op),
        "i": _plain(op.input),
        "o": _plain(op.output),
        "c": op.call - start,
        "r": None if op.ret is None else op.ret - start,
    }


def _failure_data(failure: Failure, model: Model, by_id: Mapping[int, Operation]) -> dict[str, Any]:
    minimal_states = minimal_partials = None
    if failure.minimal is not None and failure.minimal_longest is not None:
        minimal_states = _replay(model, by_id, failure.minimal_longest)
        minimal_partials = partial_linearizations(model, _ops_of(by_id, failure.minimal)).to_json()
    return {
        "partition": failure.partition,
        "longest": failure.longest,
        "states": [_cut(s) for s in failure.states],
        "state": _cut(failure.state),
        "stuck": [_stuck_data(s) for s in failure.stuck],
        "minimal": failure.minimal,
        "minimal_longest": failure.minimal_longest,
        "minimal_states": minimal_states,
        "minimal_stuck": [_stuck_data(s) for s in failure.minimal_stuck or []],
        "minimal_state": _minimal_state(failure, minimal_states, model),
        "minimal_partials": minimal_partials,
    }


def _minimal_state(failure: Failure, states: list[str] | None, model: Model) -> str:
    """The state where the minimal anomaly gets stuck: after its longest prefix."""
    if not failure.minimal_longest:
        return _cut(model.describe_state(model.init()))
    return states[-1] if states else "?"


def _stuck_data(stuck: Stuck) -> dict[str, Any]:
    return {"op": stuck.op, "d": stuck.description, "expected": stuck.expected, "observed": stuck.observed}


def _replay(model: Model, by_id: Mapping[int, Operation], order: list[int]) -> list[str] | None:
    """Model state after each op of a linearization; the result holds only the order."""
    state = model.init()
    states = []
    for op_id in order:
        possible, state = model.step(state, by_id[op_id])
        if not possible:  # not a linearization after all: show nothing rather than nonsense
            return None
        states.append(_cut(model.describe_state(state)))
    return states


def _timed(ops: list[Operation]) -> bool:
    """False when the history had no clocks and times are just record positions."""
    return not all(op.call == op.call_index and (op.ret is None or op.ret == op.ret_index) for op in ops)


def _partition_label(ops: list[Operation]) -> str:
    """A name for a partition: the chat group or kv key its ops share, when they share one."""
    keys = set()
    for op in ops:
        value = op.input
        if isinstance(value, dict) and "group" in value:
            keys.add(("chat group", _short(value["group"])))
        elif isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], str | int):
            keys.add(("key", _short(value[0])))
        else:
            return ""
        if len(keys) > 1:
            return ""
    return " ".join(keys.pop()) if keys else ""


def _plain(value: Any) -> Any:
    """A JSON value as is; anything else as its repr, so the page always embeds."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(_plain(value))


def _cut(text: str) -> str:
    return text if len(text) <= STATE_CHARS else text[: STATE_CHARS - 1] + "…"


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element: no '<' can close it early."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")


# -- the view of the static text (checker/static/timeline.html makes its markup) -----------


def page_view(
    data: dict[str, Any], by_id: Mapping[int, Operation], model: Model, links: list[tuple[str, str]]
) -> dict[str, Any]:
    """What the page's static text shows (verdict, minimal anomaly, stuck operations, faults
    table), as plain values: times in ns on the page's clock, operations described by ``model``."""
    failure = data["failure"]
    kinds: dict[str, str] = {}
    for fault in data["faults"]:
        kinds.setdefault(fault["fault"], fault["color"])
    return {
        "verdict": data["verdict"],
        "title": data["title"],
        "model": data["model"],
        "reason": data["reason"],
        "elapsed": data["elapsed"],
        "timed": data["timed"],
        "ops": len(data["ops"]),
        "groups": len(data["partitions"]),
        "failing": sum(1 for p in data["partitions"] if p["status"] == "failed"),
        "processes": data["processes"],
        "nodes": len(data["nodes"]),
        "unknown": data["unknown"],
        "links": [{"label": label, "href": href} for label, href in links],
        "failure": None if failure is None else _failure_view(failure, data, by_id, model),
        # Drawn only on a real clock (see the module's docstring): no chips otherwise.
        "fault_kinds": [{"name": n, "color": c} for n, c in kinds.items()] if data["timed"] else [],
        "faults": [
            {**fault, "value": _cut(json.dumps(fault["v"], ensure_ascii=False))} for fault in data["faults"]
        ],
    }


def _failure_view(
    failure: dict[str, Any], data: dict[str, Any], by_id: Mapping[int, Operation], model: Model
) -> dict[str, Any]:
    view = {
        "partition": failure["partition"],
        "prefix": len(failure["longest"]),
        "state": failure["state"],
        "stuck": [_stuck_view(s, by_id, data["start"]) for s in failure["stuck"]],
        "minimal": None,
    }
    minimal = failure["minimal"]
    if minimal is None:
        return view
    longest = failure["minimal_longest"] or []
    states = failure["minimal_states"] or []
    order = {op_id: k for k, op_id in enumerate(longest)}
    stuck = {s["op"]: s for s in failure["minimal_stuck"]}
    rows = []
    for op in sorted(_ops_of(by_id, minimal), key=lambda o: (o.call, o.id)):
        rows.append(
            {
                **_op_view(op, data["start"]),
                "id": op.id,
                "index": op.call_index,
                "desc": model.describe_op(op),
                "stuck": op.id in stuck,
                "expected": stuck[op.id]["expected"] if op.id in stuck else None,
                "order": order.get(op.id),
            }
        )
    view["minimal"] = {
        "count": len(minimal),
        "group_ops": len(data["partitions"][failure["partition"]]["ops"]),
        "steps": [
            {
                **_op_view(by_id[op_id], data["start"]),
                "op": op_id,
                "desc": model.describe_op(by_id[op_id]),
                "state": states[k] if k < len(states) else "?",
            }
            for k, op_id in enumerate(longest)
        ],
        "state": failure["minimal_state"],
        "stuck": [_stuck_view(s, by_id, data["start"]) for s in failure["minimal_stuck"]],
        "rows": rows,
    }
    return view


def _stuck_view(stuck: dict[str, Any], by_id: Mapping[int, Operation], start: int) -> dict[str, Any]:
    op = by_id.get(stuck["op"])
    return {
        "op": stuck["op"],
        "number": op.call_index if op is not None else stuck["op"],  # the history's index
        "at": _op_view(op, start) if op is not None else None,
        "desc": stuck["d"],
        "observed": stuck["observed"],
        "expected": stuck["expected"],
    }


def _op_view(op: Operation, start: int) -> dict[str, Any]:
    """Who ran an operation and when: its process, the node that served it, its times."""
    return {
        "proc": f"p{op.process}" if isinstance(op.process, int) else str(op.process),
        "node": op.node,
        "call": op.call - start,
        "ret": None if op.ret is None else op.ret - start,
    }
