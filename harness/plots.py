"""A run's pictures: latency of every operation, throughput per second and the nodes (availability
of the workers bound to each, applied index, memory), with faults shaded.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global backend
switch), so plotting works on CI machines and from threads. Big histories are thinned to a fixed
number of points (and the plot says so) so a 200k-op run still plots in a few seconds.

A fault band is named by its shape (``partition (halves)``), and the run's last phases, when the
runner gives them (``phases``: seconds since the start of the test), are labelled: the recovery
after healing, when load stops and throughput dips, and the final reads, whose burst of reads is
the spike at the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from harness.stats import NS_PER_MS, NS_PER_S, OUTCOMES, Call, Interval, calls, nemesis_intervals
from harness.store import LATENCY_PNG, NODES_PNG, THROUGHPUT_PNG
from histories.format import Op
from nemesis import faults

MAX_POINTS = 20_000  # latency points drawn; beyond this the scatter is sampled
FEW_POINTS = 2_000  # up to this many, points are drawn nearly opaque
MIN_LATENCY_MS = 1e-3  # a log axis cannot show 0
MAX_FAULT_LABELS = 24  # more spans than this get a legend entry but no text each
SIZE, DPI = (12, 5.5), 110
OUTCOME_STYLE = {  # marker, alpha, size: failures stand out against the mass of oks
    "ok": ("o", 0.35, 9),
    "fail": ("x", 0.9, 22),
    "info": ("^", 0.8, 18),
}
OUTCOME_COLOURS = {"ok": "#2e9e4f", "fail": "#d1495b", "info": "#edae49"}
FAULT_COLOURS = ("#7b8cde", "#e07a5f", "#81b29a", "#c77dff", "#f2cc8f", "#3d405b", "#ff8fab", "#4cc9f0")
# (phase, the key in ``phases`` where it starts, where it ends, colour): see harness.runner
PHASES = (
    ("recovery", "load_end", "final_reads", "#9ca3af"),
    ("final reads", "final_reads", "end", "#64748b"),
)


def write_plots(
    run_dir: Path,
    ops: list[Op],
    phases: dict[str, float] | None = None,
    samples: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
) -> list[Path]:
    """Write ``latency.png``, ``throughput.png`` and (with the node monitor's ``samples``)
    ``nodes.png`` into ``run_dir``; returns their paths.

    ``phases``: when the load ended, the final reads began and the run ended (``load_end``,
    ``final_reads``, ``end``, seconds since the start of the test), as the runner records them.
    ``events``: what the node checks found.
    """
    run_dir = Path(run_dir)
    client, _ = calls(ops)
    intervals = nemesis_intervals(ops)
    end_s = max((op.time for op in ops), default=0) / NS_PER_S
    name = f"{run_dir.parent.name} {run_dir.name}".strip()
    latency = run_dir / LATENCY_PNG
    throughput = run_dir / THROUGHPUT_PNG
    _save(_latency_figure(client, intervals, end_s, name, phases), latency)
    _save(_throughput_figure(client, intervals, end_s, name, phases), throughput)
    written = [latency, throughput]
    if samples:
        marks = [
            Interval(e["fault"], int(e["start"] * NS_PER_S), int(e["stop"] * NS_PER_S), e.get("value"))
            for e in events or []
        ]
        nodes = run_dir / NODES_PNG
        _save(_nodes_figure(client, samples, intervals + marks, end_s, name), nodes)
        written.append(nodes)
    return written


def _nodes_figure(
    client: list[Call], samples: list[dict[str, Any]], intervals: list[Interval], end_s: float, name: str
) -> Figure:
    """Three panels over time: availability per node (its workers' ok share per second),
    each node's applied index, and the memory of every node and of the harness."""
    figure = Figure(figsize=(SIZE[0], SIZE[1] * 1.8), layout="constrained")
    top, middle, bottom = figure.subplots(3, 1, sharex=True)
    top.set_title(f"Nodes — {name}" if name else "Nodes", loc="left", fontsize=11)
    ids = sorted({s["node"] for s in samples if s.get("node") not in (None, "harness")})
    colours = {node: _cycle_colour(i) for i, node in enumerate([*ids, "harness"])}
    seconds = int(end_s) + 1
    ok: dict[str, list[int]] = {}
    done: dict[str, list[int]] = {}
    for call in client:
        if call.node and call.end is not None and call.end // NS_PER_S < seconds:
            second = call.end // NS_PER_S
            done.setdefault(call.node, [0] * seconds)[second] += 1
            ok.setdefault(call.node, [0] * seconds)[second] += call.outcome == "ok"
    for node in sorted(done):
        xs = [s for s in range(seconds) if done[node][s]]
        ys = [ok[node][s] / done[node][s] for s in xs]
        top.plot(xs, ys, color=colours.get(node, "#333333"), linewidth=1, label=node)
    top.set_ylabel("availability (ok share)")
    top.set_ylim(-0.05, 1.05)
    for node in ids:
        xs, ys = _series(samples, node, "applied")
        middle.plot(xs, ys, color=colours[node], linewidth=1, label=node)
    middle.set_ylabel("applied index")
    for node in [*ids, "harness"]:
        xs, ys = _series(samples, node, "rss", scale=1 / (1 << 20))
        style = "--" if node == "harness" else "-"
        bottom.plot(xs, ys, style, color=colours[node], linewidth=1, label=node)
    bottom.set_ylabel("resident memory (MiB)")
    bottom.set_xlabel("time since the start of the test (s)")
    for axes in (top, middle, bottom):
        axes.grid(True, which="major", alpha=0.25)
        handles = list(axes.get_legend_handles_labels()[0])
        handles += _shade_faults(axes, intervals, end_s, labels=axes is top)
        _finish(axes, handles, end_s, empty=False)
    return figure


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI)


def _new_axes(title: str, ylabel: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=SIZE, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, loc="left", fontsize=11)
    axes.set_xlabel("time since the start of the test (s)")
    axes.set_ylabel(ylabel)
    axes.grid(True, which="major", alpha=0.25)
    return figure, axes


def _latency_figure(
    client: list[Call],
    intervals: list[Interval],
    end_s: float,
    name: str,
    phases: dict[str, float] | None = None,
) -> Figure:
    done = [c for c in client if c.end is not None]
    shown = _sample(done, MAX_POINTS)
    title = f"Latency — {name}" if name else "Latency"
    if len(shown) < len(done):
        title += f"  (showing {len(shown):,} of {len(done):,} ops, evenly sampled per f and outcome)"
    open_calls = len(client) - len(done)
    if open_calls:
        title += f"  ({open_calls:,} never completed, not shown)"
    figure, axes = _new_axes(title, "latency (ms, log scale)")
    axes.set_yscale("log")
    fs = sorted({c.f for c in done})
    colours = {f: _cycle_colour(i) for i, f in enumerate(fs)}
    groups: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for call in shown:
        xs, ys = groups.setdefault((call.f, call.outcome), ([], []))
        xs.append(call.start / NS_PER_S)
        ys.append(max((call.end - call.start) / NS_PER_MS, MIN_LATENCY_MS))
    for (f, outcome), (xs, ys) in sorted(groups.items()):
        marker, alpha, size = OUTCOME_STYLE.get(outcome, ("o", 0.5, 9))
        if len(shown) <= FEW_POINTS:
            alpha = max(alpha, 0.8)  # faint dots only help where thousands overlap
        axes.scatter(
            xs,
            ys,
            s=size,
            marker=marker,
            alpha=alpha,
            color=colours[f],
            linewidths=1.0 if marker == "x" else 0,
        )
    handles = [Patch(color=colours[f], label=f) for f in fs]
    handles += [
        _outcome_handle(axes, outcome) for outcome in OUTCOMES if any(c.outcome == outcome for c in done)
    ]
    handles += _shade_faults(axes, intervals, end_s)
    handles += _mark_phases(axes, phases or {}, end_s)
    _finish(axes, handles, end_s, empty=not done)
    return figure


def _outcome_handle(axes: Axes, outcome: str) -> Artist:
    marker, alpha, size = OUTCOME_STYLE[outcome]
    return axes.scatter(
        [], [], s=size * 2, marker=marker, color="#555555", alpha=min(1.0, alpha + 0.3), label=outcome
    )


def _throughput_figure(
    client: list[Call],
    intervals: list[Interval],
    end_s: float,
    name: str,
    phases: dict[str, float] | None = None,
) -> Figure:
    figure, axes = _new_axes(
        f"Throughput — {name}" if name else "Throughput", "completions per second (stacked by outcome)"
    )
    done = [c for c in client if c.end is not None]
    seconds = int(max((c.end for c in done), default=0) // NS_PER_S) + 1 if done else 0
    counts = {outcome: [0] * seconds for outcome in OUTCOMES}
    for call in done:
        series = counts.get(call.outcome)
        if series is not None:
            series[call.end // NS_PER_S] += 1
    handles: list[Artist] = []
    if seconds:
        xs = list(range(seconds + 1))
        base = [0] * (seconds + 1)
        for outcome in OUTCOMES:
            series = counts[outcome]
            if not any(series):
                continue
            top = [b + v for b, v in zip(base, [*series, series[-1]], strict=True)]
            axes.fill_between(
                xs, base, top, step="post", color=OUTCOME_COLOURS[outcome], alpha=0.85, linewidth=0
            )
            handles.append(Patch(color=OUTCOME_COLOURS[outcome], label=outcome))
            base = top
        axes.set_ylim(0, max(base) * 1.12 or 1)
    handles += _shade_faults(axes, intervals, end_s)
    handles += _mark_phases(axes, phases or {}, end_s)
    _finish(axes, handles, end_s, empty=not done)
    return figure


def _series(
    samples: list[dict[str, Any]], node: str, key: str, scale: float = 1.0
) -> tuple[list[float], list[float]]:
    """One node's values over time, with a gap (NaN) wherever it did not answer."""
    xs: list[float] = []
    ys: list[float] = []
    for sample in samples:
        if sample.get("node") == node and "t" in sample and "wall_origin" not in sample:
            value = sample.get(key)
            xs.append(sample["t"])
            ys.append(value * scale if isinstance(value, int | float) else math.nan)
    return xs, ys


def _shade_faults(
    axes: Axes, intervals: Sequence[Interval], end_s: float, labels: bool = True
) -> list[Artist]:
    """Shade each fault interval (open ones run to the end) and label it; one legend entry per fault."""
    colours: dict[str, str] = {}
    label_each = labels and len(intervals) <= MAX_FAULT_LABELS
    at_top = blended_transform_factory(axes.transData, axes.transAxes)
    for interval in intervals:
        band = band_name(interval)
        colour = colours.setdefault(band, FAULT_COLOURS[len(colours) % len(FAULT_COLOURS)])
        start = interval.start / NS_PER_S
        stop = end_s if interval.stop is None else interval.stop / NS_PER_S
        if stop <= start:  # an instant event: a line rather than an invisible span
            axes.axvline(start, color=colour, alpha=0.8, linewidth=1.5, zorder=0)
        else:
            axes.axvspan(start, stop, color=colour, alpha=0.18, linewidth=0, zorder=0)
        if label_each:
            axes.text(
                start, 0.985, f" {band}", transform=at_top, va="top", ha="left",
                fontsize=8, color="#333333", clip_on=True,
            )  # fmt: skip
    return [Patch(color=c, alpha=0.35, label=f"fault: {f}") for f, c in colours.items()]


def band_name(interval: Interval) -> str:
    """A fault as a person names it (the fault registry says how): ``partition (halves)`` for a
    partition of a random shape."""
    return faults.band_name(interval.fault, interval.value)


def _mark_phases(axes: Axes, phases: dict[str, float], end_s: float) -> list[Artist]:
    """Hatch and name the recovery and final-read phases at the bottom of the plot."""
    at_bottom = blended_transform_factory(axes.transData, axes.transAxes)
    handles: list[Artist] = []
    for name, begin, finish, colour in PHASES:
        start, stop = phases.get(begin), phases.get(finish, end_s)
        if start is None or stop is None or stop < start:
            continue
        axes.axvspan(start, stop, ymin=0, ymax=0.06, color=colour, alpha=0.5, linewidth=0, zorder=0.5)
        axes.axvline(start, color=colour, linestyle="--", linewidth=1, zorder=0.5)
        near_end = start > 0.85 * max(end_s, 1.0)  # a late, short phase: its name goes to its left
        axes.text(
            start, 0.075, f"{name} " if near_end else f" {name}", transform=at_bottom, va="bottom",
            ha="right" if near_end else "left", fontsize=8.5, color="#1f2937", fontweight="bold",
            clip_on=True,
        )  # fmt: skip
        handles.append(Patch(color=colour, alpha=0.5, label=f"phase: {name}"))
    return handles


def _finish(axes: Axes, handles: list[Artist], end_s: float, empty: bool) -> None:
    if empty:
        axes.text(
            0.5, 0.5, "no completed operations", transform=axes.transAxes,
            ha="center", va="center", fontsize=14, color="#888888",
        )  # fmt: skip
    axes.set_xlim(0, max(end_s, 1.0))
    if handles:
        axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=9, frameon=False)


def _cycle_colour(index: int) -> str:
    palette = ("#1f77b4", "#ff7f0e", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
    return palette[index % len(palette)]


def _sample(done: list[Call], limit: int) -> list[Call]:
    """At most ``limit`` calls: rare groups (failures, say) are kept whole, big ones thinned evenly
    in time, so the picture keeps both its shape and its exceptions."""
    if len(done) <= limit:
        return done
    groups: dict[tuple[str, str], list[Call]] = {}
    for call in done:
        groups.setdefault((call.f, call.outcome), []).append(call)
    budget, remaining = limit, len(groups)
    shown: list[Call] = []
    for members in sorted(groups.values(), key=len):  # water-filling: small groups first
        share = budget // remaining
        remaining -= 1
        if len(members) <= share:
            shown.extend(members)
            budget -= len(members)
            continue
        stride = len(members) / share if share else math.inf
        picked = [members[int(i * stride)] for i in range(share)] if share else []
        shown.extend(picked)
        budget -= len(picked)
    return shown
