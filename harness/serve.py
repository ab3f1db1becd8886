"""``harness serve``: browse the run store over HTTP — the runs, their verdicts, plots and files.

The server is the standard library's (``http.server``), so it runs wherever the harness does;
its pages are templates (``harness/templates/``, see ``harness.pages``) filled with what this
module gathers from the store, every value escaped. Everything under
``/runs/`` maps onto the store, and every request is confined to it: path parts are checked one
by one (no ``..``, no hidden names, no encoded slashes) and the resolved path (symlinks followed)
must still be inside the store.
"""

from __future__ import annotations

import mimetypes
import shutil
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from harness import store, verdicts
from harness.pages import count, duration, ms, percent, render, size
from harness.store import RunSummary

TEXT_TYPES = {".log": "text/plain", ".jsonl": "text/plain", ".yaml": "text/plain", ".yml": "text/plain"}
PLOTS = (store.LATENCY_PNG, store.THROUGHPUT_PNG, store.NODES_PNG)
KEY_FILES = (store.TIMELINE, store.RESULTS, store.HISTORY, store.PLAN)


class Forbidden(Exception):
    """A request path that tries to leave the store."""


class StoreServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck browser connection must not keep the process alive

    def __init__(self, address: tuple[str, int], store_root: Path, quiet: bool = False) -> None:
        self.store_root = Path(store_root).resolve()
        self.quiet = quiet
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def make_server(
    store_root: Path, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False
) -> StoreServer:
    """A bound server, not yet serving (port 0 picks a free port; see ``.url``)."""
    return StoreServer((host, port), store_root, quiet)


