"""Partial linearizations (checker.partial): for each operation, the longest linearizable
prefix found that includes it, as Porcupine's visualization shows them on hover."""

from __future__ import annotations

from test_html_view import register_history

from checker import check, get_model
from checker.model import Operation
from checker.partial import partial_linearizations


def _is_linearization_prefix(model_name: str, order: list[Operation], group: list[Operation]) -> bool:
    """The model accepts ``order`` and it respects real time: nothing placed before an op
    that returned before it was called, and nothing left out that returned before a placed op's call."""
    model = get_model(model_name)
    state = model.init()
    for op in order:
        possible, state = model.step(state, op)
        if not possible:
            return False
    placed = {op.id for op in order}
    for k, op in enumerate(order):
        if any(later.ret is not None and later.ret < op.call for later in order[k + 1 :]):
            return False
        if any(o.id not in placed and o.ret is not None and o.ret < op.call for o in group):
            return False
    return True


def test_every_op_of_a_failing_group_gets_its_longest_partial_linearization() -> None:
    result = check(register_history(200, seed=7, stale_read=True), "cas-register", shrink=False)
    assert result.valid is False and result.failure is not None
    by_id = {op.id: op for op in result.ops}
    group = [by_id[i] for i in result.partition_ops[result.failure.partition]]
    partials = partial_linearizations(get_model("cas-register"), group)
    assert partials.complete
    longest = len(result.failure.longest)
    for op_id in result.failure.longest:  # each is in the checker's own longest prefix at least
        order = partials.order(op_id)
        assert op_id in order and len(order) >= longest
        assert _is_linearization_prefix("cas-register", [by_id[i] for i in order], group)
    for stuck in result.failure.stuck:  # the stale read fits after no order of what came before it
        assert stuck.op not in partials.best
    assert set(partials.best) <= {op.id for op in group}


def test_a_linearizable_group_puts_every_op_in_one_whole_linearization() -> None:
    ops = register_history(60, seed=3, stale_read=False)
    result = check(ops, "cas-register")
    assert result.valid is True
    partials = partial_linearizations(get_model("cas-register"), result.ops)
    known = [op for op in result.ops if op.ret is not None]
    assert all(len(partials.order(op.id)) >= len(known) for op in known)


def test_the_budget_cuts_the_search_short_and_says_so() -> None:
    result = check(register_history(400, seed=7, stale_read=True), "cas-register", shrink=False)
    group = [op for op in result.ops if op.id in set(result.partition_ops[result.failure.partition])]
    partials = partial_linearizations(get_model("cas-register"), group, max_steps=5)
    assert partials.complete is False
    assert all(len(partials.order(i)) <= 5 for i in partials.best)
