"""raftchat.shell: parsing and output without a cluster, then the real command against a live cluster."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pexpect
import pytest

from raftchat import config as cfg
from raftchat import shell
from raftchat.client import OperationError
from raftchat.shell import COMMANDS, Action, Shell, UsageError, help_text, parse
from raftchat.statemachine import Result

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("line", "user", "expected"),
    [
        ("create alice", None, Action("op", "create_account", {"user": "alice"})),
        ("check alice", None, Action("op", "check_account", {"user": "alice"})),
        ("check", "alice", Action("op", "check_account", {"user": "alice"})),
        ("list", None, Action("op", "list_accounts", {"pattern": "*"})),
        ("list 'a*'", None, Action("op", "list_accounts", {"pattern": "a*"})),
        ("delete bob", None, Action("op", "delete_account", {"user": "bob"})),
        ("delete", "bob", Action("op", "delete_account", {"user": "bob"})),
        (
            "send alice bob hello   there",
            None,
            Action("op", "send_message", {"sender": "alice", "to": "bob", "text": "hello there"}),
        ),
        (
            "send alice bob 'spaced   out'",
            None,
            Action("op", "send_message", {"sender": "alice", "to": "bob", "text": "spaced   out"}),
        ),
        (
            "send bob hi there",
            "alice",
            Action("op", "send_message", {"sender": "alice", "to": "bob", "text": "hi there"}),
        ),
        ("fetch bob", None, Action("op", "fetch_messages", {"user": "bob", "from_index": 1})),
        ("fetch bob 3", None, Action("op", "fetch_messages", {"user": "bob", "from_index": 3})),
        ("fetch", "bob", Action("op", "fetch_messages", {"user": "bob", "from_index": 1})),
        ("fetch 4", "bob", Action("op", "fetch_messages", {"user": "bob", "from_index": 4})),
        ("fetch carol", "bob", Action("op", "fetch_messages", {"user": "carol", "from_index": 1})),
        ("fetch carol 2", "bob", Action("op", "fetch_messages", {"user": "carol", "from_index": 2})),
        ("login alice", None, Action("login", args={"user": "alice"})),
        ("logout", "alice", Action("logout")),
        ("help", None, Action("help")),
        ("quit", None, Action("quit")),
        ("exit", None, Action("quit")),
        (
            "SEND alice bob hi",
            None,
            Action("op", "send_message", {"sender": "alice", "to": "bob", "text": "hi"}),
        ),
    ],
)
def test_parse(line, user, expected):
    assert parse(line, user) == expected


@pytest.mark.parametrize(
    ("line", "user", "message"),
    [
        ("frobnicate", None, "unknown command 'frobnicate'"),
        ("create", None, "usage: create USER"),
        ("create a b", None, "usage: create USER"),
        ("check", None, "usage: check [USER]"),
        ("delete", None, "usage: delete [USER]"),
        ("list a b", None, "usage: list [PATTERN]"),
        ("send alice bob", None, "expected FROM TO TEXT"),
        ("send bob", "alice", "FROM is alice"),
        ("fetch", None, "usage: fetch [USER] [FROM_INDEX]"),
        ("fetch bob x", None, "FROM_INDEX must be a whole number"),
        ("fetch a 1 2", None, "usage: fetch"),
        ("login", None, "usage: login USER"),
        ("help me", None, "takes no arguments"),
        ("send alice bob 'unfinished", None, "cannot parse the line"),
    ],
)
def test_parse_usage_errors(line, user, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        parse(line, user)


def test_blank_lines_do_nothing():
    assert parse("") is None
    assert parse("   ") is None


def test_login_and_logout_are_interactive_only():
    for line in ("login alice", "logout"):
        with pytest.raises(UsageError, match="only works in the interactive shell"):
            parse(line, interactive=False)


def test_help_lists_every_command_from_the_table():
    text = help_text(interactive=True)
    for command in COMMANDS:
        assert command.usage in text
    assert "login" not in help_text(interactive=False)


# ---------------------------------------------------------------------- the shell, with a scripted client


class ScriptedClient:
    """Stands in for SyncClient: answers from a dict of op -> Result or OperationError."""

    def __init__(self, answers: dict[str, Result | OperationError] | None = None, leader: str = "n2") -> None:
        self.answers = answers or {}
        self.leader: str | None = None
        self._leader = leader
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.node_ids = ["n1", "n2", "n3"]
        self.closed = False

    def request(self, op: str, args: dict[str, Any], *, timeout: float | None = None) -> Result:
        self.calls.append((op, args))
        answer = self.answers.get(op, Result("ok"))
        if isinstance(answer, OperationError):
            raise answer
        self.leader = self._leader
        return answer

    def close(self) -> None:
        self.closed = True


def make_shell(
    answers: dict[str, Any] | None = None, interactive: bool = False
) -> tuple[Shell, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    sh = Shell(ScriptedClient(answers), out, err, interactive=interactive, ask_password=lambda prompt: "pw")
    return sh, out, err


def test_fetch_prints_index_sender_and_text():
    sh, out, err = make_shell({"fetch_messages": Result("ok", [["alice", "hello"], ["carol", "hi"]])})
    assert sh.execute("fetch bob 3") == 0
    assert out.getvalue() == "3  alice: hello\n4  carol: hi\n"
    assert err.getvalue() == ""


def test_non_ok_status_is_explained_and_exits_1():
    sh, out, err = make_shell({"create_account": Result("user_exists", error="user 'alice' already exists")})
    assert sh.execute("create alice") == 1
    assert "that account already exists (user 'alice' already exists)" in err.getvalue()
    assert out.getvalue() == ""


def test_operation_failures_say_whether_they_took_effect():
    sh, _out, err = make_shell(
        {"send_message": OperationError("timeout", "no answer within 5s", definite=False)}
    )
    assert sh.execute("send a b hi") == 1
    assert "may or may not have taken effect" in err.getvalue()
    sh, _out, err = make_shell({"create_account": OperationError("timeout", "nobody home", definite=True)})
    assert sh.execute("create a") == 1
    assert "it did not take effect" in err.getvalue()


def test_usage_errors_exit_2_without_calling_the_cluster():
    sh, _out, err = make_shell()
    assert sh.execute("send alice") == 2
    assert "usage: send [FROM] TO TEXT..." in err.getvalue()
    assert sh.client.calls == []


def test_login_checks_the_password_and_keeps_it():
    sh, out, _err = make_shell(
        {"check_account": Result("ok", True), "fetch_messages": Result("bad_password", error="no")},
        interactive=True,
    )
    assert sh.execute("login alice") == 1
    assert "wrong password" in out.getvalue() and sh.user is None
    sh.client.answers["fetch_messages"] = Result("index_past_end", [])
    assert sh.execute("login alice") == 0 and sh.user == "alice"
    sh.ask_password = lambda prompt: pytest.fail(f"asked {prompt!r} again")
    assert sh.execute("send bob hi") == 0
    assert sh.client.calls[-1] == (
        "send_message",
        {"sender": "alice", "to": "bob", "text": "hi", "password": "pw"},
    )


def test_create_asks_twice_and_a_mismatch_creates_nothing():
    answers = iter(["one", "two"])
    sh, out, _err = make_shell(interactive=True)
    sh.ask_password = lambda prompt: next(answers)
    assert sh.execute("create carol") == 2
    assert "differ" in out.getvalue() and sh.client.calls == []


def test_one_command_reads_the_password_from_the_environment_or_a_file(monkeypatch, tmp_path):
    monkeypatch.delenv(shell.PASSWORD_ENV, raising=False)
    monkeypatch.delenv(shell.PASSWORD_FILE_ENV, raising=False)
    assert shell.script_password()("password: ") is None
    secret = tmp_path / "pw"
    secret.write_text("from-file\nignored\n")
    assert shell.script_password(str(secret))("password: ") == "from-file"
    monkeypatch.setenv(shell.PASSWORD_FILE_ENV, str(secret))
    assert shell.script_password()("password: ") == "from-file"
    monkeypatch.setenv(shell.PASSWORD_ENV, "from-env")
    assert shell.script_password(str(secret))("password: ") == "from-env"
    out, err = io.StringIO(), io.StringIO()
    sh = Shell(ScriptedClient(), out, err, interactive=False, ask_password=lambda prompt: None)
    assert sh.execute("fetch bob") == 2
    assert "no password given" in err.getvalue() and sh.client.calls == []


def test_login_requires_an_existing_account():
    sh, out, _err = make_shell({"check_account": Result("ok", False)}, interactive=True)
    assert sh.execute("login ghost") == 1
    assert "there is no account ghost" in out.getvalue()  # interactive errors stay in the conversation
    assert sh.user is None
    sh.client.answers["check_account"] = Result("ok", True)
    assert sh.execute("login alice") == 0
    assert sh.user == "alice"
    assert sh.prompt() == "[n2 alice]> "


def test_deleting_ones_own_account_asks_first_and_logs_out():
    answers = iter(["n", "yes"])
    sh, out, _err = make_shell({"check_account": Result("ok", True)}, interactive=True)
    sh.ask = lambda question: next(answers)
    sh.execute("login alice")
    assert sh.execute("delete") == 0
    assert "not deleted" in out.getvalue() and sh.user == "alice"
    assert not any(op == "delete_account" for op, _ in sh.client.calls)
    assert sh.execute("delete alice") == 0  # named explicitly, still one's own: asked again
    assert ("delete_account", {"user": "alice", "password": "pw"}) in sh.client.calls
    assert sh.user is None and sh.prompt() == "[n2]> "
    assert "deleted account alice" in out.getvalue() and "logged out" in out.getvalue()


def test_deleting_another_account_or_with_c_does_not_ask():
    sh, _out, _err = make_shell({"check_account": Result("ok", True)}, interactive=True)
    sh.ask = lambda question: pytest.fail(f"asked {question!r}")
    sh.execute("login alice")
    assert sh.execute("delete bob") == 0 and sh.user == "alice"
    sh, _out, _err = make_shell()
    assert sh.execute("delete alice") == 0
    assert sh.client.calls == [("delete_account", {"user": "alice", "password": "pw"})]


def test_end_of_input_at_the_question_keeps_the_account():
    sh, out, _err = make_shell({"check_account": Result("ok", True)}, interactive=True)
    sh.ask = lambda question: None
    sh.execute("login alice")
    assert sh.execute("delete") == 0 and sh.user == "alice"
    assert not any(op == "delete_account" for op, _ in sh.client.calls)


def test_an_empty_inbox_is_no_error():
    sh, out, err = make_shell({"fetch_messages": Result("index_past_end", [])})
    assert sh.execute("fetch bob") == 0
    assert out.getvalue() == err.getvalue() == ""
    assert sh.execute("fetch bob 3") == 1  # past the end of a non-empty inbox: still said
    assert "no messages there yet" in err.getvalue()


@pytest.mark.parametrize("command", ["", "   "])
def test_an_empty_command_is_a_usage_error(command):
    sh, out, err = make_shell()
    assert sh.execute(command) == 2
    assert "no command given" in err.getvalue() and sh.client.calls == []


def test_prompt_before_any_leader_is_known():
    sh, _out, _err = make_shell(interactive=True)
    assert sh.prompt() == "[?]> "


def test_run_interactive_from_a_pipe(monkeypatch, tmp_path):
    scripted = ScriptedClient(
        {
            "check_account": Result("ok", True),
            "send_message": Result("ok", 1),
            "list_accounts": Result("ok", []),
        }
    )
    monkeypatch.setattr(shell, "SyncClient", lambda config: scripted)
    path = tmp_path / "cluster.yaml"
    cfg.dump(cfg.local_cluster(3, 20000), path)
    stdin = io.StringIO("login alice\nalice-pw\nsend bob hi there\nnonsense\nquit\ncreate never-run\n")
    stdout = io.StringIO()
    assert shell.run(str(path), stdin=stdin, stdout=stdout) == 0
    assert ("fetch_messages", {"user": "alice", "from_index": 1, "password": "alice-pw"}) in scripted.calls
    sent = {"sender": "alice", "to": "bob", "text": "hi there", "password": "alice-pw"}
    assert ("send_message", sent) in scripted.calls
    assert not any(op == "create_account" for op, _ in scripted.calls)
    assert "unknown command 'nonsense'" in stdout.getvalue()
    assert scripted.closed


def test_run_one_command(monkeypatch, tmp_path, capsys):
    scripted = ScriptedClient({"list_accounts": Result("ok", ["alice", "bob"])})
    monkeypatch.setattr(shell, "SyncClient", lambda config: scripted)
    path = tmp_path / "cluster.yaml"
    cfg.dump(cfg.local_cluster(3, 20000), path)
    assert shell.run(str(path), "list") == 0
    assert capsys.readouterr().out == "alice\nbob\n"
    assert shell.run(str(path), "login alice") == 2
    assert "only works in the interactive shell" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read cluster file"),
        ("nodes: [unclosed", "not valid YAML"),
        ("cluster_id: x\nnodes: []\n", "'nodes' must be a non-empty list"),
    ],
)
def test_bad_cluster_file_is_exit_2_with_a_clear_message(tmp_path, content, message):
    path = tmp_path / "cluster.yaml"
    if content is not None:
        path.write_text(content)
    err = io.StringIO()
    assert shell.run(str(path), "list", stdout=io.StringIO(), stderr=err) == 2
    assert err.getvalue().startswith("raftchat client: ")
    assert message in err.getvalue()


# ---------------------------------------------------------------------- a real cluster


def _env() -> dict[str, str]:
    return {**os.environ, "TERM": "dumb"}


def _interactive(cluster_file) -> pexpect.spawn:
    """The interactive client on a terminal, as a person starts it."""
    return pexpect.spawn(
        sys.executable,
        ["-m", "raftchat", "client", "--cluster", str(cluster_file)],
        cwd=str(ROOT),
        env=_env(),
        encoding="utf-8",
        timeout=20,
    )


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def one(cluster: Path, command: str, password: str | None = "pw", *extra: str) -> subprocess.CompletedProcess:
    """`raftchat client -c COMMAND`, as a script would run it, the password in the environment."""
    env = {k: v for k, v in _env().items() if not k.startswith("RAFTCHAT_PASSWORD")}
    if password is not None:
        env["RAFTCHAT_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "raftchat", "client", "--cluster", str(cluster), "-c", command, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


PROMPT = r"\[n\d+\]> "


def user_prompt(user: str) -> str:
    return rf"\[n\d+ {re.escape(user)}\]> "


def give_password(child: pexpect.spawn, password: str, new: bool = False) -> None:
    """Answer the shell's password prompt(s); what is typed must not be echoed."""
    child.expect("new password for " if new else "password for ")
    child.sendline(password)
    if new:
        child.expect("again, the password for ")
        child.sendline(password)


