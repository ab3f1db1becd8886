"""One SSH connection per host for the whole run, with a blocking API for the harness's threads.

Why asyncssh: it is maintained, speaks SSH itself (no ``ssh`` binary to drive through a
terminal, as pexpect's pxssh does), multiplexes many commands over one connection at once,
and is asyncio-native like the harness. Its loop runs in a thread of its own, so that the
nemesis (from ``asyncio.to_thread``), the node monitor (its own thread) and the runner (the
main thread) can all call in; each call blocks until its command ends or times out.

A connection cut by a fault or a reboot is opened again on the next command, and a command
lost with its connection is sent once more on the new one.
A failing command raises CommandFailed naming the host, the command, its exit status and the
end of its stderr.
"""

from __future__ import annotations

import asyncio
import shlex
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncssh

from remote.hosts import Host

CONNECT_TIMEOUT = 10.0  # seconds to connect and log in
COMMAND_TIMEOUT = 60.0  # default seconds a command may take
REMOTE_GRACE = 5.0  # seconds we wait beyond a command's timeout for the host's timeout(1) to end it
KEEPALIVE = 5.0  # seconds between keepalives: a dead connection is noticed within a few of them
T = TypeVar("T")


class SshError(RuntimeError):
    """Something failed on one host; the message starts with the host."""

    def __init__(self, host: Host, message: str) -> None:
        super().__init__(f"{host.describe()}: {message}")
        self.host = host


class Unreachable(SshError):
    """No connection, or the login was refused."""


class CommandFailed(SshError):
    def __init__(self, host: Host, command: str, exit_status: int | None, stderr: str) -> None:
        tail = "\n".join(stderr.strip().splitlines()[-8:]) or "(no stderr)"
        status = "timed out" if exit_status is None else f"exited with status {exit_status}"
        super().__init__(host, f"`{_short(command)}` {status}: {tail}")
        self.command = command
        self.exit_status = exit_status
        self.stderr = stderr


def _short(command: str, limit: int = 200) -> str:
    command = " ".join(command.split())
    return command if len(command) <= limit else command[: limit - 3] + "..."


@dataclass
class Result:
    exit_status: int
    stdout: Any  # str, or bytes for a binary command
    stderr: str


def quote(*words: str) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


