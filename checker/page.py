"""The one HTML page shell of the project: the timeline, ``harness serve`` and the nightly
summary all build their pages with :func:`page` (template ``static/page.html``), so they differ
only in their style sheet and body. Pages are self-contained: style inline, no fetches.

:func:`page_chunks` gives the same page piece by piece, so a page of a hundred megabytes (the
timeline of a long run) can be written to a file without ever being one string in memory."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from functools import cache
from importlib.resources import files

_MARKER = re.compile(r"__(HEAD|TITLE|CSS|BODY)__")


def page(title: str, body: str, css: str, head: str = "") -> str:
    """A page: ``title`` is text (escaped here); ``body``, ``css`` and ``head`` (extra
    elements of ``<head>``) are markup the caller built and escaped."""
    return "".join(page_chunks(title, [body], css, head))


def page_chunks(title: str, body: Iterable[str], css: str, head: str = "") -> Iterator[str]:
    """:func:`page` in pieces: the body is taken from ``body`` one chunk at a time."""
    parts = {"HEAD": [head], "TITLE": [html.escape(title)], "CSS": [css], "BODY": body}
    # One pass over the template: a value that happens to contain "__BODY__" stays as it is.
    for k, piece in enumerate(_MARKER.split(asset("page.html"))):
        if k % 2:
            yield from parts[piece]
        elif piece:
            yield piece


@cache
def asset(name: str) -> str:
    """A file of ``checker/static`` (template, style sheet, script), shipped as package data."""
    return files("checker").joinpath("static", name).read_text(encoding="utf-8")
