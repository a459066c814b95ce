"""Where entries live: this process's memory (an LRU bounded in bytes) or a Redis server.

Both answer `get`, `put` and `delete` on string keys and never raise on a miss or an outage:
Redis being down is a miss (and a dropped write), so a request is proxied uncached, never failed.
`put` replaces a value whole (Redis SET, a dict assignment), which is what keeps entries untorn.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import Any, Protocol

import anyio

from ..common.redis_scripts import REDIS_ERRORS, RedisHealth, RedisScripts
from .entry import Stored, decode, encode

__all__ = ["MemoryStore", "RedisStore", "Store"]


class Store(Protocol):
    async def get(self, key: str, now: float) -> Stored | None: ...

    async def put(self, key: str, value: Stored, now: float, ttl: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    def statistics(self) -> dict[str, int]: ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """Least recently used first out, bounded by `max_bytes` of keys, headers and bodies.

    Every method runs without awaiting in between, so on one event loop each is atomic.
    """

    def __init__(self, max_bytes: int, max_object_size: int) -> None:
        self.max_bytes = max_bytes
        self.max_object_size = max_object_size
        self.bytes = 0
        # key -> (value, expires at (wall seconds), counted size)
        self._items: OrderedDict[str, tuple[Stored, float, int]] = OrderedDict()
        self.evictions = 0

    async def get(self, key: str, now: float) -> Stored | None:
        return self.get_now(key, now)

    def get_now(self, key: str, now: float) -> Stored | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] <= now:
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return item[0]

    async def put(self, key: str, value: Stored, now: float, ttl: float) -> None:
        self.put_now(key, value, now, ttl)

    def put_now(self, key: str, value: Stored, now: float, ttl: float) -> None:
        size = value.size + len(key)
        self._drop(key)
        if size > self.max_object_size or ttl <= 0:
            return
        self._items[key] = (value, now + ttl, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            oldest = next(iter(self._items))
            self._drop(oldest)
            self.evictions += 1

    async def delete(self, key: str) -> None:
        self.delete_now(key)

    def delete_now(self, key: str) -> None:
        self._drop(key)

    def _drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.bytes -= item[2]

    def __len__(self) -> int:
        return len(self._items)

    def statistics(self) -> dict[str, int]:
        return {"entries": len(self._items), "bytes": self.bytes, "evictions": self.evictions}

    async def aclose(self) -> None:
        self._items.clear()
        self.bytes = 0


class RedisStore:
    """Entries as Redis strings with a TTL. After a failure Redis is left alone for
    `retry_interval`, so an outage costs one timeout, not one per request."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        retry_interval: float,
        prefix: str,
        max_object_size: int,
        name: str = "cache",
        logger: logging.Logger | None = None,
    ) -> None:
        self.link = RedisScripts(url, timeout)
        self.health = RedisHealth(retry_interval)
        self.prefix = prefix
        self.max_object_size = max_object_size
        self.name = name
        self.logger = logger or logging.getLogger("a3s_gateway")
        self.errors = 0

    async def get(self, key: str, now: float) -> Stored | None:
        data = await self._call("GET", self.prefix + key)
        return decode(data) if isinstance(data, bytes) else None

    async def put(self, key: str, value: Stored, now: float, ttl: float) -> None:
        data = encode(value)
        if len(data) + len(key) > self.max_object_size or ttl <= 0:
            return
        ttl_ms = max(1, math.ceil(ttl * 1000))
        await self._call("SET", self.prefix + key, data, "PX", ttl_ms)

    async def delete(self, key: str) -> None:
        await self._call("DEL", self.prefix + key)

    async def _call(self, name: str, *args: Any) -> Any:
        clock = anyio.current_time()
        if not self.health.usable(clock):
            return None
        try:
            with anyio.fail_after(self.link.timeout * 2):
                return await self.link.command(name, *args)
        except REDIS_ERRORS as exc:
            self.errors += 1
            if self.health.failed(clock):
                self.logger.warning("cache %s: redis unavailable (%s); proxying uncached", self.name, exc)
            return None

    def statistics(self) -> dict[str, int]:
        return {"redis_errors": self.errors}

    async def aclose(self) -> None:
        await self.link.aclose()
