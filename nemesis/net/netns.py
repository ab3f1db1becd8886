"""The "netns" network: each node in its own network namespace on a private bridge; needs root.

Why namespaces: a cut is an iptables DROP rule inside the nodes' namespaces, so the kernel
black-holes packets, including those of established TCP connections, as a real partition
does. The nodes see silence, not resets.

Why nothing can leave: all addresses lie in one /24 of 10.213.0.0/16 that nothing on the
machine uses yet. A node's namespace holds only `lo` and one veth with an address in that
/24, so its only route is the connected route of the /24: no default route, forwarding off
and FORWARD dropped inside, no NAT anywhere. The root namespace gets .254 on the bridge,
so the harness's clients reach the nodes; its own firewall is never touched.

Names carry the run's tag so `python -m nemesis.cleanup` can find them after a crash:
namespaces ``rc-<tag>-<node>``, bridge ``rcb<tag>``, host-side veths ``rcv<tag>-<i>``,
and a state file ``/run/raftchat-nemesis/<tag>.json`` that names the owning process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from raftchat.config import ClusterConfig, NodeAddr

STATE_DIR = Path("/run/raftchat-nemesis")
TAG_RE = re.compile(r"[A-Za-z0-9]{1,8}")  # rcv + 8 + "-" + 3 digits = 15, the limit for link names
NODE_RE = re.compile(r"[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*")  # a file name under /run/netns
NS_RE = re.compile(r"rc-([A-Za-z0-9]{1,8})-(.+)")
BRIDGE_RE = re.compile(r"rcb([A-Za-z0-9]{1,8})")
VETH_RE = re.compile(r"rcv([A-Za-z0-9]{1,8})-\d+")
SUBNETS = "10.213.{}.0/24"  # {} is 1..254, derived from the tag, skipping any in use
ROOT_HOST = 254  # the root namespace's address on the bridge: where clients come from
NS_DEV = "eth0"  # the node's end of its veth, inside its namespace
CUT_CHAIN = "RAFTCHAT-CUT"
SLOW_CHAIN = "RAFTCHAT-SLOW"
MAX_NODES = 253

# Run inside each new namespace before its veth exists (so that veth never gets IPv6 either).
NS_INIT = (
    "set -e; echo 0 > /proc/sys/net/ipv4/ip_forward; "
    "for f in /proc/sys/net/ipv6/conf/all/disable_ipv6 /proc/sys/net/ipv6/conf/default/disable_ipv6; "
    'do if [ -e "$f" ]; then echo 1 > "$f"; fi; done; '
    "exec iptables-restore -w --noflush"
)
NS_RULES = f"""*filter
:FORWARD DROP [0:0]
:{CUT_CHAIN} - [0:0]
:{SLOW_CHAIN} - [0:0]
-A INPUT -j {CUT_CHAIN}
-A OUTPUT -j {CUT_CHAIN}
-A OUTPUT -j {SLOW_CHAIN}
COMMIT
"""


@dataclass(frozen=True)
class LinkFault:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0

    @property
    def delayed(self) -> bool:
        return self.delay_ms > 0 or self.jitter_ms > 0


def link_rules(
    ips: dict[str, str], settings: dict[str, LinkFault]
) -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]]]:
    """What per-node link faults mean for each directed link, the worse of its two ends: per
    sender, iptables rules that drop a share of its packets to each address, and its delayed
    destination addresses grouped by netem leaf. Used for namespaces and for SSH hosts alike."""
    loss_rules: dict[str, list[str]] = {node: [] for node in ips}
    delays: dict[str, dict[str, list[str]]] = {}
    for src in ips:
        for dst in ips:
            ends = [dataclasses.astuple(settings[n]) for n in (src, dst) if n in settings]
            if src == dst or not ends:
                continue
            link = LinkFault(*(max(values) for values in zip(*ends, strict=True)))
            if link.loss > 0:
                statistic = f"-m statistic --mode random --probability {link.loss:.6f}"
                loss_rules[src].append(f"-d {ips[dst]}/32 {statistic} -j DROP")
            if link.delayed:
                leaf = f"netem delay {link.delay_ms:g}ms {link.jitter_ms:g}ms"
                delays.setdefault(src, {}).setdefault(leaf, []).append(ips[dst])
    return loss_rules, delays


class NetnsError(RuntimeError):
    """Building, changing or removing the namespaces failed; the message carries the command's stderr."""


