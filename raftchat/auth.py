"""The cluster secret and the peer hello that proves it.

Knowing a cluster's id (it is in ``cluster.yaml``) must not be enough to speak as a member:
one forged AppendEntries with a huge term would depose every leader, forged entries would
change the state. So every peer connection starts with a mutual challenge-response over a
secret shared by the members (a key file named by ``secret_file`` in ``cluster.yaml``):

1. dialer -> acceptor: ``{"cluster", "from", "to", "nonce": Nd}``
2. acceptor -> dialer: ``{"nonce": Na, "proof": HMAC(secret, "acceptor" | transcript)}``
3. dialer -> acceptor: ``{"proof": HMAC(secret, "dialer" | transcript)}``

where the transcript is the cluster id, both node ids and both nonces. Each side checks the
other's proof with :func:`hmac.compare_digest` before it believes a single Raft message, the
secret itself never crosses the wire, and fresh random nonces from both sides make a
recorded hello useless for a later connection. A connection that fails the hello is closed
and logged; nothing it sent reaches the Raft core.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from raftchat.config import ConfigError
from raftchat.protocol import FrameError, frame, pack, read_frame, unpack

SECRET_BYTES = 32  # random bytes in a new key file (stored hex-encoded)
MIN_SECRET_BYTES = 16
NONCE_BYTES = 16
HELLO_TIMEOUT = 5.0  # seconds a connection may take to finish the hello
MAX_HELLO_FRAME = 4096  # a hello is a few hundred bytes; a larger frame is refused unread
_DOMAIN = b"raftchat peer hello v1"


class SecretError(ConfigError):
    """The key file is missing, unreadable, too short or readable by others."""


class HelloError(Exception):
    """The other side of a peer connection failed the hello; the message says how."""


def create_secret(path: str | Path) -> Path:
    """Write a new random key file readable by its owner only; keep an existing one."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(SECRET_BYTES) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return path


def load_secret(path: str | Path) -> bytes:
    """The key in ``path``; refuses a file that group or others may read, as ssh does."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes().strip()
    except OSError as exc:
        raise SecretError(f"cannot read the cluster secret {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(
            f"the cluster secret {path} is accessible by others (mode {stat.S_IMODE(mode):o}): "
            f"chmod 600 {path}"
        )
    if len(data) < MIN_SECRET_BYTES:
        raise SecretError(f"the cluster secret {path} holds {len(data)} bytes; at least {MIN_SECRET_BYTES}")
    return data


def proof(secret: bytes, role: str, cluster: str, dialer: str, acceptor: str, nd: bytes, na: bytes) -> bytes:
    """HMAC-SHA256 over the whole hello, bound to the side that computes it."""
    transcript = pack([role, cluster, dialer, acceptor, nd, na])
    return hmac.new(secret, _DOMAIN + transcript, hashlib.sha256).digest()


async def _read_hello(reader: asyncio.StreamReader) -> dict[str, Any]:
    payload = await read_frame(reader, MAX_HELLO_FRAME)
    if payload is None:
        raise HelloError("closed the connection during the hello (as a peer with another secret does)")
    try:
        message = unpack(payload)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise HelloError(f"sent a hello that is not msgpack: {exc}") from exc
    if not isinstance(message, dict):
        raise HelloError(f"sent a hello that is not a map: {type(message).__name__}")
    return message


def _nonce(message: dict[str, Any]) -> bytes:
    nonce = message.get("nonce")
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
        raise HelloError(f"sent no {NONCE_BYTES}-byte nonce (an old or foreign peer?)")
    return nonce


def _check(expected: bytes, message: dict[str, Any]) -> None:
    got = message.get("proof")
    if not isinstance(got, bytes) or not hmac.compare_digest(expected, got):
        raise HelloError("failed the challenge: it does not know the cluster secret")


async def dial(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    secret: bytes,
    cluster: str,
    me: str,
    peer: str,
) -> None:
    """The dialer's half of the hello; raises HelloError if the acceptor is not a member."""
    nd = secrets.token_bytes(NONCE_BYTES)
    writer.write(frame(pack({"cluster": cluster, "from": me, "to": peer, "nonce": nd})))

    async def finish() -> None:
        answer = await _read_hello(reader)
        na = _nonce(answer)
        _check(proof(secret, "acceptor", cluster, me, peer, nd, na), answer)
        writer.write(frame(pack({"proof": proof(secret, "dialer", cluster, me, peer, nd, na)})))
        await writer.drain()

    try:
        await asyncio.wait_for(finish(), HELLO_TIMEOUT)
    except FrameError as exc:
        raise HelloError(f"broke the hello's framing: {exc}") from exc
    except TimeoutError as exc:
        raise HelloError(f"did not answer the hello within {HELLO_TIMEOUT:.0f} s") from exc


async def accept(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    secret: bytes,
    cluster: str,
    me: str,
    peers: set[str],
) -> str:
    """The acceptor's half of the hello; returns the proven peer's id or raises HelloError."""

    async def run() -> str:
        hello = await _read_hello(reader)
        if not isinstance(hello.get("cluster"), str) or hello["cluster"] != cluster:
            raise HelloError(f"belongs to another cluster ({hello.get('cluster')!r})")
        dialer = hello.get("from")
        if not isinstance(dialer, str) or dialer not in peers or dialer == me:
            raise HelloError(f"claims to be {dialer!r}, not a peer of {me}")
        if hello.get("to") != me:
            raise HelloError(f"meant to reach {hello.get('to')!r}, not {me}")
        nd = _nonce(hello)
        na = secrets.token_bytes(NONCE_BYTES)
        mine = proof(secret, "acceptor", cluster, dialer, me, nd, na)
        writer.write(frame(pack({"nonce": na, "proof": mine})))
        _check(proof(secret, "dialer", cluster, dialer, me, nd, na), await _read_hello(reader))
        return dialer

    try:
        return await asyncio.wait_for(run(), HELLO_TIMEOUT)
    except FrameError as exc:
        raise HelloError(f"broke the hello's framing: {exc}") from exc
    except TimeoutError as exc:
        raise HelloError(f"did not finish the hello within {HELLO_TIMEOUT:.0f} s") from exc
