"""Test plans: what a run does, read from YAML and overridden from the command line.

Every field has a default, so an empty plan is a valid one. Anything unknown, of the
wrong type or impossible is an error that names the key and what was expected: a typo
in a nightly plan must not silently run a different test.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from raftchat.config import TUNING_FIELDS, ConfigError, loopback_defaults, read_yaml

# Harness runs compact often, so that every run takes and installs snapshots under faults: a
# default run (60 s at 100 ops/s) has each node snapshot every few seconds, and a node that is
# down for one fault interval misses more entries than the leader keeps, so it catches up by
# InstallSnapshot. (A raftchat node on its own snapshots every 10,000 entries.)
DEFAULT_SNAPSHOT_EVERY = 100
# A plan without a nemesis interval gets one that fits about this many faults into its load
# (a start and a stop each interval), at most MAX_DEFAULT_INTERVAL apart: a 60 s run starts a
# fault every 10 s, and a 30 s run, which at a fixed 5 s had three (the last cut short by the
# end of the load), has six as well. Most bugs need a particular fault (the leader cut off or
# killed, a node restarted from a snapshot) to strike; a short run must not get fewer draws.
DEFAULT_FAULTS = 6
MAX_DEFAULT_INTERVAL = 5.0
MIN_DEFAULT_INTERVAL = 2.0  # shorter, a fault barely outlasts the election and catch-up it causes


class PlanError(ValueError):
    """The plan is not usable; the message says where and why."""


@dataclass
class Plan:
    name: str = "raftchat"  # when not given: the system's name
    system: str = "raftchat"  # the system under test (systems.SYSTEMS)
    system_options: dict[str, Any] = field(default_factory=dict)  # e.g. {reads: serializable} for etcd
    nodes: int = 5
    concurrency: int = 10
    time_limit: float = 60.0  # seconds of load, before healing and the final reads
    rate: float = 100.0  # operations per second over all workers; 0 = as fast as they go
    seed: int | None = None  # None: drawn at random, and written into the stored plan
    workload: str = "chat"  # when not given: the system's first workload (register for etcd, ...)
    workload_options: dict[str, Any] = field(default_factory=dict)
    nemesis: list[str] = field(default_factory=lambda: ["partition"])  # fault kinds; empty = no faults
    # Seconds between starting and stopping faults; None: fitted to time_limit (default_interval).
    nemesis_interval: float | None = None
    net: str = "auto"  # how partitions are made: auto, netns or proxy
    recovery: float = 3.0  # seconds the healed cluster gets before the final reads
    op_timeout: float = 5.0  # a client operation still unanswered after this is recorded as info
    attempt_timeout: float = 1.0  # a client retries (same request, next node) after this long
    checker_timeout: float = 120.0  # then the verdict is "unknown"
    checker_max_memory: int | None = None  # MiB the search may take; None: a quarter of the machine's
    bug: str | None = None  # start every node with this deliberate bug (self-test)
    # Node tuning written into the cluster file: snapshot_every, election_timeout_ms, heartbeat_ms, tick_ms.
    raftchat: dict[str, int] = field(default_factory=lambda: {"snapshot_every": DEFAULT_SNAPSHOT_EVERY})
    converge_timeout: float = 8.0  # after the final reads, every node must agree within this long
    # Then kill every node at once, start them again and compare the state they come back
    # with (harness.restart); raftchat's node checks only.
    restart_check: bool = True
    status_interval: float = 1.0  # seconds between two polls of every node's status (and memory)
    hosts: list[Any] | str | None = None  # SSH hosts, one node each (remote/); a file name; None: local

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS = {f.name: f for f in fields(Plan)}
_NETS = ("auto", "netns", "proxy")


def _positive_int(key: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PlanError(f"{key!r} must be an integer of at least {minimum}, got {value!r}")
    return value


def _seconds(key: str, value: Any, allow_zero: bool = False) -> float:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or value < 0 or (value == 0 and not allow_zero):
        kind = "a non-negative number" if allow_zero else "a positive number"
        raise PlanError(f"{key!r} must be {kind} of seconds, got {value!r}")
    return float(value)


def default_interval(time_limit: float) -> float:
    """The nemesis interval of a plan that names none: DEFAULT_FAULTS faults in ``time_limit``."""
    fitted = time_limit / (2 * DEFAULT_FAULTS)
    return round(min(MAX_DEFAULT_INTERVAL, max(MIN_DEFAULT_INTERVAL, fitted)), 2)


def validate(data: dict[str, Any]) -> Plan:
    """Build a Plan from a mapping, checking every key."""
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise PlanError(f"unknown key(s) {', '.join(map(repr, unknown))}; known keys: {', '.join(_FIELDS)}")
    plan = Plan()
    for key, value in data.items():
        if value is None and key not in ("seed", "bug", "checker_max_memory", "hosts", "nemesis_interval"):
            continue  # an empty YAML value means "the default"
        setattr(plan, key, value)
    if data.get("name") is None and isinstance(plan.system, str):
        plan.name = plan.system
    if data.get("workload") is None and plan.system in _systems():
        plan.workload = _systems()[plan.system].workloads[0]  # the system's first: raftchat's is chat
    from harness.store import StoreError, check_test_name

    if not isinstance(plan.name, str):
        raise PlanError(f"'name' must be a string, got {plan.name!r}")
    try:
        check_test_name(plan.name)
    except StoreError as exc:
        raise PlanError(f"'name': {exc}") from None
    plan.nodes = _positive_int("nodes", plan.nodes)
    plan.concurrency = _positive_int("concurrency", plan.concurrency)
    plan.time_limit = _seconds("time_limit", plan.time_limit)
    plan.rate = _seconds("rate", plan.rate, allow_zero=True)
    if plan.nemesis_interval is None:
        plan.nemesis_interval = default_interval(plan.time_limit)
    plan.nemesis_interval = _seconds("nemesis_interval", plan.nemesis_interval)
    plan.recovery = _seconds("recovery", plan.recovery, allow_zero=True)
    plan.op_timeout = _seconds("op_timeout", plan.op_timeout)
    plan.attempt_timeout = _seconds("attempt_timeout", plan.attempt_timeout)
    plan.checker_timeout = _seconds("checker_timeout", plan.checker_timeout)
    plan.converge_timeout = _seconds("converge_timeout", plan.converge_timeout)
    plan.status_interval = _seconds("status_interval", plan.status_interval)
    if not isinstance(plan.restart_check, bool):
        raise PlanError(f"'restart_check' must be true or false, got {plan.restart_check!r}")
    plan.raftchat = _tuning(plan.raftchat)
    if plan.checker_max_memory is not None:
        plan.checker_max_memory = _positive_int("checker_max_memory", plan.checker_max_memory)
    if plan.seed is not None:
        plan.seed = _positive_int("seed", plan.seed, minimum=0)
    if not isinstance(plan.system, str):
        raise PlanError(f"'system' must be a name, got {plan.system!r}")
    if not isinstance(plan.system_options, dict):
        raise PlanError(f"'system_options' must be a mapping, got {plan.system_options!r}")
    if not isinstance(plan.workload, str):
        raise PlanError(f"'workload' must be a name, got {plan.workload!r}")
    if not isinstance(plan.workload_options, dict):
        raise PlanError(f"'workload_options' must be a mapping, got {plan.workload_options!r}")
    if isinstance(plan.nemesis, str):
        plan.nemesis = [part.strip() for part in plan.nemesis.split(",") if part.strip()]
    if not isinstance(plan.nemesis, list) or not all(isinstance(n, str) for n in plan.nemesis):
        raise PlanError(f"'nemesis' must be a list of fault names, got {plan.nemesis!r}")
    if plan.net not in _NETS:
        raise PlanError(f"'net' must be one of {', '.join(_NETS)}, got {plan.net!r}")
    if plan.bug is not None and not isinstance(plan.bug, str):
        raise PlanError(f"'bug' must be a bug name, got {plan.bug!r}")
    _check_names(plan)
    if plan.hosts is not None:
        _check_hosts(plan, data)
    _check_fault_sizes(plan)
    return plan


def _check_fault_sizes(plan: Plan) -> None:
    """A fault that needs more nodes than the plan has (a follower to isolate) is a usage mistake."""
    from nemesis import FAULTS

    for fault in plan.nemesis:
        need = FAULTS[fault].min_nodes
        if plan.nodes < need:
            raise PlanError(f"'nemesis': {fault} needs at least {need} nodes, but 'nodes' is {plan.nodes}")


def _check_hosts(plan: Plan, data: dict[str, Any]) -> None:
    """``hosts``: SSH hosts (remote.hosts), one node on each; the faults run on the hosts."""
    from remote.hosts import HostsError, load_hosts_file, parse_hosts

    try:
        hosts = load_hosts_file(plan.hosts) if isinstance(plan.hosts, str) else parse_hosts(plan.hosts)
    except HostsError as exc:
        raise PlanError(f"'hosts': {exc}") from None
    if data.get("nodes") is not None and data["nodes"] != len(hosts):
        raise PlanError(
            f"'nodes' is {data['nodes']} but 'hosts' names {len(hosts)}: one node runs on each host"
        )
    if data.get("net") not in (None, "auto"):
        raise PlanError(
            "'net': with 'hosts' the faults run on the hosts (iptables and tc over SSH); leave it out"
        )
    plan.nodes = len(hosts)
    plan.hosts = [host.to_dict() for host in hosts]


def _tuning(value: Any) -> dict[str, int]:
    """The ``raftchat`` key: node tuning, on top of the harness's default compaction."""
    if not isinstance(value, dict):
        raise PlanError(f"'raftchat' must be a mapping of {', '.join(TUNING_FIELDS)}, got {value!r}")
    for key, number in value.items():
        if key not in TUNING_FIELDS:
            raise PlanError(f"'raftchat': unknown key {key!r} (known: {', '.join(TUNING_FIELDS)})")
        if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
            raise PlanError(f"'raftchat.{key}' must be a positive integer, got {number!r}")
    tuning = {"snapshot_every": DEFAULT_SNAPSHOT_EVERY, **value}
    try:
        loopback_defaults(tuning)
    except ConfigError as exc:
        raise PlanError(f"'raftchat': {exc}") from None
    return tuning


