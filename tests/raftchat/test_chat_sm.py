"""The chat state machine: every operation, every status, determinism and snapshots."""

from __future__ import annotations

import random

import pytest

from raftchat.chat import ChatMachine
from raftchat.statemachine import InvalidRequest, Result, validate


def key_of(user: object) -> bytes:
    """A stand-in for the node's scrypt key: the machine only stores and compares keys."""
    return f"key of {user}".encode()


def run(machine: ChatMachine, op: str, **args: object) -> Result:
    """Apply ``op``; an op that takes a key gets the acting user's right one unless given."""
    if op in machine.keyed and "key" not in args:
        args["key"] = key_of(args[machine.keyed[op]])
    return machine.apply(validate(machine, {"op": op, **args}))


@pytest.fixture
def chat() -> ChatMachine:
    machine = ChatMachine(max_username=8, max_message=10)
    for user in ("alice", "bob"):
        assert run(machine, "create_account", user=user) == Result("ok")
    return machine


def assert_error(result: Result, status: str) -> None:
    assert result.status == status
    assert result.error, "every non-ok result explains itself"


def test_machine_identity() -> None:
    machine = ChatMachine()
    assert machine.name == "chat"
    assert set(machine.ops) == {
        "create_account",
        "check_account",
        "list_accounts",
        "delete_account",
        "send_message",
        "fetch_messages",
    }
    read_only = {name for name, spec in machine.ops.items() if spec.read_only}
    assert read_only == {"check_account", "list_accounts", "fetch_messages"}


def test_create_account(chat: ChatMachine) -> None:
    assert run(chat, "create_account", user="carol") == Result("ok", None)
    assert_error(run(chat, "create_account", user="carol"), "user_exists")
    assert_error(run(chat, "create_account", user=""), "invalid_username")
    assert run(chat, "create_account", user="x" * 8).status == "ok"
    assert_error(run(chat, "create_account", user="x" * 9), "username_too_long")
    assert run(chat, "check_account", user="x" * 8).value is True


def test_check_account(chat: ChatMachine) -> None:
    assert run(chat, "check_account", user="alice") == Result("ok", True)
    assert run(chat, "check_account", user="zed") == Result("ok", False)
    assert run(chat, "check_account", user="") == Result("ok", False)
    assert_error(run(chat, "check_account", user="y" * 9), "username_too_long")


def test_list_accounts_patterns(chat: ChatMachine) -> None:
    for user in ("al", "alfred", "Alice", "b1", "b2", "c*"):
        run(chat, "create_account", user=user)
    listing = lambda pattern: run(chat, "list_accounts", pattern=pattern).value  # noqa: E731
    assert listing("*") == sorted(["alice", "bob", "al", "alfred", "Alice", "b1", "b2", "c*"])
    assert listing("al*") == ["al", "alfred", "alice"]  # case-sensitive everywhere
    assert listing("?l") == ["al"]
    assert listing("b[12]") == ["b1", "b2"]
    assert listing("b[!1]") == ["b2"]
    assert listing("[A-Z]*") == ["Alice"]
    assert listing("c[*]") == ["c*"]
    assert listing("nobody*") == []
    assert listing("[") == []  # an unclosed bracket is a literal, not an error


def test_delete_account_drops_inbox(chat: ChatMachine) -> None:
    assert run(chat, "send_message", sender="bob", to="alice", text="hi") == Result("ok", 1)
    assert run(chat, "delete_account", user="alice") == Result("ok")
    assert run(chat, "check_account", user="alice").value is False
    assert_error(run(chat, "delete_account", user="alice"), "no_such_user")
    assert_error(run(chat, "fetch_messages", user="alice", from_index=1), "no_such_user")
    assert_error(run(chat, "delete_account", user="z" * 9), "username_too_long")
    # A re-created account starts with an empty inbox: the undelivered "hi" is gone.
    run(chat, "create_account", user="alice")
    result = run(chat, "fetch_messages", user="alice", from_index=1)
    assert (result.status, result.value) == ("index_past_end", [])
    assert run(chat, "send_message", sender="bob", to="alice", text="again") == Result("ok", 1)


