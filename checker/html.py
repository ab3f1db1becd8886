"""A self-contained HTML page that shows a check's verdict, so a person can see why.

The text a person needs first (verdict, minimal anomaly, stuck operations) is plain HTML
made here, so it reads even without scripts. The timelines are drawn by a script on
canvas from data embedded as JSON: no network, opens from a file, and only the visible
time window and lanes are drawn, so histories of tens of thousands of ops stay usable.
The page's template, style sheet and script are files of this package (``static/``,
loaded with ``importlib.resources``) inlined into the one page written; Python builds only
the page's data and its static text.

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

import html
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from checker.model import Model, Operation
from checker.page import asset, page_chunks
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
    by_id = {op.id: op for op in result.ops}
    data = page_data(result, model, title, faults=faults, by_id=by_id)
    body = (
        _banner(data, links or [])
        + _anomaly_section(data, by_id, model)
        + _whole_run_section(data)
        + _history_section(data, by_id)
        + _faults_section(data)
    )
    page_title = f"{_VERDICT_TEXT[data['verdict']]}: {title}" if title else _VERDICT_TEXT[data["verdict"]]
    scripts = itertools.chain(
        [f'{body}\n<script type="application/json" id="check-data">'],
        _json_chunks(data),
        [f"</script>\n<script>{asset('timeline.js')}</script>"],
    )
    return page_chunks(page_title, scripts, asset("timeline.css"))


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
    by_id: dict[int, Operation] | None = None,
) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready values (times in ns since the start of the test).

    The big parts (the ops, each group's states and partial linearizations) are :class:`Items`
    and :class:`Later`, made while :func:`_json_chunks` writes them; :func:`resolved` makes them all.
    """
    ops = result.ops
    start = 0  # one clock for the page, the faults and results.json: the history's own
    if by_id is None:
        by_id = {op.id: op for op in ops}
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


def _ops_of(by_id: dict[int, Operation], ids: list[int]) -> list[Operation]:
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


def _failure_data(failure: Failure, model: Model, by_id: dict[int, Operation]) -> dict[str, Any]:
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


def _replay(model: Model, by_id: dict[int, Operation], order: list[int]) -> list[str] | None:
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


# -- the static part of the page -----------------------------------------------------------

_VERDICT_TEXT = {"linearizable": "Linearizable", "violation": "NOT linearizable", "unknown": "Unknown"}
_VERDICT_MARK = {"linearizable": "✓", "violation": "✗", "unknown": "?"}


def _e(value: Any) -> str:
    return html.escape(str(value))


def _banner(data: dict[str, Any], links: list[tuple[str, str]]) -> str:
    verdict = data["verdict"]
    counts = [
        f"model <b>{_e(data['model'])}</b>",
        f"<b>{len(data['ops'])}</b> operations",
        f"<b>{len(data['partitions'])}</b> checked group{'s' if len(data['partitions']) != 1 else ''}",
        f"<b>{data['processes']}</b> processes",
        *([f"<b>{len(data['nodes'])}</b> nodes"] if data["nodes"] else []),
        f"<b>{data['unknown']}</b> with unknown outcome",
        f"checked in <b>{data['elapsed']:.3f} s</b>",
    ]
    reason = f'<div class="reason">{_e(data["reason"])}</div>' if data["reason"] else ""
    title = f'<div class="subject">{_e(data["title"])}</div>' if data["title"] else ""
    nav = ""
    if links:
        anchors = "".join(f'<a href="{_e(href)}">{_e(label)}</a>' for label, href in links)
        nav = f'<nav id="links" class="links">{anchors}</nav>'
    return (
        f'<header id="verdict" class="banner {verdict}" data-verdict="{verdict}">'
        f'<div class="mark">{_VERDICT_MARK[verdict]}</div><div><h1>{_VERDICT_TEXT[verdict]}</h1>{title}'
        f'<div class="counts">{" · ".join(counts)}</div>{reason}{nav}</div></header>'
    )


