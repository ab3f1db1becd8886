"""EDN text <-> the plain values histories use; the parsing is edn_format's (PyPI).

edn_format reads every element. What history files also need, and it does not give:

* The line of each element, for errors (its own message for a truncated file is "EOF
  Reached", with no position). ``_Scanner`` only finds where elements start (it knows strings,
  comments, characters, brackets and prefixes, nothing of values): the top-level forms, or the
  elements of a file that is one vector or list (Knossos). It reports unbalanced brackets and
  truncation itself; edn_format's other errors are traced to their element by parsing the
  elements one by one, which only happens when parsing them all at once fails.
* Speed: ``edn_format.loads`` builds a new ply parser and lexer on every call. We build them
  once, from edn_format's own grammar and lexer, and reuse them; and parse each
  distinct element text once (Knossos files repeat the same op maps). ply's parsing itself
  (~80 µs per op map) is what remains: a few times slower than a hand-written reader.
* Plain values: vectors, lists and sets -> ``list``; maps -> ``dict`` (collection keys become
  tuples); keywords -> :class:`Keyword`, a ``str`` without the colon (``Keyword("ok") ==
  "ok"``) that still tells ``:timed-out`` from ``"timed-out"``; symbols -> :class:`Symbol`;
  ``#tag x`` -> x (``#jepsen.history.Op{...}`` is its map, ``#inst "..."`` its text);
  ``^meta x`` -> x; ``1.5M`` -> float.
"""

from __future__ import annotations

import re
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

import edn_format


class Keyword(str):
    """An EDN keyword, without its colon."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Keyword({str.__repr__(self)})"


class Symbol(str):
    """An EDN symbol other than nil, true and false."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Symbol({str.__repr__(self)})"


class EdnError(ValueError):
    """Text that is not EDN; ``line`` is 1-based (None: not tied to a line)."""

    def __init__(self, line: int | None, what: str) -> None:
        self.line, self.what = line, what
        super().__init__(f"line {line}: {what}" if line is not None else what)


# ---------------------------------------------------------------- parsing, by edn_format


def _tagged(p: Any) -> None:
    """expression : TAG expression"""  # ply reads the grammar rule from the docstring
    p[0] = p[2]  # any tag is read as its value: edn_format rejects tags it has no handler for


# ply reads a table module of this name only if it exists; it never does, so the tables are
# always built from the grammar (~15 ms, once). edn_format's own parsetab.py is no use here:
# it is absent from a fresh install until edn_format's public API first writes it, and it
# never matches our grammar, whose tagged-element rule is ours (ply compares signatures).
_NO_TABLES = "histories._edn_tables_built_in_memory"


@cache
def _parser() -> tuple[Callable[[str], Any], threading.Lock]:
    """edn_format's parser, built once from its grammar and lexer, and a lock (ply keeps state)."""
    try:
        import ply.yacc
        from edn_format import edn_lex, edn_parse
    except ImportError:  # edn_format's internals changed: its public API (slower, refuses unknown tags)
        return edn_format.loads_all, threading.Lock()
    grammar = types.SimpleNamespace(**vars(edn_parse))
    grammar.p_expression_tagged_element = _tagged
    try:
        parser = ply.yacc.yacc(
            module=grammar,
            tabmodule=_NO_TABLES,
            debug=False,
            write_tables=False,
            errorlog=ply.yacc.NullLogger(),
        )
        lexer = edn_lex.lex()
    except (AttributeError, ply.yacc.YaccError):  # the same, for a grammar that no longer builds
        return edn_format.loads_all, threading.Lock()
    return lambda text: parser.parse(text, lexer=lexer), threading.Lock()


# What edn_format raises for bad text: EDNDecodeError and bad escapes are ValueErrors, 1e9999999M
# overflows, and its public API rejects unknown tags with NotImplementedError.
_EDN_ERRORS = (ValueError, ArithmeticError, NotImplementedError)


def _parse_all(text: str) -> Any:
    """Every EDN value in ``text``, as edn_format returns them."""
    parse, lock = _parser()
    with lock:
        return parse(text)