def test_send_message(chat: ChatMachine) -> None:
    assert run(chat, "send_message", sender="alice", to="bob", text="one") == Result("ok", 1)
    assert run(chat, "send_message", sender="bob", to="bob", text="self") == Result("ok", 2)
    assert run(chat, "send_message", sender="alice", to="bob", text="x" * 10) == Result("ok", 3)
    assert run(chat, "send_message", sender="alice", to="bob", text="") == Result("ok", 4)
    assert run(chat, "send_message", sender="bob", to="alice", text="back") == Result("ok", 1)


def test_send_message_errors(chat: ChatMachine) -> None:
    result = run(chat, "send_message", sender="zed", to="bob", text="hi")
    assert_error(result, "no_such_user")
    assert "sender 'zed'" in result.error and "bob" not in result.error
    result = run(chat, "send_message", sender="alice", to="zed", text="hi")
    assert_error(result, "no_such_user")
    assert "recipient 'zed'" in result.error and "alice" not in result.error
    result = run(chat, "send_message", sender="yan", to="zed", text="hi")
    assert "sender 'yan'" in result.error and "recipient 'zed'" in result.error
    assert_error(run(chat, "send_message", sender="alice", to="bob", text="x" * 11), "message_too_long")
    assert_error(run(chat, "send_message", sender="a" * 9, to="bob", text="hi"), "username_too_long")
    assert_error(run(chat, "send_message", sender="alice", to="b" * 9, text="hi"), "username_too_long")
    # Nothing was delivered by any failed send.
    assert run(chat, "fetch_messages", user="bob", from_index=1).status == "index_past_end"


def test_fetch_messages(chat: ChatMachine) -> None:
    for text in ("m1", "m2", "m3"):
        run(chat, "send_message", sender="alice", to="bob", text=text)
    run(chat, "send_message", sender="bob", to="bob", text="m4")
    fetch = lambda i: run(chat, "fetch_messages", user="bob", from_index=i)  # noqa: E731
    assert fetch(1) == Result("ok", [["alice", "m1"], ["alice", "m2"], ["alice", "m3"], ["bob", "m4"]])
    assert fetch(3) == Result("ok", [["alice", "m3"], ["bob", "m4"]])
    assert fetch(4) == Result("ok", [["bob", "m4"]])
    past = fetch(5)
    assert_error(past, "index_past_end")
    assert past.value == []
    assert fetch(500).status == "index_past_end"
    assert_error(fetch(0), "bad_index")
    assert_error(fetch(-3), "bad_index")
    assert_error(run(chat, "fetch_messages", user="zed", from_index=1), "no_such_user")
    assert_error(run(chat, "fetch_messages", user="q" * 9, from_index=1), "username_too_long")
    # Fetching is a read: it does not consume messages.
    assert fetch(1).value == fetch(1).value


def test_validation_rejects_bad_arguments() -> None:
    machine = ChatMachine()
    with pytest.raises(InvalidRequest):
        validate(machine, {"op": "fetch_messages", "user": "a", "from_index": "1"})
    with pytest.raises(InvalidRequest):
        validate(machine, {"op": "fetch_messages", "user": "a", "from_index": True})
    with pytest.raises(InvalidRequest):
        validate(machine, {"op": "send_message", "sender": "a", "to": "b"})
    with pytest.raises(InvalidRequest):
        machine.apply({"op": "drop_tables"})


def random_ops(rng: random.Random, count: int) -> list[dict]:
    users = ["ann", "ben", "cat", "dan", "a" * 25, ""]
    ops: list[dict] = []
    for _ in range(count):
        kind = rng.choice(["create", "create", "delete", "send", "send", "send", "fetch", "check", "list"])
        if kind == "create":
            ops.append({"op": "create_account", "user": rng.choice(users)})
        elif kind == "delete":
            ops.append({"op": "delete_account", "user": rng.choice(users)})
        elif kind == "send":
            text = "x" * rng.choice([0, 5, 500, 501])
            ops.append(
                {"op": "send_message", "sender": rng.choice(users), "to": rng.choice(users), "text": text}
            )
        elif kind == "fetch":
            ops.append({"op": "fetch_messages", "user": rng.choice(users), "from_index": rng.randint(-1, 6)})
        elif kind == "check":
            ops.append({"op": "check_account", "user": rng.choice(users)})
        else:
            ops.append({"op": "list_accounts", "pattern": rng.choice(["*", "?a?", "[ab]*", "d*"])})
    return ops


