"""The closed-loop load generator shared by every system the benchmarks drive, and its small clients.

Every system (raftchat, PySyncObj, etcd, the null server) is driven by the same loop: N
client tasks on one asyncio event loop, each with its own connection and exactly one
request outstanding, each sending its next request as soon as the previous answer
arrives. Only the per-system :class:`Session` differs, so differences in the results
come from the servers, not from how they were driven.

The wire clients here are deliberately small (no pooling, no retries, no redirects):
a benchmark wants the cheapest correct client so that the server is what is measured.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from raftchat import protocol
from raftchat.lifetime import die_with_parent

TEXT_LEN = 48  # characters per chat message: a short line of chat
INBOX_PRELOAD = 10  # messages in each reader's inbox, so every fetch returns the same amount


# --------------------------------------------------------------------------- sessions and cells


class Session(Protocol):
    """One benchmark client: one connection, one request at a time. Raise on any failed op."""

    async def send(self, n: int) -> None: ...

    async def fetch(self) -> None: ...

    async def close(self) -> None: ...


SessionFactory = Callable[[int], Awaitable[Session]]


def message_text(client: int, n: int) -> str:
    """A message of exactly TEXT_LEN characters, different for every request (no caching anywhere)."""
    return f"c{client} m{n} ".ljust(TEXT_LEN, "x")[:TEXT_LEN]


def password_of(user: str) -> str:
    """Every benchmark account's password (raftchat checks it; the other systems ignore it)."""
    return f"pw-{user}"


def sender_name(i: int) -> str:
    return f"s{i}"


def reader_name(i: int) -> str:
    return f"r{i}"


@dataclass
class CellResult:
    """What one (system, nodes, clients, op) run measured; latencies in seconds."""

    ops: int
    duration: float
    latencies: list[float]
    errors: Counter = field(default_factory=Counter)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.duration if self.duration > 0 else 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)

    def error_summary(self) -> str:
        if not self.errors:
            return ""
        total = sum(self.errors.values())
        top = "; ".join(f"{n}x {msg}" for msg, n in self.errors.most_common(3))
        return f"{total} errors ({top})"


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: no interpolation, so the figure is a latency that really happened."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil(n * pct / 100)
    return ordered[int(min(rank, len(ordered))) - 1]


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


async def run_cell(
    factory: SessionFactory, op: str, clients: int, warmup: float, duration: float, grace: float = 10.0
) -> CellResult:
    """Run ``clients`` closed-loop workers for warmup + duration seconds; measure only the last ``duration``.

    An op counts if it completes inside the measured window. Workers stop starting new
    ops at the window's end; any op still unanswered ``grace`` seconds later is counted
    as hung and cancelled, so a stuck server cannot hang the benchmark.
    """
    if op not in ("send", "fetch"):
        raise ValueError(f"unknown op {op!r}")
    sessions: list[Session] = []
    try:
        for i in range(clients):
            sessions.append(await factory(i))
        latencies: list[float] = []
        errors: Counter = Counter()
        counted = 0
        loop_start = time.perf_counter()
        measure_from = loop_start + warmup
        stop_at = measure_from + duration

        async def worker(session: Session) -> None:
            nonlocal counted
            n = 0
            sending = op == "send"
            perf = time.perf_counter
            while True:
                t0 = perf()
                if t0 >= stop_at:
                    return
                n += 1
                try:
                    if sending:
                        await session.send(n)
                    else:
                        await session.fetch()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # every failure is data for the report, not a reason to stop
                    t1 = perf()
                    if measure_from <= t1 <= stop_at:
                        errors[_describe(exc)] += 1
                    await asyncio.sleep(0.01)  # a failing server must not be spun on
                    continue
                t1 = perf()
                if measure_from <= t1 <= stop_at:
                    counted += 1
                    latencies.append(t1 - t0)

        tasks = [asyncio.create_task(worker(s)) for s in sessions]
        done, pending = await asyncio.wait(tasks, timeout=warmup + duration + grace)
        for task in pending:
            task.cancel()
        if pending:
            errors[f"request unanswered {grace:g} s after the window closed"] += len(pending)
            await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                errors[_describe(task.exception())] += 1  # type: ignore[arg-type]
        return CellResult(counted, duration, latencies, errors)
    finally:
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


# --------------------------------------------------------------------------- msgpack-framed client


class FramedConn:
    """A 4-byte-length + msgpack request/response connection (raftchat's client protocol)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._ids = 0

    @classmethod
    async def open(cls, host: str, port: int) -> FramedConn:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def call(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its answer (one outstanding request at a time)."""
        self._ids += 1
        message["id"] = self._ids
        self.writer.write(protocol.frame(protocol.pack(message)))
        payload = await protocol.read_frame(self.reader)
        if payload is None:
            raise ConnectionError("the server closed the connection")
        answer = protocol.unpack(payload)
        if answer.get("id") != self._ids:
            raise ConnectionError(f"answer id {answer.get('id')!r} does not match request id {self._ids}")
        return answer

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


