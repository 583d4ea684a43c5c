"""The hot-data cache: encoded answers by (tenant, lake snapshot, statement and parameters, format).

The key holds the lake snapshot the answer was cut from, so a commit is never hidden by a cached answer: the next
request after the API sees the new snapshot misses and reads it. In Redis (with a TTL) when TICKLAKE_REDIS_URL is
set, shared by every serving process; else a small least-recently-used cache in the process. A cache that fails is
a miss, never an error.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from collections import OrderedDict

import orjson

log = logging.getLogger("ticklake.api")

MAX_BODY_BYTES = 8 * 1024 * 1024  # larger answers are not cached (a whole market belongs in a delivery)
MAX_LOCAL_BYTES = 256 * 1024 * 1024
_ROWS = struct.Struct("<q")


def cache_key(tenant: str, snapshot: int, sql: str, params: tuple, fmt: str) -> str:
    """The planned statement and its bound values are the normalized request: two spellings of one request share
    an entry, and a rolling window's new day is a new key."""
    digest = hashlib.sha256(orjson.dumps([tenant, snapshot, fmt, sql, [str(p) for p in params]])).hexdigest()
    return f"{tenant}:{snapshot}:{digest[:40]}"


def pack(rows: int, body: bytes) -> bytes:
    return _ROWS.pack(rows) + body


def unpack(value: bytes) -> tuple[int, bytes]:
    return _ROWS.unpack_from(value)[0], value[_ROWS.size:]


class LocalCache:
    """Least recently used first out, within `entries` answers and MAX_LOCAL_BYTES; entries expire after `ttl_s`."""

    kind = "local"

    def __init__(self, entries: int, ttl_s: float, clock=time.monotonic) -> None:
        self.entries, self.ttl_s, self.clock = entries, ttl_s, clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    async def get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < self.clock():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return item[1]

    async def set(self, key: str, value: bytes) -> None:
        if len(value) > MAX_BODY_BYTES or self.entries <= 0:
            return
        if key in self._items:
            self._drop(key)
        self._items[key] = (self.clock() + self.ttl_s, value)
        self._bytes += len(value)
        while len(self._items) > self.entries or self._bytes > MAX_LOCAL_BYTES:
            self._drop(next(iter(self._items)))

    def _drop(self, key: str) -> None:
        _, value = self._items.pop(key)
        self._bytes -= len(value)


class RedisCache:
    kind = "redis"

    def __init__(self, client, prefix: str, ttl_s: int) -> None:
        self.client, self.prefix, self.ttl_s = client, prefix, ttl_s
        self._warned_at = 0.0

    async def get(self, key: str) -> bytes | None:
        try:
            return await self.client.get(self.prefix + "answer:" + key)
        except Exception as exc:
            self._warn(exc)
            return None

    async def set(self, key: str, value: bytes) -> None:
        if len(value) > MAX_BODY_BYTES:
            return
        try:
            await self.client.set(self.prefix + "answer:" + key, value, ex=self.ttl_s)
        except Exception as exc:
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            log.warning("hot-data cache: Redis (TICKLAKE_REDIS_URL) did not answer (%s); answering from the lake",
                        type(exc).__name__)
