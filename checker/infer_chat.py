"""Deciding a chat group from what its answers reveal, without searching.

A chat group is not a set of independent chains as a kv key is: sends need both accounts
to exist, creates and deletes start and end inboxes, and a listing reads every account
at once. But the answers still say most of the order: a send's answer is its message's
index in the recipient's inbox (the order of the sends to one inbox), a fetch shows the
inbox's length and its last texts (where an unacknowledged send landed, when its text is
unique), and every other answer says whether an account existed.

So the group is swept once in time order, placing each operation at a moment of its own
interval, as a plain replay of the chat semantics on dicts and lists:

* a read (a fetch, a check, a listing, any answer with an error status) is placed as soon
  as it fits the state: at its call, or right after a write that makes it fit;
* a write (an acknowledged create, delete or send) waits until its return, the latest it
  can go, and is placed then; or earlier, when an operation that must go now needs it
  first: the send whose index comes next in that inbox, the create or delete that gives
  an account the existence an answer shows;
* a crashed (``info``) write is placed only when an answer needs it (its text seen in a
  fetch, its account's existence), else it never happened.

Every operation so lands at a time inside its interval, in the order of those times, and
the replay accepted it there: that order is a linearization, a proof. When the sweep
meets an operation it cannot place (a violation, or an order these rules do not find:
a delete acknowledged before a send it must follow, a send whose answer no recipient
saw...), it gives up and the general search decides (and explains a violation).

The replay is ``ChatModel.apply``'s semantics on plain dicts (no interned state per
operation): the tests hold the two to each other through the general search and the
brute-force oracle.
"""

from __future__ import annotations

from typing import Any

from checker.infer import Inferred, real_time_conflict
from checker.linearizable import PartitionResult
from checker.model import Model, Operation
from checker.models.chat import ACTING, MAX_MESSAGE, MAX_USERNAME, READS, pattern_match
from checker.models.values import freeze

_VALUED = frozenset({"check_account", "list_accounts", "send_message", "fetch_messages"})
_WRITES = frozenset({"create_account", "delete_account", "send_message"})

Accounts = dict[str, list[Any]]  # user -> [password, inbox: list of (sender, text)]


def answer(accounts: Accounts, f: str, args: dict[str, Any]) -> tuple[str | None, Any]:
    """(status, value) of ``f`` on ``accounts``, as ``ChatModel.apply`` answers; no change."""
    acting = ACTING.get(f)
    if acting is not None:
        row = accounts.get(args.get(acting))
        if row is not None and row[0] != args.get("password"):
            return "bad_password", None
    if f == "send_message":
        sender, to = args["sender"], args["to"]
        if len(sender) > MAX_USERNAME or len(to) > MAX_USERNAME:
            return "username_too_long", None
        if len(args["text"]) > MAX_MESSAGE:
            return "message_too_long", None
        target = accounts.get(to)
        if target is None or sender not in accounts:
            return "no_such_user", None
        return "ok", len(target[1]) + 1
    if f == "fetch_messages":
        user, start = args["user"], args["from_index"]
        if len(user) > MAX_USERNAME:
            return "username_too_long", None
        row = accounts.get(user)
        if row is None:
            return "no_such_user", None
        if start < 1:
            return "bad_index", None
        box = row[1]
        if start > len(box):
            return "index_past_end", ()
        return "ok", tuple(box[start - 1 :])
    if f == "create_account":
        user = args["user"]
        if user == "":
            return "invalid_username", None
        if len(user) > MAX_USERNAME:
            return "username_too_long", None
        return ("user_exists" if user in accounts else "ok"), None
    if f == "check_account":
        if len(args["user"]) > MAX_USERNAME:
            return "username_too_long", None
        return "ok", args["user"] in accounts
    if f == "list_accounts":
        pattern = args["pattern"]
        return "ok", tuple(sorted(filter(pattern_match(pattern), accounts)))
    if f == "delete_account":
        user = args["user"]
        if len(user) > MAX_USERNAME:
            return "username_too_long", None
        return ("ok" if user in accounts else "no_such_user"), None
    return None, None


