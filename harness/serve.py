"""``harness serve``: browse the run store over HTTP — the runs, their verdicts, plots and files.

Standard library only (``http.server``) so it runs wherever the harness does. Everything under
``/runs/`` maps onto the store, and every request is confined to it: path parts are checked one
by one (no ``..``, no hidden names, no encoded slashes) and the resolved path (symlinks followed)
must still be inside the store.
"""

from __future__ import annotations

import html
import mimetypes
import shutil
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from checker.page import page
from harness import store
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
        page = _page(
            f"{status.value} {status.phrase}",
            f'<h1>{status.value} {status.phrase}</h1><p><a href="/">back to the runs</a></p>',
        ).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        if body:
            self.wfile.write(page)


# ---------------------------------------------------------------------------------------- pages

CSS = """
:root { --fg:#1d2330; --muted:#6b7385; --line:#e3e6ee; --bg:#f6f7fb; --card:#fff; --accent:#3559e0; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color:var(--fg); background:var(--bg); }
header.top { background:#1d2330; color:#fff; padding:14px 28px; display:flex; align-items:baseline;
             gap:18px; }
header.top a { color:#fff; text-decoration:none; font-weight:600; font-size:16px; }
header.top .where { color:#aab3c5; font-size:13px; }
main { padding:22px 28px 40px; max-width:1500px; }
h1 { font-size:22px; margin:0 0 6px; }
h2 { font-size:16px; margin:28px 0 10px; }
a { color:var(--accent); }
.muted { color:var(--muted); }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; overflow:hidden; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:9px 14px; border-bottom:1px solid var(--line); white-space:nowrap; }
th { background:#fafbfd; font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
tr:last-child td { border-bottom:none; }
tbody tr:hover { background:#f3f6ff; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.wrap { white-space:normal; }
.badge { display:inline-block; padding:2px 10px; border-radius:999px; font-size:12px; font-weight:600;
         letter-spacing:.02em; }
.badge.valid { background:#dcf5e3; color:#176b31; }
.badge.invalid, .badge.diverged, .badge.node-failed, .badge.not-recovered {
  background:#fde0e3; color:#a4161a; }
.badge.unknown { background:#fff1cc; color:#8a5a00; }
.badge.incomplete, .badge.none { background:#eceef3; color:#545b6b; }
.badge.failed { background:#3f3f46; color:#fff; }
.tag.bug { background:#fde0e3; color:#a4161a; font-weight:600; }
.tag { display:inline-block; padding:1px 7px; margin-right:4px; border-radius:5px; background:#eef1fb;
       color:#3a4770; font-size:12px; }
.latest { background:#3559e0; color:#fff; }
.bar { display:inline-block; width:70px; height:7px; border-radius:4px; background:#f1d3d6;
       vertical-align:middle; margin-left:8px; overflow:hidden; }
.bar > span { display:block; height:100%; background:#2e9e4f; }
.summary { display:flex; gap:10px; margin:6px 0 18px; flex-wrap:wrap; }
.facts { display:grid; grid-template-columns:repeat(auto-fill, minmax(170px, 1fr)); gap:10px; }
.fact { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:10px 14px; }
.fact .k { font-size:11px; text-transform:uppercase; letter-spacing:.05em; color:var(--muted); }
.fact .v { font-size:17px; font-weight:600; margin-top:2px; }
.buttons { display:flex; gap:8px; flex-wrap:wrap; margin:14px 0 16px; }
.button { display:inline-block; padding:7px 14px; border-radius:8px; border:1px solid var(--line);
          background:var(--card); text-decoration:none; font-weight:500; }
.button.primary { background:var(--accent); color:#fff; border-color:var(--accent); }
.alert { border-radius:10px; padding:12px 16px; margin:14px 0; }
.alert.error { background:#fde0e3; color:#7d1016; }
.alert.warn { background:#fff1cc; color:#6b4600; }
.plots img { width:100%; max-width:1320px; display:block; background:#fff; border:1px solid var(--line);
             border-radius:10px; margin-bottom:14px; }
code, pre { font-family:ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12.5px; }
.empty { padding:40px; text-align:center; color:var(--muted); }
"""


