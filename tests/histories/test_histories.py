"""History readers and writers: round trips, the external corpus, dialects, and bad input."""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from histories import (
    FORMATS,
    History,
    HistoryError,
    JsonlWriter,
    Op,
    detect_format,
    read_edn,
    read_history,
    read_jsonl,
    to_knossos,
    write_edn,
    write_jsonl,
)
from histories.edncodec import EdnError, Keyword, dumps, parse_value, read_elements

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(),
    reason=f"external history corpus not found at {CORPUS} (shared/corpus beside the repo)",
)


def sample_ops() -> list[Op]:
    """A small history touching every field and value shape the writers must carry."""
    return [
        Op(0, "invoke", 0, "cas", [1, 2], 10, "n1"),
        Op(1, "invoke", "nemesis", "start", None, 15),
        Op(2, "ok", 0, "cas", [1, 2, False], 20, "n1"),
        Op(3, "info", "nemesis", "start", {"cut": ["n1", "n2"], "why": 'a "quoted"\nline'}, 25),
        Op(
            4,
            "invoke",
            3,
            "send_message",
            {"from": "alice", "to": "bob", "text": "héllo, wörld", "group": 2},
            30,
        ),
        Op(5, "ok", 3, "send_message", {"status": "ok", "value": 17}, 41, "n3"),
        Op(6, "invoke", 4, "read", None, 50),
        Op(7, "info", 4, "read", None, 60, error="timeout after 1.5 s"),
        Op(8, "invoke", 5, "write", -3.25, 70),
        Op(9, "fail", 5, "write", -3.25, 80, error="not_leader"),
        Op(10, "invoke", 6, "get", ["k 1", None], 90),
    ]


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, **kwargs) -> HistoryError:
    with pytest.raises(HistoryError) as info:
        read_history(path, **kwargs)
    assert str(path) in str(info.value)
    return info.value


# ---------------------------------------------------------------- round trips


def test_jsonl_round_trip(tmp_path):
    path = tmp_path / "h.jsonl"
    write_jsonl(path, sample_ops())
    assert read_jsonl(path) == sample_ops()
    history = read_history(path)
    assert (history.format, history.dialect, history.model_hint, history.ops) == (
        "jsonl",
        "canonical",
        None,
        sample_ops(),
    )


def test_jsonl_writer_appends_one_flushed_line_per_op(tmp_path):
    path = tmp_path / "h.jsonl"
    ops = sample_ops()
    with JsonlWriter(path) as writer:
        writer.write(ops[0])
        assert read_jsonl(path) == ops[:1]  # already on disk, before close
    with JsonlWriter(path) as writer:  # append mode: a second writer continues the file
        for op in ops[1:]:
            writer.write(op)
    assert read_jsonl(path) == ops
    assert path.read_text().count("\n") == len(ops)


def test_edn_round_trip(tmp_path):
    path = tmp_path / "h.edn"
    write_edn(path, sample_ops())
    assert read_edn(path) == sample_ops()
    assert detect_format(path) == "jepsen-edn"
    first = path.read_text().splitlines()[0]
    assert first == '{:index 0, :time 10, :type :invoke, :process 0, :f :cas, :value [1 2], :node "n1"}'
    assert ":process :nemesis" in path.read_text()


def test_written_edn_is_read_by_edn_format(tmp_path):
    """An independent EDN parser (the one Clojure-minded tools follow) reads what we write."""
    edn_format = pytest.importorskip("edn_format")
    path = tmp_path / "h.edn"
    write_edn(path, sample_ops())
    maps = [edn_format.loads(line) for line in path.read_text().splitlines()]
    kw = edn_format.Keyword
    assert [m[kw("type")] for m in maps] == [kw(op.type) for op in sample_ops()]
    assert maps[1][kw("process")] == kw("nemesis") and maps[0][kw("process")] == 0
    assert maps[4][kw("value")][kw("text")] == "héllo, wörld"


