"""The opt-in tracemalloc reports a node writes into its data directory (RAFTCHAT_TRACEMALLOC)."""

from __future__ import annotations

import tracemalloc

import pytest

from raftchat import memtrace


@pytest.fixture
def tracer(tmp_path):
    was_tracing = tracemalloc.is_tracing()
    yield memtrace.MemoryTracer(tmp_path)
    if not was_tracing:
        tracemalloc.stop()


def test_the_report_names_what_grew_since_the_first(tracer) -> None:
    tracer.report()
    hoard = [bytearray(1000) for _ in range(2000)]  # about 2 MB held by one line
    text = tracer.report()
    assert text == tracer.path.read_text()
    first = text.splitlines()[0]
    assert "traced=" in first and "rss=" in first
    grew = text.split("grew most since the first report")[1]
    top = grew.split("KiB, ")[1].split(" KiB")[0]  # the first entry: the site that grew most
    assert "test_memtrace.py" in top, grew[:2000]
    assert tracer.traced() > 2_000_000
    del hoard


@pytest.mark.parametrize("value", ["soon", "-5", "nan"])
def test_a_bad_interval_is_refused_naming_the_variable(monkeypatch, value: str) -> None:
    monkeypatch.setenv(memtrace.ENV, value)
    with pytest.raises(ValueError, match=memtrace.ENV):
        memtrace.interval_from_env()


@pytest.mark.parametrize(("value", "seconds"), [("", None), ("0", None), ("30", 30.0), ("0.5", 0.5)])
def test_the_interval_comes_from_the_environment(monkeypatch, value: str, seconds) -> None:
    monkeypatch.setenv(memtrace.ENV, value)
    assert memtrace.interval_from_env() == seconds
