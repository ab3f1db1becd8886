"""The verdict table: one code, word and rank per verdict, and the merge rules that read it."""

from __future__ import annotations

from harness import verdicts
from harness.store import RunSummary


def test_each_verdict_has_its_own_code_and_word_and_the_rules_follow_the_table() -> None:
    codes = [v.code for v in verdicts.TABLE]
    words = [v.word for v in verdicts.TABLE]
    assert len(set(codes)) == len(codes) == len(set(words))
    assert list(verdicts.CHECKS) == ["linearizable", "convergence", "health", "recovery"]
    for rank, v in enumerate(verdicts.TABLE):
        assert verdicts.verdict(v.code) == v.word and verdicts.describe(v.code) == v.description
        worse = [w.code for w in verdicts.TABLE[: rank + 1]]
        assert verdicts.worst([verdicts.EXIT_VALID, *reversed(worse)]) == worse[0]
    every_failed = {name: {"valid": False} for name in verdicts.CHECKS}
    assert verdicts.compose(every_failed) == (False, verdicts.EXIT_INVALID)
    assert verdicts.compose({"linearizable": {"valid": True}, "recovery": {"valid": False}}) == (
        False,
        verdicts.EXIT_NOT_RECOVERED,
    )


def test_a_stored_run_is_named_by_the_table() -> None:
    def word(valid, code):
        summary = RunSummary(None, "t", None, valid, None, None, None, None, [], exit_code=code)
        return summary.verdict

    assert word(True, 0) == "valid"
    assert word(False, verdicts.EXIT_DIVERGED) == "diverged"
    assert word(False, None) == word(False, verdicts.EXIT_INVALID) == "invalid"
    assert word("incomplete", None) == "incomplete"