class LinkFaultUnavailable(NotImplementedError):
    """This kernel lacks what the link fault needs (netem, for delay); the caller falls back or reports."""


def new_tag() -> str:
    return secrets.token_hex(3)


def check_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise ValueError(f"tag {tag!r} must be 1-8 letters or digits (it goes into 15-character link names)")
    return tag


def ns_name(tag: str, node_id: str) -> str:
    return f"rc-{tag}-{node_id}"


def bridge_name(tag: str) -> str:
    return f"rcb{tag}"


def veth_name(tag: str, index: int) -> str:
    return f"rcv{tag}-{index}"


def state_path(tag: str) -> Path:
    return STATE_DIR / f"{tag}.json"


# -- running commands ----------------------------------------------------------------------------


def run(cmd: list[str], input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetnsError(f"`{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def run_parallel(jobs: list[tuple[list[str], str]]) -> None:
    """Run one command per namespace at once, so a change lands everywhere at about the same moment."""
    procs = []
    for cmd, text in jobs:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.write(text)  # small: fits the pipe buffer, so this does not wait for the child
        proc.stdin.close()
        procs.append((cmd, proc))
    errors = []
    for cmd, proc in procs:
        assert proc.stderr is not None
        err = proc.stderr.read()
        if proc.wait(30) != 0:
            errors.append(f"`{' '.join(cmd)}` failed ({proc.returncode}): {err.strip()}")
    if errors:
        raise NetnsError("; ".join(errors))


def ns_exec(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def _disable_ipv6(dev: str) -> None:
    """Our root-side links carry only the one IPv4 address: no link-local IPv6 chatter on the bridge."""
    path = Path(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6")
    if path.exists():
        path.write_text("1")


# -- what exists on the machine ------------------------------------------------------------------


def list_namespaces() -> list[str]:
    out = run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def list_links() -> list[str]:
    return [item["ifname"] for item in json.loads(run(["ip", "-j", "link", "show"]).stdout or "[]")]


def namespace_pids(ns: str) -> list[int]:
    out = run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(word) for word in out.split() if word.isdigit()]


def read_cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks: with the pid, it identifies a process despite pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network that an address or a route (any table) claims, except the default route."""
    nets = []
    for item in json.loads(run(["ip", "-4", "-j", "addr", "show"]).stdout or "[]"):
        for addr in item.get("addr_info", []):
            nets.append(ipaddress.ip_interface(f"{addr['local']}/{addr['prefixlen']}").network)
    for route in json.loads(run(["ip", "-4", "-j", "route", "show", "table", "all"]).stdout or "[]"):
        dst = route.get("dst")
        if dst and dst != "default":
            nets.append(ipaddress.ip_network(dst, strict=False))
    return nets


def choose_subnet(tag: str) -> ipaddress.IPv4Network:
    """The run's /24: derived from the tag, moving on past any that something on the machine uses."""
    used = used_networks()
    start = zlib.crc32(tag.encode()) % 254
    for k in range(254):
        net = ipaddress.IPv4Network(SUBNETS.format((start + k) % 254 + 1))
        if not any(net.overlaps(other) for other in used):
            return net
    raise NetnsError("every 10.213.N.0/24 overlaps an address or route on this machine; none is free")


# -- leftovers: found by name, removed in an order that leaves nothing half-alive ----------------


@dataclass(frozen=True)
class Resource:
    kind: str  # "process", "veth", "bridge", "namespace" or "state"
    name: str  # pid, link, namespace or file path
    tag: str | None
    cmdline: str = ""  # a process's, checked again before it is killed (pids get reused)
    where: str = ""  # the namespace a process runs in, if any

    def describe(self) -> str:
        if self.kind == "process":
            return f"process {self.name}{' in ' + self.where if self.where else ''} ({self.cmdline})"
        return f"{self.kind} {self.name}"


REMOVAL_ORDER = ("process", "veth", "bridge", "namespace", "state")


def _tag_matches(found: str, tag: str | None) -> bool:
    return tag is None or found == tag


def resources(tag: str | None = None) -> list[Resource]:
    """This tag's namespaces (and the processes still inside), links and state file; every tag's if None."""
    found = []
    for ns in list_namespaces():
        m = NS_RE.fullmatch(ns)
        if m and _tag_matches(m.group(1), tag):
            found.append(Resource("namespace", ns, m.group(1)))
            for pid in namespace_pids(ns):
                cmdline = read_cmdline(pid)
                if cmdline is not None and pid != os.getpid():
                    found.append(Resource("process", str(pid), m.group(1), cmdline, ns))
    for link in list_links():
        for kind, pattern in (("bridge", BRIDGE_RE), ("veth", VETH_RE)):
            m = pattern.fullmatch(link)
            if m and _tag_matches(m.group(1), tag):
                found.append(Resource(kind, link, m.group(1)))
    if STATE_DIR.is_dir():
        for path in sorted(STATE_DIR.glob("*.json")):
            if TAG_RE.fullmatch(path.stem) and _tag_matches(path.stem, tag):
                found.append(Resource("state", str(path), path.stem))
    return found


def _kill(res: Resource) -> bool:
    """Stop one process by pid, only if its command line is still the one we found (pids get reused)."""
    pid, cmdline = int(res.name), res.cmdline
    for sig, wait in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 2.0)):
        if read_cmdline(pid) != cmdline:
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if read_cmdline(pid) != cmdline or _is_zombie(pid):
                return True
            time.sleep(0.02)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def remove(found: Iterable[Resource]) -> list[str]:
    """Remove these resources (processes first, state files last); return what was removed.

    Raises NetnsError naming what could not be removed, after trying everything.
    """
    removed, failed = [], []
    for res in sorted(set(found), key=lambda r: (REMOVAL_ORDER.index(r.kind), r.name)):
        if res.kind == "process":
            ok, why = _kill(res), "still running after SIGKILL"
        elif res.kind in ("veth", "bridge"):
            proc = run(["ip", "link", "del", res.name], check=False)
            ok, why = proc.returncode == 0 or res.name not in list_links(), proc.stderr.strip()
        elif res.kind == "namespace":
            proc = run(["ip", "netns", "del", res.name], check=False)
            ok, why = proc.returncode == 0 or res.name not in list_namespaces(), proc.stderr.strip()
        else:
            Path(res.name).unlink(missing_ok=True)
            ok, why = True, ""
        if ok:
            removed.append(res.describe())
        else:
            failed.append(f"{res.describe()}: {why}")
    if failed:
        raise NetnsError("could not remove " + "; ".join(failed))
    return removed


def read_state(tag: str) -> dict | None:
    try:
        return json.loads(state_path(tag).read_text())
    except (OSError, ValueError):
        return None


def owner_alive(tag: str) -> bool:
    """Whether the process that set this tag up still runs (so its resources are not leftovers)."""
    state = read_state(tag)
    owner = state.get("owner") if isinstance(state, dict) else None
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return False
    return process_start(owner["pid"]) == owner.get("start")


@contextlib.contextmanager
def _setup_lock() -> Iterator[None]:
    """Two runs setting up at once must not pick the same free /24."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# -- the network ---------------------------------------------------------------------------------


def delay_batch(dev: str, groups: dict[str, list[str]]) -> str:
    """tc commands sending traffic for each group's addresses through its leaf (a netem); the rest untouched.

    htb rather than prio: prio is missing from some kernels that have htb.
    """
    lines = [
        f"qdisc add dev {dev} root handle 1: htb default 1",
        f"class add dev {dev} parent 1: classid 1:1 htb rate 10gbit quantum 60000",
    ]
    for k, (leaf, dst_ips) in enumerate(sorted(groups.items()), start=2):
        lines += [
            f"class add dev {dev} parent 1: classid 1:{k:x} htb rate 10gbit quantum 60000",
            f"qdisc add dev {dev} parent 1:{k:x} handle {k:x}: {leaf}",
        ]
        lines += [
            f"filter add dev {dev} parent 1: protocol ip prio 1 u32 match ip dst {ip}/32 flowid 1:{k:x}"
            for ip in dst_ips
        ]
    return "\n".join(lines) + "\n"


class NetnsNetwork:
    """One namespace per node on a private bridge; cuts and loss are iptables rules inside the namespaces."""

    name = "netns"
    _netem: bool | None = None  # detected once per process

    def __init__(self, tag: str | None = None) -> None:
        self.tag = check_tag(tag or new_tag())
        self.subnet: ipaddress.IPv4Network | None = None
        self.ips: dict[str, str] = {}  # node id -> its address
        self._rules: dict[str, dict[str, list[str]]] = {CUT_CHAIN: {}, SLOW_CHAIN: {}}  # installed, per node
        self._delayed: set[str] = set()  # nodes whose veth has a delay qdisc
        self._slow: dict[str, LinkFault] = {}  # each slowed node's setting
        self._lock = threading.Lock()  # the nemesis and the checks may call from different threads

    # -- probing -----------------------------------------------------------------------------------

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether namespaces, bridges, veths and iptables work here; if not, why."""
        if os.geteuid() != 0:
            return False, "network namespaces need root"
        for tool, package in (("ip", "iproute2"), ("iptables", "iptables"), ("iptables-restore", "iptables")):
            if shutil.which(tool) is None:
                return False, f"`{tool}` is not installed (apt package {package})"
        probe = ns_name(new_tag(), "probe")
        try:
            run(["ip", "netns", "add", probe])
            run(["ip", "-n", probe, "link", "add", "br0", "type", "bridge"])
            run(["ip", "-n", probe, "link", "add", "va", "type", "veth", "peer", "name", "vb"])
            run(ns_exec(probe, "iptables-restore", "-w", "--noflush"), input=NS_RULES)
        except (NetnsError, OSError, subprocess.TimeoutExpired) as exc:
            return False, f"network namespaces do not work here: {exc}"
        finally:
            run(["ip", "netns", "del", probe], check=False)
        return True, ""

    @classmethod
    def netem_available(cls) -> bool:
        """Whether the kernel has the netem qdisc (needed for delay); tried once, in a throwaway namespace."""
        if cls._netem is None:
            probe = ns_name(new_tag(), "netem")
            try:
                run(["ip", "netns", "add", probe])
                tc = run(
                    ns_exec(probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"),
                    check=False,
                )
                cls._netem = tc.returncode == 0
            except (NetnsError, OSError):
                cls._netem = False
            finally:
                run(["ip", "netns", "del", probe], check=False)
        return cls._netem

    # -- Network -----------------------------------------------------------------------------------

    def namespace(self, node_id: str) -> str:
        return ns_name(self.tag, node_id)

    @property
    def root_address(self) -> str:
        """The root namespace's address on the bridge: the harness's clients connect from here."""
        if self.subnet is None:
            raise NetnsError("the network is not set up")
        return str(self.subnet.network_address + ROOT_HOST)

    def setup(self, config: ClusterConfig) -> ClusterConfig:
        """Build the bridge and one namespace per node; return the config with the nodes' new addresses."""
        if self.ips:
            raise NetnsError(f"network {self.tag} is already set up; tear it down first")
        if len(config.nodes) > MAX_NODES:
            raise ValueError(f"at most {MAX_NODES} nodes fit in one /24, not {len(config.nodes)}")
        for node in config.nodes:
            if not NODE_RE.fullmatch(node.id):
                raise ValueError(f"node id {node.id!r} cannot be part of a namespace name")
        with _setup_lock():
            self._clear_stale_leftovers()
            self.subnet = choose_subnet(self.tag)
            self.ips = {n.id: str(self.subnet.network_address + i + 1) for i, n in enumerate(config.nodes)}
            self._write_state()  # before anything exists, so a crash at any point can be cleaned up
            try:
                self._build()
            except BaseException:
                self.teardown()
                raise
        nodes = [
            NodeAddr(
                n.id, f"{self.ips[n.id]}:{n.peer_hostport[1]}", f"{self.ips[n.id]}:{n.client_hostport[1]}"
            )
            for n in config.nodes
        ]
        return dataclasses.replace(config, nodes=nodes, routes={})

    def command_prefix(self, node_id: str) -> list[str]:
        self._check_nodes([node_id])
        return ["ip", "netns", "exec", self.namespace(node_id)]

    def cut(self, pairs: Iterable[Iterable[str]]) -> None:
        """Drop every packet between the nodes of each pair, both ways (replaces the previous cut)."""
        blocked: dict[str, set[str]] = {node: set() for node in self.ips}
        for pair in pairs:
            members = sorted(pair)
            if len(members) != 2:
                raise ValueError(f"a cut pair needs two distinct nodes, got {members}")
            self._check_nodes(members)
            a, b = members
            blocked[a].add(b)
            blocked[b].add(a)
        rules = {
            node: [rule for other in sorted(peers) for rule in self._match_peer(other, "-j DROP")]
            for node, peers in blocked.items()
        }
        with self._lock:
            self._fill(CUT_CHAIN, rules)

    def heal(self) -> None:
        self.cut([])

    def slow(
        self, nodes: list[str], delay_ms: float = 0.0, jitter_ms: float = 0.0, loss: float = 0.0
    ) -> None:
        """Loss (iptables) and delay (netem) on the node-to-node links of ``nodes``.

        As in the proxy network: a node's new setting replaces its old one, and a link between
        two slowed nodes gets the worse of each. Each packet meets its link's fault once, on the
        sender's side. Client traffic from the root namespace is never slowed. Without netem,
        asking for delay raises LinkFaultUnavailable before anything changes.
        """
        self._check_nodes(nodes)
        if delay_ms < 0 or jitter_ms < 0 or not 0.0 <= loss <= 1.0:
            raise ValueError(
                f"need delay_ms, jitter_ms >= 0 and 0 <= loss <= 1, got {delay_ms}, {jitter_ms}, {loss}"
            )
        fault = LinkFault(delay_ms, jitter_ms, loss)
        if fault.delayed and not self.netem_available():
            raise LinkFaultUnavailable(
                "link delay needs the netem qdisc, which this kernel does not have "
                "(tc: 'Specified qdisc kind is unknown'); loss works, delay does not"
            )
        with self._lock:
            settings = {**self._slow, **dict.fromkeys(nodes, fault)}
            self._apply_slow({node: f for node, f in settings.items() if f != LinkFault()})

    def clear_slow(self) -> None:
        with self._lock:
            self._apply_slow({})

    def teardown(self) -> None:
        """Remove this tag's processes left in the namespaces, veths, bridge, namespaces and state file."""
        with self._lock:
            remove(resources(self.tag))
            self.ips = {}
            self.subnet = None
            self._rules = {CUT_CHAIN: {}, SLOW_CHAIN: {}}
            self._delayed = set()
            self._slow = {}

    # -- helpers -----------------------------------------------------------------------------------

    def _check_nodes(self, nodes: Iterable[str]) -> None:
        unknown = sorted(set(nodes) - set(self.ips))
        if unknown:
            raise ValueError(f"unknown node(s) {', '.join(unknown)} (nodes: {', '.join(self.ips) or 'none'})")

    def _match_peer(self, node: str, target: str) -> list[str]:
        """Rules for packets from or to ``node``: only node addresses, so the root's .254 never matches."""
        ip = self.ips[node]
        return [f"-s {ip}/32 {target}", f"-d {ip}/32 {target}"]

    def _clear_stale_leftovers(self) -> None:
        """A crashed run may have had this tag (tags reuse pids): remove its leftovers, unless it lives."""
        found = resources(self.tag)
        if not found:
            return
        if owner_alive(self.tag):
            raise NetnsError(f"another live run already uses tag {self.tag}; pick another tag")
        remove(found)

    def _write_state(self) -> None:
        assert self.subnet is not None
        state = {
            "tag": self.tag,
            "owner": {"pid": os.getpid(), "start": process_start(os.getpid())},
            "subnet": str(self.subnet),
            "bridge": bridge_name(self.tag),
            "root_address": self.root_address,
            "nodes": {
                node: {"namespace": self.namespace(node), "veth": veth_name(self.tag, i), "address": ip}
                for i, (node, ip) in enumerate(self.ips.items())
            },
            "created": time.time(),
        }
        path = state_path(self.tag)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(path)

    def _build(self) -> None:
        assert self.subnet is not None
        bridge, prefix = bridge_name(self.tag), self.subnet.prefixlen
        run(["ip", "link", "add", bridge, "type", "bridge"])
        _disable_ipv6(bridge)
        run(["ip", "addr", "add", f"{self.root_address}/{prefix}", "dev", bridge])
        run(["ip", "link", "set", bridge, "up"])
        for i, (node, ip) in enumerate(self.ips.items()):
            ns, veth = self.namespace(node), veth_name(self.tag, i)
            run(["ip", "netns", "add", ns])
            run(ns_exec(ns, "sh", "-c", NS_INIT), input=NS_RULES)
            run(["ip", "link", "add", veth, "type", "veth", "peer", "name", NS_DEV, "netns", ns])
            _disable_ipv6(veth)
            run(["ip", "link", "set", veth, "master", bridge, "up"])
            run(["ip", "-n", ns, "addr", "add", f"{ip}/{prefix}", "dev", NS_DEV])
            run(["ip", "-n", ns, "link", "set", NS_DEV, "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            self._rules[CUT_CHAIN][node] = []
            self._rules[SLOW_CHAIN][node] = []
        self._check_no_route_out()

    def _check_no_route_out(self) -> None:
        """The safety property, checked rather than assumed: each namespace routes only the run's /24."""
        for node in self.ips:
            ns = self.namespace(node)
            routes = json.loads(run(["ip", "-n", ns, "-4", "-j", "route", "show"]).stdout or "[]")
            six = run(["ip", "-n", ns, "-6", "-j", "route", "show"], check=False)  # fails without IPv6
            routes += json.loads(six.stdout or "[]") if six.returncode == 0 else []
            dsts = [r.get("dst") for r in routes]
            if dsts != [str(self.subnet)]:
                raise NetnsError(
                    f"namespace {self.namespace(node)} has routes {dsts}, expected only {self.subnet}"
                )

    def _fill(self, chain: str, rules: dict[str, list[str]]) -> None:
        """Replace the chain's rules in the namespaces where they change, atomically per namespace."""
        changed = {node: r for node, r in rules.items() if self._rules[chain].get(node) != r}
        jobs = []
        for node, node_rules in changed.items():
            text = "".join(f"-A {chain} {rule}\n" for rule in node_rules)
            restore = f"*filter\n:{chain} - [0:0]\n{text}COMMIT\n"  # declaring the chain flushes it
            jobs.append((ns_exec(self.namespace(node), "iptables-restore", "-w", "--noflush"), restore))
            self._rules[chain].pop(node, None)  # unknown until it succeeds
        run_parallel(jobs)
        self._rules[chain].update(changed)

    def _apply_slow(self, settings: dict[str, LinkFault]) -> None:
        """Install the faults these per-node settings give each directed link; remove all others."""
        loss_rules, delays = link_rules(self.ips, settings)
        self._fill(SLOW_CHAIN, loss_rules)
        self._set_delays(delays)
        self._slow = settings

    def _set_delays(self, delays: dict[str, dict[str, list[str]]]) -> None:
        """Give each sender's veth a qdisc leaf per group of destinations; remove the others' qdiscs."""
        jobs = []
        for node in sorted(self._delayed | set(delays)):
            groups = delays.get(node, {})
            script = f"tc qdisc del dev {NS_DEV} root 2>/dev/null; " + (
                "exec tc -batch -" if groups else "exit 0"
            )
            batch = delay_batch(NS_DEV, groups) if groups else ""
            jobs.append((ns_exec(self.namespace(node), "sh", "-c", script), batch))
        self._delayed = set(self._delayed) | set(delays)  # unknown until done: clear_slow retries them
        run_parallel(jobs)
        self._delayed = set(delays)