class FramedChatSession:
    """Chat ops over the raftchat wire protocol: used for raftchat (raw mode), PySyncObj and the null server.

    Writes carry ``client``/``seq``/``ack`` exactly as raftchat's own client sends them,
    so the server does the same session bookkeeping it does for real clients.
    """

    def __init__(self, conn: FramedConn, index: int, accounts: int) -> None:
        self.conn = conn
        self.index = index
        self.sender = sender_name(index)
        self.to = sender_name((index + 1) % accounts)
        self.reader_user = reader_name(index)
        self.client_id = f"bench-{os.getpid()}-{index}-{time.time_ns()}"
        self.seq = 0

    @classmethod
    async def open(cls, host: str, port: int, index: int, accounts: int) -> FramedChatSession:
        return cls(await FramedConn.open(host, port), index, accounts)

    async def send(self, n: int) -> None:
        self.seq += 1
        op = {"op": "send_message", "sender": self.sender, "to": self.to, "text": message_text(self.index, n)}
        op["password"] = password_of(self.sender)
        answer = await self.conn.call(
            {"op": op, "client": self.client_id, "seq": self.seq, "ack": self.seq - 1}
        )
        if answer.get("status") != "ok":
            raise RuntimeError(f"send_message: {answer.get('status')}: {answer.get('error')}")

    async def fetch(self) -> None:
        answer = await self.conn.call(
            {
                "op": {
                    "op": "fetch_messages",
                    "user": self.reader_user,
                    "from_index": 1,
                    "password": password_of(self.reader_user),
                }
            }
        )
        if answer.get("status") != "ok":
            raise RuntimeError(f"fetch_messages: {answer.get('status')}: {answer.get('error')}")
        if len(answer.get("value") or ()) != INBOX_PRELOAD:
            raise RuntimeError(f"fetch_messages returned {len(answer.get('value') or ())} messages")

    async def close(self) -> None:
        await self.conn.close()


# --------------------------------------------------------------------------- HTTP/1.1 client (etcd)


class HttpConn:
    """One keep-alive HTTP/1.1 connection for JSON POSTs: just enough HTTP for etcd's JSON gateway."""

    def __init__(
        self, host: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.host = f"{host}:{port}"
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConn:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(host, port, reader, writer)

    async def post_json(self, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        raw_head = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ConnectionError(f"bad HTTP status line {lines[0]!r}")
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            payload = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            payload = await self._read_chunked()
        else:
            raise ConnectionError("HTTP response without a length cannot be kept alive")
        if status != 200:
            raise RuntimeError(f"HTTP {status} from {path}: {payload[:200]!r}")
        return json.loads(payload)

    async def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # no trailers are expected: just the final CRLF
                return b"".join(chunks)
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def inbox_prefix(user: str) -> str:
    return f"chat/inbox/{user}/"


def prefix_end(prefix: str) -> str:
    """The range_end that makes a range cover every key starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class EtcdChatSession:
    """Chat ops as etcd keys: a message is one put under the recipient's inbox prefix,
    a fetch is one linearizable range over a reader's inbox prefix (INBOX_PRELOAD keys)."""

    def __init__(self, conn: HttpConn, index: int, accounts: int) -> None:
        self.conn = conn
        self.index = index
        self.sender = sender_name(index)
        self.to = sender_name((index + 1) % accounts)
        prefix = inbox_prefix(reader_name(index))
        self.range_body = {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}

    @classmethod
    async def open(cls, host: str, port: int, index: int, accounts: int) -> EtcdChatSession:
        return cls(await HttpConn.open(host, port), index, accounts)

    async def send(self, n: int) -> None:
        key = f"{inbox_prefix(self.to)}{self.sender}-{os.getpid()}-{n:012d}"
        value = json.dumps([self.sender, message_text(self.index, n)])
        answer = await self.conn.post_json("/v3/kv/put", {"key": b64(key), "value": b64(value)})
        if "header" not in answer:
            raise RuntimeError(f"put: unexpected answer {answer!r:.200}")

    async def fetch(self) -> None:
        answer = await self.conn.post_json("/v3/kv/range", self.range_body)
        kvs = answer.get("kvs") or []
        if len(kvs) != INBOX_PRELOAD:
            raise RuntimeError(f"range returned {len(kvs)} keys, expected {INBOX_PRELOAD}")
        for kv in kvs:
            base64.b64decode(kv["value"])  # a real client decodes what it fetched

    async def close(self) -> None:
        await self.conn.close()


# --------------------------------------------------------------------------- processes


def spawn(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a child in its own session (a terminal Ctrl-C reaches only us; we stop it in order).

    Call only from the main thread: PR_SET_PDEATHSIG fires when the *thread* that forked exits.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=die_with_parent,
            start_new_session=True,
            env=env,
        )


def stop_processes(procs: Sequence[subprocess.Popen], timeout: float = 5.0) -> None:
    """SIGTERM everything still running, then SIGKILL whatever has not exited by ``timeout``."""
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.terminate()
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def raise_on_signals() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt at once, wherever the main thread is.

    asyncio.run() would otherwise turn SIGINT into a cancellation of its main task, which a
    coroutine that catches timeouts can swallow; and SIGTERM's default would skip every
    `finally`. Raising directly means the `finally` blocks that stop our children always run.
    """

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def cpu_times() -> tuple[int, int]:
    """(all CPU time, idle CPU time) of the whole machine so far, in clock ticks, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values[:8]), idle


def machine_busy(seconds: float = 1.0) -> float | None:
    """Fraction of all CPUs busy over ``seconds`` (None off Linux): checks the machine is quiet.

    Call it while the benchmark itself is idle; anything it sees is other processes, which
    would compete with the cluster and the load generator and skew the figures.
    """
    try:
        total0, idle0 = cpu_times()
        time.sleep(seconds)
        total1, idle1 = cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return 1.0 - (idle1 - idle0) / total if total > 0 else None


def quiet_check_line(busy: float | None) -> str:
    if busy is None:
        return "machine load before start: unknown (no /proc/stat)"
    line = f"machine load before start: {busy:.0%} of {os.cpu_count()} CPUs busy with other processes"
    if busy > 0.10:
        line += " -- WARNING: the machine is not idle; figures will be lower and noisier than on a quiet one"
    return line


def fmt_ms(seconds: float) -> str:
    if seconds != seconds:  # NaN: no successful op
        return "-"
    ms = seconds * 1000
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"
