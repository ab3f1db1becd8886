"""The chat model: raftchat's six operations, their statuses, and chat-specific anomalies."""

from __future__ import annotations

from typing import Any

from checker import check
from checker.models import get_model
from histories.format import Op
from histories.synth import generate

GROUP = 0


class Chat:
    """Builds a chat history: ``call`` invokes, ``done`` completes, ``op`` does both at once."""

    def __init__(self) -> None:
        self.records: list[Op] = []
        self.pending: dict[int, tuple[str, dict[str, Any]]] = {}

    def call(self, process: int, f: str, group: int = GROUP, **args: Any) -> Chat:
        self.pending[process] = (f, dict(args, group=group))
        self.records.append(Op(len(self.records), "invoke", process, f, dict(args, group=group)))
        return self

    def done(self, process: int, status: str = "ok", value: Any = None, type: str = "ok") -> Chat:
        f, args = self.pending.pop(process)
        answer = {"status": status, "value": value} if type == "ok" else args
        self.records.append(Op(len(self.records), type, process, f, answer))
        return self

    def op(self, process: int, f: str, status: str = "ok", value: Any = None, **args: Any) -> Chat:
        return self.call(process, f, **args).done(process, status, value)

    def valid(self) -> bool | str:
        return check(self.records, get_model("chat"), shrink=False).valid


def two_users() -> Chat:
    return Chat().op(0, "create_account", user="alice").op(0, "create_account", user="bob")


def test_send_then_fetch() -> None:
    h = two_users().op(0, "send_message", value=1, sender="alice", to="bob", text="hi")
    assert h.op(1, "fetch_messages", value=[["alice", "hi"]], user="bob", from_index=1).valid() is True


def test_lost_message_is_caught() -> None:
    h = two_users().op(0, "send_message", value=1, sender="alice", to="bob", text="hi")
    assert h.op(1, "fetch_messages", "index_past_end", [], user="bob", from_index=1).valid() is False


def test_duplicated_message_is_caught() -> None:
    h = two_users().op(0, "send_message", value=1, sender="alice", to="bob", text="hi")
    assert h.op(1, "fetch_messages", value=[["alice", "hi"]] * 2, user="bob", from_index=1).valid() is False
    # and so is a second send acknowledged with the index of the first
    h = two_users().op(0, "send_message", value=1, sender="alice", to="bob", text="a")
    assert h.op(0, "send_message", value=1, sender="alice", to="bob", text="b").valid() is False


def test_stale_fetch_is_caught() -> None:
    h = two_users().op(0, "send_message", value=1, sender="alice", to="bob", text="a")
    h.op(0, "send_message", value=2, sender="alice", to="bob", text="b")
    assert h.op(1, "fetch_messages", value=[["alice", "a"]], user="bob", from_index=1).valid() is False


def test_fetch_concurrent_with_send_may_see_it_or_not() -> None:
    for seen in ([], [["alice", "hi"]]):
        h = two_users().call(0, "send_message", sender="alice", to="bob", text="hi")
        h.op(1, "fetch_messages", "ok" if seen else "index_past_end", seen, user="bob", from_index=1)
        assert h.done(0, value=1).valid() is True


def test_concurrent_sends_get_distinct_indexes_in_some_order() -> None:
    h = two_users().call(0, "send_message", sender="alice", to="bob", text="a")
    h.call(1, "send_message", sender="alice", to="bob", text="b").done(1, value=1).done(0, value=2)
    assert (
        h.op(2, "fetch_messages", value=[["alice", "b"], ["alice", "a"]], user="bob", from_index=1).valid()
        is True
    )
    h = two_users().call(0, "send_message", sender="alice", to="bob", text="a")
    h.call(1, "send_message", sender="alice", to="bob", text="b").done(1, value=1).done(0, value=2)
    assert (
        h.op(2, "fetch_messages", value=[["alice", "a"], ["alice", "b"]], user="bob", from_index=1).valid()
        is False
    )


def test_error_statuses_are_completed_operations() -> None:
    assert two_users().op(1, "create_account", "user_exists", user="alice").valid() is True
    assert two_users().op(1, "create_account", user="alice").valid() is False  # created twice
    assert Chat().op(0, "delete_account", "no_such_user", user="carol").valid() is True
    assert Chat().op(0, "create_account", "invalid_username", user="").valid() is True
    assert Chat().op(0, "create_account", "username_too_long", user="x" * 21).valid() is True
    assert Chat().op(0, "create_account", user="x" * 20).valid() is True
    assert (
        two_users()
        .op(0, "send_message", "message_too_long", sender="alice", to="bob", text="m" * 501)
        .valid()
    )
    assert (
        two_users().op(0, "send_message", value=1, sender="alice", to="bob", text="m" * 500).valid() is True
    )
    assert (
        two_users().op(0, "send_message", "no_such_user", sender="alice", to="carol", text="m").valid()
        is True
    )
    assert two_users().op(0, "fetch_messages", "bad_index", user="bob", from_index=0).valid() is True
    assert two_users().op(0, "fetch_messages", "index_past_end", [], user="bob", from_index=1).valid() is True
    assert two_users().op(0, "check_account", value=True, user="bob").valid() is True
    assert two_users().op(0, "check_account", value=False, user="bob").valid() is False


