"""Histories of operations: the record type, and readers and writers for several formats.

``read_history(path)`` detects the format, reads it, and translates the source's
conventions into the canonical values described in ``histories.format``. Formats: our
``jsonl`` (written with ``JsonlWriter`` as a test runs), ``jepsen-edn`` (Knossos and
Jepsen EDN, read with Knossos' conventions), ``porcupine-etcd`` and ``porcupine-kv``.
"""

from histories.conventions import DIALECTS, to_knossos
from histories.edn import read_edn, write_edn
from histories.format import NEMESIS, TYPES, History, HistoryError, Op
from histories.jsonl import JsonlWriter, OpList, read_jsonl, write_jsonl
from histories.read import FORMATS, detect_format, read_history

__all__ = [
    "DIALECTS",
    "FORMATS",
    "NEMESIS",
    "TYPES",
    "History",
    "HistoryError",
    "JsonlWriter",
    "Op",
    "OpList",
    "detect_format",
    "read_edn",
    "read_history",
    "read_jsonl",
    "to_knossos",
    "write_edn",
    "write_jsonl",
]