def escape(value: Any) -> str:
    """Text made safe for HTML, quotes included (also used by the nightly summary page)."""
    return html.escape(str(value), quote=True)


def _table(table_id: str, headers: list[str], rows: list[str]) -> str:
    """A card with a table; a header starting with "#" is a number column (right-aligned)."""
    head = "".join(
        f"<th class='num'>{escape(h[1:])}</th>" if h[:1] == "#" else f"<th>{escape(h)}</th>" for h in headers
    )
    table = f"<table id='{table_id}'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f"<div class='card'>{table}</div>"


def _td(content: str, cls: str = "") -> str:
    """A cell of already-escaped HTML."""
    return f"<td class='{cls}'>{content}</td>" if cls else f"<td>{content}</td>"


def _page(title: str, content: str, where: str = "") -> str:
    header = f"<header class='top'><a href='/'>raftchat harness</a><span class='where'>{escape(where)}</span>"
    return page(title, f"{header}</header><main>{content}</main>", CSS)


def badge(verdict: str) -> str:
    return f"<span class='badge {escape(verdict)}' data-verdict='{escape(verdict)}'>{escape(verdict)}</span>"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m {secs:02d}s"


def _ms(value: float) -> str:
    """Three significant digits or so: 0.412, 2.74, 31.6, 1204."""
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _elapsed(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _availability(value: float | None) -> str:
    """The number and a small green/red bar: a row that dipped stands out in a long list."""
    if value is None:
        return "—"
    width = max(0.0, min(1.0, value)) * 100
    bar = f"<span class='bar' title='{value:.2%} ok'><span style='width:{width:.1f}%'></span></span>"
    return _percent(value) + bar


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
    heading = f"Runs of <code>{escape(test)}</code>" if test else "Stored runs"
    back = " · <a href='/'>all runs</a>" if test else ""
    parts = [
        f"<h1>{heading}</h1><p class='muted'>{len(runs)} run(s) in <code>{escape(root)}</code>{back}</p>"
    ]
    verdicts = [
        v
        for v in (
            "valid",
            "invalid",
            "diverged",
            "node-failed",
            "not-recovered",
            "unknown",
            "incomplete",
            store.FAILED,
        )
        if counts.get(v)
    ]
    if verdicts:
        badges = " ".join(f"{badge(v)} <span class='muted'>×{counts[v]}</span>" for v in verdicts)
        parts.append(f"<div class='summary'>{badges}</div>")
    if runs:
        headers = [
            "Started",
            "Test",
            "System",
            "Bug",
            "Verdict",
            "#Ops",
            "Availability",
            "#Duration",
            "Workload",
            "Nemesis",
            "Links",
        ]
        latest = _latest(root)
        parts.append(_table("runs", headers, [_index_row(root, run, latest) for run in runs]))
    else:
        parts.append(
            "<div class='card empty'>No runs stored yet. Start one with <code>harness run</code>.</div>"
        )
    return _page("harness runs", "".join(parts), str(root))


_NONE = "<span class='muted'>none</span>"


def _index_row(root: Path, run: RunSummary, latest: Path | None) -> str:
    href = _run_href(root, run.path)
    tag = " <span class='tag latest'>latest</span>" if run.path.resolve() == latest else ""
    tags = "".join(f"<span class='tag'>{escape(n)}</span>" for n in run.nemesis)
    links = [f"<a href='{href}'>run</a>"]
    if (run.path / store.TIMELINE).exists():
        links.append(f"<a href='{href}{store.TIMELINE}'>timeline</a>")
    cells = [
        _td(f"<a href='{href}'>{_when(run.started)}</a>{tag}"),
        _td(f"<a href='{_test_href(run.path.parent.name)}'>{escape(run.test)}</a>"),
        _td(escape(run.system or "—"), "system"),
        _td(f"<span class='tag bug'>{escape(run.bug)}</span>" if run.bug else _NONE, "bug"),
        _td(badge(run.verdict)),
        _td("—" if run.ops is None else f"{run.ops:,}", "num"),
        _td(_availability(run.availability)),
        _td(duration(run.duration), "num"),
        _td(escape(run.workload or "—")),
        _td(tags or "<span class='muted'>none</span>"),
        _td(" · ".join(links)),
    ]
    data = (
        f"data-test='{escape(run.test)}' data-verdict='{escape(run.verdict)}' "
        f"data-run='{escape(run.path.name)}'"
    )
    return f"<tr class='run' {data}>{''.join(cells)}</tr>"


def run_page(root: Path, run_dir: Path, url_path: str) -> str:
    """One run: verdict, facts, the checker's findings, plots and files."""
    summary = store.summarize(run_dir)
    results = store.read_results(run_dir) or {}
    stats = results.get("stats") if isinstance(results.get("stats"), dict) else {}
    parts = [
        f"<h1>{escape(summary.test)} {badge(summary.verdict)}</h1>",
        f"<p class='muted'>run <code>{escape(run_dir.name)}</code> · started {_when(summary.started)} · "
        f"<a href='{_test_href(run_dir.parent.name)}'>all runs of this test</a></p>",
    ]
    if summary.verdict == store.INCOMPLETE:
        parts.append(
            "<div class='alert warn'>No <code>results.json</code>: this run was interrupted, crashed, "
            "or is still going.</div>"
        )
    if results.get("error"):
        parts.append(f"<div class='alert error'><b>Error:</b> {escape(results['error'])}</div>")
    buttons = [
        f"<a class='button{' primary' if name == store.TIMELINE else ''}' href='{name}'>{name}</a>"
        for name in KEY_FILES
        if (run_dir / name).exists()
    ]
    if (run_dir / store.LOGS).is_dir():
        buttons.append(f"<a class='button' href='{store.LOGS}/'>logs/</a>")
    parts.append(f"<div class='buttons'>{''.join(buttons)}</div>")
    parts.append(_facts(summary, results, stats))
    parts.append(_checker_section(results.get("checker")))
    plots = [name for name in PLOTS if (run_dir / name).exists()]
    if plots:
        images = "".join(f"<img src='{name}' alt='{name}'>" for name in plots)
        parts.append(f"<h2>Plots</h2><div class='plots'>{images}</div>")
    parts.append(_ops_section(stats))
    parts.append(_nemesis_section(stats))
    parts.append("<h2>Files</h2>" + _file_table(run_dir, root, recurse=True))
    return _page(f"{summary.test} · {run_dir.name}", "".join(parts), url_path)


def _facts(summary: RunSummary, results: dict[str, Any], stats: dict[str, Any]) -> str:
    overall = (stats.get("latency_ms_overall") or {}).get("ok") or {}
    items = [
        ("Ops", "—" if summary.ops is None else f"{summary.ops:,}"),
        ("Availability", _percent(summary.availability)),
        ("Duration", duration(summary.duration)),
        ("ok latency p50 / p99", f"{_ms(overall['p50'])} / {_ms(overall['p99'])} ms" if overall else "—"),
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
    cells = "".join(
        f"<div class='fact'><div class='k'>{escape(k)}</div><div class='v'>{escape(v)}</div></div>"
        for k, v in items
    )
    return f"<div class='facts'>{cells}</div>"


def _checker_section(checker: Any) -> str:
    if not isinstance(checker, dict):
        return ""
    line = (
        f"model <code>{escape(checker.get('model'))}</code> · {escape(checker.get('ops'))} ops in "
        f"{escape(checker.get('partitions'))} partition(s) · searched for {_elapsed(checker.get('elapsed'))}"
    )
    if checker.get("reason"):
        line += f" · {escape(checker['reason'])}"
    parts = [f"<h2>Checker</h2><p>{line}</p>"]
    failure = checker.get("failure")
    if isinstance(failure, dict):
        stuck = failure.get("minimal_stuck") or failure.get("stuck") or []
        which = " (in the shrunk, minimal history)" if failure.get("minimal_stuck") else ""
        prefix = len(failure.get("longest_prefix") or [])
        parts.append(
            f"<p>Partition {escape(failure.get('partition'))}: longest linearizable prefix {prefix} ops, "
            f"ending in state <code>{escape(failure.get('state'))}</code>. "
            f"Operations that could not be linearized next{which}:</p>"
        )
        rows = [
            "<tr>"
            + _td(escape(s.get("op")), "num")
            + _td(f"<code>{escape(s.get('description'))}</code>", "wrap")
            + _td(escape(s.get("expected")), "wrap")
            + _td(escape(s.get("observed")), "wrap")
            + "</tr>"
            for s in stuck
        ]
        parts.append(_table("stuck", ["#Op", "Operation", "Expected", "Observed"], rows))
    return "".join(parts)


def _ops_section(stats: dict[str, Any]) -> str:
    by_f = stats.get("by_f") or {}
    if not by_f:
        return ""
    latency = (stats.get("latency_ms") or {}).get("ok") or {}
    rows = []
    for f, counts in by_f.items():
        q = latency.get(f) or {}
        cells = [_td(f"{counts.get(k, 0):,}", "num") for k in ("invoke", "ok", "fail", "info", "open")]
        cells += [_td(_ms(q[k]) if k in q else "—", "num") for k in ("p50", "p95", "p99", "max")]
        rows.append(f"<tr>{_td(f'<code>{escape(f)}</code>')}{''.join(cells)}</tr>")
    headers = ["f", "#invoked", "#ok", "#fail", "#info", "#open", "#p50 ms", "#p95 ms", "#p99 ms", "#max ms"]
    return (
        f"<h2>Operations</h2>{_table('ops', headers, rows)}"
        "<p class='muted'>Latencies are of ok completions; open = invoked but never completed.</p>"
    )


def _nemesis_section(stats: dict[str, Any]) -> str:
    intervals = stats.get("nemesis") or []
    if not intervals:
        return ""
    rows = [
        "<tr>"
        + _td(f"<span class='tag'>{escape(i.get('fault'))}</span>")
        + _td(escape(i.get("start")), "num")
        + _td("—" if i.get("stop") is None else escape(i.get("stop")), "num")
        + _td(f"<code>{escape(i.get('value'))}</code>", "wrap")
        + "</tr>"
        for i in intervals
    ]
    return "<h2>Faults</h2>" + _table("faults", ["Fault", "#Start s", "#Stop s", "Details"], rows)


def _file_table(directory: Path, root: Path, recurse: bool = False) -> str:
    rows = []
    for path in _files(directory, root, recurse):
        rel = path.relative_to(directory)
        slash = "/" if path.is_dir() else ""
        href = "/".join(quote(p) for p in rel.parts) + slash
        info = path.stat()
        moment = datetime.fromtimestamp(info.st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(
            "<tr>"
            + _td(f"<a href='{href}'>{escape(rel)}{slash}</a>")
            + _td("" if slash else _size(info.st_size), "num")
            + _td(moment, "muted")
            + "</tr>"
        )
    if not rows:
        return "<div class='card empty'>empty</div>"
    return _table("files", ["Name", "#Size", "Modified (UTC)"], rows)


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


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


def directory_page(root: Path, directory: Path, url_path: str) -> str:
    """A plain listing (e.g. a run's ``logs/``)."""
    content = f"<h1><code>{escape(url_path)}</code></h1><p><a href='../'>up</a></p>" + _file_table(
        directory, root
    )
    return _page(url_path, content, url_path)
