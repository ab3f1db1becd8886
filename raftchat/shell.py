"""The ``raftchat client`` command: an interactive chat shell, or one command with ``-c``.

Both modes share one command table (:data:`COMMANDS`), so ``help``, parsing and usage
messages cannot drift apart. Parsing is pure (no I/O, no cluster) so it is unit-testable;
only :class:`Shell` talks to the cluster.

Exit codes for ``-c``: 0 success, 1 the cluster answered with an error or could not be
reached, 2 usage error (an empty command too) or unusable cluster file. Interactive mode
returns 0 on quit/EOF.

Accounts have passwords. The interactive shell asks for one without echoing it: at
``create`` (twice), at ``login`` (checked there, then kept for the session), and for an op on
another account's behalf. ``-c`` never asks and never takes a password on its command line:
it reads the environment variable ``RAFTCHAT_PASSWORD``, or the first line of the file that
``--password-file`` or ``RAFTCHAT_PASSWORD_FILE`` names.

Deleting one's own account in the interactive shell asks first (``-c`` never asks: a
script said what it meant), and logs out after it. Fetching an empty inbox is not an
error: a script gets no lines and exit 0.
"""

from __future__ import annotations

import functools
import getpass
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from raftchat.chat import ChatMachine
from raftchat.client import OperationError, SyncClient
from raftchat.config import ClusterConfig, ConfigError, load
from raftchat.statemachine import Result

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
PROBE_TIMEOUT = 2.0  # interactive start-up: find the leader for the prompt, but don't hang if there is none
PASSWORD_ENV, PASSWORD_FILE_ENV = "RAFTCHAT_PASSWORD", "RAFTCHAT_PASSWORD_FILE"
KEYED = ChatMachine.keyed  # op -> the argument naming the account whose password it takes


class UsageError(ValueError):
    """The command line cannot be turned into an action; the message says how to fix it."""


@dataclass(frozen=True)
class Action:
    """What a parsed command asks for: a cluster operation, or a shell-local ``kind``."""

    kind: str  # "op", "login", "logout", "help", "quit"
    op: str = ""
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    """One row of the command table: how to call it, what it does, and how to parse it.

    ``build(args, user)`` gets the words after the command name and the logged-in user
    (or None), and returns the Action or raises UsageError.
    """

    name: str
    usage: str
    summary: str
    build: Callable[[list[str], str | None], Action]
    interactive_only: bool = False
    aliases: tuple[str, ...] = ()


def _user_arg(args: list[str], user: str | None, what: str = "USER") -> str:
    """A lone USER argument that the logged-in user may stand in for."""
    if len(args) == 1:
        return args[0]
    if not args and user is not None:
        return user
    raise UsageError(f"expected {what}" + ("" if user is None else " (or nothing, for the logged-in user)"))


def _index(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"FROM_INDEX must be a whole number, got {text!r}") from None


def _no_args(kind: str) -> Callable[[list[str], str | None], Action]:
    def build(args: list[str], user: str | None) -> Action:
        if args:
            raise UsageError("takes no arguments")
        return Action(kind)

    return build


def _create(args: list[str], user: str | None) -> Action:
    if len(args) != 1:
        raise UsageError("expected exactly one USER")
    return Action("op", "create_account", {"user": args[0]})


def _check(args: list[str], user: str | None) -> Action:
    return Action("op", "check_account", {"user": _user_arg(args, user)})


def _list(args: list[str], user: str | None) -> Action:
    if len(args) > 1:
        raise UsageError("expected at most one PATTERN (quote it if it has spaces)")
    return Action("op", "list_accounts", {"pattern": args[0] if args else "*"})


def _delete(args: list[str], user: str | None) -> Action:
    return Action("op", "delete_account", {"user": _user_arg(args, user)})


def _send(args: list[str], user: str | None) -> Action:
    # Once logged in, FROM is always the logged-in user: "send bob hi there" would be
    # ambiguous if an explicit FROM were still allowed.
    if user is None:
        if len(args) < 3:
            raise UsageError("expected FROM TO TEXT...")
        sender, to, words = args[0], args[1], args[2:]
    else:
        if len(args) < 2:
            raise UsageError(f"expected TO TEXT... (you are logged in, so FROM is {user})")
        sender, to, words = user, args[0], args[1:]
    return Action("op", "send_message", {"sender": sender, "to": to, "text": " ".join(words)})


