"""Raft scenarios as data: a small command language over the simulated cluster of ``raftsim``.

A scenario file interleaves commands with the output they produce (the language is described
in ``scenarios/README.md``)::

    campaign n1
    ----
    [13] n1 tick
      n1: role=pre-candidate
      n1->n2 PreVote term=1 last=0@0

:func:`run_file` replays a file's commands on a fresh :class:`raftsim.Sim` (a reliable network
whose messages wait until a command delivers them, drops them or a partition loses them) and
renders the file again with the output each command produced now. The test compares that text
with the file, and ``pytest --rewrite-scenarios`` writes it back, so a change of the protocol
reads as a diff of traces. The sim's safety checks run after every event; a violation that no
``expect-violation`` announced, a failed ``assert`` or a malformed command fails the scenario in
either mode, so a rewrite cannot bless a safety regression.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path

from raftsim import CRASH_POINTS, Sim, SimNode

from raftchat.raft.core import Config, Ready, Role
from raftchat.raft.messages import (
    AppendEntries,
    AppendResponse,
    Entry,
    InstallSnapshot,
    Message,
    RequestVote,
    SnapshotResponse,
    VoteResponse,
)

SEPARATOR = "----"
# Scenario defaults: short timeouts keep traces short; everything else is the core's default.
DEFAULT_CONFIG = {"election_ticks": 10, "heartbeat_ticks": 2}
STATUS_KEYS = ("role", "term", "vote", "leader", "commit", "last", "snap", "applied")
CHANGE_KEYS = STATUS_KEYS[:-1]  # applied follows commit within the same event
CRASH_POINT_NAMES = dict(zip(("before-persist", "after-persist", "after-send"), CRASH_POINTS, strict=True))
OPS: dict[str, Callable[[object, object], bool]] = {
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
    "!=": lambda a, b: a != b,
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
}
MAX_DELIVERIES = 10_000
_KINDS = (RequestVote, VoteResponse, AppendEntries, AppendResponse, InstallSnapshot, SnapshotResponse)
FILTER_KEYS = ("from", "to", "type", *sorted({f.name for k in _KINDS for f in fields(k)} - {"src", "dst"}))


class ScenarioError(Exception):
    """A scenario is malformed, an ``assert`` failed, or the cluster broke a safety property."""


# ---------------------------------------------------------------------- rendering


def message_type(msg: Message) -> str:
    if isinstance(msg, RequestVote):
        return "PreVote" if msg.pre_vote else "Vote"
    if isinstance(msg, VoteResponse):
        return "PreVoteResp" if msg.pre_vote else "VoteResp"
    return {AppendEntries: "App", AppendResponse: "AppResp", InstallSnapshot: "Snap"}.get(
        type(msg), "SnapResp"
    )


def _data(data: bytes) -> str:
    text = data.decode("ascii", "replace")
    if not (data.isascii() and text.isprintable() and not any(c in text for c in " []():")):
        text = repr(data)
    return text if len(text) <= 24 else f"{text[:20].rstrip('.')}...({len(data)}B)"


def entry(e: Entry) -> str:
    """``index@term``, then ``:data`` unless it is a leader's no-op."""
    return f"{e.index}@{e.term}" + (f":{_data(e.data)}" if e.data else "")


def message(msg: Message) -> str:
    head = f"{msg.src}->{msg.dst} {message_type(msg)} term={msg.term}"
    if isinstance(msg, RequestVote):
        return f"{head} last={msg.last_log_index}@{msg.last_log_term}"
    if isinstance(msg, VoteResponse):
        return f"{head} {'granted' if msg.granted else 'rejected'}"
    if isinstance(msg, AppendEntries):
        text = f"{head} prev={msg.prev_index}@{msg.prev_term} commit={msg.commit}"
        text += f" read_ctx={msg.read_ctx}" if msg.read_ctx else ""
        return text + (f" [{' '.join(entry(e) for e in msg.entries)}]" if msg.entries else "")
    if isinstance(msg, AppendResponse):
        if msg.success:
            text = f"{head} ok match={msg.match_index}"
        else:
            text = f"{head} reject {msg.match_index} hint={msg.hint_index}@{msg.hint_term}"
        return text + (f" read_ctx={msg.read_ctx}" if msg.read_ctx else "")
    if isinstance(msg, InstallSnapshot):
        text = f"{head} snap={msg.snap_index}@{msg.snap_term} bytes={msg.offset}+{len(msg.data)}"
        return text + (" done" if msg.done else "")
    if msg.match_index:
        return f"{head} match={msg.match_index}"
    return f"{head} snap={msg.snap_index} want={msg.offset}"


