"""A self-contained HTML page that shows a check's verdict, so a person can see why.

The text a person needs first (verdict, minimal anomaly, stuck operations) is plain HTML
made here, so it reads even without scripts. The timelines are drawn by inline JS on
canvas from data embedded as JSON: no network, opens from a file, and only the visible
time window and lanes are drawn, so histories of tens of thousands of ops stay usable.

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
import json
from pathlib import Path
from typing import Any

from checker.model import Model, Operation
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
    result: CheckResult, model: Model, title: str = "", *, faults: list[dict[str, Any]] | None = None
) -> str:
    """The whole page as one string.

    ``faults``: intervals when faults were in force, each ``{"fault": name, "start": s, "stop": s
    or None (until the end), "value": what was done}`` in seconds since the start of the history
    (the clock of the ops' times), as ``harness.stats.compute`` gives them under ``nemesis``.
    """
    data = page_data(result, model, title, faults=faults)
    by_id = {op.id: op for op in result.ops}
    body = (
        _banner(data)
        + _anomaly_section(data, by_id, model)
        + _history_section(data, by_id)
        + _faults_section(data)
    )
    page_title = f"{_VERDICT_TEXT[data['verdict']]}: {title}" if title else _VERDICT_TEXT[data["verdict"]]
    return (
        _PAGE.replace("__TITLE__", html.escape(page_title))
        .replace("__CSS__", _CSS)
        .replace("__BODY__", body)
        .replace("__DATA__", _script_json(data))
        .replace("__JS__", _JS)
    )


def write_html(
    path: str | Path,
    result: CheckResult,
    model: Model,
    title: str = "",
    *,
    faults: list[dict[str, Any]] | None = None,
) -> None:
    Path(path).write_text(render(result, model, title, faults=faults), encoding="utf-8")


# -- the data the page's script draws from -------------------------------------------------


def page_data(
    result: CheckResult, model: Model, title: str = "", *, faults: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready values (times relative to the first call)."""
    ops = result.ops
    start = min((op.call for op in ops), default=0)
    by_id = {op.id: op for op in ops}
    failure = result.failure
    verdict = "unknown" if result.valid == UNKNOWN else ("linearizable" if result.valid else "violation")
    partitions = []
    for index, ids in enumerate(result.partition_ops):
        lin = result.linearizations[index] if index < len(result.linearizations) else None
        if failure is not None and failure.partition == index:
            status, states = "failed", None
        elif lin is not None:
            status, states = "linearizable", _replay(model, by_id, lin)
        else:
            status, states = "unchecked", None
        partitions.append(
            {
                "i": index,
                "ops": ids,
                "status": status,
                "lin": lin,
                "states": states,
                "label": _partition_label(_ops_of(by_id, ids)),
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
        "unknown": sum(1 for op in ops if op.ret is None),
        "ops": [_op_data(op, model, start) for op in ops],
        "partitions": partitions,
        "failure": _failure_data(failure, model, by_id) if failure is not None else None,
        "faults": _faults_data(faults or [], start),
    }


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
        "p": str(op.process),
        "f": op.f,
        "d": model.describe_op(op),
        "i": _plain(op.input),
        "o": _plain(op.output),
        "c": op.call - start,
        "r": None if op.ret is None else op.ret - start,
    }


def _failure_data(failure: Failure, model: Model, by_id: dict[int, Operation]) -> dict[str, Any]:
    minimal_states = None
    if failure.minimal is not None and failure.minimal_longest is not None:
        minimal_states = _replay(model, by_id, failure.minimal_longest)
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
            keys.add(("group", _short(value["group"])))
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


def _script_json(data: dict[str, Any]) -> str:
    """JSON safe inside a <script> element: no '<' can close it early."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")


# -- the static part of the page -----------------------------------------------------------

_VERDICT_TEXT = {"linearizable": "Linearizable", "violation": "NOT linearizable", "unknown": "Unknown"}
_VERDICT_MARK = {"linearizable": "✓", "violation": "✗", "unknown": "?"}


def _e(value: Any) -> str:
    return html.escape(str(value))


def _banner(data: dict[str, Any]) -> str:
    verdict = data["verdict"]
    counts = [
        f"model <b>{_e(data['model'])}</b>",
        f"<b>{len(data['ops'])}</b> operations",
        f"<b>{len(data['partitions'])}</b> partition{'s' if len(data['partitions']) != 1 else ''}",
        f"<b>{data['processes']}</b> processes",
        f"<b>{data['unknown']}</b> with unknown outcome",
        f"checked in <b>{data['elapsed']:.3f} s</b>",
    ]
    reason = f'<div class="reason">{_e(data["reason"])}</div>' if data["reason"] else ""
    title = f'<div class="subject">{_e(data["title"])}</div>' if data["title"] else ""
    return (
        f'<header id="verdict" class="banner {verdict}" data-verdict="{verdict}">'
        f'<div class="mark">{_VERDICT_MARK[verdict]}</div><div><h1>{_VERDICT_TEXT[verdict]}</h1>{title}'
        f'<div class="counts">{" · ".join(counts)}</div>{reason}</div></header>'
    )


def _anomaly_section(data: dict[str, Any], by_id: dict[int, Operation], model: Model) -> str:
    failure = data["failure"]
    if failure is None:
        return ""
    if failure["minimal"] is None:
        return (
            '<section id="minimal" class="card anomaly"><h2>Why it is not linearizable</h2>'
            "<p>No minimal anomaly was computed; the operations that could not go next in the "
            f"failing partition #{failure['partition']} are:</p>{_stuck_cards(failure['stuck'], by_id, data)}"
            "</section>"
        )
    minimal = failure["minimal"]
    longest = failure["minimal_longest"] or []
    states = failure["minimal_states"] or []
    partition_size = len(data["partitions"][failure["partition"]]["ops"])
    steps = "".join(
        f'<li data-op="{op_id}"><span class="desc">{_proc(by_id[op_id])} '
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
        f"no linearization ({len(minimal)} of the {partition_size} operations of partition "
        f"#{failure['partition']}). {lede}</p>"
        f"{after}{_stuck_cards(failure['minimal_stuck'], by_id, data)}"
        f'<div id="minimal-timeline" class="timeline compact"></div>'
        f"{_minimal_table(minimal, longest, failure['minimal_stuck'], by_id, model, data)}</section>"
    )


def _stuck_cards(stuck: list[dict[str, Any]], by_id: dict[int, Operation], data: dict[str, Any]) -> str:
    cards = []
    for s in stuck:
        op = by_id.get(s["op"])
        where = f"{_proc(op)} · {_span(op, data)}" if op is not None else ""
        cards.append(
            f'<div class="stuck" data-op="{s["op"]}"><div class="what">✗ {_e(s["d"])}</div>'
            f'<div class="where">op {s["op"]} · {where}</div>'
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
        rows.append(
            f'<tr class="{cls}" data-op="{op.id}"><td>{op.id}</td><td>{_proc(op)}</td>'
            f"<td>{_e(model.describe_op(op))}</td><td>{_span(op, data)}</td><td>{_e(role)}</td></tr>"
        )
    return (
        '<table class="ops"><thead><tr><th>op</th><th>process</th><th>operation</th>'
        "<th>invoked → completed</th><th>in the search</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _history_section(data: dict[str, Any], by_id: dict[int, Operation]) -> str:
    failure = data["failure"]
    failing = ""
    if failure is not None:
        prefix = len(failure["longest"])
        failing = (
            f'<p id="failing-note" class="failing-note">Partition #{failure["partition"]} fails: the longest '
            f"linearizable prefix has {prefix} operation{'s' if prefix != 1 else ''}, ending in state "
            f"<code>{_e(failure['state'])}</code>. Then none of these can go next (red in the timeline):</p>"
            f"{_stuck_cards(failure['stuck'], by_id, data)}"
        )
    return (
        '<section id="history" class="card"><h2>History</h2>'
        '<div class="toolbar"><label>partition <select id="partition"></select></label>'
        '<span class="group"><button id="fit" title="whole partition (0)">fit</button>'
        '<button id="zoom-in" title="zoom in (+)">+</button>'
        '<button id="zoom-out" title="zoom out (−)">−</button>'
        '<button id="to-failure" title="zoom to the failure (f)">failure</button></span>'
        '<span class="group">x axis <label><input type="radio" name="mode" value="real"> real time</label>'
        '<label><input type="radio" name="mode" value="rank"> event order</label></span>'
        '<label><input type="checkbox" id="show-lin" checked> linearization</label>'
        '<label title="hide processes with nothing but a crashed operation running on in this window">'
        '<input type="checkbox" id="active-only"> only processes active in view</label>'
        '<span class="hint">drag to pan · Ctrl+wheel or double-click to zoom · '
        "click an operation for details</span></div>"
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
        if data["start"]:
            first = _fmt_time(data["start"], True)
            note += f" The timeline's clock starts at the first call, {first} into the test."
    else:
        note = (
            "This history has no timestamps: its timeline shows only the order of events, so these "
            "intervals, timed in seconds, are not drawn on it."
        )
    rows = []
    for k, fault in enumerate(faults):
        s0, s1 = fault["s0"], fault["s1"]
        start = _fmt_time(round(s0 * 1e9), True) + (" (not recorded)" if fault["su"] else "")
        if s1 is None:
            stop, lasted = "never stopped", "until the end"
        else:
            stop = _fmt_time(round(s1 * 1e9), True)
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


def _span(op: Operation | None, data: dict[str, Any]) -> str:
    if op is None:
        return ""
    start, timed = data["start"], data["timed"]
    ret = "unknown" if op.ret is None else _fmt_time(op.ret - start, timed)
    return f"{_fmt_time(op.call - start, timed)} → {ret}"


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


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>__CSS__</style></head>
<body>
__BODY__
<script type="application/json" id="check-data">__DATA__</script>
<script>__JS__</script>
</body></html>
"""

_CSS = r"""
:root { --red: #dc2626; --red-bg: #fef2f2; --green: #15803d; --amber: #b45309; --blue: #2563eb;
  --ink: #111827; --muted: #6b7280; --line: #e5e7eb; }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px 20px 40px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
  "DejaVu Sans", sans-serif; color: var(--ink); background: #f3f4f6; }
code, .ops td, .tip .v { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: 12.5px; }
code { background: #f3f4f6; border: 1px solid var(--line); border-radius: 4px; padding: 0 4px;
  overflow-wrap: anywhere; }
.banner { display: flex; gap: 16px; align-items: center; padding: 14px 20px; border-radius: 10px;
  color: white; margin-bottom: 14px; box-shadow: 0 1px 3px rgb(0 0 0 / 0.2); }
.banner.linearizable { background: var(--green); }
.banner.violation { background: var(--red); }
.banner.unknown { background: var(--amber); }
.banner .mark { font-size: 44px; font-weight: 700; line-height: 1; width: 48px; text-align: center; }
.banner h1 { margin: 0; font-size: 26px; letter-spacing: 0.01em; }
.banner .subject { font-size: 13px; opacity: 0.9; overflow-wrap: anywhere; }
.banner .counts { margin-top: 2px; opacity: 0.95; }
.banner .reason { margin-top: 4px; font-weight: 600; }
.card { background: white; border: 1px solid var(--line); border-radius: 10px; padding: 14px 18px;
  margin-bottom: 14px; box-shadow: 0 1px 2px rgb(0 0 0 / 0.05); }
.card h2 { margin: 0 0 8px; font-size: 17px; }
.anomaly { border-left: 5px solid var(--red); }
.anomaly h2 { color: #991b1b; }
.lede { margin: 0 0 6px; }
.steps { margin: 4px 0 8px; padding-left: 28px; }
.steps li { margin: 2px 0; }
.steps .arrow { color: var(--muted); margin-left: 8px; }
.proc { display: inline-block; min-width: 26px; padding: 0 5px; border-radius: 4px; background: #eef2ff;
  color: #3730a3; font-size: 12px; font-weight: 600; text-align: center; }
.stuck-list { display: flex; flex-wrap: wrap; gap: 10px; margin: 6px 0 12px; }
.stuck { border: 2px solid var(--red); background: var(--red-bg); border-radius: 8px; padding: 8px 12px;
  min-width: 260px; max-width: 640px; cursor: pointer; }
.stuck .what { font-weight: 700; color: #991b1b; overflow-wrap: anywhere; }
.stuck .where { color: var(--muted); font-size: 12px; }
.stuck .cmp { display: flex; gap: 18px; flex-wrap: wrap; margin-top: 4px; }
.stuck .obs { color: var(--red); overflow-wrap: anywhere; }
.stuck .exp { color: var(--green); overflow-wrap: anywhere; }
table.ops { border-collapse: collapse; width: 100%; margin-top: 10px; }
.ops th { text-align: left; font-weight: 600; color: var(--muted); border-bottom: 2px solid var(--line);
  padding: 3px 8px; font-size: 12px; }
.ops td { border-bottom: 1px solid var(--line); padding: 3px 8px; overflow-wrap: anywhere; }
.ops tr { cursor: pointer; }
.ops tr:hover td { background: #f9fafb; }
.ops tr.r-stuck td { background: var(--red-bg); color: #991b1b; font-weight: 600; }
.ops tr.r-lin td:last-child { color: var(--blue); }
.toolbar { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; margin-bottom: 6px; }
.toolbar select { max-width: 420px; font: inherit; padding: 2px 4px; }
.toolbar .group { display: inline-flex; gap: 4px; align-items: center; }
.toolbar button { font: inherit; padding: 2px 10px; border: 1px solid #d1d5db; border-radius: 6px;
  background: #f9fafb; cursor: pointer; }
.toolbar button:hover { background: #eef2ff; }
.toolbar button:disabled { opacity: 0.4; cursor: default; }
.hint { color: var(--muted); font-size: 12px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 6px; align-items: center; font-size: 12px;
  color: #374151; margin-bottom: 8px; }
.chip { display: inline-block; width: 22px; height: 12px; border-radius: 3px; margin-left: 10px;
  vertical-align: middle; }
.chip.c-lin { background: #dbeafe; border: 1.5px solid var(--blue); }
.chip.c-other { background: #e5e7eb; border: 1.5px solid #9ca3af; }
.chip.c-stuck { background: #fee2e2; border: 2px solid var(--red); }
.chip.c-unknown { border: 1.5px dashed var(--amber); background: repeating-linear-gradient(135deg,
  #fde68a 0 3px, #fffbeb 3px 6px); }
.chip.c-fault { border: 1.5px solid; width: 18px; }
.legend-faults { display: inline-flex; flex-wrap: wrap; align-items: center; gap: 4px 6px;
  margin-left: 14px; padding-left: 4px; border-left: 1px solid var(--line); }
.timeline .fault-strip { cursor: pointer; }
.faults .swatch { display: inline-block; width: 14px; height: 12px; border: 1.5px solid; border-radius: 3px;
  margin-right: 7px; vertical-align: -1px; }
.faults td:first-child { font-family: inherit; font-size: 13px; font-weight: 600; }
.faults td.value { color: var(--muted); }
#faults .hint { margin: 0 0 4px; }
.failing-note { margin: 6px 0 2px; }
.timeline { position: relative; user-select: none; border: 1px solid var(--line); border-radius: 6px;
  overflow: hidden; background: white; }
.timeline canvas { display: block; }
.timeline .scroller { position: relative; overflow-y: auto; overflow-x: hidden; }
.timeline .scroller canvas { position: sticky; top: 0; cursor: grab; outline: none; }
.timeline .scroller canvas.dragging { cursor: grabbing; }
.timeline .overview { border-top: 1px solid var(--line); cursor: pointer; }
.timeline.compact { margin: 8px 0 4px; }
.summary { color: var(--muted); font-size: 12px; margin: 4px 2px; }
.details { margin-top: 8px; padding: 8px 12px; border: 1px dashed #d1d5db; border-radius: 8px;
  color: var(--muted); min-height: 40px; }
.details.on { color: var(--ink); border-style: solid; }
.tip { position: fixed; z-index: 10; max-width: 520px; background: #111827; color: #f9fafb;
  border-radius: 8px; padding: 8px 10px; font-size: 12.5px; pointer-events: none;
  box-shadow: 0 4px 14px rgb(0 0 0 / 0.3); }
.tip h3, .details h3 { margin: 0 0 4px; font-size: 13.5px; overflow-wrap: anywhere; }
.kv { display: grid; grid-template-columns: max-content 1fr; gap: 1px 10px; }
.kv .k { color: #9ca3af; }
.details .kv .k { color: var(--muted); }
.kv .v { overflow-wrap: anywhere; white-space: pre-wrap; }
.bad { color: #fca5a5; font-weight: 700; }
.details .bad { color: var(--red); }
.good { color: #86efac; font-weight: 700; }
.details .good { color: var(--green); }
"""

_JS = r"""
(function () {
'use strict';
const D = JSON.parse(document.getElementById('check-data').textContent);
const OPS = new Map(D.ops.map((o) => [o.id, o]));
const DPR = window.devicePixelRatio || 1;
const GUTTER = 64, RIGHT = 12, AXIS = 24, OVERVIEW = 34, FROW = 18;
// Fault intervals can be placed only on a real clock (see the module's docstring).
const FAULTS = D.timed ? D.faults : [];
const FLEVELS = FAULTS.reduce((m, f) => Math.max(m, f.lv + 1), 0);
const BIG = 1500, FIRST_WINDOW = 300;  // partitions above BIG ops open on their first FIRST_WINDOW ops
const C = {
  lin: ['#dbeafe', '#2563eb', '#1e3a8a'], other: ['#e5e7eb', '#9ca3af', '#374151'],
  stuck: ['#fee2e2', '#dc2626', '#7f1d1d'], point: '#1d4ed8', grid: '#f1f5f9', lane: '#f8fafc',
};

function fmtTime(t) {
  if (!D.timed) return '#' + Math.round(t);
  const a = Math.abs(t);
  if (a < 1e3) return Math.round(t) + ' ns';
  if (a < 1e6) return (t / 1e3).toFixed(2) + ' µs';
  if (a < 1e9) return (t / 1e6).toFixed(3) + ' ms';
  return (t / 1e9).toFixed(3) + ' s';
}
function fmtTick(t, step, far) {
  if (!D.timed) return '#' + Math.round(t);
  const units = [[1e9, 's'], [1e6, 'ms'], [1e3, 'µs'], [1, 'ns']];
  const [div, name] = units.find(([d]) => far >= d) || units[3];  // the unit of the window's far end
  const digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(step / div) + 1e-9)));
  return (t / div).toFixed(digits) + ' ' + name;
}
function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}
function show(v) { return v === null || v === undefined ? 'nil' : JSON.stringify(v); }
function procCmp(a, b) {
  const x = Number(a), y = Number(b);
  if (!isNaN(x) && !isNaN(y)) return x - y;
  if (!isNaN(x)) return -1;
  if (!isNaN(y)) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
function plural(n, one, many) { return n + ' ' + (n === 1 ? one : many || one + 's'); }
function procName(p) { return isNaN(Number(p)) ? p : 'p' + p; }
function rgba(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + a + ')';
}
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// Time <-> x units: 'real' is time itself; 'rank' gives every distinct event the same width,
// which keeps the real-time order (all linearizability depends on) but drops the gaps.
class Scale {
  constructor(times, mode) {
    this.T = times; this.mode = mode;
    const n = times.length;
    this.gap = n > 1 ? (times[n - 1] - times[0]) / (n - 1) : 1;
    if (!(this.gap > 0)) this.gap = 1;
  }
  u(t) {
    if (this.mode === 'real') return t;
    const T = this.T, n = T.length;
    if (t <= T[0]) return (t - T[0]) / this.gap;
    if (t >= T[n - 1]) return n - 1 + (t - T[n - 1]) / this.gap;
    let lo = 0, hi = n - 1;
    while (hi - lo > 1) { const m = (lo + hi) >> 1; if (T[m] <= t) lo = m; else hi = m; }
    return lo + (t - T[lo]) / (T[hi] - T[lo]);
  }
  t(u) {
    if (this.mode === 'real') return u;
    const T = this.T, n = T.length;
    if (u <= 0) return T[0] + u * this.gap;
    if (u >= n - 1) return T[n - 1] + (u - n + 1) * this.gap;
    const i = Math.floor(u);
    return T[i] + (u - i) * (T[i + 1] - T[i]);
  }
}

// One partition (or the minimal anomaly) laid out: lanes, roles, linearization points.
function buildView(ids, lin, states, stuck, extra) {
  const items = ids.map((id) => ({ op: OPS.get(id), lin: -1, pt: 0, stuck: null, state: null }))
    .filter((it) => it.op);
  const byId = new Map(items.map((it) => [it.op.id, it]));
  const lanes = [...new Set(items.map((it) => it.op.p))].sort(procCmp);
  const laneOf = new Map(lanes.map((p, i) => [p, i]));
  const tset = new Set();
  for (const it of items) {
    it.lane = laneOf.get(it.op.p);
    tset.add(it.op.c);
    if (it.op.r !== null) tset.add(it.op.r);
  }
  const times = [...tset].sort((a, b) => a - b);
  if (!times.length) times.push(0);
  const order = (lin || []).map((id) => byId.get(id)).filter(Boolean);
  order.forEach((it, k) => { it.lin = k; it.state = states ? states[k] : null; });
  for (const s of stuck || []) { const it = byId.get(s.op); if (it) it.stuck = s; }
  // Points inside each bar, increasing along the order: a valid order always leaves room.
  const rank = new Scale(times, 'rank');
  const endRank = times.length - 1 + 1.5;
  let prev = -Infinity;
  for (const it of order) {
    const lo = Math.max(prev, rank.u(it.op.c));
    const hi = it.op.r === null ? endRank : rank.u(it.op.r);
    const p = lo + Math.max(0.01, Math.min(0.5, (hi - lo) / 2));
    it.pt = rank.t(p);
    prev = p;
  }
  const byLane = lanes.map(() => []);
  for (const it of items) byLane[it.lane].push(it);
  const stuckLanes = new Set(items.filter((it) => it.stuck).map((it) => it.lane));
  for (const l of byLane) l.sort((a, b) => a.op.c - b.op.c);
  const stuckCount = items.filter((it) => it.stuck).length;
  const view = { items, byId, lanes, byLane, stuckLanes, stuckCount, times, order, stuck: stuck || [] };
  return Object.assign(view, extra || {});
}

function partView(i) {
  const part = D.partitions[i];
  const f = D.failure;
  if (f && f.partition === i) {
    return buildView(part.ops, f.longest, f.states, f.stuck, { index: i, failed: true, endState: f.state });
  }
  return buildView(part.ops, part.lin, part.states, [], { index: i, failed: false });
}

const tip = document.getElementById('tip');

function opInfo(it, view, box) {
  const o = it.op;
  box.replaceChildren();
  box.appendChild(el('h3', '', o.d));
  const kv = el('div', 'kv');
  const row = (k, v, cls) => {
    kv.appendChild(el('span', 'k', k));
    kv.appendChild(el('span', 'v ' + (cls || ''), v));
  };
  row('op', o.id + ' · process ' + procName(o.p) + ' · ' + o.f);
  row('input', show(o.i));
  row('output', o.r === null ? 'unknown' : show(o.o));
  if (o.r === null) row('time', 'invoked ' + fmtTime(o.c) + '; outcome unknown: took effect later, or never');
  else if (!D.timed) row('records', fmtTime(o.c) + ' → ' + fmtTime(o.r));
  else row('time', fmtTime(o.c) + ' → ' + fmtTime(o.r) + '  (' + fmtTime(o.r - o.c) + ')');
  if (it.lin >= 0) {
    row(view.failed ? 'prefix' : 'linearized', '#' + (it.lin + 1) + ' of ' + view.order.length);
    if (it.state !== null && it.state !== undefined) row('state after', it.state);
  } else if (!it.stuck) {
    row('linearized', view.failed ? 'not reached by the longest prefix' : (o.r === null ?
      'no: it took no effect' : 'no'));
  }
  if (it.stuck) {
    row('could not go', 'next after the longest prefix', 'bad');
    row('observed', it.stuck.observed, 'bad');
    row('expected', it.stuck.expected, 'good');
    if (view.endState !== undefined) row('in state', view.endState);
  }
  box.appendChild(kv);
}

function faultInfo(f, box) {
  box.replaceChildren();
  box.appendChild(el('h3', '', 'fault: ' + f.label));
  const kv = el('div', 'kv');
  const row = (k, v) => { kv.appendChild(el('span', 'k', k)); kv.appendChild(el('span', 'v', v)); };
  const secs = (s) => fmtTime(Math.round(s * 1e9));
  row('fault', f.fault);
  row('start', secs(f.s0) + (f.su ? ' (not recorded: in force from the beginning)' : ''));
  row('stop', f.s1 === null ? 'never stopped: in force until the end' : secs(f.s1));
  if (f.s1 !== null) row('lasted', f.s1 === f.s0 ? 'an instant' : secs(f.s1 - f.s0));
  if (D.start) row('timeline', fmtTime(f.c) + ' → ' + (f.r === null ? 'the end' : fmtTime(f.r)));
  row('value', JSON.stringify(f.v));
  box.appendChild(kv);
}

function placeTip(e) {
  tip.hidden = false;
  const tw = tip.offsetWidth, th = tip.offsetHeight;
  let x = e.clientX + 14, y = e.clientY + 14;
  if (x + tw > window.innerWidth - 8) x = e.clientX - tw - 14;
  if (y + th > window.innerHeight - 8) y = Math.max(8, e.clientY - th - 14);
  tip.style.left = x + 'px'; tip.style.top = y + 'px';
}

class Timeline {
  constructor(host, opts) {
    this.host = host; this.opts = opts; this.row = 34;
    this.mode = opts.mode; this.showLin = true; this.hover = null; this.selected = null;
    this.faulty = !opts.compact && FAULTS.length > 0; this.hoverFault = -1; this.bandsDrawn = 0;
    this.axis = host.appendChild(document.createElement('canvas'));
    if (this.faulty) {  // the bands' labels, above the lanes
      this.strip = host.appendChild(document.createElement('canvas'));
      this.strip.className = 'fault-strip';
    }
    this.scroller = host.appendChild(el('div', 'scroller'));
    this.canvas = this.scroller.appendChild(document.createElement('canvas'));
    this.canvas.tabIndex = 0;
    this.spacer = this.scroller.appendChild(el('div'));
    if (!opts.compact) {
      this.over = host.appendChild(document.createElement('canvas'));
      this.over.className = 'overview';
      this.bindOverview();
    }
    this.bind();
  }
  setView(view) {
    this.view = view; this.hover = null; this.selected = null;
    this.setMode(this.mode, true);
    this.activeOnly = !this.opts.compact && view.lanes.length * this.row > this.H;
    this.scroller.scrollTop = 0;
  }
  setMode(mode, fit) {
    const v = this.view;
    const keep = !fit && this.scale ? [this.scale.t(this.u0), this.scale.t(this.u1)] : null;
    this.mode = mode; this.hist = null;
    this.scale = new Scale(v.times, mode);
    let first = this.scale.u(v.times[0]), last = this.scale.u(v.times[v.times.length - 1]);
    if (this.faulty && mode === 'real') {  // the whole of every fault is in the full view
      for (const f of FAULTS) { first = Math.min(first, f.c); if (f.r !== null) last = Math.max(last, f.r); }
    }
    const span = Math.max(last - first, 1);
    this.pad = mode === 'real' ? span * 0.04 : 1.5;
    this.uMin = first - this.pad * 0.5; this.uMax = last + this.pad * 1.5; this.uEnd = last + this.pad;
    for (const it of v.items) {
      it.uc = this.scale.u(it.op.c);
      it.ur = it.op.r === null ? this.uEnd : this.scale.u(it.op.r);
      it.up = it.lin >= 0 ? this.scale.u(it.pt) : 0;
    }
    for (const lane of v.byLane) {  // running max of bar ends: finds a window's first bar by bisection
      let m = -Infinity;
      for (const it of lane) { m = Math.max(m, it.ur); it.maxEnd = m; }
    }
    // Bands in x units; in event order a time falls between the events around it.
    const clampU = (u) => (mode === 'real' ? u : Math.min(Math.max(u, this.uMin), this.uMax));
    this.fu = this.faulty ? FAULTS.map((f) => [clampU(this.scale.u(f.c)),
      f.r === null ? this.uMax : clampU(this.scale.u(f.r))]) : [];
    if (keep) { this.u0 = this.scale.u(keep[0]); this.u1 = this.scale.u(keep[1]); } else this.fit(false);
    this.layout();
  }
  fit(draw) { this.u0 = this.uMin; this.u1 = this.uMax; if (draw !== false) this.draw(); }
  start() {
    // A large partition opens on its first few hundred ops: the whole of it is only a blur.
    const v = this.view;
    if (v.items.length <= BIG) { this.fit(); return; }
    const calls = v.items.map((it) => it.uc).sort((a, b) => a - b);
    const a = calls[0], b = calls[FIRST_WINDOW];
    this.u0 = a - (b - a) * 0.02; this.u1 = b; this.clampWindow(); this.draw();
  }
  firstBar(lane) {  // first bar whose running end reaches the window
    let lo = 0, hi = lane.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (lane[m].maxEnd < this.u0) lo = m + 1; else hi = m; }
    return lo;
  }
  laneActive(lane) {
    // Something happens here in the window: a bar that is not just a crashed op running on.
    for (let i = this.firstBar(lane); i < lane.length && lane[i].uc <= this.u1; i++) {
      const it = lane[i];
      if (it.ur < this.u0) continue;
      if (it.op.r !== null || it.uc >= this.u0 || it.stuck) return true;
      if (it.lin >= 0 && it.up >= this.u0 && it.up <= this.u1) return true;
    }
    return false;
  }
  computeRows() {
    const v = this.view, n = v.lanes.length;
    const rows = [];
    for (let l = 0; l < n; l++) if (!this.activeOnly || this.laneActive(v.byLane[l])) rows.push(l);
    this.rowOf = new Int32Array(n).fill(-1);
    rows.forEach((l, r) => { this.rowOf[l] = r; });
    this.rows = rows;
    this.spacer.style.height = Math.max(0, rows.length * this.row + 6 - this.H) + 'px';
  }
  scrollToLane(lane) {
    this.computeRows();
    const r = this.rowOf[lane];
    if (r >= 0) this.scroller.scrollTop = Math.max(0, r * this.row - this.H / 3);
  }
  layout() {
    const W = Math.max(300, this.host.clientWidth - 2);
    const total = this.view.lanes.length * this.row + 6;
    const maxH = this.opts.compact ? total : Math.max(160, Math.min(window.innerHeight * 0.62, 640));
    const H = Math.min(total, maxH);
    this.W = W; this.H = H;
    this.size(this.axis, W, AXIS);
    if (this.strip) this.size(this.strip, W, FLEVELS * FROW + 4);
    this.size(this.canvas, W, H);
    this.scroller.style.height = H + 'px';
    this.spacer.style.height = (total - H) + 'px';
    if (this.over) this.size(this.over, W, OVERVIEW);
  }
  size(c, w, h) {
    c.width = Math.round(w * DPR); c.height = Math.round(h * DPR);
    c.style.width = w + 'px'; c.style.height = h + 'px';
  }
  x(u) { return GUTTER + (u - this.u0) / (this.u1 - this.u0) * (this.W - GUTTER - RIGHT); }
  uAt(x) { return this.u0 + (x - GUTTER) / (this.W - GUTTER - RIGHT) * (this.u1 - this.u0); }
  request() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }
  draw() {
    const began = performance.now();
    const v = this.view, ctx = this.canvas.getContext('2d');
    const W = this.W, H = this.H, row = this.row, top = this.scroller.scrollTop;
    ctx.setTransform(DPR, 0, 0, DPR, 0, 0);
    ctx.clearRect(0, 0, W, H);
    this.computeRows();
    const rows = this.rows;
    const first = Math.max(0, Math.floor(top / row));
    const last = Math.min(rows.length - 1, Math.floor((top + H) / row));
    for (let r = first; r <= last; r++) {
      if (r % 2) { ctx.fillStyle = C.lane; ctx.fillRect(0, r * row - top, W, row); }
    }
    const ticks = this.ticks();
    ctx.strokeStyle = C.grid; ctx.lineWidth = 1;
    for (const [u] of ticks) {
      const x = Math.round(this.x(u)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, H); ctx.stroke();
    }
    ctx.save();
    ctx.beginPath(); ctx.rect(GUTTER, 0, W - GUTTER, H); ctx.clip();
    if (this.faulty) this.drawBands(ctx, H);
    ctx.font = '11.5px system-ui, "DejaVu Sans", sans-serif';
    ctx.textBaseline = 'middle';
    const charW = ctx.measureText('abcdefghij0123456789').width / 20;
    let drawn = 0;
    this.later = [];
    for (let r = first; r <= last; r++) {
      const lane = v.byLane[rows[r]], y = r * row - top + 3;
      for (let i = this.firstBar(lane); i < lane.length && lane[i].uc <= this.u1; i++) {
        if (lane[i].ur < this.u0) continue;
        this.bar(ctx, lane[i], y, row - 15, charW);
        drawn++;
      }
    }
    for (const f of this.later) f();
    if (this.showLin) this.drawLin(ctx, top);
    if (v.failed) this.drawFrontier(ctx, H);
    ctx.restore();
    ctx.fillStyle = 'white'; ctx.fillRect(0, 0, GUTTER - 2, H);
    ctx.fillStyle = '#e5e7eb'; ctx.fillRect(GUTTER - 2, 0, 1, H);
    ctx.font = '600 12px system-ui, "DejaVu Sans", sans-serif'; ctx.textAlign = 'right';
    for (let r = first; r <= last; r++) {
      const l = rows[r];
      ctx.fillStyle = v.stuckLanes.has(l) ? C.stuck[1] : '#4338ca';
      ctx.fillText(procName(v.lanes[l]), GUTTER - 8, r * row - top + row / 2 - 3, GUTTER - 10);
    }
    ctx.textAlign = 'left';
    this.drawAxis(ticks);
    if (this.strip) this.drawStrip();
    if (this.over) this.drawOverview();
    this.drawn = drawn;
    this.drawMs = performance.now() - began;
    if (this.opts.onDraw) this.opts.onDraw(this);
  }
  bandX(k, x) {  // a band's pixel extent (x: this.x or this.ox), at least 2 px, kept near the canvas
    const [ua, ub] = this.fu[k], lo = -10, hi = this.W + 10;
    const a = Math.min(Math.max(x.call(this, ua), lo), hi);
    if (FAULTS[k].r === null) return [a, hi];  // never stopped: on past the end
    return [a, Math.min(Math.max(x.call(this, ub), a + 2, lo), hi)];
  }
  drawBands(ctx, H) {
    let n = 0;
    for (let k = 0; k < FAULTS.length; k++) {
      const f = FAULTS[k], [ua, ub] = this.fu[k];
      if (ub < this.u0 || ua > this.u1) continue;
      n++;
      const [a, b] = this.bandX(k, this.x), hot = k === this.hoverFault;
      ctx.fillStyle = rgba(f.color, hot ? 0.2 : 0.1); ctx.fillRect(a, 0, b - a, H);
      ctx.fillStyle = rgba(f.color, hot ? 0.9 : 0.5);
      ctx.fillRect(a, 0, 1.5, H);
      if (f.r !== null) ctx.fillRect(b - 1.5, 0, 1.5, H);
    }
    this.bandsDrawn = n;
  }
  drawStrip() {
    const ctx = this.strip.getContext('2d'), W = this.W, h = FLEVELS * FROW + 4;
    ctx.setTransform(DPR, 0, 0, DPR, 0, 0);
    ctx.fillStyle = 'white'; ctx.fillRect(0, 0, W, h);
    ctx.fillStyle = '#e5e7eb'; ctx.fillRect(0, h - 1, W, 1);
    ctx.font = '11px system-ui, "DejaVu Sans", sans-serif'; ctx.textBaseline = 'middle';
    ctx.fillStyle = '#6b7280'; ctx.fillText('faults', 8, h / 2);
    ctx.save();
    ctx.beginPath(); ctx.rect(GUTTER, 0, W - GUTTER, h); ctx.clip();
    ctx.font = '600 11px system-ui, "DejaVu Sans", sans-serif';
    const edge = new Array(FLEVELS).fill(W);  // where the next band of each row begins
    for (let k = FAULTS.length - 1; k >= 0; k--) {  // from the right: a label stops at the next band
      const f = FAULTS[k], [ua, ub] = this.fu[k], [a, b] = this.bandX(k, this.x);
      const limit = edge[f.lv];
      edge[f.lv] = a;
      if (ub < this.u0 || ua > this.u1) continue;
      const y = 2 + f.lv * FROW, hot = k === this.hoverFault;
      ctx.fillStyle = rgba(f.color, hot ? 0.34 : 0.2); ctx.fillRect(a, y, b - a, FROW - 2);
      ctx.fillStyle = f.color; ctx.fillRect(a, y, 2, FROW - 2);
      const x = Math.max(a, GUTTER) + 5, room = limit - x - 4;
      let text = f.label;
      if (room < 14) continue;
      if (ctx.measureText(text).width > room) {
        let lo = 0, hi = text.length;
        while (lo < hi) {
          const m = (lo + hi + 1) >> 1;
          if (ctx.measureText(text.slice(0, m) + '…').width <= room) lo = m; else hi = m - 1;
        }
        text = text.slice(0, lo) + '…';
      }
      ctx.fillStyle = f.ink; ctx.fillText(text, x, y + (FROW - 2) / 2 + 0.5);
    }
    ctx.restore();
  }
  faultAt(mx, x, level) {  // the narrowest band under mx (in the label strip: in that row), or -1
    let best = -1, width = Infinity;
    for (let k = 0; k < FAULTS.length; k++) {
      if (level !== undefined && FAULTS[k].lv !== level) continue;
      const [a, b] = this.bandX(k, x);
      if (mx >= Math.max(a, GUTTER) - 3 && mx <= b + 3 && b - a < width) { best = k; width = b - a; }
    }
    return best;
  }
  hoverBand(k, e) {
    if (k !== this.hoverFault) { this.hoverFault = k; this.request(); }
    if (k >= 0) { faultInfo(FAULTS[k], tip); placeTip(e); } else tip.hidden = true;
  }
  showFault(k) {
    const [a, b] = this.fu[k], w = Math.max(b - a, (this.uMax - this.uMin) / 40);
    this.u0 = a - w * 0.2; this.u1 = a + w * 1.2; this.clampWindow();
    this.hoverFault = k; this.draw();
  }
  bar(ctx, it, y, h, charW) {
    const o = it.op, role = it.stuck ? 'stuck' : it.lin >= 0 ? 'lin' : 'other';
    const [fill, stroke, ink] = C[role];
    let x0 = this.x(it.uc), x1 = this.x(it.ur);
    if (x1 - x0 < 2) { x1 = x0 + 2; }
    const cx0 = Math.max(x0, GUTTER - 4), cx1 = Math.min(x1, this.W + 4);
    ctx.fillStyle = fill;
    ctx.fillRect(cx0, y, cx1 - cx0, h);
    if (o.r === null) {  // unknown outcome: hatched, dashed, fading toward the end
      ctx.fillStyle = hatch(ctx, stroke);
      ctx.fillRect(cx0, y, cx1 - cx0, h);
      ctx.setLineDash([4, 3]);
    }
    ctx.strokeStyle = stroke; ctx.lineWidth = it.stuck ? 2.2 : 1.2;
    if (it === this.hover || it === this.selected) { ctx.strokeStyle = '#111827'; ctx.lineWidth = 2.4; }
    ctx.strokeRect(cx0 + 0.5, y + 0.5, cx1 - cx0 - 1, h - 1);
    ctx.setLineDash([]);
    const room = cx1 - cx0 - 8;
    if (it.stuck) {
      this.later.push(() => this.stuckLabel(ctx, it, cx0, cx1, y, h, charW));  // on top of its neighbours
    } else if (room > 3 * charW) {
      let text = o.d + (it.stuck ? '   ✗ expected ' + it.stuck.expected : '');
      const fit = Math.floor(room / charW);
      if (text.length > fit) text = text.slice(0, Math.max(1, fit - 1)) + '…';
      ctx.fillStyle = ink;
      ctx.font = (it.stuck ? '700 ' : '') + '11.5px system-ui, "DejaVu Sans", sans-serif';
      ctx.fillText(text, cx0 + 4, y + h / 2 + 0.5);
    }
  }
  stuckLabel(ctx, it, x0, x1, y, h, charW) {
    // The op a person came for: its label may run past the bar rather than be cut.
    const text = it.op.d + '   ✗ expected ' + it.stuck.expected;
    ctx.font = '700 11.5px system-ui, "DejaVu Sans", sans-serif';
    const need = ctx.measureText(text).width + 10;
    if (need > x1 - x0) {  // one box for bar and label, so the label reads as part of the op
      x0 = Math.max(GUTTER, Math.min(x0, this.W - 4 - need));  // at the right edge it grows leftwards
      x1 = Math.max(x1, Math.min(x0 + need, this.W - 4));
      ctx.fillStyle = C.stuck[0]; ctx.strokeStyle = C.stuck[1]; ctx.lineWidth = 2.2;
      ctx.fillRect(x0, y, x1 - x0, h);
      ctx.strokeRect(x0 + 0.5, y + 0.5, x1 - x0 - 1, h - 1);
    }
    const w = x1 - x0;
    let shown = text;
    const fit = Math.floor((w - 8) / charW);
    if (ctx.measureText(text).width > w - 8 && shown.length > fit) {
      shown = shown.slice(0, Math.max(1, fit - 1)) + '…';
    }
    ctx.fillStyle = C.stuck[2];
    ctx.fillText(shown, x0 + 4, y + h / 2 + 0.5);
  }
  drawLin(ctx, top) {
    const order = this.view.order;
    if (!order.length) return;
    let lo = 0, hi = order.length;  // points increase along the order: bisect to the window
    while (lo < hi) { const m = (lo + hi) >> 1; if (order[m].up < this.u0) lo = m + 1; else hi = m; }
    let end = lo;
    while (end < order.length && order[end].up <= this.u1) end++;
    const a = Math.max(0, lo - 1), b = Math.min(order.length, end + 1);
    const labels = end - lo < (this.W - GUTTER) / 16;
    const yOf = (it) => this.rowOf[it.lane] * this.row - top + this.row - 10;  // under the bar's text
    ctx.strokeStyle = 'rgba(37, 99, 235, 0.45)'; ctx.lineWidth = 1.5;
    ctx.beginPath();
    let started = false;
    const lines = end - lo < (this.W - GUTTER) / 6;  // lines only where an eye can follow them
    for (let k = a; k < b && lines; k++) {
      const it = order[k];
      if (this.rowOf[it.lane] < 0) continue;  // a lane hidden as idle
      if (!started) ctx.moveTo(this.x(it.up), yOf(it)); else ctx.lineTo(this.x(it.up), yOf(it));
      started = true;
    }
    ctx.stroke();
    ctx.font = '600 10px system-ui, "DejaVu Sans", sans-serif'; ctx.textAlign = 'center';
    for (let k = lo; k < end; k++) {
      const it = order[k], x = this.x(it.up), y = yOf(it);
      if (this.rowOf[it.lane] < 0) continue;
      if (!labels) {
        ctx.fillStyle = C.point; ctx.beginPath(); ctx.arc(x, y, 2.5, 0, 7); ctx.fill();
        continue;
      }
      const text = String(k + 1), w = Math.max(13, ctx.measureText(text).width + 7);
      ctx.fillStyle = 'white'; pill(ctx, x - w / 2 - 1, y - 7.5, w + 2, 15);
      ctx.fillStyle = C.point; pill(ctx, x - w / 2, y - 6.5, w, 13);
      ctx.fillStyle = 'white'; ctx.fillText(text, x, y + 0.5);
    }
    ctx.textAlign = 'left';
  }
  drawFrontier(ctx, H) {
    const order = this.view.order;
    const u = order.length ? order[order.length - 1].up : this.uMin;
    const x = this.x(u) + (order.length ? 9 : 0);
    if (x < GUTTER || x > this.W) return;
    ctx.strokeStyle = C.stuck[1]; ctx.lineWidth = 1.5; ctx.setLineDash([5, 4]);
    ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, H); ctx.stroke(); ctx.setLineDash([]);
  }
  ticks() {
    const span = this.u1 - this.u0, n = Math.max(2, (this.W - GUTTER) / 120);
    if (this.mode === 'real') {
      const step = niceStep(span / n), out = [];
      const far = Math.max(Math.abs(this.u0), Math.abs(this.u1));
      for (let t = Math.ceil(this.u0 / step) * step; t <= this.u1; t += step) {
        out.push([t, fmtTick(t, step, far)]);
      }
      return out;
    }
    const step = Math.max(1, niceStep(span / n)), out = [];
    for (let u = Math.ceil(this.u0 / step) * step; u <= this.u1; u += step) {
      const t = this.scale.t(u);
      out.push([u, fmtTime(t)]);
    }
    return out;
  }
  drawAxis(ticks) {
    const ctx = this.axis.getContext('2d'), W = this.W;
    ctx.setTransform(DPR, 0, 0, DPR, 0, 0);
    ctx.fillStyle = '#f9fafb'; ctx.fillRect(0, 0, W, AXIS);
    ctx.fillStyle = '#e5e7eb'; ctx.fillRect(0, AXIS - 1, W, 1);
    ctx.font = '11px system-ui, "DejaVu Sans", sans-serif'; ctx.textBaseline = 'middle';
    ctx.fillStyle = '#6b7280';
    ctx.fillText(this.mode === 'real' ? 'time' : 'events', 8, AXIS / 2);
    for (const [u, label] of ticks) {
      const x = this.x(u);
      if (x < GUTTER || x > W - 20) continue;
      ctx.fillStyle = '#9ca3af'; ctx.fillRect(Math.round(x), AXIS - 6, 1, 5);
      ctx.fillStyle = '#374151'; ctx.textAlign = 'center'; ctx.fillText(label, x, AXIS / 2 - 1);
    }
    ctx.textAlign = 'left';
  }
  ox(u) { return GUTTER + (u - this.uMin) / (this.uMax - this.uMin) * (this.W - GUTTER - RIGHT); }
  drawOverview() {
    const ctx = this.over.getContext('2d'), W = this.W, v = this.view;
    ctx.setTransform(DPR, 0, 0, DPR, 0, 0);
    ctx.fillStyle = '#f9fafb'; ctx.fillRect(0, 0, W, OVERVIEW);
    for (let k = 0; k < this.fu.length; k++) {
      const f = FAULTS[k], [a, b] = this.bandX(k, this.ox);
      ctx.fillStyle = rgba(f.color, k === this.hoverFault ? 0.3 : 0.16); ctx.fillRect(a, 0, b - a, OVERVIEW);
      ctx.fillStyle = rgba(f.color, 0.85); ctx.fillRect(a, 0, b - a, 3);
    }
    if (!this.hist || this.histKey !== this.mode + W) {  // ops per pixel column, kept until resize
      const cols = new Float32Array(W);
      for (const it of v.items) { const x = Math.floor(this.ox(it.uc)); if (x >= 0 && x < W) cols[x]++; }
      this.hist = cols; this.histKey = this.mode + W;
    }
    const max = Math.max(1, ...this.hist);
    ctx.fillStyle = '#93c5fd';
    for (let x = 0; x < W; x++) {
      if (!this.hist[x]) continue;
      const h = 4 + (OVERVIEW - 10) * this.hist[x] / max;
      ctx.fillRect(x, OVERVIEW - h, 1, h);
    }
    ctx.fillStyle = C.stuck[1];
    for (const s of v.stuck) {
      const it = v.byId.get(s.op);
      if (it) ctx.fillRect(Math.round(this.ox(it.uc)) - 1, 0, 3, OVERVIEW);
    }
    const a = this.ox(this.u0), b = this.ox(this.u1);
    ctx.fillStyle = 'rgba(17, 24, 39, 0.08)';
    ctx.fillRect(GUTTER, 0, Math.max(0, a - GUTTER), OVERVIEW);
    ctx.fillRect(b, 0, Math.max(0, W - b), OVERVIEW);
    ctx.strokeStyle = '#1f2937'; ctx.lineWidth = 1.5;
    ctx.strokeRect(a, 1, Math.max(3, b - a), OVERVIEW - 2);
    ctx.font = '11px system-ui, "DejaVu Sans", sans-serif'; ctx.fillStyle = '#6b7280';
    ctx.textBaseline = 'middle'; ctx.fillText('overview', 8, OVERVIEW / 2);
  }
  clampWindow() {
    const full = this.uMax - this.uMin, minSpan = this.mode === 'real' ? full / 1e5 : 2;
    let span = Math.min(Math.max(this.u1 - this.u0, minSpan), full * 1.2);
    let u0 = Math.min(Math.max(this.u0, this.uMin - full * 0.1), this.uMax + full * 0.1 - span);
    this.u0 = u0; this.u1 = u0 + span;
  }
  zoom(factor, at) {
    const u = at === undefined ? (this.u0 + this.u1) / 2 : at;
    this.u0 = u - (u - this.u0) * factor; this.u1 = u + (this.u1 - u) * factor;
    this.clampWindow(); this.request();
  }
  itemAt(mx, my) {
    const r = Math.floor((my + this.scroller.scrollTop) / this.row);
    const inRow = (my + this.scroller.scrollTop) - r * this.row;
    if (mx < GUTTER || r < 0 || r >= this.rows.length) return null;
    if (inRow < 3 || inRow > this.row - 3) return null;
    const lane = this.rows[r];
    const u = this.uAt(mx), slack = (this.u1 - this.u0) / (this.W - GUTTER) * 2;
    const list = this.view.byLane[lane];
    let found = null;
    for (const it of list) {
      if (it.uc > u + slack) break;
      if (u <= it.ur + slack) found = it;
    }
    return found;
  }
  focus(id) {
    const it = this.view.byId.get(id);
    if (!it) return false;
    const span = Math.max(this.u1 - this.u0, 0);
    const w = Math.min(span, Math.max((it.ur - it.uc) * 6, this.mode === 'real' ? 1 : 12));
    const mid = (it.uc + Math.min(it.ur, it.uc + w)) / 2;
    this.u0 = mid - w / 2; this.u1 = mid + w / 2; this.clampWindow();
    this.scrollToLane(it.lane);
    this.selected = it; this.draw();
    return true;
  }
  toFailure() {
    const v = this.view;
    if (!v.failed) return;
    const its = v.stuck.map((s) => v.byId.get(s.op)).filter(Boolean);
    const tail = v.order.slice(-4);
    if (!its.length) return;
    let a = Math.min(...its.map((i) => i.uc), ...tail.map((i) => i.uc));
    let b = Math.max(...its.map((i) => (i.op.r === null ? i.uc + 2 : i.ur)), ...tail.map((i) => i.up));
    const pad = Math.max((b - a) * 0.25, this.mode === 'real' ? 1 : 2);
    if (this.mode === 'rank' && b - a + 2 * pad < 30) { const mid = (a + b) / 2; a = mid - 15; b = mid + 15; }
    this.u0 = a - pad; this.u1 = b + pad; this.clampWindow();
    this.scrollToLane(Math.min(...its.map((i) => i.lane)));
    this.draw();
  }
  bind() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener('mousedown', (e) => {
      drag = { x: e.clientX, u0: this.u0, u1: this.u1, moved: false };
      c.classList.add('dragging');
    });
    window.addEventListener('mousemove', (e) => {
      if (drag) {
        const dx = e.clientX - drag.x;
        if (Math.abs(dx) > 3) drag.moved = true;
        const du = dx / (this.W - GUTTER - RIGHT) * (drag.u1 - drag.u0);
        this.u0 = drag.u0 - du; this.u1 = drag.u1 - du; this.clampWindow(); this.request();
        tip.hidden = true;
        return;
      }
      if (e.target !== c) return;
      const r = c.getBoundingClientRect();
      const it = this.itemAt(e.clientX - r.left, e.clientY - r.top);
      if (it !== this.hover) { this.hover = it; this.request(); }
      if (it) {
        if (this.hoverFault >= 0) { this.hoverFault = -1; this.request(); }
        opInfo(it, this.view, tip); placeTip(e);
      } else if (this.faulty) this.hoverBand(this.faultAt(e.clientX - r.left, this.x), e);
      else tip.hidden = true;
    });
    window.addEventListener('mouseup', (e) => {
      if (!drag) return;
      const clicked = !drag.moved && e.target === c;
      drag = null; c.classList.remove('dragging');
      if (clicked) {
        const r = c.getBoundingClientRect();
        this.selected = this.itemAt(e.clientX - r.left, e.clientY - r.top);
        if (this.opts.onSelect) this.opts.onSelect(this.selected, this.view);
        const k = this.selected || !this.faulty ? -1 : this.faultAt(e.clientX - r.left, this.x);
        if (k >= 0 && this.opts.onFault) this.opts.onFault(FAULTS[k]);
        this.request();
      }
    });
    c.addEventListener('mouseleave', () => {
      tip.hidden = true;
      if (this.hover || this.hoverFault >= 0) { this.hover = null; this.hoverFault = -1; this.request(); }
    });
    if (this.strip) {
      const s = this.strip, level = (e) => Math.floor((e.clientY - s.getBoundingClientRect().top - 2) / FROW);
      const at = (e) => this.faultAt(e.clientX - s.getBoundingClientRect().left, this.x, level(e));
      s.addEventListener('mousemove', (e) => this.hoverBand(at(e), e));
      s.addEventListener('mouseleave', () => this.hoverBand(-1));
      s.addEventListener('click', (e) => {
        const k = at(e);
        if (k >= 0 && this.opts.onFault) this.opts.onFault(FAULTS[k]);
      });
    }
    c.addEventListener('wheel', (e) => {
      const r = c.getBoundingClientRect();
      if (e.ctrlKey || e.metaKey || e.altKey) {
        e.preventDefault(); this.zoom(Math.exp(e.deltaY * 0.002), this.uAt(e.clientX - r.left));
      } else if (Math.abs(e.deltaX) > Math.abs(e.deltaY) || e.shiftKey) {
        e.preventDefault();
        const d = (e.shiftKey ? e.deltaY : e.deltaX) / (this.W - GUTTER) * (this.u1 - this.u0);
        this.u0 += d; this.u1 += d; this.clampWindow(); this.request();
      }
    }, { passive: false });
    c.addEventListener('dblclick', (e) => {
      const r = c.getBoundingClientRect();
      this.zoom(e.shiftKey ? 2 : 0.5, this.uAt(e.clientX - r.left));
    });
    c.addEventListener('keydown', (e) => {
      const span = this.u1 - this.u0;
      const keys = {
        ArrowLeft: () => { this.u0 -= span / 5; this.u1 -= span / 5; this.clampWindow(); this.request(); },
        ArrowRight: () => { this.u0 += span / 5; this.u1 += span / 5; this.clampWindow(); this.request(); },
        '+': () => this.zoom(0.6), '=': () => this.zoom(0.6), '-': () => this.zoom(1 / 0.6),
        '0': () => this.fit(), f: () => this.toFailure(),
      };
      if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
    });
    this.scroller.addEventListener('scroll', () => this.request());
  }
  bindOverview() {
    const o = this.over;
    let drag = null;
    const uOf = (e) => {
      const x = e.clientX - o.getBoundingClientRect().left;
      return this.uMin + (x - GUTTER) / (this.W - GUTTER - RIGHT) * (this.uMax - this.uMin);
    };
    o.addEventListener('mousedown', (e) => {
      const u = uOf(e), span = this.u1 - this.u0, edge = (this.uMax - this.uMin) / (this.W - GUTTER) * 5;
      if (Math.abs(u - this.u0) < edge) drag = { kind: 'left' };
      else if (Math.abs(u - this.u1) < edge) drag = { kind: 'right' };
      else {
        if (u < this.u0 || u > this.u1) {
          this.u0 = u - span / 2; this.u1 = u + span / 2; this.clampWindow();
        }
        drag = { kind: 'move', at: u, u0: this.u0 };
      }
      this.request();
      e.preventDefault();
    });
    window.addEventListener('mousemove', (e) => {
      if (!drag) {
        const x = e.clientX - o.getBoundingClientRect().left;
        if (e.target === o && this.faulty) this.hoverBand(this.faultAt(x, this.ox), e);
        return;
      }
      tip.hidden = true;
      const u = uOf(e);
      if (drag.kind === 'left') this.u0 = Math.min(u, this.u1 - 1e-9);
      else if (drag.kind === 'right') this.u1 = Math.max(u, this.u0 + 1e-9);
      else { const span = this.u1 - this.u0; this.u0 = drag.u0 + u - drag.at; this.u1 = this.u0 + span; }
      this.clampWindow(); this.request();
    });
    window.addEventListener('mouseup', () => { drag = null; });
    o.addEventListener('mouseleave', () => { if (this.faulty) this.hoverBand(-1); });
  }
}

function pill(ctx, x, y, w, h) {
  ctx.beginPath();
  if (ctx.roundRect) ctx.roundRect(x, y, w, h, h / 2); else ctx.rect(x, y, w, h);
  ctx.fill();
}

const patterns = new Map();
function hatch(ctx, color) {
  if (patterns.has(color)) return patterns.get(color);
  const p = document.createElement('canvas');
  p.width = p.height = 8;
  const g = p.getContext('2d');
  g.strokeStyle = color; g.globalAlpha = 0.45; g.lineWidth = 1.5;
  g.beginPath();
  g.moveTo(0, 8); g.lineTo(8, 0); g.moveTo(-2, 2); g.lineTo(2, -2); g.moveTo(6, 10); g.lineTo(10, 6);
  g.stroke();
  const pat = ctx.createPattern(p, 'repeat');
  patterns.set(color, pat);
  return pat;
}

function summarize(node, t) {
  const v = t.view;
  const unknown = v.items.filter((it) => it.op.r === null).length;
  const attrs = {
    partition: v.index === undefined ? '' : v.index, ops: v.items.length, bars: v.items.length,
    drawn: t.drawn, lanes: v.lanes.length, rows: t.rows.length, stuck: v.stuckCount,
    linearized: v.order.length, unknown, mode: t.mode, ms: t.drawMs.toFixed(1),
  };
  if (!t.opts.compact) { attrs.faults = D.faults.length; attrs.faultBands = t.bandsDrawn; }
  for (const [k, val] of Object.entries(attrs)) node.dataset[k] = String(val);
  return attrs;
}

// -- wiring -------------------------------------------------------------------------------
const defaultMode = D.timed ? 'real' : 'rank';
const minimalHost = document.getElementById('minimal-timeline');
let mini = null;
if (minimalHost && D.failure && D.failure.minimal) {
  const f = D.failure;
  const summary = minimalHost.parentNode.insertBefore(el('div', 'summary'), minimalHost.nextSibling);
  summary.id = 'minimal-summary';
  mini = new Timeline(minimalHost, { compact: true, mode: 'rank', onDraw: (t) => {
    const a = summarize(summary, t);
    summary.textContent = plural(a.ops, 'operation') + ' on ' + plural(a.lanes, 'process', 'processes') +
      ', in event order: ' + a.linearized + ' linearized, ' + a.stuck + ' stuck. Hover for details.';
  } });
  mini.setView(buildView(f.minimal, f.minimal_longest, f.minimal_states, f.minimal_stuck,
    { failed: true, endState: f.minimal_state }));
  mini.draw();
}

const select = document.getElementById('partition');
const summary = document.getElementById('view-summary');
const details = document.getElementById('details');
const main = new Timeline(document.getElementById('main-timeline'), {
  compact: false, mode: defaultMode,
  onDraw: (t) => {
    const a = summarize(summary, t), lo = t.scale.t(t.u0), hi = t.scale.t(t.u1);
    summary.textContent = 'partition #' + a.partition + ': ' + a.ops + ' operations on ' + a.lanes +
      ' processes · ' + a.linearized + (t.view.failed ? ' in the longest linearizable prefix · ' :
      ' linearized · ') + a.stuck + ' stuck · ' + a.unknown + ' unknown outcome · showing ' +
      fmtTime(Math.max(lo, 0)) + ' – ' + fmtTime(hi) + ' (' + a.drawn + ' drawn)' + (!D.faults.length ? '' :
      ' · ' + plural(D.faults.length, 'fault interval') + (FAULTS.length ? ', ' + a.faultBands + ' in view' :
      ' (not drawn: no timestamps)'));
  },
  onSelect: (it, view) => {
    if (it) { opInfo(it, view, details); details.classList.add('on'); }
  },
  onFault: (f) => { faultInfo(f, details); details.classList.add('on'); },
});
const STATUS = { failed: '✗ NOT linearizable', unchecked: '? not checked', linearizable: '✓ linearizable' };
const order = D.partitions.map((p) => p.i);
const rankOf = { failed: 0, unchecked: 1, linearizable: 2 };
order.sort((a, b) => rankOf[D.partitions[a].status] - rankOf[D.partitions[b].status] || a - b);
for (const i of order) {
  const p = D.partitions[i];
  const status = STATUS[p.status];
  select.appendChild(new Option('#' + i + (p.label ? ' (' + p.label + ')' : '') + ' · ' + p.ops.length +
    ' ops · ' + status, String(i)));
}
const toFailure = document.getElementById('to-failure');
const activeOnly = document.getElementById('active-only');
activeOnly.addEventListener('change', () => { main.activeOnly = activeOnly.checked; main.draw(); });
function choose(i) {
  select.value = String(i);
  main.setView(partView(i));
  toFailure.disabled = !main.view.failed;
  details.classList.remove('on'); details.textContent = 'Click an operation to keep its details here.';
  activeOnly.checked = main.activeOnly;
  if (main.view.failed && main.view.items.length > 40) main.toFailure(); else main.start();
}
select.addEventListener('change', () => choose(Number(select.value)));
document.getElementById('fit').addEventListener('click', () => main.fit());
document.getElementById('zoom-in').addEventListener('click', () => main.zoom(0.6));
document.getElementById('zoom-out').addEventListener('click', () => main.zoom(1 / 0.6));
toFailure.addEventListener('click', () => main.toFailure());
document.getElementById('show-lin').addEventListener('change', (e) => {
  main.showLin = e.target.checked; if (mini) mini.showLin = e.target.checked;
  main.draw(); if (mini) mini.draw();
});
for (const r of document.querySelectorAll('input[name=mode]')) {
  r.checked = r.value === defaultMode;
  if (!D.timed && r.value === 'real') {
    r.disabled = true; r.parentNode.title = 'this history has no timestamps: only the order of events';
  }
  r.addEventListener('change', () => { if (r.checked) { main.setMode(r.value, false); main.draw(); } });
}
if (order.length) choose(order[0]);
// Clicking an op named in the static text shows it in the main timeline.
for (const node of document.querySelectorAll('[data-op]')) {
  node.addEventListener('click', () => {
    const id = Number(node.dataset.op);
    if (D.failure && main.view.index !== D.failure.partition) choose(D.failure.partition);
    if (main.focus(id)) {
      opInfo(main.selected, main.view, details); details.classList.add('on');
      document.getElementById('history').scrollIntoView({ behavior: 'smooth' });
    }
  });
}
// A row of the faults table shows its band in the main timeline.
for (const node of document.querySelectorAll('tr[data-fault]')) {
  if (!FAULTS.length) break;
  node.addEventListener('click', () => {
    const k = Number(node.dataset.fault);
    main.showFault(k);
    faultInfo(FAULTS[k], details); details.classList.add('on');
    document.getElementById('history').scrollIntoView({ behavior: 'smooth' });
  });
}
let resizeTimer = 0;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    for (const t of [main, mini]) if (t) { t.layout(); t.hist = null; t.draw(); }
  }, 100);
});
document.body.dataset.rendered = 'yes';
})();
"""