def _fetch(args: list[str], user: str | None) -> Action:
    # Logged in, a lone argument that is a number is FROM_INDEX; otherwise it's USER.
    if len(args) == 2:
        target, start = args[0], _index(args[1])
    elif len(args) == 1 and user is not None and args[0].lstrip("-").isdigit():
        target, start = user, _index(args[0])
    elif len(args) <= 1:
        target, start = _user_arg(args, user), 1
    else:
        raise UsageError("expected USER [FROM_INDEX]")
    return Action("op", "fetch_messages", {"user": target, "from_index": start})


def _login(args: list[str], user: str | None) -> Action:
    if len(args) != 1:
        raise UsageError("expected exactly one USER")
    return Action("login", args=({"user": args[0]}))


COMMANDS: list[Command] = [
    Command("create", "create USER", "create an account", _create),
    Command("check", "check [USER]", "tell whether an account exists", _check),
    Command("list", "list [PATTERN]", "list accounts matching a glob pattern (default *)", _list),
    Command("delete", "delete [USER]", "delete an account and its inbox", _delete),
    Command("send", "send [FROM] TO TEXT...", "send a message (no FROM once logged in)", _send),
    Command("fetch", "fetch [USER] [FROM_INDEX]", "show messages from FROM_INDEX on (default 1)", _fetch),
    Command(
        "login", "login USER", "act as USER: FROM/USER can then be left out", _login, interactive_only=True
    ),
    Command(
        "logout", "logout", "stop acting as the logged-in user", _no_args("logout"), interactive_only=True
    ),
    Command("help", "help", "show this list", _no_args("help")),
    Command(
        "quit", "quit", "leave the shell (also: exit, end of input)", _no_args("quit"), aliases=("exit",)
    ),
]
_BY_NAME = {name: cmd for cmd in COMMANDS for name in (cmd.name, *cmd.aliases)}


def help_text(interactive: bool = True) -> str:
    rows = [c for c in COMMANDS if interactive or not c.interactive_only]
    width = max(len(c.usage) for c in rows)
    return "\n".join(f"  {c.usage:<{width}}  {c.summary}" for c in rows)


def parse(line: str, user: str | None = None, *, interactive: bool = True) -> Action | None:
    """Turn one command line into an Action; None for a blank line. Raises UsageError."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot parse the line: {exc}") from None
    if not words:
        return None
    name, args = words[0].lower(), words[1:]
    cmd = _BY_NAME.get(name)
    if cmd is None:
        raise UsageError(f"unknown command {words[0]!r}; type 'help' for the list")
    if cmd.interactive_only and not interactive:
        raise UsageError(f"'{cmd.name}' only works in the interactive shell")
    try:
        return cmd.build(args, user)
    except UsageError as exc:
        raise UsageError(f"{exc}\nusage: {cmd.usage}") from None


# ---------------------------------------------------------------------- output

_FRIENDLY = {
    "user_exists": "that account already exists",
    "no_such_user": "no such account",
    "username_too_long": "that username is too long",
    "message_too_long": "that message is too long",
    "invalid_username": "that username is not allowed",
    "index_past_end": "no messages there yet",
    "bad_index": "message indexes start at 1",
    "cas_mismatch": "the value was not what was expected",
    "stale_request": "the cluster has already forgotten this request",
    "bad_command": "the cluster rejected the command",
    "bad_password": "wrong password",
}


def describe_error(result: Result) -> str:
    """A person-readable line for a non-ok status; the server's own explanation when it has one."""
    friendly = _FRIENDLY.get(result.status, result.status.replace("_", " "))
    return f"{friendly} ({result.error})" if result.error else friendly


def describe_failure(exc: OperationError) -> str:
    effect = (
        "it did not take effect"
        if exc.definite
        else "it may or may not have taken effect; check before retrying"
    )
    return f"could not complete the operation: {exc.message}; {effect}"


def format_ok(action: Action, result: Result) -> list[str]:
    """Lines to print for a successful operation."""
    args, value = action.args, result.value
    if action.op == "create_account":
        return [f"created account {args['user']}"]
    if action.op == "check_account":
        return [f"{args['user']} exists" if value else f"{args['user']} does not exist"]
    if action.op == "list_accounts":
        return [str(name) for name in value] if value else [f"(no accounts match {args['pattern']!r})"]
    if action.op == "delete_account":
        return [f"deleted account {args['user']}"]
    if action.op == "send_message":
        return [f"sent to {args['to']} (message {value} in their inbox)"]
    if action.op == "fetch_messages":
        if not value:
            return ["(no messages)"]
        start = args["from_index"]
        return [f"{start + i}  {sender}: {text}" for i, (sender, text) in enumerate(value)]
    return [f"ok: {value!r}"]


