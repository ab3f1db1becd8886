"""Network faults on real hosts, Jepsen's way: iptables and tc run on each host over SSH.

A cut is a DROP rule on each side for every peer it must not reach (packets from and to the
peer's address), in a chain of the run's own that INPUT and OUTPUT jump to; the control
machine's address is never matched, so the harness keeps its SSH connections and clients.
Loss is a ``statistic`` DROP rule in a second chain on the sender's side; delay is a netem
leaf per group of destinations on the device that routes to the peers (the kernel must have
netem: the session refuses a plan with ``delay`` on a host without it). Each change lands on
every host at once, and the chains and qdiscs are in the host's record before they exist.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Iterable

from nemesis.net.netns import LinkFault, delay_batch, link_rules
from raftchat.config import ClusterConfig, NodeAddr
from remote import record
from remote.ssh import Connections, quote


class SshNetwork:
    name = "ssh"

    def __init__(
        self,
        conns: Connections,
        tag: str,
        runs: dict[str, str],
        priv: dict[str, str],
        ips: dict[str, str],
        ports: dict[str, tuple[int, int]],
        faults: bool,
        netem: bool,
    ) -> None:
        self.conns = conns
        self.tag = tag
        self.runs = runs  # host -> its run directory
        self.priv = priv  # host -> "" (root) or "sudo -n "
        self.ips = ips  # host -> the address its peers and the harness reach it at
        self.ports = ports  # host -> (peer port, client port), free on that host
        self.faults = faults  # whether the plan has network faults (else no chain is made)
        self._netem = netem
        self.cut_chain, self.slow_chain = record.chain_names(tag)
        self._rules: dict[str, dict[str, list[str]]] = {self.cut_chain: {}, self.slow_chain: {}}
        self._devices: dict[str, str] = {}
        self._delayed: set[str] = set()
        self._slow: dict[str, LinkFault] = {}
        self._lock = threading.Lock()

    def netem_available(self) -> bool:
        return self._netem

    # -- Network -----------------------------------------------------------------------------------

    def setup(self, config: ClusterConfig) -> ClusterConfig:
        """The nodes become the hosts (their names, addresses and free ports); chains exist on each."""
        if len(config.nodes) != len(self.ips):
            raise ValueError(f"{len(config.nodes)} nodes for {len(self.ips)} hosts: one node per host")
        if self.faults:
            rules = (
                f"*filter\n:{self.cut_chain} - [0:0]\n:{self.slow_chain} - [0:0]\n"
                f"-I INPUT 1 -j {self.cut_chain}\n-I OUTPUT 1 -j {self.cut_chain}\n"
                f"-I OUTPUT 2 -j {self.slow_chain}\nCOMMIT\n"
            )
            commands = {
                host: f"{record.append(run, {'chain': self.cut_chain})} && "
                f"{record.append(run, {'chain': self.slow_chain})} && "
                f"{self.priv[host]}iptables-restore -w --noflush"
                for host, run in self.runs.items()
            }
            self._check(self.conns.each(commands, lambda h: self.conns.arun(h, commands[h], input=rules)))
            for chain in self._rules:
                self._rules[chain] = dict.fromkeys(self.ips, [])
        nodes = [  # in the order of the hosts
            NodeAddr(
                host, f"{self.ips[host]}:{self.ports[host][0]}", f"{self.ips[host]}:{self.ports[host][1]}"
            )
            for host in self.runs
        ]
        return dataclasses.replace(config, nodes=nodes, routes={})

    def command_prefix(self, node_id: str) -> list[str]:
        return []

    def cut(self, pairs: Iterable[Iterable[str]]) -> None:
        pairs = list(pairs)
        if not self.faults and not pairs:
            return  # a heal with nothing to heal
        blocked: dict[str, set[str]] = {host: set() for host in self.ips}
        for pair in pairs:
            a, b = sorted(pair)
            self._known([a, b])
            blocked[a].add(b)
            blocked[b].add(a)
        rules = {
            host: [
                r
                for peer in sorted(peers)
                for r in (f"-s {self.ips[peer]}/32 -j DROP", f"-d {self.ips[peer]}/32 -j DROP")
            ]
            for host, peers in blocked.items()
        }
        with self._lock:
            self._fill(self.cut_chain, rules)

    def heal(self) -> None:
        self.cut([])

    def slow(
        self, nodes: list[str], delay_ms: float = 0.0, jitter_ms: float = 0.0, loss: float = 0.0
    ) -> None:
        """Loss (iptables) and delay (netem) on the links of ``nodes``; the worse end of a link wins."""
        self._known(nodes)
        fault = LinkFault(delay_ms, jitter_ms, loss)
        if fault.delayed and not self._netem:
            from nemesis.net.netns import LinkFaultUnavailable

            raise LinkFaultUnavailable("link delay needs the netem qdisc, which these hosts' kernels lack")
        with self._lock:
            settings = {**self._slow, **dict.fromkeys(nodes, fault)}
            self._apply_slow({n: f for n, f in settings.items() if f != LinkFault()})

    def clear_slow(self) -> None:
        if not self.faults:
            return
        with self._lock:
            self._apply_slow({})

    def teardown(self) -> None:
        """Empty the chains and remove the qdiscs now; the session's undo deletes the chains."""
        if not self.faults:
            return
        with self._lock:
            try:
                self._fill(self.cut_chain, {h: [] for h in self.ips})
                self._apply_slow({})
            except Exception as exc:  # the session's undo deletes the chains and qdiscs anyway
                print(f"emptying the hosts' chains: {exc}", file=sys.stderr)

    # -- helpers -----------------------------------------------------------------------------------

    def _known(self, nodes: Iterable[str]) -> None:
        unknown = sorted(set(nodes) - set(self.ips))
        if unknown:
            raise ValueError(f"unknown host(s) {', '.join(unknown)} (hosts: {', '.join(self.ips)})")
        if not self.faults:
            raise ValueError("this run's plan has no network faults: no chains were set up on the hosts")

    def _check(self, results: dict) -> None:
        errors = [r for r in results.values() if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    def _fill(self, chain: str, rules: dict[str, list[str]]) -> None:
        """Replace the chain's rules on the hosts where they change, atomically per host."""
        changed = {h: r for h, r in rules.items() if self._rules[chain].get(h) != r}
        texts = {
            h: f"*filter\n:{chain} - [0:0]\n" + "".join(f"-A {chain} {r}\n" for r in rs) + "COMMIT\n"
            for h, rs in changed.items()
        }
        for host in changed:
            self._rules[chain].pop(host, None)  # unknown until it succeeds
        results = self.conns.each(
            changed,
            lambda h: self.conns.arun(
                h, f"{self.priv[h]}iptables-restore -w --noflush", input=texts[h], timeout=20
            ),
        )
        self._rules[chain].update(
            {h: changed[h] for h, r in results.items() if not isinstance(r, BaseException)}
        )
        self._check(results)

    def _apply_slow(self, settings: dict[str, LinkFault]) -> None:
        loss_rules, delays = link_rules(self.ips, settings)
        self._fill(self.slow_chain, loss_rules)
        self._set_delays(delays)
        self._slow = settings

    def _device(self, host: str) -> str:
        """The device that routes this host's traffic to its first peer (where delay goes)."""
        if host not in self._devices:
            peer = next(ip for h, ip in self.ips.items() if h != host)
            out = self.conns.run(host, f"ip -o route get {quote(peer)}").stdout.split()
            if "dev" not in out:
                raise ValueError(f"host {host}: no route to {peer}")
            self._devices[host] = out[out.index("dev") + 1]
        return self._devices[host]

    def _set_delays(self, delays: dict[str, dict[str, list[str]]]) -> None:
        hosts = sorted(self._delayed | set(delays))
        if not hosts:
            return
        commands, batches = {}, {}
        for host in hosts:
            dev = self._device(host)
            groups = delays.get(host, {})
            note = record.append(self.runs[host], {"qdisc": dev}) + "; " if groups else ""
            commands[host] = f"{note}{self.priv[host]}tc qdisc del dev {quote(dev)} root 2>/dev/null; " + (
                f"{self.priv[host]}tc -batch -" if groups else "exit 0"
            )
            batches[host] = delay_batch(dev, groups) if groups else ""
        self._delayed |= set(delays)
        self._check(self.conns.each(commands, lambda h: self.conns.arun(h, commands[h], input=batches[h])))
        self._delayed = set(delays)