def test_list_accounts_is_sorted_and_matches_the_pattern() -> None:
    h = Chat().op(0, "create_account", user="g-bob").op(0, "create_account", user="g-alice")
    h.op(0, "create_account", user="h-carol")
    assert h.op(1, "list_accounts", value=["g-alice", "g-bob"], pattern="g-*").valid() is True
    h = Chat().op(0, "create_account", user="g-bob").op(0, "create_account", user="g-alice")
    assert h.op(1, "list_accounts", value=["g-bob", "g-alice"], pattern="g-*").valid() is False


def test_delete_drops_the_inbox() -> None:
    h = two_users().op(0, "send_message", value=1, sender="alice", to="bob", text="hi")
    h.op(0, "delete_account", user="bob").op(0, "create_account", user="bob")
    ok = Chat()
    ok.records = list(h.records)
    assert ok.op(1, "fetch_messages", "index_past_end", [], user="bob", from_index=1).valid() is True
    assert h.op(1, "fetch_messages", value=[["alice", "hi"]], user="bob", from_index=1).valid() is False


def test_info_send_may_or_may_not_have_been_delivered() -> None:
    for seen in ([], [["alice", "hi"]]):
        h = two_users().call(0, "send_message", sender="alice", to="bob", text="hi").done(0, type="info")
        h.op(1, "fetch_messages", "ok" if seen else "index_past_end", seen, user="bob", from_index=1)
        assert h.valid() is True
    # If it was delivered, a later send is second in the inbox.
    h = two_users().call(0, "send_message", sender="alice", to="bob", text="hi").done(0, type="info")
    h.op(1, "fetch_messages", value=[["alice", "hi"]], user="bob", from_index=1)
    assert h.op(1, "send_message", value=1, sender="alice", to="bob", text="again").valid() is False


def test_groups_are_checked_independently() -> None:
    h = two_users().op(0, "send_message", value=1, sender="alice", to="bob", text="hi")
    h.call(5, "create_account", group=1, user="zed").done(5)
    h.call(5, "create_account", group=1, user="zed").done(5)  # user_exists expected: anomaly in group 1
    result = check(h.records, get_model("chat"))
    assert result.valid is False and len(result.partition_ops) == 2
    failure = result.failure
    assert failure is not None and failure.partition == 1
    assert failure.stuck and failure.stuck[0].expected == "user_exists" and failure.stuck[0].observed == "ok"
    assert failure.minimal is not None and len(failure.minimal) == 2


def test_describe_state_and_ops() -> None:
    model = get_model("chat")
    h = two_users().op(0, "send_message", value=1, sender="alice", to="bob", text="hi")
    result = check(h.records, model)
    assert result.valid is True
    op = result.ops[2]
    assert model.describe_op(op) == "send_message('alice', 'bob', 'hi') -> ok 1"
    ok, state = model.step(model.init(), result.ops[0])
    assert ok and "alice" in model.describe_state(state)


def test_generated_chat_history_is_linearizable_and_a_forged_message_is_not() -> None:
    """Histories simulated with the service's answers (histories.synth): the model agrees."""
    records = generate("chat", clients=30, ops=3000, keys=6, info_rate=0.01, seed=7)
    assert check(records, get_model("chat"), shrink=False).valid is True
    fetches = [
        op for op in records if op.type == "ok" and op.f == "fetch_messages" and op.value["status"] == "ok"
    ]
    forged = fetches[len(fetches) // 2]
    forged.value = {"status": "ok", "value": [*forged.value["value"], ["mallory", "forged"]]}
    assert check(records, get_model("chat"), shrink=False).valid is False


def with_passwords() -> Chat:
    h = Chat().op(0, "create_account", user="alice", password="a")
    return h.op(0, "create_account", user="bob", password="b")


def test_a_wrong_password_must_be_refused() -> None:
    h = with_passwords()
    assert h.op(1, "fetch_messages", "bad_password", user="bob", from_index=1, password="a").valid() is True
    # A wrong password that got in is an anomaly: the account was acted for without its password.
    h = with_passwords()
    assert (
        h.op(1, "fetch_messages", "index_past_end", [], user="bob", from_index=1, password="a").valid()
        is False
    )
    h = with_passwords()
    assert h.op(1, "send_message", value=1, sender="alice", to="bob", text="x", password="b").valid() is False
    h = with_passwords()
    assert h.op(1, "delete_account", user="bob", password="a").valid() is False
    # ... and so is refusing the right one.
    h = with_passwords()
    assert (
        h.op(1, "send_message", "bad_password", sender="alice", to="bob", text="x", password="a").valid()
        is False
    )


def test_a_refused_request_changes_nothing() -> None:
    h = with_passwords().op(1, "delete_account", "bad_password", user="bob", password="a")
    h.op(1, "send_message", "bad_password", sender="alice", to="bob", text="x", password="b")
    assert h.op(2, "check_account", value=True, user="bob").valid() is True
    h = with_passwords().op(
        1, "send_message", "bad_password", sender="alice", to="bob", text="x", password="b"
    )
    assert (
        h.op(2, "fetch_messages", value=[["alice", "x"]], user="bob", from_index=1, password="b").valid()
        is False
    )


def test_a_password_belongs_to_one_incarnation_of_an_account() -> None:
    h = with_passwords().op(1, "delete_account", user="bob", password="b")
    h.op(1, "create_account", user="bob", password="c")
    assert h.op(2, "fetch_messages", "bad_password", user="bob", from_index=1, password="b").valid() is True
    # a missing account is answered as before, whatever the password
    h = with_passwords().op(1, "fetch_messages", "no_such_user", user="carol", from_index=1, password="z")
    assert h.valid() is True