def _anomaly_section(data: dict[str, Any], by_id: dict[int, Operation], model: Model) -> str:
    failure = data["failure"]
    if failure is None:
        return ""
    if failure["minimal"] is None:
        return (
            '<section id="minimal" class="card anomaly"><h2>Why it is not linearizable</h2>'
            "<p>No minimal anomaly was computed; the operations that could not go next in the "
            f"failing group {failure['partition']} are:</p>{_stuck_cards(failure['stuck'], by_id, data)}"
            "</section>"
        )
    minimal = failure["minimal"]
    longest = failure["minimal_longest"] or []
    states = failure["minimal_states"] or []
    partition_size = len(data["partitions"][failure["partition"]]["ops"])
    steps = "".join(
        f'<li data-op="{op_id}"><span class="desc">{_proc(by_id[op_id])}{_node(by_id[op_id])} '
        f"{_e(model.describe_op(by_id[op_id]))}</span>"
        f'<span class="arrow">→ state</span> <code>{_e(states[k]) if k < len(states) else "?"}</code></li>'
        for k, op_id in enumerate(longest)
    )
    state = f"<code>{_e(failure['minimal_state'])}</code>"
    subject = "this operation has" if len(minimal) == 1 else "these operations have"
    if steps:
        lede = "The longest order the checker found:"
        after = f'<ol class="steps">{steps}</ol><p>then, in state {state}, none of the rest can go next:</p>'
    else:
        lede = f"From the initial state {state}, {'it cannot' if len(minimal) == 1 else 'none can'} go first:"
        after = ""
    return (
        f'<section id="minimal" class="card anomaly" data-ops="{len(minimal)}">'
        f"<h2>Minimal anomaly: {len(minimal)} operation{'s' if len(minimal) != 1 else ''} "
        f"that cannot be linearized</h2>"
        f'<p class="lede">Taken alone, {subject} '
        f"no linearization ({len(minimal)} of the {partition_size} operations of group "
        f"{failure['partition']}). {lede}</p>"
        f"{after}{_stuck_cards(failure['minimal_stuck'], by_id, data)}"
        f'<div id="minimal-timeline" class="timeline compact"></div>'
        f"{_minimal_table(minimal, longest, failure['minimal_stuck'], by_id, model, data)}</section>"
    )


def _stuck_cards(stuck: list[dict[str, Any]], by_id: dict[int, Operation], data: dict[str, Any]) -> str:
    cards = []
    for s in stuck:
        op = by_id.get(s["op"])
        where = f"{_proc(op)}{_node(op)} · {_span(op, data)}" if op is not None else ""
        number = op.call_index if op is not None else s["op"]
        cards.append(
            f'<div class="stuck" data-op="{s["op"]}"><div class="what">✗ {_e(s["d"])}</div>'
            f'<div class="where">op {number} · {where}</div>'
            f'<div class="cmp"><span>observed <b class="obs">{_e(s["observed"])}</b></span>'
            f'<span>model expected <b class="exp">{_e(s["expected"])}</b></span></div></div>'
        )
    return f'<div class="stuck-list">{"".join(cards)}</div>'