def _line(node: str, values: dict[str, str], keys: tuple[str, ...]) -> str:
    return f"{node}: " + " ".join(f"{k}={values[k]}" for k in keys if k in values)


# ---------------------------------------------------------------------- the file format


@dataclass
class Command:
    text: str
    line: int


def parse(text: str) -> list[str | Command]:
    """Comment and blank lines (kept as they are) and commands; expected output is dropped,
    since a run renders it anew and the whole text is compared."""
    items: list[str | Command] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.startswith("#"):
            items.append(line)
            continue
        items.append(Command(line.strip(), i))
        if i < len(lines) and lines[i] == SEPARATOR:
            i += 1
            while i < len(lines) and lines[i].strip():
                i += 1
    return items


def render(items: list[str | Command], outputs: dict[int, list[str]]) -> str:
    out: list[str] = []
    for k, item in enumerate(items):
        if isinstance(item, str):
            out.append(item)
            continue
        out += [item.text, SEPARATOR, *outputs[item.line]]
        following = items[k + 1] if k + 1 < len(items) else ""
        if isinstance(following, Command) or following.strip():
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def run_file(path: Path) -> str:
    """The file as it should read: its commands, each followed by the output it produces now."""
    items = parse(path.read_text())
    scenario = Scenario(str(path))
    outputs: dict[int, list[str]] = {}
    for k, item in enumerate(items):
        if isinstance(item, Command):
            try:
                outputs[item.line] = scenario.run(item.text, item.line)
            except ScenarioError as exc:
                outputs[item.line] = [*scenario.lines, f"error: {exc}"]
                exc.partial = render(items[: k + 1], outputs)  # type: ignore[attr-defined]
                raise
    scenario.finish()
    return render(items, outputs)


# ---------------------------------------------------------------------- arguments


@dataclass
class Args:
    """A command's words: positional ones, and ``key<op>value`` ones (op one of OPS)."""

    words: list[str]
    keys: list[tuple[str, str, str]]

    @classmethod
    def parse(cls, tokens: list[str]) -> Args:
        words, keys = [], []
        for token in tokens:
            op = next((op for op in OPS if op in token), None)
            if op is None:
                words.append(token)
            else:
                key, value = token.split(op, 1)
                keys.append((key, op, value))
        return cls(words, keys)

    def flag(self, name: str) -> bool:
        if name in self.words:
            self.words.remove(name)
            return True
        return False

    def pop_key(self, name: str, default: str | None = None) -> str | None:
        for k, (key, op, value) in enumerate(self.keys):
            if key == name:
                if op != "=":
                    raise ScenarioError(f"{name} takes '=', not {op!r}")
                del self.keys[k]
                return value
        return default


def _compare(what: str, actual: object, op: str, wanted: str) -> str | None:
    """None if ``actual op wanted`` holds (numbers compared as numbers), else why not."""
    value: object = wanted
    if isinstance(actual, int) and not isinstance(actual, bool):
        try:
            value = int(wanted)
        except ValueError:
            raise ScenarioError(f"{what} is a number, got {wanted!r}") from None
    elif op not in ("=", "!="):
        raise ScenarioError(f"{what} is not a number: compare it with = or !=")
    if OPS[op](actual, value):
        return None
    return f"{what} is {actual}, wanted {op}{wanted}"


