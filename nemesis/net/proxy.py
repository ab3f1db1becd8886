"""The "proxy" network: a TCP proxy between every ordered pair of nodes; needs no root.

Each node dials its own proxy port for each peer (``ClusterConfig.routes``), so the proxy
can stop, delay or resume the traffic of any link. Clients dial the nodes directly.

What a cut does. A real partition black-holes packets: the sender's writes still succeed
and nothing arrives, and neither side learns anything until timeouts fire. The proxy does
the same. Existing connections of a cut pair stay open but everything read from either
side is discarded, along with chunks held back by a link fault; new connections are
accepted and black-holed the same way. So Raft sees silence, not a reset, and has to
notice the partition through its election timeouts, as it would on a real network.

What a heal does. Forwarding resumes for new connections, and the connections that were
black-holed are reset (RST). They cannot simply resume: the bytes dropped in the middle
of a stream would leave the receiver reading half a frame. A reset makes the sender's next
write fail, so it reconnects at once and starts a clean stream with a hello frame.

How loss is emulated. Dropping a chunk of a TCP stream would corrupt the framing, which
real packet loss never does: TCP retransmits. So a "lost" chunk is delivered one RTO
(200 ms) late instead, and the chunks behind it wait for it (head-of-line blocking), which
is what a lost segment costs a TCP connection. Delay and jitter are per chunk, in order.

When dst is down. src's connect succeeds (the proxy listens for dst), the proxy's dial to
dst fails and it resets src's connection: src learns at its next write and retries. That
is as near to "connection refused" as a proxy gets; Raft sees one more lost message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nemesis.net.base import Pair
from raftchat.config import ClusterConfig
from raftchat.lifetime import die_with_parent

READY_TIMEOUT = 10.0
CONTROL_TIMEOUT = 10.0
PROC_MARK = "nemesis.proxyproc"
TAG_RE = re.compile(r"[A-Za-z0-9]{1,8}")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # holds nemesis/, for `python -m` from any cwd


class ProxyError(RuntimeError):
    """The proxy process could not be started, or refused or failed a request."""


class ProxyNetwork:
    """A proxy process that owns one loopback port per (src, dst) and forwards or withholds its traffic."""

    name = "proxy"

    def __init__(self, tag: str | None = None, workdir: Path | None = None) -> None:
        self.tag = tag or secrets.token_hex(3)
        if not TAG_RE.fullmatch(self.tag):
            raise ValueError(f"tag {self.tag!r} must be 1-8 letters or digits, as `harness cleanup` expects")
        self.workdir = Path(workdir) if workdir is not None else None
        self.proc: subprocess.Popen | None = None
        self.base: ClusterConfig | None = None
        self.config: ClusterConfig | None = None
        self._control: socket.socket | None = None
        self._control_file: Any = None
        self._lock = threading.Lock()  # the nemesis and checks may call from different threads

    @property
    def proc_tag(self) -> str:
        """What the proxy's command line carries: ``harness cleanup`` looks for it."""
        return f"rc-{self.tag}"

    @property
    def log_path(self) -> Path | None:
        return self.workdir / f"proxy-{self.tag}.log" if self.workdir else None

    # -- Network ---------------------------------------------------------------------------------

    def setup(self, config: ClusterConfig) -> ClusterConfig:
        """Start the proxy for these nodes; return the config whose routes go through it."""
        if self.proc is not None:
            raise ProxyError("this ProxyNetwork is already set up; tear it down first")
        links = {
            src: {dst: _hostport(config.peer_address(src, dst)) for dst in config.ids if dst != src}
            for src in config.ids
        }
        ready = self._start(links)
        self._connect(ready["control"])
        self.base = config
        self.config = dataclasses.replace(config, routes=ready["routes"])
        return self.config

    def command_prefix(self, node_id: str) -> list[str]:
        return []

    def cut(self, pairs: set[Pair]) -> None:
        """Black-hole exactly these pairs, both directions; returns once the proxy applies it."""
        checked = []
        for pair in pairs:
            if len(pair) != 2:
                raise ValueError(f"a cut pair needs two distinct nodes, got {sorted(pair)}")
            self._check_nodes(pair)
            checked.append(sorted(pair))
        self._request({"op": "cut", "pairs": sorted(checked)})

    def heal(self) -> None:
        self._request({"op": "cut", "pairs": []})

    def slow(
        self, nodes: list[str], delay_ms: float = 0.0, jitter_ms: float = 0.0, loss: float = 0.0
    ) -> None:
        """Delay each chunk on links touching ``nodes`` (one-way, so a round trip pays it twice).

        ``loss`` is the chance that a chunk is retransmitted: it arrives 200 ms late. A node's
        new setting replaces its old one; a link between two slowed nodes gets the worse of each.
        """
        if delay_ms < 0 or jitter_ms < 0 or not 0.0 <= loss <= 1.0:
            raise ValueError("delay_ms and jitter_ms must be >= 0 and loss within [0, 1]")
        self._check_nodes(nodes)
        self._request(
            {"op": "slow", "nodes": list(nodes), "delay_ms": delay_ms, "jitter_ms": jitter_ms, "loss": loss}
        )

    def clear_slow(self) -> None:
        self._request({"op": "clear_slow"})

    def teardown(self) -> None:
        """Stop the proxy: ask it to quit, then SIGTERM, then SIGKILL. Idempotent."""
        proc, self.proc = self.proc, None
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.sendall(b'{"op": "quit"}\n')
            with contextlib.suppress(OSError):
                self._control_file.close()
                self._control.close()
            self._control = self._control_file = None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()  # the lifeline: the proxy exits on EOF
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    # -- checks ----------------------------------------------------------------------------------

    def probe(self, src: str, dst: str, timeout: float = 1.0) -> bool:
        """Can src reach dst right now? Sends a token over src's route to dst and waits for its echo.

        Needs an echo server at dst's peer address (a stand-in for the node, as in tests):
        a raftchat node reads peer traffic but never answers it.
        """
        if self.config is None:
            raise ProxyError("probe() before setup()")
        token = b"probe-" + secrets.token_hex(8).encode() + b"\n"
        deadline = time.monotonic() + timeout
        try:
            with socket.create_connection(self.config.peer_address(src, dst), timeout=timeout) as sock:
                sock.sendall(token)
                got = b""
                while len(got) < len(token):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    sock.settimeout(left)
                    chunk = sock.recv(len(token) - len(got))
                    if not chunk:
                        return False
                    got += chunk
                return got == token
        except OSError:
            return False

    def stats(self) -> list[dict[str, Any]]:
        """Per link: cut or not, open and accepted connections, bytes forwarded and dropped."""
        return self._request({"op": "stats"})["links"]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    # -- internals -------------------------------------------------------------------------------

    def _start(self, links: dict[str, dict[str, str]]) -> dict[str, Any]:
        cmd = [sys.executable, "-m", PROC_MARK, "--tag", self.proc_tag, "--links", json.dumps(links)]
        log = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_path, "ab")  # noqa: SIM115 -- the child keeps its own copy
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                # PDEATHSIG fires when the *thread* that forked exits: only safe from the main thread.
                # The stdin lifeline covers the rest (setup() from a worker thread, the harness
                # exiting without teardown()), as it closes whenever this process ends.
                preexec_fn=die_with_parent if threading.current_thread() is threading.main_thread() else None,
                start_new_session=True,  # a Ctrl-C reaches the harness, which tears us down in order
                env=_child_env(),
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        try:
            return json.loads(self._read_ready_line())
        except Exception:
            self.teardown()
            raise

    def _read_ready_line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + READY_TIMEOUT
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProxyError(f"the proxy did not start within {READY_TIMEOUT:.0f} s{self._log_hint()}")
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise ProxyError(f"the proxy exited while starting{self._log_hint()}")
                data += chunk
        return data.decode()

    def _log_hint(self) -> str:
        return f" (see {self.log_path})" if self.log_path else ""

    def _connect(self, port: int) -> None:
        self._control = socket.create_connection(("127.0.0.1", port), timeout=CONTROL_TIMEOUT)
        self._control.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._control_file = self._control.makefile("rb")

    def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._control is None:
                raise ProxyError(f"{request['op']}: the proxy is not running (call setup() first)")
            try:
                self._control.sendall(json.dumps(request).encode() + b"\n")
                line = self._control_file.readline()
            except OSError as exc:
                raise ProxyError(f"{request['op']}: lost the proxy's control channel: {exc}") from exc
        if not line:
            raise ProxyError(f"{request['op']}: the proxy closed its control channel{self._log_hint()}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise ProxyError(f"{request['op']}: {reply.get('error')}")
        return reply

    def _check_nodes(self, nodes: Any) -> None:
        if self.base is None:
            raise ProxyError("setup() first")
        unknown = set(nodes) - set(self.base.ids)
        if unknown:
            raise ValueError(
                f"unknown node(s) {', '.join(sorted(unknown))} (nodes: {', '.join(self.base.ids)})"
            )


def _hostport(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    return env


def proxy_processes() -> Iterator[tuple[int, list[str]]]:
    """Every running proxy process (but this one) with its arguments, found by its command
    line, never by name: the one scan of ``/proc`` that cleanup and the tests share."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(PROC_MARK in arg for arg in args):
            yield int(entry.name), args


def leftover_pids(tag: str | None = None) -> list[int]:
    """Proxy processes still running (of this run's tag, or any): for cleanup and for tests."""
    return [pid for pid, args in proxy_processes() if tag is None or f"rc-{tag}" in args]
