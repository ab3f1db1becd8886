"""The check's HTML page in a real browser: headless Chromium runs its script, and the test
reads back the DOM it left (the timelines write what they drew into data attributes) and
keeps a screenshot for a person to look at (in $TEST_ARTIFACTS, default tests/artifacts/).
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS, HOSTILE, hostile_register_history, needs_chromium

from checker import check, get_model
from checker.html import write_html
from checker.result import CheckResult
from histories import Op, read_history, synth

pytestmark = [needs_chromium, pytest.mark.cluster]  # every test here starts Chromium
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
FLAGS = [*CHROMIUM_FLAGS, "--window-size=1400,900"]


def chromium(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        run = subprocess.run(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert run.returncode == 0, run.stderr[-2000:]
    return run


class Elements(HTMLParser):
    """The attributes of every element with an id, and how many elements carry each class."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str]] = {}
        self.classes: dict[str, int] = {}
        self.options: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if "id" in found:
            self.by_id[found["id"]] = found
        for name in found.get("class", "").split():
            self.classes[name] = self.classes.get(name, 0) + 1
        if tag == "option":
            self.options.append(found.get("value", ""))


def rendered(page: Path) -> Elements:
    """The DOM after the page's script ran."""
    dom = chromium(page, "--dump-dom").stdout
    elements = Elements()
    elements.feed(dom)
    assert elements.by_id.get("check-data") is not None, "the page did not load"
    assert "data-rendered" in dom, "the page's script did not finish (an error in it?)"
    return elements