# ---------------------------------------------------------------------- the interpreter


class _Sim(Sim):
    """The sim, reporting to the scenario what each event sent, installed, served or crashed."""

    def __init__(self, report: Callable[[str, str], None], seed: int, nodes: int, config: Config) -> None:
        self.report = report
        self.sent_types: Counter[str] = Counter()
        super().__init__(seed, nodes=nodes, config=config, drop=0.0, dup=0.0, max_delay=0, crash_in_ready=0.0)
        self.notice_crashes = False  # a scenario says itself who learns of a crash (peer-gone)

    def send(self, msg: Message) -> None:
        super().send(msg)
        self.sent_types[message_type(msg)] += 1
        self.report("msg", message(msg))

    def crash(self, node_id: str, when: str = "") -> None:
        super().crash(node_id, when)
        if when:
            self.report("note", f"{node_id} crashed {when}")

    def apply(self, node: SimNode, rd: Ready) -> None:
        super().apply(node, rd)
        if rd.snapshot is not None:
            self.report("note", f"{node.id} installed snapshot {rd.snapshot.index}@{rd.snapshot.term}")
        for rs in rd.read_states:
            self.report("note", f"{node.id} read {rs.ctx} served at {rs.index}")
        for ctx in rd.dropped_reads:
            self.report("note", f"{node.id} read {ctx} dropped")


