"""Account credentials: a password becomes a key before anything reaches the log.

The state machine must be deterministic and cheap to apply, so it never runs scrypt: the
node that receives a request turns its ``password`` into ``key = scrypt(password, salt)``
(in a thread, so the event loop keeps ticking) and only the key travels on. The machine
stores the key of ``create_account`` and compares keys with :func:`hmac.compare_digest`.

The salt is derived from the cluster id and the username. It is unique per account name
and cluster (no table precomputed for another cluster or user helps), and, being
reproducible, it lets every node derive the same key for the same password without first
reading the account: so the comparison can happen in apply order, and an account deleted
and created again with the same password accepts it whatever the timing. The password
itself is never stored, logged or replicated.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from raftchat.protocol import pack
from raftchat.statemachine import InvalidRequest

# Small enough for a busy leader (about 15 ms of one core, 4 MiB), large enough that trying
# passwords offline against a copy of the log costs as much per guess.
SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES = 2**12, 8, 1, 32
MAX_PASSWORD = 1024  # characters; scrypt's cost grows with the input
CACHE_SIZE = 4096  # derived keys kept per node, so a busy user's every request costs no scrypt
# Threads deriving keys. A new leader's cache is cold: every active user's first request costs
# a derivation, all at once. Run side by side on a busy machine they share the CPU and all
# finish late (four took 350 ms where one took 80); in a queue on half the cores the first
# requests are served after one derivation, and the node keeps cores for its own loop.
KDF_THREADS = max(1, (os.cpu_count() or 2) // 2)


def salt(cluster_id: str, user: str) -> bytes:
    return hashlib.sha256(b"raftchat account salt v1" + pack([cluster_id, user])).digest()[:16]


def derive_key(cluster_id: str, user: str, password: str) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt(cluster_id, user),
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=64 * 1024 * 1024,
        dklen=KEY_BYTES,
    )


class _Derivation(NamedTuple):
    """A key that is not cached: what deriving it takes."""

    cache_key: bytes
    user: str
    password: str


def _with_key(op: dict, key: bytes) -> dict:
    clean = {k: v for k, v in op.items() if k != "password"}
    clean["key"] = key
    return clean


class KeyDeriver:
    """Turns a request's ``password`` into the ``key`` the state machine takes."""

    def __init__(self, cluster_id: str, keyed: dict[str, str]) -> None:
        self.cluster_id = cluster_id
        self.keyed = keyed  # op name -> the argument naming the account whose password it takes
        # (salt, sha256(password)) -> key. A memory-only shortcut: the node sees the password
        # anyway; the log and snapshots hold only scrypt keys.
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        # user -> salt, kept: a hash per request saved
        self._salt = functools.lru_cache(maxsize=CACHE_SIZE)(functools.partial(salt, cluster_id))
        self._deriving: dict[bytes, asyncio.Future] = {}  # derivations under way: a retry waits for it
        self._executor: ThreadPoolExecutor | None = None

    async def replace_password(self, op: Any) -> Any:
        """``op`` with ``password`` replaced by ``key``; other ops unchanged."""
        found = self._lookup(op)
        if type(found) is not _Derivation:
            return found
        return _with_key(op, await self._derive(found.cache_key, found.user, found.password))

    def replace_now(self, op: Any) -> Any | None:
        """What :meth:`replace_password` returns, when that needs no derivation (the key is
        cached, or the op takes no password); None when it does."""
        found = self._lookup(op)
        return None if type(found) is _Derivation else found

    def _lookup(self, op: Any) -> Any:
        """The op to go on with (its key from the cache, or unchanged), or the derivation it waits for."""
        if not isinstance(op, dict) or not isinstance(op.get("op"), str) or op["op"] not in self.keyed:
            return op  # validation names what is wrong with it
        name, who = op["op"], self.keyed[op["op"]]
        password, user = op.get("password"), op.get(who)
        if not isinstance(password, str):
            raise InvalidRequest(f"{name}: needs 'password', a string (the password of {who!r})")
        if len(password) > MAX_PASSWORD:
            raise InvalidRequest(f"{name}: password longer than {MAX_PASSWORD} characters")
        if "key" in op:
            raise InvalidRequest(f"{name}: unexpected argument 'key' (send 'password')")
        if not isinstance(user, str):
            return op  # validation names the bad argument
        cache_key = self._salt(user) + hashlib.sha256(password.encode("utf-8")).digest()
        key = self._cache.get(cache_key)
        if key is None:
            return _Derivation(cache_key, user, password)
        self._cache.move_to_end(cache_key)
        return _with_key(op, key)

    async def _derive(self, cache_key: bytes, user: str, password: str) -> bytes:
        """Derive in the pool, once for concurrent requests with the same password, and cache it."""
        future = self._deriving.get(cache_key)
        if future is None:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(KDF_THREADS, thread_name_prefix="raftchat-scrypt")
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._executor, derive_key, self.cluster_id, user, password)
            self._deriving[cache_key] = future
            try:
                key = await asyncio.shield(future)
            finally:
                del self._deriving[cache_key]
            self._cache[cache_key] = key
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
            return key
        return await asyncio.shield(future)