def serve(store_root: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the store until interrupted (Ctrl-C)."""
    with make_server(store_root, host, port) as server:
        print(f"serving {server.store_root} at {server.url} (Ctrl-C to stop)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


def resolve(store_root: Path, rel: str) -> Path:
    """The store path for the URL path ``rel`` (still percent-encoded, after ``/runs/``).

    Raises Forbidden for anything that could name a path outside the store and FileNotFoundError
    for what does not exist.
    """
    root = Path(store_root).resolve()
    parts = [p for p in rel.split("/") if p != ""] if rel else []
    names: list[str] = []
    for part in parts:
        name = unquote(part, errors="strict")
        if name.startswith(".") or any(c in name for c in "/\\\0"):
            raise Forbidden(rel)
        names.append(name)
    target = root.joinpath(*names).resolve(strict=True)
    if not target.is_relative_to(root):
        raise Forbidden(rel)
    return target


class Handler(BaseHTTPRequestHandler):
    server: StoreServer
    server_version = "harness-serve"

    def do_GET(self) -> None:
        self._respond(body=True)

    def do_HEAD(self) -> None:
        self._respond(body=False)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    def _respond(self, body: bool) -> None:
        url = urlsplit(self.path)
        path = url.path
        try:
            if path in ("/", "/index.html"):
                test = parse_qs(url.query).get("test", [None])[0]
                self._html(index_page(self.server.store_root, test), body)
            elif path in ("/runs", "/runs/"):
                self._redirect("/")
            elif path.startswith("/runs/"):
                self._store_path(path, body)
            else:
                self._error(HTTPStatus.NOT_FOUND, body)
        except (Forbidden, PermissionError):
            self._error(HTTPStatus.FORBIDDEN, body)
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
            self._error(HTTPStatus.NOT_FOUND, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away mid-answer: nothing to tell it

    def _store_path(self, path: str, body: bool) -> None:
        rel = path[len("/runs/") :]
        target = resolve(self.server.store_root, rel)
        if target.is_dir():
            if not path.endswith("/"):
                self._redirect(path + "/")  # relative links on the page need the slash
            elif target == self.server.store_root:
                self._redirect("/")
            elif target.parent == self.server.store_root:
                self._redirect("/?test=" + quote(target.name))  # a test: its runs
            elif target.parent.parent == self.server.store_root:
                self._html(run_page(self.server.store_root, target, path), body)
            else:
                self._html(directory_page(self.server.store_root, target, path), body)
            return
        self._file(target, body)

    def _file(self, target: Path, body: bool) -> None:
        kind = (
            TEXT_TYPES.get(target.suffix)
            or mimetypes.guess_type(target.name)[0]
            or "application/octet-stream"
        )
        if kind.startswith("text/") or kind == "application/json":
            kind += "; charset=utf-8"
        with open(target, "rb") as data:
            size = data.seek(0, 2)
            data.seek(0)
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(size))
            self.send_header("Cache-Control", "no-cache")  # a run in progress keeps changing
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if body:
                shutil.copyfileobj(data, self.wfile)

    def _html(self, page: str, body: bool) -> None:
        data = page.encode("utf-8")
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.FOUND)  # not 301: browsers would cache it for good
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _error(self, status: HTTPStatus, body: bool) -> None:
        page = error_page(status).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        if body:
            self.wfile.write(page)


# ---------------------------------------------------------------------------------------- pages
# The pages are templates (harness/templates/); these functions gather what each one shows.

INDEX_HEADERS = [
    "Started", "Test", "System", "Bug", "Verdict", "#Ops", "Availability", "#Duration", "Workload",
    "Nemesis", "Links",
]  # fmt: skip
# The order of the tally over the index: the verdicts as harness.verdicts lists them, then the states
# of runs without one.
INDEX_ORDER = (*verdicts.VERDICTS.values(), store.INCOMPLETE, store.FAILED)


def _run_href(root: Path, run_dir: Path) -> str:
    return "/runs/" + "/".join(quote(part) for part in run_dir.relative_to(root).parts) + "/"


def _test_href(name: str) -> str:
    return "/?test=" + quote(name)


def _latest(root: Path) -> Path | None:
    try:
        return (root / store.LATEST).resolve(strict=True)
    except OSError:
        return None


def index_page(root: Path, test: str | None = None) -> str:
    """Every run, newest first (or one test's runs)."""
    runs = store.list_runs(root)
    if test:
        runs = [r for r in runs if r.path.parent.name == test]
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.verdict] = counts.get(run.verdict, 0) + 1
    latest = _latest(root)
    rows = [
        {
            "run": run,
            "href": _run_href(root, run.path),
            "test_href": _test_href(run.path.parent.name),
            "latest": run.path.resolve() == latest,
            "timeline": store.TIMELINE if (run.path / store.TIMELINE).exists() else None,
        }
        for run in runs
    ]
    return render(
        "index.html",
        title="harness runs",
        where=str(root),
        root=str(root),
        test=test,
        counts=[(v, counts[v], "") for v in INDEX_ORDER if counts.get(v)],
        headers=INDEX_HEADERS,
        runs=rows,
    )


def run_page(root: Path, run_dir: Path, url_path: str) -> str:
    """One run: verdict, facts, the checker's findings, plots and files."""
    summary = store.summarize(run_dir)
    results = store.read_results(run_dir) or {}
    stats = results.get("stats") if isinstance(results.get("stats"), dict) else {}
    return render(
        "run.html",
        title=f"{summary.test} · {run_dir.name}",
        where=url_path,
        summary=summary,
        results=results,
        run_name=run_dir.name,
        test_href=_test_href(run_dir.parent.name),
        incomplete=summary.verdict == store.INCOMPLETE,
        buttons=[name for name in KEY_FILES if (run_dir / name).exists()],
        primary=store.TIMELINE,
        logs=store.LOGS if (run_dir / store.LOGS).is_dir() else None,
        facts=_facts(summary, results, stats),
        checker=results.get("checker"),
        plots=[name for name in PLOTS if (run_dir / name).exists()],
        by_f=stats.get("by_f") or {},
        latency=(stats.get("latency_ms") or {}).get("ok") or {},
        faults=stats.get("nemesis") or [],
        files=_file_rows(run_dir, root, recurse=True),
    )


def _facts(summary: RunSummary, results: dict[str, Any], stats: dict[str, Any]) -> list[tuple[str, Any]]:
    overall = (stats.get("latency_ms_overall") or {}).get("ok") or {}
    items = [
        ("Ops", count(summary.ops)),
        ("Availability", percent(summary.availability)),
        ("Duration", duration(summary.duration)),
        ("ok latency p50 / p99", f"{ms(overall['p50'])} / {ms(overall['p99'])} ms" if overall else "—"),
        ("Workload", summary.workload or "—"),
        ("Nodes", results.get("nodes", "—")),
        ("Concurrency", results.get("concurrency", "—")),
        ("Nemesis", ", ".join(summary.nemesis) or "none"),
        ("System", summary.system or "—"),
        ("Bug", results.get("bug") or "none"),
        ("Exit code", "—" if summary.exit_code is None else summary.exit_code),
    ]
    if results.get("seed") is not None:
        items.append(("Seed", results["seed"]))
    return items


def _file_rows(directory: Path, root: Path, recurse: bool = False) -> list[dict[str, str]]:
    rows = []
    for path in _files(directory, root, recurse):
        rel = path.relative_to(directory)
        slash = "/" if path.is_dir() else ""
        info = path.stat()
        rows.append(
            {
                "href": "/".join(quote(p) for p in rel.parts) + slash,
                "name": f"{rel}{slash}",
                "size": "" if slash else size(info.st_size),
                "modified": datetime.fromtimestamp(info.st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            }
        )
    return rows


def _files(directory: Path, root: Path, recurse: bool) -> list[Path]:
    """What a link can open (not hidden, inside the store), files first; with ``recurse`` one level
    into subdirectories (logs/)."""
    found: list[Path] = []
    for entry in sorted(_servable(directory, root), key=lambda p: (p.is_dir(), p.name)):
        found.append(entry)
        if recurse and entry.is_dir() and not entry.is_symlink():
            found.extend(sorted(p for p in _servable(entry, root) if p.is_file()))
    return found


def _servable(directory: Path, root: Path) -> list[Path]:
    return [
        p
        for p in directory.iterdir()
        if not p.name.startswith(".") and p.exists() and p.resolve().is_relative_to(root)
    ]


def directory_page(root: Path, directory: Path, url_path: str) -> str:
    """A plain listing (e.g. a run's ``logs/``)."""
    return render("directory.html", title=url_path, where=url_path, files=_file_rows(directory, root))


def error_page(status: HTTPStatus) -> str:
    title = f"{status.value} {status.phrase}"
    return render("error.html", title=title, where="")
