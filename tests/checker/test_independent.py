"""Independent keys: register histories whose values are Jepsen's ``[key value]`` tuples.

Read as one register such a history is judged by the wrong rules; it must be recognised,
split by key and judged per key, with the verdict the per-key histories have on their own.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from oracle import linearizable as oracle_linearizable
from support import harness_in_process

from checker import check
from histories.edn import format_edn_op
from histories.format import Op
from histories.read import read_history
from histories.synth import generate


def keyed(ops: list[Op], key: object) -> list[Op]:
    """``ops`` with every value wrapped as ``[key, value]`` (a read's invocation as ``[key, None]``)."""
    return [
        Op(op.index, op.type, op.process, op.f, [key, op.value], op.time, op.node, op.error) for op in ops
    ]


def merged(per_key: dict[object, list[Op]]) -> list[Op]:
    """One history of the keyed histories, in time order, each key on processes of its own."""
    ops = []
    for n, (key, history) in enumerate(per_key.items()):
        for op in keyed(history, key):
            process = op.process if op.process == "nemesis" else n * 1000 + op.process
            ops.append(Op(0, op.type, process, op.f, op.value, op.time, op.node, op.error))
    ops.sort(key=lambda op: op.time)
    return [
        Op(i, op.type, op.process, op.f, op.value, op.time, op.node, op.error) for i, op in enumerate(ops)
    ]


@pytest.mark.parametrize("seed", range(40))
def test_keyed_verdict_is_the_verdict_of_every_key(seed: int) -> None:
    rng = random.Random(seed)
    per_key: dict[object, list[Op]] = {}
    for k in range(rng.randint(2, 4)):
        anomaly = "stale-read" if rng.random() < 0.3 else None
        per_key[f"k{k}"] = generate(
            "cas-register",
            clients=3,
            ops=rng.randint(6, 9) if anomaly else rng.randint(3, 7),
            info_rate=0.15,
            unique_writes=rng.random() < 0.5,
            anomaly=anomaly,
            seed=rng.getrandbits(32),
        )
    expected = all(oracle_linearizable(h, "cas-register") for h in per_key.values())
    result = check(merged(per_key), "independent-cas-register")
    assert result.valid is expected
    assert len(result.partition_ops) == len(per_key)
    if not expected:
        failing = result.failure.partition
        stuck = result.failure.stuck[0].description
        # the failure names its key, and the key is one whose own history is not linearizable
        key = stuck.split(":", 1)[0].strip("'")
        assert not oracle_linearizable(per_key[key], "cas-register")
        assert len(result.partition_ops[failing]) == len(
            [op for op in per_key[key] if op.type == "invoke" and op.process != "nemesis"]
        ) - sum(1 for op in per_key[key] if op.type == "fail")


def test_valid_independent_jepsen_history_is_not_a_stale_read(tmp_path: Path) -> None:
    """Read as one register, the read of [x 1] after the write of [y 2] looked stale."""
    path = tmp_path / "history.edn"
    path.write_text(
        "{:type :invoke, :f :write, :value [:x 1], :process 0}\n"
        "{:type :ok, :f :write, :value [:x 1], :process 0}\n"
        "{:type :invoke, :f :write, :value [:y 2], :process 1}\n"
        "{:type :ok, :f :write, :value [:y 2], :process 1}\n"
        "{:type :invoke, :f :read, :value [:x nil], :process 1}\n"
        "{:type :ok, :f :read, :value [:x 1], :process 1}\n"
        "{:type :invoke, :f :cas, :value [:y [2 3]], :process 0}\n"
        "{:type :ok, :f :cas, :value [:y [2 3]], :process 0}\n"
        "{:type :invoke, :f :read, :value [:y nil], :process 0}\n"
        "{:type :ok, :f :read, :value [:y 3], :process 0}\n"
    )
    history = read_history(path)
    assert history.model_hint == "independent-cas-register"
    assert check(history.ops, history.model_hint).valid is True
    # the same file with one stale read of y
    path.write_text(path.read_text().replace("[:y 3]", "[:y 2]"))
    history = read_history(path)
    result = check(history.ops, history.model_hint)
    assert result.valid is False
    assert [s.description for s in result.failure.minimal_stuck] == ["'y': read() -> 2"]


def test_independent_jepsen_log_keeps_etcds_failed_compare(tmp_path: Path) -> None:
    """etcd's ``fail cas`` is a compare that failed: inside a tuple it still constrains."""
    lines = [
        "0\t:invoke\t:write\t[3 1]",
        "0\t:ok\t:write\t[3 1]",
        "1\t:invoke\t:cas\t[3 [1 2]]",
        "1\t:fail\t:cas\t[3 [1 2]]",  # says key 3 did not hold 1: impossible after the write
        "2\t:invoke\t:read\t[4 nil]",
        "2\t:ok\t:read\t[4 nil]",
    ]
    path = tmp_path / "jepsen.log"
    path.write_text("".join(f"INFO  jepsen.util - {line}\n" for line in lines))
    history = read_history(path)
    assert history.model_hint == "independent-cas-register"
    result = check(history.ops, history.model_hint)
    assert result.valid is False
    assert result.failure.stuck[0].description.startswith("3: cas(1, 2) -> failed")


def test_a_single_register_of_pairs_is_not_taken_for_independent_keys(tmp_path: Path) -> None:
    """Values may be pairs on one register too; its reads are invoked with nil."""
    path = tmp_path / "history.edn"
    path.write_text(
        "{:type :invoke, :f :write, :value [1 2], :process 0}\n"
        "{:type :ok, :f :write, :value [1 2], :process 0}\n"
        "{:type :invoke, :f :read, :value nil, :process 1}\n"
        "{:type :ok, :f :read, :value [1 2], :process 1}\n"
    )
    history = read_history(path)
    assert history.model_hint == "cas-register"
    assert check(history.ops, "cas-register").valid is True


def test_keyed_history_checked_as_one_register_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.edn"
    ops = merged({"a": generate("cas-register", clients=2, ops=4, seed=1)})
    path.write_text("".join(format_edn_op(op) + "\n" for op in ops if op.f != "cas"))
    done = harness_in_process("check", path, "--model", "cas-register")
    assert done.returncode == 3, done.stdout + done.stderr
    fits = done.stderr.split("models that fit this history: ", 1)[1]
    assert "independent-cas-register" in fits and "independent-register" in fits
