"""docs/architecture.md names every module of every package, so a newcomer finds each one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("raftchat", "harness", "checker", "histories", "nemesis", "workloads", "systems", "remote")


def _rows(text: str) -> dict[str, str]:
    """Each package-table row by its package name (``raftchat.raft``, ``raftchat``, ...); the
    first row of a name is the package table's (later tables have rows named alike)."""
    rows: dict[str, str] = {}
    for match in re.finditer(r"^\| `([\w.]+)`[^\n]*", text, re.M):
        rows.setdefault(match.group(1), match.group(0))
    return rows


def _named(path: Path, text: str, rows: dict[str, str]) -> bool:
    rel = path.relative_to(ROOT)
    if f"{rel.as_posix()}" in text:
        return True
    parts = rel.parts
    dotted = ".".join(parts[:-1])
    if f"`{parts[-1]}`" in rows.get(dotted, "") or f"`{parts[-1]}`" in rows.get(parts[0], ""):
        return True
    within = "/".join(parts[1:])  # models/kv.py, net/proxy.py in the top package's row
    return f"`{within}`" in rows.get(parts[0], "") or f"{within}`" in rows.get(parts[0], "")


def test_every_module_is_named_in_the_architecture_doc() -> None:
    text = DOC.read_text()
    rows = _rows(text)
    assert set(PACKAGES) <= set(rows), "a package has no row in the table"
    missing = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name not in ("__init__.py", "__main__.py") and not _named(path, text, rows)
    ]
    assert not missing, f"docs/architecture.md does not name {', '.join(missing)}"
