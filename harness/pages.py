"""The harness's HTML pages (``harness serve``, the nightly summary): its templates, its one style
sheet (``harness/templates/``) and the formats they share, over the project's page helper
(:class:`checker.page.Pages`). The Python side builds only each page's data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from checker.page import Pages


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m {secs:02d}s"


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ms(value: float) -> str:
    """Three significant digits or so: 0.412, 2.74, 31.6, 1204."""
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def elapsed(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def count(value: int | None) -> str:
    """1,234; a dash for a count nobody took."""
    return "—" if value is None else f"{value:,}"


def size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    scaled = float(n)
    for unit in ("KB", "MB", "GB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GB":
            break
    return f"{scaled:.1f} {unit}"


PAGES = Pages(
    "harness",
    filters={
        "duration": duration,
        "when": when,
        "ms": ms,
        "elapsed": elapsed,
        "percent": percent,
        "count": count,
        "size": size,
    },
)
PAGES.env.globals["style"] = PAGES.asset("harness.css")


def render(template: str, /, **context: Any) -> str:
    """One of the harness's pages (``harness/templates/<template>``)."""
    return PAGES.render(template, **context)
