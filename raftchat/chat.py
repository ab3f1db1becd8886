"""The chat application as a deterministic state machine.

Every node applies the same committed operations in the same order, so everything here
depends only on the operations themselves: no clocks, no randomness, no iteration over
unordered containers when producing results or snapshots.
"""

from __future__ import annotations

import fnmatch
import hmac
from typing import Any

import msgpack

from raftchat.statemachine import InvalidRequest, OpSpec, Result

_FORMAT = 2  # bump when the snapshot layout changes (2: accounts have keys)
BAD_PASSWORD = "bad_password"
_OK = Result("ok")  # immutable: one for every check that passes, rather than one per entry


class ChatMachine:
    """Accounts, each with an inbox of ``(sender, text)`` messages numbered from 1.

    Usernames longer than ``max_username`` are rejected with ``username_too_long`` by
    every operation that takes a username (such a user can never exist), so a client
    gets the same answer whichever operation it tries first.

    Every account has a key (see :mod:`raftchat.accounts`: the node derives it from the
    password before the op reaches the log). An op on an account's behalf (``delete``,
    ``fetch``, ``send`` as the sender) whose key is not the account's answers
    ``bad_password`` before any other check and changes nothing; on an account that does
    not exist the usual checks answer. ``check`` and ``list`` take no key.
    """

    name = "chat"
    ops: dict[str, OpSpec] = {
        "create_account": OpSpec({"user": str, "key": bytes}),
        "check_account": OpSpec({"user": str}, read_only=True),
        "list_accounts": OpSpec({"pattern": str}, read_only=True),
        "delete_account": OpSpec({"user": str, "key": bytes}),
        "send_message": OpSpec({"sender": str, "to": str, "text": str, "key": bytes}),
        "fetch_messages": OpSpec({"user": str, "from_index": int, "key": bytes}, read_only=True),
    }
    # op -> the argument naming the account whose password (as a key) the op takes
    keyed = {
        "create_account": "user",
        "delete_account": "user",
        "send_message": "sender",
        "fetch_messages": "user",
    }

    def __init__(self, max_username: int = 20, max_message: int = 500) -> None:
        self.max_username = max_username
        self.max_message = max_message
        self._inboxes: dict[str, list[tuple[str, str]]] = {}
        self._keys: dict[str, bytes] = {}
        self._handlers = {name: getattr(self, f"_{name}") for name in self.ops}  # op -> method

    def apply(self, op: dict[str, Any]) -> Result:
        """Dispatch a validated op (see :func:`raftchat.statemachine.validate`)."""
        name = op.get("op")
        handler = self._handlers.get(name) if isinstance(name, str) else None
        if handler is None:
            raise InvalidRequest(f"unknown operation {name!r} for the chat state machine")
        refused = self.authorize(op)
        if refused.status != "ok":
            return refused
        return handler(**{k: v for k, v in op.items() if k != "op"})

    acting = frozenset(keyed) - {"create_account"}  # the ops that must prove a password

    def authorize(self, op: dict[str, Any]) -> Result:
        """``bad_password`` if ``op`` acts for an existing account with another key, else ok.
        A leader asks this at a confirmed read point before it lets a write into the log."""
        name = op.get("op")
        who = self.keyed.get(name) if name in self.acting else None
        if who is None:
            return _OK
        stored = self._keys.get(op.get(who))
        key = op.get("key", b"")  # absent only from callers that skip validation (tests, benches)
        if stored is None or (isinstance(key, bytes) and hmac.compare_digest(stored, key)):
            return _OK
        return Result(BAD_PASSWORD, error=f"wrong password for {op.get(who)!r}")

    # -- operations ---------------------------------------------------------------

    def _create_account(self, user: str, key: bytes = b"") -> Result:
        if user == "":
            return Result("invalid_username", error="username must not be empty")
        if too_long := self._check_length(user):
            return too_long
        if user in self._inboxes:
            return Result("user_exists", error=f"user {user!r} already exists")
        self._inboxes[user] = []
        self._keys[user] = key
        return Result("ok")

    def _check_account(self, user: str) -> Result:
        if too_long := self._check_length(user):
            return too_long
        return Result("ok", user in self._inboxes)

    def _list_accounts(self, pattern: str) -> Result:
        # fnmatchcase: case-sensitive on every platform, unlike fnmatch.fnmatch.
        return Result("ok", sorted(u for u in self._inboxes if fnmatch.fnmatchcase(u, pattern)))

    def _delete_account(self, user: str, key: bytes = b"") -> Result:
        if too_long := self._check_length(user):
            return too_long
        if user not in self._inboxes:
            return Result("no_such_user", error=f"user {user!r} does not exist")
        del self._inboxes[user]  # the inbox, delivered or not, goes with the account
        del self._keys[user]
        return Result("ok")

    def _send_message(self, sender: str, to: str, text: str, key: bytes = b"") -> Result:
        for user in (sender, to):
            if too_long := self._check_length(user):
                return too_long
        if len(text) > self.max_message:
            return Result(
                "message_too_long",
                error=f"message is {len(text)} characters long; the limit is {self.max_message}",
            )
        inbox = self._inboxes.get(to)
        if inbox is None or sender not in self._inboxes:
            parties = (("sender", sender), ("recipient", to))
            missing = [f"{role} {user!r}" for role, user in parties if user not in self._inboxes]
            verb = "does" if len(missing) == 1 else "do"
            return Result("no_such_user", error=f"{' and '.join(missing)} {verb} not exist")
        inbox.append((sender, text))
        return Result("ok", len(inbox))

    def _fetch_messages(self, user: str, from_index: int, key: bytes = b"") -> Result:
        if too_long := self._check_length(user):
            return too_long
        inbox = self._inboxes.get(user)
        if inbox is None:
            return Result("no_such_user", error=f"user {user!r} does not exist")
        if from_index < 1:
            return Result("bad_index", error=f"from_index must be at least 1, got {from_index}")
        if from_index > len(inbox):
            return Result(
                "index_past_end",
                [],
                error=f"{user!r} has {len(inbox)} message(s); nothing from index {from_index} on",
            )
        return Result("ok", [[s, t] for s, t in inbox[from_index - 1 :]])

    def _check_length(self, user: str) -> Result | None:
        if len(user) > self.max_username:
            return Result(
                "username_too_long",
                error=f"username is {len(user)} characters long; the limit is {self.max_username}",
            )
        return None

    # -- snapshots ----------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Users in sorted order, so equal states always give equal bytes."""
        inboxes = {u: [[s, t] for s, t in self._inboxes[u]] for u in sorted(self._inboxes)}
        keys = {u: self._keys[u] for u in sorted(self._keys)}
        return msgpack.packb({"format": _FORMAT, "inboxes": inboxes, "keys": keys}, use_bin_type=True)

    def restore(self, data: bytes) -> None:
        try:
            state = msgpack.unpackb(data, raw=False)
            if state["format"] not in (1, _FORMAT):
                raise ValueError(f"unsupported chat snapshot format {state['format']!r}")
            inboxes = {str(u): [(str(s), str(t)) for s, t in msgs] for u, msgs in state["inboxes"].items()}
            # Format 1 had no passwords: its accounts keep an empty key, which no password gives.
            keys = {str(u): bytes(k) for u, k in state.get("keys", {}).items()}
            keys = {u: keys.get(u, b"") for u in inboxes}
        except Exception as exc:
            raise ValueError(f"corrupt chat snapshot: {exc!r}") from exc
        self._inboxes = inboxes
        self._keys = keys
