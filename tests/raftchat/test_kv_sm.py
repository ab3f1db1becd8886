"""The key-value state machine."""

from __future__ import annotations

import random

import pytest

from raftchat.kv import KVMachine
from raftchat.statemachine import InvalidRequest, Result, validate


def run(machine: KVMachine, op: str, **args: object) -> Result:
    return machine.apply(validate(machine, {"op": op, **args}))


def test_identity() -> None:
    machine = KVMachine()
    assert machine.name == "kv"
    assert {n for n, s in machine.ops.items() if s.read_only} == {"get"}


def test_get_put() -> None:
    kv = KVMachine()
    assert run(kv, "get", key="a") == Result("ok", None)
    assert run(kv, "put", key="a", value="x") == Result("ok")
    assert run(kv, "get", key="a") == Result("ok", "x")
    assert run(kv, "put", key="a", value=7) == Result("ok")
    assert run(kv, "get", key="a") == Result("ok", 7)
    assert run(kv, "put", key="a", value=None) == Result("ok")
    assert run(kv, "get", key="a") == Result("ok", None)
    assert kv.snapshot() == KVMachine().snapshot()  # putting None removes the key


def test_append() -> None:
    kv = KVMachine()
    assert run(kv, "append", key="l", value="1") == Result("ok", "1")
    assert run(kv, "append", key="l", value=" 2") == Result("ok", "1 2")
    assert run(kv, "get", key="l").value == "1 2"
    run(kv, "put", key="n", value=4)
    assert run(kv, "append", key="n", value="2") == Result("ok", "42")


def test_cas() -> None:
    kv = KVMachine()
    assert run(kv, "cas", key="k", expected=None, new=1) == Result("ok")
    assert run(kv, "get", key="k").value == 1
    mismatch = run(kv, "cas", key="k", expected=0, new=2)
    assert (mismatch.status, mismatch.value) == ("cas_mismatch", 1)
    assert "1" in mismatch.error
    assert run(kv, "get", key="k").value == 1
    mismatch = run(kv, "cas", key="k", expected="1", new=2)  # a string is not the integer
    assert (mismatch.status, mismatch.value) == ("cas_mismatch", 1)
    assert run(kv, "cas", key="k", expected=1, new="two") == Result("ok")
    assert run(kv, "cas", key="k", expected="two", new=None) == Result("ok")
    assert run(kv, "get", key="k").value is None
    mismatch = run(kv, "cas", key="k", expected="two", new="three")
    assert (mismatch.status, mismatch.value) == ("cas_mismatch", None)


def test_validation() -> None:
    kv = KVMachine()
    with pytest.raises(InvalidRequest):
        validate(kv, {"op": "put", "key": "a", "value": True})
    with pytest.raises(InvalidRequest):
        validate(kv, {"op": "put", "key": "a", "value": 1.5})
    with pytest.raises(InvalidRequest):
        validate(kv, {"op": "append", "key": "a", "value": 3})


def test_determinism_and_round_trip() -> None:
    rng = random.Random(7)
    ops = []
    for _ in range(500):
        key = rng.choice("abcd")
        value = rng.choice([None, 0, 1, "x", "y"])
        kind = rng.choice(["get", "put", "append", "cas"])
        if kind == "get":
            ops.append({"op": "get", "key": key})
        elif kind == "put":
            ops.append({"op": "put", "key": key, "value": value})
        elif kind == "append":
            ops.append({"op": "append", "key": key, "value": rng.choice("xyz")})
        else:
            ops.append({"op": "cas", "key": key, "expected": value, "new": rng.choice([None, 1, "x"])})
    one, two = KVMachine(), KVMachine()
    assert [run(one, **op) for op in ops] == [run(two, **op) for op in ops]
    assert one.snapshot() == two.snapshot()
    copy = KVMachine()
    copy.restore(one.snapshot())
    assert copy.snapshot() == one.snapshot()
    for key in "abcd":
        assert run(copy, "get", key=key) == run(one, "get", key=key)
    with pytest.raises(ValueError, match="corrupt kv snapshot"):
        copy.restore(b"nonsense")
