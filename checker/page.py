"""The one HTML page shell of the project: the timeline, ``harness serve`` and the nightly
summary all build their pages with :func:`page` (template ``static/page.html``), so they differ
only in their style sheet and body. Pages are self-contained: style inline, no fetches."""

from __future__ import annotations

import html
import re
from functools import cache
from importlib.resources import files


def page(title: str, body: str, css: str, head: str = "") -> str:
    """A page: ``title`` is text (escaped here); ``body``, ``css`` and ``head`` (extra
    elements of ``<head>``) are markup the caller built and escaped."""
    parts = {"HEAD": head, "TITLE": html.escape(title), "CSS": css, "BODY": body}
    # One pass over the template: a value that happens to contain "__BODY__" stays as it is.
    return re.sub(r"__(HEAD|TITLE|CSS|BODY)__", lambda m: parts[m.group(1)], asset("page.html"))


@cache
def asset(name: str) -> str:
    """A file of ``checker/static`` (template, style sheet, script), shipped as package data."""
    return files("checker").joinpath("static", name).read_text(encoding="utf-8")