def _parse_one(text: str, line: int) -> Any:
    """The one EDN value in ``text`` (as edn_format returns it); EdnError naming ``line``."""
    try:
        found = _parse_all(text)
    except _EDN_ERRORS as exc:
        raise EdnError(line, _message(exc, text)) from None
    if len(found) != 1:
        raise EdnError(line, f"expected one EDN value, found {len(found)}")
    return found[0]


def _message(exc: Exception, text: str) -> str:
    """edn_format's complaint in words: it raises the offending ply token, or a text with an offset."""
    if isinstance(exc, ArithmeticError):
        return f"number out of range ({type(exc).__name__})"
    arg = exc.args[0] if exc.args else None
    if hasattr(arg, "lexpos"):
        return f"unexpected {text[arg.lexpos :].split(None, 1)[0][:40]!r}"
    what = re.sub(r" with lexpos \d+", "", str(exc))  # an offset into the element, not the file
    return "incomplete: the text ends inside a form (EOF Reached)" if what == "EOF Reached" else what


def parse_value(text: str) -> Any:
    """The single EDN value in ``text`` (a field of a log line), as plain values."""
    return _plain_edn(_parse_one(text, 1))


def read_elements(text: str) -> list[tuple[Any, int]]:
    """The elements of an EDN history and the line each starts on: the elements of the vector
    or list when the text is one, else its top-level forms. Raises EdnError for the first bad
    element, in text order. Elements with the same text share one value: do not mutate them."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")  # edn_format's lexer does not take \r as whitespace
    scanner = _Scanner(text)
    error = scanner.run()
    starts, end = scanner.elements()
    if error is not None:
        end = min(end, error.pos)
    elif not starts and scanner.children is None:
        raise EdnError(None, "no EDN data (only comments?)")
    chunks: list[str] = []
    lines: list[int] = []
    line, counted = 1, 0
    for i, start in enumerate(starts):
        if start >= end:
            break
        line += text.count("\n", counted, start)
        counted = start
        lines.append(line)
        chunks.append(text[start : starts[i + 1] if i + 1 < len(starts) and starts[i + 1] < end else end])
    values = _parse_elements(chunks, lines)
    if error is not None:
        raise EdnError(error.line, error.what)
    return [(values[chunk], line) for chunk, line in zip(chunks, lines, strict=True)]


def _parse_elements(chunks: list[str], lines: list[int]) -> dict[str, Any]:
    """Each distinct element text's value. One edn_format call parses them all (a call costs);
    only if that fails, one call per element, in text order, finds the first bad one."""
    distinct = list(dict.fromkeys(chunks))  # Knossos files repeat the same op maps
    try:
        found = _parse_all("\n".join(distinct))
    except _EDN_ERRORS:
        found = None
    if found is not None and len(found) == len(distinct):
        return {chunk: _plain_edn(value) for chunk, value in zip(distinct, found, strict=True)}
    values: dict[str, Any] = {}
    for chunk, line in zip(chunks, lines, strict=True):
        if chunk not in values:
            values[chunk] = _plain_edn(_parse_one(chunk, line))
    return values


def _plain_edn(value: Any) -> Any:
    """edn_format's value with plain Python types (see the module docstring); a new copy each call."""
    kind = type(value)
    if kind is edn_format.Keyword:
        return Keyword(value.name)
    if kind is int or kind is str or value is None or kind is bool or kind is float:
        return value
    if kind is edn_format.ImmutableDict:
        return {
            _key(_plain_edn(k)): _plain_edn(v) for k, v in value.dict.items()
        }  # .items() hashes keys: slow
    if kind is edn_format.ImmutableList or kind is tuple or kind is frozenset:
        return [_plain_edn(v) for v in value]
    if kind is edn_format.Symbol:
        return Symbol(value.name)
    if kind is edn_format.Char:
        return str(value)
    if kind is edn_format.MetadataValue:
        return _plain_edn(value.value)
    if kind is Decimal:
        return float(value)
    return value  # Fraction, and what edn_format's own tag handlers make


def _key(key: Any) -> Any:
    """A map key that can be a dict key: collections become tuples."""
    if isinstance(key, list):
        return tuple(_key(k) for k in key)
    if isinstance(key, dict):
        return tuple(sorted(((_key(k), _key(v)) for k, v in key.items()), key=repr))
    return key


# ---------------------------------------------------------------- where elements start