# ---------------------------------------------------------------------- the shell


class Shell:
    """Runs parsed commands against the cluster and reports each outcome."""

    def __init__(
        self,
        client: SyncClient,
        out: TextIO,
        err: TextIO,
        *,
        interactive: bool,
        ask: Callable[[str], str | None] | None = None,
        ask_password: Callable[[str], str | None] | None = None,
    ) -> None:
        self.client = client
        self.ask = ask  # reads an answer to a question (None at end of input); None: never confirm
        self.ask_password = ask_password  # reads a password without echo (None: none given)
        self.password: str | None = None  # the logged-in user's
        self.out = out
        self.err = err
        self.interactive = interactive
        self.user: str | None = None
        self.done = False

    def prompt(self) -> str:
        parts = [self.client.leader or "?"] + ([self.user] if self.user else [])
        return f"[{' '.join(parts)}]> "

    def say(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out, flush=True)

    def complain(self, *lines: str) -> None:
        # Interactive output is a conversation, so errors go with it; scripts want them on stderr.
        for line in lines:
            print(line, file=self.out if self.interactive else self.err, flush=True)

    def execute(self, line: str) -> int:
        """Run one command line; returns its exit code."""
        try:
            action = parse(line, self.user, interactive=self.interactive)
            if action is None and not self.interactive:
                raise UsageError("no command given; try -c help")
        except UsageError as exc:
            self.complain(*f"error: {exc}".splitlines())
            return EXIT_USAGE
        if action is None:
            return EXIT_OK
        if action.kind == "help":
            self.say("commands:", help_text(self.interactive))
            return EXIT_OK
        if action.kind == "quit":
            self.done = True
            return EXIT_OK
        if action.kind == "logout":
            self.user = self.password = None
            self.say("logged out")
            return EXIT_OK
        if action.kind == "login":
            return self._login(action.args["user"])
        own_account = action.op == "delete_account" and action.args["user"] == self.user
        if own_account and not self._confirm(f"delete your own account {self.user} and its inbox? [y/N] "):
            self.say("not deleted")
            return EXIT_OK
        if action.op in KEYED:
            password = self._password_for(action)
            if password is None:
                return EXIT_USAGE
            action = Action(action.kind, action.op, {**action.args, "password": password})
        code = self._run_op(action)
        if own_account and code == EXIT_OK:
            self.user = self.password = None
            self.say("logged out")
        return code

    def _password_for(self, action: Action) -> str | None:
        """The password of the account ``action`` acts for (or creates); None after a complaint."""
        user = action.args[KEYED[action.op]]
        if action.op != "create_account" and user == self.user and self.password is not None:
            return self.password
        if self.ask_password is None:
            self.complain("error: no password given")
            return None
        if action.op != "create_account":
            password = self.ask_password(f"password for {user}: ")
        else:
            password = self.ask_password(f"new password for {user}: ")
            if self.interactive and password is not None:
                again = self.ask_password(f"again, the password for {user}: ")
                if again != password:
                    self.complain("error: the two passwords differ; nothing was created")
                    return None
        if password is None:
            self.complain(
                "error: no password given"
                + ("" if self.interactive else f" (set {PASSWORD_ENV}, or use --password-file)")
            )
        return password

    def _confirm(self, question: str) -> bool:
        """Ask a yes/no question on the shell's terminal; only "y" or "yes" is a yes."""
        if self.ask is None:
            return False
        answer = self.ask(question)
        return answer is not None and answer.strip().lower() in ("y", "yes")

    def _call(self, op: str, args: dict[str, Any]) -> Result | None:
        try:
            return self.client.request(op, args)
        except OperationError as exc:
            self.complain(f"error: {describe_failure(exc)}")
            return None

    def _run_op(self, action: Action) -> int:
        result = self._call(action.op, action.args)
        if result is None:
            return EXIT_ERROR
        if _empty_inbox(action, result):
            if self.interactive:
                self.say("(the inbox is empty)")
            return EXIT_OK
        if result.status != "ok":
            self.complain(f"error: {describe_error(result)}")
            return EXIT_ERROR
        self.say(*format_ok(action, result))
        return EXIT_OK

    def _login(self, user: str) -> int:
        result = self._call("check_account", {"user": user})
        if result is None:
            return EXIT_ERROR
        if result.status != "ok":
            self.complain(f"error: {describe_error(result)}")
            return EXIT_ERROR
        if not result.value:
            self.complain(f"error: there is no account {user}; create it first with: create {user}")
            return EXIT_ERROR
        password = self.ask_password(f"password for {user}: ") if self.ask_password else None
        if password is None:
            self.complain("error: no password given; not logged in")
            return EXIT_USAGE
        # Proven the way every later op proves it: a fetch that the leader checks.
        proof = self._call("fetch_messages", {"user": user, "from_index": 1, "password": password})
        if proof is None:
            return EXIT_ERROR
        if proof.status not in ("ok", "index_past_end"):
            self.complain(f"error: {describe_error(proof)}; not logged in")
            return EXIT_ERROR
        self.user, self.password = user, password
        self.say(f"logged in as {user}")
        return EXIT_OK

    def probe(self) -> None:
        """Find the leader so the first prompt can name it; any failure just leaves it unknown."""
        try:
            self.client.request("list_accounts", {"pattern": ""}, timeout=PROBE_TIMEOUT)
        except OperationError:
            pass