class Scenario:
    """Runs one file's commands in order, collecting the output of each."""

    def __init__(self, where: str) -> None:
        self.where = where
        self._sim: _Sim | None = None
        self.lines: list[str] = []
        self._effects: list[tuple[str, str]] | None = None
        self.expect: tuple[str, int] | None = None  # announced violation and its line
        self.broken_at = 0  # line where the announced violation happened
        self.line = 0  # of the command running
        self.handlers: dict[str, Callable[[Args], None]] = {
            name.removeprefix("cmd_").replace("_", "-"): getattr(self, name)
            for name in dir(self)
            if name.startswith("cmd_")
        }

    @property
    def sim(self) -> _Sim:
        if self._sim is None:
            raise ScenarioError("no cluster yet: start with add-nodes")
        return self._sim

    # ------------------------------------------------------------------ running

    def run(self, text: str, line: int) -> list[str]:
        self.lines, self.line = [], line
        try:
            tokens = shlex.split(text)
            name, args = tokens[0], Args.parse(tokens[1:])
            handler = self.handlers.get(name)
            if handler is None:
                raise ScenarioError(f"unknown command {name!r}; commands: {', '.join(sorted(self.handlers))}")
            if self.broken_at and name not in ("status", "log", "net", "assert"):
                raise ScenarioError(
                    f"the cluster broke at line {self.broken_at}: only status, log, net and assert may follow"
                )
            handler(args)
            if args.words or args.keys:
                leftover = args.words + [k + op + v for k, op, v in args.keys]
                raise ScenarioError(f"{name}: unexpected arguments {' '.join(leftover)}")
            if self._sim is not None and not self.broken_at:
                self.sim.check_deep()
        except ScenarioError as exc:
            raise ScenarioError(f"{self.where}:{line}: {text}: {exc}") from None
        except AssertionError as exc:  # a raftsim invariant or one of the core's own checks
            if self.expect is None or self.expect[0] not in str(exc):
                trace = "\n".join(["", "output so far:", *self.lines]) if self.lines else ""
                raise ScenarioError(
                    f"{self.where}:{line}: {text}: safety violated: {type(exc).__name__}: {exc}{trace}"
                ) from exc
            self.expect, self.broken_at = None, line
            self.lines.append(f"violation: {exc}")
        except ValueError as exc:  # shlex, or a value the core refused
            raise ScenarioError(f"{self.where}:{line}: {text}: {exc}") from None
        return self.lines or ["ok"]

    def finish(self) -> None:
        if self.expect is not None:
            text, line = self.expect
            raise ScenarioError(f"{self.where}:{line}: the violation {text!r} announced here never happened")

    # ------------------------------------------------------------------ events

    def _report(self, kind: str, text: str) -> None:
        if self._effects is not None:
            self._effects.append((kind, text))

    def _values(self, node_id: str) -> dict[str, str]:
        node = self.sim.nodes[node_id]
        core = node.core
        if core is None:
            return {"role": "down"}
        return {
            "role": core.role.value,
            "term": str(core.term),
            "vote": core.voted_for or "-",
            "leader": core.leader_id or "-",
            "commit": str(core.commit_index),
            "last": str(core.last_index),
            "snap": str(node.storage.snap_index),
            "applied": str(len(node.sm)),
        }

    def _event(
        self, header: str, node_id: str, action: Callable[[], object], *, quiet: bool, always: bool = False
    ) -> object:
        """Run one event on ``node_id`` and print what changed: its state, then what it sent
        and noted. In quiet mode messages are left out, and silent events print nothing."""
        before = self._values(node_id)
        self._effects = []
        try:
            return action()
        finally:
            after = self._values(node_id)
            effects, self._effects = self._effects, None
            lines = [f"  {text}" for kind, text in effects if not (quiet and kind == "msg")]
            changed = tuple(k for k in CHANGE_KEYS if after.get(k) != before.get(k))
            if changed:
                keys = STATUS_KEYS if before["role"] == "down" else changed
                lines.insert(0, "  " + _line(node_id, after, keys))
            if lines or (always and not quiet):
                self.lines += [header, *lines]

    def _tick(self, node_id: str, prefix: str, quiet: bool) -> None:
        self._event(f"{prefix}{node_id} tick", node_id, lambda: self.sim.tick(node_id), quiet=quiet)

    def _deliver(self, msg: Message, prefix: str = "", quiet: bool = False) -> None:
        sim = self.sim
        lost = ""
        if sim.nodes[msg.dst].core is None:
            lost = f" (lost: {msg.dst} is down)"
        elif sim.group[msg.src] != sim.group[msg.dst]:
            lost = " (lost: partitioned)"
        self._event(
            f"{prefix}{message(msg)}{lost}", msg.dst, lambda: sim.deliver(msg), quiet=quiet, always=True
        )

    # ------------------------------------------------------------------ arguments

    def _node(self, name: str) -> str:
        if name not in self.sim.nodes:
            raise ScenarioError(f"no node {name!r} (nodes: {' '.join(self.sim.ids)})")
        return name

    def _nodes(self, args: Args) -> list[str]:
        """The named nodes (all if none), in the order given."""
        names = [self._node(w) for w in args.words]
        args.words.clear()
        return names or list(self.sim.ids)

    def _one(self, args: Args, what: str = "a node") -> str:
        if not args.words:
            raise ScenarioError(f"name {what}")
        return self._node(args.words.pop(0))

    def _up(self, node_id: str) -> None:
        if self.sim.nodes[node_id].core is None:
            raise ScenarioError(f"{node_id} is down")

    def _count(self, args: Args) -> int:
        if args.words and args.words[0].isdigit():
            return int(args.words.pop(0))
        return 1

    def _filter(self, args: Args) -> Callable[[Message], bool]:
        """Messages matching every ``key=a,b`` / ``key!=a,b`` given: from, to, type, or a
        message field (term, read_ctx, snap_index, ...; a message without it never equals)."""
        tests = []
        for key, op, value in args.keys:
            if op not in ("=", "!=") or key not in FILTER_KEYS:
                raise ScenarioError(
                    f"filters are key=a,b or key!=a,b with key one of {', '.join(FILTER_KEYS)}"
                )
            tests.append((key, op == "=", set(value.split(","))))
        args.keys.clear()

        def field(msg: Message, key: str) -> str | None:
            if key in ("from", "to"):
                return msg.src if key == "from" else msg.dst
            if key == "type":
                return message_type(msg)
            return str(getattr(msg, key)) if hasattr(msg, key) else None

        return lambda msg: all((field(msg, key) in values) == want for key, want, values in tests)

    def _pending(self) -> list[Message]:
        return [m for _, _, m in sorted(self.sim.net, key=lambda item: item[:2])]

    def _take(self, match: Callable[[Message], bool], limit: int | None = None) -> list[Message]:
        """Remove from the network the first ``limit`` matching messages (all if None), in send order."""
        taken, kept = [], []
        for item in sorted(self.sim.net, key=lambda item: item[:2]):
            if (limit is None or len(taken) < limit) and match(item[2]):
                taken.append(item[2])
            else:
                kept.append(item)
        self.sim.net[:] = kept  # sorted, hence still a heap
        return taken

    # ------------------------------------------------------------------ commands: setup and time

    def cmd_add_nodes(self, args: Args) -> None:
        """add-nodes N [seed=S] [config-field=value ...]: the cluster n1..nN."""
        if self._sim is not None:
            raise ScenarioError("the cluster exists already")
        count = self._count(args)
        seed = int(args.pop_key("seed", "0") or 0)
        settings: dict[str, object] = dict(DEFAULT_CONFIG)
        known = {f.name: f.type for f in fields(Config)}
        for key, op, value in args.keys:
            name = key.replace("-", "_")
            if op != "=" or name not in known:
                raise ScenarioError(f"unknown setting {key!r}; settings: seed, {', '.join(sorted(known))}")
            if name == "bugs":
                settings[name] = frozenset(value.split(",")) if value else frozenset()
            elif value in ("true", "false"):
                settings[name] = value == "true"
            else:
                settings[name] = int(value)
        args.keys.clear()
        self._sim = _Sim(self._report, seed, count, Config(**settings))  # type: ignore[arg-type]
        for node_id in self.sim.ids:
            self.lines.append(_line(node_id, self._values(node_id), STATUS_KEYS))

    def cmd_tick(self, args: Args) -> None:
        """tick [N] [node ...] [quiet]: N rounds in which each named live node ticks once; no delivery."""
        quiet = args.flag("quiet")
        rounds = self._count(args)
        nodes = self._nodes(args)
        for k in range(1, rounds + 1):
            for node_id in nodes:
                if self.sim.nodes[node_id].core is not None:
                    self._tick(node_id, f"[{k}] ", quiet)

    def cmd_run(self, args: Args) -> None:
        """run [N] [node ...] [filters] [quiet]: N rounds of time with a working network: each
        named live node (all by default) ticks, then everything in flight that matches the
        filters is delivered (replies too); the rest stays in flight."""
        quiet = args.flag("quiet")
        rounds = self._count(args)
        nodes = self._nodes(args)
        match = self._filter(args)
        for k in range(1, rounds + 1):
            for node_id in nodes:
                if self.sim.nodes[node_id].core is not None:
                    self._tick(node_id, f"[{k}] ", quiet)
            self._stabilize(match, f"[{k}] ", quiet)

    def cmd_campaign(self, args: Args) -> None:
        """campaign node: tick only that node until it starts an election (its timer fires)."""
        node_id = self._one(args)
        self._up(node_id)
        core = self.sim.core(node_id)
        for k in range(1, 2 * self.sim.config.election_ticks + 1):
            role, term, asked = core.role, core.term, self.sim.sent_types.copy()
            self._tick(node_id, f"[{k}] ", False)
            votes = self.sim.sent_types["PreVote"] + self.sim.sent_types["Vote"]
            if core.role is not role or core.term != term or votes > asked["PreVote"] + asked["Vote"]:
                return
        raise ScenarioError(f"{node_id} did not campaign within {k} ticks (is it the leader?)")

    # ------------------------------------------------------------------ commands: the network

    def cmd_deliver(self, args: Args) -> None:
        """deliver [filters]: deliver the matching messages in flight now, in send order; what
        they provoke stays in flight."""
        for msg in self._take(self._filter(args)):
            self._deliver(msg)

    def _stabilize(self, match: Callable[[Message], bool], prefix: str, quiet: bool) -> None:
        for _ in range(MAX_DELIVERIES):
            taken = self._take(match, limit=1)
            if not taken:
                return
            self._deliver(taken[0], prefix, quiet)
        raise ScenarioError(f"messages still flowing after {MAX_DELIVERIES} deliveries")

    def cmd_stabilize(self, args: Args) -> None:
        """stabilize [filters] [quiet]: deliver matching messages, and the matching ones they
        provoke, until none is left."""
        quiet = args.flag("quiet")
        self._stabilize(self._filter(args), "", quiet)

    def cmd_drop(self, args: Args) -> None:
        """drop [filters]: lose the matching messages in flight."""
        for msg in self._take(self._filter(args)):
            self.lines.append(f"dropped {message(msg)}")

    def cmd_net(self, args: Args) -> None:
        """net [filters]: the matching messages in flight, in send order."""
        match = self._filter(args)
        self.lines += [message(m) for m in self._pending() if match(m)] or ["empty"]

    def cmd_inject(self, args: Args) -> None:
        """inject from=a to=b type=T term=N [last=I@T] [granted=false] [prev=I@T commit=N read_ctx=N]:
        put in flight a message as a peer could send it: a vote request, its answer, or an empty append."""
        src, dst = self._node(args.pop_key("from", "") or ""), self._node(args.pop_key("to", "") or "")
        kind, term = args.pop_key("type"), int(args.pop_key("term", "0") or 0)

        def at(key: str) -> tuple[int, int]:
            index, _, of_term = (args.pop_key(key, "0@0") or "").partition("@")
            return int(index), int(of_term)

        msg: Message
        if kind in ("Vote", "PreVote"):
            msg = RequestVote(src, dst, term, *at("last"), pre_vote=kind == "PreVote")
        elif kind in ("VoteResp", "PreVoteResp"):
            granted = args.pop_key("granted", "true") == "true"
            msg = VoteResponse(src, dst, term, granted, pre_vote=kind == "PreVoteResp")
        elif kind == "App":
            prev = at("prev")
            commit, ctx = int(args.pop_key("commit", "0") or 0), int(args.pop_key("read_ctx", "0") or 0)
            msg = AppendEntries(src, dst, term, *prev, [], commit, ctx)
        else:
            raise ScenarioError("inject makes Vote, PreVote, VoteResp, PreVoteResp and App (without entries)")
        self.sim.send(msg)
        self.lines.append(f"injected {message(msg)}")

    def _groups(self) -> str:
        groups: dict[int, list[str]] = {}
        for node_id in self.sim.ids:
            groups.setdefault(self.sim.group[node_id], []).append(node_id)
        return " | ".join(" ".join(groups[g]) for g in sorted(groups, key=lambda g: (g == 0, g)))

    def cmd_partition(self, args: Args) -> None:
        """partition a b | c | d: nodes talk only within their group; unnamed ones form one more."""
        groups: list[list[str]] = [[]]
        for word in args.words:
            if word == "|":
                groups.append([])
            else:
                groups[-1].append(self._node(word))
        args.words.clear()
        if not any(groups):
            raise ScenarioError("name the groups, e.g. partition n1 | n2 n3")
        self.sim.partition(*[g for g in groups if g])
        self.lines.append(f"groups: {self._groups()}")

    def cmd_heal(self, args: Args) -> None:
        """heal: one group again."""
        self.sim.heal()
        self.lines.append(f"groups: {self._groups()}")

    # ------------------------------------------------------------------ commands: clients and disks

    def cmd_propose(self, args: Args) -> None:
        """propose node [data] [n=K] [size=B]: K proposals (data c1, c2, ... unless given),
        each padded with dots to B bytes."""
        node_id = self._one(args)
        self._up(node_id)
        times = int(args.pop_key("n", "1") or 1)
        size = int(args.pop_key("size", "0") or 0)
        word = args.words.pop(0) if args.words else None
        for _ in range(times):
            if word is None:
                self.sim.next_cmd += 1
            data = (word or f"c{self.sim.next_cmd}").encode().ljust(size, b".")
            propose = partial(self.sim.propose, node_id, data)
            index = self._event(
                f"{node_id} propose {_data(data)}", node_id, propose, quiet=False, always=True
            )
            if index is None:
                self.lines.append("  refused: not the leader")

    def cmd_read(self, args: Args) -> None:
        """read node: a ReadIndex request (ctx 1, 2, ...)."""
        node_id = self._one(args)
        self._up(node_id)
        if self.sim.core(node_id).role is not Role.LEADER:  # the core would refuse it
            self.lines.append(f"{node_id} read: refused, not the leader")
            return
        header = f"{node_id} read {self.sim.next_ctx + 1}"
        self._event(header, node_id, partial(self.sim.read, node_id), quiet=False, always=True)

    def cmd_compact(self, args: Args) -> None:
        """compact node: snapshot the state machine at the applied index and forget the log it covers."""
        node_id = self._one(args)
        self._up(node_id)
        if not self.sim.compact(node_id):
            self.lines.append(f"{node_id}: nothing applied since the last snapshot")
            return
        snap = self.sim.nodes[node_id].storage.snapshot
        assert snap is not None
        self.lines.append(f"{node_id}: snapshot {snap.index}@{snap.term} ({len(snap.data)} bytes)")

    def cmd_crash(self, args: Args) -> None:
        """crash node [at=before-persist|after-persist|after-send]: now, or armed for a point
        of its next Ready (a failpoint)."""
        node_id = self._one(args)
        self._up(node_id)
        point = args.pop_key("at")
        if point is None:
            self._event(f"{node_id} crash", node_id, lambda: self.sim.crash(node_id), quiet=False)
            return
        if point not in CRASH_POINT_NAMES:
            raise ScenarioError(f"crash points: {', '.join(CRASH_POINT_NAMES)}")
        self.sim.failpoints[node_id] = CRASH_POINTS.index(CRASH_POINT_NAMES[point])
        self.lines.append(f"{node_id} will crash {CRASH_POINT_NAMES[point]}")

    def cmd_restart(self, args: Args) -> None:
        """restart node: boot it again from what it persisted."""
        node_id = self._one(args)
        if self.sim.nodes[node_id].core is not None:
            raise ScenarioError(f"{node_id} is up")
        self._event(f"{node_id} restart", node_id, lambda: self.sim.start(node_id), quiet=False)

    def cmd_peer_gone(self, args: Args) -> None:
        """peer-gone node peer: the node's runtime saw peer's process go away."""
        node_id, peer = self._one(args), self._one(args, "the peer that is gone")
        self._up(node_id)

        def gone() -> None:
            self.sim.core(node_id).peer_gone(peer)
            self.sim.process(node_id)

        self._event(f"{node_id} learns {peer} is gone", node_id, gone, quiet=False, always=True)

    # ------------------------------------------------------------------ commands: looking

    def cmd_status(self, args: Args) -> None:
        """status [node ...]: each node's state; a leader's view of its followers below it."""
        for node_id in self._nodes(args):
            self.lines.append(_line(node_id, self._values(node_id), STATUS_KEYS))
            core = self.sim.nodes[node_id].core
            if core is None or core.role is not Role.LEADER:
                continue
            for peer, pr in core._progress.items():
                state = f"  {peer}: {pr.state.value} match={pr.match} next={pr.next}"
                if pr.state.value == "snapshot":
                    state += f" snap={pr.snapshot_index} sent={pr.snap_sent} acked={pr.snap_acked}"
                elif pr.inflight:
                    state += f" inflight={len(pr.inflight)}"
                self.lines.append(state)

    def cmd_log(self, args: Args) -> None:
        """log [node ...]: each node's log (a crashed node's: what it persisted)."""
        for node_id in self._nodes(args):
            node = self.sim.nodes[node_id]
            st = node.storage
            if node.core is None:
                label, entries, commit = f"{node_id} (down, on disk)", st.entries, st.hard_state.commit
            else:
                label, entries, commit = node_id, node.core.entries_from(0), node.core.commit_index
            snap = f"[snap {st.snapshot.index}@{st.snapshot.term}] " if st.snapshot else ""
            body = " ".join(entry(e) for e in entries) or "(empty)"
            self.lines.append(f"{label}: {snap}{body} (commit={commit})")

    # ------------------------------------------------------------------ commands: properties

    def cmd_assert(self, args: Args) -> None:
        """assert node|net|read|cluster key<op>value ...: fail the scenario unless all hold."""
        if not args.words:
            raise ScenarioError("assert what? a node, net, read or cluster")
        target = args.words.pop(0)
        failures = [
            why
            for what, actual, op, wanted in self._facts(target, args)
            if (why := _compare(what, actual, op, wanted))
        ]
        args.keys.clear()
        if failures:
            raise ScenarioError("assertion failed: " + "; ".join(failures))
        self.lines.append("ok")

    def _facts(self, target: str, args: Args) -> Iterator[tuple[str, object, str, str]]:
        """(what, its actual value, op, wanted value) for each comparison an assert asks for."""
        sim = self.sim
        if target == "net":
            wanted = [key for key in args.keys if key[0] == "count"] or [("count", ">", "0")]
            args.keys = [key for key in args.keys if key[0] != "count"]
            match = self._filter(args)
            count = sum(1 for m in self._pending() if match(m))
            for _, op, value in wanted:
                yield "messages in flight", count, op, value
        elif target == "read":
            ctx = int(args.pop_key("ctx") or 0)
            facts = {
                "state": "served" if ctx in sim.served else "dropped" if ctx in sim.dropped else "pending",
                "index": sim.served.get(ctx, 0),
            }
            for key, op, value in args.keys:
                if key not in facts:
                    raise ScenarioError(f"read keys: ctx, state, index; not {key!r}")
                yield f"read {ctx} {key}", facts[key], op, value
        elif target == "cluster":
            for key, op, value in args.keys:
                if key == "committed":
                    yield key, sim.max_committed, op, value
                elif key.startswith("sent."):
                    yield key, sim.sent_types[key.removeprefix("sent.")], op, value
                else:
                    raise ScenarioError(f"cluster keys: committed, sent.<type>; not {key!r}")
        else:
            node_id = self._node(target)
            values = self._values(node_id)
            for key, op, value in args.keys:
                if key in ("sm", "log"):  # the same applied state machine / log as another node
                    yield (
                        f"{node_id} {key}",
                        value if self._same(key, node_id, self._node(value)) else f"not {value}",
                        op,
                        value,
                    )
                elif key in values:
                    actual = values[key]
                    yield f"{node_id} {key}", int(actual) if actual.isdigit() else actual, op, value
                else:
                    raise ScenarioError(f"node keys: {', '.join(STATUS_KEYS)}, sm, log; not {key!r}")

    def _same(self, key: str, node_id: str, other: str) -> bool:
        mine, theirs = self.sim.nodes[node_id], self.sim.nodes[other]
        if key == "sm":
            return mine.sm == theirs.sm
        if mine.core is None or theirs.core is None:
            raise ScenarioError("log= compares the logs of two live nodes")
        return mine.core.entries_from(0) == theirs.core.entries_from(0)

    def cmd_expect_violation(self, args: Args) -> None:
        """expect-violation "text": a later command must break a safety property with this text."""
        if len(args.words) != 1:
            raise ScenarioError('give the expected text in quotes: expect-violation "leader completeness"')
        self.expect = (args.words.pop(), self.line)
        self.lines.append(f"expecting a violation: {self.expect[0]}")


if __name__ == "__main__":  # print a scenario as it runs now, up to its first error
    import sys

    try:
        sys.stdout.write(run_file(Path(sys.argv[1])))
    except ScenarioError as exc:
        sys.stdout.write(getattr(exc, "partial", ""))
        sys.exit(1)