def test_interactive_session(live_cluster):
    alice, bob = unique("a"), unique("b")
    child = _interactive(live_cluster)
    try:
        child.expect("type 'help'")
        child.expect(PROMPT)  # the start-up probe found the leader before the first prompt

        child.sendline("help")
        child.expect("commands:")
        for command in COMMANDS:
            child.expect_exact(command.usage)
        child.expect(PROMPT)

        child.sendline(f"create {alice}")
        give_password(child, "alice-secret", new=True)
        child.expect(f"created account {alice}")
        assert "alice-secret" not in child.before  # typed without echo
        child.expect(PROMPT)
        child.sendline(f"create {bob}")
        give_password(child, "bob-secret", new=True)
        child.expect(PROMPT)
        child.sendline(f"create {alice}")
        give_password(child, "other", new=True)
        child.expect("that account already exists")  # an error status, shown nicely
        child.expect(PROMPT)

        child.sendline(f"login {alice}")
        give_password(child, "bob-secret")
        child.expect("wrong password")
        child.expect(PROMPT)
        child.sendline(f"login {alice}")
        give_password(child, "alice-secret")
        child.expect(f"logged in as {alice}")
        child.expect(user_prompt(alice))
        child.sendline(f"send {bob} hi there")
        child.expect(rf"sent to {bob} \(message 1 in their inbox\)")
        child.expect(user_prompt(alice))
        child.sendline(f"send {bob} 'second  one'")
        child.expect(user_prompt(alice))

        child.sendline(f"login {bob}")
        give_password(child, "bob-secret")
        child.expect(user_prompt(bob))
        child.sendline("fetch")
        child.expect_exact(f"1  {alice}: hi there")
        child.expect_exact(f"2  {alice}: second  one")
        child.expect(user_prompt(bob))
        child.sendline("fetch 2")
        child.expect_exact(f"2  {alice}: second  one")
        child.expect(user_prompt(bob))
        child.sendline("fetch 3")
        child.expect("no messages there yet")
        child.expect(user_prompt(bob))

        child.sendline(f"list {alice}*")
        child.expect_exact(alice)
        child.expect(user_prompt(bob))
        child.sendline("send")
        child.expect_exact("usage: send [FROM] TO TEXT...")
        child.expect(user_prompt(bob))
        child.sendline("dance")
        child.expect("unknown command 'dance'")
        child.expect(user_prompt(bob))
        child.sendline("login nobody-at-all")
        child.expect("there is no account nobody-at-all")
        child.expect(user_prompt(bob))

        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_interactive_delete_of_ones_own_account(live_cluster):
    erin = unique("e")
    assert one(live_cluster, f"create {erin}").returncode == 0
    child = _interactive(live_cluster)
    try:
        child.expect(PROMPT)
        child.sendline(f"login {erin}")
        give_password(child, "pw")
        child.expect(user_prompt(erin))
        child.sendline("fetch")
        child.expect_exact("(the inbox is empty)")
        child.expect(user_prompt(erin))
        child.sendline("delete")
        child.expect_exact(f"delete your own account {erin} and its inbox? [y/N] ")
        child.sendline("")
        child.expect("not deleted")
        child.expect(user_prompt(erin))
        child.sendline("delete")
        child.expect_exact("[y/N] ")
        child.sendline("y")
        child.expect(f"deleted account {erin}")
        child.expect("logged out")
        child.expect(PROMPT)  # the prompt no longer names the deleted user
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert one(live_cluster, f"check {erin}").stdout.strip() == f"{erin} does not exist"