@pytest.mark.parametrize("seed", range(5))
def test_deterministic(seed: int) -> None:
    ops = random_ops(random.Random(seed), 400)
    first, second = ChatMachine(), ChatMachine()
    results_first = [run(first, **op) for op in ops]
    results_second = [run(second, **op) for op in ops]
    assert results_first == results_second
    assert first.snapshot() == second.snapshot()


def test_snapshot_bytes_do_not_depend_on_creation_order() -> None:
    one, two = ChatMachine(), ChatMachine()
    for user in ("ann", "ben"):
        run(one, "create_account", user=user)
    for user in ("ben", "ann"):
        run(two, "create_account", user=user)
    assert one.snapshot() == two.snapshot()


def test_snapshot_restore_round_trip() -> None:
    ops = random_ops(random.Random(42), 300)
    original = ChatMachine()
    for op in ops[:200]:
        run(original, **op)
    copy = ChatMachine()
    run(copy, "create_account", user="stale")  # restore replaces, not merges
    copy.restore(original.snapshot())
    assert copy.snapshot() == original.snapshot()
    assert run(copy, "check_account", user="stale").value is False
    for op in ops[200:]:
        assert run(original, **op) == run(copy, **op)
    assert copy.snapshot() == original.snapshot()


def test_restore_rejects_garbage() -> None:
    machine = ChatMachine()
    run(machine, "create_account", user="ann")
    with pytest.raises(ValueError, match="corrupt chat snapshot"):
        machine.restore(b"\x93garbage")
    assert run(machine, "check_account", user="ann").value is True  # state untouched


def test_an_account_is_acted_for_only_with_its_key(chat: ChatMachine) -> None:
    assert run(chat, "send_message", sender="alice", to="bob", text="hi") == Result("ok", 1)
    wrong = b"another key"
    assert_error(run(chat, "send_message", sender="alice", to="bob", text="x", key=wrong), "bad_password")
    assert_error(run(chat, "fetch_messages", user="bob", from_index=1, key=key_of("alice")), "bad_password")
    assert_error(run(chat, "delete_account", user="bob", key=wrong), "bad_password")
    # bad_password comes first, before the op's own checks, and changes nothing.
    assert_error(run(chat, "fetch_messages", user="bob", from_index=0, key=wrong), "bad_password")
    assert_error(
        run(chat, "send_message", sender="alice", to="zed", text="x" * 11, key=wrong), "bad_password"
    )
    assert run(chat, "fetch_messages", user="bob", from_index=1) == Result("ok", [["alice", "hi"]])
    # Not an account: the usual checks answer, whatever the key.
    assert_error(run(chat, "fetch_messages", user="zed", from_index=1, key=wrong), "no_such_user")
    # Only the sender's key counts: the recipient's is not asked for.
    assert run(chat, "send_message", sender="bob", to="alice", text="yo").status == "ok"
    # Deleted and created again: the new key is the one that counts.
    assert run(chat, "delete_account", user="bob") == Result("ok")
    assert run(chat, "create_account", user="bob", key=wrong) == Result("ok")
    assert_error(run(chat, "fetch_messages", user="bob", from_index=1), "bad_password")
    assert run(chat, "fetch_messages", user="bob", from_index=1, key=wrong).status == "index_past_end"
    # check and list stay public.
    assert run(chat, "check_account", user="bob") == Result("ok", True)
    assert run(chat, "list_accounts", pattern="*") == Result("ok", ["alice", "bob"])


def test_keys_survive_a_snapshot(chat: ChatMachine) -> None:
    copy = ChatMachine(max_username=8, max_message=10)
    copy.restore(chat.snapshot())
    assert copy.snapshot() == chat.snapshot()
    assert_error(run(copy, "fetch_messages", user="bob", from_index=1, key=b"no"), "bad_password")
    assert run(copy, "fetch_messages", user="bob", from_index=1).status == "index_past_end"
