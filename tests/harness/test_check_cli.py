"""`harness check` as a person or a CI script runs it: exit codes, text, JSON, HTML.

The corpus sample checks the command's plumbing end to end on real histories; the full
sweep of every corpus file against its verdict belongs to the checker's own tests.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
from support import harness_in_process, run_harness

from histories import Op, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
NO_CORPUS = f"the history corpus is not at {CORPUS} (shared/corpus beside the repository)"
EXIT = {"linearizable": 0, "not-linearizable": 1}


def harness(*args: object) -> subprocess.CompletedProcess[str]:
    """The command through its ``main``, in this process (test_the_command_runs_as_a_process
    runs it as a process)."""
    return harness_in_process(*args, cwd=ROOT)


def corpus_sample() -> list[object]:
    """A few files of each folder, both verdicts, chosen in a fixed order."""
    if not CORPUS.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=NO_CORPUS))]
    sample: list[object] = []
    for folder in ("porcupine-etcd", "porcupine-kv"):
        with open(CORPUS / folder / "expected.csv", newline="") as f:
            rows = sorted((row["file"], row["expected"]) for row in csv.DictReader(f))
        for verdict in EXIT:
            for name, _ in [r for r in rows if r[1] == verdict][:3]:
                sample.append(pytest.param(f"{folder}/{name}", verdict, id=f"{folder}/{name}"))
    knossos = CORPUS / "knossos-cas-register"
    for folder, verdict in (("bad", "not-linearizable"), ("good", "linearizable")):
        for path in sorted((knossos / folder).glob("*.edn"))[:3]:
            name = f"knossos-cas-register/{folder}/{path.name}"
            sample.append(pytest.param(name, verdict, id=name))
    return sample


def needs_corpus() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not CORPUS.is_dir(), reason=NO_CORPUS)


@pytest.mark.parametrize(("name", "verdict"), corpus_sample())
def test_exit_code_is_the_corpus_verdict(name: str, verdict: str) -> None:
    run = harness("check", CORPUS / name)
    assert run.returncode == EXIT[verdict], run.stdout + run.stderr
    first = run.stdout.splitlines()[0]
    assert first.startswith("LINEARIZABLE" if verdict == "linearizable" else "NOT LINEARIZABLE")


@needs_corpus()
def test_text_report_of_a_violation_names_what_failed() -> None:
    run = harness("check", CORPUS / "knossos-cas-register" / "bad" / "cas-failure.edn")
    assert run.returncode == 1
    out = run.stdout
    assert "model cas-register" in out
    assert "failing partition 0" in out and "model state is" in out
    assert "observed" in out and "expected" in out
    assert "minimal anomaly:" in out
    assert len(out.splitlines()) < 30  # a short verdict, not a dump


@needs_corpus()
def test_json_output_parses() -> None:
    bad = harness("check", "--json", CORPUS / "porcupine-etcd" / "etcd_000.log")
    assert bad.returncode == 1
    data = json.loads(bad.stdout)
    assert data["valid"] is False and data["model"] == "cas-register"
    assert data["failure"]["stuck"] and data["failure"]["minimal_history"]
    good = harness("check", "--json", CORPUS / "porcupine-kv" / "c01-ok.txt")
    assert good.returncode == 0
    data = json.loads(good.stdout)
    assert data["valid"] is True and data["model"] == "kv" and data["partitions"] >= 1


@needs_corpus()
def test_html_page_is_written(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    run = harness("check", "--html", page, CORPUS / "porcupine-kv" / "c01-bad.txt")
    assert run.returncode == 1
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and 'id="check-data"' in text and 'id="minimal"' in text
    assert "http://" not in text and "https://" not in text  # opens from a file, offline


@needs_corpus()
def test_format_can_be_forced() -> None:
    path = CORPUS / "porcupine-etcd" / "etcd_002.log"
    assert harness("check", "--format", "porcupine-etcd", path).returncode == 0
    assert harness("check", "--format", "porcupine-kv", path).returncode == 3


def test_missing_file_exits_3(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.edn"
    run = harness("check", missing)
    assert run.returncode == 3
    assert str(missing) in run.stderr


def test_corrupt_file_exits_3_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.edn"
    path.write_text('[{:process 0, :type :invoke, :f :read, :value nil}\n {:process 0, :type :ok, :f "\n')
    run = harness("check", path)
    assert run.returncode == 3
    assert f"{path}:" in run.stderr
    assert "Traceback" not in run.stderr


def test_binary_file_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "history.bin"
    path.write_bytes(b"\x00\x01\x02garbage\xff")
    assert harness("check", path).returncode == 3


def register_history(path: Path, read_value: int) -> Path:
    """Two sequential ops: write 1, then a read that returns ``read_value``."""
    ops = [
        Op(0, "invoke", 0, "write", 1, 10),
        Op(1, "ok", 0, "write", 1, 20),
        Op(2, "invoke", 1, "read", None, 30),
        Op(3, "ok", 1, "read", read_value, 40),
    ]
    write_jsonl(path, ops)
    return path


def test_model_is_required_when_the_history_names_none(tmp_path: Path) -> None:
    path = register_history(tmp_path / "h.jsonl", 1)
    run = harness("check", path)
    assert run.returncode == 3 and "--model" in run.stderr
    assert harness("check", "--model", "cas-register", path).returncode == 0
    stale = register_history(tmp_path / "b.jsonl", 2)
    assert harness("check", "--model", "cas-register", stale).returncode == 1


def test_unknown_model_exits_3(tmp_path: Path) -> None:
    run = harness("check", "--model", "no-such-model", register_history(tmp_path / "h.jsonl", 1))
    assert run.returncode == 3
    assert "no-such-model" in run.stderr


def test_initial_value(tmp_path: Path) -> None:
    """A read of 5 before any write is right only if the register started at 5."""
    path = tmp_path / "h.jsonl"
    write_jsonl(path, [Op(0, "invoke", 0, "read", None, 1), Op(1, "ok", 0, "read", 5, 2)])
    assert harness("check", "--model", "register", path).returncode == 1  # starts at nil
    assert harness("check", "--model", "register", "--initial", "5", path).returncode == 0
    assert harness("check", "--model", "register", "--initial", "nil", path).returncode == 1


@pytest.mark.parametrize("value", ["zero", "", "5x", "None", "nan"])
def test_bad_initial_exits_3(tmp_path: Path, value: str) -> None:
    run = harness(
        "check", "--model", "register", "--initial", value, register_history(tmp_path / "h.jsonl", 1)
    )
    assert run.returncode == 3
    assert "--initial" in run.stderr


@pytest.mark.parametrize(
    "args",
    [[], ["check"], ["frobnicate"], ["check", "x", "--format", "csv"], ["check", "x", "--timeout", "-1"]],
    ids=["no-command", "no-path", "unknown-command", "unknown-format", "bad-timeout"],
)
def test_usage_errors_exit_3(args: list[str]) -> None:
    run = harness(*args)
    assert run.returncode == 3, run.stderr
    assert "usage:" in run.stderr


def test_time_limit_gives_unknown(tmp_path: Path) -> None:
    run = harness(
        "check", "--model", "register", "--timeout", "1e-9", register_history(tmp_path / "h.jsonl", 1)
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stdout.startswith("UNKNOWN")


def test_stored_run_directory_picks_the_plans_model(tmp_path: Path) -> None:
    run_dir = tmp_path / "store" / "register-test" / "20240101T000000"
    run_dir.mkdir(parents=True)
    register_history(run_dir / "history.jsonl", 2)
    (run_dir / "plan.yaml").write_text("workload: register\nnemesis: none\n")
    run = harness("check", "--json", run_dir)
    assert run.returncode == 1
    assert json.loads(run.stdout)["model"] == "cas-register"


def test_directory_without_history_exits_3(tmp_path: Path) -> None:
    run = harness("check", tmp_path)
    assert run.returncode == 3
    assert "history.jsonl" in run.stderr


def test_the_command_runs_as_a_process(tmp_path: Path) -> None:
    """Exit codes and output reach a shell as they come from ``main``: a verdict, a bad file."""
    path = register_history(tmp_path / "h.jsonl", 2)
    run = run_harness("check", "--model", "cas-register", path)
    assert run.returncode == 1 and run.stdout.startswith("NOT LINEARIZABLE"), run.stdout + run.stderr
    missing = run_harness("check", tmp_path / "nowhere.edn")
    assert missing.returncode == 3 and str(tmp_path / "nowhere.edn") in missing.stderr


def test_console_script_is_declared() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'harness = "harness.cli:main"' in text