def _empty_inbox(action: Action, result: Result) -> bool:
    """A fetch from the first message that found none: nothing to show, not a failure."""
    return (
        action.op == "fetch_messages"
        and action.args.get("from_index") == 1
        and result.status == "index_past_end"
    )


def _read_line(stdin: TextIO, stdout: TextIO, prompt: str) -> str | None:
    """One line of input, or None at end of input. A terminal gets readline editing via input()."""
    if stdin is sys.stdin and stdout is sys.stdout and stdin.isatty():
        try:
            return input(prompt)
        except EOFError:
            return None
    if _isatty(stdin):
        stdout.write(prompt)
        stdout.flush()
    line = stdin.readline()
    return line.rstrip("\r\n") if line else None


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _read_password(stdin: TextIO, stdout: TextIO, prompt: str) -> str | None:
    """A password from the terminal without echo; from a piped stdin, the next line."""
    if stdin is sys.stdin and _isatty(stdin):
        try:
            return getpass.getpass(prompt)
        except EOFError:
            return None
    return _read_line(stdin, stdout, prompt)


def script_password(password_file: str | None = None) -> Callable[[str], str | None]:
    """Where ``-c`` gets its password: the environment, or a file; never its command line."""

    def read(prompt: str) -> str | None:
        if PASSWORD_ENV in os.environ:
            return os.environ[PASSWORD_ENV]
        path = password_file or os.environ.get(PASSWORD_FILE_ENV)
        if not path:
            return None
        try:
            with open(path, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except OSError as exc:
            raise UsageError(f"cannot read the password file {path}: {exc.strerror}") from exc

    return read


def run(
    cluster_path: str,
    command: str | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    password_file: str | None = None,
) -> int:
    """Entry point of ``raftchat client``; returns the exit code.

    Streams default to the ``sys`` ones *at call time*, so tests that swap them are honoured.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        config: ClusterConfig = load(cluster_path)
    except ConfigError as exc:
        print(f"raftchat client: {exc}", file=stderr, flush=True)
        return EXIT_USAGE
    client = SyncClient(config)
    try:
        if command is not None:
            shell = Shell(
                client, stdout, stderr, interactive=False, ask_password=script_password(password_file)
            )
            try:
                return shell.execute(command)
            except UsageError as exc:
                print(f"raftchat client: {exc}", file=stderr, flush=True)
                return EXIT_USAGE
        ask = functools.partial(_read_line, stdin, stdout)
        ask_password = functools.partial(_read_password, stdin, stdout)
        shell = Shell(client, stdout, stderr, interactive=True, ask=ask, ask_password=ask_password)
        return _interactive(shell, stdin, stdout)
    finally:
        client.close()


def _interactive(shell: Shell, stdin: TextIO, stdout: TextIO) -> int:
    if _isatty(stdin):
        try:
            import readline  # noqa: F401 -- importing it gives input() line editing and history
        except ImportError:
            pass
        shell.say(f"raftchat: {len(shell.client.node_ids)} nodes; type 'help' for commands, 'quit' to leave")
    shell.probe()
    while not shell.done:
        try:
            line = _read_line(stdin, stdout, shell.prompt())
        except KeyboardInterrupt:
            shell.say("")  # Ctrl-C abandons the line being typed, like other shells
            continue
        if line is None:
            if _isatty(stdin):
                shell.say("")
            break
        try:
            shell.execute(line)
        except KeyboardInterrupt:
            shell.complain("interrupted; the operation may or may not have taken effect")
    return EXIT_OK
