"""One Redis server as kinds reach it: redis-py's asyncio client where it can run, else its
blocking client in a worker thread (under trio, where the asyncio client cannot run).

Clients are created on first use, with one attempt and short timeouts: a slow or absent Redis
must never hold requests, so callers treat any `RedisError`/`OSError`/`TimeoutError` as
"unavailable" and decide for themselves (fail open, proxy uncached ...).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from redis.backoff import NoBackoff

__all__ = ["REDIS_ERRORS", "RedisLink", "on_asyncio"]

# What a call raises when Redis is down, slow or refuses: the caller's "unavailable".
REDIS_ERRORS = (redis.exceptions.RedisError, OSError, TimeoutError)


class RedisLink:
    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._async: redis.asyncio.Redis | None = None
        self._sync: redis.Redis | None = None
        self._lock = threading.Lock()

    def async_client(self) -> redis.asyncio.Redis:
        if self._async is None:
            retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
            self._async = redis.asyncio.Redis.from_url(self.url, retry=retry, **self._options())
        return self._async

    def sync_client(self) -> redis.Redis:
        with self._lock:
            if self._sync is None:
                retry = redis.retry.Retry(NoBackoff(), 0)
                self._sync = redis.Redis.from_url(self.url, retry=retry, **self._options())
            return self._sync

    def _options(self) -> dict[str, Any]:
        return {"socket_connect_timeout": self.timeout, "socket_timeout": self.timeout}

    async def call(self, command: Callable[[Any], Any]) -> Any:
        """`command(client)`: awaited with the asyncio client, or run with the blocking one in a
        thread. `command` is written once for both (redis-py's two clients share their methods)."""
        if on_asyncio():
            return await command(self.async_client())
        client = self.sync_client()
        return await anyio.to_thread.run_sync(command, client, abandon_on_cancel=True)

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
        if self._sync is not None:
            self._sync.close()


def on_asyncio() -> bool:
    """Whether redis-py's asyncio client can run here (asyncio or uvloop; not trio).

    Asked through anyio, so this module names no event loop (only the launcher does).
    """
    backend = getattr(anyio.lowlevel.current_token(), "backend_class", None)
    return getattr(backend, "__name__", "").startswith("AsyncIO")