def screenshot(page: Path, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / name
    png.unlink(missing_ok=True)
    chromium(page, f"--screenshot={png}")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 1400 and height == 900
    assert len(data) > 20_000, "a near-empty screenshot: nothing was drawn"
    return png


def register_history(n: int, seed: int, stale_read: bool, processes: int = 5) -> list[Op]:
    """A cas-register history of ``n`` overlapping ops from ``histories.synth``, linearizable
    by construction (a few writes time out); with ``stale_read`` one read returns a value that
    a later completed write had already replaced: the smallest anomaly is those three ops."""
    anomaly = "stale-read" if stale_read else None
    return synth.generate(
        "cas-register", clients=processes, ops=n, info_rate=0.02, anomaly=anomaly, seed=seed
    )


def page_for(
    tmp_path: Path,
    ops: list[Op],
    model_name: str = "cas-register",
    faults: list[dict[str, object]] | None = None,
    **kw: object,
) -> tuple[Path, CheckResult]:
    model = get_model(model_name)
    result = check(ops, model, **kw)
    page = tmp_path / "page.html"
    write_html(page, result, model, title="a test history", faults=faults)
    return page, result


def test_violation_page_shows_failure_and_minimal_anomaly(tmp_path: Path) -> None:
    page, result = page_for(tmp_path, register_history(300, seed=7, stale_read=True))
    assert result.valid is False and result.failure is not None and result.failure.minimal
    failure = result.failure
    dom = rendered(page)
    assert dom.by_id["verdict"]["data-verdict"] == "violation"
    view = dom.by_id["view-summary"]
    assert int(view["data-partition"]) == failure.partition
    assert int(view["data-bars"]) == len(result.partition_ops[failure.partition])
    assert int(view["data-stuck"]) == len(failure.stuck) >= 1
    assert int(view["data-linearized"]) == len(failure.longest)
    assert int(view["data-drawn"]) >= 1
    minimal = dom.by_id["minimal-summary"]
    assert int(dom.by_id["minimal"]["data-ops"]) == len(failure.minimal)
    assert int(minimal["data-bars"]) == int(minimal["data-drawn"]) == len(failure.minimal)
    assert int(minimal["data-stuck"]) == len(failure.minimal_stuck or []) >= 1
    assert dom.classes.get("stuck", 0) == len(failure.stuck) + len(failure.minimal_stuck or [])
    assert dom.classes.get("r-stuck", 0) >= 1  # the minimal anomaly's table marks the stuck op
    screenshot(page, "html_view_violation.png")


def test_linearizable_page_draws_every_op_and_the_linearization(tmp_path: Path) -> None:
    page, result = page_for(tmp_path, register_history(40, seed=3, stale_read=False))
    assert result.valid is True
    dom = rendered(page)
    assert dom.by_id["verdict"]["data-verdict"] == "linearizable"
    assert "minimal" not in dom.by_id
    view = dom.by_id["view-summary"]
    assert int(view["data-bars"]) == int(view["data-drawn"]) == len(result.ops)
    assert int(view["data-linearized"]) == len(result.linearizations[0] or [])
    assert view["data-stuck"] == "0"
    assert view["data-faults"] == view["data-fault-bands"] == "0"
    assert "faults" not in dom.by_id and "fault-row" not in dom.classes
    screenshot(page, "html_view_linearizable.png")


def test_values_cannot_break_the_page(tmp_path: Path) -> None:
    model = get_model("register")
    result = check(hostile_register_history(10), model)
    page = tmp_path / "odd.html"
    write_html(page, result, model, title=HOSTILE)
    dom = rendered(page)
    assert dom.by_id["view-summary"]["data-bars"] == "2"
    assert dom.by_id["minimal-summary"]["data-stuck"] == "1"


def test_large_history_stays_usable(tmp_path: Path) -> None:
    """12,000 ops: the page opens on a window of them, drawn fast, with all of them laid out."""
    page, result = page_for(tmp_path, register_history(12_000, seed=11, stale_read=False))
    assert len(result.ops) == 12_000
    dom = rendered(page)
    view = dom.by_id["view-summary"]
    assert int(view["data-bars"]) == 12_000
    assert 0 < int(view["data-drawn"]) < 2_000  # only the visible window is drawn
    assert float(view["data-ms"]) > 0  # how fast: bench/records.py
    screenshot(page, "html_view_large.png")


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the history corpus is not at {CORPUS}")
def test_failing_partition_is_shown_first(tmp_path: Path) -> None:
    history = read_history(CORPUS / "porcupine-kv" / "c10-bad.txt")
    page, result = page_for(tmp_path, history.ops, "kv")
    assert result.failure is not None and len(result.partition_ops) > 1
    dom = rendered(page)
    assert int(dom.by_id["view-summary"]["data-partition"]) == result.failure.partition
    assert dom.options[0] == str(result.failure.partition)
    assert len(dom.options) == len(result.partition_ops)
    screenshot(page, "html_view_kv_partitions.png")


def test_fault_intervals_are_shaded_and_listed(tmp_path: Path) -> None:
    """Two faults of a run (seconds since the start, as harness.stats gives them): two bands, two rows."""
    ops = [
        Op(o.index, o.type, o.process, o.f, o.value, o.time * 1000) for o in register_history(60, 5, False)
    ]
    end = ops[-1].time / 1e9  # µs became ms: a run of a few seconds
    faults = [
        {
            "fault": "partition",
            "start": round(end * 0.2, 6),
            "stop": round(end * 0.45, 6),
            "value": {
                "fault": "partition",
                "shape": "halves",
                "components": [["n1", "n2"], ["n3", "n4", "n5"]],
            },
        },
        {
            "fault": "kill-leader",
            "start": round(end * 0.65, 6),
            "stop": None,
            "value": {"fault": "kill-leader", "leader": "n3", "action": "kill", "nodes": ["n3"]},
        },
    ]
    page, result = page_for(tmp_path, ops, faults=faults)
    assert result.valid is True
    dom = rendered(page)
    view = dom.by_id["view-summary"]
    assert view["data-faults"] == "2"
    assert view["data-fault-bands"] == "2"  # the whole run is in view: both bands drawn
    assert int(view["data-bars"]) == int(view["data-drawn"]) == len(result.ops)
    assert dom.by_id["faults"]["data-faults"] == "2"
    assert dom.classes.get("fault-row") == 2
    assert dom.classes.get("fault-strip") == 2  # the whole run's timeline and the group's
    html_text = page.read_text(encoding="utf-8")
    assert "partition · halves · n1 n2 | n3 n4 n5" in html_text and "kill-leader · n3" in html_text
    screenshot(page, "html_view_faults.png")


def test_faults_without_timestamps_are_listed_not_drawn(tmp_path: Path) -> None:
    ops = [
        Op(0, "invoke", 0, "write", 1),
        Op(1, "ok", 0, "write", 1),
        Op(2, "invoke", 1, "read", None),
        Op(3, "ok", 1, "read", 1),
    ]
    faults = [{"fault": "kill", "start": 0.5, "stop": 1.5, "value": {"fault": "kill", "nodes": ["n2"]}}]
    page, result = page_for(tmp_path, ops, "register", faults=faults)
    assert result.valid is True
    dom = rendered(page)
    view = dom.by_id["view-summary"]
    assert view["data-mode"] == "rank"
    assert view["data-faults"] == "1" and view["data-fault-bands"] == "0"
    assert dom.by_id["faults"]["data-timed"] == "false"
    assert dom.classes.get("fault-row") == 1 and "fault-strip" not in dom.classes
