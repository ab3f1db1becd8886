"""The chat workload: teams of workers exercise small, independent groups of users.

Checking linearizability is exponential in the concurrency of one partition, so the
workload keeps partitions small (Jepsen's independent keys): users belong to groups
that no operation crosses, a team of ``workers_per_group`` workers uses one group for
``ops_per_group`` operations and then moves to a fresh one, and every invocation names
its group so the chat model can check each group alone.

Names: group ``<prefix><n>`` (e.g. ``g17``), users ``g17u0 .. g17u<k-1>``, and the
group's wildcard ``g17u*``. The prefix is letters only and the number digits only, so
``g1u*`` can never match ``g17u0``: after ``g1`` a user of group 17 has ``7``, not ``u``.
Team ``t`` of ``T`` teams uses groups ``t, t+T, t+2T, ...``: the numbering depends only on
how many groups the team finished, never on how teams interleave.

Every account has a password (``<user>:<seed>``), and the workload logs in with it: every
operation on an account's behalf carries it, and a share of them (``wrong_password``)
carries a wrong one, which the model expects refused with ``bad_password``.

Message texts carry the seed, the worker and a per-worker counter, so each is unique in
the run and a lost or duplicated message shows up in a fetch.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Any

from raftchat.client import Client, OperationError
from workloads import options as opts
from workloads.base import Completion, Invocation, OptionsWorkload, failed

MAX_USERNAME = 20  # raftchat's default limit; longer names are rejected
MAX_MESSAGE = 500  # raftchat's default limit on a message text
GROUP_DIGITS = 6  # room the prefix must leave for group numbers: a million groups per run

DEFAULT_WEIGHTS = {
    "create_account": 2.0,
    "check_account": 1.0,
    "list_accounts": 1.0,
    "delete_account": 0.2,  # rare: it throws away an inbox, which hides what was delivered
    "send_message": 4.0,
    "fetch_messages": 3.0,
}


@dataclass
class ChatOptions:
    workers_per_group: int = opts.option(3, "workers in a team that shares one group at a time", minimum=1)
    ops_per_group: int = opts.option(
        150,
        "operations a team performs on a group before a fresh one; bounds each checked partition",
        minimum=1,
    )
    users_per_group: int = opts.option(3, "users in a group", minimum=1)
    weights: dict[str, float] = opts.option(
        DEFAULT_WEIGHTS, "relative frequency of each operation; operations not named keep their default"
    )
    fetch_from_start: float = opts.option(
        0.5, "share of fetch_messages that read from index 1; the rest pick a random index", 0.0, 1.0
    )
    prefix: str = opts.option(
        "g", "letters that start every group name; a new one lets a run reuse a cluster that has data"
    )
    wrong_password: float = opts.option(
        0.05,
        "share of operations on an account's behalf (send, fetch, delete) that give a wrong password",
        0.0,
        1.0,
    )
    text_size: int = opts.option(
        0,
        "pad every message text to this many characters (at most 500): grows the state, for soak runs",
        minimum=0,
    )

    def validate(self) -> None:
        if self.text_size > MAX_MESSAGE:
            raise ValueError(
                f"workload 'chat': option 'text_size' must be at most {MAX_MESSAGE} "
                f"(raftchat's message limit), got {self.text_size}"
            )
        if not re.fullmatch(r"[A-Za-z]+", self.prefix):
            raise ValueError(
                f"workload 'chat': option 'prefix' must be letters only (so wildcards "
                f"match exactly one group), got {self.prefix!r}"
            )
        longest = len(self.prefix) + GROUP_DIGITS + 1 + len(str(self.users_per_group - 1))
        if longest > MAX_USERNAME:
            raise ValueError(
                f"workload 'chat': usernames would exceed {MAX_USERNAME} characters: with prefix "
                f"{self.prefix!r} and users_per_group {self.users_per_group}, a name needs "
                f"{longest - GROUP_DIGITS} characters plus up to {GROUP_DIGITS} for the group number; "
                "use a shorter prefix or fewer users"
            )


@dataclass
class _Team:
    """The workers ``index * size ..``: which group they are on and what they touched."""

    index: int
    finished: int = 0  # groups completed
    ops: int = 0  # operations issued in the current group
    sends: int = 0  # send_message invocations in the current group
    groups: list[str] = field(default_factory=list)


class ChatWorkload(OptionsWorkload):
    name = "chat"
    model = "chat"
    options_type = ChatOptions
    machine = "chat"

    def __init__(self, options: ChatOptions, concurrency: int, seed: int) -> None:
        super().__init__(options, concurrency, seed)
        size = options.workers_per_group
        self._teams = [_Team(i) for i in range(math.ceil(concurrency / size))]
        self._messages = [0] * concurrency  # per-worker counter for unique texts

    # -- names --------------------------------------------------------------------------

    def group_name(self, number: int) -> str:
        return f"{self.options.prefix}{number}"

    def users(self, group: str) -> list[str]:
        users = [f"{group}u{i}" for i in range(self.options.users_per_group)]
        if len(users[-1]) > MAX_USERNAME:
            raise RuntimeError(f"group {group!r} gives usernames over {MAX_USERNAME} characters")
        return users

    def password(self, user: str) -> str:
        return f"{user}:{self.seed}"

    def _login(self, args: dict[str, Any], user: str, rng: random.Random) -> dict[str, Any]:
        """``args`` with ``user``'s password, now and then a wrong one."""
        wrong = rng.random() < self.options.wrong_password
        return {**args, "password": self.password(user) + ("-wrong" if wrong else "")}

    @staticmethod
    def wildcard(group: str) -> str:
        """The list_accounts pattern that matches exactly ``group``'s users."""
        return f"{group}u*"

    # -- generation ---------------------------------------------------------------------

    def team_of(self, worker: int) -> _Team:
        return self._teams[worker // self.options.workers_per_group]

    def next_op(self, worker: int, rng: random.Random) -> Invocation:
        team = self.team_of(worker)
        if team.ops >= self.options.ops_per_group:
            team.finished, team.ops, team.sends = team.finished + 1, 0, 0
        group = self.group_name(team.index + len(self._teams) * team.finished)
        if not team.groups or team.groups[-1] != group:
            team.groups.append(group)
        team.ops += 1
        users = self.users(group)
        f = opts.pick(self.options.weights, rng)
        if f == "list_accounts":
            args: dict[str, Any] = {"pattern": self.wildcard(group)}
        elif f == "send_message":
            team.sends += 1
            self._messages[worker] += 1
            text = f"s{self.seed} w{worker} m{self._messages[worker]}".ljust(self.options.text_size, ".")
            sender = rng.choice(users)
            args = self._login({"sender": sender, "to": rng.choice(users), "text": text}, sender, rng)
        elif f == "fetch_messages":
            start = 1
            if rng.random() >= self.options.fetch_from_start:
                # Up to one past a typical inbox's end, so index_past_end comes up too.
                start = rng.randint(1, team.sends // len(users) + 2)
            user = rng.choice(users)
            args = self._login({"user": user, "from_index": start}, user, rng)
        elif f == "create_account":
            user = rng.choice(users)
            args = {"user": user, "password": self.password(user)}
        elif f == "delete_account":
            user = rng.choice(users)
            args = self._login({"user": user}, user, rng)
        else:
            args = {"user": rng.choice(users)}
        return Invocation(f, {**args, "group": group})

    def final_reads(self, worker: int) -> list[Invocation]:
        """Every inbox of every group the team touched, from index 1, and the group's
        accounts, each group read once: the team's workers share its groups round-robin
        (a soak touches thousands of groups, and one worker reading them all would take
        minutes)."""
        team, per = self.team_of(worker), self.options.workers_per_group
        size = min(per, self.concurrency - team.index * per)  # the last team may be smaller
        mine = worker % per
        reads = []
        for i, group in enumerate(team.groups):
            if i % size != mine:
                continue
            for user in self.users(group):
                args = {"user": user, "from_index": 1, "password": self.password(user), "group": group}
                reads.append(Invocation("fetch_messages", args))
            reads.append(Invocation("list_accounts", {"pattern": self.wildcard(group), "group": group}))
        return reads

    # -- execution ----------------------------------------------------------------------

    async def invoke(self, client: Client, inv: Invocation) -> Completion:
        """Every state-machine status is an ok completion: the operation happened (or was a
        read) and answered that; the model checks the status, and the value when ok."""
        args = {k: v for k, v in inv.value.items() if k != "group"}
        try:
            result = await client.call(inv.f, **args)
        except OperationError as exc:
            return failed(inv.value, exc)
        return Completion("ok", {"status": result.status, "value": result.value})
