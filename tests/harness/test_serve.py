"""``harness serve`` against a real store: over HTTP, in headless Chromium, and from the command line.

The store holds synthetic runs written with the harness's own functions (history, plots, results,
a checker timeline). Screenshots go to $TEST_ARTIFACTS (default tests/artifacts/) for a person.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS, needs_chromium
from test_store_stats import store_run, synthetic_ops

from harness import store
from harness.cli import build_parser
from harness.serve import Forbidden, make_server, resolve

FLAGS = [*CHROMIUM_FLAGS]
SECRET = "top secret, outside the store"


class Store:
    def __init__(self, root: Path, url: str, runs: dict[str, Path], outside: Path) -> None:
        self.root, self.url, self.runs, self.outside = root, url, runs, outside

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """A raw request: the path goes out exactly as written (no client-side normalising)."""
        host, port = self.url.removeprefix("http://").rstrip("/").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    base = tmp_path_factory.mktemp("serve")
    root = base / "store"
    faults = [("partition", 2.0, 4.0)]
    runs = {
        "valid": store_run(
            root, "register-partition", synthetic_ops(900, seed=11, faults=faults),
            minutes=0, nemesis=["partition"], plots=True, timeline=True,
        ),
        "invalid": store_run(
            root, "register-stale", synthetic_ops(700, seed=12, corrupt=True),
            minutes=7, plots=True, timeline=True,
        ),
        "unknown": store_run(
            root, "register-partition", synthetic_ops(300, seed=13, faults=faults),
            minutes=12, valid="unknown", nemesis=["partition"], plots=True,
        ),
        "incomplete": store_run(
            root, "register-partition", synthetic_ops(200, seed=14), minutes=15, valid=None
        ),
    }  # fmt: skip
    assert store.read_results(runs["invalid"])["valid"] is False
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (root / "escape").symlink_to(outside)  # a link that leads out of the store
    (runs["valid"] / "leak.txt").symlink_to(outside / "secret.txt")
    server = make_server(root, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Store(root, server.url, runs, outside)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def href(served: Store, run: str, name: str = "") -> str:
    return "/runs/" + "/".join(served.runs[run].relative_to(served.root).parts) + "/" + name


# -------------------------------------------------------------------------------------- HTTP


def test_index_lists_runs_newest_first(served: Store) -> None:
    status, headers, body = served.get("/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    rows = re.findall(r"<tr class='run' data-test='([^']*)' data-verdict='([^']*)'", page)
    assert rows == [
        ("register-partition", "incomplete"),
        ("register-partition", "unknown"),
        ("register-stale", "invalid"),
        ("register-partition", "valid"),
    ]
    assert f"href='{href(served, 'valid', 'timeline.html')}'" in page
    assert "2026-11-26 23:05:12 UTC" in page


def test_index_of_one_test(served: Store) -> None:
    page = served.get("/?test=register-stale")[2].decode()
    assert re.findall(r"<tr class='run' data-test='([^']*)' data-verdict='([^']*)'", page) == [
        ("register-stale", "invalid")
    ]
    status, headers, _ = served.get("/runs/register-stale/")
    assert status == 302 and headers["Location"] == "/?test=register-stale"


def test_files_are_served_with_their_types(served: Store) -> None:
    status, headers, body = served.get(href(served, "valid", "latency.png"))
    assert status == 200 and headers["Content-Type"] == "image/png" and body[:4] == b"\x89PNG"
    assert int(headers["Content-Length"]) == (served.runs["valid"] / "latency.png").stat().st_size
    status, headers, body = served.get(href(served, "valid", "results.json"))
    assert headers["Content-Type"] == "application/json; charset=utf-8" and b'"valid": true' in body
    assert (
        served.get(href(served, "valid", "history.jsonl"))[1]["Content-Type"] == "text/plain; charset=utf-8"
    )
    assert served.get(href(served, "valid", "logs/n1.log"))[2] == b"n1 became leader in term 1\n"
    assert b"n1.log" in served.get(href(served, "valid", "logs/"))[2]


def test_run_page(served: Store) -> None:
    page = served.get(href(served, "invalid"))[2].decode()
    assert "data-verdict='invalid'" in page
    assert "<img src='latency.png'" in page and "<img src='throughput.png'" in page
    assert "href='timeline.html'" in page and "id='stuck'" in page
    assert "leak.txt" not in served.get(href(served, "valid"))[2].decode()  # a link that would only 403
    incomplete = served.get(href(served, "incomplete"))[2].decode()
    assert "data-verdict='incomplete'" in incomplete and "No <code>results.json</code>" in incomplete


def test_latest_and_redirects(served: Store) -> None:
    status, headers, _ = served.get("/runs/latest")
    assert status == 302 and headers["Location"] == "/runs/latest/"
    page = served.get("/runs/latest/")[2].decode()
    assert served.runs["incomplete"].name in page
    assert served.get("/runs/")[1]["Location"] == "/"


@pytest.mark.parametrize(
    "path",
    [
        "/runs/../../../../etc/passwd",
        "/runs/register-stale/../../outside/secret.txt",
        "/runs/%2e%2e/outside/secret.txt",
        "/runs/..%2foutside%2fsecret.txt",
        "/runs/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/runs//etc/passwd",
        "/runs/%2fetc%2fpasswd",
        "/runs/..%5coutside%5csecret.txt",
        "/runs/escape/secret.txt",
        "/runs/register-partition/20261126T230512/leak.txt",
        "/runs/.latest.1.0",
        "/runs/x%00/y",
        "/runs/%ff%fe",
        "/etc/passwd",
        "/../etc/passwd",
    ],
)
def test_no_path_leaves_the_store(served: Store, path: str) -> None:
    status, _, body = served.get(path)
    assert status in (403, 404)
    assert SECRET.encode() not in body and b"root:" not in body


def test_resolve_confines_to_the_store(served: Store) -> None:
    assert resolve(served.root, "register-stale") == (served.root / "register-stale").resolve()
    assert resolve(served.root, "latest") == served.runs["incomplete"].resolve()
    for bad in ("..", "a/../..", "%2e%2e", "escape", "escape/secret.txt", "a%2fb", ".hidden"):
        with pytest.raises((Forbidden, FileNotFoundError)):
            resolve(served.root, bad)
    with pytest.raises(Forbidden):
        resolve(served.root, "escape/secret.txt")


def test_head_request(served: Store) -> None:
    host, port = served.url.removeprefix("http://").rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("HEAD", href(served, "valid", "throughput.png"))
    response = connection.getresponse()
    assert response.status == 200 and response.read() == b""
    assert int(response.getheader("Content-Length")) > 1000
    connection.close()


# -------------------------------------------------------------------------------------- browser


def chromium(url: str, *args: str) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        run = subprocess.run(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args, url],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


class Rows(HTMLParser):
    """The run rows of the index (data attributes) and the images of a page, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, str, str]] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "tr" and "run" in found.get("class", "").split():
            self.rows.append((found["data-test"], found["data-verdict"], found["data-run"]))
        if tag == "img":
            self.images.append(found.get("src", ""))


