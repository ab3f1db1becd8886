"""One run's hosts: check them all before anything is stored, set them up, and undo it all.

``open_session`` connects to every host at once and checks what the plan needs there (Python
3.11+ for raftchat, the system's programs for the others, iptables and root or sudo for network
faults, netem for delay) without creating anything, so a plan that cannot run fails with every
host's problem named and nothing left behind. The run's first change on a host is its record
(``remote.record``); ``close`` stops what is left, removes every rule and the run's directory on
each host, and closes the connections. Times on the hosts are never read: the history's clock is
the control machine's.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from remote import install, record
from remote.cluster import RemoteCluster, RemoteNodes, remote_process_cluster
from remote.hosts import Host, parse_hosts
from remote.network import SshNetwork
from remote.ssh import Connections, SshError, quote
from systems.base import SystemUnavailable

# Systems whose nodes run on SSH hosts: raftchat (installed from wheels) and those whose nodes are
# one command line each, with no files to write first (systems.processes.ProcessCluster).
REMOTE_SYSTEMS = ("raftchat", "etcd")


class HostError(SystemUnavailable):
    """A host cannot take part in the run; the message names each host and what is wrong there."""


def _network_faults(faults: list[str]) -> set[str]:
    from nemesis import NETWORK_FAULTS

    return set(faults) & set(NETWORK_FAULTS)


class Session:
    def __init__(self, hosts: list[Host], system: Any, faults: list[str]) -> None:
        self.hosts = {h.name: h for h in hosts}
        self.system = system
        self.faults = list(faults)
        self.tag = secrets.token_hex(4)
        self.runs = {h.name: record.run_dir(h.base_dir, self.tag) for h in hosts}
        self.conns = Connections(hosts)
        self.priv: dict[str, str] = {}
        self.ips: dict[str, str] = {}
        self.ports: dict[str, tuple[int, int]] = {}
        self.pythons: dict[str, install.PythonTag] = {}
        self.netem = False
        self.begun: set[str] = set()  # hosts where the run's directory and record exist
        self.times: dict[str, float] = {"opened": time.monotonic()}
        self.undone: dict[str, list[str]] = {}
        self.cluster_: RemoteNodes | None = None
        self.clean = True  # whether the teardown removed everything it found on every host

    # -- checks ------------------------------------------------------------------------------------

    def preflight(self) -> None:
        """Connect and check every host; HostError listing every problem. Creates nothing."""
        problems: dict[str, str] = {}
        for name, error in self.conns.connect_all().items():
            if error is not None:
                problems[name] = str(error)
        reached = [n for n in self.hosts if n not in problems]
        for name, answer in self.conns.each(reached, self._probe).items():
            if isinstance(answer, BaseException):
                problems[name] = str(answer)
            elif answer:
                problems[name] = f"{self.hosts[name].describe()}: {answer}"
        if problems:
            raise HostError(
                f"{len(problems)} of {len(self.hosts)} hosts cannot take part:\n"
                + "\n".join(f"  {problems[n]}" for n in self.hosts if n in problems)
            )
        if self.system.name not in REMOTE_SYSTEMS:
            raise HostError(
                f"every host has {self.system.name} installed, but over SSH the harness runs only "
                f"{' and '.join(REMOTE_SYSTEMS)} nodes so far; run this system without 'hosts'"
            )

    async def _probe(self, name: str) -> str:
        """What is wrong on this host ('' if nothing); fills in its Python, privileges, address, ports."""
        programs = dict(self.system.programs) if self.system.name != "raftchat" else {}
        net = _network_faults(self.faults)
        if net:
            programs.update({"iptables": "iptables", "iptables-restore": "iptables", "ip": "iproute2"})
        if "delay" in net:
            programs["tc"] = "iproute2"
        script = "echo uid $(id -u); " + "".join(
            f"command -v {quote(p)} >/dev/null 2>&1 || echo lack {quote(p)}; " for p in programs
        )
        probe = install.PROBE if self.system.name == "raftchat" else "print('any', 'version', 'here')"
        script += (
            "if command -v python3 >/dev/null 2>&1; then "
            f"echo python $(python3 -c {quote(probe)} 2>&1 | tail -n 1); else echo nopython; fi; "
        )
        script += "sudo -n true 2>/dev/null && echo sudo; exit 0"
        out = (await self.conns.arun(name, script, timeout=30)).stdout
        lines = [line.split(" ", 1) + [""] for line in out.splitlines() if line.strip()]
        facts = {words[0]: words[1] for words in lines}
        problems = []
        lacking = [words[1] for words in lines if words[0] == "lack"]
        if lacking:
            problems.append(
                "missing "
                + ", ".join(f"`{p}` (apt-get install {programs[p]})" for p in lacking)
                + f" for {self.system.name if self.system.name != 'raftchat' else 'the faults'}"
            )
        if "nopython" in facts and self.system.name != "raftchat" and not lacking:
            problems.append(
                "no python3 on the PATH: the harness picks free ports with it (apt-get install python3)"
            )
        elif self.system.name == "raftchat":
            if "nopython" in facts:
                problems.append(
                    "no python3 on the PATH: raftchat nodes need Python 3.11 or newer "
                    "(apt-get install python3)"
                )
            else:
                words = facts.get("python", "").split()
                if len(words) != 3 or not words[1][:1].isdigit():
                    problems.append(
                        f"python3 cannot run raftchat: {facts.get('python', '').strip() or 'no answer'}"
                    )
                else:
                    self.pythons[name] = install.PythonTag(*words)
        root = facts.get("uid", "").strip() == "0"
        if net and not root and "sudo" not in facts:
            problems.append("network faults need root there: log in as root or allow `sudo -n` for this user")
        self.priv[name] = "" if root else "sudo -n "
        if problems:
            return "; ".join(problems)
        conn = await self.conns._connect(name)
        self.ips[name] = conn.get_extra_info("peername")[0]
        if ":" in self.ips[name]:
            return f"reached over IPv6 ({self.ips[name]}): the nodes and the faults need an IPv4 address"
        # Free ports on the host's address, for the node's peer and client ports.
        ports = await self.conns.arun(
            name,
            "python3 -c "
            + quote(
                "import socket, sys\nss = [socket.socket() for _ in range(2)]\n"
                "[s.bind((sys.argv[1], 0)) for s in ss]\nprint(*(s.getsockname()[1] for s in ss))"
            )
            + f" {quote(self.ips[name])}",
            timeout=30,
        )
        peer, client = (int(p) for p in ports.stdout.split())
        self.ports[name] = (peer, client)
        if "delay" in net:
            link = f"rcn{self.tag}"
            probe = await self.conns.arun(
                name,
                f"{self.priv[name]}modprobe sch_netem 2>/dev/null; "
                f"{self.priv[name]}ip link add {link} type dummy || exit 2; "
                f"{self.priv[name]}tc qdisc add dev {link} root netem delay 1ms; r=$?; "
                f"{self.priv[name]}ip link del {link}; exit $r",
                check=False,
            )
            if probe.exit_status != 0:
                return (
                    "the 'delay' fault needs the kernel's netem qdisc, which this host lacks "
                    "(modprobe sch_netem and a test qdisc failed: "
                    f"{probe.stderr.strip() or probe.exit_status})"
                )
            self.netem = True
        return ""

    # -- set-up ------------------------------------------------------------------------------------

    def begin(self) -> None:
        """The run's directory and its record on every host: the first thing the run creates there."""
        commands = {n: record.begin(self.runs[n], self.tag) for n in self.hosts}
        results = self.conns.each(commands, lambda n: self.conns.arun(n, commands[n]))
        self.begun |= {n for n, r in results.items() if not isinstance(r, BaseException)}
        self.begun |= set(commands)  # a command that failed may still have made the directory
        for result in results.values():
            if isinstance(result, BaseException):
                raise result

    def network(self) -> SshNetwork:
        if not self.begun:
            self.begin()
        return SshNetwork(
            self.conns,
            self.tag,
            self.runs,
            self.priv,
            self.ips,
            self.ports,
            faults=bool(_network_faults(self.faults)),
            netem=self.netem,
        )

    def cluster(self, config: Any, workload: Any, plan: Any, local_dir: Path) -> RemoteCluster:
        """Install raftchat on every host (wheels, venv), write the node configs; nodes start later."""
        from nemesis import FAILPOINT_FAULTS

        if not self.begun:
            self.begin()
        if self.system.name != "raftchat":  # its package is installed on the hosts: nothing to install
            self.cluster_ = remote_process_cluster(
                self.system.cluster_type,
                self.system.options,
                self.conns,
                self.runs,
                config,
                local_dir,
                self._phase,
            )
            self.times["installed"] = time.monotonic()
            return self.cluster_
        wheels = {
            key: install.wheels_for(tag) for key, tag in {t.key: t for t in self.pythons.values()}.items()
        }

        async def setup(name: str) -> None:
            run, files = self.runs[name], wheels[self.pythons[name].key]
            await self.conns.arun(name, f"mkdir -p {quote(run + '/wheels')}")
            for path in files:
                await self.conns.aput(name, str(path), f"{run}/wheels/{path.name}")
            await self.conns.arun(
                name, install.install_script(run, "python3", [p.name for p in files]), timeout=300
            )

        results = self.conns.each(self.hosts, setup)
        errors = [r for r in results.values() if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        self.times["installed"] = time.monotonic()
        self.cluster_ = RemoteCluster(
            self.conns,
            self.runs,
            config,
            local_dir,
            machine=workload.machine,
            bugs=(plan.bug,) if plan.bug else (),
            failpoints=bool(set(plan.nemesis) & FAILPOINT_FAULTS),
            on_phase=self._phase,
        )
        self.cluster_.write_configs()
        return self.cluster_

    def version(self) -> str:
        """The system's version: raftchat's is this package's; another's, the first host's program's."""
        if self.system.name == "raftchat":
            return self.system.version()
        host, program = next(iter(self.hosts)), next(iter(self.system.programs))
        out = self.conns.run(host, f"{quote(program)} --version 2>&1 | head -n 1", check=False).stdout.strip()
        return f"{out.split()[-1] if out else 'unknown'} (on {host})"

    def _phase(self, name: str) -> None:
        self.times.setdefault(name, time.monotonic())

    # -- teardown ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Undo the run on every host where it began (also after errors), then close the connections."""
        self._phase("teardown_start")
        try:
            if self.cluster_ is not None:
                self.cluster_.fetch()
            if self.begun:
                self.undone, failed = undo_runs(self.conns, {n: self.runs[n] for n in self.begun}, self.hosts)
                self.clean = not failed
                if failed:
                    raise HostError(
                        "the teardown left things behind:\n" + "\n".join(f"  {e}" for e in failed)
                    )
        finally:
            self.conns.close()
            self.times["closed"] = time.monotonic()

    def report(self) -> dict[str, Any]:
        t = self.times

        def span(a: str, b: str) -> float | None:
            return round(t[b] - t[a], 3) if a in t and b in t else None

        return {
            "tag": self.tag,
            "hosts": {
                n: {"address": self.ips.get(n, h.address), "dir": self.runs[n]} for n, h in self.hosts.items()
            },
            "setup_s": span("opened", "ready"),
            "install_s": span("opened", "installed"),
            "teardown_s": span("teardown_start", "closed"),
            "reconnects": dict(self.conns.reconnects),
            "removed": self.undone,
            "clean": self.clean,
        }


def undo_runs(
    conns: Connections, runs: dict[str, str], hosts: dict[str, Host]
) -> tuple[dict[str, list[str]], list[str]]:
    """Undo these run directories (host -> dir) from their records: what was removed, what failed."""

    async def undo(name: str) -> list[str]:
        run = runs[name]
        text = (await conns.arun(name, f"cat {quote(run + '/' + record.RECORD)} 2>/dev/null; exit 0")).stdout
        lines = record.parse_listing(f"== {run}/{record.RECORD}\n{text}").get(run, [])
        uid = (await conns.arun(name, "id -u")).stdout.strip()
        shell = "sh -s" if uid == "0" else "sudo -n sh -s"
        out = await conns.arun(
            name, shell, input=record.undo_script(run, lines, hosts[name].base_dir), timeout=60
        )
        return [line for line in out.stdout.splitlines() if line.strip()]

    results = conns.each(runs, undo)
    removed = {n: r for n, r in results.items() if not isinstance(r, BaseException)}
    failed = [str(r) for r in results.values() if isinstance(r, BaseException)]
    return removed, failed


def open_session(plan: Any, system: Any) -> Session:
    """Connect to the plan's hosts and check them; HostError (exit 3) naming each host's problem."""
    session = Session(parse_hosts(plan.hosts), system, list(plan.nemesis))
    try:
        session.preflight()
    except BaseException:
        session.conns.close()
        raise
    return session


def cleanup_hosts(
    hosts: list[Host], tag: str | None = None, dry_run: bool = False
) -> tuple[list[str], list[str]]:
    """``harness cleanup --hosts``: undo every run a dead harness left on these hosts (or one tag's).

    Returns (what was removed or would be, per line naming the host; the hosts that failed).
    """
    conns = Connections(hosts)
    lines: list[str] = []
    failed: list[str] = []
    try:
        for error in conns.connect_all().values():
            if error is not None:
                failed.append(str(error))
        reachable = [h.name for h in hosts if not any(f.startswith(h.describe()) for f in failed)]
        by_name = {h.name: h for h in hosts}
        listings = conns.each(reachable, lambda n: conns.arun(n, record.list_script(by_name[n].base_dir)))
        todo: dict[str, dict[str, str]] = {}
        for name, listing in listings.items():
            if isinstance(listing, BaseException):
                failed.append(str(listing))
                continue
            for run, entries in record.parse_listing(listing.stdout).items():
                run_tag = run.rsplit("/", 1)[-1]
                if tag is not None and run_tag != tag:
                    continue
                if tag is None and any(record.owner_alive(e) for e in entries):
                    continue  # a live run's, not a leftover
                todo.setdefault(name, {})[run_tag] = run
        for name, runs in sorted(todo.items()):
            for run_tag, run in sorted(runs.items()):
                if dry_run:
                    lines.append(f"host {name}: run {run_tag} in {run}")
                    continue
                removed, errors = undo_runs(conns, {name: run}, by_name)
                lines += [f"host {name}: {item}" for item in removed.get(name, [])]
                failed += errors
    finally:
        conns.close()
    return lines, failed


__all__ = ["HostError", "Session", "SshError", "cleanup_hosts", "open_session"]
