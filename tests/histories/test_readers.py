"""Readers take real files: the shapes Jepsen logs and Porcupine's kv files have in the wild.

Each variant is written next to the plain form of the same records and must read to the
same operations; malformed lines still name their file, line and what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from histories import HistoryError, detect_format, read_history

RECORDS = [  # (process, type, f, value) of a small cas-register history
    ("0", ":invoke", ":read", "nil"),
    ("1", ":invoke", ":write", "3"),
    ("0", ":ok", ":read", "nil"),
    ("1", ":ok", ":write", "3"),
    ("2", ":invoke", ":cas", "[3 4]"),
    ("2", ":ok", ":cas", "[3 4]"),
    ("3", ":invoke", ":cas", "[1 2]"),
    ("3", ":fail", ":cas", "[1 2]"),
    ("4", ":invoke", ":write", "5"),
    ("4", ":info", ":write", ":timed-out"),
]
PLAIN = "".join(f"INFO  jepsen.util - {p}\t{t}\t{f}\t{v}\n" for p, t, f, v in RECORDS)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def ops_of(path: Path) -> list[tuple]:
    return [(op.type, op.process, op.f, op.value, op.error) for op in read_history(path).ops]


def same_as_plain(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "variant.log", text)
    assert detect_format(path) == "porcupine-etcd"
    assert ops_of(path) == ops_of(write(tmp_path, "plain.log", PLAIN))


def lines(template: str) -> str:
    """Every record formatted with ``template`` (fields p, t, f, v)."""
    return "".join(template.format(p=p, t=t, f=f, v=v) for p, t, f, v in RECORDS)


# -- whitespace and line ends -------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "INFO  jepsen.util - {p}  {t}  {f}  {v}\n",  # runs of spaces instead of tabs
        "INFO jepsen.util - {p} {t} {f} {v}\n",  # single spaces
        "INFO\tjepsen.util\t-\t{p}\t\t{t} \t{f}\t \t{v}\n",  # tabs and spaces mixed
        "INFO  jepsen.util - {p}\t{t}\t{f}\t{v}\r\n",  # CRLF
        "INFO  jepsen.util - {p}\t{t}\t{f}\t{v}  \t \n",  # trailing blanks
        "INFO  jepsen.util - {p}\t{t}\t{f}\t{v}\n  \n\r\n",  # blank lines between records
    ],
)
def test_any_whitespace_between_fields_and_any_line_end(tmp_path: Path, template: str) -> None:
    same_as_plain(tmp_path, lines(template))


def test_values_with_spaces_inside_survive_space_separated_fields(tmp_path: Path) -> None:
    text = "INFO  jepsen.util - 1  :invoke :cas  [3   1]\nINFO  jepsen.util - 1  :ok :cas  [ 3 1 ]\n"
    assert ops_of(write(tmp_path, "cas.log", text))[1] == ("ok", 1, "cas", [3, 1, True], None)


# -- prefixes of different Jepsen versions -------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        # logback with a GMT timestamp, a level and the worker thread, logger then ":"
        "2017-03-07 11:32:05,123{{GMT}}\tINFO\t[jepsen worker {p}] jepsen.util: {p}\t{t}\t{f}\t{v}\n",
        # level, bracketed timestamp, thread, " - ", logger without a separator
        "INFO [2019-04-01 11:25:23,722] jepsen worker {p} - jepsen.util {p}\t{t}\t{f}\t{v}\n",
        # the same printed with spaces
        "INFO [2017-03-30 22:38:51,892] jepsen worker {p} - jepsen.util {p}  {t} {f}  {v}\n",
        # a timestamp before the old layout, and other levels
        "2015-06-01 12:00:00,001{{GMT}}\tINFO  jepsen.util - {p}\t{t}\t{f}\t{v}\n",
        "WARN  jepsen.util - {p}\t{t}\t{f}\t{v}\n",
        "12:00:00.001 [jepsen worker {p}] DEBUG jepsen.util - {p} {t} {f} {v}\n",
    ],
)
def test_prefixes_before_jepsen_util(tmp_path: Path, template: str) -> None:
    same_as_plain(tmp_path, lines(template))


def test_a_whole_jepsen_log_skips_other_loggers_and_their_stack_traces(tmp_path: Path) -> None:
    records = lines("INFO [2021-02-23 10:31:11,243] jepsen worker {p} - jepsen.util {p}\t{t}\t{f}\t{v}\n")
    head = (
        "INFO [2021-02-23 10:31:10,001] main - jepsen.cli Test options:\n"
        " {:concurrency 5,\n"
        "  :time-limit 10}\n"
        "\n"
        "INFO [2021-02-23 10:31:11,240] jepsen test runner - jepsen.core Running test\n"
    )
    trace = (
        "WARN [2021-02-23 10:31:11,250] jepsen worker 1 - jepsen.core Process 1 indeterminate\n"
        'clojure.lang.ExceptionInfo: throw+: {:errorCode 100, :message "Key not found"}\n'
        "\tat slingshot.support$stack_trace.invoke(support.clj:201)\n"
        "\tat jepsen.core$invoke_op_BANG_.invoke(core.clj:168)\n"
    )
    split = records.index("\n", len(records) // 2) + 1
    path = write(tmp_path, "jepsen.log", head + records[:split] + trace + records[split:])
    assert detect_format(path) == "porcupine-etcd"
    history = read_history(path)
    assert ops_of(path) == ops_of(write(tmp_path, "plain.log", PLAIN))
    assert history.warnings and "skipped 8 line(s) of other loggers (first at line 1)" in history.warnings[0]


def test_an_error_field_after_the_value(tmp_path: Path) -> None:
    text = (
        "INFO  jepsen.util - 0\t:invoke\t:write\t[6 [0 1]]\n"
        "INFO  jepsen.util - 0\t:info\t:write\t[6 [0 1]]\t:conn-closed\n"
        "INFO  jepsen.util - 1\t:invoke\t:write\t2\n"
        'INFO  jepsen.util - 1\t:info\t:write\t2\t[:crash "boom: no route"]\n'
        "INFO  jepsen.util - 2  :invoke  :write  7   :timeout\n"
    )
    got = [(op.type, op.value, op.error) for op in read_history(write(tmp_path, "e.log", text)).ops]
    assert got[1] == ("info", [6, [0, 1]], "conn-closed")
    assert got[3] == ("info", 2, '[:crash "boom: no route"]')
    assert got[4] == ("invoke", 7, "timeout")


# -- malformed lines: file, line and what is wrong --------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ("INFO  jepsen.util - 1  :invoke", "no f, value"),
        ("INFO  jepsen.util - 1  :invoke  :write", "no value"),
        ("INFO  jepsen.util - 1  :okay  :write  1", "unknown type ':okay'"),
        ("INFO  jepsen.util - one  :ok  :write  1", "bad process 'one'"),
        ("INFO  jepsen.util - 1  :invoke  :cas  [1 2", "bad value '[1 2'"),
        ("INFO  jepsen.util - 1  :invoke  :write  1 2 3", "found 3 EDN forms"),
        ("half a line the writer never finished", "not a Jepsen log record"),
    ],
)
def test_malformed_lines_name_file_line_and_problem(tmp_path: Path, bad: str, what: str) -> None:
    head = "INFO  jepsen.util - 0  :invoke  :read  nil\r\nINFO  jepsen.util - 0  :ok  :read  nil\r\n"
    path = write(tmp_path, "bad.log", head + bad + "\r\n")
    with pytest.raises(HistoryError) as caught:
        read_history(path, format="porcupine-etcd")
    assert caught.value.line == 3 and what in caught.value.what, caught.value
    assert str(caught.value).startswith(f"{path}:3: ")
    assert "\r" not in str(caught.value)


def test_a_text_file_that_is_no_log_is_refused_not_read_as_empty(tmp_path: Path) -> None:
    with pytest.raises(HistoryError) as caught:
        read_history(
            write(tmp_path, "notes.log", "WARN something\nno records here\n"), format="porcupine-etcd"
        )
    assert "no jepsen.util records" in str(caught.value)


# -- Porcupine kv files ----------------------------------------------------------------------


KV = [  # (process, type, f, key, value)
    (0, "invoke", "put", '"1"', '"x"'),
    (1, "invoke", "get", '"1"', "nil"),
    (0, "ok", "put", '"1"', '"x"'),
    (1, "ok", "get", '"1"', '"x"'),
    (2, "invoke", "append", '"2"', '"y"'),
    (2, "info", "append", '"2"', ":timed-out"),
]


def kv_lines(order: tuple[str, ...], sep: str = ", ", end: str = "\n") -> str:
    out = []
    for p, t, f, k, v in KV:
        fields = {"process": str(p), "type": f":{t}", "f": f":{f}", "key": k, "value": v}
        out.append("{" + sep.join(f":{name} {fields[name]}" for name in order) + "}" + end)
    return "".join(out)


@pytest.mark.parametrize(
    ("order", "sep", "end"),
    [
        (("key", "value", "process", "type", "f"), ", ", "\n"),
        (("f", "type", "process", "value", "key"), " ", "\n"),
        (("type", "key", "f", "process", "value"), ",\t", "\r\n"),
        (("value", "f", "key", "type", "process"), " ,  ", "  \n"),
    ],
)
def test_porcupine_kv_maps_with_keys_in_any_order(
    tmp_path: Path, order: tuple[str, ...], sep: str, end: str
) -> None:
    plain = write(tmp_path, "plain.txt", kv_lines(("process", "type", "f", "key", "value")))
    variant = write(tmp_path, "variant.txt", kv_lines(order, sep, end))
    assert detect_format(variant) == "porcupine-kv"
    assert ops_of(variant) == ops_of(plain)
    assert ops_of(plain)[3] == ("ok", 1, "get", ["1", "x"], None)


def test_kv_line_without_a_key_names_its_line(tmp_path: Path) -> None:
    text = (
        kv_lines(("key", "value", "process", "type", "f"), end="\r\n")
        + "{:value nil, :f :get, :type :invoke, :process 3}\r\n"
    )
    with pytest.raises(HistoryError) as caught:
        read_history(write(tmp_path, "kv.txt", text), format="porcupine-kv")
    assert caught.value.line == len(KV) + 1 and "no :key" in caught.value.what


# -- our own files with foreign line ends -------------------------------------------------------


def test_jsonl_and_edn_with_crlf_and_trailing_blanks(tmp_path: Path) -> None:
    jsonl = (
        '{"index": 0, "type": "invoke", "process": 0, "f": "write", "value": 1, "time": 5}  \r\n'
        '{"index": 1, "type": "ok", "process": 0, "f": "write", "value": 1, "time": 9}\t\r\n'
    )
    edn = (
        "[{:process 0, :type :invoke, :f :write, :value 1}\r\n"
        " {:process 0, :type :ok, :f :write, :value 1}]  \r\n"
    )
    a = [(op.type, op.f, op.value) for op in read_history(write(tmp_path, "h.jsonl", jsonl)).ops]
    b = [(op.type, op.f, op.value) for op in read_history(write(tmp_path, "h.edn", edn)).ops]
    assert a == b == [("invoke", "write", 1), ("ok", "write", 1)]


# -- large files are read line by line ----------------------------------------------------------


def _jsonl_line(index: int, text: str = "x") -> str:
    kind = "invoke" if index % 2 == 0 else "ok"
    record = {"index": index, "type": kind, "process": 0, "f": "w", "value": text, "time": index}
    return json.dumps(record, ensure_ascii=False) + "\n"


def test_a_file_larger_than_the_head_reads_whole_and_names_late_bad_lines(tmp_path: Path) -> None:
    from histories.textio import HEAD

    body = "".join(_jsonl_line(i, "é" * 40) for i in range(HEAD // 100))  # past the head, multibyte text
    path = write(tmp_path, "big.jsonl", body)
    assert path.stat().st_size > HEAD
    assert len(read_history(path).ops) == body.count("\n")
    late = body.count("\n") + 1
    path.write_bytes(body.encode() + b'{"index": 1, "type": "ok", "value": "\xff"}\n')
    with pytest.raises(HistoryError) as caught:
        read_history(path)
    assert caught.value.line == late and "not UTF-8" in caught.value.what
    path.write_bytes(body.encode() + b"\0\n")
    with pytest.raises(HistoryError) as caught:
        read_history(path)
    assert caught.value.line == late and "NUL" in caught.value.what


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ('{"index": 9, "type": "ok"', "not valid JSON"),
        (
            '{"index": 9, "type": "ok", "process": 0, "f": "w", "value": 1, "time": 9}, {"index": 10}',
            "Extra data",
        ),
        ("[1, 2]", "expected a JSON object"),
        ('{"index": 9}', "missing field(s) type"),
    ],
)
def test_a_bad_line_among_thousands_is_named(tmp_path: Path, bad: str, what: str) -> None:
    lines = [_jsonl_line(i) for i in range(6000)]
    lines[5001] = bad + "\n"
    path = write(tmp_path, "h.jsonl", "".join(lines))
    with pytest.raises(HistoryError) as caught:
        read_history(path)
    assert caught.value.line == 5002 and what in caught.value.what, caught.value


def test_equal_values_are_shared_exactly_and_only_when_equal(tmp_path: Path) -> None:
    """Large histories keep one object per repeated value; 1 never stands in for true."""
    records = [
        {"index": 0, "type": "invoke", "process": 0, "f": "put", "value": ["k1", "x"], "time": 1},
        {"index": 1, "type": "ok", "process": 0, "f": "put", "value": ["k1", "x"], "time": 2},
        {"index": 2, "type": "invoke", "process": 1, "f": "write", "value": 1, "time": 3},
        {"index": 3, "type": "ok", "process": 1, "f": "write", "value": True, "time": 4},
        {"index": 4, "type": "invoke", "process": 2, "f": "cas", "value": [1, 2], "time": 5},
        {"index": 5, "type": "ok", "process": 2, "f": "cas", "value": [1.0, 2, False], "time": 6},
        {"index": 6, "type": "invoke", "process": 0, "f": "get", "value": ["k1", None], "time": 7},
        {"index": 7, "type": "ok", "process": 0, "f": "get", "value": ["k1", "x"], "time": 8},
    ]
    path = write(tmp_path, "h.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    ops = read_history(path).ops
    assert [op.to_dict() for op in ops] == records
    assert ops[1].value is ops[0].value
    assert ops[3].value is True and ops[3].value is not ops[2].value
    assert type(ops[5].value[0]) is float
    assert ops[7].value[0] is ops[0].value[0]  # the key, kept once


def test_many_distinct_strings_in_one_field_read_back_unchanged(tmp_path: Path) -> None:
    lines = [_jsonl_line(i, f"text {i}") for i in range(10_000)]
    ops = read_history(write(tmp_path, "h.jsonl", "".join(lines))).ops
    assert [op.value for op in ops] == [f"text {i}" for i in range(10_000)]
