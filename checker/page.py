"""The one page-building helper of the project: the timeline, ``harness serve`` and the nightly
summary are jinja2 templates rendered by :class:`Pages`, all extending the one page shell
``checker/static/page.html``, so they differ only in their style sheet and body.

Templates are files of their package (shipped as package data, found with ``importlib.resources``
through jinja2's ``PackageLoader``); autoescaping is always on, so a run name, an error message or
an operation's value shows as text and never becomes markup. What a template must not escape
(the style sheet, the script, the timeline's JSON) is passed as :class:`markupsafe.Markup`. Pages
are self-contained: style inline, no fetches. A package's templates find the shell by its name,
``page.html``; ``checker`` knows nothing of the packages that use it.

A template's ``generate`` (:meth:`Pages.template`) gives a page piece by piece, so a page of a
hundred megabytes (the timeline of a long run) can be written to a file without ever being one
string in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.resources import files
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, Template
from markupsafe import Markup

SHELL = "page.html"  # the page shell every template extends (in checker/static)


class Pages:
    """The templates of one package (``package/folder/*.html``) over the shared shell.

    ``filters`` are the package's own formats (durations, sizes, ...), usable in its templates.
    A variable a template names but the caller did not pass is an error, not an empty string.
    """

    def __init__(
        self, package: str, folder: str = "templates", filters: dict[str, Callable[..., Any]] | None = None
    ) -> None:
        self.package, self.folder = package, folder
        loaders = [PackageLoader(package, folder)]
        if (package, folder) != ("checker", "static"):
            loaders.append(PackageLoader("checker", "static"))
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,  # a written page ends with a newline, as files do
        )
        self.env.filters.update(filters or {})

    def render(self, template: str, /, **context: Any) -> str:
        """The page ``template`` filled with ``context`` (escaped unless it is Markup)."""
        return self.env.get_template(template).render(**context)

    def template(self, name: str) -> Template:
        """The template ``name``, compiled once per process. Its ``generate(**context)`` gives the
        page in pieces, made as they are asked for: an iterable in ``context`` that the template
        loops over is taken one item at a time."""
        return self.env.get_template(name)

    def asset(self, name: str) -> Markup:
        """A file of the package's template folder (a style sheet, a script) to inline as it is."""
        return Markup(files(self.package).joinpath(self.folder, name).read_text(encoding="utf-8"))


@cache
def pages() -> Pages:
    """The templates of ``checker/static``: the shell and the timeline page."""
    return Pages("checker", "static")


@cache
def asset(name: str) -> Markup:
    """A file of ``checker/static`` (a style sheet, a script), shipped as package data."""
    return pages().asset(name)
