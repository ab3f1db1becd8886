"""SSH "hosts" for tests: network namespaces on a private bridge, each with its own address and sshd.

The namespaces come from the netns network (``nemesis.net.netns``), so they carry the run's
tag and ``harness cleanup`` finds them after a crash; each runs Debian's ``/usr/sbin/sshd`` on
port 22 of its own address, with a host key and an authorized client key made for the test
(``ssh-keygen``). All hosts share this machine's file system, which is why every host's run
directory includes its name. A "bare" host's sshd forces a PATH without python3 and etcd onto
every command, as a host without those packages has.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SSHD = "/usr/sbin/sshd"
HIDDEN_ON_BARE = ("python", "etcd")  # program name prefixes a bare host's PATH leaves out


def missing() -> str | None:
    """Why these hosts cannot be made here (None when they can)."""
    from support import netns_missing

    if os.geteuid() != 0:
        return "SSH hosts in network namespaces need root"
    if not Path(SSHD).is_file() or shutil.which("ssh-keygen") is None:
        return "needs Debian's openssh-server (/usr/sbin/sshd) and ssh-keygen: apt-get install openssh-server"
    return netns_missing()


@dataclass
class Hosts:
    root: Path
    network: object
    ips: dict[str, str]
    key: Path
    wrong_key: Path
    known_hosts: Path
    sshd: dict[str, subprocess.Popen] = field(default_factory=dict)

    def namespace(self, name: str) -> str:
        return self.network.namespace(name)  # type: ignore[attr-defined]

    def entry(self, name: str, **changes: object) -> dict:
        item = {
            "name": name,
            "address": self.ips[name],
            "user": "root",
            "port": 22,
            "identity_file": str(self.key),
            "known_hosts": str(self.known_hosts),
        }
        item.update(changes)
        return item

    def in_ns(self, name: str, *cmd: str) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", self.namespace(name), *cmd], capture_output=True, text=True, check=True
        ).stdout

    def rules(self, name: str) -> str:
        return self.in_ns(name, "iptables", "-w", "-S")

    def qdiscs(self, name: str) -> str:
        return self.in_ns(name, "tc", "qdisc", "show")

    def other_processes(self, name: str) -> list[str]:
        """Command lines of the processes in the host's namespace other than its sshd listener and
        the per-connection sshd processes, which end once the harness disconnects."""
        found = []
        out = subprocess.run(["ip", "netns", "pids", self.namespace(name)], capture_output=True, text=True)
        for word in out.stdout.split():
            if int(word) == self.sshd[name].pid:
                continue
            try:
                cmdline = Path(f"/proc/{word}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
            if not cmdline.startswith("sshd:"):
                found.append(cmdline)
        return found

    def sessions(self, name: str) -> list[str]:
        """Per-connection sshd processes in the host's namespace."""
        out = subprocess.run(["ip", "netns", "pids", self.namespace(name)], capture_output=True, text=True)
        found = []
        for word in out.stdout.split():
            if int(word) == self.sshd[name].pid:
                continue  # the listener
            try:
                cmdline = Path(f"/proc/{word}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
            if cmdline.startswith("sshd:"):
                found.append(cmdline)
        return found


def write_hosts(path: Path, entries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    return path


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def bare_path(root: Path) -> Path:
    """A bin directory with every program of /usr/bin and /usr/sbin but python and etcd."""
    bindir = root / "bare-bin"
    bindir.mkdir()
    for source in (Path("/usr/sbin"), Path("/usr/bin")):
        for program in source.iterdir():
            link = bindir / program.name
            if not program.name.startswith(HIDDEN_ON_BARE) and not link.exists():
                link.symlink_to(program)
    return bindir


def make_hosts(
    root: Path, names: list[str], no_sshd: tuple[str, ...] = (), bare: tuple[str, ...] = ()
) -> Hosts:
    """Namespaces with sshd for ``names``; those in ``no_sshd`` get none (unreachable)."""
    from nemesis.net.netns import NetnsNetwork
    from raftchat.config import ClusterConfig, NodeAddr

    network = NetnsNetwork()
    config = ClusterConfig("ssh-hosts", [NodeAddr(n, "127.0.0.1:1", "127.0.0.1:2") for n in names])
    try:
        hosts_config = network.setup(config)
        ips = {n.id: n.peer_hostport[0] for n in hosts_config.nodes}
        host_key = keygen(root / "host_key")
        key, wrong = keygen(root / "client_key"), keygen(root / "wrong_key")
        (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
        public = (root / "host_key.pub").read_text().split()
        known = root / "known_hosts"
        known.write_text("".join(f"{ips[n]} {public[0]} {public[1]}\n" for n in names))
        hosts = Hosts(root, network, ips, key, wrong, known)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        bare_bin = bare_path(root) if bare else None
        for name in names:
            if name in no_sshd:
                continue
            lines = [
                "Port 22",
                f"ListenAddress {ips[name]}",
                f"HostKey {host_key}",
                f"PidFile {root}/sshd-{name}.pid",
                f"AuthorizedKeysFile {root}/authorized_keys",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "MaxSessions 100",
                "MaxStartups 100",
                "Subsystem sftp internal-sftp",
                # Commands run as `bash -c` for root, and this machine's root .bashrc (pyenv) costs
                # about a second per command on a loaded machine; a host's shell sources it only at
                # the first level, so starting at level 1 models a host with a plain shell profile.
                "SetEnv SHLVL=1",
            ]
            if name in bare:
                lines.append(f'ForceCommand PATH={bare_bin}; export PATH; exec sh -c "$SSH_ORIGINAL_COMMAND"')
            conf = root / f"sshd-{name}.conf"
            conf.write_text("\n".join(lines) + "\n")
            log = open(root / f"sshd-{name}.log", "wb")  # noqa: SIM115 (kept open for the daemon)
            hosts.sshd[name] = subprocess.Popen(
                ["ip", "netns", "exec", network.namespace(name), SSHD, "-D", "-e", "-f", str(conf)],
                stdout=log,
                stderr=log,
            )
        for name in hosts.sshd:
            _wait_port(ips[name], 22, hosts.sshd[name], root / f"sshd-{name}.log")
        return hosts
    except BaseException:
        network.teardown()
        raise


def _wait_port(ip: str, port: int, proc: subprocess.Popen, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd on {ip} exited with {proc.returncode}: {log.read_text()[-500:]}")
        try:
            socket.create_connection((ip, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd on {ip}:{port} did not listen within {timeout:g} s")


def remove_hosts(hosts: Hosts) -> None:
    for proc in hosts.sshd.values():
        proc.terminate()
    for proc in hosts.sshd.values():
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    hosts.network.teardown()  # type: ignore[attr-defined]