_TOKEN = re.compile(
    r'"[^"\\]*(?:\\.[^"\\]*)*"'  # a string
    r"|#\{|[\[\](){}]"  # brackets
    r"|;[^\n]*"  # a comment
    r"|\\(?:newline|return|space|tab|u[0-9A-Fa-f]{4}|.)"  # a character
    r'|"',  # a string with no end
)
_PIECE = re.compile(r"[^\s,]+")  # between tokens: atoms and prefixes (#_, #tag, ^)
_OPENERS = {"[": "]", "(": ")", "{": "}", "#{": "}"}  # and what closes each
_CLOSERS = frozenset("])}")


@dataclass(slots=True)
class _ScanError:
    """Kept, not raised, until the elements before it are parsed: errors come in text order."""

    pos: int  # elements from here on are not parsed
    line: int
    what: str


class _Scanner:
    """Where each element starts: each top-level form, or, while the first top-level form is an
    unprefixed vector or list, each of its elements. A prefix (``#_``, ``#tag``, ``^``) takes
    the form(s) after it, so these start no element."""

    __slots__ = ("text", "tops", "children", "level", "owed", "current", "seq_end", "prefix")

    def __init__(self, text: str) -> None:
        self.text = text
        self.tops: list[int] = []
        self.children: list[int] | None = None
        self.level = self.tops  # the list new elements go to
        self.owed = 0  # forms the pending prefixes still take
        self.current = 0  # where the latest element (or pending prefix) starts
        self.seq_end = -1  # where the first form's ']' or ')' is
        self.prefix = ""  # the latest prefix, for errors

    def elements(self) -> tuple[list[int], int]:
        """The element starts to parse, and where the last element ends at the latest."""
        if self.children is not None and len(self.tops) == 1:
            return self.children, self.seq_end if self.seq_end >= 0 else len(self.text)
        return self.tops, len(self.text)

    def run(self) -> _ScanError | None:
        """Scan the whole text, in one pass of a regex; the first structural error, if any."""
        text = self.text
        stack: list[tuple[str, int]] = []  # open brackets and where
        base = 0  # the depth elements are at: 1 inside the first form's vector or list
        gap = 0  # where text not yet looked at by _gap begins, at the element level
        for m in _TOKEN.finditer(text):
            tok = m.group()
            depth = len(stack)
            if depth > base:  # inside an element: only brackets and unended strings matter
                if tok in _OPENERS:
                    stack.append((tok, m.start()))
                elif tok in _CLOSERS:
                    opener, where = stack[-1]
                    if _OPENERS[opener] != tok:
                        return self._fail(m.start(), stack, base, _mismatch(text, tok, opener, where))
                    stack.pop()
                    if depth - 1 == base:
                        gap = m.end()
                elif tok == '"':
                    return self._fail(m.start(), stack, base, _unended_string(text, m.start()))
                continue
            start = m.start()
            if gap < start:
                self._gap(gap, start)
            gap = m.end()
            if tok in _OPENERS:
                self._form(start)
                first = len(self.tops) == 1 and self.tops[0] == start and self.children is None
                if not depth and tok in ("[", "(") and first:  # not after a prefix: #tag [...]
                    self.level = self.children = []
                    base = 1
                stack.append((tok, start))
            elif tok in _CLOSERS:
                if not depth:
                    return self._fail(start, stack, base, f"unexpected '{tok}' with nothing open")
                opener, where = stack.pop()  # the first form's vector or list
                if _OPENERS[opener] != tok:
                    return self._fail(start, stack, base, _mismatch(text, tok, opener, where))
                if self.owed:
                    return self._fail(start, stack, base, f"'{self.prefix}' has no form before '{tok}'")
                base, self.level, self.seq_end = 0, self.tops, start
            elif tok == '"':
                self._form(start)  # the element is this string, or a #tag's before it
                return _ScanError(self.current, _line(text, self.current), _unended_string(text, start))
            elif tok[0] != ";":
                self._form(start)  # a string or a character
        if len(stack) == base and gap < len(text):
            self._gap(gap, len(text))
        return self._at_end(stack, base)

    def _form(self, pos: int) -> None:
        """A form begins at ``pos`` at the element level: a new element, unless a prefix takes it."""
        if self.owed:
            self.owed -= 1
        else:
            self.current = pos
            self.level.append(pos)

    def _prefix(self, pos: int, name: str, takes: int, starts: bool) -> None:
        self.prefix = name
        if self.owed:
            self.owed -= 1 if starts else 0  # this prefixed form is the one a prefix before takes
        else:
            self.current = pos
            if starts:
                self.level.append(pos)
        self.owed += takes

    def _gap(self, start: int, end: int) -> None:
        """Atoms and prefixes between tokens at the element level."""
        for m in _PIECE.finditer(self.text, start, end):
            piece, pos = m.group(), m.start()
            while piece.startswith(("#_", "^")):
                discard = piece[0] == "#"
                self._prefix(pos, piece[: 1 + discard], 1 if discard else 2, not discard)
                cut = 2 if discard else 1
                piece, pos = piece[cut:], pos + cut
            if piece.startswith("#") and not piece.startswith("##"):
                self._prefix(pos, piece, 1, True)  # #tag, #:ns
            elif piece:
                self._form(pos)

    def _at_end(self, stack: list[tuple[str, int]], base: int) -> _ScanError | None:
        text = self.text
        if len(stack) > base or self.owed:
            what = f"'{stack[base][0]}' not closed" if len(stack) > base else f"'{self.prefix}' has no form"
            kind = "element" if base else "form"
            return self._fail(
                len(text), stack, base, f"file ends inside the {kind} that starts here ({what}; truncated?)"
            )
        if stack:
            opener, where = stack[0]
            last = _line(text, len(text.rstrip()) - 1)
            return _ScanError(
                len(text),
                last,
                f"file ends before the '{opener}' opened at line {_line(text, where)} is closed "
                f"(missing '{_OPENERS[opener]}'; truncated?)",
            )
        return None

    def _fail(self, pos: int, stack: list[tuple[str, int]], base: int, what: str) -> _ScanError:
        """An error in the element being read, if one is, else at ``pos``."""
        if len(stack) > base or self.owed:
            pos = self.current
        return _ScanError(pos, _line(self.text, pos), what)


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, max(pos, 0)) + 1


