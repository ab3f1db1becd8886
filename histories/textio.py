"""Loading a history file as text, so every reader rejects unreadable input the same way."""

from __future__ import annotations

from pathlib import Path

from histories.op import HistoryError


def read_text(path: str | Path) -> str:
    """The file's text; HistoryError if it is missing, empty, binary or not UTF-8."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise HistoryError(name, None, f"cannot read: {exc.strerror or exc}") from exc
    if not data.strip():
        raise HistoryError(name, None, "empty file" if not data else "file holds only whitespace")
    nul = data.find(b"\0")
    if nul >= 0:
        raise HistoryError(name, data.count(b"\n", 0, nul) + 1, "binary data (NUL byte), not a text history")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise HistoryError(
            name, line, f"not UTF-8 text (byte 0x{data[exc.start]:02x}): binary data?"
        ) from exc
