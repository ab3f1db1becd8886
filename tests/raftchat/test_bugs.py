"""The bug registry (raftchat/bugs.py) is the only home of the bug switches' names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness import plan
from harness.selftest import BUG_PLANS, COMMON, HIDDEN_IN_REAL_RUNS
from raftchat import bugs

ROOT = Path(__file__).resolve().parents[2]
LAYER_MODULES = {
    "node": "raftchat/node.py",
    "raft": "raftchat/raft/core.py",
    "sessions": "raftchat/sessions.py",
    "storage": "raftchat/storage.py",
}
CONSTANTS = {value: name for name, value in vars(bugs).items() if name.isupper() and isinstance(value, str)}


def test_every_bug_has_a_constant_and_its_layers_test_it() -> None:
    assert set(CONSTANTS) == bugs.ALL_BUGS
    for bug in bugs.BUGS.values():
        assert bug.layers and bug.description and bug.selftest, bug.name
        for layer in bug.layers:
            source = (ROOT / LAYER_MODULES[layer]).read_text()
            assert CONSTANTS[bug.name] in source, f"{LAYER_MODULES[layer]} never tests {bug.name}"
    for layer in LAYER_MODULES:
        assert bugs.in_layer(layer), layer


def test_no_module_spells_a_bug_name_itself() -> None:
    """A bug's name written as a literal outside the registry would be a second home."""
    for path in (ROOT / "raftchat").rglob("*.py"):
        if path.name == "bugs.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in bugs.ALL_BUGS:
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                pytest.fail(f"{where} spells {node.value!r}; use raftchat.bugs")


def test_the_selftest_plans_are_the_registry_and_valid_plans() -> None:
    assert set(BUG_PLANS) == bugs.ALL_BUGS
    assert {bugs.COMMIT_PREVIOUS_TERM} == HIDDEN_IN_REAL_RUNS
    for name, overrides in BUG_PLANS.items():
        checked = plan.validate({**COMMON, **overrides, "bug": name})
        assert checked.bug == name and checked.nemesis == overrides["nemesis"]