def _minimal_table(
    minimal: list[int],
    longest: list[int],
    stuck: list[dict[str, Any]],
    by_id: dict[int, Operation],
    model: Model,
    data: dict[str, Any],
) -> str:
    order = {op_id: k for k, op_id in enumerate(longest)}
    stuck_ids = {s["op"]: s for s in stuck}
    rows = []
    for op in sorted(_ops_of(by_id, minimal), key=lambda o: (o.call, o.id)):
        if op.id in stuck_ids:
            role, cls = f"stuck: expected {stuck_ids[op.id]['expected']}", "r-stuck"
        elif op.id in order:
            role, cls = f"linearized #{order[op.id] + 1}", "r-lin"
        else:
            role, cls = "not linearized", ""
        times = f'data-call="{op.call}" data-ret="{"" if op.ret is None else op.ret}"'
        rows.append(
            f'<tr class="{cls}" data-op="{op.id}" data-index="{op.call_index}" {times}>'
            f'<td>{op.call_index}</td><td>{_proc(op)}</td><td class="node">{_e(op.node or "—")}</td>'
            f"<td>{_e(model.describe_op(op))}</td><td>{_span(op, data)}</td><td>{_e(role)}</td></tr>"
        )
    return (
        '<table class="ops"><thead><tr><th>op</th><th>process</th><th>node</th><th>operation</th>'
        "<th>invoked → completed (s since the start)</th><th>in the search</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _history_section(data: dict[str, Any], by_id: dict[int, Operation]) -> str:
    failure = data["failure"]
    failing = ""
    if failure is not None:
        prefix = len(failure["longest"])
        failing = (
            f'<p id="failing-note" class="failing-note">Group {failure["partition"]} fails: the longest '
            f"linearizable prefix has {prefix} operation{'s' if prefix != 1 else ''}, ending in state "
            f"<code>{_e(failure['state'])}</code>. Then none of these can go next (red in the timeline):</p>"
            f"{_stuck_cards(failure['stuck'], by_id, data)}"
        )
    return (
        '<section id="history" class="card"><h2>One checked group</h2>'
        '<div class="toolbar"><label>group <select id="partition"></select></label>'
        '<span class="group"><button id="fit" title="whole partition (0)">fit</button>'
        '<button id="zoom-in" title="zoom in (+)">+</button>'
        '<button id="zoom-out" title="zoom out (−)">−</button>'
        '<button id="to-failure" title="zoom to the failure (f)">failure</button></span>'
        '<span class="group">x axis <label><input type="radio" name="mode" value="real"> real time</label>'
        '<label><input type="radio" name="mode" value="rank"> event order</label></span>'
        '<label><input type="checkbox" id="show-lin" checked> linearization</label>'
        '<label title="hide processes with nothing but a crashed operation running on in this window">'
        '<input type="checkbox" id="active-only"> only processes active in view</label>'
        '<label title="order the lanes by the node each process talked to">'
        '<input type="checkbox" id="by-node"> lanes by node</label>'
        '<span class="hint">drag to pan · Ctrl+wheel or double-click to zoom · '
        "click an operation for details · hover one for its longest partial linearization</span></div>"
        '<div class="legend"><span class="chip c-lin"></span>linearized (numbered in order)'
        '<span class="chip c-other"></span>not linearized<span class="chip c-stuck"></span>could not go next'
        '<span class="chip c-unknown"></span>unknown outcome (may take effect until the end, or never)'
        f"{_fault_legend(data)}</div>"
        f"{failing}"
        '<div id="main-timeline" class="timeline"></div>'
        '<div id="view-summary" class="summary"></div>'
        '<div id="details" class="details">Click an operation to keep its details here.</div></section>'
        '<div id="tip" class="tip" hidden></div>'
    )


def _whole_run_section(data: dict[str, Any]) -> str:
    """Every operation of every group against the faults; the per-group view follows it."""
    groups = len(data["partitions"])
    failing = sum(1 for p in data["partitions"] if p["status"] == "failed")
    note = f", {failing} of them failing (marked red)" if failing else ""
    return (
        f'<section id="whole-run" class="card" data-groups="{groups}" data-failing="{failing}">'
        f"<h2>The whole run: {len(data['ops'])} operations in {groups} checked "
        f"group{'s' if groups != 1 else ''}{note}</h2>"
        '<p class="hint">Every operation of every group, one lane per process, against the fault bands. '
        "Click an operation to open its group below.</p>"
        '<div class="legend"><span class="chip c-lin"></span>in a linearizable group'
        '<span class="chip c-failgroup"></span>in a failing group<span class="chip c-stuck"></span>'
        "could not go next"
        '<span class="chip c-other"></span>not checked'
        f"{_fault_legend(data)}</div>"
        '<div id="whole-timeline" class="timeline"></div>'
        '<div id="whole-summary" class="summary"></div></section>'
    )


def _fault_legend(data: dict[str, Any]) -> str:
    if not data["faults"] or not data["timed"]:
        return ""
    kinds: dict[str, str] = {}
    for fault in data["faults"]:
        kinds.setdefault(fault["fault"], fault["color"])
    chips = "".join(
        f'<span class="chip c-fault" style="background:{_rgba(colour, 0.16)};border-color:{colour}"></span>'
        f"{_e(name)}"
        for name, colour in kinds.items()
    )
    return f'<span class="legend-faults">faults (shaded):{chips}</span>'


def _faults_section(data: dict[str, Any]) -> str:
    """The fault intervals as a table, readable without the script."""
    faults = data["faults"]
    if not faults:
        return ""
    if data["timed"]:
        note = (
            "Shaded bands across the timeline above; times in seconds since the start of the test. "
            "In event order a band starts and stops between the same events as in real time. "
            "Click a row to show it in the timeline."
        )
    else:
        note = (
            "This history has no timestamps: its timeline shows only the order of events, so these "
            "intervals, timed in seconds, are not drawn on it."
        )
    rows = []
    for k, fault in enumerate(faults):
        s0, s1 = fault["s0"], fault["s1"]
        start = _fmt_at(round(s0 * 1e9), True) + (" (not recorded)" if fault["su"] else "")
        if s1 is None:
            stop, lasted = "never stopped", "until the end"
        else:
            stop = _fmt_at(round(s1 * 1e9), True)
            lasted = "instant" if s1 == s0 else _fmt_time(round((s1 - s0) * 1e9), True)
        value = _cut(json.dumps(fault["v"], ensure_ascii=False))
        rows.append(
            f'<tr class="fault-row" data-fault="{k}"><td><span class="swatch" style="background:'
            f'{_rgba(fault["color"], 0.3)};border-color:{fault["color"]}"></span>{_e(fault["label"])}</td>'
            f"<td>{_e(start)}</td><td>{_e(stop)}</td><td>{_e(lasted)}</td>"
            f'<td class="value">{_e(value)}</td></tr>'
        )
    count = len(faults)
    return (
        f'<section id="faults" class="card" data-faults="{count}" data-timed="{str(data["timed"]).lower()}">'
        f"<h2>Faults: {count} interval{'s' if count != 1 else ''}</h2>"
        f'<p class="hint">{note}</p>'
        '<table class="ops faults"><thead><tr><th>fault</th><th>start</th><th>stop</th><th>lasted</th>'
        f"<th>value</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _rgba(colour: str, alpha: float) -> str:
    n = int(colour.lstrip("#"), 16)
    return f"rgba({n >> 16}, {(n >> 8) & 255}, {n & 255}, {alpha})"


def _proc(op: Operation | None) -> str:
    if op is None:
        return ""
    return f'<span class="proc">{_e(f"p{op.process}" if isinstance(op.process, int) else op.process)}</span>'


def _node(op: Operation | None) -> str:
    if op is None or not op.node:
        return ""
    return f' <span class="node" title="the node that served it">{_e(op.node)}</span>'


def _span(op: Operation | None, data: dict[str, Any]) -> str:
    if op is None:
        return ""
    start, timed = data["start"], data["timed"]
    ret = "unknown" if op.ret is None else _fmt_at(op.ret - start, timed)
    return f"{_fmt_at(op.call - start, timed)} → {ret}"


def _fmt_at(t: int, timed: bool) -> str:
    """A point in time: seconds since the start of the test (the script's ``fmtAt``)."""
    return f"{t / 1e9:.6f} s" if timed else f"#{t}"


def _fmt_time(t: int, timed: bool) -> str:
    """Same units as the page's script uses, so table and tooltips agree."""
    if not timed:
        return f"#{t}"
    a = abs(t)
    if a < 1_000:
        return f"{t} ns"
    if a < 1_000_000:
        return f"{t / 1e3:.2f} µs"
    if a < 1_000_000_000:
        return f"{t / 1e6:.3f} ms"
    return f"{t / 1e9:.3f} s"
