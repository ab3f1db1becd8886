"""How long a run's reports take on big histories: statistics, plots and the timeline page.

Generates a linearizable chat history (``histories.synth``) and times
``harness.stats.compute`` and ``harness.plots.write_plots`` on all of it, and the timeline
(``checker.html``: check, then write the page) on a slice; with headless Chromium
installed it also opens the page and prints the time the page's script reports for
drawing its first window. Targets, printed next to each figure (a loaded machine moves
them, so nothing is asserted): statistics of 200,000 records under 2 s, their plots under
6 s, a 12,000-op timeline drawn in under 1 s.

    python -m bench.records [--ops 100000] [--timeline-ops 12000]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from checker import check
from checker.html import write_html
from checker.models import get_model
from harness import plots, stats
from histories.synth import generate

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chat_history(n_ops: int) -> list[Any]:
    """A linearizable chat history from the project's generator: a group per 1,000 operations,
    five clients per group, 1% of operations timed out."""
    groups = max(1, n_ops // 1000)
    return generate("chat", clients=5 * groups, ops=n_ops, keys=groups, info_rate=0.01, seed=1)


def timed(what: str, target: float | None, run: Any) -> Any:
    began = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - began
    goal = f"  (target < {target:g} s: {'ok' if elapsed < target else 'OVER'})" if target else ""
    print(f"{what:<44} {elapsed:7.2f} s{goal}", flush=True)
    return result


def drawn_ms(page: Path) -> str:
    """The page's own measure of drawing its first window, from a headless Chromium."""
    if CHROMIUM is None:
        return "skipped: headless Chromium is not installed"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1400,900"]
        dom = subprocess.run(
            [CHROMIUM, *flags, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout
    found = re.search(r'id="view-summary"[^>]*data-ms="([0-9.]+)"', dom) or re.search(
        r'data-ms="([0-9.]+)"[^>]*id="view-summary"', dom
    )
    return f"{float(found.group(1)):.0f} ms (target < 1000 ms)" if found else "the page reported no time"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=100_000, help="operations for statistics and plots")
    parser.add_argument("--timeline-ops", type=int, default=12_000, help="operations on the timeline page")
    args = parser.parse_args()
    ops = timed(f"generate {args.ops:,} ops", None, lambda: chat_history(args.ops))
    print(f"{len(ops):,} records")
    timed("statistics (harness.stats.compute)", 2.0, lambda: stats.compute(ops))
    with tempfile.TemporaryDirectory(prefix="records-bench-") as work:
        out = Path(work)
        timed("latency and throughput plots", 6.0, lambda: plots.write_plots(out, ops))
        part = chat_history(args.timeline_ops)
        model = get_model("chat")
        result = timed(f"check {args.timeline_ops:,} ops for the timeline", None, lambda: check(part, model))
        page = out / "timeline.html"
        timed("write the timeline page", None, lambda: write_html(page, result, model, title="bench"))
        print(f"{'page size':<44} {page.stat().st_size / 1e6:7.2f} MB")
        print(f"{'first window drawn in the browser':<44} {drawn_ms(page)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
