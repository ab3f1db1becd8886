"""The linearizability checker on small hand-written histories, and on the external corpus."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import pytest

from checker import check, check_operations
from checker.linearizable import check_partition
from checker.model import Operation
from checker.models import MODELS, get_model
from checker.prepare import operations
from checker.result import UNKNOWN
from histories.format import Op

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def hist(*rows: tuple) -> list[Op]:
    """Records from ``(process, type, f, value[, time])`` rows, indexed in order."""
    return [
        Op(i, row[1], row[0], row[2], row[3], row[4] if len(row) > 4 else 0) for i, row in enumerate(rows)
    ]


def verdict(rows: list[Op], model: str = "cas-register", initial: Any = None) -> bool | str:
    return check(rows, get_model(model, initial), shrink=False).valid


# -- prepare ---------------------------------------------------------------------------


def test_prepare_pairs_drops_fail_and_nemesis_and_keeps_unknown() -> None:
    ops = operations(
        hist(
            (0, "invoke", "write", 1),
            ("nemesis", "info", "start", None),
            (1, "invoke", "write", 2),
            (0, "ok", "write", 1),
            (1, "fail", "write", 2),
            (2, "invoke", "cas", [1, 3]),
            (2, "info", "cas", [1, 3]),
            (3, "invoke", "read", None),
        )
    )
    assert [(o.id, o.f, o.input, o.output, o.call, o.ret) for o in ops] == [
        (0, "write", 1, 1, 0, 3),
        (1, "cas", [1, 3], None, 5, None),  # info: unknown outcome
        (2, "read", None, None, 7, None),  # still open at the end
    ]
    assert (
        ops[0].call_index == 0 and ops[0].ret_index == 3 and ops[1].ret_index == 6 and ops[2].ret_index == -1
    )


def test_prepare_uses_times_when_present_and_monotone() -> None:
    rows = hist((0, "invoke", "write", 1, 100), (0, "ok", "write", 1, 250), (1, "invoke", "read", None, 250))
    assert [(o.call, o.ret) for o in operations(rows)] == [(100, 250), (250, None)]
    backwards = hist((0, "invoke", "write", 1, 300), (0, "ok", "write", 1, 200))
    assert [(o.call, o.ret) for o in operations(backwards)] == [(0, 1)]  # record order wins


# -- register and cas-register ---------------------------------------------------------


def test_sequential_history_is_linearizable() -> None:
    rows = hist(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
    )
    result = check(rows, get_model("register"))
    assert result.valid is True and result.linearizations == [[0, 1]] and result.failure is None


def test_read_of_initial_value_after_a_completed_write_is_not_linearizable() -> None:
    rows = hist(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", None),
    )
    result = check(rows, get_model("register"))
    assert result.valid is False
    failure = result.failure
    assert failure is not None and failure.longest == [0] and failure.state == "1"
    assert [(s.op, s.expected, s.observed) for s in failure.stuck] == [(1, "1", "nil")]
    assert failure.minimal == [0, 1]


def test_concurrent_writes_with_reads_in_between() -> None:
    # Writes of 1 and 2 overlap; reads inside the overlap may see either, in some order.
    base = [
        (0, "invoke", "write", 1),
        (1, "invoke", "write", 2),
        (2, "invoke", "read", None),
        (2, "ok", "read", 2),
        (2, "invoke", "read", None),
        (2, "ok", "read", 1),
        (0, "ok", "write", 1),
        (1, "ok", "write", 2),
    ]
    assert verdict(hist(*base), "register") is True
    # ...but once both reads saw 2 then 1, a third read after both writes cannot see 2.
    assert verdict(hist(*base, (3, "invoke", "read", None), (3, "ok", "read", 2)), "register") is False
    assert verdict(hist(*base, (3, "invoke", "read", None), (3, "ok", "read", 1)), "register") is True


def test_read_concurrent_with_write_may_see_old_or_new() -> None:
    for seen in (None, 1):
        rows = hist(
            (0, "invoke", "write", 1),
            (1, "invoke", "read", None),
            (1, "ok", "read", seen),
            (0, "ok", "write", 1),
        )
        assert verdict(rows, "register") is True
    rows = hist(
        (0, "invoke", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", 7), (0, "ok", "write", 1)
    )
    assert verdict(rows, "register") is False


def test_failed_cas_is_an_observation_and_fail_means_it_did_not_happen() -> None:
    write = [(0, "invoke", "write", 1), (0, "ok", "write", 1)]
    # cas(1, 2) answered "compare failed" right after write(1) completed: impossible.
    observed = hist(*write, (1, "invoke", "cas", [1, 2]), (1, "ok", "cas", [1, 2, False]))
    assert verdict(observed) is False
    # cas(2, 3) failing is what the register (holding 1) says.
    assert verdict(hist(*write, (1, "invoke", "cas", [2, 3]), (1, "ok", "cas", [2, 3, False]))) is True
    # A `fail` completion: the cas did not take place, whatever it would have done.
    failed = [*write, (1, "invoke", "cas", [1, 2]), (1, "fail", "cas", [1, 2])]
    assert verdict(hist(*failed, (2, "invoke", "read", None), (2, "ok", "read", 1))) is True
    assert verdict(hist(*failed, (2, "invoke", "read", None), (2, "ok", "read", 2))) is False
    # A successful cas makes a later read of the new value fine, and of the old one not.
    swapped = [
        *write,
        (1, "invoke", "cas", [1, 2]),
        (1, "ok", "cas", [1, 2, True]),
        (2, "invoke", "read", None),
    ]
    assert verdict(hist(*swapped, (2, "ok", "read", 2))) is True
    assert verdict(hist(*swapped, (2, "ok", "read", 1))) is False


def test_cas_register_initial_value() -> None:
    rows = hist((0, "invoke", "cas", [0, 5]), (0, "ok", "cas", [0, 5, True]))
    assert verdict(rows, initial=0) is True
    assert verdict(rows) is False  # starts at nil


def test_info_write_may_have_happened_or_not() -> None:
    info = [(0, "invoke", "write", 1), (0, "info", "write", 1)]
    for seen in (None, 1):
        assert verdict(hist(*info, (1, "invoke", "read", None), (1, "ok", "read", seen)), "register") is True
    # But not both, in that order: once 1 was seen, it stays (nothing else was written).
    both = hist(
        *info,
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", None),
    )
    assert verdict(both, "register") is False
    # An info write may take effect long after its invocation, as late as it likes.
    late = hist(
        *info,
        (1, "invoke", "read", None),
        (1, "ok", "read", None),
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
    )
    assert verdict(late, "register") is True


def test_info_ops_may_take_effect_in_reverse_order_long_after_their_calls() -> None:
    # Only write(0) and then cas(0, 2), both info, both after the later of them was
    # invoked, explain the read of 2. (A search that wrongly lets a configuration with an
    # unknown op used up stand for the one without it judges this not linearizable.)
    rows = hist(
        (0, "invoke", "cas", [1, 0]),
        (0, "ok", "cas", [1, 0, False]),
        (0, "invoke", "cas", [0, 2]),
        (0, "info", "cas", [0, 2]),
        (1, "invoke", "cas", [1, 0]),
        (1, "ok", "cas", [1, 0, False]),
        (1, "invoke", "write", 0),
        (1, "info", "write", 0),
        (2, "invoke", "read", None),
        (2, "ok", "read", 2),
    )
    assert verdict(rows) is True
    assert verdict(rows[:8] + hist((2, "invoke", "read", None), (2, "ok", "read", 1))) is False


def test_info_op_cannot_take_effect_before_its_invocation() -> None:
    rows = hist(
        (1, "invoke", "read", None), (1, "ok", "read", 1), (0, "invoke", "write", 1), (0, "info", "write", 1)
    )
    assert verdict(rows, "register") is False


def test_open_operations_are_unknown_outcome() -> None:
    rows = hist((0, "invoke", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert verdict(rows, "register") is True
    rows = hist((0, "invoke", "cas", [None, 4]), (1, "invoke", "read", None), (1, "ok", "read", 4))
    assert verdict(rows) is True
    rows = hist((0, "invoke", "cas", [3, 4]), (1, "invoke", "read", None), (1, "ok", "read", 4))
    assert verdict(rows) is False  # the cas could never have swapped


def test_only_unknown_outcome_ops_is_linearizable() -> None:
    rows = hist((0, "invoke", "write", 1), (1, "invoke", "cas", [5, 6]), (1, "info", "cas", [5, 6]))
    result = check(rows, get_model("cas-register"))
    assert result.valid is True and result.linearizations == [[]]


def test_zero_duration_ops_and_equal_times_overlap() -> None:
    # Intervals are closed: an op that returns at the very time another is invoked overlaps it.
    rows = hist(
        (0, "invoke", "write", 1, 10),
        (0, "ok", "write", 1, 20),
        (1, "invoke", "read", None, 20),  # invoked when the write returned: concurrent
        (1, "ok", "read", None, 20),  # zero duration
    )
    assert verdict(rows, "register") is True
    later = hist(
        (0, "invoke", "write", 1, 10),
        (0, "ok", "write", 1, 20),
        (1, "invoke", "read", None, 21),
        (1, "ok", "read", None, 21),
    )
    assert verdict(later, "register") is False
    # Two zero-duration ops at distinct times are ordered.
    zero = hist(
        (0, "invoke", "write", 3, 5),
        (0, "ok", "write", 3, 5),
        (1, "invoke", "read", None, 6),
        (1, "ok", "read", 3, 6),
    )
    assert verdict(zero, "register") is True


def test_timeout_gives_unknown_with_a_reason() -> None:
    # 22 overlapping writes and a read of a value never written: every subset gets tried.
    # Each value is written twice, so reads do not name their writes and inference cannot help.
    rows = [(p, "invoke", "write", p % 11) for p in range(22)] + [
        (99, "invoke", "read", None),
        (99, "ok", "read", -1),
    ]
    rows += [(p, "ok", "write", p % 11) for p in range(22)]
    result = check(hist(*rows), get_model("register"), timeout=0.3)
    assert result.valid == UNKNOWN and "time limit" in result.reason and result.failure is None


def test_partitions_fail_independently_kv() -> None:
    rows = hist(
        (0, "invoke", "put", ["a", "1"]),
        (0, "ok", "put", ["a", "1"]),
        (1, "invoke", "append", ["b", "x"]),
        (1, "ok", "append", ["b", "x"]),
        (2, "invoke", "get", ["a", None]),
        (2, "ok", "get", ["a", "1"]),
        (2, "invoke", "get", ["b", None]),
        (2, "ok", "get", ["b", "xx"]),  # duplicated append
    )
    result = check(rows, get_model("kv"))
    assert result.valid is False and len(result.partition_ops) == 2
    assert result.failure is not None and result.partition_ops[result.failure.partition] == [1, 3]
    assert result.linearizations[0] == [0, 2]


def test_kv_keys_start_empty_and_append_concatenates() -> None:
    rows = hist(
        (0, "invoke", "get", ["k", None]),
        (0, "ok", "get", ["k", ""]),
        (0, "invoke", "append", ["k", "a"]),
        (0, "ok", "append", ["k", "a"]),
        (1, "invoke", "append", ["k", "b"]),
        (2, "invoke", "get", ["k", None]),
        (2, "ok", "get", ["k", "ab"]),
        (1, "ok", "append", ["k", "b"]),
    )
    assert verdict(rows, "kv") is True
    assert (
        verdict(rows[:-2] + hist((2, "ok", "get", ["k", "ba"]), (1, "ok", "append", ["k", "b"])), "kv")
        is False
    )


# -- injected bugs ---------------------------------------------------------------------


def test_catches_a_stale_read() -> None:
    rows = hist(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (0, "invoke", "write", 2),
        (0, "ok", "write", 2),
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
    )
    assert verdict(rows, "register") is False


def test_catches_a_lost_write() -> None:
    rows = hist(
        (0, "invoke", "put", ["k", "v"]),
        (0, "ok", "put", ["k", "v"]),
        (1, "invoke", "get", ["k", None]),
        (1, "ok", "get", ["k", ""]),
    )
    assert verdict(rows, "kv") is False


def test_catches_a_duplicated_append() -> None:
    rows = hist(
        (0, "invoke", "append", ["k", "x"]),
        (0, "ok", "append", ["k", "x"]),
        (1, "invoke", "get", ["k", None]),
        (1, "ok", "get", ["k", "xx"]),
    )
    assert verdict(rows, "kv") is False


# -- reports and shrinking ---------------------------------------------------------------


def _noisy_history(extra: int) -> list[Op]:
    """``extra`` harmless sequential ops around a stale read (the anomaly)."""
    rows: list[tuple] = []
    for k in range(extra):
        rows += [
            (k % 3, "invoke", "write", k),
            (k % 3, "ok", "write", k),
            (5, "invoke", "read", None),
            (5, "ok", "read", k),
        ]
    rows += [
        (0, "invoke", "write", "x"),
        (0, "ok", "write", "x"),
        (1, "invoke", "read", None),
        (1, "ok", "read", extra - 1),
    ]
    for k in range(extra):
        rows += [(2, "invoke", "write", k), (2, "ok", "write", k)]
    return hist(*rows)


def test_shrinking_gives_a_small_non_linearizable_sub_history() -> None:
    rows = _noisy_history(40)
    result = check(rows, get_model("register"))
    failure = result.failure
    assert result.valid is False and failure is not None and failure.minimal is not None
    assert len(failure.minimal) <= 3 < len(result.ops) // 10
    by_id = {op.id: op for op in result.ops}
    sub = [by_id[i] for i in failure.minimal]
    assert check_partition(get_model("register"), sub).valid is False
    assert failure.minimal_stuck and failure.minimal_longest is not None
    assert result.to_json()["failure"]["minimal_history"]
    # The stale read observed extra-1: the write of that value must stay, or the anomaly
    # would be "a read of a value nobody wrote", which is not this history's bug.
    kept = {(op.f, op.input if op.f == "write" else op.output) for op in sub}
    assert ("write", 39) in kept and ("write", "x") in kept and ("read", 39) in kept


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
def test_every_op_of_a_minimal_anomaly_is_explainable_on_its_own() -> None:
    from checker.shrink import explainable
    from histories import read_history

    with open(CORPUS / "porcupine-etcd" / "expected.csv") as f:
        failing = [row["file"] for row in csv.DictReader(f) if row["expected"] == "not-linearizable"]
    for name in failing[:10]:
        history = read_history(CORPUS / "porcupine-etcd" / name)
        model = get_model("cas-register", None)
        result = check(history.ops, model)
        assert result.valid is False and result.failure and result.failure.minimal
        by_id = {op.id: op for op in result.ops}
        sub = [by_id[i] for i in result.failure.minimal]
        assert check_partition(model, sub).valid is False
        assert explainable(model, sub, time.perf_counter() + 10)
        # ...and the explainability test does reject a bare read of a value nobody wrote.
        read = next(op for op in sub if op.f == "read" and op.output is not None)
        assert not explainable(model, [read], time.perf_counter() + 10)


def test_failure_reports_longest_prefix_states_and_stuck_candidates() -> None:
    rows = hist(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "cas", [1, 2]),
        (1, "ok", "cas", [1, 2, True]),
        (2, "invoke", "cas", [1, 3]),
        (2, "ok", "cas", [1, 3, True]),
    )
    result = check(rows, "cas-register")
    failure = result.failure
    assert failure is not None
    assert failure.longest == [0, 1] and failure.states == ["1", "2"] and failure.state == "2"
    assert [(s.op, s.description, s.observed) for s in failure.stuck] == [(2, "cas(1, 3) -> ok", "ok")]
    assert "failed" in failure.stuck[0].expected


def test_check_operations_accepts_prepared_ops_and_model_names() -> None:
    ops = [Operation(0, 0, "write", 4, 4, 0, 1), Operation(1, 1, "read", None, 4, 2, 3)]
    result = check_operations(ops, "register")
    assert result.valid is True and result.model == "register" and result.elapsed >= 0


def test_get_model_knows_every_model_and_rejects_others() -> None:
    assert set(MODELS) == {
        "register",
        "cas-register",
        "kv",
        "chat",
        "independent-register",
        "independent-cas-register",
    }
    for name in MODELS:
        assert get_model(name).name == name
    with pytest.raises(ValueError, match="unknown model"):
        get_model("queue")


# -- the external corpus -----------------------------------------------------------------


def _corpus_cases() -> list[tuple[str, bool]]:
    if not CORPUS.is_dir():
        return []
    cases = []
    for table in sorted(CORPUS.glob("*/expected.csv")):
        with table.open(newline="") as f:
            cases += [
                (f"{table.parent.name}/{r['file']}", r["expected"] == "linearizable")
                for r in csv.DictReader(f)
            ]
    for kind in ("good", "bad"):
        cases += [
            (str(p.relative_to(CORPUS)), kind == "good")
            for p in sorted(CORPUS.glob(f"knossos-cas-register/{kind}/*"))
        ]
    return cases


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"external corpus not found at {CORPUS}")
@pytest.mark.parametrize(("name", "linearizable"), _corpus_cases())
def test_corpus_verdicts(name: str, linearizable: bool) -> None:
    from histories import read_history

    history = read_history(CORPUS / name)
    result = check(history.ops, get_model(history.model_hint, history.initial_hint), shrink=not linearizable)
    assert result.valid is linearizable
    if not linearizable:
        failure = result.failure
        assert failure is not None and failure.minimal and len(failure.minimal) <= len(result.ops)


def test_every_model_has_every_hook_of_the_protocol():
    from checker.model import Model
    from checker.models import MODELS

    op = Operation(0, 1, "read", None, 1, 0, 1)
    for name, cls in MODELS.items():
        model = cls()
        assert Model in cls.__mro__ and model.name == name
        ok, after = model.step_fn(op)(model.init())
        assert (ok, after) == model.step(model.init(), op)
        assert model.partition([op]) and isinstance(model.read_only(op), bool)


def test_protocol_defaults_serve_a_model_without_the_optional_hooks():
    from checker.model import Model

    class Counter(Model):
        name, OPERATIONS = "counter", {}

        def init(self):
            return 0

        def step(self, state, op):
            return True, state + op.input

    counter, op = Counter(), Operation(0, 1, "add", 2, None, 0, 1)
    assert counter.step_fn(op)(3) == (True, 5)
    assert counter.read_only(op) is False and counter.partition([op]) == [[op]]
    assert counter.initial is None