def test_to_knossos_then_knossos_dialect(tmp_path):
    ops = [
        Op(0, "invoke", 0, "cas", [1, 2], 1),
        Op(1, "ok", 0, "cas", [1, 2, True], 2),
        Op(2, "invoke", 0, "cas", [2, 3], 3),
        Op(3, "ok", 0, "cas", [5, 3, False], 4),
    ]
    path = tmp_path / "k.edn"
    write_edn(path, to_knossos(ops))
    got = read_history(path).ops
    assert [(op.type, op.value) for op in got] == [
        ("invoke", [1, 2]),
        ("ok", [1, 2, True]),
        ("invoke", [2, 3]),
        ("fail", [5, 3]),  # Knossos has no failed compare: "did not happen" is the sound reading
    ]


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(value=json_like, process=st.integers(0, 99) | st.sampled_from(["nemesis", "worker 1"]))
def test_any_json_value_survives_edn_and_jsonl(tmp_path_factory, value, process):
    ops = [Op(0, "invoke", process, "f", value, 1), Op(1, "ok", process, "f", value, 2, "n1", "e")]
    folder = tmp_path_factory.mktemp("rt")
    write_edn(folder / "h.edn", ops)
    write_jsonl(folder / "h.jsonl", ops)
    assert read_edn(folder / "h.edn") == ops
    assert read_jsonl(folder / "h.jsonl") == ops


def test_edn_syntax_details():
    elements = read_elements(
        '; comment\n[{:a 1}\n #_ {:skipped 1}\n {:b "x\\ny"} #inst "2020"\n ^:meta (1 2) #{3}]'
    )
    assert elements == [({"a": 1}, 2), ({"b": "x\ny"}, 4), ("2020", 4), ([1, 2], 5), ([3], 5)]
    assert read_elements('#jepsen.history.Op{:f :x}\n#_ [1]\n\n#my/tag {[1 2] \\a}\n"s"\n') == [
        ({"f": "x"}, 1),
        ({(1, 2): "a"}, 4),
        ("s", 5),
    ]
    assert read_elements("{:a 1}\r\n{:a 2}\r\n") == [({"a": 1}, 1), ({"a": 2}, 2)]  # CRLF line ends
    assert parse_value("[1N 2.5M -3 1e3 nil true false \\a \\space ##Inf :ns/k sym]") == [
        1,
        2.5,
        -3,
        1000.0,
        None,
        True,
        False,
        "a",
        " ",
        float("inf"),
        "ns/k",
        "sym",
    ]
    assert (
        dumps({"status": "ok", "a b": [1, None, 'q"t'], 3: -0.5, "k": Keyword("v"), "n/s/x": (1,)})
        == '{:status "ok" "a b" [1 nil "q\\"t"] 3 -0.5 :k :v "n/s/x" [1]}'
    )
    assert parse_value(dumps({(1, 2): {3}})) == {(1, 2): [3]}


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ('{:a 1}\n{:a 2}\n{:b 2 :c}\n{:a "x"}\n', 3, "Even number of terms required for map"),
        ("[{:a 1}\n {:b\n   2 :c}\n {:a 3}]", 2, "Even number of terms"),  # the element's first line
        ("[{:a 1}\n {:b 2}\n ^:m]", 3, "'^' has no form before ']'"),
        ("{:a 1}\n#foo", 2, "'#foo' has no form"),
        ("{:a 1}\n  }\n{:b 1}", 2, "unexpected '}' with nothing open"),
        ("[{:a 1}\n {:b [1 2}]", 2, "'}' closes '[' opened at line 2"),
        ("{:a #{1 2}\n :b [1 ~]}", 1, "Illegal character '~'"),
        ('[{:a 1} {:a 2}\n {:b "x\\"}]\n', 2, "unterminated string"),
        ('{:a 1} {:b "x"} ; a comment: {\n{:c', 2, "file ends inside the form"),
        ("; nothing but comments\n\n", None, "no EDN data"),
    ],
)
def test_edn_errors_name_the_element_line(text, line, what):
    with pytest.raises(EdnError) as info:
        read_elements(text)
    assert (info.value.line, what in info.value.what) == (line, True), info.value


def test_edn_format_parser_is_built_once_and_reused():
    """Reading goes through one parser built from edn_format's grammar (not its per-call public
    API, which rebuilds a parser each time and refuses tags it has no handler for)."""
    import edn_format

    from histories import edncodec

    assert edncodec._parser()[0] is not edn_format.loads_all
    assert edncodec._parser() is edncodec._parser()