class Connections:
    """The run's SSH connections, keyed by host name."""

    def __init__(self, hosts: Iterable[Host], connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.hosts = {h.name: h for h in hosts}
        self.connect_timeout = connect_timeout
        self._conns: dict[str, asyncssh.SSHClientConnection] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.reconnects: dict[str, int] = dict.fromkeys(self.hosts, 0)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ssh-loop", daemon=True)
        self._thread.start()

    # -- the loop thread ---------------------------------------------------------------------------

    def call(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run a coroutine on the SSH loop and wait for it (never call from that loop)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("Connections.call from the SSH loop itself would deadlock")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def each(self, names: Iterable[str], fn: Callable[[str], Awaitable[T]]) -> dict[str, T | BaseException]:
        """``fn(name)`` on every host at once; each host's result or the exception it raised."""
        names = list(names)

        async def gather() -> list[Any]:
            return await asyncio.gather(*(fn(n) for n in names), return_exceptions=True)

        return dict(zip(names, self.call(gather()), strict=True))

    # -- connections -------------------------------------------------------------------------------

    async def _connect(self, name: str) -> asyncssh.SSHClientConnection:
        host = self.hosts[name]
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            conn = self._conns.get(name)
            if conn is not None and not conn.is_closed():
                return conn
            if conn is not None:
                self.reconnects[name] += 1
            options: dict[str, Any] = {
                "connect_timeout": self.connect_timeout,
                "keepalive_interval": KEEPALIVE,
                "keepalive_count_max": 3,
            }
            if host.user is not None:
                options["username"] = host.user
            if host.port is not None:
                options["port"] = host.port
            if host.identity_file is not None:
                options["client_keys"] = [host.identity_file]
                options["agent_path"] = None  # exactly the key the hosts file names
            if host.known_hosts is False:
                options["known_hosts"] = None
            elif host.known_hosts:
                options["known_hosts"] = host.known_hosts
            try:
                conn = await asyncssh.connect(host.address, **options)
            except asyncssh.PermissionDenied as exc:
                key = host.identity_file or "the SSH config's keys and agent"
                raise Unreachable(
                    host,
                    f"the login as {host.user or 'the default user'} with {key} was refused: {exc.reason}",
                ) from None
            except asyncssh.HostKeyNotVerifiable as exc:
                raise Unreachable(
                    host, f"its host key is not trusted ({exc.reason}); add it to known_hosts"
                ) from None
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                why = str(exc) or type(exc).__name__
                if isinstance(exc, TimeoutError):
                    why = f"no answer within {self.connect_timeout:g} s"
                raise Unreachable(host, f"cannot connect: {why}") from None
            self._conns[name] = conn
            return conn

    def connect_all(self) -> dict[str, BaseException | None]:
        """Connect to every host at once; per host None or why it failed."""
        results = self.each(self.hosts, self._connect)
        return {n: r if isinstance(r, BaseException) else None for n, r in results.items()}

    def peer_ip(self, name: str) -> str:
        """The address the connection reached (an SSH config alias resolves to it)."""
        conn = self.call(self._connect(name))
        return conn.get_extra_info("peername")[0]

    def close(self) -> None:
        async def close_all() -> None:
            for conn in self._conns.values():
                conn.close()
            await asyncio.gather(*(c.wait_closed() for c in self._conns.values()), return_exceptions=True)
            self._conns.clear()

        if self._loop.is_running():
            try:
                self.call(close_all(), timeout=10)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(5)

    # -- commands ----------------------------------------------------------------------------------

    async def arun(
        self,
        name: str,
        command: str,
        input: str | bytes | None = None,
        timeout: float = COMMAND_TIMEOUT,
        check: bool = True,
        binary: bool = False,
    ) -> Result:
        host = self.hosts[name]
        for attempt in (1, 2):
            conn = await self._connect(name)
            try:
                done = await conn.run(
                    # The host ends the command at its timeout too (an SSH channel closed on our side
                    # leaves its process running there): nothing outlives a command that timed out.
                    f"timeout -k 2 {timeout:g} sh -c {quote(command)}",
                    input=input,
                    timeout=timeout + REMOTE_GRACE,
                    check=False,
                    encoding=None if binary else "utf-8",
                    errors="replace",
                )
            except asyncssh.TimeoutError as exc:
                stderr = (
                    exc.stderr
                    if isinstance(exc.stderr, str)
                    else (exc.stderr or b"").decode(errors="replace")
                )
                raise CommandFailed(host, command, None, f"no end within {timeout:g} s; {stderr}") from None
            except (
                asyncssh.ChannelOpenError,
                asyncssh.ConnectionLost,
                asyncssh.DisconnectError,
                OSError,
            ) as exc:
                # Stale or cut: reopen and run it once more. Every command the harness sends is safe
                # to repeat (a start finds its running node, a stop its stopped one, a rule set is
                # replaced whole), so one lost with its connection is simply sent again.
                conn.close()
                if attempt == 2:
                    why = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
                    raise Unreachable(
                        host, f"the connection was lost during `{_short(command)}`: {why}"
                    ) from None
                continue
            if done.exit_status is None and done.exit_signal is None:  # the channel died with the connection
                conn.close()
                if attempt == 2:
                    raise Unreachable(host, f"the connection was lost during `{_short(command)}`")
                continue
            stderr = done.stderr or ""
            if isinstance(stderr, bytes):
                stderr = stderr.decode(errors="replace")
            status = done.exit_status if done.exit_status is not None else -1
            if status in (124, 137) and check:  # timeout(1) ended it
                raise CommandFailed(host, command, None, f"no end within {timeout:g} s; {stderr}")
            if check and status != 0:
                raise CommandFailed(host, command, status, stderr)
            return Result(status, done.stdout if done.stdout is not None else (b"" if binary else ""), stderr)
        raise AssertionError("unreachable")

    def run(self, name: str, command: str, **kwargs: Any) -> Result:
        timeout = kwargs.get("timeout", COMMAND_TIMEOUT)
        return self.call(self.arun(name, command, **kwargs), timeout + self.connect_timeout + 10)

    def run_all(self, commands: dict[str, str], **kwargs: Any) -> dict[str, Result]:
        """One command per host, all at once; raises the first host's error after all ended."""
        results = self.each(commands, lambda n: self.arun(n, commands[n], **kwargs))
        failed = [r for r in results.values() if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        return results  # type: ignore[return-value]

    async def aput(self, name: str, local: str, remote_path: str) -> None:
        host = self.hosts[name]
        conn = await self._connect(name)
        try:
            async with conn.start_sftp_client() as sftp:
                await sftp.put(local, remote_path, recurse=True)
        except (asyncssh.Error, OSError) as exc:
            raise SshError(host, f"uploading {local} to {remote_path} failed: {exc}") from None
