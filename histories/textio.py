"""Loading a history file as text, so every reader rejects unreadable input the same way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from histories.format import HistoryError

HEAD = 1 << 20  # bytes of a file enough to tell its format


def read_text(path: str | Path) -> str:
    """The file's text; HistoryError if it is missing, empty, binary or not UTF-8."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise HistoryError(name, None, f"cannot read: {exc.strerror or exc}") from exc
    return _decode(data, name, True)


def read_head(path: str | Path) -> str:
    """The file's first lines (whole lines, about ``HEAD`` bytes), checked as ``read_text``
    checks all of it: enough to tell the format without loading a large file."""
    name = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(HEAD + 1)
    except OSError as exc:
        raise HistoryError(name, None, f"cannot read: {exc.strerror or exc}") from exc
    complete = len(data) <= HEAD
    if not complete:
        cut = data.rfind(b"\n", 0, HEAD)
        data = data[: cut + 1] if cut >= 0 else data[:HEAD]
    return _decode(data, name, complete)


def iter_lines(path: str | Path) -> Iterator[str]:
    """The file's lines as text, each with its newline (the last may lack one), read one at
    a time so that a large history never sits in memory as text; the same checks as
    ``read_text``, naming the line."""
    name = str(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below, also when abandoned
    except OSError as exc:
        raise HistoryError(name, None, f"cannot read: {exc.strerror or exc}") from exc
    blank, number = True, 0
    with f:
        for number, raw in enumerate(f, 1):  # noqa: B007 - number is used after the loop
            if b"\0" in raw:
                raise HistoryError(name, number, "binary data (NUL byte), not a text history")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HistoryError(
                    name, number, f"not UTF-8 text (byte 0x{raw[exc.start]:02x}): binary data?"
                ) from exc
            if blank and line.strip():
                blank = False
            yield line
    if blank:
        raise HistoryError(name, None, "empty file" if number == 0 else "file holds only whitespace")


def _decode(data: bytes, name: str, complete: bool) -> str:
    if complete and not data.strip():
        raise HistoryError(name, None, "empty file" if not data else "file holds only whitespace")
    nul = data.find(b"\0")
    if nul >= 0:
        raise HistoryError(name, data.count(b"\n", 0, nul) + 1, "binary data (NUL byte), not a text history")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not complete and exc.start >= len(data) - 3:
            return data[: exc.start].decode("utf-8")  # a character cut at the end of the head
        line = data.count(b"\n", 0, exc.start) + 1
        raise HistoryError(
            name, line, f"not UTF-8 text (byte 0x{data[exc.start]:02x}): binary data?"
        ) from exc