def test_tags_read_in_a_fresh_install_without_edn_formats_table_file(monkeypatch):
    """edn_format writes its parsetab.py on its first public call; before that (a fresh install)
    the parser was once built as edn_format's public API, which refuses tags it cannot handle."""
    import edn_format

    from histories import edncodec

    monkeypatch.setitem(sys.modules, "edn_format.parsetab", None)  # importing it fails, as when absent
    monkeypatch.delattr(edn_format, "parsetab", raising=False)
    edncodec._parser.cache_clear()
    try:
        assert edncodec._parser()[0] is not edn_format.loads_all
        assert parse_value('#jepsen.history.Op{:type :ok, :value #inst "2020-01-01"}') == {
            "type": "ok",
            "value": "2020-01-01",
        }
    finally:
        edncodec._parser.cache_clear()


# ---------------------------------------------------------------- corpus


def corpus_files(pattern: str) -> list[Path]:
    return sorted(CORPUS.glob(pattern))


@needs_corpus
def test_every_etcd_log_reads_as_a_cas_register():
    files = corpus_files("porcupine-etcd/*.log")
    listed = {row["file"] for row in csv.DictReader((CORPUS / "porcupine-etcd" / "expected.csv").open())}
    assert len(files) == 50 and {f.name for f in files} == listed
    failed_cas = 0
    for path in files:
        assert detect_format(path) == "porcupine-etcd"
        history = read_history(path)
        lines = path.read_text().splitlines()
        assert len(history) == len(lines) > 50
        assert (history.model_hint, history.initial_hint, history.synthetic_time) == (
            "cas-register",
            None,
            True,
        )
        assert {op.f for op in history.ops} <= {"read", "write", "cas"}
        assert all(op.type != "fail" for op in history.ops)  # every etcd fail is a cas or read observation
        for op, line in zip(history.ops, lines, strict=True):
            if op.f == "cas" and op.type == "ok":
                assert op.value[2] is (":ok\t" in line)
        failed_cas += sum(1 for line in lines if "\t:fail\t:cas\t" in line)
    assert failed_cas == 884  # from the corpus README's description: all of them are definite observations


@needs_corpus
def test_every_kv_file_reads_with_key_value_pairs():
    files = corpus_files("porcupine-kv/*.txt")
    assert len(files) == 4
    for path in files:
        assert detect_format(path) == "porcupine-kv"
        history = read_history(path)
        assert len(history) == len(path.read_text().splitlines())
        assert (history.model_hint, history.initial_hint) == ("kv", "")
        for op in history.ops:
            assert isinstance(op.value, list) and len(op.value) == 2 and isinstance(op.value[0], str)
            assert op.f in ("get", "put", "append")
            if op.type == "invoke" and op.f == "get":
                assert op.value[1] is None


@needs_corpus
def test_every_knossos_file_reads_as_jepsen_edn():
    files = corpus_files("knossos-cas-register/*/*.edn")
    assert len(files) == 58 and {f.parent.name for f in files} == {"good", "bad"}
    for path in files:
        assert detect_format(path) == "jepsen-edn"
        history = read_history(path)
        assert len(history) == path.read_text().count(":process") > 0
        assert (history.model_hint, history.initial_hint, history.dialect) == ("cas-register", 0, "knossos")
        for op in history.ops:
            if op.type == "ok" and op.f == "read":
                assert op.value is not None  # nil reads became info
            if op.f == "cas" and op.type != "info" and op.process != "nemesis":
                assert len(op.value) == (3 if op.type == "ok" else 2)