def _mismatch(text: str, closer: str, opener: str, where: int) -> str:
    return f"'{closer}' closes '{opener}' opened at line {_line(text, where)}"


def _unended_string(text: str, pos: int) -> str:
    return f"unterminated string (the '\"' at line {_line(text, pos)} has no closing '\"'; truncated?)"


# ---------------------------------------------------------------- writing, by edn_format

_NAME = re.compile(r"[A-Za-z*!_?<>=][\w*+!?<>=.:-]*(?:/[A-Za-z*!_?<>=][\w*+!?<>=.:-]*)?", re.A)


def is_name(text: str) -> bool:
    """Whether ``text`` can be written as a keyword that Clojure and edn_format read back unchanged."""
    return _NAME.fullmatch(text) is not None and not text.endswith(":") and "::" not in text


def dumps(value: Any) -> str:
    """EDN text for a value, by edn_format; str keys that are names are written as keywords."""
    try:
        return edn_format.dumps(_to_edn(value))
    except NotImplementedError as exc:
        raise TypeError(f"cannot write {type(value).__name__} as EDN: {exc}") from None


def _to_edn(value: Any, hashable: bool = False) -> Any:
    """Our values as edn_format's: Keyword and Symbol as its types, tuples as vectors (as lists
    where the value must hash: in a key or a set), sets as frozensets."""
    if isinstance(value, str):
        if isinstance(value, Keyword):
            return edn_format.Keyword(str(value))
        return edn_format.Symbol(str(value)) if isinstance(value, Symbol) else value
    if isinstance(value, dict):
        return {_key_to_edn(k): _to_edn(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_edn(v) for v in value]
    if isinstance(value, tuple):
        items = [_to_edn(v, hashable) for v in value]
        return tuple(items) if hashable else items
    if isinstance(value, set | frozenset):
        return frozenset(_to_edn(v, hashable=True) for v in value)
    return value


def _key_to_edn(key: Any) -> Any:
    """A map key: a str that is a name becomes a keyword (``{:status "ok"}``, as Jepsen writes)."""
    if type(key) is str and is_name(key):
        return edn_format.Keyword(key)
    return _to_edn(key, hashable=True)