def _frozen(value: Any) -> Any:
    """``freeze`` for the values chat answers hold, the common shapes without a call per item."""
    if type(value) is list and all(type(m) is list and len(m) == 2 for m in value):
        return tuple([(m[0], m[1]) for m in value])
    return freeze(value)


def _effect(accounts: Accounts, f: str, args: dict[str, Any]) -> None:
    """Apply a write that ``answer`` found ok."""
    if f == "send_message":
        accounts[args["to"]][1].append((args["sender"], args["text"]))
    elif f == "create_account":
        accounts[args["user"]] = [args.get("password"), []]
    elif f == "delete_account":
        del accounts[args["user"]]


INF = float("inf")
_CRASHED = object()  # the status of an operation whose outcome is unknown
_NO_ROW: list[Any] = [None, ()]  # an absent account's row, for its length


class _Stuck(Exception):
    """An operation that must go now and cannot: the general search decides."""


class _Sweep:
    """The sweep over one group (see the module docstring)."""

    def __init__(self, model: Model, ops: list[Operation]) -> None:
        self.ops = ops
        n = len(ops)
        self.fs = [op.f for op in ops]
        self.args: list[dict[str, Any]] = [op.input if type(op.input) is dict else {} for op in ops]
        self.status: list[Any] = [_CRASHED] * n  # the answer's status
        self.seen: list[Any] = [None] * n  # the answer's value, frozen, where it is compared
        self.is_read = bytearray(n)  # a known outcome that changed nothing
        self.accounts: Accounts = {
            user: [password, list(model.messages(box))]  # type: ignore[attr-defined]
            for user, box, password in model.init()  # type: ignore[attr-defined]
        }
        self.placed = bytearray(n)
        self.order: list[int] = []
        self.pending_reads: list[int] = []
        self.sends_to: dict[Any, list[int]] = {}  # recipient -> pending sends
        self.sends_from: dict[Any, list[int]] = {}  # sender -> pending sends
        self.changes: dict[Any, list[int]] = {}  # user -> pending creates and deletes
        self.creates: dict[Any, list[int]] = {}  # user -> every create not refused (placed or not)
        self.index: list[int] = [0] * n  # a send's index: its answer's, or where a fetch saw it
        crashed_sends: list[int] = []
        fetched: list[int] = []
        for k, op in enumerate(ops):
            f, out = op.f, op.output
            if op.ret is not None:
                status = out.get("status") if type(out) is dict else None
                self.status[k] = status
                if status == "ok":
                    if f in _VALUED:
                        value = out.get("value")
                        self.seen[k] = value if type(value) is int else _frozen(value)
                        if f == "send_message":
                            self.index[k] = value if type(value) is int else 0
                        elif f == "fetch_messages":
                            fetched.append(k)
                    self.is_read[k] = f in READS
                else:
                    self.is_read[k] = 1
            elif f == "send_message":
                crashed_sends.append(k)
            if f == "create_account" and self.status[k] in (_CRASHED, "ok"):
                self.creates.setdefault(self.args[k].get("user"), []).append(k)
        if crashed_sends:  # where a fetch saw a crashed send's message: its index
            revealed: dict[tuple[Any, Any], int] = {}  # (user, message) -> where a fetch saw it
            for k in fetched:
                args = self.args[k]
                user, start = args.get("user"), args["from_index"]
                for offset, message in enumerate(self.seen[k] or ()):
                    revealed.setdefault((user, message), start + offset)
            for k in crashed_sends:
                args = self.args[k]
                self.index[k] = revealed.get((args.get("to"), (args.get("sender"), args.get("text"))), 0)

    def run(self) -> list[int]:
        ops, fs, args_of, is_read, placed = self.ops, self.fs, self.args, self.is_read, self.placed
        events = [(op.call, 0, k) for k, op in enumerate(ops)]
        events += [(op.ret, 1, k) for k, op in enumerate(ops) if op.ret is not None]
        events.sort()  # at one time calls go first: closed intervals overlap
        sends_to, sends_from, changes, order = self.sends_to, self.sends_from, self.changes, self.order
        for _, returning, k in events:
            if returning:
                if not placed[k]:
                    self._force(k)
            elif is_read[k]:
                if self._fits(k):
                    placed[k] = 1
                    order.append(k)
                else:
                    self.pending_reads.append(k)
            elif fs[k] == "send_message":
                args = args_of[k]
                to, sender = args.get("to"), args.get("sender")
                if to in sends_to:
                    sends_to[to].append(k)
                else:
                    sends_to[to] = [k]
                if sender in sends_from:
                    sends_from[sender].append(k)
                else:
                    sends_from[sender] = [k]
            else:
                changes.setdefault(args_of[k].get("user"), []).append(k)
        return order

    def _fits(self, k: int) -> bool:
        """Would op ``k`` answer what it answered (any answer, for an unknown outcome)?"""
        f = self.fs[k]
        got, value = answer(self.accounts, f, self.args[k])
        seen = self.status[k]
        if seen is _CRASHED:
            return got is not None
        if got != seen:
            return False
        return seen != "ok" or f not in _VALUED or value == self.seen[k]

    def _place(self, k: int) -> None:
        self.placed[k] = 1
        self.order.append(k)

    def _apply(self, k: int) -> bool:
        """Place write ``k`` now if it fits (an unknown outcome only if it would succeed)."""
        f, args = self.ops[k].f, self.args[k]
        got, value = answer(self.accounts, f, args)
        seen = self.status[k]
        if got != "ok" or (seen is not _CRASHED and f in _VALUED and value != self.seen[k]):
            return False
        self._write(k)
        return True

    def _write(self, k: int) -> None:
        """Place write ``k``, which fits. A delete first lets the pending sends to and from
        the account that fit now go: after it, none of them can (their indices, a sender's
        existence, belong to this account's life)."""
        f, args = self.ops[k].f, self.args[k]
        if f == "delete_account":
            user = args.get("user")
            self._length(user, INF, pull=False)
            creates = [c for c in self.creates.get(user, ()) if not self.placed[c]]
            for j in self._pending(self.sends_from, user):
                ret = self.ops[j].ret
                if any(ret is None or self.ops[c].call < ret for c in creates):
                    continue  # it may come from the account's next life
                if not self.placed[j] and self.index[j]:
                    self._length(self.args[j].get("to"), self.index[j] - 1, pull=False)
                    self._apply(j)
        _effect(self.accounts, f, args)
        self._place(k)
        self._place_reads()

    def _place_reads(self) -> None:
        """Reads waiting for a state that fits them: the state just changed."""
        waiting = self.pending_reads
        if waiting:
            self.pending_reads = [k for k in waiting if not self.placed[k] and not self._fits_then_place(k)]

    def _fits_then_place(self, k: int) -> bool:
        if self._fits(k):
            self._place(k)
            return True
        return False

    def _force(self, k: int) -> None:
        """Op ``k`` returns now: place it, first pulling in the pending writes it needs."""
        f, args, status = self.ops[k].f, self.args[k], self.status[k]
        if self._fits(k):
            if f in _WRITES and status == "ok":
                self._write(k)
            else:
                self._place(k)
            return
        acting = ACTING.get(f)
        if status == "bad_password" and acting is not None:
            self._exists(args.get(acting), True)
        elif f == "send_message" and status == "ok":
            self._exists(args.get("sender"), True)
            self._fresh(args.get("to"), self.index[k] - 1)
        elif f == "fetch_messages" and status in ("ok", "index_past_end", "bad_index"):
            user, seen = args.get("user"), self.seen[k]
            if status == "ok" and isinstance(seen, tuple):
                self._fresh(user, args["from_index"] - 1 + len(seen))
            elif status == "index_past_end":
                self._fresh(user, args["from_index"] - 1, at_most=True)
            else:
                self._exists(user, True)
        elif f in ("fetch_messages", "delete_account") and status == "no_such_user":
            self._exists(args.get("user"), False)
        elif f == "send_message" and status == "no_such_user":
            self._exists(args.get("to"), False)
            if not self._fits(k):
                self._exists(args.get("sender"), False)
        elif f == "create_account":
            self._exists(args.get("user"), status != "ok")
        elif f == "delete_account" and status == "ok":
            self._exists(args.get("user"), True)
        elif f == "check_account" and status == "ok":
            self._exists(args.get("user"), bool(self.seen[k]))
        elif f == "list_accounts" and status == "ok":
            shown, match = set(self.seen[k] or ()), pattern_match(args["pattern"])
            for user in self.changes:
                if match(user):
                    self._exists(user, user in shown)
        if self.placed[k]:  # a read the pulled writes made fit
            return
        if not self._fits(k):
            raise _Stuck
        if f in _WRITES and status == "ok":
            self._write(k)
        else:
            self._place(k)

    def _exists(self, user: Any, present: bool) -> None:
        """Make ``user``'s account exist (or not) with a pending create (or delete), if one fits."""
        if (user in self.accounts) == present:
            return
        want = "create_account" if present else "delete_account"
        candidates = [k for k in self._pending(self.changes, user) if self.ops[k].f == want]
        candidates.sort(key=lambda k: self.status[k] is _CRASHED)  # known outcomes first: they happened
        for k in candidates:
            if not self.placed[k] and self._apply(k):
                return

    def _pending(self, table: dict[Any, list[int]], user: Any) -> list[int]:
        """``table[user]`` without the operations placed since (kept so: no list grows with
        the history, only with what is in flight)."""
        found = table.get(user)
        if not found:
            return []
        placed = self.placed
        if any(placed[k] for k in found):
            found = table[user] = [k for k in found if not placed[k]]
        return found

    def _fresh(self, user: Any, length: float, at_most: bool = False) -> None:
        """Bring ``user``'s inbox to ``length`` messages (``at_most``: no more than that):
        the account must exist, and one holding more is a life that must end first."""
        self._exists(user, True)
        row = self.accounts.get(user)
        if row is not None and len(row[1]) > length:
            self._exists(user, False)
            self._exists(user, True)
        if not at_most:
            self._length(user, length)

    def _length(self, user: Any, length: float, pull: bool = True) -> None:
        """Grow ``user``'s inbox to ``length`` with pending sends, each at its own index;
        ``pull`` False: only with those whose index is known, and that fit as they are."""
        row = self.accounts.get(user)
        sends = self._pending(self.sends_to, user)
        while row is not None and len(row[1]) < length:
            nxt = len(row[1]) + 1
            candidates = [k for k in sends if not self.placed[k] and self.index[k] == nxt]
            if pull:
                candidates += [k for k in sends if not self.placed[k] and self.index[k] == 0]
            for k in candidates:
                if pull:
                    self._exists(self.args[k].get("sender"), True)
                if self._apply(k):
                    break
            else:
                return


def infer_chat(model: Model, ops: list[Operation]) -> Inferred | None:
    """Decide one chat group, or None (the search must)."""
    ops = [op for op in ops if op.ret is not None or op.f not in READS]  # a crashed read constrains nothing
    try:
        order = [ops[k] for k in _Sweep(model, ops).run()]
    except (_Stuck, TypeError, KeyError):  # stuck, or values of shapes the model would refuse too
        return None
    if real_time_conflict(order)[0] is not None:  # by construction never; a proof must not trust it
        return None
    ids = [op.id for op in order]
    return Inferred(PartitionResult(True, ids, longest=ids, state=None, explored=0))
