"""Generated histories, recorded from a simulated correct object, for tests and benchmarks.

``generate(model, clients=..., ops=...)`` simulates ``clients`` concurrent Jepsen
processes, each with one operation in flight, against a correct sequential object. Every
operation gets a random real-time interval (clients overlap freely) and takes effect at a
linearization point strictly inside it, so the history is linearizable by construction.
A share ``info_rate`` of operations ends ``info`` (timed out): such an operation takes
effect or not (half the time each), possibly after its ``info`` record, and the process
that issued it is replaced by a new one (number + ``clients``, as Jepsen does).

Operations are chosen in linearization order, knowing the object's state (so a cas
often expects the current value, a fetch reads near the end of an inbox); only the
records are in time order. Values are canonical (``histories.format``): register reads and
writes, cas ``[expected, new, swapped]``, kv ``[key, value]`` with every key starting at
``""``, chat as ``workloads/chat.py`` records it (arguments plus ``"group"``; ok =
``{"status", "value"}``, answered as raftchat's ``ChatMachine`` answers). ``keys`` is the number of
kv keys or chat groups. With ``unique_writes`` every written value (register value, kv
token, message text) is distinct; otherwise values come from a small domain. With
``wrong_password`` (chat only) every operation carries a password as the workload's do, and
that share of those on an account's behalf (send as the sender, fetch, delete) a wrong one,
refused with ``bad_password``.

``kv_writes`` (kv only) is the kv's writes: ``"put"``, ``"append"`` or ``"both"`` (the
default). ``final_reads`` (register, cas-register, kv) adds a read of every key after the last
operation completed, each by a process of its own, as the harness's final reads phase does.

What the harness sees of a run can be had too: a share ``fail_rate`` of operations ends
``fail`` (refused, no effect); ``latency_ns`` and ``gap_ns`` set the time scale (mean
latency, most idle time between a client's operations); ``faults`` (name, start s, stop s
or None) adds the nemesis's start and stop records, and an operation invoked while one is
in force takes ``FAULT_SLOWDOWN`` times as long and ends ok, ``info`` or ``fail`` (a
quarter, a half, a quarter). ``resolution`` coarsens the clock: every time is rounded down
to a multiple of that many ns, so records tie (equal times are concurrent, as the checker
reads them), and 0 leaves every time 0: the record order is the only clock, as in EDN and
Porcupine histories.

``anomaly`` injects exactly one violation that no linearization can explain:

* ``stale-read``: a read returns a value that a later write overwrote before the read
  was invoked (W1 ends before W2 starts, W2 ends before the read starts).
* ``lost-write``: an acknowledged write or append (a sent message) never takes effect;
  a read that starts after it was acknowledged misses it, and later writes are seen.
* ``duplicate-append`` (kv, chat): one append or message takes effect twice; a read
  shows it twice.
* ``early-read``: a read shows a value whose write was invoked only after the read
  completed.

``perturb`` is the chance that the history gets one completed read changed (register,
cas-register, kv): to another state its key held at some time, its initial state, or a value
nobody wrote (a cas, to the other outcome). The result may be linearizable or not, as it
happens: for tests that compare two checkers on histories that are near misses.

The values at stake are always fresh (unique even without ``unique_writes``), the
operations involved have known outcomes (and, with passwords, the right ones), and a chat
anomaly concerns a user that is never deleted, so each argument holds whatever the rest of
the history does. The result is deterministic for a seed.
"""

from __future__ import annotations

import gc
import math
import random
from collections.abc import Sequence
from fnmatch import fnmatchcase
from operator import attrgetter
from typing import Any

from histories.format import NEMESIS, Op

MODELS = ("register", "cas-register", "kv", "chat")
KV_WRITES = ("both", "put", "append")
ANOMALIES = ("stale-read", "lost-write", "duplicate-append", "early-read")
APPENDS = frozenset({"kv", "chat"})  # the models with an append for duplicate-append

