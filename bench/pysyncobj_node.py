"""One PySyncObj node replicating the chat object, with a small request server for the load generator.

This exists only so that bench/throughput.py can compare raftchat with PySyncObj under the
same load. Each node is its own process (as raftchat's nodes are). Besides its Raft
port it serves raftchat's client wire protocol (4-byte length + msgpack) on a second
port, so the load generator drives both systems with the identical client code.

Durability: PySyncObj's only persistence option is ``journalFile`` (plus ``fullDumpFile``
for snapshots). Its FileJournal writes records into an mmap and never syncs it while
running, and SyncObjConf has no fsync switch. With ``--fsync batch`` (the default) this
script makes PySyncObj's log as durable as raftchat's: see :func:`add_group_fsync`.
``--fsync none`` runs stock PySyncObj (page cache only) for reference.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

from raftchat import protocol


class ChatObj(SyncObj):
    """Accounts with inboxes; the same operations and answers as raftchat's chat machine.

    Reads are replicated too: PySyncObj has no ReadIndex, so a linearizable read (what
    raftchat and etcd serve by default) has to go through the log.
    """

    def __init__(
        self, self_addr: str, partners: list[str], conf: SyncObjConf, max_username: int = 20
    ) -> None:
        super().__init__(self_addr, partners, conf)
        self._inboxes: dict[str, list[tuple[str, str]]] = {}
        self._max_username = max_username

    @replicated
    def create_account(self, user: str) -> tuple[str, Any]:
        if len(user) > self._max_username:
            return ("username_too_long", None)
        if user in self._inboxes:
            return ("user_exists", None)
        self._inboxes[user] = []
        return ("ok", None)

    @replicated
    def send_message(self, sender: str, to: str, text: str) -> tuple[str, Any]:
        if sender not in self._inboxes or to not in self._inboxes:
            return ("no_such_user", None)
        inbox = self._inboxes[to]
        inbox.append((sender, text))
        return ("ok", len(inbox))

    @replicated
    def fetch_messages(self, user: str, from_index: int) -> tuple[str, Any]:
        inbox = self._inboxes.get(user)
        if inbox is None:
            return ("no_such_user", None)
        if from_index < 1:
            return ("bad_index", None)
        return ("ok", [[s, t] for s, t in inbox[from_index - 1 :]])


def add_group_fsync(obj: SyncObj) -> None:
    """Make the journal durable before anything that depends on it leaves the node.

    Every journal change marks it dirty; before the node sends any message (a follower's
    acknowledgement, a vote, a leader's AppendEntries) and at the end of every tick, a
    dirty journal is synced once. So several entries appended between two sends share one
    sync (group commit), and a leader's own entries are durable before the next tick
    counts them towards commit. Syncing only before acknowledgements and votes is also
    correct, but measured slower here (PySyncObj then sends AppendEntries faster than its
    followers can sync them one by one), so the benchmark uses the faster correct variant.
    Reaches into PySyncObj's private journal and transport (name-mangled), since the
    library has no hook for this; checked against pysyncobj 0.3.x.
    """
    journal = obj._SyncObj__raftLog  # type: ignore[attr-defined]
    transport = obj._SyncObj__transport  # type: ignore[attr-defined]
    dirty = False

    def sync() -> None:
        nonlocal dirty
        if dirty:
            dirty = False
            journal.flush()  # mmap.flush(): msync(MS_SYNC), which syncs the mapped file range

    def mark(method_name: str) -> None:
        original = getattr(journal, method_name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            nonlocal dirty
            dirty = True
            return original(*args, **kwargs)

        setattr(journal, method_name, wrapped)

    for name in ("add", "clear", "deleteEntriesFrom", "deleteEntriesTo"):
        mark(name)
    original_send = transport.send

    def send(node: Any, message: Any) -> Any:
        sync()
        return original_send(node, message)

    transport.send = send
    obj.addOnTickCallback(sync)


class RequestServer:
    """Answers raftchat-protocol requests by calling the replicated methods (callbacks: tick thread)."""

    def __init__(self, obj: ChatObj, node_index: int) -> None:
        self.obj = obj
        self.node_index = node_index

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (payload := await protocol.read_frame(reader)) is not None:
                request = protocol.unpack(payload)
                answer = await self._answer(loop, request)
                answer["id"] = request.get("id")
                writer.write(protocol.frame(protocol.pack(answer)))
        except (protocol.FrameError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, loop: asyncio.AbstractEventLoop, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("meta") == "status":
            return {"status": "ok", "value": self.status()}
        op = dict(request.get("op") or {})
        name = op.pop("op", None)
        if name == "create_account":
            args: tuple = (op["user"],)
        elif name == "send_message":
            args = (op["sender"], op["to"], op["text"])
        elif name == "fetch_messages":
            args = (op["user"], op["from_index"])
        else:
            return {"status": "bad_request", "error": f"unknown op {name!r}"}
        future: asyncio.Future = loop.create_future()

        def done(result: Any, error: int) -> None:  # runs on PySyncObj's tick thread
            loop.call_soon_threadsafe(_settle, future, result, error)

        getattr(self.obj, name)(*args, callback=done)
        result, error = await future
        if error != FAIL_REASON.SUCCESS:
            return {"status": "error", "error": f"pysyncobj failure reason {error}"}
        status, value = result
        return {"status": status, "value": value, "error": ""}

    def status(self) -> dict[str, Any]:
        return {
            "node": self.node_index,
            "leader": self.obj._isLeader(),
            "ready": self.obj.isReady(),
            "term": self.obj._getTerm(),
        }


def _settle(future: asyncio.Future, result: Any, error: int) -> None:
    if not future.done():
        future.set_result((result, error))


async def serve(obj: ChatObj, node_index: int, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(RequestServer(obj, node_index).handle, "127.0.0.1", port)
    try:
        await stop.wait()
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=int, required=True, help="this node's position in --peers")
    parser.add_argument(
        "--peers", required=True, help="comma-separated host:port Raft addresses of all nodes"
    )
    parser.add_argument("--serve-port", type=int, required=True, help="port for load-generator requests")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--fsync", choices=["batch", "none"], default="batch")
    parser.add_argument("--append-batch", choices=["on", "off"], default="off", help="appendEntriesUseBatch")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    peers = args.peers.split(",")
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = SyncObjConf(
        journalFile=str(data_dir / "journal.bin"),
        fullDumpFile=str(data_dir / "dump.bin"),
        appendEntriesUseBatch=args.append_batch == "on",
        dynamicMembershipChange=False,
    )
    obj = ChatObj(peers[args.index], [p for i, p in enumerate(peers) if i != args.index], conf)
    if args.fsync == "batch":
        add_group_fsync(obj)
    try:
        asyncio.run(serve(obj, args.index, args.serve_port))
    finally:
        obj.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
