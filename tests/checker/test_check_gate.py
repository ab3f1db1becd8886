"""A model that does not fit a history is refused (exit 3), never a verdict; and a history
the harness wrote names its own model, so ``harness check FILE`` needs no ``--model``.

The histories are real: short runs of each workload against a 3-node cluster, and the
corpus formats (Knossos EDN, Porcupine's etcd and kv logs) when the corpus is beside the
checkout.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support import harness_in_process

from checker.fit import explain, fitting_models
from checker.models import MODELS
from histories import read_history

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
WORKLOADS = {"chat": "chat", "register": "cas-register", "kv": "kv"}  # workload -> its model
CORPUS_FILES = {  # a file of each corpus format -> the model it was recorded for
    "knossos-cas-register/bad/cas-failure.edn": "cas-register",
    "porcupine-etcd/etcd_000.log": "cas-register",
    "porcupine-kv/c01-ok.txt": "kv",
}


def harness(*args: object) -> subprocess.CompletedProcess[str]:
    """``harness check`` through its ``main``, in this process (see support.harness_in_process)."""
    return harness_in_process(*args, cwd=ROOT)


@pytest.fixture(scope="module")
def runs(short_runs: dict[str, Path]) -> dict[str, Path]:
    """One short stored run per workload, without faults (conftest's, shared): workload -> run directory."""
    assert set(short_runs) == set(WORKLOADS)
    return short_runs


def _histories(runs: dict[str, Path]) -> list[tuple[str, Path, str]]:
    """(name, file, the model it fits) for every history at hand."""
    found = [(f"{w} run", runs[w] / "history.jsonl", model) for w, model in WORKLOADS.items()]
    found += [(name, CORPUS / name, model) for name, model in CORPUS_FILES.items() if CORPUS.is_dir()]
    return found


@pytest.mark.cluster
def test_every_model_refuses_every_other_workloads_history(runs: dict[str, Path]) -> None:
    checked = 0
    for name, path, own in _histories(runs):
        ops = read_history(path).ops
        assert own in fitting_models(ops, MODELS), name
        for model in MODELS:
            if model in fitting_models(ops, MODELS):
                continue
            run = harness("check", "--model", model, path)
            assert run.returncode == 3, f"{name} with --model {model}: {run.stdout}{run.stderr}"
            assert run.stdout == "", f"a verdict was printed for {name} with {model}"
            message = run.stderr
            assert f"does not fit model {model}" in message, message
            assert own in message.split("models that fit this history:")[1], message
            found = explain(ops, model, MODELS)
            # operations the model does not know are named; so are values of the wrong shape
            # (a keyed model's [key value] against one register's values)
            assert found.unknown or found.shapes, message
            assert all(f in message for f in found.unknown), message
            assert found.unknown or "cannot read" in message, message
            checked += 1
    assert checked >= 3 * 3  # each run's history against at least three other models


@pytest.mark.cluster
def test_register_history_under_the_register_model_names_cas(runs: dict[str, Path]) -> None:
    """The issue's case: a register run checked as ``register`` (no cas) nor as ``chat``."""
    history = runs["register"] / "history.jsonl"
    for model in ("register", "chat"):
        run = harness("check", "--model", model, runs["register"])
        assert run.returncode == 3, run.stdout + run.stderr
        assert "cas" in run.stderr and "models that fit this history: cas-register" in run.stderr
    assert harness("check", "--model", "cas-register", history).returncode == 0


@pytest.mark.cluster
def test_a_harness_history_names_its_model(runs: dict[str, Path]) -> None:
    for workload, model in WORKLOADS.items():
        path = runs[workload] / "history.jsonl"
        first = json.loads(path.read_text(encoding="utf-8").split("\n", 1)[0])
        assert first["meta"] == "history" and first["workload"] == workload and first["model"] == model
        assert first["system"] == "raftchat" and first["harness"]
        run = harness("check", "--json", path)  # the file alone, no --model, no plan beside it
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["model"] == model


def test_values_of_the_wrong_shape_do_not_fit(tmp_path: Path) -> None:
    """Known operation names are not enough: a kv ``put`` needs a key and a value."""
    path = tmp_path / "h.jsonl"
    records = [
        {"index": 0, "type": "invoke", "process": 0, "f": "put", "value": 5, "time": 1},
        {"index": 1, "type": "ok", "process": 0, "f": "put", "value": 5, "time": 2},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    run = harness("check", "--model", "kv", path)
    assert run.returncode == 3
    assert "record 0: put input 5 is not [any value, a string]" not in run.stderr  # put takes any value
    assert "record 0: put input 5 is not [any value, any value]" in run.stderr
    assert "no model fits this history" in run.stderr


def _crashed_history(path: Path) -> Path:
    """A register history whose writer died mid-record, with the metadata a harness writes."""
    records = [
        {"meta": "history", "workload": "register", "model": "cas-register", "system": "raftchat"},
        {"index": 0, "type": "invoke", "process": 0, "f": "write", "value": 1, "time": 10},
        {"index": 1, "type": "ok", "process": 0, "f": "write", "value": 1, "time": 20},
        {"index": 2, "type": "invoke", "process": 1, "f": "read", "value": None, "time": 30},
        {"index": 3, "type": "ok", "process": 1, "f": "read", "value": 1, "time": 40},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"index":4,"type":"inv')
    return path


def test_a_truncated_tail_is_refused_unless_allowed(tmp_path: Path) -> None:
    path = _crashed_history(tmp_path / "history.jsonl")
    refused = harness("check", path)
    assert refused.returncode == 3 and refused.stdout == ""
    assert f"{path}:6: truncated last line" in refused.stderr and "--allow-truncated-tail" in refused.stderr
    allowed = harness("check", "--allow-truncated-tail", path)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.startswith("LINEARIZABLE") and "model cas-register" in allowed.stdout
    assert "skipped a truncated last line" in allowed.stderr


def test_a_stored_run_skips_a_truncated_tail_by_itself_and_says_so(tmp_path: Path) -> None:
    run_dir = tmp_path / "store" / "raftchat" / "20240101T000000"
    run_dir.mkdir(parents=True)
    _crashed_history(run_dir / "history.jsonl")
    run = harness("check", run_dir)
    assert run.returncode == 0, run.stderr
    assert "skipped a truncated last line" in run.stderr
    assert "a stored run's history is read with --allow-truncated-tail" in run.stderr


def test_model_still_overrides_the_metadata(tmp_path: Path) -> None:
    path = _crashed_history(tmp_path / "history.jsonl")
    run = harness("check", "--allow-truncated-tail", "--json", "--model", "register", path)
    assert run.returncode == 0 and json.loads(run.stdout)["model"] == "register"
    assert harness("check", "--allow-truncated-tail", "--model", "kv", path).returncode == 3