def _check_names(plan: Plan) -> None:
    """Names that other packages define: systems, workloads, faults, bugs."""
    from raftchat.bugs import ALL_BUGS
    from systems import SYSTEMS, make_system
    from workloads import WORKLOADS, make_workload

    if plan.workload not in WORKLOADS:
        raise PlanError(f"'workload' must be one of {', '.join(sorted(WORKLOADS))}, got {plan.workload!r}")
    if plan.system not in SYSTEMS:
        raise PlanError(f"'system' must be one of {', '.join(SYSTEMS)}, got {plan.system!r}")
    try:
        system = make_system(plan.system, plan.system_options)
    except ValueError as exc:
        raise PlanError(f"'system_options': {exc}") from exc
    try:
        system.check_workload(plan.workload)
    except ValueError as exc:
        raise PlanError(f"'workload': {exc}") from exc
    if plan.bug is not None and plan.system != "raftchat":
        raise PlanError(f"'bug': deliberate bugs are raftchat's; system {plan.system!r} has none")
    try:
        make_workload(plan.workload, plan.workload_options, plan.concurrency, plan.seed or 0)
    except ValueError as exc:
        raise PlanError(f"'workload_options': {exc}") from exc
    known_faults = _known_faults()
    for fault in plan.nemesis:
        if fault not in known_faults:
            choices = ", ".join(sorted(known_faults)) or "none available yet"
            raise PlanError(f"'nemesis': unknown fault {fault!r} (known: {choices})")
    _check_system_faults(plan, system)
    if plan.bug is not None and plan.bug not in ALL_BUGS:
        raise PlanError(f"'bug' must be one of {', '.join(sorted(ALL_BUGS))}, got {plan.bug!r}")


