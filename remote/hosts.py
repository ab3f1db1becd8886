"""The ``hosts:`` of a plan or of a ``--hosts`` file: where each node runs and how to reach it.

An entry is a mapping ``{name, address, user, port, identity_file, dir, known_hosts}`` or a
string, an alias of the user's SSH config (``~/.ssh/config`` gives its address, user, port and
key, as ``ssh ALIAS`` would). Every error names the entry and the key, so a typo in a hosts file
never becomes a run against the wrong machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

NAME_RE = re.compile(r"[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*")  # a node id and a directory name
KEYS = ("name", "address", "user", "port", "identity_file", "dir", "known_hosts")
DEFAULT_DIR = "/tmp/raftchat-harness"  # + /<name>: hosts sharing one file system stay apart


class HostsError(ValueError):
    """The hosts are not usable as written; the message names the entry and the key."""


@dataclass(frozen=True)
class Host:
    name: str  # the node id of the node on this host, and how records name the host
    address: str  # what the control machine connects to; an SSH config alias when ``alias``
    user: str | None = None  # None: the SSH config's, else the local user's
    port: int | None = None  # None: the SSH config's, else 22
    identity_file: str | None = None  # None: the SSH config's keys, the agent, ~/.ssh/id_*
    dir: str = ""  # where the run's files live on the host (default: DEFAULT_DIR/<name>)
    known_hosts: str | bool | None = None  # a file; None: ~/.ssh/known_hosts; False: no check
    alias: bool = False  # ``address`` is an SSH config Host alias

    @property
    def base_dir(self) -> str:
        return self.dir or f"{DEFAULT_DIR}/{self.name}"

    def describe(self) -> str:
        where = self.address if self.port is None else f"{self.address}:{self.port}"
        return f"host {self.name} ({(self.user + '@') if self.user else ''}{where})"

    def to_dict(self) -> dict[str, Any] | str:
        """As written in a plan (the stored plan replays the run)."""
        if self.alias:
            return self.address
        data: dict[str, Any] = {"name": self.name, "address": self.address}
        for key in ("user", "port", "identity_file", "known_hosts"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.dir:
            data["dir"] = self.dir
        return data


def parse_hosts(value: Any, where: str = "hosts") -> list[Host]:
    """A list of Hosts from a plan's or a file's value; HostsError naming what is wrong."""
    if isinstance(value, dict) and set(value) == {"hosts"}:
        value = value["hosts"]  # a hosts file may be {hosts: [...]} too
    if not isinstance(value, list) or not value:
        raise HostsError(f"{where!r} must be a non-empty list of hosts, got {value!r}")
    hosts = [_entry(item, f"{where}[{i}]") for i, item in enumerate(value)]
    for key in ("name",):
        seen: dict[str, int] = {}
        for i, host in enumerate(hosts):
            value_ = getattr(host, key)
            if value_ in seen:
                raise HostsError(
                    f"{where}[{i}]: {key} {value_!r} is already the {key} of {where}[{seen[value_]}]; "
                    "every host needs its own"
                )
            seen[value_] = i
    return hosts


def _entry(item: Any, where: str) -> Host:
    if isinstance(item, str):
        if not item.strip():
            raise HostsError(f"{where}: an SSH config alias must not be empty")
        return Host(name=_name(item, where), address=item, alias=True)
    if not isinstance(item, dict):
        raise HostsError(
            f"{where}: a host is a mapping of {', '.join(KEYS)} or an SSH config alias, got {item!r}"
        )
    unknown = sorted(set(map(str, item)) - set(KEYS))
    if unknown:
        raise HostsError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
    address = item.get("address")
    if not isinstance(address, str) or not address.strip():
        raise HostsError(
            f"{where}: 'address' (a host name, an IP address or an SSH config alias) is required"
        )
    name = _name(item.get("name", address), f"{where}.name")
    user = item.get("user")
    if user is not None and (not isinstance(user, str) or not user):
        raise HostsError(f"{where}.user must be a user name, got {user!r}")
    port = item.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise HostsError(f"{where}.port must be a TCP port (1-65535), got {port!r}")
    identity = item.get("identity_file")
    if identity is not None:
        if not isinstance(identity, str) or not identity:
            raise HostsError(f"{where}.identity_file must be a path, got {identity!r}")
        path = Path(identity).expanduser()
        if not path.is_file():
            raise HostsError(f"{where}.identity_file: no key file at {path}")
        identity = str(path)
    directory = item.get("dir", "")
    if not isinstance(directory, str) or (directory and not directory.startswith("/")):
        raise HostsError(f"{where}.dir must be an absolute path on the host, got {directory!r}")
    if directory.rstrip("/") in ("", "/") and directory:
        raise HostsError(f"{where}.dir must not be the root directory")
    known = item.get("known_hosts")
    if known is not None and known is not False:
        if not isinstance(known, str) or not Path(known).expanduser().is_file():
            raise HostsError(
                f"{where}.known_hosts must be a known_hosts file (or false to skip the host key check), "
                f"got {known!r}"
            )
        known = str(Path(known).expanduser())
    elif known is True:
        known = None
    return Host(name, address.strip(), user, port, identity, directory.rstrip("/"), known)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value) or len(value) > 40:
        raise HostsError(
            f"{where}: {value!r} cannot name a host: use letters, digits, '.', '_' and inner '-' "
            "(it becomes the node's id and a directory name)"
        )
    return value


def load_hosts_file(path: str | Path) -> list[Host]:
    """The hosts of a ``--hosts`` file (YAML: a list of hosts, or {hosts: [...]})."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise HostsError(f"{path}: cannot read the hosts file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise HostsError(f"{path}: not YAML: {exc}") from None
    try:
        return parse_hosts(data, "hosts")
    except HostsError as exc:
        raise HostsError(f"{path}: {exc}") from None
