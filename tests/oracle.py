"""A brute-force linearizability oracle that shares nothing with the checker.

It is written from the specification alone: what a history means (``histories/format.py``:
Jepsen's pairing rules and the canonical values) and what each object does (a register,
a register with compare-and-set, Porcupine's key-value store, raftchat's chat service as
``raftchat/chat.py`` defines it). It pairs records itself and steps its own models, so a
mistake in ``checker.prepare`` or ``checker.models`` shows up as a disagreement with it.

It tries every order of the operations consistent with real time, without memoization or
shortcuts: only for histories of a handful of operations per independent partition.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from histories.format import Op

MAX_USERNAME = 20  # raftchat.chat.ChatMachine's limits
MAX_MESSAGE = 500


@dataclass(frozen=True)
class Call:
    """One operation: an invoke and what became of it. ``end`` None: the outcome is unknown."""

    invoke_index: int  # the invoke record's ``index``
    f: str
    input: Any
    output: Any
    start: int
    end: int | None


def pair(records: list[Op]) -> list[Call]:
    """Jepsen's pairing: an invoke goes with the next completion of its process.

    ``fail`` means it never happened (dropped); ``info``, or no completion at all, means it
    may have happened at any time after its invoke. Nemesis records are no operations.
    Records carry times when they have any that are not zero and never go backwards;
    otherwise their order is the clock.
    """
    records = [r for r in records if r.process != "nemesis"]
    times = [r.time for r in records]
    if not any(times) or any(b < a for a, b in zip(times, times[1:], strict=False)):
        times = list(range(len(records)))
    calls: list[Call] = []
    open_: dict[Any, tuple[Op, int]] = {}
    for record, t in zip(records, times, strict=True):
        if record.type == "invoke":
            if record.process in open_:  # the earlier one never completed
                calls.append(_unknown(*open_.pop(record.process)))
            open_[record.process] = (record, t)
        elif record.process in open_ and record.type in ("ok", "fail", "info"):
            invoke, start = open_.pop(record.process)
            if record.type == "ok":
                calls.append(Call(invoke.index, invoke.f, invoke.value, record.value, start, t))
            elif record.type == "info":
                calls.append(_unknown(invoke, start))
    calls += [_unknown(invoke, start) for invoke, start in open_.values()]
    return calls


def _unknown(invoke: Op, start: int) -> Call:
    return Call(invoke.index, invoke.f, invoke.value, None, start, None)


# ---------------------------------------------------------------- the objects


def initial(kind: str) -> Any:
    return {} if kind in ("kv", "chat") else None


def step(kind: str, state: Any, call: Call) -> Iterator[Any]:
    """Every state ``call`` can leave behind when it takes effect in ``state`` (none: impossible)."""
    known = call.end is not None
    if kind in ("register", "cas-register"):
        yield from _register(kind, state, call, known)
    elif kind == "kv":
        yield from _kv(state, call, known)
    elif kind == "chat":
        yield from _chat(state, call, known)
    else:
        raise ValueError(f"no oracle model for {kind!r}")


def _register(kind: str, state: Any, call: Call, known: bool) -> Iterator[Any]:
    if call.f == "read":
        if not known or call.output == state:
            yield state
    elif call.f == "write":
        yield call.input
    elif call.f == "cas" and kind == "cas-register":
        expected, new = call.input
        matches = state == expected
        if not known:
            yield new if matches else state
            return
        swapped = call.output[2] if len(call.output) > 2 else True
        if swapped and matches:
            yield new
        elif not swapped and not matches:
            yield state


def _kv(state: dict[str, str], call: Call, known: bool) -> Iterator[Any]:
    key = kv_key(call)
    current = state.get(key, "")
    if call.f == "get":
        if not known or call.output[1] == current:
            yield state
    elif call.f == "put":
        yield {**state, key: call.input[1]}
    elif call.f == "append":
        yield {**state, key: current + call.input[1]}


def kv_key(call: Call) -> Any:
    return call.input[0] if isinstance(call.input, list | tuple) else call.output[0]


def _chat(state: dict[str, tuple], call: Call, known: bool) -> Iterator[Any]:
    status, value, after = chat_apply(state, call.f, call.input)
    if status is None:
        return
    if known:
        seen = call.output
        if seen.get("status") != status:
            return
        returns_value = call.f in ("check_account", "list_accounts", "send_message", "fetch_messages")
        if status == "ok" and returns_value and _plain(seen.get("value")) != _plain(value):
            return
    yield after


def chat_apply(users: dict[str, tuple], f: str, args: dict[str, Any]) -> tuple[str | None, Any, dict]:
    """(status, value, accounts after) of one chat operation, as raftchat's chat service answers.

    ``users`` maps a user to ``(inbox, password)``. An op on an account's behalf (delete,
    fetch, send as the sender) that names an existing account with another password is
    refused first with ``bad_password``; a missing password is None (older histories)."""
    acting = {"delete_account": "user", "fetch_messages": "user", "send_message": "sender"}.get(f)
    if acting is not None and args[acting] in users and users[args[acting]][1] != args.get("password"):
        return "bad_password", None, users
    too_long = [u for key in ("user", "sender", "to") if len(u := args.get(key, "")) > MAX_USERNAME]
    if f == "create_account":
        if args["user"] == "":
            return "invalid_username", None, users
        if too_long:
            return "username_too_long", None, users
        if args["user"] in users:
            return "user_exists", None, users
        return "ok", None, {**users, args["user"]: ((), args.get("password"))}
    if f == "check_account":
        return ("username_too_long", None, users) if too_long else ("ok", args["user"] in users, users)
    if f == "list_accounts":
        return "ok", sorted(u for u in users if fnmatch.fnmatchcase(u, args["pattern"])), users
    if f == "delete_account":
        if too_long:
            return "username_too_long", None, users
        if args["user"] not in users:
            return "no_such_user", None, users
        return "ok", None, {u: account for u, account in users.items() if u != args["user"]}
    if f == "send_message":
        if too_long:
            return "username_too_long", None, users
        if len(args["text"]) > MAX_MESSAGE:
            return "message_too_long", None, users
        if args["sender"] not in users or args["to"] not in users:
            return "no_such_user", None, users
        inbox, password = users[args["to"]]
        inbox = (*inbox, (args["sender"], args["text"]))
        return "ok", len(inbox), {**users, args["to"]: (inbox, password)}
    if f == "fetch_messages":
        if too_long:
            return "username_too_long", None, users
        if args["user"] not in users:
            return "no_such_user", None, users
        if args["from_index"] < 1:
            return "bad_index", None, users
        inbox = users[args["user"]][0]
        if args["from_index"] > len(inbox):
            return "index_past_end", [], users
        return "ok", [list(m) for m in inbox[args["from_index"] - 1 :]], users
    return None, None, users


def _plain(value: Any) -> Any:
    """Tuples and lists alike, as JSON and EDN readers may give either."""
    return [_plain(v) for v in value] if isinstance(value, list | tuple) else value


# ---------------------------------------------------------------- the search


def partitions(kind: str, calls: list[Call]) -> list[list[Call]]:
    """Independent parts: a kv key's operations, a chat group's; a register is one part."""
    if kind in ("register", "cas-register"):
        return [calls]
    parts: dict[Any, list[Call]] = {}
    for call in calls:
        part = kv_key(call) if kind == "kv" else call.input.get("group")
        parts.setdefault(part, []).append(call)
    return list(parts.values())


def linearizable(records: list[Op], kind: str) -> bool:
    """Can every part of the history be ordered, in real time, as the object would have run it?"""
    return all(_orderable(kind, initial(kind), part) for part in partitions(kind, pair(records)))


def _orderable(kind: str, state: Any, left: list[Call]) -> bool:
    """Some order of ``left``: every known call in, any unknown one in or out."""
    if all(call.end is None for call in left):
        return True
    for i, call in enumerate(left):
        if any(other.end is not None and other.end < call.start for other in left):
            continue  # something that finished before this began must come first
        rest = left[:i] + left[i + 1 :]
        if any(_orderable(kind, after, rest) for after in step(kind, state, call)):
            return True
    return False


def accepts(kind: str, order: Iterable[Call]) -> bool:
    """Does the object, run sequentially in this order, give every answer observed?"""
    states = [initial(kind)]
    for call in order:
        states = [after for state in states for after in step(kind, state, call)]
    return bool(states)