def _check_system_faults(plan: Plan, system: Any) -> None:
    """Faults the system cannot take: failpoints are raftchat's; the proxy must carry its traffic."""
    from nemesis import FAILPOINT_FAULTS, NETWORK_FAULTS

    failpoints = sorted(set(plan.nemesis) & FAILPOINT_FAULTS)
    if failpoints and plan.system != "raftchat":
        raise PlanError(
            f"'nemesis': {', '.join(failpoints)} arm raftchat's failpoints; {plan.system} has none"
        )
    if plan.net == "proxy" and set(plan.nemesis) & NETWORK_FAULTS and "proxy" not in system.networks:
        raise PlanError(f"'net': the proxy network cannot carry {plan.system}: {system.proxy_refusal}")


def _systems() -> dict[str, type]:
    from systems import SYSTEMS, system_class

    return {name: system_class(name) for name in SYSTEMS}


def _known_faults() -> set[str]:
    from nemesis import FAULTS

    return set(FAULTS)


def load(source: str | Path | Plan | dict[str, Any] | None, overrides: dict[str, Any] | None = None) -> Plan:
    """A validated plan from a YAML file, a mapping or a Plan (None: the default plan), with
    ``overrides`` applied and the seed fixed, so that the stored plan replays the run."""
    where = "default plan"
    if isinstance(source, Plan):
        data = source.to_dict()
    elif isinstance(source, dict):
        data, where = dict(source), "plan"
    elif source is not None:
        where = str(source)
        loaded = read_yaml(source, "plan", PlanError)
        if loaded is not None and not isinstance(loaded, dict):
            raise PlanError(f"{where}: a plan is a mapping of keys to values, got {type(loaded).__name__}")
        data = dict(loaded or {})
    else:
        data = {}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if isinstance(overrides.get("system_options"), dict) and isinstance(data.get("system_options"), dict):
        overrides["system_options"] = {**data["system_options"], **overrides["system_options"]}
    data.update(overrides)
    try:
        plan = validate(data)
    except PlanError as exc:
        raise PlanError(f"{where}: {exc}") from None
    if plan.seed is None:
        plan.seed = random.SystemRandom().randrange(2**31)
    return plan


def dump(plan: Plan, path: Path) -> None:
    path.write_text(yaml.safe_dump(plan.to_dict(), sort_keys=False))