def rendered(url: str) -> Rows:
    parsed = Rows()
    parsed.feed(chromium(url, "--window-size=1400,900", "--dump-dom"))
    return parsed


def screenshot(url: str, name: str, height: int = 900) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / name
    png.unlink(missing_ok=True)
    chromium(url, f"--window-size=1400,{height}", f"--screenshot={png}")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
    return png


@needs_chromium
@pytest.mark.cluster
def test_index_in_a_browser(served: Store) -> None:
    page = rendered(served.url)
    assert page.rows == [
        ("register-partition", "incomplete", served.runs["incomplete"].name),
        ("register-partition", "unknown", served.runs["unknown"].name),
        ("register-stale", "invalid", served.runs["invalid"].name),
        ("register-partition", "valid", served.runs["valid"].name),
    ]
    screenshot(served.url, "serve_index.png")


@needs_chromium
@pytest.mark.cluster
def test_run_page_in_a_browser(served: Store) -> None:
    url = served.url.rstrip("/") + href(served, "invalid")
    assert rendered(url).images == ["latency.png", "throughput.png"]
    screenshot(url, "serve_run_invalid.png")
    screenshot(served.url.rstrip("/") + href(served, "valid"), "serve_run_valid_full.png", height=2600)


@needs_chromium
@pytest.mark.cluster
def test_timeline_through_the_server(served: Store) -> None:
    """The checker's page works when served (its script runs; it is not just a file:// page)."""
    dom = chromium(served.url.rstrip("/") + href(served, "invalid", "timeline.html"), "--dump-dom")
    assert "register-stale" in dom
    assert "data-rendered" in dom, "the timeline's script did not finish"


# -------------------------------------------------------------------------------------- CLI


def test_cli_defaults() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.store, args.port, args.host) == ("store", 8000, "127.0.0.1")
    args = build_parser().parse_args(["serve", "--store", "s", "--port", "0", "--host", "0.0.0.0"])
    assert (args.store, args.port, args.host) == ("s", 0, "0.0.0.0")