@needs_corpus
def test_our_edn_reader_agrees_with_edn_format_on_the_corpus():
    """Parsing element by element with the reused parser gives what edn_format's public API
    gives for the whole file; and what we read, written with dumps, reads back the same."""
    edn_format = pytest.importorskip("edn_format")

    def norm(v):
        if isinstance(v, edn_format.Keyword):
            return ":" + v.name
        if isinstance(v, Mapping):
            return {norm(k): norm(x) for k, x in v.items()}
        if isinstance(v, Sequence) and not isinstance(v, str):
            return [norm(x) for x in v]
        return v

    def ours(v):
        if type(v).__name__ == "Keyword":
            return ":" + v
        if isinstance(v, list):
            return [ours(x) for x in v]
        if isinstance(v, dict):
            return {ours(k): ours(x) for k, x in v.items()}
        return v

    # One file of each family (memstress3-0 .. -19 are one generator's): edn_format's public API
    # is slow, and test_every_knossos_file_reads_as_jepsen_edn reads every file with ours.
    families: dict[tuple[str, str], Path] = {}
    for path in corpus_files("knossos-cas-register/*/*.edn") + corpus_files("porcupine-kv/*.txt"):
        families.setdefault((path.parent.name, re.sub(r"-\d+$", "", path.stem)), path)
    assert len(families) >= 10, families
    for path in families.values():
        text = path.read_text()
        theirs = [norm(v) for v in edn_format.loads_all(text)]
        if len(theirs) == 1 and isinstance(theirs[0], list):
            theirs = theirs[0]  # one vector or list of op maps: read_elements gives its elements
        values = [value for value, _ in read_elements(text)]
        assert [ours(v) for v in values] == theirs, path
        rewritten = "\n".join(dumps(v) for v in values)
        assert read_elements(rewritten) == [(v, i) for i, v in enumerate(values, 1)], path


# ---------------------------------------------------------------- dialects


def test_etcd_conventions(tmp_path):
    log = "".join(
        f"INFO  jepsen.util - {p}\t:{t}\t:{f}\t{v}\n"
        for p, t, f, v in [
            (0, "invoke", "read", "nil"),
            (0, "ok", "read", "nil"),
            (1, "invoke", "cas", "[1 2]"),
            (1, "fail", "cas", "[1 2]"),
            (2, "invoke", "cas", "[3 4]"),
            (2, "ok", "cas", "[3 4]"),
            (3, "invoke", "read", "nil"),
            (3, "fail", "read", ":timed-out"),
            (4, "invoke", "write", "7"),
            (4, "info", "write", ":timed-out"),
            (5, "invoke", "write", "8"),
            (5, "fail", "write", "8"),
        ]
    )
    history = read_history(write(tmp_path, "e.log", log))
    assert history.format == "porcupine-etcd" and history.initial_hint is None
    got = [(op.type, op.value, op.error) for op in history.ops if op.type != "invoke"]
    assert got == [
        ("ok", None, None),  # nil = the key is absent
        ("ok", [1, 2, False], None),  # a failed compare is an observation, not "did not happen"
        ("ok", [3, 4, True], None),
        ("info", None, "timed-out"),  # a failed read constrains nothing
        ("info", None, "timed-out"),
        ("fail", 8, None),
    ]
    assert [op.time for op in history.ops] == list(range(12))  # no times in the log: order only


def test_knossos_conventions(tmp_path):
    text = """; comment first
(
 {:process 0, :type :invoke, :f :cas, :value [0 1], :time 5}
 {:process 0, :type :fail, :f :cas, :value [0 1], :time 6, :error [:unavailable nil]}
 {:process 1, :type :invoke, :f :read, :value 4, :time 7}
 {:process 1, :type :ok, :f :read, :value nil, :time 8}
 {:process 2, :type :invoke, :f :cas, :value [0 2], :time 9}
 {:process :nemesis, :type :info, :f :start, :value "cut", :time 10}
 {:process 2, :type :ok, :f :cas, :value [0 2], :time 11}
 {:process 3, :type :invoke, :f :write, :value 1, :time 12}
 {:process 3, :type :info, :f :write, :value 1, :time 13, :node "n2"})
"""
    history = read_history(write(tmp_path, "k.edn", text))
    assert (history.format, history.dialect, history.model_hint, history.initial_hint) == (
        "jepsen-edn",
        "knossos",
        "cas-register",
        0,
    )
    assert history.ops[1] == Op(1, "fail", 0, "cas", [0, 1], 6, error="[:unavailable nil]")  # kept, as fail
    assert history.ops[2].value is None  # a read's invocation value means nothing
    assert (history.ops[3].type, history.ops[3].value) == ("info", None)  # nil read: result unknown
    assert history.ops[5] == Op(5, "info", "nemesis", "start", "cut", 10)
    assert history.ops[6].value == [0, 2, True]
    assert history.ops[8].node == "n2" and not history.synthetic_time


