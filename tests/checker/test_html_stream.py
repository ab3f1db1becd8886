"""The timeline page is written as it is made: a long run's page (a hundred megabytes of JSON)
never sits in memory whole, nor in several copies. No browser here: the page's text and the
memory its writing took (tracemalloc counts allocations, so the figures do not depend on the
machine's load)."""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path

import pytest
from support import HOSTILE, hostile_register_history

from checker import check, get_model
from checker.html import render, render_chunks, write_html
from checker.result import CheckResult
from histories import synth


def chat_result(ops: int) -> tuple[CheckResult, object]:
    """A linearizable chat history with about a hundred ops per group, as a soak run has."""
    model = get_model("chat")
    result = check(synth.generate("chat", clients=8, ops=ops, keys=ops // 100, seed=3), model)
    assert result.valid is True
    return result, model


def page_json(page: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="check-data">(.*?)</script>', page, re.S)
    assert found is not None
    return json.loads(found.group(1))


def test_pieces_stay_the_size_of_a_group_however_long_the_history() -> None:
    small, big = chat_result(1_000), chat_result(4_000)
    small_chunks = list(render_chunks(*small))
    big_chunks = list(render_chunks(*big))
    big_page = "".join(big_chunks)
    assert len(big_page) > 3 * len("".join(small_chunks))
    # The largest piece is the inlined script, or one group with its states: not the history.
    assert max(map(len, big_chunks)) <= max(map(len, small_chunks)) * 1.25
    assert max(map(len, big_chunks)) < len(big_page) / 20
    data = page_json(big_page)
    result = big[0]
    assert [op["id"] for op in data["ops"]] == [op.id for op in result.ops]
    for part, lin in zip(data["partitions"], result.linearizations, strict=True):
        assert len(part["states"]) == len(lin)
    assert big_page == render(*big)


def test_writing_the_page_holds_a_fraction_of_it(tmp_path: Path) -> None:
    result, model = chat_result(4_000)
    page = tmp_path / "page.html"
    write_html(page, result, model)  # once, so what is cached (the static files) is not counted
    tracemalloc.start()
    try:
        write_html(page, result, model, title="long")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = page.stat().st_size
    # Built as one string, the page took about five times its size (the JSON, escaped, spliced
    # into the template, encoded); written in pieces it takes well under half of it.
    assert peak < size / 2, f"writing a {size}-byte page took {peak} bytes at its peak"
    assert len(page_json(page.read_text(encoding="utf-8"))["ops"]) == len(result.ops)


def test_a_page_that_fails_half_way_leaves_the_one_there(tmp_path: Path) -> None:
    """The page is written beside its path and renamed over it once complete."""
    result, model = chat_result(1_000)
    page = tmp_path / "timeline.html"
    write_html(page, result, model, title="the first page")
    first = page.read_bytes()
    calls = 0
    describe = model.describe_state

    def failing(state: object) -> str:  # a model that breaks once the page is half written
        nonlocal calls
        calls += 1
        if calls > 500:
            raise RuntimeError("cannot describe this state")
        return describe(state)

    model.describe_state = failing  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="cannot describe"):
        write_html(page, result, model, title="the second page")
    assert calls > 500
    assert page.read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timeline.html"]  # no part file left


def test_the_static_text_is_escaped_and_reads_without_the_script() -> None:
    """The templates escape every value (a title, an operation's value) and give the minimal
    anomaly's operations with their times in seconds, before any script runs."""
    model = get_model("register")
    page = render(check(hostile_register_history(1_000_000), model), model, title=HOSTILE)
    static = page.split('<script type="application/json"')[0]
    assert "<b>not markup" not in page and "</script><!--" not in static
    assert "<title>NOT linearizable: &lt;/script&gt;&lt;!-- &lt;b&gt;not markup&lt;/b&gt; &amp;" in page
    rows = re.findall(r'<tr class="(r-[a-z]+)" data-op="(\d+)".*?<td>([^<]*) → ([^<]*)</td>', static)
    assert rows == [("r-stuck", "1", "0.003000 s", "0.004000 s")]
    assert static.count('class="stuck"') == 2  # the minimal anomaly's and the failing group's