def test_cli_serves_a_store(served: Store) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "serve", "--store", str(served.root), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = re.search(r"http://\S+/", line)
        assert url, (
            f"no URL in {line!r}; stderr: {process.stderr.read() if process.poll() is not None else ''}"
        )
        with urllib.request.urlopen(url.group(0), timeout=10) as response:
            assert response.status == 200 and b"register-stale" in response.read()
    finally:
        process.terminate()
        process.wait(10)


def _index_with_bugs(tmp_path: Path) -> str:
    """The index page of a store with a correct run, a run with a bug and one that never started."""
    from harness.serve import index_page

    root = tmp_path / "store"
    for name, bug in (("correct", None), ("buggy", "stale-read")):
        run_dir = store.new_run_dir(root, name)
        store.write_results(run_dir, {"test": name, "valid": bug is None, "bug": bug, "system": "raftchat"})
    failed = store.new_run_dir(root, "never", latest=False)
    store.write_results(failed, {"test": "never", "setup_failed": True, "error": "the run never started"})
    return index_page(root)


def test_index_shows_the_bug_and_system_of_each_run(tmp_path: Path) -> None:
    page = _index_with_bugs(tmp_path)
    rows = {
        test: row
        for test, row in re.findall(r"<tr class='run' data-test='([^']*)'(.*?)</tr>", page, flags=re.S)
    }
    assert "<th>System</th>" in page and "<th>Bug</th>" in page
    assert "<span class='tag bug'>stale-read</span>" in rows["buggy"]
    assert "stale-read" not in rows["correct"] and "none" in rows["correct"]
    assert all("<td class='system'>raftchat</td>" in rows[t] for t in ("buggy", "correct"))
    assert "data-verdict='failed'" in rows["never"]


@needs_chromium
@pytest.mark.cluster
def test_index_with_bugs_in_a_browser(tmp_path: Path) -> None:
    """A screenshot of that index, for a person to look at."""
    html_file = tmp_path / "index.html"
    html_file.write_text(_index_with_bugs(tmp_path), encoding="utf-8")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / "serve_index_bug.png"
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        shot = [f"--user-data-dir={profile}", "--window-size=1400,500"]
        subprocess.run(
            [CHROMIUM, *FLAGS, *shot, f"--screenshot={png}", html_file.as_uri()],
            capture_output=True,
            timeout=120,
        )
    assert png.read_bytes()[:4] == b"\x89PNG"


SCRIPT = "<script>alert('x')</script>"


def test_values_from_results_are_text_not_markup(tmp_path: Path) -> None:
    """A run name, an error message, an operation's value, a fault's details: every value that
    comes from a run is escaped by the templates, so a hostile one shows as text."""
    from harness.serve import directory_page, index_page, run_page

    root = tmp_path / "store"
    run_dir = store.new_run_dir(root, "t<script>")
    (run_dir / store.LOGS).mkdir()
    (run_dir / store.LOGS / "<script>.log").write_text("x")  # a file name with no slash
    failure = {
        "partition": 0,
        "state": SCRIPT,
        "longest_prefix": [],
        "stuck": [{"op": 3, "description": SCRIPT, "expected": SCRIPT, "observed": SCRIPT}],
    }
    stats = {
        "by_f": {SCRIPT: {"invoke": 1, "ok": 1}},
        "nemesis": [{"fault": SCRIPT, "start": 1.0, "stop": None, "value": {"nodes": [SCRIPT]}}],
    }
    results = {
        "test": SCRIPT, "valid": False, "exit_code": 1, "workload": SCRIPT, "nemesis": [SCRIPT],
        "bug": SCRIPT, "system": SCRIPT, "error": SCRIPT, "stats": stats,
        "checker": {"model": SCRIPT, "ops": 1, "partitions": 1, "reason": SCRIPT, "failure": failure},
    }  # fmt: skip
    store.write_results(run_dir, results)
    pages = [
        index_page(root),
        index_page(root, SCRIPT),
        run_page(root, run_dir, f"/runs/{SCRIPT}/"),
        directory_page(root, run_dir / store.LOGS, f"/runs/{SCRIPT}/logs/"),
    ]
    for page in pages:
        assert "<script" not in page and "&lt;script&gt;" in page, page
    run = pages[2]
    assert run.count("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") >= 8  # error, model, stuck op, ...
    assert "<div class='alert error'><b>Error:</b> &lt;script&gt;" in run  # the page's own markup stays


def test_an_error_page_is_a_page(served: Store) -> None:
    status, headers, body = served.get("/nowhere")
    page = body.decode()
    assert status == 404 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>404 Not Found</h1>" in page and "<title>404 Not Found</title>" in page
    assert int(headers["Content-Length"]) == len(body)