def test_jepsen_history_edn_one_map_per_line(tmp_path):
    text = (
        "#jepsen.history.Op{:index 0, :time 100, :type :invoke, :process 0, :f :add, :value 1}\n"
        "{:index 1, :time 200, :type :ok, :process 0, :f :add, :value 1}\n"
    )
    history = read_history(write(tmp_path, "history.edn", text))
    assert history.model_hint is None and history.initial_hint is None  # not a register workload
    assert history.ops == [Op(0, "invoke", 0, "add", 1, 100), Op(1, "ok", 0, "add", 1, 200)]


def test_kv_conventions(tmp_path):
    text = (
        '{:process 0, :type :invoke, :f :get, :key "a", :value nil}\n'
        '{:process 1, :type :invoke, :f :append, :key "a", :value "x"}\n'
        '{:process 0, :type :ok, :f :get, :key "a", :value ""}\n'
        '{:process 1, :type :ok, :f :append, :key "a", :value "x"}\n'
    )
    history = read_history(write(tmp_path, "kv.txt", text))
    assert history.format == "porcupine-kv"
    assert [op.value for op in history.ops] == [["a", None], ["a", "x"], ["a", ""], ["a", "x"]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"index":0,"type":"invoke","process":0,"f":"read","value":null,"time":0}\n', "jsonl"),
        ("[{:process 0, :type :invoke, :f :read, :value nil}]", "jepsen-edn"),
        (";; note\n\n{:process 0 :type :invoke :f :read :value nil}\n", "jepsen-edn"),
        ('{:process 0, :type :invoke, :f :get, :key "k", :value nil}\n', "porcupine-kv"),
        ("INFO  jepsen.util - 0\t:invoke\t:read\tnil\n", "porcupine-etcd"),
        ("2015-06-01 12:00:00,001{GMT}\tINFO  jepsen.util - 0\t:invoke\t:read\tnil\n", "porcupine-etcd"),
    ],
)
def test_detect_format(tmp_path, text, expected):
    assert expected in FORMATS
    assert detect_format(write(tmp_path, "h", text)) == expected


# ---------------------------------------------------------------- bad input


def test_unknown_content_names_the_formats_tried(tmp_path):
    err = error_of(write(tmp_path, "h.txt", "hello world\n"))
    assert err.line == 1 and all(name in err.what for name in FORMATS)


def test_unknown_format_argument_and_missing_file(tmp_path):
    assert "unknown format" in error_of(write(tmp_path, "h", "[]"), format="csv").what
    assert "cannot read" in error_of(tmp_path / "absent.jsonl").what


@pytest.mark.parametrize("name", ["h.jsonl", "h.edn", "h.log", "h.txt"])
@pytest.mark.parametrize(
    ("content", "line", "what"),
    [
        (b"", None, "empty file"),
        (b"  \n\n", None, "only whitespace"),
        (b"[{:process 0}\n\x00\x01\x02garbage", 2, "binary"),
        (b'{"index": 0}\n\n\xff\xfe\xfd\n', 3, "not UTF-8"),
    ],
)
def test_empty_and_binary_files(tmp_path, name, content, line, what):
    err = error_of(write(tmp_path, name, content))
    assert err.line == line and what in err.what


JSONL_OK = '{"index":%d,"type":"%s","process":%s,"f":"read","value":null,"time":0}\n'