_MEAN_NS = 1_000_000  # mean operation latency
_GAP_NS = _MEAN_NS // 10  # at most this idle between a client's operations: high overlap
_ATTEMPTS = 50  # schedules tried when a short history leaves no room for the anomaly
_S = 1_000_000_000
FAULT_SLOWDOWN = 40  # an operation invoked during a fault takes this many times as long

Fault = tuple[str, float, float | None]  # (name, start s, stop s or None: until the end)


def generate(
    model: str,
    *,
    clients: int,
    ops: int,
    keys: int = 1,
    info_rate: float = 0.0,
    fail_rate: float = 0.0,
    anomaly: str | None = None,
    unique_writes: bool = True,
    wrong_password: float | None = None,
    latency_ns: int = _MEAN_NS,
    gap_ns: int | None = None,
    faults: Sequence[Fault] = (),
    resolution: int = 1,
    kv_writes: str = "both",
    final_reads: bool = False,
    perturb: float = 0.0,
    seed: int = 0,
) -> list[Op]:
    """The records (invoke and completion) of ``ops`` operations; see the module docstring.
    ``gap_ns`` None: a tenth of ``latency_ns``."""
    _validate(
        model, clients, ops, keys, info_rate, fail_rate, anomaly, wrong_password, latency_ns, resolution
    )
    _validate_shape(model, anomaly, kv_writes, final_reads, perturb)
    timing = _Timing(latency_ns, latency_ns // 10 if gap_ns is None else gap_ns, faults, resolution)
    collecting = gc.isenabled()
    gc.disable()  # millions of new objects, no cycles: the collector would only rescan them
    try:
        for attempt in range(_ATTEMPTS):
            rng = random.Random(seed if attempt == 0 else f"{seed}/{attempt}")
            slots = _schedule(rng, clients, ops, info_rate, fail_rate, timing)
            sim = _SIMS[model](rng, keys, unique_writes, wrong_password)
            sim.writes, sim.states = kv_writes, {} if perturb else None
            finals = _final_reads(slots, sim.keys_read(), max(1, resolution)) if final_reads else {}
            chain = None if anomaly is None else _Chain(anomaly, sim, rng, len(slots), max(1, resolution))
            for position, slot in enumerate(slots):
                if finals and id(slot) in finals:
                    sim.read(slot, finals[id(slot)])
                elif chain is None or not chain.step(position, slot):
                    sim.random_op(slot)
            if perturb and rng.random() < perturb:
                sim.perturb(slots)
            if chain is None or chain.done:
                return _records(slots, timing)
    finally:
        if collecting:
            gc.enable()
    raise ValueError(
        f"{ops} operations of {clients} client(s) leave no room for a {anomaly} "
        f"(it needs a few operations one after another in real time); generate more"
    )


def _validate(
    model: str,
    clients: int,
    ops: int,
    keys: int,
    info_rate: float,
    fail_rate: float,
    anomaly: str | None,
    wrong_password: float | None,
    latency_ns: int,
    resolution: int,
) -> None:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    if anomaly is not None and anomaly not in ANOMALIES:
        raise ValueError(f"unknown anomaly {anomaly!r}; known: {', '.join(ANOMALIES)}")
    if anomaly == "duplicate-append" and model not in APPENDS:
        raise ValueError(f"duplicate-append needs an append: model kv or chat, not {model!r}")
    if clients < 1 or ops < 1 or keys < 1:
        raise ValueError(f"clients, ops and keys must be at least 1 (got {clients}, {ops}, {keys})")
    if keys != 1 and model in ("register", "cas-register"):
        raise ValueError(f"a {model} is one key; keys must be 1, not {keys}")
    for name, share in (
        ("info_rate", info_rate),
        ("fail_rate", fail_rate),
        ("wrong_password", wrong_password),
    ):
        if share is not None and not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, not {share}")
    if info_rate + fail_rate > 1.0:
        raise ValueError(f"info_rate and fail_rate add up to more than 1 ({info_rate} + {fail_rate})")
    if wrong_password is not None and model != "chat":
        raise ValueError(f"passwords are the chat model's; {model!r} has none (wrong_password must be None)")
    if latency_ns < 1 or resolution < 0:
        raise ValueError(
            f"latency_ns must be at least 1 and resolution at least 0 ({latency_ns}, {resolution})"
        )


def _validate_shape(
    model: str, anomaly: str | None, kv_writes: str, final_reads: bool, perturb: float
) -> None:
    if kv_writes not in KV_WRITES:
        raise ValueError(f"unknown kv_writes {kv_writes!r}; known: {', '.join(KV_WRITES)}")
    if kv_writes != "both" and model != "kv":
        raise ValueError(f"kv_writes is the kv model's; {model!r} has its own writes (leave it 'both')")
    if kv_writes == "put" and anomaly == "duplicate-append":
        raise ValueError("duplicate-append needs an append; kv_writes 'put' has none")
    if not 0.0 <= perturb <= 1.0:
        raise ValueError(f"perturb must be between 0 and 1, not {perturb}")
    if perturb and anomaly is not None:
        raise ValueError("perturb and anomaly do not mix: an anomaly is exactly one known violation")
    if (perturb or final_reads) and model == "chat":
        raise ValueError("perturb and final_reads are for register, cas-register and kv, not chat")


def _final_reads(slots: list[_Slot], keys: list[Any], tick: int) -> dict[int, Any]:
    """A read slot per key after every slot completed (also on the clock once it is rounded to
    ``tick``), each by a new process, put in effect order among ``slots``; the key each reads,
    by the slot's id."""
    start = (max(slot.complete for slot in slots) // tick + 1) * tick
    process = max(slot.process for slot in slots) + 1
    finals = {}
    for k, key in enumerate(keys):
        slot = _Slot(start, start + 2, start + 1, process + k, False, True)
        slots.append(slot)
        finals[id(slot)] = key
    slots.sort(key=attrgetter("lin"))  # a crashed op may still take effect after them
    return finals


class _Timing:
    """The time scale, the faults (in ns) and the clock's resolution of one history."""

    def __init__(self, latency: int, gap: int, faults: Sequence[Fault], resolution: int) -> None:
        self.latency, self.gap, self.resolution = latency, gap, resolution
        self.faults = [(name, int(a * _S), None if b is None else int(b * _S)) for name, a, b in faults]

    def in_fault(self, t: int) -> bool:
        return any(a <= t and (b is None or t < b) for _, a, b in self.faults)


class _Slot:
    """One operation: its interval and fate (from the schedule), then what it did."""

    __slots__ = ("invoke", "complete", "lin", "process", "info", "applies", "failed", "f", "inv", "out")

    def __init__(
        self,
        invoke: int,
        complete: int,
        lin: int,
        process: int,
        info: bool,
        applies: bool,
        failed: bool = False,
    ) -> None:
        self.invoke, self.complete, self.lin = invoke, complete, lin
        self.process, self.info, self.applies, self.failed = process, info, applies, failed
        self.f: str = ""
        self.inv: Any = None
        self.out: Any = None


def _schedule(
    rng: random.Random, clients: int, ops: int, info_rate: float, fail_rate: float, timing: _Timing
) -> list[_Slot]:
    """Each client's back-to-back intervals (exponential latencies), sorted by effect time.
    (A rate of 0 and no faults draw no random numbers, so a seed's history stays the same.)"""
    rand, log = rng.random, math.log
    mean, gap, faulty = timing.latency, timing.gap, timing.faults and timing.in_fault
    per, extra = divmod(ops, clients)
    slots: list[_Slot] = []
    add = slots.append
    for client in range(clients):
        t = 1 + int(rand() * mean)
        process = client
        for _ in range(per + (client < extra)):
            d = 2 + int(-log(1.0 - rand()) * mean)  # expovariate, inlined: a million calls
            if faulty and faulty(t):
                d *= FAULT_SLOWDOWN
                roll = rand()
                info, failed = roll < 0.5, 0.5 <= roll < 0.75
            else:
                info = bool(info_rate) and rand() < info_rate
                failed = not info and bool(fail_rate) and rand() < fail_rate / (1.0 - info_rate)
            if info:
                # Timed out: may take effect after the info record too, or never.
                add(_Slot(t, t + d, t + 1 + int(rand() * 2 * d), process, True, rand() < 0.5))
                process += clients
            elif failed:  # refused: never takes effect
                add(_Slot(t, t + d, t + 1 + int(rand() * (d - 1)), process, False, False, True))
            else:
                add(_Slot(t, t + d, t + 1 + int(rand() * (d - 1)), process, False, True))
            t += d + 1 + int(rand() * gap)
    slots.sort(key=attrgetter("lin"))
    return slots


def _records(slots: list[_Slot], timing: _Timing) -> list[Op]:
    """Invoke and completion records of every slot, in time order, indexed; then the faults'
    records and the clock's resolution."""
    width = 2 * len(slots)
    order = []
    add = order.append
    for i, slot in enumerate(slots):
        add(slot.invoke * width + 2 * i)
        add(slot.complete * width + 2 * i + 1)
    order.sort()
    records: list[Op] = []
    add_record = records.append
    for index, key in enumerate(order):
        event = key % width
        slot = slots[event >> 1]
        if not event & 1:
            add_record(Op(index, "invoke", slot.process, slot.f, slot.inv, slot.invoke))
        elif slot.info:
            add_record(Op(index, "info", slot.process, slot.f, slot.inv, slot.complete))
        elif slot.failed:
            add_record(Op(index, "fail", slot.process, slot.f, slot.inv, slot.complete))
        else:
            add_record(Op(index, "ok", slot.process, slot.f, slot.out, slot.complete))
    if timing.faults:
        records = _with_faults(records, timing.faults)
    if timing.resolution != 1:
        step = timing.resolution
        for record in records:
            record.time = record.time // step * step if step else 0
    return records


def _with_faults(records: list[Op], faults: list[tuple[str, int, int | None]]) -> list[Op]:
    """The nemesis's start and stop records merged in (after operations at the same time), reindexed."""
    nemesis = [(a, Op(0, "info", NEMESIS, "start", {"fault": name}, a)) for name, a, _ in faults]
    nemesis += [(b, Op(0, "info", NEMESIS, "stop", {"fault": name}, b)) for name, _, b in faults if b]
    keyed = [(r.time, 0, i, r) for i, r in enumerate(records)]
    ordered = [entry[3] for entry in sorted(keyed + [(t, 1, i, r) for i, (t, r) in enumerate(nemesis)])]
    for index, record in enumerate(ordered):
        record.index = index
    return ordered


class _Chain:
    """Injects one anomaly: forces a few operations (a write, then one that starts after
    it ended, ...) on one key, and overrides what a read saw where the anomaly says so."""

    def __init__(self, kind: str, sim: _Sim, rng: random.Random, n: int, tick: int) -> None:
        self.kind, self.sim, self.tick = kind, sim, tick  # tick: the clock's resolution
        self.key = sim.anomaly_key()
        self.start = rng.randrange(max(1, n // 3))
        self.phase, self.after, self.done = 0, 0, False
        self.seen: Any = None
        self.reader: _Slot | None = None

    def step(self, position: int, slot: _Slot) -> bool:
        """Force ``slot`` if the anomaly needs it; False leaves it to the random choice."""
        if self.done or position < self.start or slot.info or slot.failed or slot.invoke <= self.after:
            return False
        sim, key, kind, phase = self.sim, self.key, self.kind, self.phase
        if kind == "early-read":
            if phase == 0:
                sim.read(slot, key)
                self.reader = slot
            elif sim.write(slot, key):
                assert self.reader is not None
                sim.observe(self.reader, key, sim.snapshot(key))
            else:
                return True  # the write needed a setup step first (a chat account)
        elif phase == 0:
            before = sim.snapshot(key)
            if not sim.write(slot, key, 2 if kind == "duplicate-append" else 1):
                return True
            self.seen = before if kind == "duplicate-append" else sim.snapshot(key)
            if kind in ("lost-write", "duplicate-append"):
                sim.frozen = key
        elif phase == 1 and kind != "duplicate-append":
            if kind == "lost-write":
                self.seen = sim.snapshot(key)
            sim.write(slot, key, 0 if kind == "lost-write" else 1)
        elif kind == "stale-read":
            sim.read(slot, key, self.seen)
            sim.observe(slot, key, self.seen)
        else:
            sim.read(slot, key, self.seen)
            sim.frozen = None
        self.phase += 1
        # The next forced op starts after this one ended, also on the clock once it is rounded.
        tick = self.tick
        self.after = slot.complete // tick * tick + tick - 1 if kind != "duplicate-append" else 0
        self.done = self.phase == (2 if kind in ("early-read", "duplicate-append") else 3)
        return True


class _Sim:
    """A correct sequential object plus what ``_Chain`` needs to force operations on it.

    ``random_op`` fills in a slot with a random operation (applying it if the slot takes
    effect); ``write`` forces a write of a fresh value (``effect`` times: 0 = acknowledged
    but lost); ``read`` forces a read; ``snapshot``/``observe`` make a read show a given
    state. ``frozen`` names a key no random operation may write (reads only) while an
    anomaly needs its value to stay. ``read``'s ``limit`` (a snapshot) asks a chat fetch to
    start no later than that inbox's last message, so it covers the message at stake.
    ``writes`` is the kv's kind of write; ``states`` (when not None) keeps every state each key
    had, for ``perturb`` to pick from.
    """

    def __init__(self, rng: random.Random, keys: int, unique: bool, wrong_password: float | None) -> None:
        self.rng, self.keys, self.unique, self.wrong_password = rng, keys, unique, wrong_password
        self.frozen: Any = None
        self._fresh = 0
        self.writes = "both"
        self.states: dict[Any, list[Any]] | None = None

    def fresh(self) -> int:
        self._fresh += 1
        return self._fresh

    def anomaly_key(self) -> Any:
        return None

    def random_op(self, slot: _Slot) -> None:
        raise NotImplementedError

    def write(self, slot: _Slot, key: Any, effect: int = 1) -> bool:
        raise NotImplementedError

    def read(self, slot: _Slot, key: Any, limit: Any = None) -> None:
        raise NotImplementedError

    def snapshot(self, key: Any) -> Any:
        raise NotImplementedError

    def observe(self, slot: _Slot, key: Any, state: Any) -> None:
        raise NotImplementedError

    def keys_read(self) -> list[Any]:
        """The keys a final read reads."""
        raise NotImplementedError

    def perturb(self, slots: list[_Slot]) -> None:
        """Change what one completed read saw (see ``perturb`` in the module docstring)."""
        raise NotImplementedError

    def _remember(self, key: Any, state: Any) -> None:
        if self.states is not None:
            self.states.setdefault(key, []).append(state)

    def _change_a_read(self, slots: list[_Slot], initial: Any, garbage: Any) -> None:
        """One completed read (or cas) of ``slots``, its answer changed: a cas to the other
        outcome, a read to a state of its key (another one it had, ``initial`` or ``garbage``)."""
        answered = [s for s in slots if not s.info and not s.failed and s.f in ("read", "get", "cas")]
        if not answered:
            return
        slot = self.rng.choice(answered)
        if slot.f == "cas":
            expected, new, swapped = slot.out
            slot.out = [expected, new, not swapped]
            return
        key = self._key_of(slot)
        states = [] if self.states is None else self.states.get(key, [])
        self.observe(slot, key, self.rng.choice([initial, *states, garbage]))

    def _key_of(self, slot: _Slot) -> Any:
        return None


class _Register(_Sim):
    """read / write (and cas): values are ints; fresh ones start past the small domain."""

    cas = False
    _DOMAIN = 5

    def __init__(self, rng: random.Random, keys: int, unique: bool, wrong_password: float | None) -> None:
        super().__init__(rng, keys, unique, wrong_password)
        self.value: Any = None
        self._fresh = 0 if unique else 1000

    def anomaly_key(self) -> Any:
        return "register"  # one key; any name that is not None (None = nothing frozen)

    def _new_value(self) -> int:
        return self.fresh() if self.unique else self.rng.randrange(self._DOMAIN)

    def random_op(self, slot: _Slot) -> None:
        roll = self.rng.random()
        if roll < 0.4 or self.frozen is not None:
            self.read(slot, None)
        elif roll < 0.7 or not self.cas:
            self._write(slot, self._new_value(), slot.applies)
        else:
            current, rng = self.value, self.rng
            if rng.random() < 0.5 and current is not None:
                expected = current
            elif self.unique:
                expected = rng.randrange(1, self._fresh + 1) if self._fresh else None
            else:
                expected = rng.randrange(self._DOMAIN)
            new = self._new_value()
            swapped = current == expected
            if swapped and slot.applies:
                self.value = new
                self._remember(None, new)
            slot.f, slot.inv, slot.out = "cas", [expected, new], [expected, new, swapped]

    def _write(self, slot: _Slot, value: int, effect: int) -> None:
        if effect:
            self.value = value
            self._remember(None, value)
        slot.f, slot.inv, slot.out = "write", value, value

    def write(self, slot: _Slot, key: Any, effect: int = 1) -> bool:
        self._write(slot, self.fresh(), effect)
        return True

    def read(self, slot: _Slot, key: Any, limit: Any = None) -> None:
        slot.f, slot.inv, slot.out = "read", None, self.value

    def snapshot(self, key: Any) -> Any:
        return self.value

    def observe(self, slot: _Slot, key: Any, state: Any) -> None:
        slot.out = state

    def keys_read(self) -> list[Any]:
        return [None]

    def perturb(self, slots: list[_Slot]) -> None:
        self._change_a_read(slots, None, -1)  # -1: no value written is negative


class _CasRegister(_Register):
    cas = True


class _KV(_Sim):
    """get / put / append over ``keys`` string keys; tokens ``x<n>.`` (fresh: ``!<n>.``)."""

    def __init__(self, rng: random.Random, keys: int, unique: bool, wrong_password: float | None) -> None:
        super().__init__(rng, keys, unique, wrong_password)
        self.names = [f"k{i}" for i in range(keys)]
        self.values = dict.fromkeys(self.names, "")

    def anomaly_key(self) -> Any:
        return self.rng.choice(self.names)

    def _token(self) -> str:
        return f"x{self.fresh()}." if self.unique else self.rng.choice("abc")

    def random_op(self, slot: _Slot) -> None:
        rng = self.rng
        key = self.names[int(rng.random() * self.keys)]
        roll = rng.random()
        if roll < 0.4 or key == self.frozen:
            self.read(slot, key)
        else:
            f = ("put" if roll < 0.55 else "append") if self.writes == "both" else self.writes
            self._write(slot, key, f, self._token(), slot.applies)

    def _write(self, slot: _Slot, key: str, f: str, token: str, effect: int) -> None:
        if effect:
            value = self.values[key] if f == "append" else ""
            self.values[key] = value + token * effect
            self._remember(key, self.values[key])
        slot.f = f
        slot.inv = slot.out = [key, token]

    def write(self, slot: _Slot, key: Any, effect: int = 1) -> bool:
        token = f"x{self.fresh()}." if self.unique else f"!{self.fresh()}."
        self._write(slot, key, "put" if self.writes == "put" else "append", token, effect)
        return True

    def read(self, slot: _Slot, key: Any, limit: Any = None) -> None:
        slot.f, slot.inv, slot.out = "get", [key, None], [key, self.values[key]]

    def snapshot(self, key: Any) -> Any:
        return self.values[key]

    def observe(self, slot: _Slot, key: Any, state: Any) -> None:
        slot.out = [key, state]

    def keys_read(self) -> list[Any]:
        return list(self.names)

    def perturb(self, slots: list[_Slot]) -> None:
        self._change_a_read(slots, "", "zz")  # no token has a "z"

    def _key_of(self, slot: _Slot) -> Any:
        return slot.inv[0]


_USERS = 3  # users per chat group, as the chat workload's default
_CHAT_WEIGHTS = {  # the chat workload's defaults, a fifth is one table entry
    "create_account": 2.0,
    "check_account": 1.0,
    "list_accounts": 1.0,
    "delete_account": 0.2,
    "send_message": 4.0,
    "fetch_messages": 3.0,
}
_CHAT_TABLE = [f for f, w in _CHAT_WEIGHTS.items() for _ in range(round(w * 5))]  # pick = one index

Inboxes = dict[str, list[list[str]]]  # user -> [[sender, text], ...]
Passwords = dict[str, str]  # user -> the password the account was created with
_ACTING = {"delete_account": "user", "fetch_messages": "user", "send_message": "sender"}


def chat_answer(
    boxes: Inboxes, f: str, args: dict[str, Any], passwords: Passwords | None = None
) -> tuple[str, Any]:
    """(status, value) of one chat operation, as raftchat's ChatMachine answers it, for the
    names and texts this generator uses (valid lengths; a pattern matching the group).
    With ``passwords``, an operation on an existing account's behalf whose ``password`` is
    not the account's is refused first (``bad_password``), and accounts keep theirs.

    The service's machine would do, but at a few times the cost: a million-operation
    history is generated in seconds with this one. A test replays one-client histories
    on ``raftchat.chat.ChatMachine`` to keep the two the same.
    """
    if passwords is not None and f in _ACTING:
        stored = passwords.get(args[_ACTING[f]])
        if stored is not None and stored != args.get("password", ""):
            return "bad_password", None
    if f == "send_message":
        box = boxes.get(args["to"])
        if box is None or args["sender"] not in boxes:
            return "no_such_user", None
        box.append([args["sender"], args["text"]])
        return "ok", len(box)
    if f == "fetch_messages":
        box = boxes.get(args["user"])
        start = args["from_index"]
        if box is None:
            return "no_such_user", None
        if start < 1:
            return "bad_index", None
        if start > len(box):
            return "index_past_end", []
        return "ok", box[start - 1 :]
    user = args.get("user")
    if f == "create_account":
        if user in boxes:
            return "user_exists", None
        boxes[user] = []
        if passwords is not None:
            passwords[user] = args.get("password", "")
        return "ok", None
    if f == "check_account":
        return "ok", user in boxes
    if f == "list_accounts":
        return "ok", sorted(u for u in boxes if fnmatchcase(u, args["pattern"]))
    if f == "delete_account":
        if boxes.pop(user, None) is None:
            return "no_such_user", None
        if passwords is not None:
            del passwords[user]
        return "ok", None
    raise ValueError(f"no chat operation {f!r}")


class _Chat(_Sim):
    """Independent groups ``g<i>`` of users ``g<i>u0..``; ``u0`` is never deleted, so an
    anomaly on its inbox stays visible whatever else happens."""

    def __init__(self, rng: random.Random, keys: int, unique: bool, wrong_password: float | None) -> None:
        super().__init__(rng, keys, unique, wrong_password)
        self.groups = [f"g{i}" for i in range(keys)]
        self.boxes: list[Inboxes] = [{} for _ in range(keys)]
        self.passwords: list[Passwords] | None = None if wrong_password is None else [{} for _ in range(keys)]
        self.users = [[f"{g}u{u}" for u in range(_USERS)] for g in self.groups]

    def anomaly_key(self) -> Any:
        return self.rng.randrange(self.keys)

    def _apply(self, slot: _Slot, group: int, f: str, args: dict[str, Any], effect: int = 1) -> None:
        """Run ``f`` on the group ``effect`` times and record the first answer. ``effect``
        0: an info op that never happened (no answer), or an acknowledged one that is
        lost (answered from a copy of the group)."""
        args["group"] = self.groups[group]
        slot.f, slot.inv = f, args
        boxes = self.boxes[group]
        passwords = None if self.passwords is None else self.passwords[group]
        if effect == 0:
            if slot.info or slot.failed:
                return
            boxes = {user: list(box) for user, box in boxes.items()}
            passwords = None if passwords is None else dict(passwords)
        status, value = chat_answer(boxes, f, args, passwords)
        for _ in range(effect - 1):
            chat_answer(boxes, f, args, passwords)
        slot.out = {"status": status, "value": value}

    def _password(self, user: str, right: bool = False) -> dict[str, str]:
        """The ``password`` argument of an operation for ``user`` (none without passwords):
        the account's, or now and then (unless ``right``) a wrong one."""
        if self.wrong_password is None:
            return {}
        wrong = not right and self.rng.random() < self.wrong_password
        return {"password": f"{user}:pw" + ("-wrong" if wrong else "")}

    def random_op(self, slot: _Slot) -> None:
        rand = self.rng.random
        group = int(rand() * self.keys)
        users = self.users[group]
        f, user = _CHAT_TABLE[int(rand() * len(_CHAT_TABLE))], users[int(rand() * _USERS)]
        if f == "send_message":
            sender = users[int(rand() * _USERS)]
            args: dict[str, Any] = {
                "sender": sender,
                "to": user,
                "text": self._text(),
                **self._password(sender),
            }
        elif f == "fetch_messages":
            box = self.boxes[group].get(user)
            from_index = self._from_index(0 if box is None else len(box))
            args = {"user": user, "from_index": from_index, **self._password(user)}
        elif f == "list_accounts":
            args = {"pattern": f"{self.groups[group]}u*"}
        elif f == "delete_account" and user == users[0]:
            f, args = "check_account", {"user": user}
        elif f in ("create_account", "delete_account"):
            args = {"user": user, **self._password(user, right=f == "create_account")}
        else:
            args = {"user": user}
        self._apply(slot, group, f, args, int(slot.applies))

    def _text(self) -> str:
        return f"m{self.fresh()}" if self.unique else self.rng.choice(("hi", "hello", "bye"))

    def _from_index(self, length: int) -> int:
        """Near the end (short answers even in long histories), sometimes past it, or 1
        while the inbox is short."""
        roll = self.rng.random()
        if roll < 0.1 and length <= 10:
            return 1
        if roll < 0.2:
            return length + 1
        return max(1, length - int(self.rng.random() * 3))

    def write(self, slot: _Slot, key: Any, effect: int = 1) -> bool:
        users, boxes = self.users[key], self.boxes[key]
        target = users[0]
        if target not in boxes:
            self._apply(slot, key, "create_account", {"user": target, **self._password(target, True)})
            return False
        text = f"m{self.fresh()}" if self.unique else f"!{self.fresh()}"
        sender = self.rng.choice([u for u in users if u in boxes])
        args = {"sender": sender, "to": target, "text": text, **self._password(sender, True)}
        self._apply(slot, key, "send_message", args, effect)
        return True

    def read(self, slot: _Slot, key: Any, limit: Any = None) -> None:
        user = self.users[key][0]
        start = max(1, len(self.boxes[key].get(user, ())) - int(self.rng.random() * 2))
        if limit is not None:
            start = min(start, max(1, len(limit)))
        self._apply(
            slot, key, "fetch_messages", {"user": user, "from_index": start, **self._password(user, True)}
        )

    def snapshot(self, key: Any) -> Any:
        return list(self.boxes[key].get(self.users[key][0], ()))

    def observe(self, slot: _Slot, key: Any, state: Any) -> None:
        start = slot.inv["from_index"]
        if start > len(state):
            slot.out = {"status": "index_past_end", "value": []}
        else:
            slot.out = {"status": "ok", "value": state[start - 1 :]}


_SIMS: dict[str, type[_Sim]] = {"register": _Register, "cas-register": _CasRegister, "kv": _KV, "chat": _Chat}
