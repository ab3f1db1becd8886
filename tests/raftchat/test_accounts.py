"""Accounts with passwords on a live cluster: whose inbox is whose.

Fetching, sending as and deleting an account need its password; a wrong one is answered
``bad_password`` by the leader before anything is proposed, so nothing about it reaches the
log. The password itself never reaches a node's disk: only its scrypt key does.
"""

from __future__ import annotations

import asyncio

from raftchat.accounts import KeyDeriver
from raftchat.client import OperationError, SyncClient

WRITES_REFUSED = 5


def _log_length(cluster) -> tuple[int, int]:
    status = cluster.status(cluster.wait_for_leader())
    return status["term"], status["last_index"]


def test_another_users_account_needs_their_password(cluster) -> None:
    with SyncClient(cluster.config) as client:
        assert client.call("create_account", user="alice", password="alice-pw").status == "ok"
        assert client.call("create_account", user="bob", password="bob-pw").status == "ok"
        assert (
            client.call("send_message", sender="alice", to="bob", text="hi", password="alice-pw").value == 1
        )

        term, length = _log_length(cluster)
        refused = [
            client.call("send_message", sender="bob", to="alice", text="as bob", password="alice-pw"),
            client.call("send_message", sender="alice", to="bob", text="forged", password="bob-pw"),
            client.call("delete_account", user="bob", password="alice-pw"),
            client.call("delete_account", user="bob", password=""),
            client.call("send_message", sender="bob", to="bob", text="x", password="BOB-PW"),
        ]
        assert [r.status for r in refused] == ["bad_password"] * WRITES_REFUSED
        fetch = client.call("fetch_messages", user="bob", from_index=1, password="alice-pw")
        assert fetch.status == "bad_password" and fetch.value is None
        after_term, after_length = _log_length(cluster)
        if after_term == term:  # no election meanwhile (a new leader appends its own no-op)
            assert after_length == length, "a refused request reached the log"

        # With the password, they work; check and list stay public.
        assert client.call("fetch_messages", user="bob", from_index=1, password="bob-pw").value == [
            ["alice", "hi"]
        ]
        assert client.call("check_account", user="bob").value is True
        assert client.call("list_accounts", pattern="*").value == ["alice", "bob"]
        assert client.call("delete_account", user="bob", password="bob-pw").status == "ok"
        assert client.call("check_account", user="bob").value is False
        # A new account of the same name has its own password.
        assert client.call("create_account", user="bob", password="new-pw").status == "ok"
        assert (
            client.call("fetch_messages", user="bob", from_index=1, password="bob-pw").status
            == "bad_password"
        )
        assert (
            client.call("fetch_messages", user="bob", from_index=1, password="new-pw").status
            == "index_past_end"
        )

        for op, args in (
            ("fetch_messages", {"user": "alice", "from_index": 1}),
            ("create_account", {"user": "carol"}),
            ("send_message", {"sender": "alice", "to": "alice", "text": "x", "password": 5}),
            ("fetch_messages", {"user": "alice", "from_index": 1, "password": "x", "key": b"k" * 32}),
        ):
            try:
                answer = client.call(op, **args)
            except OperationError as exc:
                assert exc.status == "bad_request" and exc.definite, exc
            else:
                raise AssertionError(f"{op} {args} answered {answer}")
    cluster.stop_all()
    for node_id in cluster.ids:
        for path in (cluster.data_dir / node_id).rglob("*"):
            if path.is_file() and path.name != "node.log":
                data = path.read_bytes()
                for password in (b"alice-pw", b"bob-pw", b"new-pw"):
                    assert password not in data, f"{password!r} is in {path}"


def test_an_operation_name_of_any_type_is_left_to_validation() -> None:
    """A name that is a map or a list must not crash the password step (found by the garbage fault)."""
    deriver = KeyDeriver("c1", {"send_message": "sender"})
    for name in ({"a": 1}, [1, 2], None, 3, b"send_message"):
        op = {"op": name, "password": "p", "sender": "amy"}
        assert asyncio.run(deriver.replace_password(op)) is op