@pytest.mark.parametrize(
    ("lines", "line", "what"),
    [
        (
            [JSONL_OK % (0, "invoke", 0), '{"index":1,"type":"ok",\n', JSONL_OK % (2, "invoke", 1)],
            2,
            "not valid JSON",
        ),
        (
            [JSONL_OK % (0, "invoke", 0), '{"index":1,"type":"ok","process":0,"f":"read"}\n'],
            2,
            "missing field",
        ),
        ([JSONL_OK % (0, "invoke", 0), JSONL_OK % (1, "done", 0)], 2, "unknown type 'done'"),
        ([JSONL_OK % (3, "invoke", 0), JSONL_OK % (3, "ok", 0)], 2, "not greater than the previous index 3"),
        ([JSONL_OK % (0, "invoke", 0), JSONL_OK % (1, "ok", 1)], 2, "without an invocation"),
        ([JSONL_OK % (0, "invoke", 0), JSONL_OK % (1, "invoke", 0)], 2, "is in flight"),
        (['{"index":0,"type":"invoke","process":true,"f":"r","value":1,"time":0}\n'], 1, "process must be"),
        (
            ['{"index":0,"type":"invoke","process":0,"f":"r","value":1,"time":0,"extra":1}\n'],
            1,
            "unknown field",
        ),
        (["[1, 2]\n"], 1, "expected a JSON object"),
    ],
)
def test_bad_jsonl(tmp_path, lines, line, what):
    err = error_of(write(tmp_path, "h.jsonl", "".join(lines)), format="jsonl")
    assert err.line == line and what in err.what, err


def test_nemesis_may_overlap_and_complete_alone(tmp_path):
    ops = [
        Op(0, "info", "nemesis", "start", None),
        Op(1, "invoke", "nemesis", "stop", None),
        Op(2, "invoke", "nemesis", "start", None),
        Op(3, "invoke", 0, "read", None),
    ]
    write_jsonl(tmp_path / "n.jsonl", ops)
    assert read_jsonl(tmp_path / "n.jsonl") == ops  # an invocation open at the end is fine too


def test_truncated_jsonl_tail(tmp_path):
    path = tmp_path / "crash.jsonl"
    write_jsonl(path, sample_ops()[:3])
    with path.open("a") as out:
        out.write('{"index":3,"type":"info","proc')
    err = error_of(path)
    assert err.line == 4 and "truncated last line" in err.what and "allow_truncated_tail" in err.what
    ops = read_jsonl(path, allow_truncated_tail=True)
    assert ops == sample_ops()[:3] and len(ops.warnings) == 1 and "crash.jsonl:4" in ops.warnings[0]
    history = read_history(path, allow_truncated_tail=True)
    assert history.ops == sample_ops()[:3] and history.warnings == ops.warnings
    with pytest.raises(HistoryError, match="partial line"):
        JsonlWriter(path)  # appending would bury the partial record mid-file


def test_a_complete_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "h.jsonl"
    write_jsonl(path, sample_ops()[:2])
    path.write_text(path.read_text().rstrip("\n"))
    assert read_jsonl(path) == sample_ops()[:2]


KNOSSOS_BODY = [
    "[{:process 0, :type :invoke, :f :write, :value 1}",
    " {:process 0, :type :ok, :f :write, :value 1}",
    " ; a comment line does not shift the numbering",
    " {:process 1,",
    "  :type :invoke, :f :read, :value nil}",
]


@pytest.mark.parametrize(
    ("tail", "line", "what"),
    [
        ([" {:process 1, :type :ok, :f :read"], 6, "file ends inside the element"),
        ([" {:process 1, :type :ok, :f :read, :value 1}"], 6, "missing ']'"),
        ([" {:process 1, :f :read, :value 1}]"], 6, "no :type"),
        ([" {:process 1, :type :okay, :f :read, :value 1}]"], 6, "unknown :type :okay"),
        ([" {:type :ok, :f :read, :value 1}]"], 6, "no :process"),
        ([" {:process 1, :type :ok, :value 1}]"], 6, "no :f"),
        ([" {:process 2, :type :ok, :f :read, :value 1}]"], 6, "without an invocation"),
        ([" {:process 1, :type :invoke, :f :read, :value 1}]"], 6, "invoked at line 4 is in flight"),
        ([" {:process 1, :type :ok, :f :write, :value 1}]"], 6, "completes its 'read'"),
        ([" {:process 1, :type :ok, :f :read, :value}]"], 6, "Even number of terms required for map"),
        ([" {:process 1, :type :ok,", "  :f :read, :value 1 |}]"], 6, "Illegal character '|'"),
        ([" {:process 1, :type :ok, :f :read, :value 1}", " {:process 1 :type :ok]"], 7, "']' closes '{'"),
        ([" {:process 1, :type :ok, :f :read, :value 1}", " }]"], 7, "'}' closes '['"),
        ([" 42]"], 6, "expected an op map"),
        (["", " {:process 4, :type :invoke, :f :cas, :value 3}]"], 7, "cas needs a value [expected new]"),
        (
            [
                " {:process 1, :type :ok, :f :read, :value 1}",
                " {:process 4, :type :invoke, :f :cas, :value [1]}]",
            ],
            7,
            "cas",
        ),
        (
            [
                " {:process 1, :type :ok, :f :read, :value 1}",
                ' {:process 1, :type :invoke, :f :read, :value "]',
            ],
            7,
            "unterminated string",
        ),
    ],
)
def test_bad_knossos_vector(tmp_path, tail, line, what):
    err = error_of(write(tmp_path, "k.edn", "\n".join(KNOSSOS_BODY + tail)))
    assert err.line == line and what in err.what, err