def test_interactive_exit_at_end_of_input(live_cluster):
    child = _interactive(live_cluster)
    try:
        child.expect(PROMPT)
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_one_command_exit_codes(live_cluster, tmp_path):
    carol, dave = unique("c"), unique("d")
    done = one(live_cluster, f"create {carol}")
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, f"created account {carol}", "")
    assert one(live_cluster, f"create {dave}").returncode == 0

    again = one(live_cluster, f"create {carol}")
    assert again.returncode == 1
    assert "already exists" in again.stderr and again.stdout == ""

    sent = one(live_cluster, f"send {carol} {dave} hello world")
    assert sent.returncode == 0, sent.stderr
    wrong = one(live_cluster, f"send {carol} {dave} forged", "not-carols")
    assert wrong.returncode == 1 and "wrong password" in wrong.stderr
    assert one(live_cluster, f"fetch {dave}", None).returncode == 2  # no password: nothing asked
    password_file = tmp_path / "password"
    password_file.write_text("not-daves\n")
    refused = one(live_cluster, f"fetch {dave}", None, "--password-file", str(password_file))
    assert refused.returncode == 1 and "wrong password" in refused.stderr and carol not in refused.stdout
    fetched = one(live_cluster, f"fetch {dave}")
    assert (fetched.returncode, fetched.stdout) == (0, f"1  {carol}: hello world\n")
    past = one(live_cluster, f"fetch {dave} 2")
    assert past.returncode == 1 and "no messages there yet" in past.stderr
    empty = one(live_cluster, f"fetch {carol}")
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "", "")
    blank = one(live_cluster, "")
    assert blank.returncode == 2 and "no command given" in blank.stderr

    listed = one(live_cluster, f"list {carol}")
    assert (listed.returncode, listed.stdout) == (0, f"{carol}\n")
    assert one(live_cluster, f"check {carol}").stdout.strip() == f"{carol} exists"
    assert one(live_cluster, f"delete {carol}").returncode == 0
    gone = one(live_cluster, f"delete {carol}")
    assert gone.returncode == 1 and "no such account" in gone.stderr

    too_long = one(live_cluster, f"create {'x' * 50}")
    assert too_long.returncode == 1 and "username is too long" in too_long.stderr

    for bad in ("send only-two args", "login someone", "fly away", "fetch x notanumber"):
        usage = one(live_cluster, bad)
        assert usage.returncode == 2, bad
        assert usage.stderr.startswith("error: "), bad
    assert one(live_cluster, "help").returncode == 0


def test_one_command_with_a_bad_cluster_file(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text("cluster_id: x\n")
    proc = subprocess.run(
        [sys.executable, "-m", "raftchat", "client", "--cluster", str(path), "-c", "list"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "'nodes' must be a non-empty list" in proc.stderr
