"""Streamed reading of jsonl histories: the same operations as reading whole, then pairing."""

from __future__ import annotations

import json
from dataclasses import astuple
from pathlib import Path

import pytest

from checker.prepare import operations, read_operations
from histories import HistoryError, read_history, write_jsonl
from histories.format import Op
from histories.synth import generate


def _same(path: Path) -> list:
    streamed = [astuple(op) for op in read_operations(path)]
    whole = [astuple(op) for op in operations(read_history(path).ops)]
    assert streamed == whole
    return streamed


@pytest.mark.parametrize("model", ["chat", "kv", "cas-register"])
def test_streamed_operations_equal_whole_reading(tmp_path: Path, model: str) -> None:
    path = tmp_path / "h.jsonl"
    write_jsonl(
        path,
        generate(model, clients=10, ops=300, keys=1 if model == "cas-register" else 3, info_rate=0.1, seed=3),
    )
    assert len(_same(path)) == 300


def test_without_times_the_record_indexes_are_the_clock(tmp_path: Path) -> None:
    records = [
        Op(0, "invoke", 1, "write", 1),
        Op(5, "invoke", 2, "read", None),
        Op(7, "ok", 1, "write", 1),
        Op(9, "fail", 2, "read", None),
        Op(11, "invoke", 2, "read", None),
    ]
    path = tmp_path / "h.jsonl"
    write_jsonl(path, records)
    ops = _same(path)
    assert [(op[5], op[6]) for op in ops] == [(0, 7), (11, None)]  # (call, ret); the failed read is gone


def test_shared_answers_stay_exact(tmp_path: Path) -> None:
    """Equal small answers become one object, but 1 and true (or 1 and "1") never do."""
    values = [1, True, "1", 1, None, [1], [True]]
    records = []
    for k, value in enumerate(values):
        records.append(Op(2 * k, "invoke", k, "check_account", {"user": "u"}, 2 * k + 1))
        records.append(Op(2 * k + 1, "ok", k, "check_account", {"status": "ok", "value": value}, 2 * k + 2))
    path = tmp_path / "h.jsonl"
    write_jsonl(path, records)
    ops = read_operations(path)
    seen = [op.output["value"] for op in ops]
    assert json.dumps(seen) == json.dumps(values)
    assert [type(v) for v in seen] == [type(v) for v in values]
    assert ops[0].output is ops[3].output  # the same answer, kept once


def test_a_bad_line_mid_stream_is_named(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    write_jsonl(path, generate("kv", clients=3, ops=20, seed=1))
    lines = path.read_text().splitlines(keepends=True)
    lines[7] = lines[7].replace('"process":', '"proc":')
    path.write_text("".join(lines))
    with pytest.raises(HistoryError, match=r"h.jsonl:8: missing field\(s\) process"):
        read_operations(path)