def test_bad_edn_lines(tmp_path):
    good = "{:process 0, :type :invoke, :f :read, :value nil}\n"
    err = error_of(write(tmp_path, "h.edn", good + "\n{:process 0, :type :ok, :f :read, :value 1]\n"))
    assert err.line == 3 and "']' closes '{'" in err.what
    err = error_of(
        write(tmp_path, "h2.edn", good + "{:process 0, :type :ok, :f :read, :value 1, :index 2}\n")
    )
    assert err.line == 1 and "no :index while others have one" in err.what  # the op that lacks it


ETCD_OK = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\t3\n"


@pytest.mark.parametrize(
    ("tail", "line", "what"),
    [
        ("INFO  jepsen.util - 1\t:invoke\t:cas\t[3", 3, "bad value '[3'"),
        ("INFO  jepsen.util - 1\t:invoke", 3, "not a Jepsen log record"),
        ("garbage\n", 3, "not a Jepsen log record"),
        ("INFO  jepsen.util - 1\t:okay\t:read\tnil\n", 3, "unknown type ':okay'"),
        ("INFO  jepsen.util - x\t:ok\t:read\tnil\n", 3, "bad process 'x'"),
        ("INFO  jepsen.util - 1\t:invoke\t:cas\t3\n", 3, "cas needs a value [expected new], got 3"),
        ("INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]\nINFO  jepsen.util - 1\t:fail\t:cas\t[1]\n", 4, "cas"),
        ("INFO  jepsen.util - 1\t:invoke\t:delete\tnil\n", 3, "unknown :f :delete"),
        ("INFO  jepsen.util - 1\t:ok\t:write\t1\n", 3, "without an invocation"),
        (
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\n",
            4,
            "in flight",
        ),
    ],
)
def test_bad_etcd_log(tmp_path, tail, line, what):
    err = error_of(write(tmp_path, "e.log", ETCD_OK + tail), format="porcupine-etcd")
    assert err.line == line and what in err.what, err


@pytest.mark.parametrize(
    ("tail", "line", "what"),
    [
        ("{:process 1, :type :invoke, :f :get, :value nil}\n", 2, "no :key"),
        ('{:process 1, :type :invoke, :f :get, :key "k", :val', 2, "file ends inside"),
        ('{:process 1, :type :invoke, :f :get, :key "k", :value nil}\n{:process 1, :type :ok}\n', 3, "no :f"),
    ],
)
def test_bad_kv_file(tmp_path, tail, line, what):
    head = '{:process 0, :type :invoke, :f :get, :key "k", :value nil}\n'
    err = error_of(write(tmp_path, "kv.txt", head + tail), format="porcupine-kv")
    assert err.line == line and what in err.what, err


def test_history_error_message_names_file_and_line(tmp_path):
    err = error_of(write(tmp_path, "h.jsonl", JSONL_OK % (0, "invoke", 0) + "{]\n"))
    assert re.search(r"h\.jsonl:2: not valid JSON", str(err))
    assert isinstance(read_history(write(tmp_path, "ok.jsonl", JSONL_OK % (0, "invoke", 0))), History)
