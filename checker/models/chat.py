"""raftchat's chat service as a sequential specification.

Accounts, each with an inbox of ``(sender, text)`` messages numbered from 1. Operations
(invoke value = the arguments plus ``"group"``; ok value = ``{"status", "value"}``):

* ``create_account(user)``: ``invalid_username`` if empty, ``username_too_long`` past 20
  characters, ``user_exists``, else ok with an empty inbox.
* ``check_account(user)``: ``username_too_long``, else ok with whether it exists.
* ``list_accounts(pattern)``: ok with the sorted users matching the fnmatch-style pattern.
* ``delete_account(user)``: ``username_too_long``, ``no_such_user``, else ok; the inbox goes too.
* ``send_message(sender, to, text)``: ``username_too_long`` (either name),
  ``message_too_long`` past 500 characters, ``no_such_user`` (either), else ok with the
  message's 1-based index in the recipient's inbox.
* ``fetch_messages(user, from_index)``: ``username_too_long``, ``no_such_user``,
  ``bad_index`` if below 1, ``index_past_end`` (value ``[]``) past the last message, else
  ok with ``[[sender, text], ...]`` from that index.

Accounts have passwords: ``create_account`` takes one, and ``delete_account``,
``fetch_messages`` and ``send_message`` (the sender's) must give the account's: if the acting
account exists and the password is another, the answer is ``bad_password`` before any other
check, and nothing changes. ``password`` may be absent (histories from before accounts had
passwords): then it is ``None``, which matches an account created without one.

Checks apply in the order listed. An error status is still a completed operation: it
happened and changed nothing. Values are compared for ok answers; for errors the status
says it all.

Groups of users are independent, so the history is split by ``"group"``.

States must be cheap to hash and compare: an inbox is interned as an int (the same
messages in the same order always get the same id), and a state is the sorted tuple of
``(user, inbox id, password)``: hashing it costs the number of users, not of messages.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Hashable
from fnmatch import translate
from functools import lru_cache
from typing import Any

from checker.fit import Signature, mapping
from checker.model import Model, Operation
from checker.models.values import freeze

MAX_USERNAME = 20
MAX_MESSAGE = 500
READS = frozenset({"check_account", "list_accounts", "fetch_messages"})
_VALUED = frozenset({"check_account", "list_accounts", "send_message", "fetch_messages"})

State = tuple[tuple[str, int, Any], ...]  # (user, inbox id, password), sorted by user
ACTING = {"delete_account": "user", "fetch_messages": "user", "send_message": "sender"}
_ANSWER = mapping("status", optional=("value", "error"))


@lru_cache(maxsize=32768)  # as fnmatch's own
def pattern_match(pattern: str) -> Callable[[str], re.Match[str] | None]:
    """``fnmatchcase``'s test for one pattern, compiled once: ``pattern_match(p)(name)`` is
    true exactly when ``fnmatchcase(name, p)`` is, with no call into ``fnmatch`` per name
    (a listing tests every account of its group)."""
    return re.compile(translate(pattern)).match


def _args(*names: str, keyed: bool = False) -> Signature:
    optional = ("group", "password") if keyed else ("group",)
    return Signature(mapping(*names, optional=optional), _ANSWER)


class ChatModel(Model):
    name = "chat"
    OPERATIONS = {  # see checker.fit
        "create_account": _args("user", keyed=True),
        "check_account": _args("user"),
        "list_accounts": _args("pattern"),
        "delete_account": _args("user", keyed=True),
        "send_message": _args("sender", "to", "text", keyed=True),
        "fetch_messages": _args("user", "from_index", keyed=True),
    }

    def __init__(self, initial: Any = None) -> None:
        # Inboxes as a tree of appends: inbox id -> (inbox before the last message, its
        # sender, its text), with the length beside. One small tuple per distinct append,
        # where a tuple of all the messages per inbox version grew with the square of its length.
        self._boxes: list[tuple[int, str, str]] = [(-1, "", "")]
        self._lengths = array("l", [0])
        self._box_ids: dict[tuple[int, str, str], int] = {}  # (inbox id, sender, text) -> id
        self._initial: State = ()
        for user, messages in dict(initial or {}).items():  # {user: [[sender, text], ...]}
            box = 0
            for sender, text in messages:
                box = self._append(box, sender, text)
            self._initial = _put(self._initial, user, box, None)

    def init(self) -> Hashable:
        return self._initial

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        return self.step_fn(op)(state)

    def step_fn(self, op: Operation) -> Callable[[State], tuple[bool, State]]:
        """``step`` for one op, with its arguments and observed answer decoded once."""
        apply, args = self.apply, op.input or {}
        if op.ret is None:

            def unknown(state: State) -> tuple[bool, State]:
                status, _, after = apply(state, op.f, args)
                return status is not None, after

            return unknown
        out = op.output if isinstance(op.output, dict) else {}
        seen_status = out.get("status")
        check_value = seen_status == "ok" and op.f in _VALUED
        seen_value = freeze(out.get("value")) if check_value else None

        def known(state: State) -> tuple[bool, State]:
            status, value, after = apply(state, op.f, args)
            if status != seen_status or (check_value and value != seen_value):
                return False, state
            return True, after

        return known

    def read_only(self, op: Operation) -> bool:
        """Reads, and anything answered with an error, leave the state as it was."""
        if op.f in READS:
            return True
        return op.ret is not None and isinstance(op.output, dict) and op.output.get("status") != "ok"

    def partition(self, ops: list[Operation]) -> list[list[Operation]]:
        groups: dict[Any, list[Operation]] = {}
        for op in ops:
            group = op.input.get("group") if isinstance(op.input, dict) else None
            key = group if type(group) is str else freeze(group)  # a string is its own frozen form
            found = groups.get(key)
            if found is None:
                groups[key] = [op]
            else:
                found.append(op)
        return list(groups.values())

    def apply(self, state: State, f: str, args: dict[str, Any]) -> tuple[str | None, Any, State]:
        """(status, value, next state) of ``f`` in ``state``; status None for an unknown op.

        A state holds a few users: each is found by a scan of the tuple, with no dict built
        per step (the search steps every operation at least once)."""
        acting = ACTING.get(f)
        if acting is not None:
            row = _row(state, args.get(acting))
            if row is not None and row[2] != args.get("password"):
                return "bad_password", None, state
        if f == "send_message":
            sender, to, text = args["sender"], args["to"], args["text"]
            if len(sender) > MAX_USERNAME or len(to) > MAX_USERNAME:
                return "username_too_long", None, state
            if len(text) > MAX_MESSAGE:
                return "message_too_long", None, state
            target = _row(state, to)
            if target is None or _row(state, sender) is None:
                return "no_such_user", None, state
            box = self._append(target[1], sender, text)
            return "ok", self._lengths[box], _put(state, to, box, target[2])
        if f == "fetch_messages":
            user, start = args["user"], args["from_index"]
            if len(user) > MAX_USERNAME:
                return "username_too_long", None, state
            row = _row(state, user)
            if row is None:
                return "no_such_user", None, state
            if start < 1:
                return "bad_index", None, state
            length = self._lengths[row[1]]
            if start > length:
                return "index_past_end", (), state
            return "ok", self.messages(row[1], length - start + 1), state
        if f == "create_account":
            user = args["user"]
            if user == "":
                return "invalid_username", None, state
            if len(user) > MAX_USERNAME:
                return "username_too_long", None, state
            if _row(state, user) is not None:
                return "user_exists", None, state
            return "ok", None, _put(state, user, 0, args.get("password"))
        if f == "check_account":
            if len(args["user"]) > MAX_USERNAME:
                return "username_too_long", None, state
            return "ok", _row(state, args["user"]) is not None, state
        if f == "list_accounts":
            pattern = args["pattern"]
            match = pattern_match(pattern)
            return "ok", tuple(u for u, _, _ in state if match(u)), state  # state is sorted
        if f == "delete_account":
            user = args["user"]
            if len(user) > MAX_USERNAME:
                return "username_too_long", None, state
            if _row(state, user) is None:
                return "no_such_user", None, state
            return "ok", None, tuple(row for row in state if row[0] != user)
        return None, None, state

    def describe_op(self, op: Operation) -> str:
        args = {k: v for k, v in (op.input or {}).items() if k != "group"}
        call = f"{op.f}({', '.join(repr(v) for v in args.values())})"
        if op.ret is None:
            return f"{call} -> ?"
        out = op.output if isinstance(op.output, dict) else {}
        return f"{call} -> {_answer(out.get('status'), out.get('value'))}"

    def describe_state(self, state: Hashable) -> str:
        if not state:
            return "no accounts"
        parts = []
        for user, box, _password in state:
            messages = self.messages(box)
            shown = "; ".join(f"{s}: {_clip(t)}" for s, t in messages[-3:])
            more = "..., " if len(messages) > 3 else ""
            parts.append(f"{user} [{len(messages)} msgs{': ' + more + shown if messages else ''}]")
        return ", ".join(parts)

    def expected(self, state: Hashable, op: Operation) -> str:
        status, value, _ = self.apply(state, op.f, op.input or {})
        if status is None:
            return f"no operation {op.f!r} in chat"
        return _answer(status, value)

    def messages(self, box: int, last: int | None = None) -> tuple[tuple[str, str], ...]:
        """The messages of inbox ``box`` (only its ``last`` ones when given), oldest first."""
        boxes = self._boxes
        count = self._lengths[box] if last is None else last
        out = []
        for _ in range(count):
            box, sender, text = boxes[box]
            out.append((sender, text))
        out.reverse()
        return tuple(out)

    def _append(self, box: int, sender: str, text: str) -> int:
        key = (box, sender, text)
        found = self._box_ids.get(key)
        if found is None:
            found = self._box_ids[key] = len(self._boxes)
            self._boxes.append(key)
            self._lengths.append(self._lengths[box] + 1)
        return found


def _row(state: State, user: Any) -> tuple[str, int, Any] | None:
    """``user``'s (user, inbox id, password), or None when the account does not exist."""
    for row in state:
        if row[0] == user:
            return row
    return None


def _put(state: State, user: str, box: int, password: Any) -> State:
    """``state`` with ``user``'s account set, kept sorted by user (one representation per content)."""
    before = [row for row in state if row[0] < user]
    return (*before, (user, box, password), *(row for row in state[len(before) :] if row[0] != user))


def _answer(status: Any, value: Any) -> str:
    if status != "ok":
        return str(status)
    if value is None:
        return "ok"
    if isinstance(value, list | tuple) and value and isinstance(value[0], list | tuple):
        return "ok [" + ", ".join(f"{s}: {_clip(t)}" for s, t in value) + "]"
    return f"ok {list(value) if isinstance(value, tuple) else value!r}"


def _clip(text: str, limit: int = 24) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
